//! sqlx: `<version>_<description>.sql` (simple) or `<version>_<description>.up.sql` / `.down.sql` (reversible) in one
//! folder. The version must parse as an `i64` (sqlx fails otherwise); files without `_` or not ending in `.sql` are
//! ignored, as sqlx does. Ordered by version; `-- no-transaction` as the first bytes of a file runs it outside a
//! transaction.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use super::{Folder, Found, Listing, Scan, SortKey, TxRule, Verdict, dbmate, some_names};
use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Simple,
    Up,
    Down,
}

/// sqlx's reading of a file name: `Ok(None)` for files sqlx ignores, an error for a version that is not an i64.
pub(super) fn parse(file: &str) -> Result<Option<(i64, Kind, &str)>> {
    let Some((version, rest)) = file.split_once('_') else {
        return Ok(None);
    };
    if !rest.ends_with(".sql") {
        return Ok(None);
    }
    let v: i64 = version.parse().map_err(|_| {
        Error::usage(
            format!("sqlx: the version `{version}` of {file} is not a 64-bit integer"),
            Some("sqlx names migrations <version>_<description>.sql".into()),
        )
    })?;
    let (kind, stem) = if let Some(s) = file.strip_suffix(".up.sql") {
        (Kind::Up, s)
    } else if let Some(s) = file.strip_suffix(".down.sql") {
        (Kind::Down, s)
    } else {
        (Kind::Simple, file.strip_suffix(".sql").unwrap_or(file))
    };
    Ok(Some((v, kind, stem)))
}

pub(super) fn scan(folder: &Folder<'_>) -> Result<Scan> {
    let mut ups: BTreeMap<i64, Found> = BTreeMap::new();
    let mut downs: BTreeMap<i64, String> = BTreeMap::new();
    for f in folder.top_level() {
        let Some((v, kind, stem)) = parse(f)? else {
            continue;
        };
        if kind == Kind::Down {
            downs.insert(v, f.to_string());
            continue;
        }
        let found = Found {
            name: stem.to_string(),
            version: v.to_string(),
            key: SortKey::Int(i128::from(v)),
            up: f.to_string(),
            down: None,
            tx: TxRule::SqlxPrefix,
        };
        if let Some(other) = ups.insert(v, found) {
            return Err(Error::usage(
                format!("sqlx: {} and {f} have the same version {v}", other.up),
                Some("each migration needs its own version: renumber one of them".into()),
            ));
        }
    }
    // A down file without an up file is ignored, as sqlx ignores it when migrating.
    for (v, down) in downs {
        if let Some(up) = ups.get_mut(&v) {
            up.down = Some(down);
        }
    }
    Ok(Scan {
        migrations: ups.into_values().collect(),
        repeatables: Vec::new(),
    })
}

/// What `strata adopt` honours of sqlx's configuration file, `sqlx.toml` (sqlx 0.9, at the crate root): the
/// characters `[migrate] ignored-chars` drops before hashing a migration, and `[migrate] table-name`.
#[derive(Debug, Clone, Default)]
pub(crate) struct SqlxConfig {
    ignored_chars: BTreeSet<char>,
    /// `[migrate] table-name`: the tracking table, when not `_sqlx_migrations`.
    pub table_name: Option<String>,
}

impl SqlxConfig {
    /// The `sqlx.toml` of the crate that holds `dir`: looked for in `dir` and its parents, up to the first folder with
    /// a `Cargo.toml` (the crate root) or four levels up. None found: sqlx's defaults.
    pub(crate) fn find(dir: &Path) -> Result<SqlxConfig> {
        let start = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        for folder in start.ancestors().take(5) {
            let file = folder.join("sqlx.toml");
            if file.is_file() {
                return SqlxConfig::read(&file);
            }
            if folder.join("Cargo.toml").is_file() {
                break;
            }
        }
        Ok(SqlxConfig::default())
    }

    fn read(file: &Path) -> Result<SqlxConfig> {
        let text = std::fs::read_to_string(file).map_err(|source| Error::Read {
            path: file.to_path_buf(),
            source,
        })?;
        let bad = |m: String| {
            Error::usage(
                format!("{}: {m}", file.display()),
                Some(
                    "sqlx.toml: [migrate] ignored-chars = [\"\\r\"] lists single characters".into(),
                ),
            )
        };
        let table: toml::Table = toml::from_str(&text).map_err(|e| bad(e.message().to_string()))?;
        let mut config = SqlxConfig::default();
        let Some(migrate) = table.get("migrate").and_then(toml::Value::as_table) else {
            return Ok(config);
        };
        if let Some(chars) = migrate.get("ignored-chars") {
            let list = chars.as_array().ok_or_else(|| {
                bad("[migrate] ignored-chars must be a list of characters".into())
            })?;
            for c in list {
                let mut it = c.as_str().unwrap_or_default().chars();
                match (it.next(), it.next()) {
                    (Some(ch), None) => {
                        config.ignored_chars.insert(ch);
                    }
                    _ => {
                        return Err(bad(format!(
                            "[migrate] ignored-chars: {c} is not one character"
                        )));
                    }
                }
            }
        }
        config.table_name = migrate
            .get("table-name")
            .and_then(toml::Value::as_str)
            .map(str::to_string);
        Ok(config)
    }

    /// The text sqlx hashes: the file without the ignored characters.
    pub(crate) fn hashed_text<'a>(&self, raw: &'a str) -> Cow<'a, str> {
        if self.ignored_chars.is_empty() {
            Cow::Borrowed(raw)
        } else {
            Cow::Owned(
                raw.chars()
                    .filter(|c| !self.ignored_chars.contains(c))
                    .collect(),
            )
        }
    }
}

pub(super) fn detect(listing: &Listing) -> Verdict {
    if listing.sql_files.is_empty() {
        return Verdict::No("no .sql files at the top level".into());
    }
    let mut ups = 0;
    let mut downs = BTreeMap::new();
    let mut simple = 0;
    let mut versions: BTreeMap<i64, &str> = BTreeMap::new();
    let mut ignored = Vec::new();
    for f in &listing.sql_files {
        match parse(f) {
            Ok(Some((v, kind, _))) => {
                if kind == Kind::Down {
                    downs.insert(v, f.as_str());
                    continue;
                }
                if kind == Kind::Up {
                    ups += 1;
                } else {
                    simple += 1;
                }
                if let Some(other) = versions.insert(v, f) {
                    return Verdict::No(format!("{other} and {f} have the same version {v}"));
                }
            }
            Ok(None) => ignored.push(f.clone()),
            Err(e) => {
                let text = e.to_string();
                return Verdict::No(text.trim_start_matches("sqlx: ").to_string());
            }
        }
    }
    let marked: Vec<&str> = versions
        .values()
        .copied()
        .filter(|f| dbmate::has_up_marker(&listing.text(f)))
        .collect();
    if !marked.is_empty() {
        return Verdict::No(format!(
            "{} ha(s/ve) dbmate `-- migrate:up` markers, which sqlx would run as plain SQL",
            some_names(marked)
        ));
    }
    let directives: Vec<&str> = versions
        .values()
        .copied()
        .filter(|f| listing.text(f).contains("-- postgres-migrations"))
        .collect();
    if !directives.is_empty() {
        return Verdict::No(format!(
            "{} ha(s/ve) postgres-migrations directives, which sqlx would ignore",
            some_names(directives)
        ));
    }
    if ups + simple == 0 {
        return Verdict::No("only .down.sql files".into());
    }
    let paired = downs.keys().filter(|v| versions.contains_key(v)).count();
    let mut shapes = Vec::new();
    if simple > 0 {
        shapes.push(format!("{simple} file(s) <version>_<description>.sql"));
    }
    if ups > 0 {
        shapes.push(format!(
            "{ups} <version>_<description>.up.sql file(s) ({paired} with a .down.sql)"
        ));
    }
    Verdict::Partly {
        why: shapes.join(" and "),
        migrations: ups + simple,
        ignored,
    }
}
