//! golang-migrate: `<version>_<name>.up.sql` and `<version>_<name>.down.sql` in one folder (its pattern is
//! `^([0-9]+)_(.*)\.(down|up)\.(.*)$`; other files are ignored). The version is an unsigned integer; ordered by it.
//! golang-migrate sends a file as one multi-statement query; Strata runs a file that holds a statement which cannot
//! run in a transaction (`CREATE INDEX CONCURRENTLY`, …) outside the deploy transaction, statement by statement.

use std::collections::BTreeMap;

use super::{Folder, Found, Listing, Scan, SortKey, TxRule, Verdict, some_names};
use crate::error::{Error, Result};

/// golang-migrate's reading of a file name: version, up (true) or down, and the name without the suffix.
pub(super) fn parse(file: &str) -> Option<(u64, bool, &str)> {
    let (stem, up) = if let Some(s) = file.strip_suffix(".up.sql") {
        (s, true)
    } else {
        (file.strip_suffix(".down.sql")?, false)
    };
    let (digits, rest) = super::leading_digits(stem)?;
    if !rest.starts_with('_') {
        return None;
    }
    Some((digits.parse().ok()?, up, stem))
}

pub(super) fn scan(folder: &Folder<'_>) -> Result<Scan> {
    let mut ups: BTreeMap<u64, Found> = BTreeMap::new();
    let mut downs: BTreeMap<u64, String> = BTreeMap::new();
    for f in folder.top_level() {
        let Some((v, up, stem)) = parse(f) else {
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
    let odd: Vec<&str> = listing
        .sql_files
        .iter()
        .map(String::as_str)
        .filter(|f| parse(f).is_none())
        .collect();
    if !odd.is_empty() {
        return Verdict::No(format!(
            "{} (is/are) not named <version>_<name>.up.sql or .down.sql",
            some_names(odd)
        ));
    }
    let ups = listing
        .sql_files
        .iter()
        .filter(|f| parse(f).is_some_and(|(_, up, _)| up))
        .count();
    if ups == 0 {
        return Verdict::No("only .down.sql files".into());
    }
    Verdict::Fits(format!(
        "{ups} file(s) <version>_<name>.up.sql (with .down.sql)"
    ))
}
