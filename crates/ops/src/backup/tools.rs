//! Finding `pg_dump` / `pg_restore` of the server's major version.
//!
//! A `pg_dump` older than the server refuses to dump it; a newer one writes SQL and archive versions that an older
//! `pg_restore` or server may not take. So Strata runs the client programs of the server's own major version,
//! looked up where `--embedded` finds the server binaries (`$PG_BINDIR`, `pg_config --bindir`, the newest
//! `/usr/lib/postgresql/<N>/bin`), then in `/usr/lib/postgresql/<major>/bin`, then on `PATH`.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::{Error, Result};

/// A client program and its version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Tool {
    /// Where it is.
    pub path: PathBuf,
    /// Its version, e.g. `15.18`.
    pub version: String,
    /// Its major version, e.g. 15.
    pub major: u32,
}

/// The major version of a `server_version_num` (150018 → 15).
pub fn major_of(version_num: i32) -> u32 {
    u32::try_from(version_num / 10_000).unwrap_or(0)
}

/// Parse `pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)` into `("15.18", 15)`.
pub fn parse_version(output: &str) -> Option<(String, u32)> {
    let line = output.lines().next()?;
    let rest = line.split_once(')')?.1;
    let version = rest.split_whitespace().next()?;
    let major = version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    Some((version.to_string(), major))
}

/// Run `PROGRAM --version`.
pub async fn version_of(path: &Path) -> Result<(String, u32)> {
    let out = tokio::process::Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .output()
        .await
        .map_err(|e| Error::Tool {
            message: format!("cannot run {}: {e}", path.display()),
            help: None,
        })?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        return Err(Error::Tool {
            message: format!("{} --version failed ({})", path.display(), out.status),
            help: None,
        });
    }
    parse_version(&text).ok_or_else(|| Error::Tool {
        message: format!(
            "{} --version printed {:?}, not a PostgreSQL version",
            path.display(),
            text.trim()
        ),
        help: None,
    })
}

fn candidates(name: &str, server_major: u32) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(bins) = pgstrata_embedded::PgBinaries::find() {
        out.push(bins.tool(name));
    }
    out.push(
        Path::new("/usr/lib/postgresql")
            .join(server_major.to_string())
            .join("bin")
            .join(name),
    );
    if let Some(path) = std::env::var_os("PATH") {
        out.extend(std::env::split_paths(&path).map(|dir| dir.join(name)));
    }
    // The same program reached through symlinks (/bin → /usr/bin, Debian's wrapper) counts once.
    let mut seen = Vec::new();
    out.retain(|p| {
        let real = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let keep = p.is_file() && !seen.contains(&real);
        seen.push(real);
        keep
    });
    out
}

/// The `name` program (`pg_dump`, `pg_restore`) of major version `server_major`: `explicit` if given (its version
/// must match), else the first match among the places listed in the module docs. A mismatch is an error that says
/// which versions were found.
pub async fn find(name: &str, server_major: u32, explicit: Option<&Path>) -> Result<Tool> {
    let help = format!(
        "install the PostgreSQL {server_major} client programs (Debian/Ubuntu: postgresql-client-{server_major}), \
         or point PG_BINDIR or --{} at a {name} {server_major}",
        name.replace('_', "-")
    );
    if let Some(path) = explicit {
        let (version, major) = version_of(path).await?;
        if major != server_major {
            return Err(Error::Tool {
                message: format!(
                    "{} is {name} {version}, but the server is PostgreSQL {server_major}: its {name} must be the \
                     same major version",
                    path.display()
                ),
                help: Some(help),
            });
        }
        return Ok(Tool {
            path: path.to_path_buf(),
            version,
            major,
        });
    }
    let mut found = Vec::new();
    for path in candidates(name, server_major) {
        match version_of(&path).await {
            Ok((version, major)) if major == server_major => {
                return Ok(Tool {
                    path,
                    version,
                    major,
                });
            }
            Ok((version, _)) => found.push(format!("{name} {version} ({})", path.display())),
            Err(e) => found.push(e.to_string()),
        }
    }
    Err(Error::Tool {
        message: if found.is_empty() {
            format!("no {name} found for PostgreSQL {server_major}")
        } else {
            format!(
                "no {name} of PostgreSQL {server_major} (the server's version) found; found {}",
                found.join(", ")
            )
        },
        help: Some(help),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn versions_parse() {
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n"),
            Some(("15.18".into(), 15))
        );
        assert_eq!(
            parse_version("pg_restore (PostgreSQL) 18beta1"),
            Some(("18beta1".into(), 18))
        );
        assert_eq!(
            parse_version("pg_dump (PostgreSQL) 9.6.24"),
            Some(("9.6.24".into(), 9))
        );
        assert_eq!(parse_version("something else"), None);
        assert_eq!(major_of(170_002), 17);
    }
}
