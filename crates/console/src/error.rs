//! The one error type of the console.

use std::net::SocketAddr;

use miette::Diagnostic;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can stop the console from starting or serving (a failing page is an error page, not one of these).
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum Error {
    /// Strata's library failed (connecting, reading the history, planning).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Strata(#[from] pgstrata::Error),

    /// An inspect or MiniPaaS query failed.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Ops(#[from] pgstrata_ops::Error),

    /// Connection settings could not be resolved.
    #[error(transparent)]
    #[diagnostic(code(strata::connect))]
    Connect(#[from] pgstrata_conn::Error),

    /// A query of the console itself failed.
    #[error("{context}: {message}")]
    #[diagnostic(code(strata::database))]
    Database {
        /// What we were doing.
        context: String,
        /// The server's message and SQLSTATE.
        message: String,
        /// The SQLSTATE, when the server sent one.
        sqlstate: Option<String>,
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

    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    #[diagnostic(
        code(strata::console::listen),
        help("pick another port with --listen 127.0.0.1:PORT (port 0: any free port)")
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },

    /// The server stopped with an error.
    #[error("the console's HTTP server failed: {source}")]
    #[diagnostic(code(strata::console::serve))]
    Serve {
        /// Why.
        source: std::io::Error,
    },
}

impl Error {
    /// A failed query, with its SQLSTATE.
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |e| {
            let (message, sqlstate) = match e.as_db_error() {
                Some(db) => (
                    format!("{} (SQLSTATE {})", db.message(), db.code().code()),
                    Some(db.code().code().to_string()),
                ),
                None => (e.to_string(), None),
            };
            Error::Database {
                context,
                message,
                sqlstate,
            }
        }
    }

    /// True for errors caused by how the console was invoked (exit code 2 in the CLI).
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Usage { .. } | Error::Bind { .. } | Error::Connect(_) => true,
            // A connection string that does not work is the caller's to fix, as in every other command.
            Error::Strata(e) => e.is_usage() || e.is_connection(),
            Error::Ops(e) => e.is_usage() || e.is_connection(),
            Error::Database { .. } | Error::Serve { .. } => false,
        }
    }
}
