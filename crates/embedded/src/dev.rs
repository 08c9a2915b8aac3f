use std::env;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::io_error;
use crate::os::{
    PidFile, ServerUser, describe, free_port, initdb, is_postmaster_of, log_tail, output_detail,
    server_command, socket_url,
};
use crate::{Error, PgBinaries};

/// Marks a directory as a dev cluster and remembers its port.
const STATE_FILE: &str = "strata-dev.json";
/// Serialises concurrent `strata dev` commands on one directory.
const LOCK_FILE: &str = "lock";
/// How long `pg_ctl` may wait for the server to start or stop.
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// A persistent local cluster for development (`strata dev start|stop|status|url`), living in one directory:
///
/// ```text
/// <dir>/strata-dev.json   state: the port, picked once at creation
/// <dir>/data/             the data directory (PGDATA)
/// <dir>/socket/           the unix socket; there is no TCP listener
/// <dir>/server.log        the server log
/// ```
///
/// The server is daemonised with `pg_ctl`, so it outlives the command that started it. When we are root it
/// runs as the `postgres` OS user (else `nobody`), because `initdb` refuses root. Every local connection is
/// trusted as the superuser `postgres`, and durability is off (`fsync`, `synchronous_commit`,
/// `full_page_writes`): the data is disposable.
///
/// ```no_run
/// use pgstrata_embedded::DevCluster;
/// let cluster = DevCluster::new(DevCluster::default_dir())?;
/// let status = cluster.start()?; // creates the cluster on first use
/// println!("{}", cluster.url("postgres")?);
/// # Ok::<(), pgstrata_embedded::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct DevCluster {
    dir: PathBuf,
    bins: PgBinaries,
    user: Option<ServerUser>,
}

/// What [`DevCluster::status`] reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DevStatus {
    /// The cluster directory.
    pub dir: PathBuf,
    /// Whether the server is running.
    pub running: bool,
    /// The postmaster's process id, when running.
    pub pid: Option<u32>,
    /// The port (part of the unix socket's name).
    pub port: u16,
    /// libpq URL of the `postgres` database.
    pub url: String,
    /// The server version, e.g. `15.18`.
    pub version: String,
    /// The directory of the server binaries.
    pub bindir: PathBuf,
}

#[derive(Debug, Serialize, Deserialize)]
struct State {
    port: u16,
    /// The binaries that created the cluster, so that later commands use the same version without being told
    /// again. Absent in state files written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bindir: Option<PathBuf>,
}

/// Holds an exclusive `flock` on the cluster directory so that concurrent `strata dev` commands serialise.
struct DirLock(#[allow(dead_code, reason = "held for its Drop, which releases the lock")] File);

impl DevCluster {
    /// `$STRATA_DEV_DIR`, else `<temp dir>/strata-dev-<uid>`.
    ///
    /// Not under `$HOME`: when we are root the server runs as another user, which must be able to traverse
    /// every parent directory, and `/root` is private. The uid keeps users of a shared machine apart.
    pub fn default_dir() -> PathBuf {
        if let Some(dir) = env::var_os("STRATA_DEV_DIR").filter(|dir| !dir.is_empty()) {
            return PathBuf::from(dir);
        }
        // SAFETY: getuid has no preconditions and cannot fail.
        let uid = unsafe { libc::getuid() };
        env::temp_dir().join(format!("strata-dev-{uid}"))
    }

    /// A handle on the cluster in `dir` (made absolute); nothing is created until [`start`](Self::start).
    ///
    /// It uses the server binaries that created the cluster (recorded in its state file), else
    /// [`PgBinaries::find`].
    pub fn new(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let dir = absolute(dir.into())?;
        let state_path = dir.join(STATE_FILE);
        let recorded = fs::read_to_string(&state_path)
            .ok()
            .and_then(|text| serde_json::from_str::<State>(&text).ok())
            .and_then(|state| state.bindir);
        let bins = match recorded {
            Some(bindir) => PgBinaries::from_dir_named(
                bindir,
                &format!(
                    "the directory recorded in {} (choose others with --pg-bin or STRATA_PG_BIN)",
                    state_path.display()
                ),
            )?,
            None => PgBinaries::find()?,
        };
        Self::with_binaries(dir, bins)
    }

    /// A handle on the cluster in `dir` that runs the server binaries `bins`, e.g. another major version than the
    /// system's. A new cluster records them, so that [`new`](Self::new) uses them later; an existing cluster
    /// must have been created by the same major version ([`Error::VersionMismatch`] on [`start`](Self::start)).
    pub fn with_binaries(dir: impl Into<PathBuf>, bins: PgBinaries) -> Result<Self, Error> {
        Ok(Self {
            dir: absolute(dir.into())?,
            bins,
            user: ServerUser::for_current_process()?,
        })
    }

    /// The server binaries this handle runs.
    pub fn binaries(&self) -> &PgBinaries {
        &self.bins
    }

    /// The cluster directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Whether the cluster has been created (by a successful [`start`](Self::start)).
    pub fn is_initialized(&self) -> bool {
        self.state_path().is_file() && self.data_dir().join("PG_VERSION").is_file()
    }

    /// Creates the cluster if needed, starts it if it is not running and returns once it accepts connections.
    ///
    /// Cheap when it is already running. A `postmaster.pid` left by a crash or reboot is removed.
    pub fn start(&self) -> Result<DevStatus, Error> {
        self.prepare_dir()?;
        let _lock = self.lock()?;
        let state = if self.is_initialized() {
            self.check_version()?;
            self.read_state()?
        } else {
            self.init()?
        };
        if let Some(pid) = self.running_pid() {
            return self.status_from(&state, Some(pid));
        }

        self.remove_stale_lock_files()?;

        let mut cmd = self.pg_ctl();
        cmd.args([
            "start",
            "--wait",
            "--timeout",
            PG_CTL_TIMEOUT_SECS,
            "--silent",
            "--pgdata",
        ])
        .arg(self.data_dir())
        .arg("--log")
        .arg(self.log_path());
        let command = describe(&cmd);
        let fail = |reason: String| Error::Start {
            command: command.clone(),
            reason,
            log: self.log_path(),
            log_tail: log_tail(&self.log_path(), 30),
        };
        let out = cmd
            .output()
            .map_err(|e| fail(format!("cannot run pg_ctl: {e}")))?;
        if !out.status.success() {
            return Err(fail(output_detail(&out)));
        }
        match self.running_pid() {
            Some(pid) => self.status_from(&state, Some(pid)),
            None => Err(fail(
                "pg_ctl reported success but no server is running".to_owned(),
            )),
        }
    }

    /// Stops the server (fast shutdown: open transactions are rolled back). Not running is fine.
    pub fn stop(&self) -> Result<(), Error> {
        if !self.dir.exists() {
            return Ok(());
        }
        let _lock = self.lock()?;
        self.stop_locked()
    }

    fn stop_locked(&self) -> Result<(), Error> {
        if self.running_pid().is_none() {
            return Ok(());
        }
        let mut cmd = self.pg_ctl();
        cmd.args([
            "stop",
            "--mode=fast",
            "--wait",
            "--timeout",
            PG_CTL_TIMEOUT_SECS,
            "--silent",
            "--pgdata",
        ])
        .arg(self.data_dir());
        let command = describe(&cmd);
        let out = cmd.output().map_err(|e| Error::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
        if !out.status.success() {
            return Err(Error::Command {
                command,
                detail: output_detail(&out),
            });
        }
        Ok(())
    }

    /// Whether the server runs, and how to reach it. Fails with [`Error::NotInitialized`] before the first start.
    pub fn status(&self) -> Result<DevStatus, Error> {
        let state = self.read_state()?;
        self.status_from(&state, self.running_pid())
    }

    /// libpq URL of database `dbname`: `postgresql://postgres@/<dbname>?host=<dir>/socket&port=<port>`.
    pub fn url(&self, dbname: &str) -> Result<String, Error> {
        Ok(socket_url(
            &self.socket_dir(),
            self.read_state()?.port,
            dbname,
        ))
    }

    /// Stops the server and deletes the directory. A missing directory is fine; one that does not hold a dev
    /// cluster is left alone ([`Error::NotACluster`]).
    pub fn destroy(&self) -> Result<(), Error> {
        if !self.dir.exists() {
            return Ok(());
        }
        self.check_is_ours()?;
        let _lock = self.lock()?;
        self.stop_locked()?;
        fs::remove_dir_all(&self.dir)
            .map_err(io_error(format!("cannot remove {}", self.dir.display())))
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// A data directory runs only under the major version that created it; the server would refuse with a line
    /// in its log, so say it here, with the way out.
    fn check_version(&self) -> Result<(), Error> {
        let path = self.data_dir().join("PG_VERSION");
        let cluster = fs::read_to_string(&path)
            .map_err(io_error(format!("cannot read {}", path.display())))?
            .trim()
            .to_owned();
        let binaries = self.bins.major_version()?;
        if cluster == binaries {
            return Ok(());
        }
        Err(Error::VersionMismatch {
            dir: self.dir.clone(),
            cluster,
            bindir: self.bins.bindir().to_path_buf(),
            binaries,
        })
    }

    fn socket_dir(&self) -> PathBuf {
        self.dir.join("socket")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    fn state_path(&self) -> PathBuf {
        self.dir.join(STATE_FILE)
    }

    fn pg_ctl(&self) -> std::process::Command {
        // No parent-death signal here: the server must outlive us. pg_ctl detaches it with setsid.
        server_command(&self.bins.tool("pg_ctl"), self.user.as_ref(), &self.dir)
    }

    fn running_pid(&self) -> Option<u32> {
        let data = self.data_dir();
        PidFile::read(&data)
            .map(|pid_file| pid_file.pid)
            .filter(|pid| is_postmaster_of(*pid, &data))
    }

    /// After a crash (or SIGKILL, or reboot) the server leaves `postmaster.pid` and its socket lock file behind.
    /// PostgreSQL removes them itself only if their pid is dead; a recycled pid or an unreaped zombie makes it
    /// refuse to start. We hold the directory lock and know no server of ours runs, so they are ours to delete.
    fn remove_stale_lock_files(&self) -> Result<(), Error> {
        let mut stale = vec![PidFile::path(&self.data_dir())];
        if let Ok(entries) = fs::read_dir(self.socket_dir()) {
            stale.extend(
                entries
                    .filter_map(Result::ok)
                    .filter(|entry| entry.file_name().to_string_lossy().starts_with(".s.PGSQL."))
                    .map(|entry| entry.path()),
            );
        }
        for path in stale.iter().filter(|path| path.exists()) {
            tracing::info!(path = %path.display(), "removing stale lock file");
            fs::remove_file(path)
                .map_err(io_error(format!("cannot remove stale {}", path.display())))?;
        }
        Ok(())
    }

    fn status_from(&self, state: &State, pid: Option<u32>) -> Result<DevStatus, Error> {
        Ok(DevStatus {
            dir: self.dir.clone(),
            running: pid.is_some(),
            pid,
            port: state.port,
            url: socket_url(&self.socket_dir(), state.port, "postgres"),
            version: self.bins.version()?,
            bindir: self.bins.bindir().to_path_buf(),
        })
    }

    fn read_state(&self) -> Result<State, Error> {
        let path = self.state_path();
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::NotInitialized {
                    dir: self.dir.clone(),
                });
            }
            Err(e) => return Err(io_error(format!("cannot read {}", path.display()))(e)),
        };
        serde_json::from_str(&text).map_err(|e| Error::State {
            path,
            detail: e.to_string(),
        })
    }

    /// Refuses directories that hold something other than a dev cluster: `start` would chown them to the server
    /// user and `destroy` would delete them.
    fn check_is_ours(&self) -> Result<(), Error> {
        let meta = fs::symlink_metadata(&self.dir)
            .map_err(io_error(format!("cannot inspect {}", self.dir.display())))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let euid = unsafe { libc::geteuid() };
        if meta.is_symlink()
            || (meta.uid() != euid && Some(meta.uid()) != self.user.as_ref().map(|u| u.uid))
        {
            return Err(Error::ForeignDirectory {
                path: self.dir.clone(),
                owner: meta.uid(),
            });
        }
        // Our lock file alone does not count: a concurrent `start` may have just created the directory.
        let holds_other_files = fs::read_dir(&self.dir)
            .map_err(io_error(format!("cannot list {}", self.dir.display())))?
            .filter_map(Result::ok)
            .any(|entry| entry.file_name() != LOCK_FILE);
        if holds_other_files && !self.state_path().is_file() {
            return Err(Error::NotACluster {
                dir: self.dir.clone(),
            });
        }
        Ok(())
    }

    /// Creates the directory, or checks an existing one, and makes it private to the server user.
    fn prepare_dir(&self) -> Result<(), Error> {
        if let Some(user) = &self.user {
            user.check_can_reach(&self.dir)?;
        }
        if self.dir.exists() {
            self.check_is_ours()?;
        } else {
            fs::create_dir_all(&self.dir)
                .map_err(io_error(format!("cannot create {}", self.dir.display())))?;
        }
        fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700)).map_err(io_error(
            format!("cannot set permissions of {}", self.dir.display()),
        ))?;
        if let Some(user) = &self.user {
            user.chown(&self.dir)?;
        }
        Ok(())
    }

    fn lock(&self) -> Result<DirLock, Error> {
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(io_error(format!("cannot open {}", path.display())))?;
        // SAFETY: the descriptor is open for the duration of the call.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_error(format!("cannot lock {}", path.display()))(
                std::io::Error::last_os_error(),
            ));
        }
        Ok(DirLock(file))
    }

    /// initdb plus our settings. The port goes in the state file first, so a retry after a failed initdb keeps it.
    fn init(&self) -> Result<State, Error> {
        let state = match self.read_state() {
            Ok(state) => state,
            Err(Error::NotInitialized { .. } | Error::State { .. }) => {
                let state = State {
                    port: free_port()?,
                    bindir: Some(absolute(self.bins.bindir().to_path_buf())?),
                };
                let path = self.state_path();
                let json = serde_json::to_string_pretty(&state).map_err(|e| Error::State {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
                fs::write(&path, json + "\n")
                    .map_err(io_error(format!("cannot write {}", path.display())))?;
                state
            }
            Err(e) => return Err(e),
        };

        let data = self.data_dir();
        if data.exists() {
            // Left by an interrupted initdb (no PG_VERSION): start over.
            fs::remove_dir_all(&data)
                .map_err(io_error(format!("cannot remove {}", data.display())))?;
        }
        let socket = self.socket_dir();
        if !socket.exists() {
            fs::create_dir(&socket)
                .map_err(io_error(format!("cannot create {}", socket.display())))?;
            fs::set_permissions(&socket, fs::Permissions::from_mode(0o700)).map_err(io_error(
                format!("cannot set permissions of {}", socket.display()),
            ))?;
            if let Some(user) = &self.user {
                user.chown(&socket)?;
            }
        }
        initdb(&self.bins, self.user.as_ref(), &self.dir, &data)?;

        let conf = data.join("postgresql.conf");
        let settings = format!(
            "\n# Added by `strata dev`: unix socket only, no durability (the data is disposable).\n\
             listen_addresses = ''\n\
             port = {port}\n\
             unix_socket_directories = {socket}\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n",
            port = state.port,
            socket = conf_string(&socket.to_string_lossy()),
        );
        OpenOptions::new()
            .append(true)
            .open(&conf)
            .and_then(|mut file| file.write_all(settings.as_bytes()))
            .map_err(io_error(format!("cannot write {}", conf.display())))?;
        Ok(state)
    }
}

fn absolute(dir: PathBuf) -> Result<PathBuf, Error> {
    std::path::absolute(&dir).map_err(io_error(format!("invalid directory {}", dir.display())))
}

/// A postgresql.conf string literal.
fn conf_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "''"))
}
