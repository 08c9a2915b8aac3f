//! The typed model of a database's schema, as [`crate::read`] extracts it.
//!
//! Definitions that PostgreSQL can print are kept in its own words (`pg_get_constraintdef`, `pg_get_indexdef`,
//! `pg_get_viewdef`, `pg_get_functiondef`, `pg_get_triggerdef`, `pg_get_expr`, `format_type`), read with an empty
//! `search_path` so that every name in them is schema-qualified: both sides of a diff pass through the same
//! server's normalisation, so equal declarations compare equal whatever their spelling. Object identities
//! ([`ObjectId`]) are names, never OIDs, so two databases can be compared; OIDs are kept only to resolve
//! `pg_depend`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::Serialize;

use crate::ident::{QName, quote_ident};

/// The identity of one modelled object or sub-object: what two catalogs are matched by.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ObjectId {
    /// A schema.
    Schema {
        /// Its name.
        name: String,
    },
    /// An extension.
    Extension {
        /// Its name.
        name: String,
    },
    /// An enum, composite, domain or range type.
    Type {
        /// Its name.
        name: QName,
    },
    /// A sequence (identity sequences belong to their column).
    Sequence {
        /// Its name.
        name: QName,
    },
    /// Which column a sequence is `OWNED BY` (separate from the sequence so that a serial column's sequence can be
    /// created before its table and owned after it).
    SequenceOwner {
        /// The sequence.
        name: QName,
    },
    /// A table (regular or partitioned).
    Table {
        /// Its name.
        name: QName,
    },
    /// A table's membership of a partitioned table (`PARTITION OF … FOR VALUES …`, `ATTACH`/`DETACH PARTITION`).
    PartitionOf {
        /// The partition.
        table: QName,
    },
    /// A table's inheritance from a parent (`INHERITS`, `INHERIT`/`NO INHERIT`).
    Inherits {
        /// The child.
        table: QName,
        /// The parent.
        parent: QName,
    },
    /// A column of a table.
    Column {
        /// Its table.
        table: QName,
        /// The column.
        column: String,
    },
    /// A column's default expression.
    Default {
        /// Its table.
        table: QName,
        /// The column.
        column: String,
    },
    /// A table constraint (primary key, unique, check, foreign key, exclusion).
    Constraint {
        /// Its table.
        table: QName,
        /// The constraint.
        name: String,
    },
    /// An index that does not implement a constraint.
    Index {
        /// Its name (in the table's schema).
        name: QName,
    },
    /// A view or materialized view.
    View {
        /// Its name.
        name: QName,
    },
    /// A function or procedure.
    Function {
        /// Its name.
        name: QName,
        /// `pg_get_function_identity_arguments`.
        args: String,
    },
    /// A trigger.
    Trigger {
        /// Its table.
        table: QName,
        /// The trigger.
        name: String,
    },
    /// A row-level security policy.
    Policy {
        /// Its table.
        table: QName,
        /// The policy.
        name: String,
    },
}

impl ObjectId {
    /// The kind, as a word: `table`, `column`, …
    pub fn kind(&self) -> &'static str {
        match self {
            ObjectId::Schema { .. } => "schema",
            ObjectId::Extension { .. } => "extension",
            ObjectId::Type { .. } => "type",
            ObjectId::Sequence { .. } => "sequence",
            ObjectId::SequenceOwner { .. } => "sequence owner",
            ObjectId::Table { .. } => "table",
            ObjectId::PartitionOf { .. } => "partition",
            ObjectId::Inherits { .. } => "inheritance",
            ObjectId::Column { .. } => "column",
            ObjectId::Default { .. } => "default",
            ObjectId::Constraint { .. } => "constraint",
            ObjectId::Index { .. } => "index",
            ObjectId::View { .. } => "view",
            ObjectId::Function { .. } => "function",
            ObjectId::Trigger { .. } => "trigger",
            ObjectId::Policy { .. } => "policy",
        }
    }

    /// The table, view or type this object belongs to (its "owner"): dropping the owner drops it.
    pub fn owner(&self) -> Option<ObjectId> {
        match self {
            ObjectId::Column { table, .. }
            | ObjectId::Constraint { table, .. }
            | ObjectId::Trigger { table, .. }
            | ObjectId::Policy { table, .. }
            | ObjectId::PartitionOf { table }
            | ObjectId::Inherits { table, .. } => Some(ObjectId::Table {
                name: table.clone(),
            }),
            ObjectId::Default { table, column } => Some(ObjectId::Column {
                table: table.clone(),
                column: column.clone(),
            }),
            ObjectId::SequenceOwner { name } => Some(ObjectId::Sequence { name: name.clone() }),
            _ => None,
        }
    }

    /// The schema the object lives in (`None` for schemas and extensions).
    pub fn schema(&self) -> Option<&str> {
        match self {
            ObjectId::Schema { .. } | ObjectId::Extension { .. } => None,
            ObjectId::Type { name }
            | ObjectId::Sequence { name }
            | ObjectId::SequenceOwner { name }
            | ObjectId::Table { name }
            | ObjectId::Index { name }
            | ObjectId::View { name }
            | ObjectId::Function { name, .. } => Some(&name.schema),
            ObjectId::Column { table, .. }
            | ObjectId::Default { table, .. }
            | ObjectId::Constraint { table, .. }
            | ObjectId::Trigger { table, .. }
            | ObjectId::Policy { table, .. }
            | ObjectId::PartitionOf { table }
            | ObjectId::Inherits { table, .. } => Some(&table.schema),
        }
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ObjectId::Schema { name } | ObjectId::Extension { name } => {
                write!(f, "{} {}", self.kind(), quote_ident(name))
            }
            ObjectId::Type { name }
            | ObjectId::Sequence { name }
            | ObjectId::SequenceOwner { name }
            | ObjectId::Table { name }
            | ObjectId::Index { name }
            | ObjectId::View { name } => write!(f, "{} {name}", self.kind()),
            ObjectId::Function { name, args } => write!(f, "function {name}({args})"),
            ObjectId::PartitionOf { table } => write!(f, "partition {table}"),
            ObjectId::Inherits { table, parent } => {
                write!(f, "inheritance of {table} from {parent}")
            }
            ObjectId::Column { table, column } | ObjectId::Default { table, column } => {
                write!(f, "{} {table}.{}", self.kind(), quote_ident(column))
            }
            ObjectId::Constraint { table, name }
            | ObjectId::Trigger { table, name }
            | ObjectId::Policy { table, name } => {
                write!(f, "{} {} ON {table}", self.kind(), quote_ident(name))
            }
        }
    }
}

/// A database's schema: every modelled object, the dependencies between them, and what is present but not
/// modelled.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Catalog {
    /// `server_version_num`, e.g. `150018`.
    pub server_version_num: i32,
    /// Schemas (system schemas, excluded schemas and extension-owned schemas left out).
    pub schemas: BTreeMap<String, Schema>,
    /// Installed extensions (their member objects are never modelled).
    pub extensions: BTreeMap<String, Extension>,
    /// Enum, composite, domain and range types.
    pub types: BTreeMap<QName, TypeDef>,
    /// Sequences, identity sequences excepted.
    pub sequences: BTreeMap<QName, Sequence>,
    /// Tables and partitioned tables.
    pub tables: BTreeMap<QName, Table>,
    /// Table constraints, by table and name.
    pub constraints: BTreeMap<(QName, String), Constraint>,
    /// Indexes that do not implement a constraint.
    pub indexes: BTreeMap<QName, Index>,
    /// Views and materialized views.
    pub views: BTreeMap<QName, View>,
    /// Functions and procedures, by name and identity arguments.
    pub functions: BTreeMap<(QName, String), Function>,
    /// Triggers, by table and name.
    pub triggers: BTreeMap<(QName, String), Trigger>,
    /// Row-level security policies, by table and name.
    pub policies: BTreeMap<(QName, String), Policy>,
    /// `(dependent, referenced)` pairs: from `pg_depend`, plus the structural ones (a column belongs to its table).
    pub depends: BTreeSet<(ObjectId, ObjectId)>,
    /// Objects present but not modelled: they are reported, never silently ignored.
    pub unmodeled: Vec<Unmodeled>,
    /// Modelled objects that unmodelled ones depend on (an event trigger's function, a cast's function), with the
    /// dependent described: they are never dropped.
    pub used_by_unmodeled: BTreeMap<ObjectId, Vec<String>>,
    /// Objects left to someone else (a package's managed code): never created or altered; dropped only when a change
    /// they depend on requires it (managed code re-creates them after the migrations).
    pub external: BTreeSet<ObjectId>,
}

/// A schema.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Schema {
    /// `COMMENT ON SCHEMA`.
    pub comment: Option<String>,
}

/// An installed extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Extension {
    /// The schema its objects live in.
    pub schema: String,
    /// Installed version.
    pub version: String,
}

/// A user-defined type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TypeDef {
    /// What kind of type, with its definition.
    pub kind: TypeKind,
    /// `COMMENT ON TYPE` / `COMMENT ON DOMAIN`.
    pub comment: Option<String>,
}

/// The definition of a user-defined type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum TypeKind {
    /// `CREATE TYPE … AS ENUM`: labels in sort order.
    Enum {
        /// The labels, in order.
        labels: Vec<String>,
    },
    /// `CREATE TYPE … AS (…)`.
    Composite {
        /// The attributes, in order.
        attributes: Vec<Attribute>,
    },
    /// `CREATE DOMAIN`.
    Domain {
        /// `format_type` of the base type.
        base: String,
        /// A collation other than the base type's.
        collation: Option<String>,
        /// `DEFAULT` expression.
        default: Option<String>,
        /// `NOT NULL`.
        not_null: bool,
        /// `CHECK` constraints, by name.
        constraints: BTreeMap<String, DomainConstraint>,
    },
    /// `CREATE TYPE … AS RANGE`.
    Range {
        /// `SUBTYPE = …`.
        subtype: String,
        /// `SUBTYPE_OPCLASS`, when not the subtype's default.
        opclass: Option<String>,
        /// `COLLATION`, when set.
        collation: Option<String>,
        /// `CANONICAL` function.
        canonical: Option<String>,
        /// `SUBTYPE_DIFF` function.
        subtype_diff: Option<String>,
        /// `MULTIRANGE_TYPE_NAME` (always recorded: PostgreSQL derives one when it is not given).
        multirange: Option<QName>,
    },
}

impl TypeKind {
    /// `enum`, `composite`, `domain`, `range`.
    pub fn word(&self) -> &'static str {
        match self {
            TypeKind::Enum { .. } => "enum",
            TypeKind::Composite { .. } => "composite",
            TypeKind::Domain { .. } => "domain",
            TypeKind::Range { .. } => "range",
        }
    }
}

/// An attribute of a composite type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attribute {
    /// Its name.
    pub name: String,
    /// `format_type`.
    pub type_name: String,
    /// A collation other than the type's default.
    pub collation: Option<String>,
}

/// A `CHECK` constraint of a domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainConstraint {
    /// `pg_get_constraintdef`, without ` NOT VALID`.
    pub definition: String,
    /// Whether it has been validated.
    pub validated: bool,
}

/// Options of a sequence (or of an identity column's sequence).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SequenceOptions {
    /// `AS` type.
    pub data_type: String,
    /// `START WITH`.
    pub start: i64,
    /// `INCREMENT BY`.
    pub increment: i64,
    /// `MINVALUE`.
    pub min: i64,
    /// `MAXVALUE`.
    pub max: i64,
    /// `CACHE`.
    pub cache: i64,
    /// `CYCLE`.
    pub cycle: bool,
}

/// A sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sequence {
    /// Its options.
    pub options: SequenceOptions,
    /// `OWNED BY table.column`.
    pub owned_by: Option<(QName, String)>,
    /// `UNLOGGED`.
    pub unlogged: bool,
    /// `COMMENT ON SEQUENCE`.
    pub comment: Option<String>,
    #[serde(skip)]
    pub(crate) oid: u32,
}

/// Regular or partitioned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TableKind {
    /// `relkind = 'r'`.
    Regular,
    /// `relkind = 'p'`: `PARTITION BY`.
    Partitioned,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Table {
    /// Regular or partitioned.
    pub kind: TableKind,
    /// `UNLOGGED`.
    pub unlogged: bool,
    /// Columns, in `attnum` order (order is never compared).
    pub columns: Vec<Column>,
    /// `pg_get_partkeydef`, for a partitioned table.
    pub partition_key: Option<String>,
    /// `PARTITION OF parent FOR VALUES …`: the parent and the bound (`pg_get_expr(relpartbound)`).
    pub partition_of: Option<(QName, String)>,
    /// `INHERITS (…)` parents (not partitioning), in order.
    pub inherits: Vec<QName>,
    /// `ENABLE ROW LEVEL SECURITY`.
    pub rls_enabled: bool,
    /// `FORCE ROW LEVEL SECURITY`.
    pub rls_forced: bool,
    /// Storage parameters (`WITH (fillfactor=70)`), sorted.
    pub options: Vec<String>,
    /// `REPLICA IDENTITY`: `d` default, `n` nothing, `f` full, `i` index (see `replica_index`).
    pub replica_identity: char,
    /// The index of `REPLICA IDENTITY USING INDEX`.
    pub replica_index: Option<String>,
    /// `COMMENT ON TABLE`.
    pub comment: Option<String>,
    #[serde(skip)]
    pub(crate) oid: u32,
}

impl Table {
    /// The column called `name`.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// Identity of a column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    /// `ALWAYS` (else `BY DEFAULT`).
    pub always: bool,
    /// Options of its sequence.
    pub options: SequenceOptions,
    /// Its sequence's name (not compared: PostgreSQL picks it).
    pub sequence: QName,
}

/// A column of a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Column {
    /// Its name.
    pub name: String,
    /// `format_type(atttypid, atttypmod)`.
    pub type_name: String,
    /// `NOT NULL`.
    pub not_null: bool,
    /// `DEFAULT` expression (`pg_get_expr`), not for generated columns.
    pub default: Option<String>,
    /// `GENERATED … AS IDENTITY`.
    pub identity: Option<Identity>,
    /// `GENERATED ALWAYS AS (expr) STORED` (or `VIRTUAL`, PostgreSQL 18): the expression.
    pub generated: Option<String>,
    /// `VIRTUAL` generated column (PostgreSQL 18).
    pub generated_virtual: bool,
    /// A collation other than the type's default.
    pub collation: Option<String>,
    /// `COMMENT ON COLUMN`.
    pub comment: Option<String>,
    /// Inherited from a parent or partitioned table (`attinhcount > 0`): the parent manages it.
    pub inherited: bool,
    #[serde(skip)]
    pub(crate) attnum: i16,
}

/// A table constraint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Constraint {
    /// `p`, `u`, `f`, `c`, `x`.
    pub kind: char,
    /// `pg_get_constraintdef`, without ` NOT VALID`.
    pub definition: String,
    /// Validated (else `NOT VALID`).
    pub validated: bool,
    /// Cloned from a partitioned parent, or inherited: the parent manages it.
    pub inherited: bool,
    /// `COMMENT ON CONSTRAINT`.
    pub comment: Option<String>,
}

/// An index (not one implementing a constraint).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Index {
    /// The table or materialized view.
    pub table: QName,
    /// `pg_get_indexdef`.
    pub definition: String,
    /// On a partitioned table (so it cannot be built concurrently).
    pub partitioned: bool,
    /// A partition's index attached to its parent's: the parent manages it.
    pub inherited: bool,
    /// `COMMENT ON INDEX`.
    pub comment: Option<String>,
}

/// Plain or materialized.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViewKind {
    /// `CREATE VIEW`.
    View,
    /// `CREATE MATERIALIZED VIEW`.
    Materialized,
}

/// A view or materialized view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct View {
    /// Plain or materialized.
    pub kind: ViewKind,
    /// `pg_get_viewdef`.
    pub definition: String,
    /// Options (`security_barrier=true`, `check_option=local`, storage parameters), sorted.
    pub options: Vec<String>,
    /// Output columns: name and `format_type`.
    pub columns: Vec<(String, String)>,
    /// Materialized view holds data (`WITH DATA`).
    pub populated: bool,
    /// `COMMENT ON VIEW`.
    pub comment: Option<String>,
    /// `COMMENT ON COLUMN` of its columns.
    pub column_comments: BTreeMap<String, String>,
}

/// A function or procedure.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Function {
    /// `f` function, `p` procedure, `w` window function.
    pub kind: char,
    /// `pg_get_functiondef`: the complete `CREATE OR REPLACE …` statement.
    pub definition: String,
    /// `pg_get_function_arguments` (with names and defaults).
    pub arguments: String,
    /// `pg_get_function_result`.
    pub result: Option<String>,
    /// The language.
    pub language: String,
    /// `COMMENT ON FUNCTION`.
    pub comment: Option<String>,
}

/// A trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Trigger {
    /// `pg_get_triggerdef`.
    pub definition: String,
    /// `O` (origin, the default), `D` disabled, `R` replica, `A` always.
    pub enabled: char,
    /// Cloned from a partitioned parent: the parent manages it.
    pub inherited: bool,
    /// `COMMENT ON TRIGGER`.
    pub comment: Option<String>,
}

/// A row-level security policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// `PERMISSIVE` (else `RESTRICTIVE`).
    pub permissive: bool,
    /// `*` all, `r` select, `a` insert, `w` update, `d` delete.
    pub command: char,
    /// Roles, quoted; `public` for everyone.
    pub roles: Vec<String>,
    /// `USING (…)`.
    pub using: Option<String>,
    /// `WITH CHECK (…)`.
    pub check: Option<String>,
    /// `COMMENT ON POLICY`.
    pub comment: Option<String>,
}

/// Something present in the database that Strata does not model.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Unmodeled {
    /// The kind: `cast`, `operator`, `aggregate`, …
    pub kind: String,
    /// How to recognise it, e.g. `CAST (text AS app.code)`.
    pub identity: String,
}

impl fmt::Display for Unmodeled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.identity)
    }
}

impl Catalog {
    /// The major version, e.g. 15.
    pub fn major_version(&self) -> i32 {
        self.server_version_num / 10_000
    }

    /// Every modelled object id, sub-objects included.
    pub fn object_ids(&self) -> Vec<ObjectId> {
        let mut out = Vec::new();
        out.extend(
            self.schemas
                .keys()
                .map(|n| ObjectId::Schema { name: n.clone() }),
        );
        out.extend(
            self.extensions
                .keys()
                .map(|n| ObjectId::Extension { name: n.clone() }),
        );
        out.extend(
            self.types
                .keys()
                .map(|n| ObjectId::Type { name: n.clone() }),
        );
        for (n, s) in &self.sequences {
            out.push(ObjectId::Sequence { name: n.clone() });
            if s.owned_by.is_some() {
                out.push(ObjectId::SequenceOwner { name: n.clone() });
            }
        }
        for (n, t) in &self.tables {
            out.push(ObjectId::Table { name: n.clone() });
            if t.partition_of.is_some() {
                out.push(ObjectId::PartitionOf { table: n.clone() });
            }
            for p in &t.inherits {
                out.push(ObjectId::Inherits {
                    table: n.clone(),
                    parent: p.clone(),
                });
            }
            for c in &t.columns {
                out.push(ObjectId::Column {
                    table: n.clone(),
                    column: c.name.clone(),
                });
                if c.default.is_some() {
                    out.push(ObjectId::Default {
                        table: n.clone(),
                        column: c.name.clone(),
                    });
                }
            }
        }
        out.extend(self.constraints.keys().map(|(t, n)| ObjectId::Constraint {
            table: t.clone(),
            name: n.clone(),
        }));
        out.extend(
            self.indexes
                .keys()
                .map(|n| ObjectId::Index { name: n.clone() }),
        );
        out.extend(
            self.views
                .keys()
                .map(|n| ObjectId::View { name: n.clone() }),
        );
        out.extend(self.functions.keys().map(|(n, a)| ObjectId::Function {
            name: n.clone(),
            args: a.clone(),
        }));
        out.extend(self.triggers.keys().map(|(t, n)| ObjectId::Trigger {
            table: t.clone(),
            name: n.clone(),
        }));
        out.extend(self.policies.keys().map(|(t, n)| ObjectId::Policy {
            table: t.clone(),
            name: n.clone(),
        }));
        out
    }

    /// Whether the object exists in this catalog.
    pub fn contains(&self, id: &ObjectId) -> bool {
        match id {
            ObjectId::Schema { name } => self.schemas.contains_key(name),
            ObjectId::Extension { name } => self.extensions.contains_key(name),
            ObjectId::Type { name } => self.types.contains_key(name),
            ObjectId::Sequence { name } => self.sequences.contains_key(name),
            ObjectId::SequenceOwner { name } => self
                .sequences
                .get(name)
                .is_some_and(|s| s.owned_by.is_some()),
            ObjectId::Table { name } => self.tables.contains_key(name),
            ObjectId::PartitionOf { table } => self
                .tables
                .get(table)
                .is_some_and(|t| t.partition_of.is_some()),
            ObjectId::Inherits { table, parent } => self
                .tables
                .get(table)
                .is_some_and(|t| t.inherits.contains(parent)),
            ObjectId::Column { table, column } => self.column(table, column).is_some(),
            ObjectId::Default { table, column } => self
                .column(table, column)
                .is_some_and(|c| c.default.is_some()),
            ObjectId::Constraint { table, name } => self
                .constraints
                .contains_key(&(table.clone(), name.clone())),
            ObjectId::Index { name } => self.indexes.contains_key(name),
            ObjectId::View { name } => self.views.contains_key(name),
            ObjectId::Function { name, args } => {
                self.functions.contains_key(&(name.clone(), args.clone()))
            }
            ObjectId::Trigger { table, name } => {
                self.triggers.contains_key(&(table.clone(), name.clone()))
            }
            ObjectId::Policy { table, name } => {
                self.policies.contains_key(&(table.clone(), name.clone()))
            }
        }
    }

    /// A column of a table.
    pub fn column(&self, table: &QName, column: &str) -> Option<&Column> {
        self.tables.get(table).and_then(|t| t.column(column))
    }

    /// Whether the object is managed by its parent table (a partition's cloned index, an inherited column, …).
    pub fn is_inherited(&self, id: &ObjectId) -> bool {
        match id {
            ObjectId::Column { table, column } | ObjectId::Default { table, column } => {
                // A default on an inherited column is the child's own: only the column itself is inherited.
                matches!(id, ObjectId::Column { .. })
                    && self.column(table, column).is_some_and(|c| c.inherited)
            }
            ObjectId::Constraint { table, name } => self
                .constraints
                .get(&(table.clone(), name.clone()))
                .is_some_and(|c| c.inherited),
            ObjectId::Index { name } => self.indexes.get(name).is_some_and(|i| i.inherited),
            ObjectId::Trigger { table, name } => self
                .triggers
                .get(&(table.clone(), name.clone()))
                .is_some_and(|t| t.inherited),
            _ => false,
        }
    }

    /// Mark objects as left to someone else (see [`Catalog::external`]); the predicate sees every object id.
    pub fn mark_external(&mut self, mut is_external: impl FnMut(&ObjectId) -> bool) {
        for id in self.object_ids() {
            if is_external(&id) {
                self.external.insert(id);
            }
        }
    }

    /// What `id` depends on directly: a range of `depends` (sorted by dependent), found in O(log n) without
    /// building a map of all of them (a plan looks up only the objects it changes and their dependencies).
    pub(crate) fn dependencies_of(&self, id: &ObjectId) -> Vec<&ObjectId> {
        // The smallest `ObjectId` (first variant, empty name): every pair `(id, _)` sorts at or after it.
        let lowest = ObjectId::Schema {
            name: String::new(),
        };
        self.depends
            .range((id.clone(), lowest)..)
            .take_while(|(dependent, _)| dependent == id)
            .map(|(_, referenced)| referenced)
            .collect()
    }
}
