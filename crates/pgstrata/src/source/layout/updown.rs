//! The up/down pair layout: `NNNN-name.up.sql` with its rollback in `NNNN-name.down.sql`, applied in
//! alphabetical order. When the folder holds a `migrations/` subfolder, the migrations are there and the scripts of
//! a `functions/` subfolder (and its subfolders) are repeatables: re-run, in path order, after the migrations
//! whenever their text changes ("each function is updated with each migration"). Strata's directives
//! (`-- strata:no-transaction`) apply.

use super::{Folder, Found, FoundRepeatable, Listing, Scan, SortKey, TxRule, Verdict, some_names};
use crate::error::Result;

/// The migration name of an up file (`0001-init.up.sql` → `0001-init`).
fn up_stem(file: &str) -> Option<&str> {
    file.strip_suffix(".up.sql")
}

/// Seed 002's pattern, for detection: `<digits>-<name>.up.sql` / `.down.sql`.
fn numbered(file: &str) -> bool {
    let stem = file
        .strip_suffix(".up.sql")
        .or_else(|| file.strip_suffix(".down.sql"));
    stem.and_then(super::leading_digits)
        .is_some_and(|(_, rest)| rest.starts_with('-'))
}

pub(super) fn scan(folder: &Folder<'_>) -> Result<Scan> {
    let nested = folder.files.iter().any(|f| f.starts_with("migrations/"));
    let (dir, functions) = if nested {
        ("migrations/", Some("functions/"))
    } else {
        ("", None)
    };
    let mut migrations = Vec::new();
    for f in &folder.files {
        let Some(file) = f.strip_prefix(dir) else {
            continue;
        };
        if file.contains('/') {
            continue;
        }
        let Some(stem) = up_stem(file) else {
            continue;
        };
        let down = format!("{dir}{stem}.down.sql");
        let has_down = folder.files.contains(&down);
        migrations.push(Found {
            name: stem.to_string(),
            version: super::leading_digits(stem)
                .map_or(stem, |(d, _)| d)
                .to_string(),
            key: SortKey::Text(file.to_string()),
            up: f.clone(),
            down: has_down.then_some(down),
            tx: TxRule::Markers,
        });
    }
    let repeatables = match functions {
        Some(prefix) => folder
            .files
            .iter()
            .filter_map(|f| {
                let rel = f.strip_prefix(prefix)?;
                Some(FoundRepeatable {
                    name: rel.strip_suffix(".sql").unwrap_or(rel).to_string(),
                    path: f.clone(),
                    tx: TxRule::Markers,
                })
            })
            .collect(),
        None => Vec::new(),
    };
    Ok(Scan {
        migrations,
        repeatables,
    })
}

pub(super) fn detect(listing: &Listing) -> Verdict {
    let (files, place): (Vec<&str>, &str) = match listing.dir("migrations") {
        Some(inner) if listing.sql_files.is_empty() => (
            inner
                .iter()
                .map(String::as_str)
                .filter(|f| f.ends_with(".sql"))
                .collect(),
            "migrations/",
        ),
        _ => (
            listing.sql_files.iter().map(String::as_str).collect(),
            "the top level",
        ),
    };
    if files.is_empty() {
        return Verdict::No(format!("no .sql files at {place}"));
    }
    let odd: Vec<&str> = files.iter().copied().filter(|f| !numbered(f)).collect();
    if !odd.is_empty() {
        return Verdict::No(format!(
            "{} (is/are) not named NNNN-name.up.sql or NNNN-name.down.sql",
            some_names(odd)
        ));
    }
    let ups = files.iter().filter(|f| f.ends_with(".up.sql")).count();
    if ups == 0 {
        return Verdict::No("only .down.sql files".into());
    }
    let functions = if place == "migrations/" && listing.dir("functions").is_some() {
        " and a functions/ folder"
    } else {
        ""
    };
    Verdict::Fits(format!(
        "{ups} NNNN-name.up.sql file(s) (with .down.sql) at {place}{functions}"
    ))
}
