use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::error::io_error;
use crate::os::{
    PidFile, ServerUser, describe, free_port, initdb, log_tail, server_command, socket_url,
};
use crate::{Error, PgBinaries};

/// How long a fresh server may take to accept connections before we give up.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a fast shutdown may take before we SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// Settings for a [`ChildCluster`].
///
/// ```
/// let opts = pgstrata_embedded::ChildClusterOptions {
///     extra_settings: vec![("log_statement".into(), "all".into())],
///     ..Default::default()
/// };
/// assert_eq!(opts.max_connections, 200);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChildClusterOptions {
    /// `max_connections`; tests that open many connections in parallel need more than the default 100.
    pub max_connections: u32,
    /// More `-c name=value` server settings, applied last (so they override ours).
    pub extra_settings: Vec<(String, String)>,
    /// Also listen on 127.0.0.1 at [`ChildCluster::port`] (see [`ChildCluster::tcp_url`]); by default the server
    /// is reachable only through its private unix socket.
    pub listen_tcp: bool,
    /// The server binaries to use (e.g. [`PgBinaries::from_dir`] for another major version); `None` finds them
    /// with [`PgBinaries::find`].
    pub binaries: Option<PgBinaries>,
}

impl Default for ChildClusterOptions {
    fn default() -> Self {
        Self {
            max_connections: 200,
            extra_settings: Vec::new(),
            listen_tcp: false,
            binaries: None,
        }
    }
}

/// A throwaway cluster owned by this process, for tests and benchmarks.
///
/// It lives in a fresh temporary directory (data, unix socket and log), runs `postgres` directly as our child
/// with durability off (`fsync`, `synchronous_commit` and `full_page_writes` off), and trusts every local
/// connection as the superuser `postgres`. [`shutdown`](Self::shutdown) or drop stops it and deletes the
/// directory. If this process dies without either, the kernel kills the server (`PR_SET_PDEATHSIG`), though the
/// directory then stays behind.
///
/// ```no_run
/// use pgstrata_embedded::{ChildCluster, ChildClusterOptions};
/// let cluster = ChildCluster::start(&ChildClusterOptions::default())?;
/// let url = cluster.url("postgres"); // postgresql://postgres@/postgres?host=/tmp/…&port=…
/// cluster.shutdown()?;
/// # Ok::<(), pgstrata_embedded::Error>(())
/// ```
#[derive(Debug)]
pub struct ChildCluster {
    /// `None` once removed; holds the data directory, the socket and the log.
    dir: Option<TempDir>,
    socket_dir: PathBuf,
    port: u16,
    listen_tcp: bool,
    /// `None` once stopped.
    server: Option<Child>,
}

impl ChildCluster {
    /// Creates the cluster with `initdb`, starts it and waits until it accepts connections.
    pub fn start(opts: &ChildClusterOptions) -> Result<Self, Error> {
        let bins = match &opts.binaries {
            Some(bins) => bins.clone(),
            None => PgBinaries::find()?,
        };
        let user = ServerUser::for_current_process()?;
        let dir = tempfile::Builder::new()
            .prefix("pgstrata-")
            .tempdir()
            .map_err(io_error(
                "cannot create a temporary directory for PostgreSQL",
            ))?;
        let root = dir.path().to_path_buf();
        if let Some(user) = &user {
            user.check_can_reach(&root)?;
            user.chown(&root)?;
        }
        let data = root.join("data");
        initdb(&bins, user.as_ref(), &root, &data)?;

        let port = free_port()?;
        let log_path = root.join("postgres.log");
        let log = File::create(&log_path)
            .map_err(io_error(format!("cannot create {}", log_path.display())))?;
        let log_err = log
            .try_clone()
            .map_err(io_error(format!("cannot open {}", log_path.display())))?;

        let mut cmd = server_command(&bins.tool("postgres"), user.as_ref(), &root);
        cmd.arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(&root)
            .arg("-p")
            .arg(port.to_string());
        let listen = if opts.listen_tcp { "127.0.0.1" } else { "" };
        let settings = [
            ("listen_addresses", listen.to_owned()),
            ("fsync", "off".to_owned()),
            ("synchronous_commit", "off".to_owned()),
            ("full_page_writes", "off".to_owned()),
            ("max_connections", opts.max_connections.to_string()),
        ];
        let extra = opts
            .extra_settings
            .iter()
            .map(|(name, value)| (name.as_str(), value.clone()));
        for (name, value) in settings.into_iter().chain(extra) {
            cmd.arg("-c").arg(format!("{name}={value}"));
        }
        cmd.stdout(Stdio::from(log)).stderr(Stdio::from(log_err));
        let command = describe(&cmd);

        let server = spawn_owned(cmd).map_err(|e| Error::Start {
            command: command.clone(),
            reason: format!("cannot spawn: {e}"),
            log: log_path.clone(),
            log_tail: log_tail(&log_path, 30),
        })?;
        tracing::debug!(pid = server.id(), dir = %root.display(), port, "started child PostgreSQL");
        let mut cluster = Self {
            dir: Some(dir),
            socket_dir: root,
            port,
            listen_tcp: opts.listen_tcp,
            server: Some(server),
        };
        cluster.wait_ready(&data, &command, &log_path)?;
        Ok(cluster)
    }

    fn wait_ready(&mut self, data: &Path, command: &str, log: &Path) -> Result<(), Error> {
        let fail = |reason: String| Error::Start {
            command: command.to_owned(),
            reason,
            log: log.to_path_buf(),
            log_tail: log_tail(log, 30),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let Some(server) = self.server.as_mut() else {
                return Err(fail("the server is gone".to_owned()));
            };
            if let Some(status) = server
                .try_wait()
                .map_err(|e| fail(format!("cannot check the server: {e}")))?
            {
                self.server = None;
                return Err(fail(format!("the server exited ({status})")));
            }
            // The postmaster marks its pid file `ready` once it accepts connections (what `pg_ctl -w` waits for).
            if PidFile::read(data)
                .is_some_and(|pid_file| pid_file.pid == server.id() && pid_file.is_ready())
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(fail(format!(
                    "not ready after {} s",
                    START_TIMEOUT.as_secs()
                )));
            }
            thread::sleep(Duration::from_millis(5));
        }
    }

    /// The directory holding the server's unix socket (libpq's `host`).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The server's port: part of the socket's name, and the TCP port if `listen_tcp` was set.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// libpq URL of database `dbname` via the unix socket:
    /// `postgresql://postgres@/<dbname>?host=<socket dir>&port=<port>`.
    pub fn url(&self, dbname: &str) -> String {
        socket_url(&self.socket_dir, self.port, dbname)
    }

    /// libpq URL of database `dbname` over TCP (`postgresql://postgres@127.0.0.1:<port>/<dbname>`), if the cluster
    /// was started with `listen_tcp`.
    pub fn tcp_url(&self, dbname: &str) -> Option<String> {
        let encoded =
            percent_encoding::utf8_percent_encode(dbname, percent_encoding::NON_ALPHANUMERIC);
        self.listen_tcp
            .then(|| format!("postgresql://postgres@127.0.0.1:{}/{encoded}", self.port))
    }

    /// Stops the server (fast shutdown, waiting for it to exit) and deletes its directory.
    pub fn shutdown(mut self) -> Result<(), Error> {
        self.stop_and_remove()
    }

    fn stop_and_remove(&mut self) -> Result<(), Error> {
        let stopped = match self.server.take() {
            Some(server) => stop(server),
            None => Ok(()),
        };
        let removed = match self.dir.take() {
            Some(dir) => {
                let path = dir.path().display().to_string();
                dir.close()
                    .map_err(io_error(format!("cannot remove {path}")))
            }
            None => Ok(()),
        };
        stopped.and(removed)
    }
}

impl Drop for ChildCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop_and_remove() {
            tracing::warn!("cannot clean up the child PostgreSQL: {e}");
        }
    }
}

/// SIGINT (fast shutdown: abort transactions, disconnect, checkpoint) and reap; SIGKILL if it hangs.
fn stop(mut server: Child) -> Result<(), Error> {
    let server_pid = server.id();
    let context = || format!("cannot stop PostgreSQL (pid {server_pid})");
    let pid = libc::pid_t::try_from(server_pid).map_err(|e| Error::Io {
        context: context(),
        source: io::Error::new(io::ErrorKind::InvalidInput, e),
    })?;
    // SAFETY: `pid` is our unreaped child, so it cannot have been recycled.
    if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
        return Err(Error::Io {
            context: context(),
            source: io::Error::last_os_error(),
        });
    }
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if server.try_wait().map_err(io_error(context()))?.is_some() {
            return Ok(());
        }
        thread::sleep(Duration::from_millis(5));
    }
    tracing::warn!(
        pid,
        "PostgreSQL ignored SIGINT for {} s; killing it",
        STOP_TIMEOUT.as_secs()
    );
    server.kill().map_err(io_error(context()))?;
    server.wait().map_err(io_error(context()))?;
    Ok(())
}

type SpawnRequest = (Command, mpsc::Sender<io::Result<Child>>);

/// Spawns `cmd` so that the kernel SIGKILLs it when this process dies, however it dies.
///
/// `PR_SET_PDEATHSIG` fires when the *thread* that forked the child exits, not the process. Test harnesses
/// start clusters from short-lived test threads, so every spawn goes through one thread that never exits.
fn spawn_owned(mut cmd: Command) -> io::Result<Child> {
    static SPAWNER: OnceLock<Option<mpsc::Sender<SpawnRequest>>> = OnceLock::new();

    set_parent_death_signal(&mut cmd);
    let spawner = SPAWNER.get_or_init(|| {
        let (requests, inbox) = mpsc::channel::<SpawnRequest>();
        let thread = thread::Builder::new()
            .name("pgstrata-spawner".to_owned())
            .spawn(move || {
                for (mut cmd, reply) in inbox {
                    // The caller may have given up waiting; nothing to do then.
                    let _ = reply.send(cmd.spawn());
                }
                // Unreachable while the static sender lives; parking keeps the PDEATHSIG parent alive regardless.
                loop {
                    thread::park();
                }
            });
        thread.ok().map(|_| requests)
    });
    let spawner = spawner
        .as_ref()
        .ok_or_else(|| io::Error::other("cannot start the process-spawning thread"))?;
    let (reply, answer) = mpsc::channel();
    spawner
        .send((cmd, reply))
        .map_err(|_| io::Error::other("the process-spawning thread is gone"))?;
    answer
        .recv()
        .map_err(|_| io::Error::other("the process-spawning thread is gone"))?
}

#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id();
    // SAFETY: the closure runs between fork and exec (after std's setuid, which would otherwise clear the
    // setting) and only makes async-signal-safe calls, without allocating.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == -1 {
                return Err(io::Error::last_os_error());
            }
            // If we died before prctl took effect, the signal will never come: bail out instead.
            if u32::try_from(libc::getppid()).ok() != Some(parent) {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Other systems have no parent-death signal: the server outlives a crashed parent there.
#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_cmd: &mut Command) {}
