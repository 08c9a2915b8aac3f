//! Flyway (and refinery, which names files the same way).
//!
//! Flyway: `V<version>__<description>.sql` (versioned), `U<version>__<description>.sql` (undo: Strata's down part of
//! the same version) and `R__<description>.sql` (repeatable), in the folder and its subfolders. A version is dotted
//! numbers (`_` counts as `.`; `1.0` equals `1`); versioned migrations run in version order, then repeatables whose
//! text changed, ordered by description. Statements that cannot run in a transaction make a script run outside the
//! deploy transaction, as Flyway's parser decides it too. Flyway's checksum is [`flyway_checksum`].
//!
//! refinery: `V<int>__<name>.sql` and `U<int>__<name>.sql` (`U` = "unversioned", may be applied out of order), in
//! version order, always in a transaction, no down parts.

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use super::{Folder, Found, FoundRepeatable, Listing, Scan, SortKey, TxRule, Verdict, some_names};
use crate::error::{Error, Result};

/// A Flyway version: dotted non-negative numbers, compared numerically part by part, trailing zeros ignored.
#[derive(Debug, Clone)]
pub(crate) struct FlywayVersion {
    parts: Vec<u128>,
    text: String,
}

impl FlywayVersion {
    /// Parse `1`, `1.2`, `1_2`, `2024.01.31.1200`, … (as in a file name or in `flyway_schema_history.version`).
    pub fn parse(s: &str) -> Option<FlywayVersion> {
        let text = s.replace('_', ".");
        let mut parts = text
            .split('.')
            .map(|p| {
                if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                    None
                } else {
                    p.parse::<u128>().ok()
                }
            })
            .collect::<Option<Vec<u128>>>()?;
        while parts.len() > 1 && parts.last() == Some(&0) {
            parts.pop();
        }
        Some(FlywayVersion { parts, text })
    }

    /// The key used for ordering (trailing zeros removed).
    pub fn parts(&self) -> &[u128] {
        &self.parts
    }
}

impl PartialEq for FlywayVersion {
    fn eq(&self, other: &Self) -> bool {
        self.parts == other.parts
    }
}

impl Eq for FlywayVersion {}

impl PartialOrd for FlywayVersion {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for FlywayVersion {
    fn cmp(&self, other: &Self) -> Ordering {
        self.parts.cmp(&other.parts)
    }
}

impl fmt::Display for FlywayVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Flyway's checksum of a script, as `flyway_schema_history.checksum` stores it: CRC-32 over the UTF-8 bytes of
/// each line without its line break (`\n`, `\r\n` or `\r`), a leading BOM removed — so line endings do not change
/// it (Flyway's `ChecksumCalculator`): `a\r\nb\n` and `a\nb` have the same checksum.
pub(crate) fn flyway_checksum(raw: &str) -> i32 {
    let text = raw.strip_prefix('\u{feff}').unwrap_or(raw);
    let mut hasher = crc32fast::Hasher::new();
    for line in text.split(['\n', '\r']) {
        hasher.update(line.as_bytes());
    }
    // Java's `(int) crc32.getValue()`: the same 32 bits, read as signed.
    hasher.finalize() as i32
}

/// A Flyway file name: prefix letter, version (empty for `R`), description.
pub(super) struct FlywayName<'a> {
    pub prefix: char,
    pub version: &'a str,
    pub description: String,
}

pub(super) fn parse_name(base: &str) -> Option<FlywayName<'_>> {
    let stem = base.strip_suffix(".sql")?;
    let prefix = stem.chars().next()?;
    if !matches!(prefix, 'V' | 'U' | 'R') {
        return None;
    }
    let (version, description) = stem[1..].split_once("__")?;
    if (prefix == 'R') != version.is_empty() {
        return None;
    }
    Some(FlywayName {
        prefix,
        version,
        description: description.replace('_', " "),
    })
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

pub(super) fn scan(folder: &Folder<'_>) -> Result<Scan> {
    let mut versioned: BTreeMap<Vec<u128>, Found> = BTreeMap::new();
    let mut undo: BTreeMap<Vec<u128>, String> = BTreeMap::new();
    let mut repeatables: Vec<(String, FoundRepeatable)> = Vec::new();
    for path in &folder.files {
        let base = base_name(path);
        let Some(name) = parse_name(base) else {
            continue;
        };
        let stem = base.strip_suffix(".sql").unwrap_or(base).to_string();
        if name.prefix == 'R' {
            repeatables.push((
                name.description,
                FoundRepeatable {
                    name: stem,
                    path: path.clone(),
                    tx: TxRule::Detect,
                },
            ));
            continue;
        }
        let version = FlywayVersion::parse(name.version).ok_or_else(|| {
            Error::usage(
                format!(
                    "flyway: the version `{}` of {path} is not dotted numbers",
                    name.version
                ),
                Some("Flyway versions look like 1, 1.2 or 1_2 (V1_2__description.sql)".into()),
            )
        })?;
        if name.prefix == 'U' {
            undo.insert(version.parts().to_vec(), path.clone());
            continue;
        }
        let found = Found {
            name: stem,
            version: version.to_string(),
            key: SortKey::Parts(version.parts().to_vec()),
            up: path.clone(),
            down: None,
            tx: TxRule::Detect,
        };
        if let Some(other) = versioned.insert(version.parts().to_vec(), found) {
            return Err(Error::usage(
                format!(
                    "flyway: {} and {path} have the same version {version}",
                    other.up
                ),
                Some("each migration needs its own version: renumber one of them".into()),
            ));
        }
    }
    for (key, path) in undo {
        match versioned.get_mut(&key) {
            Some(v) => v.down = Some(path),
            None => {
                return Err(Error::usage(
                    format!(
                        "flyway: undo script {path} has no versioned script of the same version"
                    ),
                    None,
                ));
            }
        }
    }
    // Flyway orders repeatables by description (Java string order; the path breaks ties).
    repeatables.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| a.1.path.cmp(&b.1.path)));
    Ok(Scan {
        migrations: versioned.into_values().collect(),
        repeatables: repeatables.into_iter().map(|(_, r)| r).collect(),
    })
}

/// refinery's name pattern `^([UV])(\d+(?:\.\d+)?)__(\w+)\.sql$`, with an integer version.
pub(super) fn parse_refinery(base: &str) -> Option<(char, &str, &str)> {
    let stem = base.strip_suffix(".sql")?;
    let prefix = stem.chars().next()?;
    if !matches!(prefix, 'U' | 'V') {
        return None;
    }
    let (version, name) = stem[1..].split_once("__")?;
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let version_ok = match version.split_once('.') {
        Some((a, b)) => numeric(a) && numeric(b),
        None => numeric(version),
    };
    let name_ok = !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_');
    (version_ok && name_ok).then_some((prefix, version, name))
}

pub(super) fn scan_refinery(folder: &Folder<'_>) -> Result<Scan> {
    let mut migrations: BTreeMap<i64, Found> = BTreeMap::new();
    for path in &folder.files {
        let base = base_name(path);
        let Some((_, version, _)) = parse_refinery(base) else {
            continue;
        };
        let v: i64 = version.parse().map_err(|_| {
            Error::usage(
                format!("refinery: the version `{version}` of {path} is not an integer"),
                None,
            )
        })?;
        let found = Found {
            name: base.strip_suffix(".sql").unwrap_or(base).to_string(),
            version: v.to_string(),
            key: SortKey::Int(i128::from(v)),
            up: path.clone(),
            down: None,
            tx: TxRule::Fixed(false),
        };
        if let Some(other) = migrations.insert(v, found) {
            return Err(Error::usage(
                format!(
                    "refinery: {} and {path} have the same version {v}",
                    other.up
                ),
                None,
            ));
        }
    }
    Ok(Scan {
        migrations: migrations.into_values().collect(),
        repeatables: Vec::new(),
    })
}

pub(super) fn detect(listing: &Listing) -> Verdict {
    let mut files: Vec<String> = listing.sql_files.clone();
    for (dir, inner) in &listing.dirs {
        files.extend(
            inner
                .iter()
                .filter(|f| f.ends_with(".sql"))
                .map(|f| format!("{dir}/{f}")),
        );
    }
    if files.is_empty() {
        return Verdict::No("no .sql files".into());
    }
    // Flyway ignores files that do not follow its naming (and Teams-only `B` baseline scripts).
    let (named, ignored): (Vec<&String>, Vec<&String>) = files
        .iter()
        .partition(|f| parse_name(base_name(f)).is_some());
    let bad_version: Vec<&str> = named
        .iter()
        .filter(|f| {
            parse_name(base_name(f))
                .is_some_and(|n| n.prefix != 'R' && FlywayVersion::parse(n.version).is_none())
        })
        .map(|f| f.as_str())
        .collect();
    if !bad_version.is_empty() {
        return Verdict::No(format!(
            "{} ha(s/ve) a version that is not dotted numbers",
            some_names(bad_version)
        ));
    }
    let count = |p: char| {
        named
            .iter()
            .filter(|f| parse_name(base_name(f)).is_some_and(|n| n.prefix == p))
            .count()
    };
    let (v, u, r) = (count('V'), count('U'), count('R'));
    if v + r == 0 {
        return Verdict::No(if u == 0 {
            "no files named V<version>__<description>.sql or R__<description>.sql".into()
        } else {
            "only undo (U…) scripts".into()
        });
    }
    Verdict::Partly {
        why: format!("{v} versioned (V…), {u} undo (U…) and {r} repeatable (R__…) script(s)"),
        migrations: v + r,
        ignored: ignored.into_iter().cloned().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_endings_do_not_change_the_checksum() {
        assert_eq!(flyway_checksum("a\r\nb\n"), flyway_checksum("a\nb"));
        assert_eq!(flyway_checksum("\u{feff}a\n"), flyway_checksum("a\n"));
        assert_ne!(flyway_checksum("a\nb"), flyway_checksum("a\nc"));
    }

    #[test]
    fn versions_compare_like_flyway() {
        let v = |s| FlywayVersion::parse(s).unwrap();
        assert_eq!(v("1.0"), v("1"));
        assert_eq!(v("1_1"), v("1.1"));
        assert!(v("1.2") < v("1.10"));
        assert!(v("1") < v("1.0.1"));
        assert!(v("2") > v("1.9.9"));
        assert!(FlywayVersion::parse("1.a").is_none());
        assert!(FlywayVersion::parse("1..2").is_none());
    }

    #[test]
    fn checksum_matches_java_crc32_and_ignores_line_breaks() {
        // CRC-32 of "hello" is 0x3610a686; Flyway stores it as a signed int.
        assert_eq!(flyway_checksum("hello"), 0x3610_a686);
        assert_eq!(flyway_checksum("he\r\nl\nlo\n"), flyway_checksum("hello"));
        assert_eq!(flyway_checksum("\u{feff}hello"), flyway_checksum("hello"));
        // Large CRCs come out negative, as in Java.
        assert_eq!(flyway_checksum("a"), 0xe8b7_be43_u32 as i32);
        assert!(flyway_checksum("a") < 0);
        assert_eq!(flyway_checksum(""), 0);
    }

    #[test]
    fn names() {
        let n = parse_name("V1_2__add_users.sql").unwrap();
        assert_eq!(
            (n.prefix, n.version, n.description.as_str()),
            ('V', "1_2", "add users")
        );
        assert!(parse_name("R__views.sql").is_some());
        assert!(parse_name("R1__views.sql").is_none());
        assert!(parse_name("V__x.sql").is_none());
        assert!(parse_name("V1_x.sql").is_none());
        assert_eq!(
            parse_refinery("V3__add_cars.sql"),
            Some(('V', "3", "add_cars"))
        );
        assert_eq!(parse_refinery("V3__add-cars.sql"), None);
    }
}
