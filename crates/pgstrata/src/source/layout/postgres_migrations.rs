//! postgres-migrations (ThomWright's Node library, and the runner of supabase/storage built on it): every `.sql`
//! file at the top level of the folder is a migration named `<id>[-_]<name>.sql` (its pattern is
//! `^(-?\d+)[-_]?(.*).(sql|js)$`); the ids, read as integers, must run 1, 2, 3, … without a gap, and give the order.
//!
//! - `-- postgres-migrations disable-transaction` anywhere in a file runs it outside a transaction;
//! - `-- postgres-migrations ignore` anywhere in a file (supabase/storage's runner) records the migration without
//!   running it;
//! - its tracking table is `migrations (id, name, hash, executed_at)`, the hash being the SHA-1 of the file name
//!   followed by the file's text ([`postgres_migrations_hash`]); `strata adopt` checks it.
//!
//! A file the tool cannot read (a `.sql` file not named so) is an error, as it is for the tool. JavaScript
//! migrations (`.js`) cannot be run by Strata and are refused.

use pgstrata_sql::migration::{Direction, Section};
use sha1::{Digest, Sha1};

use super::{Folder, Found, Listing, Scan, SortKey, TxRule, Verdict, dbmate, some_names};
use crate::error::{Error, Result};

/// The directive that runs a file outside a transaction.
const DISABLE_TRANSACTION: &str = "-- postgres-migrations disable-transaction";
/// The directive (supabase/storage's runner) that records a file without running it.
const IGNORE: &str = "-- postgres-migrations ignore";

/// postgres-migrations' reading of a file name: the id, and the name (the whole file name when nothing follows the
/// id). `None` when the name does not fit, which the tool refuses.
pub(super) fn parse(file: &str) -> Option<(i64, &str)> {
    let stem = file.strip_suffix(".sql")?;
    let unsigned = stem.strip_prefix('-').unwrap_or(stem);
    let (digits, rest) = super::leading_digits(unsigned)?;
    let id_len = stem.len() - unsigned.len() + digits.len();
    let id: i64 = stem[..id_len].parse().ok()?;
    let name = rest
        .strip_prefix('-')
        .or_else(|| rest.strip_prefix('_'))
        .unwrap_or(rest);
    Some((id, if name.is_empty() { file } else { name }))
}

/// The hash postgres-migrations records: SHA-1 (hex) of the file name followed by the file's text.
pub(crate) fn postgres_migrations_hash(file_name: &str, raw: &str) -> String {
    let mut hasher = Sha1::new();
    hasher.update(file_name.as_bytes());
    hasher.update(raw.as_bytes());
    hex::encode(hasher.finalize())
}

pub(super) fn scan(folder: &Folder<'_>) -> Result<Scan> {
    let mut migrations = Vec::new();
    for file in folder.top_level() {
        let Some((id, _)) = parse(file) else {
            return Err(Error::usage(
                format!("postgres-migrations: {file} is not named <id>-<name>.sql"),
                Some(
                    "postgres-migrations refuses such a file too: rename it, or move it out of the folder".into(),
                ),
            ));
        };
        migrations.push(Found {
            name: file.strip_suffix(".sql").unwrap_or(file).to_string(),
            version: id.to_string(),
            key: SortKey::Int(i128::from(id)),
            up: file.to_string(),
            down: None,
            tx: TxRule::PostgresMigrations,
        });
    }
    Ok(Scan {
        migrations,
        repeatables: Vec::new(),
    })
}

/// The ids, in order, must be 1, 2, 3, … (postgres-migrations checks it before running anything).
pub(super) fn check_consecutive(found: &[Found], folder: &Folder<'_>) -> Result<()> {
    for (i, f) in found.iter().enumerate() {
        let expected = i + 1;
        if f.version != expected.to_string() {
            return Err(Error::usage(
                format!(
                    "postgres-migrations: {} has id {}, but the ids must run 1, 2, 3, … without a gap (expected {expected})",
                    folder.rel(&f.up),
                    f.version
                ),
                Some("postgres-migrations refuses the folder too: renumber the files".into()),
            ));
        }
    }
    Ok(())
}

/// The file as one section, outside a transaction when it says so; no section at all when it is to be ignored.
pub(super) fn sections(text: &str, direction: Direction) -> Vec<Section> {
    if text.contains(IGNORE) {
        return Vec::new();
    }
    vec![Section {
        direction,
        range: 0..text.len(),
        no_transaction: text.contains(DISABLE_TRANSACTION),
        marker: None,
    }]
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
            "{} (is/are) not named <id>-<name>.sql",
            some_names(odd)
        ));
    }
    // `.up.sql`/`.down.sql` pairs are other tools' shape (postgres-migrations would run both halves).
    let paired: Vec<&str> = listing
        .sql_files
        .iter()
        .map(String::as_str)
        .filter(|f| f.ends_with(".up.sql") || f.ends_with(".down.sql"))
        .collect();
    if !paired.is_empty() {
        return Verdict::No(format!(
            "{} (is/are) named .up.sql/.down.sql, which postgres-migrations would run as migrations of their own",
            some_names(paired)
        ));
    }
    let mut ids: Vec<i64> = listing
        .sql_files
        .iter()
        .filter_map(|f| parse(f).map(|(id, _)| id))
        .collect();
    ids.sort_unstable();
    if ids
        .iter()
        .enumerate()
        .any(|(i, id)| i64::try_from(i + 1).ok() != Some(*id))
    {
        return Verdict::No("the ids do not run 1, 2, 3, … without a gap".into());
    }
    let marked: Vec<&str> = listing
        .sql_files
        .iter()
        .map(String::as_str)
        .filter(|f| dbmate::has_up_marker(&listing.text(f)))
        .collect();
    if !marked.is_empty() {
        return Verdict::No(format!(
            "{} ha(s/ve) dbmate `-- migrate:up` markers, which postgres-migrations would run as plain SQL",
            some_names(marked)
        ));
    }
    // `1_name.sql` is also sqlx's sequential naming, which sqlx reads the same way and in the same order: without
    // a sign of postgres-migrations (a `-` after the id, or one of its directives), the folder is sqlx's.
    let dashed = listing.sql_files.iter().any(|f| {
        let unsigned = f.strip_prefix('-').unwrap_or(f);
        super::leading_digits(unsigned).is_some_and(|(_, rest)| !rest.starts_with('_'))
    });
    let directive = listing
        .sql_files
        .iter()
        .any(|f| listing.text(f).contains("-- postgres-migrations"));
    if !dashed && !directive {
        return Verdict::No(
            "every file is named <id>_<name>.sql, as sqlx names them, and none has a `-- postgres-migrations` \
             directive (pass --layout postgres-migrations if it is that tool's folder)"
                .into(),
        );
    }
    Verdict::Fits(format!(
        "{} file(s) <id>-<name>.sql with ids 1 to {}",
        ids.len(),
        ids.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hashes_follow_the_tool() {
        assert_eq!(
            parse("0001-initialmigration.sql"),
            Some((1, "initialmigration"))
        );
        assert_eq!(parse("2_more.sql"), Some((2, "more")));
        assert_eq!(parse("3.sql"), Some((3, "3.sql")));
        assert_eq!(parse("notes.sql"), None);
        // sha1("1_a.sql" + "SELECT 1;"), as Python's hashlib (and Node's crypto) compute it.
        assert_eq!(
            postgres_migrations_hash("1_a.sql", "SELECT 1;"),
            "f135415f53c0267bb8288ff4529ee3ed6fb3fb42"
        );
        let s = sections(
            "-- postgres-migrations disable-transaction\nCREATE INDEX CONCURRENTLY i ON t (a);",
            Direction::Up,
        );
        assert!(s[0].no_transaction);
        assert!(sections("-- postgres-migrations ignore\nSELECT 1;", Direction::Up).is_empty());
    }
}
