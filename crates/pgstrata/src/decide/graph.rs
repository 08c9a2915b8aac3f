//! The dependency graph of managed objects, built from parsed references.
//!
//! Edges come in two strengths. A *hard* edge is a reference PostgreSQL resolves when the
//! statement runs (a view's query, a `LANGUAGE sql` body, a trigger's function, a comment's
//! object): the target must exist first, and a cycle of hard edges can never be installed. A
//! *soft* edge comes from a PL/pgSQL body, resolved only when the code runs: it orders
//! installation when it can, and is ignored inside a cycle (mutually recursive PL/pgSQL functions
//! are fine).
//!
//! Ordering: strongly connected components of the whole graph (Tarjan) give an order that
//! respects every edge between components; inside a component, hard edges alone are sorted
//! topologically (a failure there is a hard cycle, reported with its chain).

use std::collections::HashMap;

use pgstrata_sql::objects::{ArgType, Param, ParamMode, QualifiedName, Reference, ReferenceKind};

use crate::decide::assess::Node;
use crate::error::{Error, SourceError};
use crate::report::code::CodeKind;
use crate::source::package::Package;

/// What the graph needs to know about one statement.
pub(crate) struct Item<'a> {
    pub kind: CodeKind,
    /// Schema-qualified name (a trigger's is unqualified).
    pub name: &'a QualifiedName,
    /// A trigger's table (schema-qualified).
    pub table: Option<&'a QualifiedName>,
    /// For a comment: the kind of object it attaches to.
    pub comment_on: Option<CodeKind>,
    /// The package's main schema (unqualified names it declares land there).
    pub schema: &'a str,
    /// The package's schemas, in search_path order (unqualified references resolve in them).
    pub path: &'a [String],
    /// A routine's declared parameters (empty for other objects): overloads are told apart by them.
    pub params: &'a [Param],
    /// Every reference of the statement (bodies included).
    pub references: &'a [Reference],
}

/// A checked reference that names an object in one of `schemas` but matches no item: it must
/// already exist in the database.
#[derive(Debug, Clone)]
pub(crate) struct Unresolved {
    pub item: usize,
    pub reference: usize,
}

#[derive(Debug, Default)]
pub(crate) struct Graph {
    /// `hard[i]`: items `i` needs first (sorted, unique).
    pub hard: Vec<Vec<usize>>,
    /// `soft[i]`: items `i` would like first.
    pub soft: Vec<Vec<usize>>,
    pub unresolved: Vec<Unresolved>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Class {
    Routine,
    View,
    Trigger,
    Operator,
}

fn class_of(kind: CodeKind) -> Option<Class> {
    match kind {
        CodeKind::Function | CodeKind::Procedure | CodeKind::Aggregate => Some(Class::Routine),
        CodeKind::View => Some(Class::View),
        CodeKind::Trigger => Some(Class::Trigger),
        CodeKind::Operator => Some(Class::Operator),
        // Casts are found by their types, never by a name.
        CodeKind::Comment | CodeKind::Cast => None,
    }
}

impl Graph {
    /// Build the graph of `items`. References qualified with a schema in `schemas` that match no
    /// item are reported in [`Graph::unresolved`] (when checked).
    pub fn build(items: &[Item<'_>], schemas_known: &[&str]) -> Graph {
        type Key<'k> = (Class, &'k str, &'k str, Option<&'k QualifiedName>);
        let mut index: HashMap<Key<'_>, Vec<usize>> = HashMap::new();
        for (i, item) in items.iter().enumerate() {
            if let Some(class) = class_of(item.kind) {
                let schema = item.name.schema.as_deref().unwrap_or(item.schema);
                let table = if class == Class::Trigger {
                    item.table
                } else {
                    None
                };
                index
                    .entry((class, schema, item.name.name.as_str(), table))
                    .or_default()
                    .push(i);
            }
        }
        let mut graph = Graph {
            hard: vec![Vec::new(); items.len()],
            soft: vec![Vec::new(); items.len()],
            unresolved: Vec::new(),
        };
        for (i, item) in items.iter().enumerate() {
            let own_class = class_of(item.kind);
            let mut hard = Vec::new();
            let mut soft = Vec::new();
            for (ri, r) in item.references.iter().enumerate() {
                let qualified = r.name.schema.is_some();
                let name = r.name.name.as_str();
                let classes: &[Class] = match (item.comment_on, r.kind) {
                    (Some(CodeKind::Trigger), _) => &[Class::Trigger],
                    (Some(CodeKind::View), _) => &[Class::View],
                    (Some(_), _) => &[Class::Routine],
                    (None, ReferenceKind::Function) => &[Class::Routine],
                    (None, ReferenceKind::Relation | ReferenceKind::Type) => &[Class::View],
                    (None, ReferenceKind::Any) => &[Class::Routine, Class::View],
                    (None, ReferenceKind::Operator) => &[Class::Operator],
                };
                // A qualified name is looked up in its schema; an unqualified one in the package's schemas.
                let schemas: Vec<&str> = match &r.name.schema {
                    Some(s) => vec![s.as_str()],
                    None => std::iter::once(item.schema)
                        .chain(item.path.iter().map(String::as_str))
                        .collect(),
                };
                let mut targets = Vec::new();
                for &class in classes {
                    let table = if class == Class::Trigger {
                        item.table
                    } else {
                        None
                    };
                    for schema in &schemas {
                        if let Some(found) = index.get(&(class, *schema, name, table)) {
                            targets.extend(found.iter().copied());
                        }
                    }
                }
                targets.sort_unstable();
                targets.dedup();
                // A routine naming itself: recursion (or a comment on it), not a dependency.
                targets.retain(|t| *t != i);
                let is_call = matches!(r.kind, ReferenceKind::Function | ReferenceKind::Operator)
                    && item.comment_on.is_none();
                // Overloads of the item's own name: a dependency only when the call's arguments pick them.
                let own_name = |t: &usize| {
                    own_class == class_of(items[*t].kind)
                        && items[*t].name == item.name
                        && items[*t].table == item.table
                };
                let mut weak = false;
                if is_call {
                    match &r.args {
                        Some(args) => {
                            let fits: Vec<usize> = targets
                                .iter()
                                .copied()
                                .filter(|t| accepts(items[*t].params, args, item.params) != Fit::No)
                                .collect();
                            if fits.is_empty() && !targets.is_empty() {
                                // No overload in the source takes these arguments: it must be in the database
                                // (or the call is wrong, which PostgreSQL will say); order after them anyway.
                                weak = true;
                            } else {
                                targets = fits;
                            }
                        }
                        // Arguments unknown: another overload of the item's own name may or may not be the one
                        // called; order it first when possible, never as a hard dependency.
                        None if targets.iter().all(own_name) => weak = true,
                        None => {}
                    }
                }
                if targets.is_empty() {
                    if r.checked
                        && qualified
                        && schemas_known.contains(&schemas[0])
                        && !own_name_ref(item, r)
                        && !(is_call && calls_self(item, r))
                    {
                        graph.unresolved.push(Unresolved {
                            item: i,
                            reference: ri,
                        });
                    }
                    continue;
                }
                if r.checked && !weak {
                    hard.extend(targets);
                } else {
                    soft.extend(targets);
                }
            }
            hard.sort_unstable();
            hard.dedup();
            soft.sort_unstable();
            soft.dedup();
            soft.retain(|s| hard.binary_search(s).is_err());
            graph.hard[i] = hard;
            graph.soft[i] = soft;
        }
        graph
    }

    /// Every item, dependencies first. Err: a cycle of hard edges, as a chain of item indices
    /// whose first and last element are the same item.
    pub fn order(&self) -> Result<Vec<usize>, Vec<usize>> {
        let n = self.hard.len();
        let all: Vec<Vec<usize>> = (0..n)
            .map(|i| {
                let mut v = self.hard[i].clone();
                v.extend(&self.soft[i]);
                v.sort_unstable();
                v.dedup();
                v
            })
            .collect();
        let mut out = Vec::with_capacity(n);
        for component in crate::order::components(&all) {
            if component.len() == 1 {
                let only = component[0];
                if self.hard[only].contains(&only) {
                    return Err(vec![only, only]);
                }
                out.push(only);
                continue;
            }
            out.extend(self.order_component(&component)?);
        }
        Ok(out)
    }

    /// Topological order of one strongly connected component by its hard edges (the lowest item first among those
    /// ready: file order).
    fn order_component(&self, component: &[usize]) -> Result<Vec<usize>, Vec<usize>> {
        let members: HashMap<usize, usize> =
            component.iter().enumerate().map(|(k, &i)| (i, k)).collect();
        let needs: Vec<Vec<usize>> = component
            .iter()
            .map(|i| {
                self.hard[*i]
                    .iter()
                    .filter_map(|d| members.get(d).copied())
                    .collect()
            })
            .collect();
        crate::order::smallest_first(&needs)
            .map(|order| order.into_iter().map(|k| component[k]).collect())
            .map_err(|left| {
                let cycle = crate::order::cycle_among(&needs, &left);
                cycle.into_iter().map(|k| component[k]).collect()
            })
    }

    /// Items that (transitively, through hard and soft edges) depend on `item`, nearest first.
    pub fn dependents_chain(&self, item: usize) -> Vec<usize> {
        let mut chain = Vec::new();
        let mut current = item;
        let mut seen = vec![false; self.hard.len()];
        seen[item] = true;
        loop {
            let next = (0..self.hard.len()).find(|&u| {
                !seen[u] && (self.hard[u].contains(&current) || self.soft[u].contains(&current))
            });
            match next {
                Some(u) => {
                    seen[u] = true;
                    chain.push(u);
                    current = u;
                }
                None => return chain,
            }
        }
    }
}

/// A comment naming its own object is resolved by the comment edge, not reported missing.
fn own_name_ref(item: &Item<'_>, r: &Reference) -> bool {
    item.comment_on.is_some() && r.name.or_schema(item.schema) == item.name.or_schema(item.schema)
}

/// A routine calling its own name with arguments it accepts itself: recursion.
fn calls_self(item: &Item<'_>, r: &Reference) -> bool {
    r.name.or_schema(item.schema) == item.name.or_schema(item.schema)
        && r.args
            .as_ref()
            .is_some_and(|args| accepts(item.params, args, item.params) != Fit::No)
}

/// Whether a routine with parameters `params` can take a call's arguments.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fit {
    /// The number and types of the arguments fit.
    Yes,
    /// Cannot tell (types the text does not reveal, user-defined types, polymorphic parameters).
    Maybe,
    /// Certainly not: wrong number of arguments, or a built-in type with no implicit cast to the parameter's.
    No,
}

/// Does a routine declared with `params` accept `args`? `caller` are the calling routine's own parameters (an
/// argument `$1` or a parameter's name has that parameter's type).
pub(crate) fn accepts(params: &[Param], args: &[ArgType], caller: &[Param]) -> Fit {
    let inputs: Vec<&Param> = params.iter().filter(|p| p.is_input()).collect();
    let variadic = inputs.last().is_some_and(|p| p.mode == ParamMode::Variadic);
    let required = inputs.iter().filter(|p| !p.has_default).count() - usize::from(variadic);
    if args.len() < required.min(inputs.len()) || (!variadic && args.len() > inputs.len()) {
        return Fit::No;
    }
    let caller_inputs: Vec<&Param> = caller.iter().filter(|p| p.is_input()).collect();
    let mut fit = Fit::Yes;
    for (k, arg) in args.iter().enumerate() {
        let param_ty = match inputs.get(k) {
            Some(p) if p.mode == ParamMode::Variadic => p.ty.strip_suffix("[]").unwrap_or(&p.ty),
            Some(p) => p.ty.as_str(),
            None => match inputs.last() {
                Some(p) => p.ty.strip_suffix("[]").unwrap_or(&p.ty),
                None => return Fit::No,
            },
        };
        let arg_ty = match arg {
            ArgType::Known(t) => Some(t.as_str()),
            ArgType::Positional(n) => caller_inputs.get(n.wrapping_sub(1)).map(|p| p.ty.as_str()),
            ArgType::Name(n) => caller_inputs
                .iter()
                .find(|p| p.name.as_deref() == Some(n.as_str()))
                .map(|p| p.ty.as_str()),
            ArgType::Unknown => None,
        };
        match arg_ty.map(|a| implicit_cast(a, param_ty)) {
            Some(Fit::No) => return Fit::No,
            Some(Fit::Yes) => {}
            _ => fit = Fit::Maybe,
        }
    }
    fit
}

/// Whether a value of built-in type `from` is accepted where `to` is expected without an explicit cast (the
/// implicit casts of `pg_cast` between common built-in types). `Maybe` for anything else.
fn implicit_cast(from: &str, to: &str) -> Fit {
    if from == to {
        return Fit::Yes;
    }
    const POLYMORPHIC: [&str; 11] = [
        "any",
        "anyelement",
        "anyarray",
        "anynonarray",
        "anyenum",
        "anyrange",
        "anymultirange",
        "anycompatible",
        "anycompatiblearray",
        "anycompatiblenonarray",
        "anycompatiblerange",
    ];
    if POLYMORPHIC.contains(&to) || POLYMORPHIC.contains(&from) {
        return Fit::Maybe;
    }
    match (from.strip_suffix("[]"), to.strip_suffix("[]")) {
        (Some(a), Some(b)) => return implicit_cast(a, b),
        (Some(_), None) | (None, Some(_)) => {
            return if builtin(from.trim_end_matches("[]")) && builtin(to.trim_end_matches("[]")) {
                Fit::No
            } else {
                Fit::Maybe
            };
        }
        (None, None) => {}
    }
    if !builtin(from) || !builtin(to) {
        return Fit::Maybe;
    }
    const NUMBERS: [&str; 6] = [
        "smallint",
        "integer",
        "bigint",
        "numeric",
        "real",
        "double precision",
    ];
    const TEXT: [&str; 4] = ["text", "character varying", "character", "name"];
    const TIMES: [&str; 3] = [
        "date",
        "timestamp without time zone",
        "timestamp with time zone",
    ];
    let rank = |list: &[&str], t: &str| list.iter().position(|x| *x == t);
    if let (Some(a), Some(b)) = (rank(&NUMBERS, from), rank(&NUMBERS, to)) {
        return if a <= b { Fit::Yes } else { Fit::No };
    }
    if rank(&TEXT, from).is_some() && rank(&TEXT, to).is_some() {
        return Fit::Yes;
    }
    if let (Some(a), Some(b)) = (rank(&TIMES, from), rank(&TIMES, to)) {
        return if a <= b { Fit::Yes } else { Fit::No };
    }
    if from == "json" && to == "jsonb"
        || from == "time without time zone" && to == "time with time zone"
    {
        return Fit::Yes;
    }
    Fit::No
}

/// Built-in types whose implicit casts [`implicit_cast`] knows.
fn builtin(t: &str) -> bool {
    matches!(
        t,
        "smallint"
            | "integer"
            | "bigint"
            | "numeric"
            | "real"
            | "double precision"
            | "text"
            | "character varying"
            | "character"
            | "name"
            | "boolean"
            | "date"
            | "timestamp without time zone"
            | "timestamp with time zone"
            | "time without time zone"
            | "time with time zone"
            | "interval"
            | "uuid"
            | "json"
            | "jsonb"
            | "bytea"
    )
}

/// The dependency graph of the managed statements `nodes` of a deploy of `packages`.
pub(crate) fn build_graph(nodes: &[Node<'_>], packages: &[Package]) -> Graph {
    let items: Vec<Item<'_>> = nodes
        .iter()
        .map(|n| Item {
            kind: n.obj.kind,
            name: &n.obj.name,
            table: n.obj.table.as_ref(),
            comment_on: n
                .obj
                .comment
                .as_ref()
                .map(|c| CodeKind::of(c.target.object_kind())),
            schema: n.schema(),
            path: n.package.schemas(),
            params: n.obj.params(),
            references: n.obj.references(n.code()),
        })
        .collect();
    let schemas: Vec<&str> = packages
        .iter()
        .flat_map(|p| p.schemas().iter().map(String::as_str))
        .collect();
    Graph::build(&items, &schemas)
}

/// Parse the routine bodies of every statement (for their references), on all cores: with thousands of routines
/// it is the bulk of the client's work in a deploy.
pub(crate) fn parse_bodies(nodes: &[Node<'_>]) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = nodes.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for part in nodes.chunks(chunk) {
            scope.spawn(move || {
                for n in part {
                    n.obj.references(n.code());
                }
            });
        }
    });
}

pub(crate) fn cycle_error(nodes: &[Node<'_>], chain: &[usize]) -> Error {
    let first = nodes[chain[0]];
    let names: Vec<String> = chain
        .iter()
        .map(|&i| format!("{} ({})", nodes[i].obj.label(), nodes[i].location()))
        .collect();
    let file = &first.code().files[first.obj.file];
    let text = first.obj.source(first.code());
    SourceError::new(
        "strata::cycle",
        &file.display,
        file.text.to_string(),
        Some(first.obj.range.start..first.obj.range.start + text.find('\n').unwrap_or(text.len())),
        format!(
            "managed objects depend on each other in a cycle: {}",
            names.join(" → ")
        ),
    )
    .with_label("part of the cycle")
    .with_help(
        "PostgreSQL needs each of these before the next can be created; break the cycle (a PL/pgSQL body may \
         refer to objects created after it, a view or a LANGUAGE sql body may not)",
    )
    .into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgstrata_sql::objects::{ObjectStatement, parse_object};

    /// Kind, name and table of each statement.
    type Names = Vec<(CodeKind, QualifiedName, Option<QualifiedName>)>;

    fn build(sqls: &[&str]) -> (Vec<ObjectStatement>, Names) {
        let parsed: Vec<ObjectStatement> = sqls.iter().map(|s| parse_object(s).unwrap()).collect();
        let names = parsed
            .iter()
            .map(|p| match &p.declaration {
                pgstrata_sql::objects::Declaration::Create(c) => (
                    CodeKind::of(c.kind),
                    if c.kind == pgstrata_sql::objects::ObjectKind::Trigger {
                        c.name.clone()
                    } else {
                        c.name.or_schema("app")
                    },
                    c.table.as_ref().map(|t| t.or_schema("app")),
                ),
                pgstrata_sql::objects::Declaration::Comment(c) => {
                    (CodeKind::Comment, c.name.or_schema("app"), None)
                }
            })
            .collect();
        (parsed, names)
    }

    fn order(sqls: &[&str]) -> Result<Vec<usize>, Vec<usize>> {
        let (parsed, names) = build(sqls);
        let items: Vec<Item<'_>> = parsed
            .iter()
            .zip(&names)
            .map(|(p, (k, n, t))| Item {
                kind: *k,
                name: n,
                table: t.as_ref(),
                comment_on: match &p.declaration {
                    pgstrata_sql::objects::Declaration::Comment(c) => {
                        Some(CodeKind::of(c.target.object_kind()))
                    }
                    _ => None,
                },
                schema: "app",
                path: &[],
                params: match &p.declaration {
                    pgstrata_sql::objects::Declaration::Create(c) => &c.params,
                    _ => &[],
                },
                references: &p.references,
            })
            .collect();
        Graph::build(&items, &["app"]).order()
    }

    #[test]
    fn views_on_views_on_functions() {
        let o = order(&[
            "create view app.c as select * from app.b",
            "comment on view app.c is 'x'",
            "create view app.b as select app.f(x) from app.a",
            "create view a as select 1 as x",
            "create function app.f(int) returns int language sql as 'select $1'",
        ])
        .unwrap();
        let pos = |i| o.iter().position(|&x| x == i).unwrap();
        assert!(pos(4) < pos(2) && pos(3) < pos(2) && pos(2) < pos(0) && pos(0) < pos(1));
    }

    #[test]
    fn plpgsql_cycles_are_fine_hard_cycles_are_not() {
        let soft = order(&[
            "create function app.even(n int) returns bool language plpgsql as $$ begin return n = 0 or app.odd(n - 1); end $$",
            "create function app.odd(n int) returns bool language plpgsql as $$ begin return n <> 0 and app.even(n - 1); end $$",
            "create view app.v as select app.even(2)",
        ])
        .unwrap();
        assert_eq!(soft.last(), Some(&2));
        let err = order(&[
            "create view app.a as select * from app.b",
            "create view app.b as select * from app.c",
            "create view app.c as select * from app.a",
        ])
        .unwrap_err();
        assert_eq!(err.len(), 4);
        assert_eq!(err.first(), err.last());
    }

    #[test]
    fn mixed_cycle_orders_by_hard_edges() {
        // v needs f (hard); f's PL/pgSQL body reads v (soft): f, then v.
        let o = order(&[
            "create view app.v as select app.f() as x",
            "create function app.f() returns int language plpgsql as $$ begin return (select count(*) from app.v); end $$",
        ])
        .unwrap();
        assert_eq!(o, [1, 0]);
    }

    #[test]
    fn overloads_are_told_apart_by_their_arguments() {
        // f(int) calls f(text): f(text) first, and no cycle though both are named f.
        let o = order(&[
            "create function app.f(x integer) returns text language sql as $$ select app.f(x::text) $$",
            "create function app.f(x text) returns text language sql as $$ select x $$",
        ])
        .unwrap();
        assert_eq!(o, [1, 0]);
        // By arity, and by the type of `$1` / a parameter's name.
        let o = order(&[
            "create function app.g(a int, b int) returns int language sql as 'select app.g($1) + app.g(b)'",
            "create function app.g(a int) returns int language sql as 'select a'",
            "create function app.g(a text) returns int language sql as 'select 1'",
        ])
        .unwrap();
        // g(int) before its caller; g(text) is not called and keeps its place.
        assert_eq!(o, [1, 0, 2]);
        // Overloads calling each other for real: a cycle PostgreSQL cannot install.
        assert!(
            order(&[
                "create function app.f(x integer) returns text language sql as $$ select app.f(x::text) $$",
                "create function app.f(x text) returns text language sql as $$ select app.f(1) $$",
            ])
            .is_err()
        );
    }

    #[test]
    fn argument_fit() {
        let params = |sql: &str| match parse_object(sql).unwrap().declaration {
            pgstrata_sql::objects::Declaration::Create(c) => c.params,
            _ => unreachable!(),
        };
        let known = |t: &str| ArgType::Known(t.into());
        let two = params(
            "create function f(a int, b text default 'x', out c int) returns int language sql as ''",
        );
        assert_eq!(accepts(&two, &[known("integer")], &[]), Fit::Yes);
        assert_eq!(
            accepts(&two, &[known("smallint"), ArgType::Unknown], &[]),
            Fit::Maybe
        );
        assert_eq!(accepts(&two, &[], &[]), Fit::No);
        assert_eq!(accepts(&two, &[known("text")], &[]), Fit::No);
        assert_eq!(accepts(&two, &[known("bigint")], &[]), Fit::No);
        assert_eq!(
            accepts(
                &two,
                &[known("integer"), known("integer"), known("integer")],
                &[]
            ),
            Fit::No
        );
        let var = params(
            "create function f(a text, variadic r numeric[]) returns int language sql as ''",
        );
        assert_eq!(
            accepts(
                &var,
                &[known("text"), known("integer"), known("numeric")],
                &[]
            ),
            Fit::Yes
        );
        assert_eq!(
            accepts(&var, &[known("text"), known("boolean")], &[]),
            Fit::No
        );
        let any =
            params("create function f(a anyelement, b app.money) returns int language sql as ''");
        assert_eq!(
            accepts(&any, &[known("integer"), known("integer")], &[]),
            Fit::Maybe
        );
        assert_eq!(implicit_cast("date", "timestamp with time zone"), Fit::Yes);
        assert_eq!(implicit_cast("integer[]", "bigint[]"), Fit::Yes);
        assert_eq!(implicit_cast("integer[]", "integer"), Fit::No);
        assert_eq!(implicit_cast("character varying", "text"), Fit::Yes);
    }

    #[test]
    fn unresolved_checked_references_in_own_schema() {
        let (parsed, names) =
            build(&["create view app.v as select app.nope(1), other.thing(), count(*) from app.t"]);
        let items = vec![Item {
            kind: names[0].0,
            name: &names[0].1,
            table: None,
            comment_on: None,
            schema: "app",
            path: &[],
            params: &[],
            references: &parsed[0].references,
        }];
        let g = Graph::build(&items, &["app"]);
        let names: Vec<String> = g
            .unresolved
            .iter()
            .map(|u| parsed[0].references[u.reference].name.to_string())
            .collect();
        assert_eq!(names, ["app.nope", "app.t"]);
    }
}
