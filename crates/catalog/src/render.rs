//! SQL text for creating, dropping and altering modelled objects. Every name is schema-qualified; definitions come
//! from the server (`pg_get_*def`) as read with an empty `search_path`, so they are qualified too.

use crate::ident::{QName, quote_ident, quote_literal};
use crate::model::*;

/// `COMMENT ON <target> IS '…'` (or `IS NULL`).
pub(crate) fn comment(target: &str, comment: &Option<String>) -> String {
    match comment {
        Some(c) => format!("COMMENT ON {target} IS {};", quote_literal(c)),
        None => format!("COMMENT ON {target} IS NULL;"),
    }
}

fn push_comment(out: &mut Vec<String>, target: &str, c: &Option<String>) {
    if c.is_some() {
        out.push(comment(target, c));
    }
}

/// The name PostgreSQL gives a rebuilt type while its users are converted.
pub(crate) fn old_type_name(name: &QName) -> QName {
    let mut base = name.name.clone();
    // NAMEDATALEN: 63 bytes, and the suffix must fit.
    while base.len() > 50 {
        base.pop();
    }
    QName::new(&name.schema, format!("{base}__strata_old"))
}

fn type_word(t: &TypeDef) -> &'static str {
    if matches!(t.kind, TypeKind::Domain { .. }) {
        "DOMAIN"
    } else {
        "TYPE"
    }
}

fn type_bound_defaults(data_type: &str) -> (i64, i64) {
    match data_type {
        "smallint" => (i16::MIN as i64, i16::MAX as i64),
        "integer" => (i32::MIN as i64, i32::MAX as i64),
        _ => (i64::MIN, i64::MAX),
    }
}

/// Sequence options, all spelled out except those equal to PostgreSQL's defaults for the type and direction.
pub(crate) fn sequence_options(o: &SequenceOptions, include_type: bool) -> Vec<String> {
    let (tmin, tmax) = type_bound_defaults(&o.data_type);
    let (dmin, dmax) = if o.increment > 0 {
        (1, tmax)
    } else {
        (tmin, -1)
    };
    let dstart = if o.increment > 0 { o.min } else { o.max };
    let mut out = Vec::new();
    if include_type && o.data_type != "bigint" {
        out.push(format!("AS {}", o.data_type));
    }
    if o.increment != 1 {
        out.push(format!("INCREMENT BY {}", o.increment));
    }
    if o.min != dmin {
        out.push(format!("MINVALUE {}", o.min));
    }
    if o.max != dmax {
        out.push(format!("MAXVALUE {}", o.max));
    }
    if o.start != dstart {
        out.push(format!("START WITH {}", o.start));
    }
    if o.cache != 1 {
        out.push(format!("CACHE {}", o.cache));
    }
    if o.cycle {
        out.push("CYCLE".into());
    }
    out
}

/// The clauses of `ALTER SEQUENCE` that turn `a` into `b`.
pub(crate) fn sequence_option_changes(a: &SequenceOptions, b: &SequenceOptions) -> Vec<String> {
    let mut out = Vec::new();
    if a.data_type != b.data_type {
        out.push(format!("AS {}", b.data_type));
    }
    if a.increment != b.increment {
        out.push(format!("INCREMENT BY {}", b.increment));
    }
    if a.min != b.min {
        out.push(format!("MINVALUE {}", b.min));
    }
    if a.max != b.max {
        out.push(format!("MAXVALUE {}", b.max));
    }
    if a.start != b.start {
        out.push(format!("START WITH {}", b.start));
    }
    if a.cache != b.cache {
        out.push(format!("CACHE {}", b.cache));
    }
    if a.cycle != b.cycle {
        out.push(if b.cycle { "CYCLE" } else { "NO CYCLE" }.into());
    }
    out
}

/// `GENERATED { ALWAYS | BY DEFAULT } AS IDENTITY (…)`.
pub(crate) fn identity_clause(table: &QName, column: &str, i: &Identity) -> String {
    let mut opts = Vec::new();
    let default_name = format!("{}_{}_seq", table.name, column);
    if !i.sequence.name.is_empty()
        && (i.sequence.name != default_name || i.sequence.schema != table.schema)
    {
        opts.push(format!("SEQUENCE NAME {}", i.sequence));
    }
    opts.extend(sequence_options(&i.options, false));
    let mode = if i.always { "ALWAYS" } else { "BY DEFAULT" };
    if opts.is_empty() {
        format!("GENERATED {mode} AS IDENTITY")
    } else {
        format!("GENERATED {mode} AS IDENTITY ({})", opts.join(" "))
    }
}

/// Move an identity column's sequence past the values already in the column (after `ADD … AS IDENTITY` on a
/// column that holds rows).
pub(crate) fn setval_identity(table: &QName, column: &str) -> String {
    let col = quote_ident(column);
    format!(
        "SELECT pg_catalog.setval(pg_catalog.pg_get_serial_sequence({}, {}), COALESCE(max({col}), 0) + 1, false) FROM {table};",
        quote_literal(&table.sql()),
        quote_literal(&col)
    )
}

/// A column definition as in `CREATE TABLE` / `ADD COLUMN`; `default` is inlined when given.
pub(crate) fn column_definition(table: &QName, c: &Column, default: Option<&str>) -> String {
    let mut s = format!("{} {}", quote_ident(&c.name), c.type_name);
    if let Some(coll) = &c.collation {
        s.push_str(&format!(" COLLATE {coll}"));
    }
    if let Some(g) = &c.generated {
        s.push_str(&format!(
            " GENERATED ALWAYS AS ({g}){}",
            if c.generated_virtual {
                " VIRTUAL"
            } else {
                " STORED"
            }
        ));
    }
    if let Some(i) = &c.identity {
        s.push(' ');
        s.push_str(&identity_clause(table, &c.name, i));
    }
    if let Some(d) = default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    if c.not_null {
        s.push_str(" NOT NULL");
    }
    s
}

/// `ALTER TABLE … ALTER COLUMN … TYPE … USING …`: through `text` when an enum is on either side (enums have no
/// casts to other types).
pub(crate) fn set_type(table: &QName, c: &Column, via_text: bool) -> String {
    let col = quote_ident(&c.name);
    let collate = c
        .collation
        .as_ref()
        .map(|x| format!(" COLLATE {x}"))
        .unwrap_or_default();
    let using = if via_text {
        format!("{col}::text::{}", c.type_name)
    } else {
        format!("{col}::{}", c.type_name)
    };
    format!(
        "ALTER TABLE {table} ALTER COLUMN {col} TYPE {}{collate} USING {using};",
        c.type_name
    )
}

/// `ALTER TABLE … ALTER COLUMN … SET DEFAULT` (or `DROP DEFAULT`).
pub(crate) fn set_default(table: &QName, column: &str, c: &Column) -> String {
    match &c.default {
        Some(d) => format!(
            "ALTER TABLE {table} ALTER COLUMN {} SET DEFAULT {d};",
            quote_ident(column)
        ),
        None => format!(
            "ALTER TABLE {table} ALTER COLUMN {} DROP DEFAULT;",
            quote_ident(column)
        ),
    }
}

/// `SET (…)` / `RESET (…)` for storage parameters.
pub(crate) fn option_changes(prefix: &str, a: &[String], b: &[String]) -> Vec<String> {
    let key = |o: &String| o.split_once('=').map_or(o.clone(), |(k, _)| k.to_string());
    let b_keys: Vec<String> = b.iter().map(key).collect();
    let reset: Vec<String> = a.iter().map(key).filter(|k| !b_keys.contains(k)).collect();
    let set: Vec<String> = b.iter().filter(|o| !a.contains(o)).cloned().collect();
    let mut out = Vec::new();
    if !reset.is_empty() {
        out.push(format!("{prefix} RESET ({});", reset.join(", ")));
    }
    if !set.is_empty() {
        out.push(format!("{prefix} SET ({});", set.join(", ")));
    }
    out
}

pub(crate) fn view_option_changes(name: &QName, a: &View, b: &View) -> Vec<String> {
    let word = if b.kind == ViewKind::Materialized {
        "MATERIALIZED VIEW"
    } else {
        "VIEW"
    };
    option_changes(&format!("ALTER {word} {name}"), &a.options, &b.options)
}

pub(crate) fn replica_identity(name: &QName, t: &Table) -> String {
    match (t.replica_identity, &t.replica_index) {
        ('f', _) => format!("ALTER TABLE {name} REPLICA IDENTITY FULL;"),
        ('n', _) => format!("ALTER TABLE {name} REPLICA IDENTITY NOTHING;"),
        ('i', Some(ix)) => format!(
            "ALTER TABLE {name} REPLICA IDENTITY USING INDEX {};",
            quote_ident(ix)
        ),
        _ => format!("ALTER TABLE {name} REPLICA IDENTITY DEFAULT;"),
    }
}

pub(crate) fn trigger_enabled(table: &QName, name: &str, enabled: char) -> String {
    let what = match enabled {
        'D' => "DISABLE",
        'R' => "ENABLE REPLICA",
        'A' => "ENABLE ALWAYS",
        _ => "ENABLE",
    };
    format!("ALTER TABLE {table} {what} TRIGGER {};", quote_ident(name))
}

fn view_body(v: &View) -> String {
    v.definition
        .trim()
        .trim_end_matches(';')
        .trim_end()
        .to_string()
}

/// `CREATE [OR REPLACE] VIEW` / `CREATE MATERIALIZED VIEW`.
pub(crate) fn create_view(name: &QName, v: &View, or_replace: bool) -> String {
    let with = if v.options.is_empty() {
        String::new()
    } else {
        format!(" WITH ({})", v.options.join(", "))
    };
    match v.kind {
        ViewKind::View => format!(
            "CREATE {}VIEW {name}{with} AS\n{};",
            if or_replace { "OR REPLACE " } else { "" },
            view_body(v)
        ),
        ViewKind::Materialized => format!(
            "CREATE MATERIALIZED VIEW {name}{with} AS\n{}\nWITH {}DATA;",
            view_body(v),
            if v.populated { "" } else { "NO " }
        ),
    }
}

/// An index definition from `pg_get_indexdef`, made to recurse to partitions and optionally concurrent.
pub(crate) fn index_sql(name: &QName, ix: &Index, concurrently: bool) -> String {
    let def = ix.definition.clone();
    let unique = def.starts_with("CREATE UNIQUE INDEX ");
    let head = if unique {
        "CREATE UNIQUE INDEX "
    } else {
        "CREATE INDEX "
    };
    let rest = def.strip_prefix(head).unwrap_or(&def);
    let ident = quote_ident(&name.name);
    // `pg_get_indexdef` writes `ON ONLY` for an index of a partitioned table: that form would not build the
    // partitions' indexes.
    let rest = match rest.strip_prefix(&format!("{ident} ON ONLY ")) {
        Some(after) => format!("{ident} ON {after}"),
        None => rest.to_string(),
    };
    format!(
        "{head}{}{rest};",
        if concurrently { "CONCURRENTLY " } else { "" }
    )
}

fn policy_sql(table: &QName, name: &str, p: &Policy) -> String {
    let cmd = match p.command {
        'r' => "SELECT",
        'a' => "INSERT",
        'w' => "UPDATE",
        'd' => "DELETE",
        _ => "ALL",
    };
    let mut s = format!(
        "CREATE POLICY {} ON {table} AS {} FOR {cmd} TO {}",
        quote_ident(name),
        if p.permissive {
            "PERMISSIVE"
        } else {
            "RESTRICTIVE"
        },
        p.roles.join(", ")
    );
    if let Some(u) = &p.using {
        s.push_str(&format!(" USING ({u})"));
    }
    if let Some(c) = &p.check {
        s.push_str(&format!(" WITH CHECK ({c})"));
    }
    s.push(';');
    s
}

fn constraint_clause(name: &str, c: &Constraint) -> String {
    format!(
        "CONSTRAINT {} {}{}",
        quote_ident(name),
        c.definition,
        if c.validated { "" } else { " NOT VALID" }
    )
}

/// What is merged into a `CREATE TABLE`: columns (with their defaults), constraints, the partition or parents.
#[derive(Debug, Default)]
pub(crate) struct TableParts {
    pub columns: Vec<String>,
    pub defaults: Vec<String>,
    pub constraints: Vec<String>,
    pub partition: bool,
    pub inherits: Vec<QName>,
    /// A new sequence's `OWNED BY` is folded into its `CREATE SEQUENCE`.
    pub owned: bool,
}

/// Statements that create `id` as it is in `cat`. `parts` is what a `CREATE TABLE` (or `ADD COLUMN`,
/// `CREATE SEQUENCE`) absorbs.
pub(crate) fn create(
    cat: &Catalog,
    id: &ObjectId,
    parts: &TableParts,
    concurrently: bool,
) -> Vec<String> {
    let mut out = Vec::new();
    match id {
        ObjectId::Schema { name } => {
            out.push(format!("CREATE SCHEMA {};", quote_ident(name)));
            if let Some(s) = cat.schemas.get(name) {
                push_comment(
                    &mut out,
                    &format!("SCHEMA {}", quote_ident(name)),
                    &s.comment,
                );
            }
        }
        ObjectId::Extension { name } => {
            if let Some(e) = cat.extensions.get(name) {
                out.push(format!(
                    "CREATE EXTENSION IF NOT EXISTS {} WITH SCHEMA {};",
                    quote_ident(name),
                    quote_ident(&e.schema)
                ));
            }
        }
        ObjectId::Type { name } => {
            let Some(t) = cat.types.get(name) else {
                return out;
            };
            match &t.kind {
                TypeKind::Enum { labels } => out.push(format!(
                    "CREATE TYPE {name} AS ENUM ({});",
                    labels
                        .iter()
                        .map(|l| quote_literal(l))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                TypeKind::Composite { attributes } => out.push(format!(
                    "CREATE TYPE {name} AS ({});",
                    attributes
                        .iter()
                        .map(|a| format!(
                            "{} {}{}",
                            quote_ident(&a.name),
                            a.type_name,
                            a.collation
                                .as_ref()
                                .map(|c| format!(" COLLATE {c}"))
                                .unwrap_or_default()
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
                TypeKind::Domain {
                    base,
                    collation,
                    default,
                    not_null,
                    constraints,
                } => {
                    let mut s = format!("CREATE DOMAIN {name} AS {base}");
                    if let Some(c) = collation {
                        s.push_str(&format!(" COLLATE {c}"));
                    }
                    if let Some(d) = default {
                        s.push_str(&format!(" DEFAULT {d}"));
                    }
                    if *not_null {
                        s.push_str(" NOT NULL");
                    }
                    for (cname, c) in constraints.iter().filter(|(_, c)| c.validated) {
                        s.push_str(&format!(
                            " CONSTRAINT {} {}",
                            quote_ident(cname),
                            c.definition
                        ));
                    }
                    s.push(';');
                    out.push(s);
                    for (cname, c) in constraints.iter().filter(|(_, c)| !c.validated) {
                        out.push(format!(
                            "ALTER DOMAIN {name} ADD CONSTRAINT {} {} NOT VALID;",
                            quote_ident(cname),
                            c.definition
                        ));
                    }
                }
                TypeKind::Range {
                    subtype,
                    opclass,
                    collation,
                    canonical,
                    subtype_diff,
                    multirange,
                } => {
                    let mut opts = vec![format!("SUBTYPE = {subtype}")];
                    if let Some(o) = opclass {
                        opts.push(format!("SUBTYPE_OPCLASS = {o}"));
                    }
                    if let Some(c) = collation {
                        opts.push(format!("COLLATION = {c}"));
                    }
                    if let Some(c) = canonical {
                        opts.push(format!("CANONICAL = {c}"));
                    }
                    if let Some(d) = subtype_diff {
                        opts.push(format!("SUBTYPE_DIFF = {d}"));
                    }
                    if let Some(m) = multirange {
                        opts.push(format!("MULTIRANGE_TYPE_NAME = {m}"));
                    }
                    out.push(format!(
                        "CREATE TYPE {name} AS RANGE ({});",
                        opts.join(", ")
                    ));
                }
            }
            push_comment(&mut out, &format!("{} {name}", type_word(t)), &t.comment);
        }
        ObjectId::Sequence { name } => {
            let Some(s) = cat.sequences.get(name) else {
                return out;
            };
            let opts = sequence_options(&s.options, true);
            out.push(format!(
                "CREATE {}SEQUENCE {name}{}{};",
                if s.unlogged { "UNLOGGED " } else { "" },
                if opts.is_empty() {
                    String::new()
                } else {
                    format!(" {}", opts.join(" "))
                },
                if parts.owned {
                    s.owned_by
                        .as_ref()
                        .map(|(t, c)| format!(" OWNED BY {t}.{}", quote_ident(c)))
                        .unwrap_or_default()
                } else {
                    String::new()
                }
            ));
            push_comment(&mut out, &format!("SEQUENCE {name}"), &s.comment);
        }
        ObjectId::SequenceOwner { name } => {
            if let Some(Sequence {
                owned_by: Some((t, c)),
                ..
            }) = cat.sequences.get(name)
            {
                out.push(format!(
                    "ALTER SEQUENCE {name} OWNED BY {t}.{};",
                    quote_ident(c)
                ));
            }
        }
        ObjectId::Table { name } => {
            let Some(t) = cat.tables.get(name) else {
                return out;
            };
            let mut elements: Vec<String> = parts.columns.clone();
            elements.extend(parts.constraints.iter().cloned());
            let body = if elements.is_empty() {
                String::new()
            } else {
                format!(" (\n    {}\n)", elements.join(",\n    "))
            };
            let mut s = format!(
                "CREATE {}TABLE {name}",
                if t.unlogged { "UNLOGGED " } else { "" }
            );
            match (&t.partition_of, parts.partition) {
                (Some((parent, bound)), true) => {
                    s.push_str(&format!(" PARTITION OF {parent}{body} {bound}"));
                }
                _ => {
                    if body.is_empty() {
                        s.push_str(" ()");
                    } else {
                        s.push_str(&body);
                    }
                    if !parts.inherits.is_empty() {
                        s.push_str(&format!(
                            " INHERITS ({})",
                            parts
                                .inherits
                                .iter()
                                .map(QName::sql)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ));
                    }
                }
            }
            if let Some(key) = &t.partition_key {
                s.push_str(&format!(" PARTITION BY {key}"));
            }
            if !t.options.is_empty() {
                s.push_str(&format!(" WITH ({})", t.options.join(", ")));
            }
            s.push(';');
            out.push(s);
            out.extend(parts.defaults.iter().cloned());
            if t.rls_enabled {
                out.push(format!("ALTER TABLE {name} ENABLE ROW LEVEL SECURITY;"));
            }
            if t.rls_forced {
                out.push(format!("ALTER TABLE {name} FORCE ROW LEVEL SECURITY;"));
            }
            if matches!(t.replica_identity, 'f' | 'n') {
                out.push(replica_identity(name, t));
            }
            push_comment(&mut out, &format!("TABLE {name}"), &t.comment);
            for c in &t.columns {
                if !c.inherited
                    && parts
                        .columns
                        .iter()
                        .any(|d| d.starts_with(&format!("{} ", quote_ident(&c.name))))
                {
                    push_comment(
                        &mut out,
                        &format!("COLUMN {name}.{}", quote_ident(&c.name)),
                        &c.comment,
                    );
                }
            }
        }
        ObjectId::PartitionOf { table } => {
            if let Some((parent, bound)) =
                cat.tables.get(table).and_then(|t| t.partition_of.as_ref())
            {
                out.push(format!(
                    "ALTER TABLE {parent} ATTACH PARTITION {table} {bound};"
                ));
            }
        }
        ObjectId::Inherits { table, parent } => {
            out.push(format!("ALTER TABLE {table} INHERIT {parent};"));
        }
        ObjectId::Column { table, column } => {
            if let Some(c) = cat.column(table, column) {
                let default = parts.defaults.first().map(String::as_str);
                out.push(format!(
                    "ALTER TABLE {table} ADD COLUMN {};",
                    column_definition(table, c, default)
                ));
                push_comment(
                    &mut out,
                    &format!("COLUMN {table}.{}", quote_ident(column)),
                    &c.comment,
                );
            }
        }
        ObjectId::Default { table, column } => {
            if let Some(c) = cat.column(table, column) {
                out.push(set_default(table, column, c));
            }
        }
        ObjectId::Constraint { table, name } => {
            if let Some(c) = cat.constraints.get(&(table.clone(), name.clone())) {
                out.push(format!(
                    "ALTER TABLE {table} ADD {};",
                    constraint_clause(name, c)
                ));
                push_comment(
                    &mut out,
                    &format!("CONSTRAINT {} ON {table}", quote_ident(name)),
                    &c.comment,
                );
            }
        }
        ObjectId::Index { name } => {
            if let Some(ix) = cat.indexes.get(name) {
                out.push(index_sql(name, ix, concurrently));
                push_comment(&mut out, &format!("INDEX {name}"), &ix.comment);
                if let Some(t) = cat.tables.get(&ix.table)
                    && t.replica_identity == 'i'
                    && t.replica_index.as_deref() == Some(name.name.as_str())
                {
                    out.push(replica_identity(&ix.table, t));
                }
            }
        }
        ObjectId::View { name } => {
            if let Some(v) = cat.views.get(name) {
                out.push(create_view(name, v, false));
                let word = if v.kind == ViewKind::Materialized {
                    "MATERIALIZED VIEW"
                } else {
                    "VIEW"
                };
                push_comment(&mut out, &format!("{word} {name}"), &v.comment);
                for (c, text) in &v.column_comments {
                    out.push(comment(
                        &format!("COLUMN {name}.{}", quote_ident(c)),
                        &Some(text.clone()),
                    ));
                }
            }
        }
        ObjectId::Function { name, args } => {
            if let Some(f) = cat.functions.get(&(name.clone(), args.clone())) {
                out.push(format!("{};", f.definition.trim_end()));
                let word = if f.kind == 'p' {
                    "PROCEDURE"
                } else {
                    "FUNCTION"
                };
                push_comment(&mut out, &format!("{word} {name}({args})"), &f.comment);
            }
        }
        ObjectId::Trigger { table, name } => {
            if let Some(t) = cat.triggers.get(&(table.clone(), name.clone())) {
                out.push(format!("{};", t.definition.trim_end()));
                if t.enabled != 'O' {
                    out.push(trigger_enabled(table, name, t.enabled));
                }
                push_comment(
                    &mut out,
                    &format!("TRIGGER {} ON {table}", quote_ident(name)),
                    &t.comment,
                );
            }
        }
        ObjectId::Policy { table, name } => {
            if let Some(p) = cat.policies.get(&(table.clone(), name.clone())) {
                out.push(policy_sql(table, name, p));
                push_comment(
                    &mut out,
                    &format!("POLICY {} ON {table}", quote_ident(name)),
                    &p.comment,
                );
            }
        }
    }
    out
}

/// The column definition and default of a column merged into `CREATE TABLE`.
pub(crate) fn table_column(
    cat: &Catalog,
    table: &QName,
    column: &str,
    with_default: bool,
) -> Option<String> {
    let c = cat.column(table, column)?;
    Some(column_definition(
        table,
        c,
        if with_default {
            c.default.as_deref()
        } else {
            None
        },
    ))
}

/// A constraint merged into `CREATE TABLE`.
pub(crate) fn table_constraint(cat: &Catalog, table: &QName, name: &str) -> Option<String> {
    let c = cat.constraints.get(&(table.clone(), name.to_string()))?;
    Some(constraint_clause(name, c))
}

/// Statements that drop `id` as it is in `cat`.
pub(crate) fn drop(cat: &Catalog, id: &ObjectId) -> Vec<String> {
    let s = match id {
        ObjectId::Schema { name } => format!("DROP SCHEMA {};", quote_ident(name)),
        ObjectId::Extension { .. } => return Vec::new(),
        ObjectId::Type { name } => {
            let word = cat.types.get(name).map_or("TYPE", type_word);
            format!("DROP {word} {name};")
        }
        ObjectId::Sequence { name } => format!("DROP SEQUENCE {name};"),
        ObjectId::SequenceOwner { name } => format!("ALTER SEQUENCE {name} OWNED BY NONE;"),
        ObjectId::Table { name } => format!("DROP TABLE {name};"),
        ObjectId::PartitionOf { table } => {
            match cat.tables.get(table).and_then(|t| t.partition_of.as_ref()) {
                Some((parent, _)) => format!("ALTER TABLE {parent} DETACH PARTITION {table};"),
                None => return Vec::new(),
            }
        }
        ObjectId::Inherits { table, parent } => format!("ALTER TABLE {table} NO INHERIT {parent};"),
        ObjectId::Column { table, column } => {
            format!("ALTER TABLE {table} DROP COLUMN {};", quote_ident(column))
        }
        ObjectId::Default { table, column } => format!(
            "ALTER TABLE {table} ALTER COLUMN {} DROP DEFAULT;",
            quote_ident(column)
        ),
        ObjectId::Constraint { table, name } => {
            format!("ALTER TABLE {table} DROP CONSTRAINT {};", quote_ident(name))
        }
        ObjectId::Index { name } => format!("DROP INDEX {name};"),
        ObjectId::View { name } => match cat.views.get(name).map(|v| v.kind) {
            Some(ViewKind::Materialized) => format!("DROP MATERIALIZED VIEW {name};"),
            _ => format!("DROP VIEW {name};"),
        },
        ObjectId::Function { name, args } => {
            let word = match cat.functions.get(&(name.clone(), args.clone())) {
                Some(f) if f.kind == 'p' => "PROCEDURE",
                _ => "FUNCTION",
            };
            format!("DROP {word} {name}({args});")
        }
        ObjectId::Trigger { table, name } => {
            format!("DROP TRIGGER {} ON {table};", quote_ident(name))
        }
        ObjectId::Policy { table, name } => {
            format!("DROP POLICY {} ON {table};", quote_ident(name))
        }
    };
    vec![s]
}

/// A rebuilt type's first step: rename it away.
pub(crate) fn rebuild_rename(cat: &Catalog, name: &QName) -> String {
    let word = cat.types.get(name).map_or("TYPE", type_word);
    format!(
        "ALTER {word} {name} RENAME TO {};",
        quote_ident(&old_type_name(name).name)
    )
}

/// A rebuilt type's last step: drop the renamed old one.
pub(crate) fn rebuild_cleanup(cat: &Catalog, name: &QName) -> String {
    let word = cat.types.get(name).map_or("TYPE", type_word);
    format!("DROP {word} {};", old_type_name(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitioned_index_definitions_recurse() {
        let ix = Index {
            table: QName::new("public", "m"),
            definition: "CREATE INDEX m_a_idx ON ONLY public.m USING btree (a)".into(),
            partitioned: true,
            inherited: false,
            comment: None,
        };
        assert_eq!(
            index_sql(&QName::new("public", "m_a_idx"), &ix, false),
            "CREATE INDEX m_a_idx ON public.m USING btree (a);"
        );
        let plain = Index {
            definition: "CREATE UNIQUE INDEX u ON public.t USING btree (a)".into(),
            ..ix
        };
        assert_eq!(
            index_sql(&QName::new("public", "u"), &plain, true),
            "CREATE UNIQUE INDEX CONCURRENTLY u ON public.t USING btree (a);"
        );
    }

    #[test]
    fn sequence_defaults_are_left_out() {
        let o = SequenceOptions {
            data_type: "integer".into(),
            start: 1,
            increment: 1,
            min: 1,
            max: i32::MAX as i64,
            cache: 1,
            cycle: false,
        };
        assert_eq!(sequence_options(&o, true), vec!["AS integer".to_string()]);
        let down = SequenceOptions {
            increment: -1,
            min: i32::MIN as i64,
            max: -1,
            start: -1,
            ..o
        };
        assert_eq!(
            sequence_options(&down, false),
            vec!["INCREMENT BY -1".to_string()]
        );
    }
}
