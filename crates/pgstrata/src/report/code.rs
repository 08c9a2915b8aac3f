//! What a deploy did to managed code, and the kinds of managed statements.

use pgstrata_sql::objects::ObjectKind;

/// What a managed statement is, as stored in `strata.managed_object.kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodeKind {
    /// `CREATE FUNCTION`
    Function,
    /// `CREATE PROCEDURE`
    Procedure,
    /// `CREATE VIEW`
    View,
    /// `CREATE TRIGGER`
    Trigger,
    /// `COMMENT ON` one of the above (or a view column).
    Comment,
    /// `CREATE AGGREGATE`
    Aggregate,
    /// `CREATE OPERATOR`
    Operator,
    /// `CREATE CAST`
    Cast,
}

impl CodeKind {
    /// The word stored in the database and shown to users.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeKind::Function => "function",
            CodeKind::Procedure => "procedure",
            CodeKind::View => "view",
            CodeKind::Trigger => "trigger",
            CodeKind::Comment => "comment",
            CodeKind::Aggregate => "aggregate",
            CodeKind::Operator => "operator",
            CodeKind::Cast => "cast",
        }
    }

    /// The inverse of [`CodeKind::as_str`].
    pub fn parse(s: &str) -> Option<CodeKind> {
        Some(match s {
            "function" => CodeKind::Function,
            "procedure" => CodeKind::Procedure,
            "view" => CodeKind::View,
            "trigger" => CodeKind::Trigger,
            "comment" => CodeKind::Comment,
            "aggregate" => CodeKind::Aggregate,
            "operator" => CodeKind::Operator,
            "cast" => CodeKind::Cast,
            _ => return None,
        })
    }

    /// The kind of a parsed `CREATE` statement.
    pub(crate) fn of(kind: ObjectKind) -> CodeKind {
        match kind {
            ObjectKind::Function => CodeKind::Function,
            ObjectKind::Procedure => CodeKind::Procedure,
            ObjectKind::View => CodeKind::View,
            ObjectKind::Trigger => CodeKind::Trigger,
            ObjectKind::Aggregate => CodeKind::Aggregate,
            ObjectKind::Operator => CodeKind::Operator,
            ObjectKind::Cast => CodeKind::Cast,
        }
    }

    /// Functions, procedures and aggregates share a namespace and the same catalog (`pg_proc`).
    pub(crate) fn is_routine(self) -> bool {
        matches!(
            self,
            CodeKind::Function | CodeKind::Procedure | CodeKind::Aggregate
        )
    }

    /// Several objects of this kind may share a name (routines and operators are overloaded by argument types).
    pub(crate) fn overloaded(self) -> bool {
        self.is_routine() || self == CodeKind::Operator
    }
}

impl std::fmt::Display for CodeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a deploy did to one managed object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CodeAction {
    /// Created (it did not exist).
    Created,
    /// Replaced in place (`CREATE OR REPLACE`: same oid, grants and comments kept).
    Replaced,
    /// Dropped and created again (its signature or columns changed, or something it depends on was re-created).
    Recreated,
    /// Re-installed from its source after a change or a drop outside Strata.
    Restored,
    /// It existed already, not recorded as managed: now it is.
    Adopted,
    /// Dropped: its statement left the source.
    Dropped,
    /// Its record was removed: its statement left the source and the object was already gone.
    Forgotten,
}

/// One object a deploy changed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CodeChange {
    /// Package.
    pub package: String,
    /// What kind of object.
    pub kind: CodeKind,
    /// Its identity in the catalog (`app.f(a integer)`, `app.v`, `touch ON app.t`, `comment` targets).
    pub identity: String,
    /// What happened.
    pub action: CodeAction,
    /// Source file (as shown to users for installed objects; as recorded for dropped ones).
    pub file: Option<String>,
    /// Line in it.
    pub line: Option<u32>,
}

/// What a deploy did to managed code.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct CodeReport {
    /// Objects changed, in the order it happened.
    pub changes: Vec<CodeChange>,
    /// Statements whose object was already up to date.
    pub unchanged: usize,
    /// Statements that had to be retried because the graph missed a dependency.
    pub retried: Vec<String>,
    /// Wall time of the managed-code phase.
    pub duration_ms: f64,
}

impl CodeReport {
    /// True when no object was touched.
    pub fn is_noop(&self) -> bool {
        self.changes.is_empty()
    }
}

/// An installed managed routine whose body no longer compiles against the database: something it uses was dropped
/// (typically by `strata down`) or changed. Only `LANGUAGE sql` routines with a string body are checked, by
/// PostgreSQL's own validator; a `BEGIN ATOMIC` body or a view cannot lose what it uses (the server refuses the
/// drop), and PL/pgSQL bodies are resolved only when called.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BrokenObject {
    /// The package whose managed code it is.
    pub package: String,
    /// Function or procedure.
    pub kind: CodeKind,
    /// The catalog identity, e.g. `billing.total(integer)`.
    pub identity: String,
    /// Where its source is, as recorded when it was installed.
    pub file: String,
    /// Line.
    pub line: u32,
    /// What the server says about its body, e.g. `relation "invoice" does not exist`.
    pub error: String,
}
