//! Operating-system plumbing shared by both cluster kinds: the unprivileged server user, command lines,
//! `postmaster.pid`, logs and URLs.

use std::ffi::CString;
use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::error::io_error;
use crate::{Error, PgBinaries};

/// The OS user the server runs as when we are root (initdb and postgres refuse to run as root).
#[derive(Debug, Clone)]
pub(crate) struct ServerUser {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

impl ServerUser {
    /// `None` when we are not root: then the server simply runs as us.
    pub(crate) fn for_current_process() -> Result<Option<Self>, Error> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        ["postgres", "nobody"]
            .into_iter()
            .find_map(lookup_user)
            .map(Some)
            .ok_or(Error::NoServerUser)
    }

    /// Hands `path` to the server user, which must own its data and socket directories.
    pub(crate) fn chown(&self, path: &Path) -> Result<(), Error> {
        std::os::unix::fs::chown(path, Some(self.uid), Some(self.gid)).map_err(io_error(format!(
            "cannot chown {} to {}",
            path.display(),
            self.name
        )))
    }

    /// Checks that the server user can traverse every ancestor of `dir`, so we fail with a clear message
    /// instead of a permission error deep inside initdb (e.g. for a directory under /root).
    pub(crate) fn check_can_reach(&self, dir: &Path) -> Result<(), Error> {
        for ancestor in dir.ancestors().skip(1) {
            let Ok(meta) = fs::metadata(ancestor) else {
                continue;
            };
            let mode = meta.mode();
            let searchable = if meta.uid() == self.uid {
                mode & 0o100 != 0
            } else if meta.gid() == self.gid {
                mode & 0o010 != 0
            } else {
                mode & 0o001 != 0
            };
            if !searchable {
                return Err(Error::Inaccessible {
                    path: ancestor.to_path_buf(),
                    user: self.name.clone(),
                });
            }
        }
        Ok(())
    }
}

fn lookup_user(name: &str) -> Option<ServerUser> {
    let c_name = CString::new(name).ok()?;
    // SAFETY: passwd is a plain C struct for which all-zero bytes is a valid value.
    let mut entry: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: every pointer is valid for the call and `buf.len()` is the true buffer size; getpwnam_r is the
    // thread-safe variant.
    let rc = unsafe {
        libc::getpwnam_r(
            c_name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    (rc == 0 && !result.is_null()).then(|| ServerUser {
        name: name.to_owned(),
        uid: entry.pw_uid,
        gid: entry.pw_gid,
    })
}

/// A command for a server binary, run as `user` when given, in `cwd` (the server user may not be able to enter
/// our current directory), with stdin closed.
pub(crate) fn server_command(program: &Path, user: Option<&ServerUser>, cwd: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.current_dir(cwd).stdin(Stdio::null());
    if let Some(user) = user {
        // std drops supplementary groups (setgroups(0)) before setuid when uid is set.
        cmd.uid(user.uid).gid(user.gid);
    }
    cmd
}

/// The command line for error messages, quoted where needed.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|arg| {
            let arg = arg.to_string_lossy();
            if !arg.is_empty()
                && arg
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:,@".contains(c))
            {
                arg.into_owned()
            } else {
                format!("'{}'", arg.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Exit status plus whatever the command printed, for error messages.
pub(crate) fn output_detail(out: &Output) -> String {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let printed = [stdout.trim(), stderr.trim()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>();
    if printed.is_empty() {
        out.status.to_string()
    } else {
        format!("{}: {}", out.status, printed.join("\n"))
    }
}

/// Runs `initdb` into `data` with trust auth, superuser `postgres`, UTF8 and no locale.
pub(crate) fn initdb(
    bins: &PgBinaries,
    user: Option<&ServerUser>,
    cwd: &Path,
    data: &Path,
) -> Result<(), Error> {
    let mut cmd = server_command(&bins.tool("initdb"), user, cwd);
    cmd.args([
        "--auth=trust",
        "--username=postgres",
        "--encoding=UTF8",
        "--no-locale",
        "--no-sync",
        "--pgdata",
    ])
    .arg(data);
    let command = describe(&cmd);
    let out = cmd.output().map_err(|e| Error::InitDb {
        command: command.clone(),
        status: "could not run".to_owned(),
        stderr: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(Error::InitDb {
            command,
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(())
}

/// A TCP port nobody listens on right now. The socket name includes the port, and a port free on TCP keeps
/// `listen_tcp` clusters from clashing.
pub(crate) fn free_port() -> Result<u16, Error> {
    let listener =
        TcpListener::bind(("127.0.0.1", 0)).map_err(io_error("cannot find a free TCP port"))?;
    Ok(listener
        .local_addr()
        .map_err(io_error("cannot find a free TCP port"))?
        .port())
}

/// The last `lines` lines of a log file, or a note saying why there are none.
pub(crate) fn log_tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let tail = all[all.len().saturating_sub(lines)..].join("\n");
            if tail.is_empty() {
                "(the log is empty)".to_owned()
            } else {
                tail
            }
        }
        Err(e) => format!("(cannot read the log: {e})"),
    }
}

/// What `postmaster.pid` says about a running (or crashed) server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PidFile {
    pub(crate) pid: u32,
    /// Line 8: `starting`, `ready`, `standby` or `stopping` (PostgreSQL 10+); pg_ctl waits on it too.
    pub(crate) status: String,
}

impl PidFile {
    pub(crate) fn path(data: &Path) -> PathBuf {
        data.join("postmaster.pid")
    }

    /// `None` when there is no (complete) pid file.
    pub(crate) fn read(data: &Path) -> Option<Self> {
        let text = fs::read_to_string(Self::path(data)).ok()?;
        let mut lines = text.lines();
        let pid = lines.next()?.trim().parse().ok()?;
        let status = lines.nth(6).unwrap_or_default().trim().to_owned();
        Some(Self { pid, status })
    }

    pub(crate) fn is_ready(&self) -> bool {
        matches!(self.status.as_str(), "ready" | "standby")
    }
}

/// Whether `pid` is the live postmaster of the cluster in `data`. After a crash or reboot the pid in a stale
/// `postmaster.pid` may belong to an unrelated process, even another cluster's server, or to an unreaped zombie
/// (containers often lack an init that reaps).
pub(crate) fn is_postmaster_of(pid: u32, data: &Path) -> bool {
    let Ok(pid_t) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence and permission.
    let exists = unsafe { libc::kill(pid_t, 0) } == 0
        || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    if !exists {
        return false;
    }
    let proc_dir = PathBuf::from(format!("/proc/{pid}"));
    let Ok(stat) = fs::read_to_string(proc_dir.join("stat")) else {
        // No procfs (not Linux): trust kill(0), as pg_ctl does.
        return true;
    };
    // "<pid> (<comm>) <state> …"; comm may contain spaces and parentheses, so split at the last ')'.
    let (comm, state) = match (stat.find('('), stat.rfind(')')) {
        (Some(open), Some(close)) if open < close => (
            &stat[open + 1..close],
            stat[close + 1..].trim_start().chars().next(),
        ),
        _ => return false,
    };
    if state == Some('Z') {
        return false;
    }
    // The postmaster's working directory is its data directory; reading it needs root or the same user.
    match (fs::read_link(proc_dir.join("cwd")), fs::canonicalize(data)) {
        (Ok(cwd), Ok(data)) => cwd == data,
        _ => matches!(comm, "postgres" | "postmaster"),
    }
}

const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const URL_PATH: &AsciiSet = &URL_COMPONENT.remove(b'/');

/// `postgresql://postgres@/<db>?host=<socket dir>&port=<port>`, which libpq, psql and tokio-postgres accept.
pub(crate) fn socket_url(socket_dir: &Path, port: u16, dbname: &str) -> String {
    format!(
        "postgresql://postgres@/{}?host={}&port={port}",
        utf8_percent_encode(dbname, URL_COMPONENT),
        utf8_percent_encode(&socket_dir.to_string_lossy(), URL_PATH),
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn socket_url_escapes_names_and_paths() {
        assert_eq!(
            socket_url(Path::new("/tmp/a b"), 5433, "my db?"),
            "postgresql://postgres@/my%20db%3F?host=/tmp/a%20b&port=5433"
        );
    }

    #[test]
    fn describe_quotes_what_a_shell_would_split() {
        let mut cmd = Command::new("/bin/postgres");
        cmd.args(["-c", "listen_addresses=", "-D", "/tmp/it's here"]);
        assert_eq!(
            describe(&cmd),
            r"/bin/postgres -c listen_addresses= -D '/tmp/it'\''s here'"
        );
    }

    #[test]
    fn our_own_pid_is_not_a_postmaster() {
        let data = tempfile::tempdir().unwrap();
        assert!(!is_postmaster_of(std::process::id(), data.path()));
        assert!(!is_postmaster_of(u32::MAX, data.path()));
    }
}
