//! golang-migrate: `<version>_<name>.up.sql` and `<version>_<name>.down.sql` in one folder (its pattern is
//! `^([0-9]+)_(.*)\.(down|up)\.(.*)$`; other files are ignored). The version is an unsigned integer; ordered by it.
//! golang-migrate sends a file as one multi-statement query; Strata runs a file that holds a statement which cannot
//! run in a transaction (`CREATE INDEX CONCURRENTLY`, …) outside the deploy transaction, statement by statement.

use std::collections::BTreeMap;

use super::{Folder, Found, Listing, Scan, SortKey, TxRule, Verdict};
use crate::error::{Error, Result};

/// golang-migrate's reading of a file name: version, up (true) or down, and the name without the suffix;
/// `Ok(None)` for files it ignores. A version beyond 64 bits is an error: golang-migrate skips such a file without
/// a word (its parse error is swallowed), so the migration would silently never run.
pub(super) fn parse(file: &str) -> Result<Option<(u64, bool, &str)>> {
    let (stem, up) = if let Some(s) = file.strip_suffix(".up.sql") {
        (s, true)
    } else if let Some(s) = file.strip_suffix(".down.sql") {
        (s, false)
    } else {
        return Ok(None);
    };
    let Some((digits, rest)) = super::leading_digits(stem) else {
        return Ok(None);
    };
    if !rest.starts_with('_') {
        return Ok(None);
    }
    let version = digits.parse().map_err(|_| {
        Error::usage(
            format!(
                "golang-migrate: the version {digits} of {file} does not fit an unsigned 64-bit integer \
                 (at most 18446744073709551615), so golang-migrate would skip the file without a word"
            ),
            Some(
                "renumber the migration with a shorter version; a 20-digit version is popx's (--layout popx)"
                    .into(),
            ),
        )
    })?;
    Ok(Some((version, up, stem)))
}

pub(super) fn scan(folder: &Folder<'_>) -> Result<Scan> {
    let mut ups: BTreeMap<u64, Found> = BTreeMap::new();
    let mut downs: BTreeMap<u64, String> = BTreeMap::new();
    for f in folder.top_level() {
        let Some((v, up, stem)) = parse(f)? else {
            continue;
        };
        if !up {
            downs.insert(v, f.to_string());
            continue;
        }
        let found = Found {
            name: stem.to_string(),
            version: v.to_string(),
            key: SortKey::Int(i128::from(v)),
            up: f.to_string(),
            down: None,
            tx: TxRule::Detect,
        };
        if let Some(other) = ups.insert(v, found) {
            return Err(Error::usage(
                format!(
                    "golang-migrate: {} and {f} have the same version {v}",
                    other.up
                ),
                Some("each migration needs its own version: renumber one of them".into()),
            ));
        }
    }
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
    let mut ups: BTreeMap<u64, &str> = BTreeMap::new();
    let mut downs: BTreeMap<u64, &str> = BTreeMap::new();
    let mut ignored = Vec::new();
    for f in &listing.sql_files {
        match parse(f) {
            Ok(Some((v, up, _))) => {
                let seen = if up { &mut ups } else { &mut downs };
                if let Some(other) = seen.insert(v, f) {
                    return Verdict::No(format!("{other} and {f} have the same version {v}"));
                }
            }
            Ok(None) => ignored.push(f.clone()),
            Err(e) => {
                let text = e.to_string();
                return Verdict::No(text.trim_start_matches("golang-migrate: ").to_string());
            }
        }
    }
    if ups.is_empty() {
        return Verdict::No(if downs.is_empty() {
            "no files named <version>_<name>.up.sql".into()
        } else {
            "only .down.sql files".into()
        });
    }
    let paired = downs.keys().filter(|v| ups.contains_key(v)).count();
    Verdict::Partly {
        why: format!(
            "{} file(s) <version>_<name>.up.sql ({paired} with a .down.sql)",
            ups.len()
        ),
        migrations: ups.len(),
        ignored,
    }
}
