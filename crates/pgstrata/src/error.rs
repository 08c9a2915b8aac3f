//! The one error type of the library.
//!
//! Every variant that points into a file carries the file's text and a byte span, so the CLI can render it as a
//! compiler-style diagnostic (`miette`) with the line underlined. The library itself never prints. It depends only on
//! the reports (`crate::report`) that some errors carry.

use std::fmt;
use std::path::PathBuf;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};

use crate::report::lint::LintReport;
use crate::report::test::{TestReport, failure_text};
use crate::report::widen;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong while loading packages or talking to the database.
#[derive(Debug, thiserror::Error, Diagnostic)]
#[non_exhaustive]
pub enum Error {
    /// No `strata.toml` (or `pgpkg.toml`) in the directory or any parent.
    #[error("no strata.toml found in {} or any parent directory", start.display())]
    #[diagnostic(
        code(strata::package_not_found),
        help("create a package with `strata init NAME`, or point at one with --package PATH")
    )]
    PackageNotFound {
        /// Where the search started.
        start: PathBuf,
    },

    /// A file could not be read.
    #[error("cannot read {}", path.display())]
    #[diagnostic(code(strata::io))]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// A file could not be written.
    #[error("cannot write {}", path.display())]
    #[diagnostic(code(strata::io))]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },

    /// A problem in a source file (manifest or SQL), found before anything was sent to the server.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Source(Box<SourceError>),

    /// A statement failed on the server.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Sql(Box<SqlError>),

    /// Applied migrations whose files changed since they were applied.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Changed(Box<ChangedError>),

    /// Tests failed during a deploy: everything was rolled back.
    #[error(transparent)]
    #[diagnostic(transparent)]
    TestsFailed(Box<TestsFailed>),

    /// The deploy was refused because of the state of the history (missing files, out-of-order migrations, …).
    #[error("{message}")]
    #[diagnostic(code(strata::refused))]
    Refused {
        /// What is wrong.
        message: String,
        /// How to proceed.
        #[help]
        help: Option<String>,
    },

    /// `up` refused: the migrations about to run have lint errors.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Lint(Box<LintRefused>),

    /// Another deployer held the migration lock for longer than the lock wait timeout.
    #[error(
        "another deploy holds the strata lock on this database; gave up after waiting {waited}"
    )]
    #[diagnostic(
        code(strata::lock_timeout),
        help("wait for the other deploy to finish, or raise --lock-wait-timeout")
    )]
    LockTimeout {
        /// How long we waited, as configured.
        waited: String,
    },

    /// Invalid options passed by the caller.
    #[error("{message}")]
    #[diagnostic(code(strata::usage))]
    Usage {
        /// What is wrong.
        message: String,
        /// How to fix it.
        #[help]
        help: Option<String>,
    },

    /// Connecting failed.
    #[error(transparent)]
    #[diagnostic(code(strata::connect))]
    Connect(#[from] pgstrata_conn::Error),

    /// A database call made by Strata itself (not user SQL) failed.
    #[error("{context}: {}", db_message(source))]
    #[diagnostic(code(strata::database))]
    Database {
        /// What Strata was doing.
        context: String,
        /// The driver error.
        source: tokio_postgres::Error,
    },
}

fn db_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl Error {
    /// True for errors that mean "could not reach or authenticate to the server" (exit code 2 in the CLI).
    pub fn is_connection(&self) -> bool {
        match self {
            Error::Connect(_) => true,
            Error::Database { source, .. } => source.is_closed() || source.as_db_error().is_none(),
            _ => false,
        }
    }

    /// True for errors caused by how Strata was invoked (exit code 2 in the CLI).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::Usage { .. } | Error::PackageNotFound { .. })
    }

    /// The SQLSTATE of a failed statement, if this is one.
    pub fn sqlstate(&self) -> Option<&str> {
        match self {
            Error::Sql(e) => Some(&e.sqlstate),
            Error::Database { source, .. } => source.as_db_error().map(|d| d.code().code()),
            _ => None,
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

    pub(crate) fn refused(message: impl Into<String>, help: impl Into<String>) -> Error {
        Error::Refused {
            message: message.into(),
            help: Some(help.into()),
        }
    }
}

/// A problem located in a source file, found before anything ran.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    /// What is wrong.
    pub message: String,
    /// The file and its text.
    pub file: NamedSource<String>,
    /// Where, as a byte span (None: the file as a whole).
    pub span: Option<SourceSpan>,
    /// Text next to the underline.
    pub label: String,
    /// How to fix it.
    pub help: Option<String>,
    /// A stable code such as `strata::manifest`.
    pub code: &'static str,
}

impl SourceError {
    /// A new error in `path` (whose text is `text`) at `span`.
    pub fn new(
        code: &'static str,
        path: impl fmt::Display,
        text: impl Into<String>,
        span: Option<std::ops::Range<usize>>,
        message: impl Into<String>,
    ) -> SourceError {
        let text = text.into();
        SourceError {
            message: message.into(),
            span: span.map(|r| widen(&text, r)),
            file: NamedSource::new(path.to_string(), text),
            label: String::from("here"),
            help: None,
            code,
        }
    }

    /// Set the label under the span.
    pub fn with_label(mut self, label: impl Into<String>) -> SourceError {
        self.label = label.into();
        self
    }

    /// Set the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> SourceError {
        self.help = Some(help.into());
        self
    }
}

impl From<SourceError> for Error {
    fn from(e: SourceError) -> Error {
        Error::Source(Box::new(e))
    }
}

impl Diagnostic for SourceError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(self.code))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display>)
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.span.map(|_| &self.file as &dyn miette::SourceCode)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.span.map(|s| {
            Box::new(std::iter::once(LabeledSpan::new_with_span(
                Some(self.label.clone()),
                s,
            ))) as Box<dyn Iterator<Item = LabeledSpan>>
        })
    }
}

/// A statement that PostgreSQL rejected, mapped back to its file, line and column.
#[derive(Debug, thiserror::Error)]
#[error("{origin}:{line}:{col}: {message}")]
pub struct SqlError {
    /// The file (or stored script) the statement came from.
    pub origin: String,
    /// 1-based line of the error position.
    pub line: u32,
    /// 1-based column (characters) of the error position.
    pub col: u32,
    /// Five-character SQLSTATE.
    pub sqlstate: String,
    /// The server's primary message.
    pub message: String,
    /// The server's DETAIL, if any.
    pub detail: Option<String>,
    /// The server's HINT, or one of Strata's own when the server gave none.
    pub hint: Option<String>,
    /// The server's CONTEXT (e.g. the PL/pgSQL line), if any.
    pub context: Option<String>,
    /// The migration (`package/name`) being run, when known.
    pub migration: Option<String>,
    /// Whether the whole deploy was rolled back (false only when a no-transaction migration had already committed
    /// earlier statements).
    pub rolled_back: bool,
    /// Text of the file and the failing span.
    pub file: NamedSource<String>,
    /// Byte span of the error in the file.
    pub span: SourceSpan,
    /// Statements of a no-transaction migration that had already run (and stay applied) before the failure.
    pub committed_statements: Vec<String>,
    /// Migrations committed by earlier segments of the run (before a no-transaction migration); they stay applied
    /// and recorded.
    pub committed_migrations: Vec<String>,
}

impl From<SqlError> for Error {
    fn from(e: SqlError) -> Error {
        Error::Sql(Box::new(e))
    }
}

impl Diagnostic for SqlError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!("SQLSTATE {}", self.sqlstate)))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let mut lines = Vec::new();
        if let Some(d) = &self.detail {
            lines.push(format!("detail: {d}"));
        }
        if let Some(c) = &self.context {
            lines.push(format!("context: {c}"));
        }
        if let Some(h) = &self.hint {
            lines.push(format!("hint: {h}"));
        }
        if let Some(m) = &self.migration {
            lines.push(format!("while running {m}"));
        }
        if !self.committed_migrations.is_empty() {
            lines.push(format!(
                "committed by earlier segments of this run (they stay applied and recorded): {}",
                self.committed_migrations.join(", ")
            ));
        }
        if !self.committed_statements.is_empty() {
            lines.push(format!(
                "this no-transaction migration had already committed {} statement(s); they stay applied, the migration \
                 is not recorded as applied, and the next `strata up` skips them and resumes after them (`--no-resume` \
                 runs them again):\n  {}",
                self.committed_statements.len(),
                self.committed_statements.join("\n  ")
            ));
        }
        if self.rolled_back
            && self.committed_migrations.is_empty()
            && self.committed_statements.is_empty()
        {
            lines.push("nothing was applied: the whole deploy was rolled back".into());
        }
        if lines.is_empty() {
            None
        } else {
            Some(Box::new(lines.join("\n")))
        }
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.file)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            Some(self.message.clone()),
            self.span,
        ))))
    }
}

/// Applied migrations whose files no longer match what was applied.
#[derive(Debug, thiserror::Error)]
#[error("{} applied migration(s) changed since they were applied: {}", changes.len(), names(changes))]
pub struct ChangedError {
    /// One entry per changed migration.
    pub changes: Vec<ChangedMigration>,
}

fn names(changes: &[ChangedMigration]) -> String {
    changes
        .iter()
        .map(|c| c.path.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// One changed migration, with a unified diff from the applied text to the file's text.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ChangedMigration {
    /// Package name.
    pub package: String,
    /// Migration name.
    pub name: String,
    /// File path as shown to the user.
    pub path: String,
    /// Checksum recorded when applied.
    pub applied_checksum: String,
    /// Checksum of the file now.
    pub file_checksum: String,
    /// Unified diff (applied → file).
    pub diff: String,
}

impl Diagnostic for ChangedError {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("strata::changed"))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let mut text = String::new();
        for c in &self.changes {
            text.push_str(&format!(
                "{} ({}:{}): applied {} but the file is now {}\n{}\n",
                c.path, c.package, c.name, c.applied_checksum, c.file_checksum, c.diff
            ));
        }
        text.push_str(
            "an applied migration must not change: add a new migration instead. If the edit is harmless \
             (comments, formatting), accept it with --accept-changed NAME (records the new text without running it).",
        );
        Some(Box::new(text))
    }
}

/// Tests failed during `up`: the deploy was rolled back.
#[derive(Debug, thiserror::Error)]
#[error("{} of {} test(s) failed; the deploy was rolled back (seed {})", report.failed, report.results.len(), report.seed)]
pub struct TestsFailed {
    /// The full report.
    pub report: TestReport,
}

impl Diagnostic for TestsFailed {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("strata::tests_failed"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let mut text = String::new();
        for r in self.report.failures() {
            text.push_str(&failure_text(r));
        }
        text.push_str(&format!(
            "nothing was applied. Replay this order with --seed {}, run only these tests with `strata test --filter NAME`, \
             or deploy without tests with --no-tests",
            self.report.seed
        ));
        Some(Box::new(text))
    }
}

/// `up` refused to deploy because the migrations about to run have lint errors.
#[derive(Debug, thiserror::Error)]
#[error("{} lint error(s) in the migrations about to run: nothing was applied", report.errors)]
pub struct LintRefused {
    /// The whole report (errors and warnings).
    pub report: LintReport,
}

impl Diagnostic for LintRefused {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("strata::lint"))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!(
            "{}\nmake the migrations safe (`strata lint` shows how), silence a finding with `-- squawk-ignore RULE` on \
             the line above it, or deploy anyway with --allow-lint-errors",
            self.report.error_list().join("\n")
        )))
    }
}
