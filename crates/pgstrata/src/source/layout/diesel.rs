//! diesel: one folder per migration, `<version>_<name>/up.sql` with an optional `down.sql` and `metadata.toml`.
//! The version is the folder name up to the first `_`, with dashes removed (`2024-01-31-120000_users` →
//! `20240131120000`), and migrations are ordered by comparing versions as text, as diesel does. Files at the top
//! level are ignored, as diesel ignores them (and listed as ignored); a folder without `up.sql` is an error (diesel
//! refuses it too).
//!
//! `run_in_transaction = false` in `metadata.toml` runs the migration outside the deploy transaction. (diesel
//! itself also treats a `metadata.toml` *without* that key as `false`, a quirk of its serde default; Strata only
//! honours an explicit `false`.)

use std::collections::BTreeMap;

use super::{Folder, Found, Listing, Scan, SortKey, TxRule, Verdict, some_names};
use crate::error::{Error, Result};

/// diesel's version of a migration folder name.
pub(super) fn version(dir: &str) -> String {
    dir.split('_').next().unwrap_or(dir).replace('-', "")
}

pub(super) fn scan(folder: &Folder<'_>) -> Result<Scan> {
    let mut dirs: BTreeMap<&str, (bool, bool)> = BTreeMap::new();
    for f in &folder.files {
        let Some((dir, file)) = f.split_once('/') else {
            continue;
        };
        if file.contains('/') {
            continue;
        }
        let entry = dirs.entry(dir).or_default();
        match file {
            "up.sql" => entry.0 = true,
            "down.sql" => entry.1 = true,
            _ => {}
        }
    }
    let mut migrations = Vec::with_capacity(dirs.len());
    for (dir, (up, down)) in dirs {
        if !up {
            return Err(Error::usage(
                format!("diesel: migration folder {dir} has no up.sql"),
                Some(
                    "every diesel migration folder holds an up.sql (and usually a down.sql)".into(),
                ),
            ));
        }
        let no_transaction = match folder.read(&format!("{dir}/metadata.toml"))? {
            Some(text) => run_in_transaction_false(&text)
                .map_err(|e| Error::usage(format!("diesel: {dir}/metadata.toml: {e}"), None))?,
            None => false,
        };
        let version = version(dir);
        migrations.push(Found {
            name: dir.to_string(),
            key: SortKey::Text(version.clone()),
            version,
            up: format!("{dir}/up.sql"),
            down: down.then(|| format!("{dir}/down.sql")),
            tx: TxRule::Fixed(no_transaction),
        });
    }
    Ok(Scan {
        migrations,
        repeatables: Vec::new(),
    })
}

/// True when `metadata.toml` says `run_in_transaction = false`.
fn run_in_transaction_false(text: &str) -> Result<bool, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| e.message().to_string())?;
    match table.get("run_in_transaction") {
        None => Ok(false),
        Some(toml::Value::Boolean(b)) => Ok(!b),
        Some(other) => Err(format!(
            "run_in_transaction must be true or false, not {other}"
        )),
    }
}

pub(super) fn detect(listing: &Listing) -> Verdict {
    let with_up: Vec<&str> = listing
        .dirs
        .iter()
        .filter(|(_, files)| files.iter().any(|f| f == "up.sql"))
        .map(|(d, _)| d.as_str())
        .collect();
    if with_up.is_empty() {
        return Verdict::No("no <version>_<name>/up.sql folders".into());
    }
    let without: Vec<&str> = listing
        .dirs
        .iter()
        .filter(|(_, files)| !files.iter().any(|f| f == "up.sql"))
        .map(|(d, _)| d.as_str())
        .collect();
    if !without.is_empty() {
        return Verdict::No(format!("folder(s) {} have no up.sql", some_names(without)));
    }
    // diesel ignores files at the top level of its folder.
    Verdict::Partly {
        why: format!("{} folder(s) <version>_<name>/ with up.sql", with_up.len()),
        migrations: with_up.len(),
        ignored: listing.sql_files.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_drop_dashes() {
        assert_eq!(version("2024-01-31-120000_users"), "20240131120000");
        assert_eq!(
            version("00000000000000_diesel_initial_setup"),
            "00000000000000"
        );
    }

    #[test]
    fn metadata() {
        assert_eq!(
            run_in_transaction_false("run_in_transaction = false\n"),
            Ok(true)
        );
        assert_eq!(
            run_in_transaction_false("run_in_transaction = true\n"),
            Ok(false)
        );
        assert_eq!(run_in_transaction_false("other = 1\n"), Ok(false));
        assert!(run_in_transaction_false("run_in_transaction = 1\n").is_err());
    }
}
