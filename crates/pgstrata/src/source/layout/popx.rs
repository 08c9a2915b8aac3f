//! popx (Ory's migrator for Kratos, Keto, Hydra): `<version>_<name>[.<dialect>][.autocommit].(up|down).sql` in the
//! folder and its subfolders (its pattern is `^(\d+)_([^.]+)(\.[a-z0-9]+)?(|\.autocommit)\.(up|down)\.(sql|fizz)$`).
//!
//! - For PostgreSQL, each version runs its `.postgres.` file (also spelt `.postgresql.` or `.pg.`) if there is one,
//!   else its dialect-less file; files for other databases (`.mysql.`, `.sqlite3.`, `.cockroach.`) and for dialects
//!   popx does not know are ignored, as popx ignores them.
//! - Versions are compared as text, as popx compares them (Ory's are 14- or 20-digit timestamps).
//! - `.autocommit.` runs the file outside a transaction.
//! - popx renders each file as a Go template; a file with template syntax (`{{`) cannot be rendered here and is
//!   refused. `.fizz` files (pop's own DSL) are not SQL and are not read.
//! - Its tracking table is `schema_migration (version, version_self)`; a version longer than 14 digits counts as
//!   applied when its first 14 digits are recorded (popx's legacy versions).

use std::collections::BTreeMap;

use super::{Folder, Found, Listing, Scan, SortKey, TxRule, Verdict};
use crate::error::{Error, Result};

/// Which database a popx file is for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Dialect {
    /// No dialect in the name: every database.
    All,
    /// `postgres`, `postgresql` or `pg`.
    Postgres,
    /// Another database popx knows (`mysql`, `sqlite3`, `cockroach`).
    Other(String),
    /// A dialect popx does not know: it ignores the file.
    Unknown(String),
}

/// A popx file name, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PopxName<'a> {
    pub version: &'a str,
    pub name: &'a str,
    pub dialect: Dialect,
    pub autocommit: bool,
    pub up: bool,
}

/// popx's reading of a file's base name; `None` for files it ignores because they do not match its pattern.
pub(super) fn parse(base: &str) -> Option<PopxName<'_>> {
    let stem = base.strip_suffix(".sql")?;
    let (version, rest) = stem.split_once('_')?;
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let parts: Vec<&str> = rest.split('.').collect();
    let (name, middle, direction) = match parts.as_slice() {
        [name, middle @ .., direction] if !name.is_empty() => (*name, middle, *direction),
        _ => return None,
    };
    let up = match direction {
        "up" => true,
        "down" => false,
        _ => return None,
    };
    let dialect_word = |d: &str| {
        !d.is_empty()
            && d.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let (dialect, autocommit) = match middle {
        [] => (None, false),
        ["autocommit"] => (None, true),
        [d] if dialect_word(d) => (Some(*d), false),
        [d, "autocommit"] if dialect_word(d) => (Some(*d), true),
        _ => return None,
    };
    let dialect = match dialect {
        None => Dialect::All,
        Some("postgres" | "postgresql" | "pg") => Dialect::Postgres,
        Some(d @ ("mysql" | "sqlite3" | "sqlite" | "cockroach" | "cockroachdb" | "crdb")) => {
            Dialect::Other(d.to_string())
        }
        Some(d) => Dialect::Unknown(d.to_string()),
    };
    Some(PopxName {
        version,
        name,
        dialect,
        autocommit,
        up,
    })
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Per version, the files for PostgreSQL: the `.postgres.` one, else the dialect-less one.
#[derive(Default)]
struct Version<'a> {
    postgres_up: Option<(&'a str, PopxName<'a>)>,
    all_up: Option<(&'a str, PopxName<'a>)>,
    postgres_down: Option<&'a str>,
    all_down: Option<&'a str>,
}

pub(super) fn scan(folder: &Folder<'_>) -> Result<Scan> {
    let mut versions: BTreeMap<&str, Version<'_>> = BTreeMap::new();
    for path in &folder.files {
        let Some(n) = parse(base_name(path)) else {
            continue;
        };
        let v = versions.entry(n.version).or_default();
        let slot_taken = |taken: bool| -> Result<()> {
            if taken {
                return Err(Error::usage(
                    format!(
                        "popx: two {} files for PostgreSQL have the version {}, {path} among them",
                        if n.up { "up" } else { "down" },
                        n.version
                    ),
                    Some("each migration needs its own version: renumber one of them".into()),
                ));
            }
            Ok(())
        };
        match (&n.dialect, n.up) {
            (Dialect::Postgres, true) => {
                slot_taken(v.postgres_up.is_some())?;
                v.postgres_up = Some((path, n));
            }
            (Dialect::All, true) => {
                slot_taken(v.all_up.is_some())?;
                v.all_up = Some((path, n));
            }
            (Dialect::Postgres, false) => {
                slot_taken(v.postgres_down.is_some())?;
                v.postgres_down = Some(path);
            }
            (Dialect::All, false) => {
                slot_taken(v.all_down.is_some())?;
                v.all_down = Some(path);
            }
            (Dialect::Other(_) | Dialect::Unknown(_), _) => {}
        }
    }
    let mut migrations = Vec::with_capacity(versions.len());
    for (version, v) in versions {
        let Some((up, n)) = v.postgres_up.or(v.all_up) else {
            continue;
        };
        migrations.push(Found {
            name: format!("{version}_{}", n.name),
            version: version.to_string(),
            key: SortKey::Text(version.to_string()),
            up: up.to_string(),
            down: v.postgres_down.or(v.all_down).map(str::to_string),
            tx: TxRule::Popx {
                autocommit: n.autocommit,
            },
        });
    }
    Ok(Scan {
        migrations,
        repeatables: Vec::new(),
    })
}

/// Why popx does not run `file` on PostgreSQL.
pub(super) fn ignore_reason(file: &str) -> String {
    match parse(base_name(file)) {
        Some(PopxName {
            dialect: Dialect::Other(d),
            ..
        }) => format!("popx runs it on {d}, not PostgreSQL"),
        Some(PopxName {
            dialect: Dialect::Unknown(d),
            ..
        }) => format!("popx ignores the unknown dialect `{d}`"),
        Some(_) => "the .postgres. file of the same version replaces it".into(),
        None => format!(
            "not named like a popx migration ({})",
            super::expected(super::Layout::Popx)
        ),
    }
}

/// A rendered popx template is what runs; Strata runs the file as written, so template syntax must not be there.
pub(super) fn template_at(text: &str) -> Option<usize> {
    text.find("{{")
}

pub(super) fn detect(listing: &Listing) -> Verdict {
    let mut files: Vec<String> = listing.sql_files.clone();
    for (dir, inner) in &listing.dirs {
        files.extend(
            inner
                .iter()
                .filter(|f| f.ends_with(".sql"))
                .map(|f| format!("{dir}/{f}")),
        );
    }
    let mut ups: BTreeMap<(&str, bool), &str> = BTreeMap::new();
    let mut dialects = 0;
    let mut ignored = Vec::new();
    for f in &files {
        let Some(n) = parse(base_name(f)) else {
            ignored.push(f.clone());
            continue;
        };
        if n.dialect != Dialect::All || n.autocommit {
            dialects += 1;
        }
        match n.dialect {
            Dialect::Postgres | Dialect::All if n.up => {
                let key = (n.version, n.dialect == Dialect::Postgres);
                if let Some(other) = ups.insert(key, f) {
                    return Verdict::No(format!(
                        "{other} and {f} have the same version {}",
                        n.version
                    ));
                }
            }
            // Files for other databases are part of the folder's shape, not strays.
            _ => {}
        }
    }
    let versions: std::collections::BTreeSet<&str> = ups.keys().map(|(v, _)| *v).collect();
    if versions.is_empty() {
        return Verdict::No("no files named <version>_<name>[.postgres].up.sql".into());
    }
    Verdict::Partly {
        why: format!(
            "{} version(s) of <version>_<name>[.<dialect>][.autocommit].up.sql ({dialects} file(s) with a dialect \
             or .autocommit)",
            versions.len()
        ),
        migrations: versions.len(),
        ignored,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_popx() {
        let n = parse("20210410175418000000_identity.postgres.autocommit.up.sql").unwrap();
        assert_eq!(
            (n.version, n.name, &n.dialect, n.autocommit, n.up),
            (
                "20210410175418000000",
                "identity",
                &Dialect::Postgres,
                true,
                true
            )
        );
        let n = parse("1_init.down.sql").unwrap();
        assert_eq!(
            (n.dialect, n.autocommit, n.up),
            (Dialect::All, false, false)
        );
        assert_eq!(
            parse("1_init.mysql.up.sql").unwrap().dialect,
            Dialect::Other("mysql".into())
        );
        assert!(parse("1_init.autocommit.up.sql").unwrap().autocommit);
        assert!(parse("1_init.up.fizz").is_none());
        for ignored in [
            "init.up.sql",
            "1_init.sql",
            "1_.up.sql",
            "x_init.up.sql",
            "1_a.b.c.up.sql",
        ] {
            assert!(parse(ignored).is_none(), "{ignored}");
        }
    }
}
