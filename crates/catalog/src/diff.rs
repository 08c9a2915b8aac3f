//! Comparing two catalogs: what to create, drop, alter or rebuild, before any ordering.
//!
//! Each object is compared with its namesake on the other side. Then the **cascade**: an object that is dropped,
//! replaced, or altered in a way PostgreSQL refuses while something depends on it (a column's type), takes its
//! dependents (from the source's `pg_depend`) with it: they are dropped before and re-created after. A dependent
//! that belongs to something dropped anyway (a column of a dropped table) goes implicitly, without a statement.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::ident::{QName, quote_ident, quote_literal};
use crate::model::*;
use crate::render;

/// A statement of an alteration, with what it implies.
#[derive(Debug, Clone)]
pub(crate) struct AlterStmt {
    pub sql: String,
    /// Runs before the migration's transaction when something in the same migration uses what it adds
    /// (`ALTER TYPE … ADD VALUE`: the value cannot be used before it commits).
    pub enum_value: bool,
    /// Why it may lose data, if it may.
    pub data_loss: Option<String>,
    /// Other hazards.
    pub hazards: Vec<crate::plan::Hazard>,
}

impl AlterStmt {
    pub fn new(sql: impl Into<String>) -> AlterStmt {
        AlterStmt {
            sql: sql.into(),
            enum_value: false,
            data_loss: None,
            hazards: Vec::new(),
        }
    }

    fn hazard(mut self, kind: crate::plan::HazardKind, message: impl Into<String>) -> AlterStmt {
        self.hazards.push(crate::plan::Hazard {
            kind,
            message: message.into(),
        });
        self
    }

    fn lossy(mut self, why: impl Into<String>) -> AlterStmt {
        self.data_loss = Some(why.into());
        self
    }
}

/// What happens to one object.
#[derive(Debug, Clone)]
pub(crate) enum Change {
    /// Only in the target.
    Create,
    /// Only in the source (or dropped by the cascade). `implicit`: its owner's drop takes it.
    Drop { implicit: bool },
    /// Dropped and created again (`implicit`: the drop is its owner's).
    Replace {
        implicit: bool,
        reason: Option<String>,
    },
    /// A type rebuilt under its users: renamed away, created anew, its columns converted, the old one dropped.
    Rebuild { reason: String },
    /// Altered in place.
    Alter {
        stmts: Vec<AlterStmt>,
        /// PostgreSQL refuses this while views, policies, … depend on the object (a column's type change).
        blocking: bool,
    },
}

impl Change {
    pub fn drops(&self) -> bool {
        matches!(
            self,
            Change::Drop { .. } | Change::Replace { .. } | Change::Rebuild { .. }
        )
    }

    pub fn creates(&self) -> bool {
        matches!(
            self,
            Change::Create | Change::Replace { .. } | Change::Rebuild { .. }
        )
    }
}

/// Renames declared with `-- strata:renamed-from`: applied to the source before comparing.
#[derive(Debug, Clone, Default)]
pub struct Renames {
    /// Tables: `(old, new)`.
    pub tables: Vec<(QName, QName)>,
    /// Columns: `(table as named in the target, old column, new column)`.
    pub columns: Vec<(QName, String, String)>,
}

impl Renames {
    /// No renames.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty() && self.columns.is_empty()
    }
}

/// The outcome of comparing: the source as renamed, the rename statements, the changes.
pub(crate) struct Comparison<'a> {
    pub source: std::borrow::Cow<'a, Catalog>,
    pub renames: Vec<(ObjectId, String)>,
    pub changes: BTreeMap<ObjectId, Change>,
    pub notes: Vec<String>,
}

/// The table, view or column an object belongs to in `cat` (dropping that drops it).
pub(crate) fn owner_in(cat: &Catalog, id: &ObjectId) -> Option<ObjectId> {
    let relation = |name: &QName| {
        if cat.views.contains_key(name) {
            ObjectId::View { name: name.clone() }
        } else {
            ObjectId::Table { name: name.clone() }
        }
    };
    match id {
        ObjectId::Index { name } => cat.indexes.get(name).map(|i| relation(&i.table)),
        ObjectId::Sequence { name } => cat
            .sequences
            .get(name)
            .and_then(|s| s.owned_by.as_ref())
            .map(|(t, c)| ObjectId::Column {
                table: t.clone(),
                column: c.clone(),
            }),
        ObjectId::Trigger { table, .. } | ObjectId::Policy { table, .. } => Some(relation(table)),
        other => other.owner(),
    }
}

pub(crate) fn compare<'a>(
    source: &'a Catalog,
    target: &Catalog,
    renames: &Renames,
) -> Comparison<'a> {
    let mut notes = Vec::new();
    // Renames rewrite a copy of the source; without them the source is used as it is (a copy costs more than the
    // comparison).
    let (source, rename_stmts) = if renames.is_empty() {
        (std::borrow::Cow::Borrowed(source), Vec::new())
    } else {
        let (renamed, stmts) = apply_renames(source, target, renames, &mut notes);
        (std::borrow::Cow::Owned(renamed), stmts)
    };
    let mut changes: BTreeMap<ObjectId, Change> = BTreeMap::new();
    let ctx = Ctx {
        src: &source,
        dst: target,
    };

    // Extensions are created, never dropped (their objects may hold data nobody declared).
    for (name, e) in &target.extensions {
        match source.extensions.get(name) {
            None => {
                changes.insert(ObjectId::Extension { name: name.clone() }, Change::Create);
            }
            Some(s) if s.version != e.version => notes.push(format!(
                "extension {} is at version {} in the source and {} in the target: upgrade it with ALTER EXTENSION … UPDATE",
                quote_ident(name),
                s.version,
                e.version
            )),
            Some(_) => {}
        }
    }
    for name in source.extensions.keys() {
        if !target.extensions.contains_key(name) {
            notes.push(format!(
                "extension {} is installed in the source only: left alone (extensions are never dropped)",
                quote_ident(name)
            ));
        }
    }

    let src_ids: BTreeSet<ObjectId> = source
        .object_ids()
        .into_iter()
        .filter(|id| !matches!(id, ObjectId::Extension { .. }))
        .collect();
    let dst_ids: BTreeSet<ObjectId> = target
        .object_ids()
        .into_iter()
        .filter(|id| !matches!(id, ObjectId::Extension { .. }))
        .collect();

    // Tables that gain or lose a parent: an attached table must have the parent's columns first; a detached one
    // keeps copies of what it inherited, which become its own.
    let link_tables = |cat: &Catalog| -> BTreeMap<QName, Vec<QName>> {
        cat.tables
            .iter()
            .map(|(n, t)| {
                let mut parents: Vec<QName> = t.inherits.clone();
                parents.extend(t.partition_of.iter().map(|(p, _)| p.clone()));
                (n.clone(), parents)
            })
            .collect()
    };
    let (src_links, dst_links) = (link_tables(&source), link_tables(target));
    let attaching: BTreeSet<QName> = dst_links
        .iter()
        .filter(|(n, ps)| {
            src_links
                .get(*n)
                .is_some_and(|old| ps.iter().any(|p| !old.contains(p)))
        })
        .map(|(n, _)| n.clone())
        .collect();
    let detaching: BTreeSet<QName> = src_links
        .iter()
        .filter(|(n, ps)| {
            dst_links
                .get(*n)
                .is_some_and(|new| ps.iter().any(|p| !new.contains(p)))
        })
        .map(|(n, _)| n.clone())
        .collect();
    let table_of = |id: &ObjectId, cat: &Catalog| -> Option<QName> {
        match id {
            ObjectId::Column { table, .. }
            | ObjectId::Constraint { table, .. }
            | ObjectId::Trigger { table, .. } => Some(table.clone()),
            ObjectId::Index { name } => cat.indexes.get(name).map(|i| i.table.clone()),
            _ => None,
        }
    };

    for id in dst_ids.difference(&src_ids) {
        if target.external.contains(id) {
            continue;
        }
        if target.is_inherited(id)
            && !(matches!(id, ObjectId::Column { .. })
                && table_of(id, target).is_some_and(|t| attaching.contains(&t)))
        {
            continue;
        }
        changes.insert(id.clone(), Change::Create);
    }
    for id in src_ids.difference(&dst_ids) {
        if source.external.contains(id) {
            continue;
        }
        if source.is_inherited(id) && !table_of(id, &source).is_some_and(|t| detaching.contains(&t))
        {
            continue;
        }
        changes.insert(id.clone(), Change::Drop { implicit: false });
    }
    for id in src_ids.intersection(&dst_ids) {
        if source.external.contains(id) || target.external.contains(id) {
            continue;
        }
        let (si, di) = (source.is_inherited(id), target.is_inherited(id));
        if si && di {
            continue;
        }
        if let Some(change) = ctx.compare(id, si || di) {
            changes.insert(id.clone(), change);
        }
    }

    mark_implicit(&source, &mut changes);
    cascade(&ctx, &mut changes);
    mark_implicit(&source, &mut changes);
    // What an unmodelled object uses stays: dropping it would fail (or take the unmodelled object along).
    for (id, users) in &source.used_by_unmodeled {
        match changes.get(id) {
            Some(Change::Drop { .. }) => {
                changes.remove(id);
                notes.push(format!(
                    "{id} is kept: {} (not modelled) depends on it",
                    users.join(", ")
                ));
            }
            Some(Change::Replace { .. } | Change::Rebuild { .. }) => notes.push(format!(
                "{id} must be re-created but {} (not modelled) depends on it: the migration will fail until that \
                 is dropped first",
                users.join(", ")
            )),
            _ => {}
        }
    }
    Comparison {
        source,
        renames: rename_stmts,
        changes,
        notes,
    }
}

struct Ctx<'a> {
    src: &'a Catalog,
    dst: &'a Catalog,
}

fn comment_stmt(target: &str, comment: &Option<String>) -> AlterStmt {
    AlterStmt::new(render::comment(target, comment))
}

impl Ctx<'_> {
    /// `None`: equal. `inherited`: one side's copy is managed by a parent, so only a definition that differs counts.
    fn compare(&self, id: &ObjectId, inherited: bool) -> Option<Change> {
        let (s, d) = (self.src, self.dst);
        let mut stmts: Vec<AlterStmt> = Vec::new();
        let mut blocking = false;
        match id {
            ObjectId::Schema { name } => {
                let (a, b) = (s.schemas.get(name)?, d.schemas.get(name)?);
                if a.comment != b.comment {
                    stmts.push(comment_stmt(
                        &format!("SCHEMA {}", quote_ident(name)),
                        &b.comment,
                    ));
                }
            }
            ObjectId::Extension { .. } => {}
            ObjectId::Type { name } => {
                let (a, b) = (s.types.get(name)?, d.types.get(name)?);
                match self.compare_type(name, &a.kind, &b.kind) {
                    TypeChange::Same => {}
                    TypeChange::Alter(more) => stmts.extend(more),
                    TypeChange::Rebuild(reason) => return Some(Change::Rebuild { reason }),
                }
                if a.comment != b.comment {
                    let word = if matches!(b.kind, TypeKind::Domain { .. }) {
                        "DOMAIN"
                    } else {
                        "TYPE"
                    };
                    stmts.push(comment_stmt(&format!("{word} {name}"), &b.comment));
                }
            }
            ObjectId::Sequence { name } => {
                let (a, b) = (s.sequences.get(name)?, d.sequences.get(name)?);
                let clauses = render::sequence_option_changes(&a.options, &b.options);
                // The current value must stay within the new bounds.
                if b.options.min > a.options.min {
                    stmts.push(AlterStmt::new(format!(
                        "SELECT pg_catalog.setval({}, GREATEST(last_value, {}), is_called) FROM {name};",
                        quote_literal(&name.sql()),
                        b.options.min
                    )));
                }
                if b.options.max < a.options.max {
                    stmts.push(AlterStmt::new(format!(
                        "SELECT pg_catalog.setval({}, LEAST(last_value, {}), is_called) FROM {name};",
                        quote_literal(&name.sql()),
                        b.options.max
                    )));
                }
                if !clauses.is_empty() {
                    stmts.push(AlterStmt::new(format!(
                        "ALTER SEQUENCE {name} {};",
                        clauses.join(" ")
                    )));
                }
                if a.unlogged != b.unlogged {
                    stmts.push(AlterStmt::new(format!(
                        "ALTER SEQUENCE {name} SET {};",
                        if b.unlogged { "UNLOGGED" } else { "LOGGED" }
                    )));
                }
                if a.comment != b.comment {
                    stmts.push(comment_stmt(&format!("SEQUENCE {name}"), &b.comment));
                }
            }
            ObjectId::SequenceOwner { name } => {
                let (a, b) = (s.sequences.get(name)?, d.sequences.get(name)?);
                if a.owned_by != b.owned_by {
                    return Some(Change::Replace {
                        implicit: false,
                        reason: None,
                    });
                }
            }
            ObjectId::Table { name } => {
                let (a, b) = (s.tables.get(name)?, d.tables.get(name)?);
                if a.kind != b.kind || a.partition_key != b.partition_key {
                    return Some(Change::Replace {
                        implicit: false,
                        reason: Some(if a.kind != b.kind {
                            "a table cannot be turned into a partitioned table (or back) in place"
                                .into()
                        } else {
                            "a partition key cannot be changed in place".into()
                        }),
                    });
                }
                stmts.extend(table_alters(name, a, b));
                // REPLICA IDENTITY USING INDEX goes with the index when the index is (re)created.
                if b.replica_identity == 'i'
                    && (a.replica_identity, &a.replica_index)
                        != (b.replica_identity, &b.replica_index)
                    && let Some(ix) = &b.replica_index
                {
                    let q = QName::new(&name.schema, ix);
                    let same = match (s.indexes.get(&q), d.indexes.get(&q)) {
                        (Some(x), Some(y)) => x.definition == y.definition,
                        _ => false,
                    };
                    if same {
                        stmts.push(AlterStmt::new(render::replica_identity(name, b)));
                    }
                }
            }
            ObjectId::PartitionOf { table } => {
                let (a, b) = (
                    s.tables.get(table)?.partition_of.as_ref()?,
                    d.tables.get(table)?.partition_of.as_ref()?,
                );
                if a != b {
                    return Some(Change::Replace {
                        implicit: false,
                        reason: None,
                    });
                }
            }
            ObjectId::Inherits { .. } => {}
            ObjectId::Column { table, column } => {
                let (a, b) = (s.column(table, column)?, d.column(table, column)?);
                if inherited {
                    return None;
                }
                match self.column_alters(table, a, b) {
                    ColumnChange::Replace(reason) => {
                        return Some(Change::Replace {
                            implicit: false,
                            reason: Some(reason),
                        });
                    }
                    ColumnChange::Alter(more, block) => {
                        stmts.extend(more);
                        blocking = block;
                    }
                }
            }
            ObjectId::Default { table, column } => {
                let (a, b) = (s.column(table, column)?, d.column(table, column)?);
                if a.default != b.default {
                    stmts.push(AlterStmt::new(render::set_default(table, column, b)));
                }
            }
            ObjectId::Constraint { table, name } => {
                let key = (table.clone(), name.clone());
                let (a, b) = (s.constraints.get(&key)?, d.constraints.get(&key)?);
                if a.definition != b.definition || (a.validated && !b.validated) {
                    return Some(Change::Replace {
                        implicit: false,
                        reason: None,
                    });
                }
                if inherited {
                    return None;
                }
                if !a.validated && b.validated {
                    stmts.push(
                        AlterStmt::new(format!(
                            "ALTER TABLE {table} VALIDATE CONSTRAINT {};",
                            quote_ident(name)
                        ))
                        .hazard(
                            crate::plan::HazardKind::Scan,
                            "validating reads the whole table (under SHARE UPDATE EXCLUSIVE)",
                        ),
                    );
                }
                if a.comment != b.comment {
                    stmts.push(comment_stmt(
                        &format!("CONSTRAINT {} ON {table}", quote_ident(name)),
                        &b.comment,
                    ));
                }
            }
            ObjectId::Index { name } => {
                let (a, b) = (s.indexes.get(name)?, d.indexes.get(name)?);
                if a.definition != b.definition || a.table != b.table {
                    return Some(Change::Replace {
                        implicit: false,
                        reason: None,
                    });
                }
                if inherited {
                    return None;
                }
                if a.comment != b.comment {
                    stmts.push(comment_stmt(&format!("INDEX {name}"), &b.comment));
                }
            }
            ObjectId::View { name } => {
                let (a, b) = (s.views.get(name)?, d.views.get(name)?);
                if a.kind != b.kind {
                    return Some(Change::Replace {
                        implicit: false,
                        reason: None,
                    });
                }
                if a.definition != b.definition {
                    // CREATE OR REPLACE VIEW keeps dependents when the old columns are a prefix of the new ones.
                    let prefix = a.columns.len() <= b.columns.len()
                        && a.columns.iter().zip(&b.columns).all(|(x, y)| x == y);
                    if b.kind == ViewKind::Materialized || !prefix {
                        return Some(Change::Replace {
                            implicit: false,
                            reason: if prefix {
                                None
                            } else {
                                Some("its columns change".into())
                            },
                        });
                    }
                    stmts.push(AlterStmt::new(render::create_view(name, b, true)));
                } else if a.options != b.options {
                    stmts.extend(
                        render::view_option_changes(name, a, b)
                            .into_iter()
                            .map(AlterStmt::new),
                    );
                }
                if a.comment != b.comment {
                    let word = if b.kind == ViewKind::Materialized {
                        "MATERIALIZED VIEW"
                    } else {
                        "VIEW"
                    };
                    stmts.push(comment_stmt(&format!("{word} {name}"), &b.comment));
                }
                let cols: BTreeSet<&String> = a
                    .column_comments
                    .keys()
                    .chain(b.column_comments.keys())
                    .collect();
                for c in cols {
                    let (x, y) = (a.column_comments.get(c), b.column_comments.get(c));
                    if x != y {
                        stmts.push(comment_stmt(
                            &format!("COLUMN {name}.{}", quote_ident(c)),
                            &y.cloned(),
                        ));
                    }
                }
            }
            ObjectId::Function { name, args } => {
                let key = (name.clone(), args.clone());
                let (a, b) = (s.functions.get(&key)?, d.functions.get(&key)?);
                if a.definition != b.definition {
                    if a.kind != b.kind || a.result != b.result || a.arguments != b.arguments {
                        return Some(Change::Replace {
                            implicit: false,
                            reason: Some(
                                "its result type, kind or parameters change (CREATE OR REPLACE cannot)".into(),
                            ),
                        });
                    }
                    stmts.push(AlterStmt::new(format!("{};", b.definition.trim_end())));
                }
                if a.comment != b.comment {
                    let word = if b.kind == 'p' {
                        "PROCEDURE"
                    } else {
                        "FUNCTION"
                    };
                    stmts.push(comment_stmt(&format!("{word} {name}({args})"), &b.comment));
                }
            }
            ObjectId::Trigger { table, name } => {
                let key = (table.clone(), name.clone());
                let (a, b) = (s.triggers.get(&key)?, d.triggers.get(&key)?);
                if a.definition != b.definition {
                    return Some(Change::Replace {
                        implicit: false,
                        reason: None,
                    });
                }
                if inherited {
                    return None;
                }
                if a.enabled != b.enabled {
                    stmts.push(AlterStmt::new(render::trigger_enabled(
                        table, name, b.enabled,
                    )));
                }
                if a.comment != b.comment {
                    stmts.push(comment_stmt(
                        &format!("TRIGGER {} ON {table}", quote_ident(name)),
                        &b.comment,
                    ));
                }
            }
            ObjectId::Policy { table, name } => {
                let key = (table.clone(), name.clone());
                let (a, b) = (s.policies.get(&key)?, d.policies.get(&key)?);
                if (a.permissive, a.command, &a.roles, &a.using, &a.check)
                    != (b.permissive, b.command, &b.roles, &b.using, &b.check)
                {
                    return Some(Change::Replace {
                        implicit: false,
                        reason: None,
                    });
                }
                if a.comment != b.comment {
                    stmts.push(comment_stmt(
                        &format!("POLICY {} ON {table}", quote_ident(name)),
                        &b.comment,
                    ));
                }
            }
        }
        if stmts.is_empty() {
            None
        } else {
            Some(Change::Alter { stmts, blocking })
        }
    }

    fn compare_type(&self, name: &QName, a: &TypeKind, b: &TypeKind) -> TypeChange {
        match (a, b) {
            (TypeKind::Enum { labels: x }, TypeKind::Enum { labels: y }) => {
                if x == y {
                    return TypeChange::Same;
                }
                // Labels can be added in place anywhere, as long as the old ones keep their order.
                let kept: Vec<&String> = y.iter().filter(|l| x.contains(l)).collect();
                if kept.len() != x.len() || kept.iter().zip(x).any(|(k, o)| *k != o) {
                    let removed: Vec<&String> = x.iter().filter(|l| !y.contains(l)).collect();
                    return TypeChange::Rebuild(if removed.is_empty() {
                        "its values are reordered".into()
                    } else {
                        format!(
                            "values {} are removed",
                            removed
                                .iter()
                                .map(|l| quote_literal(l))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    });
                }
                let mut stmts = Vec::new();
                for (i, label) in y.iter().enumerate() {
                    if x.contains(label) {
                        continue;
                    }
                    // Place it after the label before it in the target (or before the first one).
                    let place = match i.checked_sub(1).and_then(|p| y.get(p)) {
                        Some(prev) => format!(" AFTER {}", quote_literal(prev)),
                        None => match y.get(1) {
                            Some(next) => format!(" BEFORE {}", quote_literal(next)),
                            None => String::new(),
                        },
                    };
                    let mut st = AlterStmt::new(format!(
                        "ALTER TYPE {name} ADD VALUE {}{place};",
                        quote_literal(label)
                    ));
                    st.enum_value = true;
                    stmts.push(st);
                }
                TypeChange::Alter(stmts)
            }
            (
                TypeKind::Domain {
                    base: b1,
                    collation: c1,
                    default: d1,
                    not_null: n1,
                    constraints: k1,
                },
                TypeKind::Domain {
                    base: b2,
                    collation: c2,
                    default: d2,
                    not_null: n2,
                    constraints: k2,
                },
            ) => {
                if b1 != b2 || c1 != c2 {
                    return TypeChange::Rebuild("its base type or collation changes".into());
                }
                let mut stmts = Vec::new();
                if d1 != d2 {
                    stmts.push(AlterStmt::new(match d2 {
                        Some(e) => format!("ALTER DOMAIN {name} SET DEFAULT {e};"),
                        None => format!("ALTER DOMAIN {name} DROP DEFAULT;"),
                    }));
                }
                if n1 != n2 {
                    stmts.push(AlterStmt::new(format!(
                        "ALTER DOMAIN {name} {} NOT NULL;",
                        if *n2 { "SET" } else { "DROP" }
                    )));
                }
                for (cname, c) in k1 {
                    match k2.get(cname) {
                        Some(t)
                            if t.definition == c.definition && (t.validated || !c.validated) =>
                        {
                            if t.validated && !c.validated {
                                stmts.push(AlterStmt::new(format!(
                                    "ALTER DOMAIN {name} VALIDATE CONSTRAINT {};",
                                    quote_ident(cname)
                                )));
                            }
                        }
                        _ => stmts.push(AlterStmt::new(format!(
                            "ALTER DOMAIN {name} DROP CONSTRAINT {};",
                            quote_ident(cname)
                        ))),
                    }
                }
                for (cname, t) in k2 {
                    let keep = k1.get(cname).is_some_and(|c| {
                        c.definition == t.definition && (t.validated || !c.validated)
                    });
                    if !keep {
                        stmts.push(AlterStmt::new(format!(
                            "ALTER DOMAIN {name} ADD CONSTRAINT {} {}{};",
                            quote_ident(cname),
                            t.definition,
                            if t.validated { "" } else { " NOT VALID" }
                        )));
                    }
                }
                TypeChange::Alter(stmts)
            }
            (TypeKind::Composite { attributes: x }, TypeKind::Composite { attributes: y }) => {
                if x == y {
                    return TypeChange::Same;
                }
                if self.type_used_by_columns(name) {
                    return TypeChange::Rebuild("its attributes change and columns use it".into());
                }
                let mut stmts = Vec::new();
                for a in x {
                    match y.iter().find(|b| b.name == a.name) {
                        None => stmts.push(AlterStmt::new(format!(
                            "ALTER TYPE {name} DROP ATTRIBUTE {};",
                            quote_ident(&a.name)
                        ))),
                        Some(b) if b != a => stmts.push(AlterStmt::new(format!(
                            "ALTER TYPE {name} ALTER ATTRIBUTE {} TYPE {}{};",
                            quote_ident(&b.name),
                            b.type_name,
                            b.collation
                                .as_ref()
                                .map(|c| format!(" COLLATE {c}"))
                                .unwrap_or_default()
                        ))),
                        Some(_) => {}
                    }
                }
                for b in y {
                    if !x.iter().any(|a| a.name == b.name) {
                        stmts.push(AlterStmt::new(format!(
                            "ALTER TYPE {name} ADD ATTRIBUTE {} {}{};",
                            quote_ident(&b.name),
                            b.type_name,
                            b.collation
                                .as_ref()
                                .map(|c| format!(" COLLATE {c}"))
                                .unwrap_or_default()
                        )));
                    }
                }
                TypeChange::Alter(stmts)
            }
            (a, b) if a == b => TypeChange::Same,
            (a, b) if a.word() == b.word() => {
                TypeChange::Rebuild(format!("a {} type cannot be altered in place", b.word()))
            }
            (a, b) => TypeChange::Rebuild(format!("it changes from {} to {}", a.word(), b.word())),
        }
    }

    fn type_used_by_columns(&self, name: &QName) -> bool {
        let id = ObjectId::Type { name: name.clone() };
        self.src
            .depends
            .iter()
            .any(|(dep, r)| r == &id && matches!(dep, ObjectId::Column { .. }))
    }

    fn column_alters(&self, table: &QName, a: &Column, b: &Column) -> ColumnChange {
        let mut stmts = Vec::new();
        let mut blocking = false;
        let col = quote_ident(&b.name);
        let v = self.dst.server_version_num;
        if a.generated_virtual != b.generated_virtual
            || (a.generated.is_none() && b.generated.is_some())
        {
            return ColumnChange::Replace("it becomes a generated column".into());
        }
        match (&a.generated, &b.generated) {
            (Some(x), Some(y)) if x != y => {
                if v >= 170000 && !b.generated_virtual {
                    stmts.push(
                        AlterStmt::new(format!(
                            "ALTER TABLE {table} ALTER COLUMN {col} SET EXPRESSION AS ({y});"
                        ))
                        .hazard(crate::plan::HazardKind::Rewrite, "recomputes every row"),
                    );
                    blocking = true;
                } else {
                    return ColumnChange::Replace("its generation expression changes".into());
                }
            }
            (Some(_), None) => stmts.push(AlterStmt::new(format!(
                "ALTER TABLE {table} ALTER COLUMN {col} DROP EXPRESSION;"
            ))),
            _ => {}
        }
        if a.type_name != b.type_name || a.collation != b.collation {
            let via_text =
                self.is_enum(self.src, &a.type_name) || self.is_enum(self.dst, &b.type_name);
            let mut st = AlterStmt::new(render::set_type(table, b, via_text)).hazard(
                crate::plan::HazardKind::Rewrite,
                "may rewrite the table and its indexes under ACCESS EXCLUSIVE",
            );
            if a.type_name != b.type_name && !widening(&a.type_name, &b.type_name) {
                st = st.lossy(format!(
                    "converts column {table}.{col} from {} to {}: values may not convert or lose precision",
                    a.type_name, b.type_name
                ));
            }
            stmts.push(st);
            blocking = true;
        }
        match (&a.identity, &b.identity) {
            (None, Some(i)) => {
                stmts.push(AlterStmt::new(format!(
                    "ALTER TABLE {table} ALTER COLUMN {col} ADD {};",
                    render::identity_clause(table, &b.name, i)
                )));
                stmts.push(AlterStmt::new(render::setval_identity(table, &b.name)));
            }
            (Some(_), None) => stmts.push(AlterStmt::new(format!(
                "ALTER TABLE {table} ALTER COLUMN {col} DROP IDENTITY;"
            ))),
            (Some(x), Some(y)) => {
                let mut parts = Vec::new();
                if x.always != y.always {
                    parts.push(format!(
                        "SET GENERATED {}",
                        if y.always { "ALWAYS" } else { "BY DEFAULT" }
                    ));
                }
                // The sequence's type follows the column's.
                let mut xo = x.options.clone();
                xo.data_type = y.options.data_type.clone();
                if a.type_name != b.type_name {
                    // A type change resets the bounds that were the old type's defaults.
                    xo.min = y.options.min;
                    xo.max = y.options.max;
                }
                parts.extend(
                    render::sequence_option_changes(&xo, &y.options)
                        .into_iter()
                        .filter(|c| !c.starts_with("AS "))
                        .map(|c| format!("SET {c}")),
                );
                if !parts.is_empty() {
                    stmts.push(AlterStmt::new(format!(
                        "ALTER TABLE {table} ALTER COLUMN {col} {};",
                        parts.join(" ")
                    )));
                }
            }
            (None, None) => {}
        }
        if a.not_null != b.not_null {
            stmts.push(if b.not_null {
                AlterStmt::new(format!(
                    "ALTER TABLE {table} ALTER COLUMN {col} SET NOT NULL;"
                ))
                .hazard(
                    crate::plan::HazardKind::Scan,
                    "scans the table under ACCESS EXCLUSIVE; fails if a row holds NULL",
                )
            } else {
                AlterStmt::new(format!(
                    "ALTER TABLE {table} ALTER COLUMN {col} DROP NOT NULL;"
                ))
            });
        }
        if a.comment != b.comment {
            stmts.push(comment_stmt(&format!("COLUMN {table}.{col}"), &b.comment));
        }
        ColumnChange::Alter(stmts, blocking)
    }

    fn is_enum(&self, cat: &Catalog, type_name: &str) -> bool {
        let base = type_name.trim_end_matches("[]");
        cat.types
            .iter()
            .any(|(n, t)| matches!(t.kind, TypeKind::Enum { .. }) && n.sql() == base)
    }
}

enum TypeChange {
    Same,
    Alter(Vec<AlterStmt>),
    Rebuild(String),
}

enum ColumnChange {
    Replace(String),
    Alter(Vec<AlterStmt>, bool),
}

/// Type changes that never lose data (so are not gated).
fn widening(from: &str, to: &str) -> bool {
    let int_rank = |t: &str| match t {
        "smallint" => Some(1),
        "integer" => Some(2),
        "bigint" => Some(3),
        _ => None,
    };
    if let (Some(a), Some(b)) = (int_rank(from), int_rank(to)) {
        return a <= b;
    }
    if int_rank(from).is_some() && (to == "numeric" || to == "text") {
        return true;
    }
    let varchar = |t: &str| -> Option<Option<u32>> {
        if t == "character varying" || t == "text" {
            return Some(None);
        }
        t.strip_prefix("character varying(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|n| n.parse().ok())
            .map(Some)
    };
    let charn = |t: &str| -> Option<u32> {
        t.strip_prefix("character(")
            .and_then(|r| r.strip_suffix(')'))
            .and_then(|n| n.parse().ok())
    };
    match (varchar(from), varchar(to)) {
        (Some(_), Some(None)) => return true,
        (Some(Some(a)), Some(Some(b))) => return a <= b,
        _ => {}
    }
    if let (Some(_), Some(None)) = (charn(from), varchar(to)) {
        return true;
    }
    let numeric = |t: &str| -> Option<Option<(u32, u32)>> {
        if t == "numeric" {
            return Some(None);
        }
        let inner = t.strip_prefix("numeric(")?.strip_suffix(')')?;
        let (p, s) = inner.split_once(',')?;
        Some(Some((p.trim().parse().ok()?, s.trim().parse().ok()?)))
    };
    match (numeric(from), numeric(to)) {
        (Some(_), Some(None)) => return true,
        (Some(Some((p1, s1))), Some(Some((p2, s2)))) => return s2 >= s1 && p2 - s2 >= p1 - s1,
        _ => {}
    }
    matches!(
        (from, to),
        ("real", "double precision")
            | ("timestamp without time zone", "timestamp with time zone")
            | ("json", "jsonb")
            | ("jsonb", "json")
    ) || (to == "text" && from != "bytea")
}

fn table_alters(name: &QName, a: &Table, b: &Table) -> Vec<AlterStmt> {
    let mut stmts = Vec::new();
    if a.unlogged != b.unlogged {
        stmts.push(
            AlterStmt::new(format!(
                "ALTER TABLE {name} SET {};",
                if b.unlogged { "UNLOGGED" } else { "LOGGED" }
            ))
            .hazard(crate::plan::HazardKind::Rewrite, "rewrites the table"),
        );
    }
    if a.rls_enabled != b.rls_enabled {
        stmts.push(AlterStmt::new(format!(
            "ALTER TABLE {name} {} ROW LEVEL SECURITY;",
            if b.rls_enabled { "ENABLE" } else { "DISABLE" }
        )));
    }
    if a.rls_forced != b.rls_forced {
        stmts.push(AlterStmt::new(format!(
            "ALTER TABLE {name} {} ROW LEVEL SECURITY;",
            if b.rls_forced { "FORCE" } else { "NO FORCE" }
        )));
    }
    if a.options != b.options {
        stmts.extend(
            render::option_changes(&format!("ALTER TABLE {name}"), &a.options, &b.options)
                .into_iter()
                .map(AlterStmt::new),
        );
    }
    if (a.replica_identity, &a.replica_index) != (b.replica_identity, &b.replica_index)
        && b.replica_identity != 'i'
    {
        stmts.push(AlterStmt::new(render::replica_identity(name, b)));
    }
    if a.comment != b.comment {
        stmts.push(comment_stmt(&format!("TABLE {name}"), &b.comment));
    }
    stmts
}

/// Apply declared renames to a copy of the source (so the comparison sees one object), and return the statements.
fn apply_renames(
    source: &Catalog,
    target: &Catalog,
    renames: &Renames,
    notes: &mut Vec<String>,
) -> (Catalog, Vec<(ObjectId, String)>) {
    let mut cat = source.clone();
    let mut stmts = Vec::new();
    for (old, new) in &renames.tables {
        let applicable = cat.tables.contains_key(old)
            && !cat.tables.contains_key(new)
            && target.tables.contains_key(new)
            && !target.tables.contains_key(old);
        if !applicable {
            if !(target.tables.contains_key(old)
                || (cat.tables.contains_key(new) && !cat.tables.contains_key(old)))
            {
                notes.push(format!(
                    "renamed-from {old} for table {new}: there is no table {old} to rename in the source; ignored"
                ));
            }
            continue;
        }
        let mut sql = Vec::new();
        if old.schema != new.schema {
            sql.push(format!(
                "ALTER TABLE {old} SET SCHEMA {};",
                quote_ident(&new.schema)
            ));
        }
        if old.name != new.name {
            sql.push(format!(
                "ALTER TABLE {} RENAME TO {};",
                QName::new(&new.schema, &old.name),
                quote_ident(&new.name)
            ));
        }
        stmts.push((ObjectId::Table { name: new.clone() }, sql.join("\n")));
        rename_table(&mut cat, old, new);
        rename_companions(&mut cat, target, new, &mut stmts);
        // A serial column's sequence follows when the target has it under the new table's name.
        let owned: Vec<(QName, String)> = cat
            .sequences
            .iter()
            .filter_map(|(n, s)| {
                s.owned_by
                    .as_ref()
                    .filter(|(t, _)| t == new)
                    .map(|(_, c)| (n.clone(), c.clone()))
            })
            .collect();
        for (seq, column) in owned {
            let wanted = target.sequences.iter().find(|(n, s)| {
                s.owned_by.as_ref() == Some(&(new.clone(), column.clone())) && **n != seq
            });
            if let Some((wanted, _)) = wanted
                && !cat.sequences.contains_key(wanted)
                && wanted.schema == seq.schema
            {
                let wanted = wanted.clone();
                stmts.push((
                    ObjectId::Sequence {
                        name: wanted.clone(),
                    },
                    format!(
                        "ALTER SEQUENCE {seq} RENAME TO {};",
                        quote_ident(&wanted.name)
                    ),
                ));
                rename_relation_everywhere(&mut cat, &seq, &wanted, |c, o, n| {
                    if let Some(s) = c.sequences.remove(o) {
                        c.sequences.insert(n.clone(), s);
                    }
                });
            }
        }
    }
    for (table, old, new) in &renames.columns {
        let has = |c: &Catalog, col: &str| c.column(table, col).is_some();
        let applicable = has(&cat, old) && !has(&cat, new) && has(target, new) && !has(target, old);
        if !applicable {
            if !has(&cat, new) {
                notes.push(format!(
                    "renamed-from {} for column {table}.{}: there is no such column to rename in the source; ignored",
                    quote_ident(old),
                    quote_ident(new)
                ));
            }
            continue;
        }
        stmts.push((
            ObjectId::Column {
                table: table.clone(),
                column: new.clone(),
            },
            format!(
                "ALTER TABLE {table} RENAME COLUMN {} TO {};",
                quote_ident(old),
                quote_ident(new)
            ),
        ));
        rename_column(&mut cat, table, old, new);
    }
    (cat, stmts)
}

/// A renamed table's constraints and indexes keep their old names (`customer_pkey`): rename those whose
/// definition the target has under another name, rather than drop and re-create them.
fn rename_companions(
    cat: &mut Catalog,
    target: &Catalog,
    table: &QName,
    stmts: &mut Vec<(ObjectId, String)>,
) {
    let keys: Vec<(QName, String)> = cat
        .constraints
        .keys()
        .filter(|(t, n)| t == table && !target.constraints.contains_key(&(t.clone(), n.clone())))
        .cloned()
        .collect();
    for key in keys {
        let Some(c) = cat.constraints.get(&key).cloned() else {
            continue;
        };
        let found = target
            .constraints
            .iter()
            .find(|((t, n), d)| {
                t == table
                    && !cat.constraints.contains_key(&(t.clone(), n.clone()))
                    && d.kind == c.kind
                    && d.definition == c.definition
            })
            .map(|((_, n), _)| n.clone());
        let Some(new_name) = found else {
            continue;
        };
        stmts.push((
            ObjectId::Constraint {
                table: table.clone(),
                name: new_name.clone(),
            },
            format!(
                "ALTER TABLE {table} RENAME CONSTRAINT {} TO {};",
                quote_ident(&key.1),
                quote_ident(&new_name)
            ),
        ));
        cat.constraints.remove(&key);
        cat.constraints.insert((table.clone(), new_name.clone()), c);
        let old_id = ObjectId::Constraint {
            table: table.clone(),
            name: key.1.clone(),
        };
        let new_id = ObjectId::Constraint {
            table: table.clone(),
            name: new_name,
        };
        map_ids(cat, |id| {
            if *id == old_id {
                new_id.clone()
            } else {
                id.clone()
            }
        });
    }
    let without_name =
        |def: &str, name: &str| def.replacen(&format!(" {} ON ", quote_ident(name)), " ON ", 1);
    let names: Vec<QName> = cat
        .indexes
        .iter()
        .filter(|(n, i)| &i.table == table && !target.indexes.contains_key(*n))
        .map(|(n, _)| n.clone())
        .collect();
    for old in names {
        let Some(ix) = cat.indexes.get(&old).cloned() else {
            continue;
        };
        let def = without_name(&ix.definition, &old.name);
        let found = target
            .indexes
            .iter()
            .find(|(n, d)| {
                &d.table == table
                    && !cat.indexes.contains_key(*n)
                    && without_name(&d.definition, &n.name) == def
            })
            .map(|(n, d)| (n.clone(), d.definition.clone()));
        let Some((new, new_def)) = found else {
            continue;
        };
        stmts.push((
            ObjectId::Index { name: new.clone() },
            format!("ALTER INDEX {old} RENAME TO {};", quote_ident(&new.name)),
        ));
        cat.indexes.remove(&old);
        cat.indexes.insert(
            new.clone(),
            Index {
                definition: new_def,
                ..ix
            },
        );
        let (o, n) = (
            ObjectId::Index { name: old.clone() },
            ObjectId::Index { name: new },
        );
        map_ids(cat, |id| if *id == o { n.clone() } else { id.clone() });
    }
}

fn map_ids(cat: &mut Catalog, f: impl Fn(&ObjectId) -> ObjectId) {
    cat.depends = cat.depends.iter().map(|(a, b)| (f(a), f(b))).collect();
    cat.external = cat.external.iter().map(&f).collect();
}

/// Replace `old` by `new` where a definition names it as PostgreSQL prints it (qualified, quoted as needed).
fn substitute(text: &str, old: &str, new: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(pos) = rest.find(old) {
        let before_ok = out
            .chars()
            .last()
            .or_else(|| rest[..pos].chars().last())
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '"' || c == '.'));
        let before_ok = if pos > 0 {
            rest[..pos]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '"' || c == '.'))
        } else {
            before_ok
        };
        let after = &rest[pos + old.len()..];
        let after_ok = after
            .chars()
            .next()
            .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '"'));
        out.push_str(&rest[..pos]);
        out.push_str(if before_ok && after_ok { new } else { old });
        rest = after;
    }
    out.push_str(rest);
    out
}

fn rename_relation_everywhere(
    cat: &mut Catalog,
    old: &QName,
    new: &QName,
    move_entry: impl Fn(&mut Catalog, &QName, &QName),
) {
    move_entry(cat, old, new);
    let (o, n) = (old.sql(), new.sql());
    let sub = |s: &mut String| *s = substitute(s, &o, &n);
    for t in cat.tables.values_mut() {
        for c in &mut t.columns {
            if let Some(d) = c.default.as_mut() {
                sub(d);
            }
            if let Some(g) = c.generated.as_mut() {
                sub(g);
            }
        }
        if let Some((p, bound)) = t.partition_of.as_mut() {
            if p == old {
                *p = new.clone();
            }
            sub(bound);
        }
        for p in &mut t.inherits {
            if p == old {
                *p = new.clone();
            }
        }
    }
    for c in cat.constraints.values_mut() {
        sub(&mut c.definition);
    }
    for i in cat.indexes.values_mut() {
        if &i.table == old {
            i.table = new.clone();
        }
        sub(&mut i.definition);
    }
    for v in cat.views.values_mut() {
        sub(&mut v.definition);
    }
    for t in cat.triggers.values_mut() {
        sub(&mut t.definition);
    }
    for p in cat.policies.values_mut() {
        if let Some(u) = p.using.as_mut() {
            sub(u);
        }
        if let Some(c) = p.check.as_mut() {
            sub(c);
        }
    }
    for s in cat.sequences.values_mut() {
        if let Some((t, _)) = s.owned_by.as_mut()
            && t == old
        {
            *t = new.clone();
        }
    }
    let rn = |q: &QName| if q == old { new.clone() } else { q.clone() };
    map_ids(cat, |id| match id {
        ObjectId::Table { name } => ObjectId::Table { name: rn(name) },
        ObjectId::Sequence { name } => ObjectId::Sequence { name: rn(name) },
        ObjectId::SequenceOwner { name } => ObjectId::SequenceOwner { name: rn(name) },
        ObjectId::PartitionOf { table } => ObjectId::PartitionOf { table: rn(table) },
        ObjectId::Inherits { table, parent } => ObjectId::Inherits {
            table: rn(table),
            parent: rn(parent),
        },
        ObjectId::Column { table, column } => ObjectId::Column {
            table: rn(table),
            column: column.clone(),
        },
        ObjectId::Default { table, column } => ObjectId::Default {
            table: rn(table),
            column: column.clone(),
        },
        ObjectId::Constraint { table, name } => ObjectId::Constraint {
            table: rn(table),
            name: name.clone(),
        },
        ObjectId::Trigger { table, name } => ObjectId::Trigger {
            table: rn(table),
            name: name.clone(),
        },
        ObjectId::Policy { table, name } => ObjectId::Policy {
            table: rn(table),
            name: name.clone(),
        },
        other => other.clone(),
    });
}

fn rename_table(cat: &mut Catalog, old: &QName, new: &QName) {
    rename_relation_everywhere(cat, old, new, |c, o, n| {
        if let Some(t) = c.tables.remove(o) {
            c.tables.insert(n.clone(), t);
        }
        let rekey = |m: &mut BTreeMap<(QName, String), _>| {
            let keys: Vec<(QName, String)> = m.keys().filter(|(t, _)| t == o).cloned().collect();
            keys
        };
        for k in rekey(&mut c.constraints) {
            if let Some(v) = c.constraints.remove(&k) {
                c.constraints.insert((n.clone(), k.1), v);
            }
        }
        let keys: Vec<(QName, String)> =
            c.triggers.keys().filter(|(t, _)| t == o).cloned().collect();
        for k in keys {
            if let Some(v) = c.triggers.remove(&k) {
                c.triggers.insert((n.clone(), k.1), v);
            }
        }
        let keys: Vec<(QName, String)> =
            c.policies.keys().filter(|(t, _)| t == o).cloned().collect();
        for k in keys {
            if let Some(v) = c.policies.remove(&k) {
                c.policies.insert((n.clone(), k.1), v);
            }
        }
    });
}

fn rename_column(cat: &mut Catalog, table: &QName, old: &str, new: &str) {
    if let Some(t) = cat.tables.get_mut(table)
        && let Some(c) = t.columns.iter_mut().find(|c| c.name == old)
    {
        c.name = new.to_string();
    }
    for s in cat.sequences.values_mut() {
        if let Some((t, c)) = s.owned_by.as_mut()
            && t == table
            && c == old
        {
            *c = new.to_string();
        }
    }
    map_ids(cat, |id| match id {
        ObjectId::Column { table: t, column } if t == table && column == old => ObjectId::Column {
            table: t.clone(),
            column: new.to_string(),
        },
        ObjectId::Default { table: t, column } if t == table && column == old => {
            ObjectId::Default {
                table: t.clone(),
                column: new.to_string(),
            }
        }
        other => other.clone(),
    });
}

/// Spread drops and blocking alterations to what depends on them (see the module docs).
fn cascade(ctx: &Ctx<'_>, changes: &mut BTreeMap<ObjectId, Change>) {
    let src = ctx.src;
    if !changes
        .values()
        .any(|c| c.drops() || matches!(c, Change::Alter { blocking: true, .. }))
    {
        return;
    }
    let mut dependents: std::collections::HashMap<&ObjectId, Vec<&ObjectId>> =
        std::collections::HashMap::with_capacity(src.depends.len());
    for (d, r) in &src.depends {
        dependents.entry(r).or_default().push(d);
    }
    // Owned sub-objects are dependents too (an owned sequence of a column, an index of a table).
    let mut owned: Vec<(ObjectId, ObjectId)> = Vec::new();
    for id in src.object_ids() {
        if let Some(owner) = owner_in(src, &id) {
            owned.push((owner, id));
        }
    }
    for (owner, id) in &owned {
        dependents.entry(owner).or_default().push(id);
    }

    // Types rebuilt under surviving columns convert those columns; other dependents are rebuilt.
    let mut queue: VecDeque<ObjectId> = changes
        .iter()
        .filter(|(_, c)| c.drops() || matches!(c, Change::Alter { blocking: true, .. }))
        .map(|(id, _)| id.clone())
        .collect();
    let mut seen: BTreeSet<ObjectId> = queue.iter().cloned().collect();
    while let Some(x) = queue.pop_front() {
        let Some(cx) = changes.get(&x).cloned() else {
            continue;
        };
        let Some(deps) = dependents.get(&x) else {
            continue;
        };
        let mut deps: Vec<ObjectId> = deps.iter().map(|d| (*d).clone()).collect();
        deps.sort();
        deps.dedup();
        for d in deps {
            if d == x {
                continue;
            }
            let existing = changes.get(&d).cloned();
            if existing.as_ref().is_some_and(Change::drops) {
                continue;
            }
            let in_target = ctx.dst.contains(&d) && !ctx.dst.external.contains(&d);
            let external = src.external.contains(&d);
            let owner_dropped = owner_chain_dropped(src, &d, changes);
            let new_change = if owner_dropped {
                // Goes with its owner; re-created if the target has it.
                if in_target && !external {
                    Some(Change::Replace {
                        implicit: true,
                        reason: None,
                    })
                } else {
                    Some(Change::Drop { implicit: true })
                }
            } else {
                match &cx {
                    Change::Rebuild { .. } if matches!(d, ObjectId::Column { .. }) && in_target => {
                        // Converted in place to the new type.
                        Some(convert_column(ctx, &d, existing.as_ref()))
                    }
                    Change::Alter { blocking: true, .. } => {
                        if handled_by_alter_type(&x, &d) {
                            None
                        } else {
                            Some(rebuild(in_target, external, &x))
                        }
                    }
                    _ if cx.drops() => {
                        if matches!(x, ObjectId::Column { .. })
                            && matches!(d, ObjectId::Table { .. })
                        {
                            None
                        } else {
                            Some(rebuild(in_target, external, &x))
                        }
                    }
                    _ => None,
                }
            };
            if let Some(nc) = new_change {
                let cascades = nc.drops() || matches!(nc, Change::Alter { blocking: true, .. });
                changes.insert(d.clone(), nc);
                if cascades && seen.insert(d.clone()) {
                    queue.push_back(d.clone());
                } else if cascades {
                    // Re-examine: its change became more drastic.
                    queue.push_back(d.clone());
                }
            }
        }
    }
    // A rebuilt type without surviving columns is simply dropped and created.
    let rebuilt: Vec<ObjectId> = changes
        .iter()
        .filter(|(_, c)| matches!(c, Change::Rebuild { .. }))
        .map(|(id, _)| id.clone())
        .collect();
    for id in rebuilt {
        let converts = changes.iter().any(|(d, c)| {
            matches!(d, ObjectId::Column { .. })
                && matches!(c, Change::Alter { .. })
                && src.depends.contains(&(d.clone(), id.clone()))
        });
        if !converts && let Some(Change::Rebuild { reason }) = changes.get(&id).cloned() {
            changes.insert(
                id,
                Change::Replace {
                    implicit: false,
                    reason: Some(reason),
                },
            );
        }
    }
}

/// A drop whose owner is dropped too needs no statement of its own.
fn mark_implicit(src: &Catalog, changes: &mut BTreeMap<ObjectId, Change>) {
    let ids: Vec<ObjectId> = changes
        .iter()
        .filter(|(_, c)| {
            matches!(
                c,
                Change::Drop { implicit: false }
                    | Change::Replace {
                        implicit: false,
                        ..
                    }
            )
        })
        .map(|(id, _)| id.clone())
        .collect();
    for id in ids {
        if !owner_chain_dropped(src, &id, changes) {
            continue;
        }
        if let Some(Change::Drop { implicit } | Change::Replace { implicit, .. }) =
            changes.get_mut(&id)
        {
            *implicit = true;
        }
    }
}

fn rebuild(in_target: bool, external: bool, because: &ObjectId) -> Change {
    if in_target && !external {
        Change::Replace {
            implicit: false,
            reason: Some(format!("it depends on {because}, which changes")),
        }
    } else {
        Change::Drop { implicit: false }
    }
}

/// `ALTER COLUMN … TYPE` rebuilds these itself.
fn handled_by_alter_type(column: &ObjectId, dependent: &ObjectId) -> bool {
    match dependent {
        ObjectId::Index { .. } | ObjectId::Constraint { .. } | ObjectId::SequenceOwner { .. } => {
            true
        }
        ObjectId::Table { .. } | ObjectId::PartitionOf { .. } | ObjectId::Inherits { .. } => true,
        ObjectId::Sequence { .. } => true,
        // A default is dropped and set again around the change, so its cast cannot fail.
        ObjectId::Default { .. } => false,
        _ => {
            let _ = column;
            false
        }
    }
}

fn owner_chain_dropped(cat: &Catalog, id: &ObjectId, changes: &BTreeMap<ObjectId, Change>) -> bool {
    // A foreign key to another table that is dropped too is dropped on its own first: two tables that reference
    // each other could not be dropped one after the other otherwise.
    if let ObjectId::Constraint { table, .. } = id {
        let to_other_dropped = cat.depends.range((id.clone(), ObjectId::Schema { name: String::new() })..).take_while(|(d, _)| d == id).any(|(_, r)| {
            matches!(r, ObjectId::Column { table: t, .. } | ObjectId::Table { name: t } if t != table
                && changes.get(&ObjectId::Table { name: t.clone() }).is_some_and(Change::drops))
        });
        if to_other_dropped {
            return false;
        }
    }
    let mut cur = owner_in(cat, id);
    let mut steps = 0;
    while let Some(o) = cur {
        if changes
            .get(&o)
            .is_some_and(|c| matches!(c, Change::Drop { .. } | Change::Replace { .. }))
        {
            return true;
        }
        steps += 1;
        if steps > 8 {
            break;
        }
        cur = owner_in(cat, &o);
    }
    false
}

/// A column whose type is rebuilt: converted through text (merged with its other alterations).
fn convert_column(ctx: &Ctx<'_>, id: &ObjectId, existing: Option<&Change>) -> Change {
    let ObjectId::Column { table, column } = id else {
        return Change::Alter {
            stmts: Vec::new(),
            blocking: false,
        };
    };
    let mut stmts: Vec<AlterStmt> = match existing {
        Some(Change::Alter { stmts, .. }) => stmts.clone(),
        _ => Vec::new(),
    };
    let Some(b) = ctx.dst.column(table, column) else {
        return Change::Alter {
            stmts,
            blocking: true,
        };
    };
    let sql = render::set_type(table, b, true);
    // Replace a plain type change (already there when the type's name changed too) with the text conversion.
    stmts.retain(|s| {
        !s.sql.contains(" TYPE ")
            || !s.sql.starts_with(&format!(
                "ALTER TABLE {table} ALTER COLUMN {} TYPE",
                quote_ident(column)
            ))
    });
    let lossy = ctx.src.column(table, column).and_then(|a| {
        let a_base = a.type_name.trim_end_matches("[]");
        ctx.src
            .types
            .iter()
            .find(|(n, _)| n.sql() == a_base)
            .and_then(
                |(n, t)| match (&t.kind, ctx.dst.types.get(n).map(|t| &t.kind)) {
                    (TypeKind::Enum { labels: x }, Some(TypeKind::Enum { labels: y })) => {
                        let removed: Vec<String> = x
                            .iter()
                            .filter(|l| !y.contains(l))
                            .map(|l| quote_literal(l))
                            .collect();
                        (!removed.is_empty()).then(|| {
                            format!(
                                "rows of {table}.{} holding {} cannot be converted",
                                quote_ident(column),
                                removed.join(", ")
                            )
                        })
                    }
                    _ => None,
                },
            )
    });
    let mut st = AlterStmt::new(sql).hazard(
        crate::plan::HazardKind::Rewrite,
        "rewrites the table under ACCESS EXCLUSIVE",
    );
    if let Some(why) = lossy {
        st = st.lossy(why);
    }
    stmts.insert(0, st);
    Change::Alter {
        stmts,
        blocking: true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widening_types() {
        assert!(widening("integer", "bigint"));
        assert!(!widening("bigint", "integer"));
        assert!(widening("character varying(10)", "character varying(20)"));
        assert!(!widening("character varying(20)", "character varying(10)"));
        assert!(widening("character varying(20)", "text"));
        assert!(widening("numeric(10,2)", "numeric(12,2)"));
        assert!(!widening("numeric(10,2)", "numeric(10,1)"));
        assert!(!widening("text", "integer"));
    }

    #[test]
    fn substitution_respects_identifier_boundaries() {
        assert_eq!(
            substitute(
                "nextval('public.t_id_seq'::regclass)",
                "public.t_id_seq",
                "public.u_id_seq"
            ),
            "nextval('public.u_id_seq'::regclass)"
        );
        assert_eq!(substitute("public.tt", "public.t", "public.u"), "public.tt");
        assert_eq!(substitute("xpublic.t", "public.t", "public.u"), "xpublic.t");
    }
}
