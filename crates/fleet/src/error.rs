//! The one error type of the fleet crate: what stops a fleet run as a whole (a target's own failure is not an
//! error but an outcome, [`crate::TargetOutcome`]).

use std::path::PathBuf;

use miette::Diagnostic;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What stops a fleet command before or outside the targets' own deploys.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum Error {
    /// A problem in the targets file, with its place (file:line:col).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Targets(Box<pgstrata::SourceError>),

    /// The library failed outside a target's deploy (the control database, the tenant database's own packages).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Strata(#[from] pgstrata::Error),

    /// Connection settings that do not parse, or cannot be completed.
    #[error("{context}: {source}")]
    #[diagnostic(code(strata::fleet::connection))]
    Connection {
        /// Which target or database.
        context: String,
        /// Why.
        source: pgstrata_conn::Error,
    },

    /// A query of Strata's own against the control database failed.
    #[error("{context}: {}", db_message(source))]
    #[diagnostic(code(strata::fleet::database))]
    Database {
        /// What the fleet was doing.
        context: String,
        /// The driver error.
        source: tokio_postgres::Error,
    },

    /// Invalid options, or a target list that cannot be deployed as asked.
    #[error("{message}")]
    #[diagnostic(code(strata::fleet::usage))]
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        #[help]
        help: Option<String>,
    },

    /// The local state file of a run could not be read or written.
    #[error("{context} {}", path.display())]
    #[diagnostic(code(strata::fleet::state))]
    State {
        /// What the fleet was doing.
        context: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// `--resume RUN` names a run that was never recorded, or whose record cannot be read.
    #[error("no fleet run `{run}` {place}")]
    #[diagnostic(
        code(strata::fleet::unknown_run),
        help(
            "the run id is printed when a fleet run starts and in its summary; give the same --state-dir, or the same control database (-d), as that run"
        )
    )]
    UnknownRun {
        /// The run id asked for.
        run: String,
        /// Where it was looked for.
        place: String,
    },
}

fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl Error {
    pub(crate) fn usage(message: impl Into<String>, help: Option<&str>) -> Error {
        Error::Usage {
            message: message.into(),
            help: help.map(str::to_string),
        }
    }

    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Database { context, source }
    }

    /// True for errors caused by how the command was invoked or could not reach a database it needs (exit code 2
    /// in the CLI): everything but a failure of Strata's own work.
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Strata(e) => e.is_usage() || e.is_connection(),
            Error::Targets(_)
            | Error::Connection { .. }
            | Error::Usage { .. }
            | Error::UnknownRun { .. } => true,
            Error::Database { source, .. } => source.is_closed() || source.as_db_error().is_none(),
            Error::State { .. } => false,
        }
    }
}

impl From<pgstrata::SourceError> for Error {
    fn from(e: pgstrata::SourceError) -> Error {
        Error::Targets(Box::new(e))
    }
}
