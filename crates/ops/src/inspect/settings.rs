//! `[inspect]`: thresholds of the verdicts, timeouts and how many rows a check lists.
//!
//! The table lives in `strata.toml` beside the package's other settings. Every key is optional; an unknown key is
//! an error that points at it (file:line:col), as in the rest of the manifest. Durations use PostgreSQL's units
//! (`500ms`, `5s`, `2min`, `1h`, `1d`), sizes PostgreSQL's (`8kB`, `10MB`, `1GB`, 1024-based), ratios are
//! fractions (`0.9` = 90 %).

use std::fmt;
use std::path::Path;

use miette::{NamedSource, SourceSpan};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A duration setting (`5min`), kept in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct DurationSetting(pub u64);

impl DurationSetting {
    /// In seconds, as the checks compare ages.
    pub fn seconds(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl fmt::Display for DurationSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0;
        for (unit, size) in [
            ("d", 86_400_000),
            ("h", 3_600_000),
            ("min", 60_000),
            ("s", 1_000),
        ] {
            if ms >= size && ms.is_multiple_of(size) {
                return write!(f, "{}{unit}", ms / size);
            }
        }
        write!(f, "{ms}ms")
    }
}

impl<'de> Deserialize<'de> for DurationSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        pgstrata::manifest::parse_duration(&text)
            .map(DurationSetting)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for DurationSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A size setting (`10MB`), kept in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SizeSetting(pub u64);

/// Parse a PostgreSQL-style size: a number and one of `B`, `kB`, `MB`, `GB`, `TB` (1024-based, as
/// `pg_size_pretty` and the server's settings use them); a bare number is bytes.
pub fn parse_size(s: &str) -> std::result::Result<u64, String> {
    let t = s.trim();
    let digits_end = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (examples: 0, 8kB, 10MB, 1GB)"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "kB" | "KB" => 1 << 10,
        "MB" => 1 << 20,
        "GB" => 1 << 30,
        "TB" => 1 << 40,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{s}` (use B, kB, MB, GB or TB)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("size `{s}` is too large"))
}

impl fmt::Display for SizeSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        for (unit, size) in [
            ("TB", 1u64 << 40),
            ("GB", 1 << 30),
            ("MB", 1 << 20),
            ("kB", 1 << 10),
        ] {
            if b >= size && b.is_multiple_of(size) {
                return write!(f, "{}{unit}", b / size);
            }
        }
        write!(f, "{b}B")
    }
}

impl<'de> Deserialize<'de> for SizeSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_size(&text)
            .map(SizeSetting)
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for SizeSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Every `[inspect]` key, with its default. "warning"/"problem" pairs are the thresholds of the two verdicts.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct InspectSettings {
    /// Checks (or groups) to run when none are named on the command line; empty: all of them.
    pub checks: Vec<String>,
    /// `statement_timeout` of each check's query.
    pub statement_timeout: DurationSetting,
    /// `lock_timeout` of each check's query (size functions take a relation lock; a relation locked by a
    /// migration is measured from the catalog's estimate instead, so this only bounds rare races).
    pub lock_timeout: DurationSetting,
    /// How many rows a check lists (largest, oldest, …); the summary still counts them all.
    pub top: u32,

    /// Share of `max_connections` (less the reserved ones) in use.
    pub connections_warning: f64,
    /// See `connections_warning`.
    pub connections_problem: f64,
    /// Buffer cache hit ratio of tables and indexes (lower is worse).
    pub cache_hit_warning: f64,
    /// See `cache_hit_warning`.
    pub cache_hit_problem: f64,
    /// Transaction-ID age (of a database or a table). Wraparound stops writes at about 2.1 billion; autovacuum
    /// freezes from `autovacuum_freeze_max_age` (200 million by default).
    pub xid_age_warning: i64,
    /// See `xid_age_warning`.
    pub xid_age_problem: i64,
    /// Multixact-ID age, as `xid_age_*`.
    pub multixact_age_warning: i64,
    /// See `multixact_age_warning`.
    pub multixact_age_problem: i64,
    /// Age of a running transaction.
    pub long_transaction_warning: DurationSetting,
    /// See `long_transaction_warning`.
    pub long_transaction_problem: DurationSetting,
    /// How long a session has been idle inside a transaction.
    pub idle_in_transaction_warning: DurationSetting,
    /// See `idle_in_transaction_warning`.
    pub idle_in_transaction_problem: DurationSetting,
    /// How long a session has been waiting for a lock held by another.
    pub lock_wait_warning: DurationSetting,
    /// See `lock_wait_warning`.
    pub lock_wait_problem: DurationSetting,
    /// WAL a replication slot keeps on the server.
    pub slot_retained_wal_warning: SizeSetting,
    /// See `slot_retained_wal_warning`.
    pub slot_retained_wal_problem: SizeSetting,
    /// Share of checkpoints that were requested (WAL filled up, or `CHECKPOINT`) rather than timed.
    pub requested_checkpoints_warning: f64,

    /// Dead tuples as a share of all tuples of a table.
    pub dead_tuples_warning: f64,
    /// See `dead_tuples_warning`.
    pub dead_tuples_problem: f64,
    /// Tables with fewer dead tuples are never flagged.
    pub dead_tuples_min: i64,
    /// Estimated wasted share of a table.
    pub table_bloat_warning: f64,
    /// See `table_bloat_warning`.
    pub table_bloat_problem: f64,
    /// Estimated wasted share of a B-tree index.
    pub index_bloat_warning: f64,
    /// See `index_bloat_warning`.
    pub index_bloat_problem: f64,
    /// Relations smaller than this are left out of the bloat estimates.
    pub bloat_min_size: SizeSetting,
    /// A table modified since its last analyze, analyzed longer ago than this, is flagged.
    pub analyze_stale_after: DurationSetting,
    /// Never-analyzed tables with fewer live rows are not flagged (autovacuum leaves tiny tables alone too).
    pub analyze_min_rows: i64,
    /// Tables with fewer (estimated) rows are not "large" for the sequential-scan check.
    pub seq_scan_min_rows: i64,
    /// Share of scans of a large table that used an index; below it the table is flagged.
    pub index_use_warning: f64,
    /// Unused indexes smaller than this are not listed.
    pub unused_index_min_size: SizeSetting,

    /// Age of the oldest message ready for delivery in a MiniPaaS queue.
    pub queue_age_warning: DurationSetting,
    /// See `queue_age_warning`.
    pub queue_age_problem: DurationSetting,
    /// Dead letters in a queue.
    pub dead_letters_warning: i64,
    /// See `dead_letters_warning`.
    pub dead_letters_problem: i64,
    /// Age of the oldest event a stream consumer group has not committed.
    pub stream_lag_warning: DurationSetting,
    /// See `stream_lag_warning`.
    pub stream_lag_problem: DurationSetting,

    /// Mean execution time above which a statement of `pg_stat_statements` is flagged.
    pub slow_statement: DurationSetting,
}

impl Default for InspectSettings {
    fn default() -> Self {
        const MIN: u64 = 60_000;
        InspectSettings {
            checks: Vec::new(),
            statement_timeout: DurationSetting(10_000),
            lock_timeout: DurationSetting(1_000),
            top: 10,
            connections_warning: 0.75,
            connections_problem: 0.9,
            cache_hit_warning: 0.99,
            cache_hit_problem: 0.95,
            xid_age_warning: 500_000_000,
            xid_age_problem: 1_000_000_000,
            multixact_age_warning: 500_000_000,
            multixact_age_problem: 1_000_000_000,
            long_transaction_warning: DurationSetting(5 * MIN),
            long_transaction_problem: DurationSetting(60 * MIN),
            idle_in_transaction_warning: DurationSetting(MIN),
            idle_in_transaction_problem: DurationSetting(10 * MIN),
            lock_wait_warning: DurationSetting(10_000),
            lock_wait_problem: DurationSetting(MIN),
            slot_retained_wal_warning: SizeSetting(1 << 30),
            slot_retained_wal_problem: SizeSetting(10 << 30),
            requested_checkpoints_warning: 0.5,
            dead_tuples_warning: 0.2,
            dead_tuples_problem: 0.5,
            dead_tuples_min: 10_000,
            table_bloat_warning: 0.5,
            table_bloat_problem: 0.8,
            index_bloat_warning: 0.5,
            index_bloat_problem: 0.8,
            bloat_min_size: SizeSetting(10 << 20),
            analyze_stale_after: DurationSetting(7 * 24 * 60 * MIN),
            analyze_min_rows: 1_000,
            seq_scan_min_rows: 10_000,
            index_use_warning: 0.95,
            unused_index_min_size: SizeSetting(0),
            queue_age_warning: DurationSetting(5 * MIN),
            queue_age_problem: DurationSetting(60 * MIN),
            dead_letters_warning: 1,
            dead_letters_problem: 1_000,
            stream_lag_warning: DurationSetting(5 * MIN),
            stream_lag_problem: DurationSetting(60 * MIN),
            slow_statement: DurationSetting(1_000),
        }
    }
}

/// The part of a manifest this module reads; every other key is pgstrata's business.
#[derive(Deserialize)]
struct ManifestInspect {
    #[serde(default)]
    inspect: Option<toml::Spanned<InspectSettings>>,
}

impl InspectSettings {
    /// The `[inspect]` table of a manifest's text (defaults when it has none). `path` names the file in errors.
    pub fn from_manifest_text(path: &str, text: &str) -> Result<InspectSettings> {
        let located = |span: Option<std::ops::Range<usize>>, message: String| {
            let location = match &span {
                Some(r) => {
                    let (line, col) = line_col(text, r.start);
                    format!("{path}:{line}:{col}")
                }
                None => path.to_string(),
            };
            Error::Settings(Box::new(crate::error::SettingsError {
                message: format!("{location}: {message}"),
                source_code: NamedSource::new(path, text.to_string()),
                span: span.map(|r| SourceSpan::from(r.start..r.end)),
                location,
                help: Some(
                    "see `strata inspect --list` and README.md (Operating) for the [inspect] keys"
                        .into(),
                ),
            }))
        };
        // Errors inside [inspect] (unknown keys, bad values) carry a span into the whole file.
        let raw: ManifestInspect = toml::from_str(text)
            .map_err(|e| located(e.span(), format!("[inspect]: {}", e.message())))?;
        let Some(spanned) = raw.inspect else {
            return Ok(InspectSettings::default());
        };
        let span = spanned.span();
        let settings = spanned.into_inner();
        settings.validate().map_err(|m| located(Some(span), m))?;
        Ok(settings)
    }

    /// The `[inspect]` table of the manifest at `path` (defaults when there is none).
    pub fn from_manifest(path: &Path) -> Result<InspectSettings> {
        let text = std::fs::read_to_string(path).map_err(Error::io("cannot read", path))?;
        Self::from_manifest_text(&path.display().to_string(), &text)
    }

    fn validate(&self) -> std::result::Result<(), String> {
        let ratio = |name: &str, v: f64| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(format!(
                    "[inspect] {name} = {v}: a ratio lies between 0 and 1"
                ))
            }
        };
        for (name, v) in [
            ("connections_warning", self.connections_warning),
            ("connections_problem", self.connections_problem),
            ("cache_hit_warning", self.cache_hit_warning),
            ("cache_hit_problem", self.cache_hit_problem),
            (
                "requested_checkpoints_warning",
                self.requested_checkpoints_warning,
            ),
            ("dead_tuples_warning", self.dead_tuples_warning),
            ("dead_tuples_problem", self.dead_tuples_problem),
            ("table_bloat_warning", self.table_bloat_warning),
            ("table_bloat_problem", self.table_bloat_problem),
            ("index_bloat_warning", self.index_bloat_warning),
            ("index_bloat_problem", self.index_bloat_problem),
            ("index_use_warning", self.index_use_warning),
        ] {
            ratio(name, v)?;
        }
        if self.top == 0 {
            return Err("[inspect] top must be at least 1".into());
        }
        if self.statement_timeout.0 == 0 {
            return Err("[inspect] statement_timeout must not be 0: every check is bounded".into());
        }
        Ok(())
    }
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, col)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    const MANIFEST: &str =
        "name = \"example.com/app\"\nschema = \"app\"\n\n[deploy]\nlock_timeout = \"5s\"\n\n";

    #[test]
    fn defaults_without_an_inspect_table() {
        let s = InspectSettings::from_manifest_text("strata.toml", MANIFEST).unwrap();
        assert_eq!(s, InspectSettings::default());
        assert_eq!(s.long_transaction_warning.to_string(), "5min");
        assert_eq!(s.bloat_min_size.to_string(), "10MB");
    }

    #[test]
    fn values_are_read_and_the_rest_keep_their_defaults() {
        let text = format!(
            "{MANIFEST}[inspect]\nchecks = [\"health\", \"queues\"]\nlong_transaction_warning = \"90s\"\n\
             bloat_min_size = \"1GB\"\ncache_hit_problem = 0.8\ntop = 3\n"
        );
        let s = InspectSettings::from_manifest_text("strata.toml", &text).unwrap();
        assert_eq!(s.checks, vec!["health", "queues"]);
        assert_eq!(s.long_transaction_warning, DurationSetting(90_000));
        assert_eq!(s.bloat_min_size, SizeSetting(1 << 30));
        assert_eq!(s.cache_hit_problem, 0.8);
        assert_eq!(s.top, 3);
        assert_eq!(
            s.xid_age_warning,
            InspectSettings::default().xid_age_warning
        );
    }

    #[test]
    fn an_unknown_key_is_an_error_at_its_line_and_column() {
        let text = format!("{MANIFEST}[inspect]\ntop = 3\nlong_transaction = \"5min\"\n");
        let Err(Error::Settings(e)) = InspectSettings::from_manifest_text("app/strata.toml", &text)
        else {
            panic!("an error")
        };
        assert_eq!(e.location, "app/strata.toml:9:1", "{}", e.message);
        assert!(
            e.message.contains("unknown field `long_transaction`"),
            "{}",
            e.message
        );
        assert!(e.span.is_some());
    }

    #[test]
    fn bad_values_are_errors_with_their_position() {
        let bad_duration = format!("{MANIFEST}[inspect]\nlock_wait_warning = \"5 fortnights\"\n");
        let Err(Error::Settings(e)) =
            InspectSettings::from_manifest_text("strata.toml", &bad_duration)
        else {
            panic!()
        };
        assert!(e.location.starts_with("strata.toml:8:"), "{}", e.message);
        assert!(e.message.contains("unknown unit"), "{}", e.message);

        let bad_size = format!("{MANIFEST}[inspect]\nbloat_min_size = \"ten\"\n");
        let Err(Error::Settings(e)) = InspectSettings::from_manifest_text("strata.toml", &bad_size)
        else {
            panic!()
        };
        assert!(e.message.contains("is not a size"), "{}", e.message);

        let bad_ratio = format!("{MANIFEST}[inspect]\nconnections_warning = 75\n");
        let Err(Error::Settings(e)) =
            InspectSettings::from_manifest_text("strata.toml", &bad_ratio)
        else {
            panic!()
        };
        assert!(e.message.contains("between 0 and 1"), "{}", e.message);
    }

    #[test]
    fn sizes_parse_like_postgresql() {
        assert_eq!(parse_size("0"), Ok(0));
        assert_eq!(parse_size("8kB"), Ok(8192));
        assert_eq!(parse_size("10MB"), Ok(10 << 20));
        assert!(parse_size("10 XB").is_err());
        assert!(parse_size("99999999999TB").is_err());
    }
}
