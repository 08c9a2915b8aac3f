//! Running `pg_dump` / `pg_restore`: connection settings through the environment (never the command line, so a
//! password never shows in `ps`), English messages, stderr read line by line for progress, the archive's size
//! polled while it grows, the child killed if we are dropped.

use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use super::{Event, Progress};
use crate::error::{Error, Result};

/// A command for `program` with only `PATH` and the connection's `PG*` variables in its environment.
pub(crate) fn command(program: &Path, conn: &pgstrata_conn::ConnectOptions) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("LC_ALL", "C")
        .envs(conn.pg_env())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    if let Some(home) = std::env::var_os("HOME") {
        // libpq reads ~/.pgpass and TLS files relative to it.
        cmd.env("HOME", home);
    }
    cmd
}

/// What a finished child printed on stderr.
pub(crate) struct Finished {
    pub status: ExitStatus,
    pub stderr: Vec<String>,
}

/// Run `cmd` to the end. `on_line` sees each stderr line (and may report progress); when `grow` names an archive,
/// its size is reported every 250 ms.
pub(crate) async fn run(
    mut cmd: Command,
    tool: &str,
    grow: Option<&Path>,
    progress: &mut dyn Progress,
    mut on_line: impl FnMut(&str, &mut dyn Progress),
) -> Result<Finished> {
    let mut child = cmd.spawn().map_err(|e| Error::Tool {
        message: format!("cannot start {tool}: {e}"),
        help: None,
    })?;
    let Some(stderr) = child.stderr.take() else {
        return Err(Error::Tool {
            message: format!("cannot read the output of {tool}"),
            help: None,
        });
    };
    let mut lines = BufReader::new(stderr).lines();
    let mut collected = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(line)) => {
                    on_line(&line, progress);
                    collected.push(line);
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(Error::Tool { message: format!("reading the output of {tool}: {e}"), help: None });
                }
            },
            _ = tick.tick(), if grow.is_some() => {
                if let Some(path) = grow {
                    progress.event(Event::Bytes(super::manifest::size_so_far(path)));
                }
            }
        }
    }
    let status = child.wait().await.map_err(|e| Error::Tool {
        message: format!("waiting for {tool}: {e}"),
        help: None,
    })?;
    Ok(Finished {
        status,
        stderr: collected,
    })
}

/// The lines worth showing from a failed child's stderr (its own errors, not the verbose progress lines).
pub(crate) fn error_lines(tool: &str, lines: &[String]) -> String {
    let important: Vec<&str> = lines
        .iter()
        .map(String::as_str)
        .filter(|l| {
            l.contains("error:")
                || l.contains("FATAL")
                || l.contains("ERROR")
                || l.contains("detail:")
                || l.contains("warning:")
        })
        .collect();
    let pick: Vec<&str> = if important.is_empty() {
        lines
            .iter()
            .rev()
            .take(5)
            .rev()
            .map(String::as_str)
            .collect()
    } else {
        important.into_iter().rev().take(8).rev().collect()
    };
    let text = pick
        .iter()
        .map(|l| l.strip_prefix(&format!("{tool}: ")).unwrap_or(l))
        .collect::<Vec<_>>()
        .join("\n");
    if text.is_empty() {
        "(no message)".into()
    } else {
        text
    }
}
