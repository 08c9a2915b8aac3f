//! The crate's one error type.

use std::path::PathBuf;

use miette::{NamedSource, SourceSpan};

/// What can go wrong comparing declared schemas, migrations and databases.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum Error {
    /// The engine failed (a catalog query, data loss refused, a version mismatch, …).
    #[error(transparent)]
    #[diagnostic(transparent)]
    Catalog(#[from] pgstrata_catalog::Error),
    /// Strata failed (a package that does not load, a migration that fails to replay, a connection). Render it
    /// with [`Error::into_report`], which keeps its own diagnostic.
    #[error(transparent)]
    #[diagnostic(code(strata::declare::strata))]
    Strata(#[from] pgstrata::Error),
    /// The shadow cluster could not be started (no PostgreSQL server binaries, …).
    #[error("cannot start the shadow PostgreSQL: {0}")]
    #[diagnostic(
        code(strata::declare::shadow),
        help(
            "install the PostgreSQL server binaries (or set PG_BINDIR), or point --shadow-url at a server where Strata may create databases"
        )
    )]
    Shadow(#[from] pgstrata_embedded::Error),
    /// A declared schema file failed to load into the shadow database.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Load(Box<LoadError>),
    /// A query on a shadow or compared database failed.
    #[error("{context}: {}", pgstrata_catalog::describe(.source))]
    #[diagnostic(code(strata::declare::database))]
    Database {
        /// What we were doing.
        context: String,
        /// The server's error.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The two sides run different PostgreSQL major versions.
    #[error(
        "{what} runs PostgreSQL {left} but {other} runs PostgreSQL {right}: their catalogs cannot be compared"
    )]
    #[diagnostic(
        code(strata::declare::version_mismatch),
        help(
            "use a shadow server of the same major version: point PG_BINDIR at its binaries (then `strata dev destroy` to recreate the dev cluster), or pass --shadow-url"
        )
    )]
    VersionMismatch {
        /// The first side.
        what: String,
        /// Its major version.
        left: i32,
        /// The other side.
        other: String,
        /// Its major version.
        right: i32,
    },
    /// Bad arguments or files.
    #[error("{message}")]
    #[diagnostic(code(strata::declare::usage))]
    Usage {
        /// What is wrong.
        message: String,
        /// What to do.
        #[help]
        help: Option<String>,
    },
    /// A file could not be read or written.
    #[error("{}: {source}", .path.display())]
    #[diagnostic(code(strata::declare::io))]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The generated migration did not prove: applied to a copy of the source it did not converge, or down did not
    /// bring the source back.
    #[error("the generated migration does not prove: {message}")]
    #[diagnostic(
        code(strata::declare::proof),
        help(
            "this is a bug in Strata's diff: please report it with the declared files; --no-verify writes the migration anyway, for you to fix by hand"
        )
    )]
    Proof {
        /// What failed.
        message: String,
    },
}

impl Error {
    pub(crate) fn db(context: impl Into<String>) -> impl FnOnce(tokio_postgres::Error) -> Error {
        let context = context.into();
        move |source| Error::Database { context, source }
    }

    pub(crate) fn usage(message: impl Into<String>, help: Option<&str>) -> Error {
        Error::Usage {
            message: message.into(),
            help: help.map(str::to_string),
        }
    }

    /// A usage or environment problem (bad arguments, files that do not load, servers that cannot be reached or
    /// started, versions that differ): the CLI's exit code 2. Otherwise a failure (exit 1).
    pub fn is_usage(&self) -> bool {
        match self {
            Error::Catalog(e) => matches!(e, pgstrata_catalog::Error::VersionMismatch { .. }),
            Error::Strata(e) => e.is_usage() || e.is_connection(),
            Error::Shadow(_)
            | Error::Load(_)
            | Error::VersionMismatch { .. }
            | Error::Usage { .. }
            | Error::Io { .. } => true,
            Error::Database { .. } | Error::Proof { .. } => false,
        }
    }
}

/// A declared schema file that failed to load: where, and the server's message.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
#[error("{}:{line}:{col}: {message}", .path.display())]
#[diagnostic(code(strata::declare::load))]
pub struct LoadError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line of the error.
    pub line: u32,
    /// 1-based column.
    pub col: u32,
    /// The server's message, with its SQLSTATE.
    pub message: String,
    /// The file, for the snippet.
    #[source_code]
    pub src: NamedSource<String>,
    /// Where.
    #[label("here")]
    pub span: SourceSpan,
    /// The server's hint.
    #[help]
    pub hint: Option<String>,
}

impl From<pgstrata_conn::Error> for Error {
    fn from(e: pgstrata_conn::Error) -> Error {
        Error::Strata(pgstrata::Error::from(e))
    }
}

impl Error {
    /// A report for display: Strata's own errors keep their diagnostics (source snippets, help).
    pub fn into_report(self) -> miette::Report {
        match self {
            Error::Strata(e) => miette::Report::new(e),
            other => miette::Report::new(other),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
