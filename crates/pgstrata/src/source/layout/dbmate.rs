//! dbmate: `<digits>….sql` files (dbmate's pattern is `^(\d+).*\.sql$`) in one folder, each with `-- migrate:up` and
//! optionally `-- migrate:down` sections; ordered by file name; the version is the leading digits.

use super::{Folder, Found, Listing, Scan, SortKey, TxRule, Verdict, leading_digits, some_names};

/// dbmate's version of a file name, if dbmate reads the file.
pub(super) fn version(file: &str) -> Option<&str> {
    if !file.ends_with(".sql") {
        return None;
    }
    leading_digits(file).map(|(digits, _)| digits)
}

pub(super) fn scan(folder: &Folder<'_>) -> Scan {
    let migrations = folder
        .top_level()
        .filter_map(|f| {
            let v = version(f)?;
            Some(Found {
                name: f.strip_suffix(".sql").unwrap_or(f).to_string(),
                version: v.to_string(),
                key: SortKey::Text(f.to_string()),
                up: f.to_string(),
                down: None,
                tx: TxRule::Markers,
            })
        })
        .collect();
    Scan {
        migrations,
        repeatables: Vec::new(),
    }
}

/// A line that is a dbmate `-- migrate:up` marker (detection only; loading uses the SQL lexer).
pub(super) fn has_up_marker(text: &str) -> bool {
    text.lines().any(|line| {
        line.trim_start()
            .strip_prefix("--")
            .is_some_and(|rest| rest.trim_start().starts_with("migrate:up"))
    })
}

pub(super) fn detect(listing: &Listing) -> Verdict {
    // dbmate reads `<digits>….sql` files and ignores the others.
    let (named, ignored): (Vec<&str>, Vec<&str>) = listing
        .sql_files
        .iter()
        .map(String::as_str)
        .partition(|f| version(f).is_some());
    if named.is_empty() {
        return Verdict::No("no .sql files at the top level start with a version number".into());
    }
    let unmarked: Vec<&str> = named
        .iter()
        .copied()
        .filter(|f| !has_up_marker(&listing.text(f)))
        .collect();
    if !unmarked.is_empty() {
        return Verdict::No(format!(
            "{} ha(s/ve) no `-- migrate:up` marker",
            some_names(unmarked)
        ));
    }
    Verdict::Partly {
        why: format!(
            "{} file(s) named <version>….sql, all with `-- migrate:up` markers",
            named.len()
        ),
        migrations: named.len(),
        ignored: ignored.into_iter().map(str::to_string).collect(),
    }
}
