//! The up/down pair layout (postgres-json's): `NNNN-name.up.sql` (or `N.up.sql`) with its rollback in
//! `NNNN-name.down.sql`, applied in alphabetical order. When the folder holds a `migrations/` subfolder, the
//! migrations are there, and the files of a `functions/` (or `function/`) subfolder, and its subfolders, that
//! define functions or procedures are managed code ("each function is updated with each migration"): replaced when
//! they change, dropped and re-created with their dependents when their signature or return type changes, dropped
//! when their file goes. Other files there (queries the application runs) are ignored, as postgres-json does.
//! Strata's directives (`-- strata:no-transaction`) apply.

use pgstrata_sql::objects::{Declaration, ObjectKind, parse_objects};

use super::{Folder, Found, Listing, Scan, SortKey, TxRule, Verdict, some_names};
use crate::error::Result;
use crate::source::code::Code;
use crate::source::manifest::Manifest;

/// The folders of function files, under the folder that holds `migrations/`.
const FUNCTION_DIRS: [&str; 2] = ["functions/", "function/"];

/// The migration name of an up file (`0001-init.up.sql` → `0001-init`).
fn up_stem(file: &str) -> Option<&str> {
    file.strip_suffix(".up.sql")
}

/// Seed 002's pattern, for detection: `<digits>-<name>.up.sql` / `.down.sql`, or postgres-json's own `<digits>.up.sql`.
fn numbered(file: &str) -> bool {
    let stem = file
        .strip_suffix(".up.sql")
        .or_else(|| file.strip_suffix(".down.sql"));
    stem.and_then(super::leading_digits)
        .is_some_and(|(_, rest)| rest.is_empty() || rest.starts_with('-'))
}

pub(super) fn scan(folder: &Folder<'_>) -> Result<Scan> {
    let nested = folder.files.iter().any(|f| f.starts_with("migrations/"));
    let dir = if nested { "migrations/" } else { "" };
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
    Ok(Scan {
        migrations,
        repeatables: Vec::new(),
    })
}

/// The up/down layout's function files as managed code (every file is code: postgres-json's `function_test.sql` is
/// a function, not a test); the files of the function folder that define no function are listed as ignored.
pub(super) fn code(folder: &Folder<'_>, manifest: &Manifest) -> Result<Code> {
    let (files, ignored) = code_files(folder)?;
    let rels: Vec<String> = files.iter().map(|f| folder.rel(f)).collect();
    let mut code = Code::load_managed(folder.source, &rels, manifest)?;
    code.ignored.extend(ignored.iter().map(|f| folder.rel(f)));
    Ok(code)
}

/// The managed-code files of a nested folder (paths relative to it): the files of `functions/` or `function/` that
/// define a function or procedure; and the files there that do not (ignored, as postgres-json treats them as
/// queries).
fn code_files(folder: &Folder<'_>) -> Result<(Vec<String>, Vec<String>)> {
    let mut code = Vec::new();
    let mut ignored = Vec::new();
    if !folder.files.iter().any(|f| f.starts_with("migrations/")) {
        return Ok((code, ignored));
    }
    for f in &folder.files {
        if !FUNCTION_DIRS.iter().any(|d| f.starts_with(d)) {
            continue;
        }
        let text = folder.read(f)?.unwrap_or_default();
        let defines_routine = parse_objects(&pgstrata_sql::normalize(&text))
            .iter()
            .any(|p| {
                matches!(&p.object, Ok(o) if matches!(&o.declaration, Declaration::Create(c)
                    if matches!(c.kind, ObjectKind::Function | ObjectKind::Procedure)))
            });
        if defines_routine {
            code.push(f.clone());
        } else {
            ignored.push(f.clone());
        }
    }
    Ok((code, ignored))
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
            "{} (is/are) not named NNNN-name.up.sql or NNNN-name.down.sql (or N.up.sql, N.down.sql)",
            some_names(odd)
        ));
    }
    let ups = files.iter().filter(|f| f.ends_with(".up.sql")).count();
    if ups == 0 {
        return Verdict::No("only .down.sql files".into());
    }
    let functions = match ["functions", "function"]
        .into_iter()
        .find(|d| place == "migrations/" && listing.dir(d).is_some())
    {
        Some(d) => format!(" and a {d}/ folder"),
        None => String::new(),
    };
    Verdict::Fits(format!(
        "{ups} NNNN-name.up.sql file(s) (with .down.sql) at {place}{functions}"
    ))
}
