//! What runs report: plain data, shared by every layer above (no I/O, nothing from the rest of the crate).
//!
//! The run outcomes, migration identities and per-migration records live here, and so do the reports of the
//! linter, of managed code and of the SQL tests (submodules), so that the error type, progress events and every
//! command can carry them without depending on the code that produced them.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use miette::SourceSpan;

pub mod code;
pub mod lint;
pub mod tap;
pub mod test;

/// A notice (`RAISE NOTICE`, `WARNING`, …) sent by the server while a migration ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Notice {
    /// `NOTICE`, `WARNING`, `INFO`, …
    pub severity: String,
    /// The text.
    pub message: String,
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// Migrations were applied (or changes recorded).
    Applied,
    /// Nothing to do.
    Noop,
    /// Everything ran and was rolled back.
    DryRun,
}

/// One migration run by `up` or `down`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RanMigration {
    /// Package.
    pub package: String,
    /// Migration.
    pub name: String,
    /// Where its SQL came from.
    pub origin: String,
    /// Wall time.
    pub duration_ms: f64,
    /// Statements sent.
    pub statements: usize,
    /// Ran (partly) outside a transaction.
    pub no_transaction: bool,
    /// Notices the server sent while it ran.
    pub notices: Vec<Notice>,
}

/// A package's state before and after the run (shown as "from → to").
#[derive(Debug, Clone, serde::Serialize)]
pub struct Transition {
    /// Package.
    pub package: String,
    /// Its schema.
    pub schema: String,
    /// Last applied migration before.
    pub from: Option<String>,
    /// Last applied migration after.
    pub to: Option<String>,
    /// Migrations run for this package.
    pub count: usize,
}

/// A failed no-transaction migration that `up` resumed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResumedMigration {
    /// `package:name`.
    pub migration: String,
    /// Statements skipped (they had committed).
    pub skipped_statements: usize,
    /// The failed run that recorded them.
    pub failed_run: i64,
}

/// How a `strata.run` row ended: the `outcome` column, written and read only through this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunOutcome {
    /// Still running (or the process died before recording the end).
    Running,
    /// Something was applied or recorded.
    Success,
    /// Nothing to do.
    Noop,
    /// It failed; `strata.run.error` says why.
    Failed,
    /// Everything ran and was rolled back.
    DryRun,
    /// It never finished: the process or its connection died (marked by the next run that took the lock).
    Interrupted,
}

impl RunOutcome {
    /// Every outcome, in the order of the `CHECK` constraint of `strata.run.outcome`.
    pub const ALL: [RunOutcome; 6] = [
        RunOutcome::Running,
        RunOutcome::Success,
        RunOutcome::Noop,
        RunOutcome::Failed,
        RunOutcome::DryRun,
        RunOutcome::Interrupted,
    ];

    /// The value stored in `strata.run.outcome`.
    pub fn as_str(self) -> &'static str {
        match self {
            RunOutcome::Running => "running",
            RunOutcome::Success => "success",
            RunOutcome::Noop => "noop",
            RunOutcome::Failed => "failed",
            RunOutcome::DryRun => "dry-run",
            RunOutcome::Interrupted => "interrupted",
        }
    }
}

impl From<Outcome> for RunOutcome {
    /// The one mapping from how a command ended to what its run row records.
    fn from(outcome: Outcome) -> RunOutcome {
        match outcome {
            Outcome::Applied => RunOutcome::Success,
            Outcome::Noop => RunOutcome::Noop,
            Outcome::DryRun => RunOutcome::DryRun,
        }
    }
}

impl FromStr for RunOutcome {
    type Err = String;

    fn from_str(s: &str) -> Result<RunOutcome, String> {
        RunOutcome::ALL
            .into_iter()
            .find(|o| o.as_str() == s)
            .ok_or_else(|| format!("unknown run outcome `{s}`"))
    }
}

impl fmt::Display for RunOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl PartialEq<str> for RunOutcome {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for RunOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A migration's identity: its package and its name. Shown (and stored in `strata.run.detail`) as `package:name`;
/// a package name cannot contain `:`, so the text parses back unambiguously.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MigrationId {
    /// The package's name.
    pub package: String,
    /// The migration's name within it.
    pub name: String,
}

impl MigrationId {
    /// The migration `name` of `package`.
    pub fn new(package: impl Into<String>, name: impl Into<String>) -> MigrationId {
        MigrationId {
            package: package.into(),
            name: name.into(),
        }
    }

    /// Whether a target given by a user (`NAME` or `PACKAGE:NAME`, optionally ending in `.sql`) names this
    /// migration.
    pub fn matches(&self, target: &str) -> bool {
        let target = target.strip_suffix(".sql").unwrap_or(target);
        match target.parse::<MigrationId>() {
            Ok(id) => id == *self,
            Err(_) => target == self.name,
        }
    }
}

impl fmt::Display for MigrationId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.package, self.name)
    }
}

impl FromStr for MigrationId {
    type Err = String;

    /// `package:name` (the last `:` separates them).
    fn from_str(s: &str) -> Result<MigrationId, String> {
        match s.rsplit_once(':') {
            Some((package, name)) if !package.is_empty() && !name.is_empty() => {
                Ok(MigrationId::new(package, name))
            }
            _ => Err(format!("`{s}` is not PACKAGE:NAME")),
        }
    }
}

impl serde::Serialize for MigrationId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl PartialEq<str> for MigrationId {
    fn eq(&self, other: &str) -> bool {
        other.parse::<MigrationId>().is_ok_and(|id| id == *self)
    }
}

impl PartialEq<&str> for MigrationId {
    fn eq(&self, other: &&str) -> bool {
        *self == **other
    }
}

/// Widen an empty span to one character so the underline is visible, and keep it inside the text.
pub(crate) fn widen(text: &str, r: std::ops::Range<usize>) -> SourceSpan {
    let start = r.start.min(text.len());
    let mut end = r.end.min(text.len()).max(start);
    if end == start && start < text.len() {
        end = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    SourceSpan::new(start.into(), end - start)
}

/// Milliseconds as f64, for reports.
pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migration_ids_round_trip_and_match_targets() {
        let id = MigrationId::new("github.com/acme/billing", "0001_init");
        assert_eq!(id.to_string(), "github.com/acme/billing:0001_init");
        assert_eq!(id.to_string().parse::<MigrationId>(), Ok(id.clone()));
        assert!("0001_init".parse::<MigrationId>().is_err());
        assert!(id.matches("0001_init"));
        assert!(id.matches("0001_init.sql"));
        assert!(id.matches("github.com/acme/billing:0001_init"));
        assert!(!id.matches("other:0001_init"));
        assert_eq!(
            serde_json::to_value(&id).unwrap(),
            "github.com/acme/billing:0001_init"
        );
    }

    #[test]
    fn run_outcomes_are_the_stored_words() {
        for o in RunOutcome::ALL {
            assert_eq!(o.as_str().parse::<RunOutcome>(), Ok(o));
            assert_eq!(serde_json::to_value(o).unwrap(), o.as_str());
        }
        assert_eq!(RunOutcome::from(Outcome::Applied), "success");
        assert_eq!(format!("{:<8}|", RunOutcome::Noop), "noop    |");
    }
}
