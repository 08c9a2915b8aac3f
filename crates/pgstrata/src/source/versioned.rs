//! Strata's own migrations folder (`migrations_dir` without `layout`, what `strata init` writes): every file
//! `<version>_<name>.sql` directly in the folder is a migration, applied in the order of its version, an integer
//! (a UTC timestamp such as `20261206103000`, as dbmate, sqlx, diesel and golang-migrate name theirs, or `0001`).
//!
//! There is no list to edit, so two branches that each add a migration touch different files and merge without a
//! conflict. Everything else is as for listed migrations: the identity is the base name, a down part lives in
//! `-- migrate:down` sections or a sibling `<version>_<name>.down.sql` (the up file may then be `.up.sql`), and
//! `*_test.sql` files are tests.
//!
//! A `.sql` file in the folder that does not follow the pattern is an error (it would otherwise never run, or run as
//! managed code), and so are two files with the same version.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};

use crate::error::{Error, Result};
use crate::source::script::down_sibling;

/// A migration's version: the digits its file name starts with, compared as an integer of any length (`0001` and
/// `1` are the same version).
#[derive(Debug, Clone)]
pub struct Version(String);

impl Version {
    /// The version a migration file name starts with (`20261206103000_add_x.sql` → `20261206103000`), if it
    /// follows the pattern `<digits>_<name>`.
    pub fn of(file_name: &str) -> Option<Version> {
        let digits_end = file_name.find(|c: char| !c.is_ascii_digit())?;
        let rest = &file_name[digits_end..];
        if digits_end == 0 || !rest.starts_with('_') || rest.len() < 2 {
            return None;
        }
        Some(Version(file_name[..digits_end].to_string()))
    }

    /// The digits without leading zeros (`"0"` for zero): equal versions have equal keys.
    fn significant(&self) -> &str {
        let s = self.0.trim_start_matches('0');
        if s.is_empty() { "0" } else { s }
    }

    /// The version as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Version) -> Ordering {
        let (a, b) = (self.significant(), other.significant());
        a.len().cmp(&b.len()).then_with(|| a.cmp(b))
    }
}

impl PartialEq for Version {
    fn eq(&self, other: &Version) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Version {}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Version) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// The migrations of folder `dir` (relative to the package root, `/`-separated), in version order, as paths
/// relative to the package root. `sql_files` are the package's `.sql` files.
pub(crate) fn scan(sql_files: &[String], dir: &str) -> Result<Vec<String>> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let in_folder: BTreeSet<&str> = sql_files
        .iter()
        .filter_map(|f| f.strip_prefix(&prefix))
        .filter(|f| !f.contains('/'))
        .collect();
    let mut by_version: BTreeMap<Version, String> = BTreeMap::new();
    let mut downs = Vec::new();
    for &file in &in_folder {
        if file.ends_with("_test.sql") {
            continue;
        }
        if file.ends_with(".down.sql") {
            downs.push(file);
            continue;
        }
        let Some(version) = Version::of(file) else {
            return Err(Error::usage(
                format!(
                    "{prefix}{file}: a file in the migrations folder `{dir}` must be named <version>_<name>.sql"
                ),
                Some(format!(
                    "create migrations with `strata new NAME` (it names them {prefix}<UTC timestamp>_NAME.sql); \
                     managed code and other SQL files go outside `{dir}`"
                )),
            ));
        };
        if let Some(other) = by_version.insert(version.clone(), file.to_string()) {
            return Err(Error::usage(
                format!(
                    "{prefix}{other} and {prefix}{file} have the same version {}",
                    version.as_str()
                ),
                Some("each migration needs its own version: rename one of them (e.g. with a later timestamp)".into()),
            ));
        }
    }
    let ups: BTreeSet<String> = by_version
        .values()
        .map(|f| down_sibling(f))
        .collect::<BTreeSet<_>>();
    if let Some(orphan) = downs.iter().find(|d| !ups.contains(**d)) {
        return Err(Error::usage(
            format!("{prefix}{orphan} is a down file without its up file"),
            Some(
                "name the pair <version>_<name>.sql (or .up.sql) and <version>_<name>.down.sql"
                    .into(),
            ),
        ));
    }
    Ok(by_version
        .into_values()
        .map(|f| format!("{prefix}{f}"))
        .collect())
}

/// The version `strata new` gives a migration created at `now` in a folder whose newest version is `newest`: the
/// UTC timestamp `YYYYMMDDhhmmss`, or one more than `newest` if that is not later (a clock behind, or two
/// migrations created in the same second), so a new migration always sorts last.
pub(crate) fn next_version(now: chrono::DateTime<chrono::Utc>, newest: Option<&Version>) -> String {
    let stamp = now.format("%Y%m%d%H%M%S").to_string();
    match newest {
        Some(n) if Version(stamp.clone()) <= *n => increment(n.significant()),
        _ => stamp,
    }
}

/// A decimal string plus one.
fn increment(digits: &str) -> String {
    let mut out: Vec<u8> = digits.bytes().collect();
    for d in out.iter_mut().rev() {
        if *d == b'9' {
            *d = b'0';
        } else {
            *d += 1;
            return String::from_utf8_lossy(&out).into_owned();
        }
    }
    format!("1{}", String::from_utf8_lossy(&out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn files(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| (*n).to_string()).collect()
    }

    #[test]
    fn versions_order_as_integers() {
        let v = |s: &str| Version::of(s).unwrap();
        assert!(v("9_a.sql") < v("10_b.sql"));
        assert!(v("0001_init.sql") < v("20261206103000_add.sql"));
        assert_eq!(v("0001_a.sql").cmp(&v("1_b.sql")), Ordering::Equal);
        assert_eq!(Version::of("init.sql"), None);
        assert_eq!(Version::of("0001.sql"), None);
        assert_eq!(Version::of("0001_"), None);
    }

    #[test]
    fn a_folder_is_read_in_version_order() {
        let found = scan(
            &files(&[
                "functions/api.sql",
                "migrations/20261206103000_b.sql",
                "migrations/20261206093000_a.sql",
                "migrations/20261206093000_a.down.sql",
                "migrations/nested/x.sql",
                "migrations/checks_test.sql",
                "migrations/0001_init.up.sql",
                "migrations/0001_init.down.sql",
            ]),
            "migrations",
        )
        .unwrap();
        assert_eq!(
            found,
            [
                "migrations/0001_init.up.sql",
                "migrations/20261206093000_a.sql",
                "migrations/20261206103000_b.sql"
            ]
        );
    }

    #[test]
    fn stray_files_and_clashing_versions_are_errors() {
        let e = scan(&files(&["m/notes.sql"]), "m").unwrap_err().to_string();
        assert!(
            e.contains("m/notes.sql") && e.contains("<version>_<name>.sql"),
            "{e}"
        );
        let e = scan(&files(&["m/001_a.sql", "m/1_b.sql"]), "m")
            .unwrap_err()
            .to_string();
        assert!(e.contains("same version"), "{e}");
        let e = scan(&files(&["m/1_a.sql", "m/2_b.down.sql"]), "m")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("m/2_b.down.sql is a down file without its up file"),
            "{e}"
        );
    }

    #[test]
    fn new_versions_are_timestamps_that_sort_last() {
        let now = chrono::Utc
            .with_ymd_and_hms(2026, 12, 6, 10, 30, 0)
            .unwrap();
        assert_eq!(next_version(now, None), "20261206103000");
        let older = Version("20261206093000".into());
        assert_eq!(next_version(now, Some(&older)), "20261206103000");
        let same = Version("20261206103000".into());
        assert_eq!(next_version(now, Some(&same)), "20261206103001");
        let ahead = Version("20271231235959".into());
        assert_eq!(next_version(now, Some(&ahead)), "20271231235960");
        assert_eq!(increment("999"), "1000");
    }
}
