use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while finding, creating, starting or stopping a cluster.
///
/// Messages are meant to be shown to a user as they are: each names the command or path involved and, where
/// there is one, the fix.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No directory with `initdb` and `postgres` was found.
    #[error(
        "PostgreSQL server binaries (initdb, postgres) not found; searched {}. Install them (Debian/Ubuntu: \
         `apt-get install postgresql`, Fedora: `dnf install postgresql-server`, macOS: `brew install postgresql`) \
         or set PG_BINDIR to the directory that holds `initdb` and `postgres`",
        .searched.join("; ")
    )]
    BinariesNotFound {
        /// Each place looked at, with why it did not qualify.
        searched: Vec<String>,
    },

    /// We run as root (which `initdb` refuses) and there is no unprivileged user to run the server as.
    #[error(
        "running as root, but neither the `postgres` nor the `nobody` OS user exists to run PostgreSQL as \
         (initdb refuses root); create one, e.g. `useradd --system postgres`"
    )]
    NoServerUser,

    /// `initdb` failed.
    #[error("`{command}` failed ({status}):\n{stderr}")]
    InitDb {
        /// The command line that failed.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed.
        stderr: String,
    },

    /// The server did not start or did not become ready.
    #[error("PostgreSQL did not start (`{command}`): {reason}\nlast lines of {}:\n{log_tail}", .log.display())]
    Start {
        /// The command line that started the server.
        command: String,
        /// What went wrong, in a few words.
        reason: String,
        /// The server log.
        log: PathBuf,
        /// The end of the server log, which usually says why.
        log_tail: String,
    },

    /// Another command (`pg_ctl stop`, `postgres --version`, …) failed.
    #[error("`{command}` failed: {detail}")]
    Command {
        /// The command line that failed.
        command: String,
        /// Its exit status and output.
        detail: String,
    },

    /// The cluster directory cannot be reached by the unprivileged server user.
    #[error(
        "{} is not accessible to the OS user `{user}` that runs PostgreSQL (it lacks search permission there); \
         use a directory it can reach, e.g. under /tmp: set STRATA_DEV_DIR for `strata dev`, TMPDIR for test \
         clusters",
        .path.display()
    )]
    Inaccessible {
        /// The first directory the server user cannot traverse.
        path: PathBuf,
        /// The server user.
        user: String,
    },

    /// The cluster directory belongs to someone else, so trusting its contents would be unsafe.
    #[error(
        "{} is owned by uid {owner}, neither us nor the server user; refusing to use it (remove it or choose \
         another directory with STRATA_DEV_DIR)",
        .path.display()
    )]
    ForeignDirectory {
        /// The directory.
        path: PathBuf,
        /// Its owner.
        owner: u32,
    },

    /// The directory holds something other than a dev cluster, so we neither take it over nor delete it.
    #[error(
        "{} is not empty and holds no dev cluster (no strata-dev.json); leaving it alone. Choose another \
         directory with STRATA_DEV_DIR",
        .dir.display()
    )]
    NotACluster {
        /// The directory.
        dir: PathBuf,
    },

    /// The dev cluster was created by another major version of PostgreSQL than the binaries chosen now.
    #[error(
        "the dev cluster in {} was created by PostgreSQL {cluster}, but the server binaries in {} are PostgreSQL \
         {binaries}, and a data directory only runs under the major version that created it; choose binaries of \
         PostgreSQL {cluster} (--pg-bin or STRATA_PG_BIN), or remove the cluster first (`strata dev destroy`), or \
         use another directory (STRATA_DEV_DIR)",
        .dir.display(),
        .bindir.display()
    )]
    VersionMismatch {
        /// The cluster directory.
        dir: PathBuf,
        /// The major version that created it (its `PG_VERSION` file).
        cluster: String,
        /// The directory of the binaries chosen now.
        bindir: PathBuf,
        /// Their major version.
        binaries: String,
    },

    /// The dev cluster has not been created yet.
    #[error("no dev cluster in {}; start one first (`strata dev start`)", .dir.display())]
    NotInitialized {
        /// The cluster directory.
        dir: PathBuf,
    },

    /// The dev cluster's state file is unreadable.
    #[error("invalid state file {}: {detail}; `strata dev destroy` recreates the cluster from scratch", .path.display())]
    State {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },

    /// A filesystem or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What we were doing.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Wraps an [`io::Error`] with what we were doing, for `map_err`.
pub(crate) fn io_error(context: impl Into<String>) -> impl FnOnce(io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}
