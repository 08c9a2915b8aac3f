use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::os::{describe, output_detail};

/// The directory holding the PostgreSQL server binaries (`initdb`, `postgres`, `pg_ctl`, …).
///
/// ```no_run
/// let bins = pgstrata_embedded::PgBinaries::find()?;
/// println!("PostgreSQL {} in {}", bins.version()?, bins.bindir().display());
/// # Ok::<(), pgstrata_embedded::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    bindir: PathBuf,
}

impl PgBinaries {
    /// Finds the server binaries: `$PG_BINDIR`, else `pg_config --bindir`, else the newest
    /// `/usr/lib/postgresql/<N>/bin` (numeric sort, as Debian and Ubuntu install them).
    ///
    /// A set `PG_BINDIR` is final: if it lacks the binaries we fail rather than silently use another version.
    pub fn find() -> Result<Self, Error> {
        let mut searched = Vec::new();

        if let Some(dir) = env::var_os("PG_BINDIR").filter(|dir| !dir.is_empty()) {
            let dir = PathBuf::from(dir);
            return Self::from_dir(dir.clone()).map_err(|_| Error::BinariesNotFound {
                searched: vec![format!(
                    "PG_BINDIR={} (no initdb/postgres there)",
                    dir.display()
                )],
            });
        }

        match Command::new("pg_config").arg("--bindir").output() {
            Ok(out) if out.status.success() => {
                let dir = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
                if has_server_binaries(&dir) {
                    return Ok(Self { bindir: dir });
                }
                // Client-only packages (libpq-dev) ship a pg_config whose bindir has no server.
                searched.push(format!(
                    "`pg_config --bindir` = {} (no initdb/postgres there)",
                    dir.display()
                ));
            }
            Ok(out) => searched.push(format!("`pg_config --bindir` ({})", out.status)),
            Err(_) => searched.push("`pg_config --bindir` (pg_config not on PATH)".to_owned()),
        }

        let root = Path::new("/usr/lib/postgresql");
        if let Some(dir) = newest_versioned_bindir(root) {
            return Ok(Self { bindir: dir });
        }
        searched.push(format!("{}/<version>/bin", root.display()));
        Err(Error::BinariesNotFound { searched })
    }

    /// Uses the binaries in `dir`, which must contain `initdb` and `postgres`.
    pub fn from_dir(dir: impl Into<PathBuf>) -> Result<Self, Error> {
        let bindir = dir.into();
        if has_server_binaries(&bindir) {
            Ok(Self { bindir })
        } else {
            Err(Error::BinariesNotFound {
                searched: vec![format!("{} (no initdb/postgres there)", bindir.display())],
            })
        }
    }

    /// The binaries in the directory named by environment variable `var` (e.g. `PGTEST_BINDIR`,
    /// `STRATA_PG_BIN`) if it is set and not empty, else [`find`](Self::find).
    ///
    /// A set variable is final, like `PG_BINDIR`: a directory without `initdb` and `postgres` is an error naming
    /// the variable, never a silent fall-back to another version.
    pub fn from_env_or_find(var: &str) -> Result<Self, Error> {
        match env::var_os(var).filter(|dir| !dir.is_empty()) {
            Some(dir) => Self::from_dir_named(PathBuf::from(dir), var),
            None => Self::find(),
        }
    }

    /// [`from_dir`](Self::from_dir), with the error saying where the directory came from (`--pg-bin`,
    /// `STRATA_PG_BIN`, …).
    pub fn from_dir_named(dir: impl Into<PathBuf>, source: &str) -> Result<Self, Error> {
        let dir = dir.into();
        Self::from_dir(dir.clone()).map_err(|_| Error::BinariesNotFound {
            searched: vec![format!(
                "{source}={} (no initdb/postgres there)",
                dir.display()
            )],
        })
    }

    /// The directory holding the binaries.
    pub fn bindir(&self) -> &Path {
        &self.bindir
    }

    /// The path of one tool in [`bindir`](Self::bindir), e.g. `tool("psql")`; it may not exist.
    pub fn tool(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// The server version as `postgres --version` reports it, e.g. `"15.18"`.
    pub fn version(&self) -> Result<String, Error> {
        let mut cmd = Command::new(self.tool("postgres"));
        cmd.arg("--version");
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
        let text = String::from_utf8_lossy(&out.stdout);
        // "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"
        text.split_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .map(str::to_owned)
            .ok_or_else(|| Error::Command {
                command,
                detail: format!("unexpected output {:?}", text.trim()),
            })
    }

    /// The major version as PostgreSQL writes it in a data directory's `PG_VERSION` file: `"18"` for 18.4,
    /// `"9.6"` for 9.6.24.
    pub fn major_version(&self) -> Result<String, Error> {
        Ok(major_of(&self.version()?))
    }
}

/// `"18"` of `"18.4"` (or of `"18beta1"`); `"9.6"` of `"9.6.24"`: before 10 the major version had two parts.
fn major_of(version: &str) -> String {
    let digits = |s: &str| {
        s.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
    };
    let mut parts = version.split('.');
    let first = digits(parts.next().unwrap_or_default());
    match first.parse::<u32>() {
        Ok(n) if n < 10 => format!("{first}.{}", digits(parts.next().unwrap_or_default())),
        _ => first,
    }
}

fn has_server_binaries(dir: &Path) -> bool {
    dir.join("initdb").is_file() && dir.join("postgres").is_file()
}

/// The highest-numbered `<root>/<N>/bin` holding a server; `10` sorts above `9`.
fn newest_versioned_bindir(root: &Path) -> Option<PathBuf> {
    let entries = std::fs::read_dir(root).ok()?;
    entries
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version = entry.file_name().to_str()?.parse::<u32>().ok()?;
            let bindir = entry.path().join("bin");
            has_server_binaries(&bindir).then_some((version, bindir))
        })
        .max_by_key(|(version, _)| *version)
        .map(|(_, bindir)| bindir)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn newest_version_sorts_numerically() {
        let root = tempfile::tempdir().unwrap();
        for version in ["9", "10", "notanumber"] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            std::fs::write(bin.join("initdb"), "").unwrap();
            std::fs::write(bin.join("postgres"), "").unwrap();
        }
        // A newer version without a server does not count.
        std::fs::create_dir_all(root.path().join("11/bin")).unwrap();
        assert_eq!(
            newest_versioned_bindir(root.path()),
            Some(root.path().join("10/bin"))
        );
    }

    #[test]
    fn major_version_as_in_pg_version_files() {
        assert_eq!(major_of("18.4"), "18");
        assert_eq!(major_of("14.23"), "14");
        assert_eq!(major_of("18beta1"), "18");
        assert_eq!(major_of("9.6.24"), "9.6");
    }
}
