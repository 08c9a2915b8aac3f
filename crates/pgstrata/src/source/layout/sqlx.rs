//! sqlx: `<version>_<description>.sql` (simple) or `<version>_<description>.up.sql` / `.down.sql` (reversible) in one
//! folder. The version must parse as an `i64` (sqlx fails otherwise); files without `_` or not ending in `.sql` are
//! ignored, as sqlx does. Ordered by version; `-- no-transaction` as the first bytes of a file runs it outside a
//! transaction.

use std::collections::BTreeMap;

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

pub(super) fn detect(listing: &Listing) -> Verdict {
    if listing.sql_files.is_empty() {
        return Verdict::No("no .sql files at the top level".into());
    }
    let mut pairs = 0;
    let mut simple = 0;
    let mut odd = Vec::new();
    for f in &listing.sql_files {
        match parse(f) {
            Ok(Some((_, Kind::Up, _))) => pairs += 1,
            Ok(Some((_, Kind::Simple, _))) => simple += 1,
            Ok(Some((_, Kind::Down, _))) => {}
            _ => odd.push(f.as_str()),
        }
    }
    if !odd.is_empty() {
        return Verdict::No(format!(
            "{} (is/are) not named <i64>_<description>.sql",
            some_names(odd)
        ));
    }
    let marked: Vec<&str> = listing
        .sql_files
        .iter()
        .map(String::as_str)
        .filter(|f| dbmate::has_up_marker(&listing.text(f)))
        .collect();
    if !marked.is_empty() {
        return Verdict::No(format!(
            "{} ha(s/ve) dbmate `-- migrate:up` markers, which sqlx would run as plain SQL",
            some_names(marked)
        ));
    }
    if pairs + simple == 0 {
        return Verdict::No("only .down.sql files".into());
    }
    Verdict::Fits(format!(
        "{simple} file(s) <version>_<description>.sql and {pairs} .up.sql/.down.sql pair(s)"
    ))
}
