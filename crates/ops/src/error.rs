//! The one error type of this crate. A check that fails while `inspect` runs is not an error: it is reported in
//! the check's outcome, so one missing privilege or timeout never hides the other checks.

use std::path::PathBuf;

use miette::{Diagnostic, NamedSource, SourceSpan};

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while inspecting, backing up or restoring.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum Error {
    /// The library failed (loading packages, connecting, reading Strata's history).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Strata(#[from] pgstrata::Error),

    /// Connection settings could not be resolved, or connecting failed.
    #[error(transparent)]
    #[diagnostic(code(strata::connect))]
    Connect(#[from] pgstrata_conn::Error),

    /// A query Strata itself sent failed.
    #[error("{context}: {}", db_message(source))]
    #[diagnostic(code(strata::database))]
    Database {
        /// What we were doing.
        context: String,
        /// The driver's error.
        source: tokio_postgres::Error,
    },

    /// `[inspect]` in a manifest holds a value that cannot be used.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Settings(Box<SettingsError>),

    /// A check or group name that does not exist.
    #[error("unknown check `{name}`")]
    #[diagnostic(
        code(strata::inspect::unknown_check),
        help("checks and groups: {known}")
    )]
    UnknownCheck {
        /// The name given.
        name: String,
        /// Every valid name.
        known: String,
    },

    /// Invalid options.
    #[error("{message}")]
    #[diagnostic(code(strata::usage))]
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        #[help]
        help: Option<String>,
    },

    /// `pg_dump` / `pg_restore` could not be found, or not in the server's version.
    #[error("{message}")]
    #[diagnostic(code(strata::backup::tool))]
    Tool {
        /// What is wrong.
        message: String,
        /// How to fix it.
        #[help]
        help: Option<String>,
    },

    /// `pg_dump` / `pg_restore` failed.
    #[error("{tool} failed ({status}): {stderr}")]
    #[diagnostic(code(strata::backup::tool_failed))]
    ToolFailed {
        /// Which program.
        tool: String,
        /// Its exit status.
        status: String,
        /// The end of what it printed on stderr.
        stderr: String,
        /// What it probably means.
        #[help]
        help: Option<String>,
    },

    /// A file could not be read or written.
    #[error("{action} {}: {source}", path.display())]
    #[diagnostic(code(strata::io))]
    Io {
        /// "cannot read", "cannot write", …
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// The archive does not match the checksum its manifest recorded.
    #[error(
        "{} does not match its manifest: checksum {actual}, the manifest says {expected}",
        path.display()
    )]
    #[diagnostic(
        code(strata::backup::checksum),
        help(
            "the archive is truncated or was modified after the backup; restore from another copy"
        )
    )]
    Checksum {
        /// The archive.
        path: PathBuf,
        /// What the manifest recorded.
        expected: String,
        /// What the file holds now.
        actual: String,
    },

    /// The backup's manifest cannot be read.
    #[error("{}: {message}", path.display())]
    #[diagnostic(code(strata::backup::manifest))]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },

    /// The archive lacks the data of tables the database holds.
    #[error("the archive holds no data for {} table(s): {}", tables.len(), tables.join(", "))]
    #[diagnostic(
        code(strata::backup::missing_data),
        help(
            "pg_dump skipped them (see its warnings above): the archive is kept, without a manifest, but is \
             incomplete"
        )
    )]
    MissingData {
        /// The tables, as schema.name.
        tables: Vec<String>,
    },

    /// The restore target holds objects already.
    #[error("database {database} is not empty ({objects})")]
    #[diagnostic(
        code(strata::restore::not_empty),
        help(
            "restore into an empty database (--into URL), or pass --clean to drop the archive's objects first"
        )
    )]
    TargetNotEmpty {
        /// The target database.
        database: String,
        /// What it holds, e.g. "12 relations in 2 schemas".
        objects: String,
    },

    /// `--verify` found differences between the restored database and the manifest.
    #[error("verification failed: {}", mismatches.join("; "))]
    #[diagnostic(code(strata::restore::verify))]
    Verify {
        /// Each difference.
        mismatches: Vec<String>,
    },
}

/// A bad `[inspect]` value, pointing into the manifest.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{message}")]
#[diagnostic(code(strata::inspect::settings))]
pub struct SettingsError {
    /// What is wrong, starting with `file:line:col`.
    pub message: String,
    /// The manifest, for the diagnostic.
    #[source_code]
    pub source_code: NamedSource<String>,
    /// Where.
    #[label("here")]
    pub span: Option<SourceSpan>,
    /// Where, as `file:line:col`.
    pub location: String,
    /// How to fix it.
    #[help]
    pub help: Option<String>,
}

fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl Error {
    /// True for errors caused by how the command was invoked or configured (exit code 2 in the CLI).
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Strata(e) => e.is_usage(),
            Error::Settings { .. } | Error::UnknownCheck { .. } | Error::Usage { .. } => true,
            Error::Tool { .. } => true,
            _ => false,
        }
    }

    /// True for errors that mean the server could not be reached (exit code 2 in the CLI).
    pub fn is_connection(&self) -> bool {
        match self {
            Error::Strata(e) => e.is_connection(),
            Error::Connect(_) => true,
            Error::Database { source, .. } => source.is_closed() || source.as_db_error().is_none(),
            _ => false,
        }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Database { context, source }
    }

    pub(crate) fn usage(message: impl Into<String>, help: Option<String>) -> Error {
        Error::Usage {
            message: message.into(),
            help,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io {
            action,
            path,
            source,
        }
    }
}
