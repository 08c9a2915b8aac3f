//! The crate's one error type.

/// What can go wrong reading, comparing or applying catalogs.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// A query failed.
    #[error("{context}: {}", describe(.source))]
    #[diagnostic(code(strata::catalog::database))]
    Database {
        /// What we were doing.
        context: String,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The two sides run different major versions: their catalogs (and `pg_get_*def` output) differ.
    #[error(
        "the two databases run different PostgreSQL major versions (server_version_num {source_version} and {target_version})"
    )]
    #[diagnostic(
        code(strata::catalog::version_mismatch),
        help(
            "compare databases of the same major version (for a shadow database: point PG_BINDIR, or --shadow-url, at a server of the same version)"
        )
    )]
    VersionMismatch {
        /// `server_version_num` of the source.
        source_version: i32,
        /// `server_version_num` of the target.
        target_version: i32,
    },
    /// The plan has actions that lose data and they were not allowed.
    #[error("the migration would lose data:\n{}", .actions.iter().map(|a| format!("  - {a}")).collect::<Vec<_>>().join("\n"))]
    #[diagnostic(
        code(strata::catalog::data_loss),
        help(
            "review the actions, then pass --allow-data-loss (or declare a rename with `-- strata:renamed-from OLD_NAME`)"
        )
    )]
    DataLoss {
        /// The destructive actions, described.
        actions: Vec<String>,
    },
    /// A statement of a plan failed when applied.
    #[error("statement {index} of the migration failed: {}\n{sql}", describe(.source))]
    #[diagnostic(code(strata::catalog::apply))]
    Apply {
        /// 1-based position in the plan.
        index: usize,
        /// The statement.
        sql: String,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The objects to create depend on each other in a cycle PostgreSQL cannot resolve by itself.
    #[error("cannot order the migration: these actions depend on each other in a cycle: {}", .cycle.join(" → "))]
    #[diagnostic(code(strata::catalog::cycle))]
    Cycle {
        /// The actions of the cycle.
        cycle: Vec<String>,
    },
}

impl Error {
    /// A `map_err` helper for database errors.
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Database { context, source }
    }

    /// The SQLSTATE of a database error, if this is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Database { source, .. } | Error::Apply { source, .. } => {
                source.code().map(|c| c.code())
            }
            _ => None,
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A server error as `message (SQLSTATE 42P01)`, with its detail and hint; other errors as they display.
pub fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut out = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(detail) = db.detail() {
                out.push_str(&format!("\nDETAIL: {detail}"));
            }
            if let Some(hint) = db.hint() {
                out.push_str(&format!("\nHINT: {hint}"));
            }
            out
        }
        None => e.to_string(),
    }
}
