//! `strata inspect`: the checks people run every week (sizes, index usage, vacuum health, wraparound, locks,
//! Strata's own history, MiniPaaS queues and streams, top statements), each one catalog or statistics query.
//!
//! - All checks of one inspection share one read-only, repeatable-read transaction (one moment for the whole
//!   report, one statistics snapshot) with `statement_timeout` and `lock_timeout` set; each runs in a savepoint
//!   rolled back right after, so a failing check never stops the others and no lock outlives its check.
//! - Privileges are probed once up front: a check the role may not run is [`CheckOutcome::Skipped`] with the
//!   reason and the grant that would allow it; a check that runs with less visibility (other users' sessions
//!   hidden without `pg_read_all_stats`) says so in its notes. A role with `pg_monitor` runs every catalog
//!   check.
//! - Each check returns typed rows ([`Details`]) and a [`Verdict`] from the thresholds of
//!   [`InspectSettings`] (`[inspect]` in `strata.toml`); nothing here prints.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgstrata_ops::Error> {
//! let options = pgstrata_conn::ConnectOptions::from_env(None)?;
//! let db = pgstrata::Database::connect(&options).await?;
//! let opts = pgstrata_ops::inspect::InspectOptions::default();
//! let report = pgstrata_ops::inspect::inspect(&db, &opts, None).await?;
//! for check in &report.checks {
//!     println!("{}: {:?}", check.check, check.outcome.verdict());
//! }
//! # Ok(()) }
//! ```

mod access;
pub(crate) mod checks;
mod settings;

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use chrono::{DateTime, Utc};
use serde::Serialize;

pub use access::Access;
pub use checks::details::*;
pub use checks::{pretty_age, pretty_bytes};
pub use settings::{DurationSetting, InspectSettings, SizeSetting, parse_size};

use crate::error::{Error, Result};

/// One check: one query, one verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    /// Size of each database of the cluster.
    DatabaseSizes,
    /// Size of each schema of this database, with the package that owns it.
    SchemaSizes,
    /// The largest tables, with their indexes and TOAST.
    TableSizes,
    /// Indexes never scanned since the statistics were reset.
    UnusedIndexes,
    /// Indexes with the same definition as another, or whose columns are a prefix of another's.
    DuplicateIndexes,
    /// Indexes left invalid (a failed `CREATE INDEX CONCURRENTLY`).
    InvalidIndexes,
    /// Estimated wasted space in B-tree indexes.
    IndexBloat,
    /// Estimated wasted space in tables.
    TableBloat,
    /// Dead tuples waiting for vacuum.
    DeadTuples,
    /// Tables never analyzed, or analyzed long ago and modified since; last (auto)vacuum and analyze.
    VacuumAnalyze,
    /// Large tables read mostly by sequential scans.
    SeqScans,
    /// Transaction-ID and multixact age per database and per table.
    Wraparound,
    /// Long-running transactions and sessions idle in a transaction.
    LongTransactions,
    /// Sessions waiting for locks, and who holds them.
    BlockingLocks,
    /// Connections in use against `max_connections`.
    Connections,
    /// Buffer cache hit ratio of tables and indexes.
    CacheHit,
    /// Replication slots and the WAL they retain.
    ReplicationSlots,
    /// Timed and requested checkpoints.
    Checkpoints,
    /// Strata's own view: per package applied and pending migrations, managed-code drift, the last run.
    Strata,
    /// MiniPaaS queues: depth, in flight, delayed, dead letters, oldest ready message.
    Queues,
    /// MiniPaaS streams: length, retention, lag of each consumer group.
    Streams,
    /// The top statements of `pg_stat_statements`.
    Statements,
}

/// What a check is about; a group name selects all its checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Group {
    /// Databases, schemas, tables.
    Sizes,
    /// Index usage and health.
    Indexes,
    /// Table bloat, vacuum and analyze, scans.
    Tables,
    /// Server health: wraparound, sessions, locks, connections, cache, replication, checkpoints.
    Health,
    /// Strata's history.
    Strata,
    /// MiniPaaS queues and streams.
    Minipaas,
    /// Query statistics.
    Statements,
}

impl Check {
    /// Every check, in report order.
    pub const ALL: [Check; 22] = [
        Check::DatabaseSizes,
        Check::SchemaSizes,
        Check::TableSizes,
        Check::UnusedIndexes,
        Check::DuplicateIndexes,
        Check::InvalidIndexes,
        Check::IndexBloat,
        Check::TableBloat,
        Check::DeadTuples,
        Check::VacuumAnalyze,
        Check::SeqScans,
        Check::Wraparound,
        Check::LongTransactions,
        Check::BlockingLocks,
        Check::Connections,
        Check::CacheHit,
        Check::ReplicationSlots,
        Check::Checkpoints,
        Check::Strata,
        Check::Queues,
        Check::Streams,
        Check::Statements,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Check::DatabaseSizes => "database-sizes",
            Check::SchemaSizes => "schema-sizes",
            Check::TableSizes => "table-sizes",
            Check::UnusedIndexes => "unused-indexes",
            Check::DuplicateIndexes => "duplicate-indexes",
            Check::InvalidIndexes => "invalid-indexes",
            Check::IndexBloat => "index-bloat",
            Check::TableBloat => "table-bloat",
            Check::DeadTuples => "dead-tuples",
            Check::VacuumAnalyze => "vacuum-analyze",
            Check::SeqScans => "seq-scans",
            Check::Wraparound => "wraparound",
            Check::LongTransactions => "long-transactions",
            Check::BlockingLocks => "blocking-locks",
            Check::Connections => "connections",
            Check::CacheHit => "cache-hit",
            Check::ReplicationSlots => "replication-slots",
            Check::Checkpoints => "checkpoints",
            Check::Strata => "strata",
            Check::Queues => "queues",
            Check::Streams => "streams",
            Check::Statements => "statements",
        }
    }

    /// The group it belongs to.
    pub fn group(self) -> Group {
        match self {
            Check::DatabaseSizes | Check::SchemaSizes | Check::TableSizes => Group::Sizes,
            Check::UnusedIndexes
            | Check::DuplicateIndexes
            | Check::InvalidIndexes
            | Check::IndexBloat => Group::Indexes,
            Check::TableBloat | Check::DeadTuples | Check::VacuumAnalyze | Check::SeqScans => {
                Group::Tables
            }
            Check::Wraparound
            | Check::LongTransactions
            | Check::BlockingLocks
            | Check::Connections
            | Check::CacheHit
            | Check::ReplicationSlots
            | Check::Checkpoints => Group::Health,
            Check::Strata => Group::Strata,
            Check::Queues | Check::Streams => Group::Minipaas,
            Check::Statements => Group::Statements,
        }
    }

    /// One line on what it looks at and when it warns (`strata inspect --list`).
    pub fn about(self) -> &'static str {
        match self {
            Check::DatabaseSizes => "size of each database of the cluster (information)",
            Check::SchemaSizes => {
                "size of each schema, with the Strata package that owns it (information)"
            }
            Check::TableSizes => "largest tables: heap, indexes, TOAST (information)",
            Check::UnusedIndexes => {
                "non-unique indexes never scanned since the statistics reset (warning; unused_index_min_size)"
            }
            Check::DuplicateIndexes => {
                "indexes equal to another, or a prefix of another's columns (warning)"
            }
            Check::InvalidIndexes => {
                "indexes left invalid by a failed CREATE INDEX CONCURRENTLY (problem)"
            }
            Check::IndexBloat => {
                "estimated wasted space in B-tree indexes (index_bloat_*, bloat_min_size)"
            }
            Check::TableBloat => "estimated wasted space in tables (table_bloat_*, bloat_min_size)",
            Check::DeadTuples => "dead tuples waiting for vacuum (dead_tuples_*, dead_tuples_min)",
            Check::VacuumAnalyze => {
                "tables never analyzed, or modified since a stale analyze (warning; analyze_stale_after, analyze_min_rows)"
            }
            Check::SeqScans => {
                "large tables read mostly by sequential scans (index_use_warning, seq_scan_min_rows)"
            }
            Check::Wraparound => {
                "transaction-ID and multixact age per database and table (xid_age_*, multixact_age_*)"
            }
            Check::LongTransactions => {
                "long transactions and sessions idle in a transaction (long_transaction_*, idle_in_transaction_*)"
            }
            Check::BlockingLocks => {
                "sessions waiting for a lock and the chain of holders (lock_wait_*)"
            }
            Check::Connections => "connections in use against max_connections (connections_*)",
            Check::CacheHit => "buffer cache hit ratio of tables and indexes (cache_hit_*)",
            Check::ReplicationSlots => {
                "replication slots, inactive ones, WAL retained (slot_retained_wal_*)"
            }
            Check::Checkpoints => "share of requested checkpoints (requested_checkpoints_warning)",
            Check::Strata => {
                "per package applied/pending migrations and managed-code drift, last run (pending: warning; failed run: problem)"
            }
            Check::Queues => {
                "MiniPaaS queues: ready, delayed, in flight, dead letters, oldest ready (queue_age_*, dead_letters_*)"
            }
            Check::Streams => {
                "MiniPaaS streams: events, retention, consumer-group lag (stream_lag_*)"
            }
            Check::Statements => {
                "top statements by total time from pg_stat_statements (slow_statement)"
            }
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl Group {
    /// Every group.
    pub const ALL: [Group; 7] = [
        Group::Sizes,
        Group::Indexes,
        Group::Tables,
        Group::Health,
        Group::Strata,
        Group::Minipaas,
        Group::Statements,
    ];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Group::Sizes => "sizes",
            Group::Indexes => "indexes",
            Group::Tables => "tables",
            Group::Health => "health",
            Group::Strata => "strata",
            Group::Minipaas => "minipaas",
            Group::Statements => "statements",
        }
    }
}

impl FromStr for Check {
    type Err = Error;
    fn from_str(s: &str) -> Result<Check> {
        Check::ALL
            .into_iter()
            .find(|c| c.name() == s)
            .ok_or_else(|| unknown_check(s))
    }
}

fn unknown_check(name: &str) -> Error {
    let mut known: Vec<&str> = Group::ALL.iter().map(|g| g.name()).collect();
    for c in Check::ALL {
        if !known.contains(&c.name()) {
            known.push(c.name());
        }
    }
    Error::UnknownCheck {
        name: name.to_string(),
        known: known.join(", "),
    }
}

/// The checks that names (check or group names) select, in report order, without repeats. No names: every check.
pub fn select(names: &[String]) -> Result<Vec<Check>> {
    if names.is_empty() {
        return Ok(Check::ALL.to_vec());
    }
    let mut chosen = Vec::new();
    for name in names {
        let name = name.trim();
        if let Some(group) = Group::ALL.into_iter().find(|g| g.name() == name) {
            chosen.extend(Check::ALL.into_iter().filter(|c| c.group() == group));
        } else {
            chosen.push(name.parse::<Check>()?);
        }
    }
    chosen.sort();
    chosen.dedup();
    Ok(chosen)
}

/// The verdict of a check that ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// Worth a look.
    Warning,
    /// Needs action.
    Problem,
}

impl Verdict {
    /// The verdict of a value where higher is worse.
    pub fn grade<T: PartialOrd>(value: T, warning: T, problem: T) -> Verdict {
        if value >= problem {
            Verdict::Problem
        } else if value >= warning {
            Verdict::Warning
        } else {
            Verdict::Ok
        }
    }

    /// The verdict of a value where lower is worse.
    pub fn grade_low<T: PartialOrd>(value: T, warning: T, problem: T) -> Verdict {
        if value < problem {
            Verdict::Problem
        } else if value < warning {
            Verdict::Warning
        } else {
            Verdict::Ok
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::Ok => "ok",
            Verdict::Warning => "warning",
            Verdict::Problem => "problem",
        })
    }
}

/// What a check that ran found.
#[derive(Debug, Clone, Serialize)]
pub struct Findings {
    /// Ok, warning or problem.
    pub verdict: Verdict,
    /// One line.
    pub summary: String,
    /// Remarks (estimates, hints).
    pub notes: Vec<String>,
    /// What the role could not see: the verdict covers only what it could.
    pub limited: Vec<String>,
    /// The rows.
    pub details: Details,
}

/// How a check ended.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
#[allow(
    clippy::large_enum_variant,
    reason = "one per check, and nearly all of them ran: boxing would cost more than it saves"
)]
pub enum CheckOutcome {
    /// It ran.
    Ran(Findings),
    /// It did not run: missing privileges, or what it looks at is not installed.
    Skipped {
        /// Why, and what would allow it.
        reason: String,
    },
    /// Its query failed (a timeout, an unexpected error).
    Failed {
        /// The error.
        error: String,
        /// The SQLSTATE, when the server reported one.
        sqlstate: Option<String>,
    },
}

impl CheckOutcome {
    /// The verdict when the check ran.
    pub fn verdict(&self) -> Option<Verdict> {
        match self {
            CheckOutcome::Ran(f) => Some(f.verdict),
            _ => None,
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// Which check.
    pub check: Check,
    /// Its group.
    pub group: Group,
    /// How long it took (query and evaluation).
    pub duration_ms: f64,
    /// What happened.
    #[serde(flatten)]
    pub outcome: CheckOutcome,
}

/// Everything `inspect` found.
#[derive(Debug, Clone, Serialize)]
pub struct InspectReport {
    /// The database inspected.
    pub database: String,
    /// The role inspecting.
    pub user: String,
    /// `server_version`.
    pub server_version: String,
    /// `server_version_num`.
    pub server_version_num: i32,
    /// What the role may see.
    pub access: Access,
    /// When the inspection started.
    pub started_at: DateTime<Utc>,
    /// Wall time of the whole inspection.
    pub duration_ms: f64,
    /// One entry per check asked for, in report order.
    pub checks: Vec<CheckReport>,
}

impl InspectReport {
    /// The worst verdict of the checks that ran (`Ok` when none ran).
    pub fn worst(&self) -> Verdict {
        self.checks
            .iter()
            .filter_map(|c| c.outcome.verdict())
            .max()
            .unwrap_or(Verdict::Ok)
    }

    /// True when a check's query failed.
    pub fn any_failed(&self) -> bool {
        self.checks
            .iter()
            .any(|c| matches!(c.outcome, CheckOutcome::Failed { .. }))
    }

    /// The report of one check, if it was asked for.
    pub fn get(&self, check: Check) -> Option<&CheckReport> {
        self.checks.iter().find(|c| c.check == check)
    }
}

/// What to inspect and how.
#[derive(Debug, Clone, Default)]
pub struct InspectOptions {
    /// The checks to run (see [`select`]); empty: every check.
    pub checks: Vec<Check>,
    /// Thresholds and limits.
    pub settings: InspectSettings,
}

/// Run the checks against the database `db` is connected to. `project`, when given, lets the `strata` check
/// count pending migrations and find drifted managed code exactly (else it reads the database alone).
///
/// Fails only when the server cannot be queried at all; each check's own failure is in its [`CheckOutcome`].
pub async fn inspect(
    db: &pgstrata::Database,
    opts: &InspectOptions,
    project: Option<&pgstrata::Project>,
) -> Result<InspectReport> {
    let started_at = Utc::now();
    let start = Instant::now();
    let client = db.client();
    let access = access::probe(client).await?;
    let checks = if opts.checks.is_empty() {
        Check::ALL.to_vec()
    } else {
        opts.checks.clone()
    };
    let ctx = checks::Ctx {
        db,
        access: &access,
        settings: &opts.settings,
        project,
    };
    client
        .batch_execute(&checks::begin_sql(
            access.server_version_num,
            &opts.settings,
        ))
        .await
        .map_err(Error::db("starting the inspection's read-only transaction"))?;
    let mut reports = Vec::with_capacity(checks.len());
    for check in checks {
        let t = Instant::now();
        let outcome = checks::run(&ctx, check).await;
        reports.push(CheckReport {
            check,
            group: check.group(),
            duration_ms: t.elapsed().as_secs_f64() * 1000.0,
            outcome,
        });
    }
    // Read-only: nothing to commit.
    client
        .batch_execute("ROLLBACK")
        .await
        .map_err(Error::db("ending the inspection's transaction"))?;
    Ok(InspectReport {
        database: access.database.clone(),
        user: access.user.clone(),
        server_version: access.server_version.clone(),
        server_version_num: access.server_version_num,
        access,
        started_at,
        duration_ms: start.elapsed().as_secs_f64() * 1000.0,
        checks: reports,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn names_select_checks_and_groups_in_report_order() {
        assert_eq!(select(&[]).unwrap().len(), Check::ALL.len());
        let chosen =
            select(&["queues".into(), "indexes".into(), "invalid-indexes".into()]).unwrap();
        assert_eq!(
            chosen,
            vec![
                Check::UnusedIndexes,
                Check::DuplicateIndexes,
                Check::InvalidIndexes,
                Check::IndexBloat,
                Check::Queues
            ]
        );
        assert_eq!(
            select(&["minipaas".into()]).unwrap(),
            vec![Check::Queues, Check::Streams]
        );
        let Err(Error::UnknownCheck { name, known }) = select(&["vacuum".into()]) else {
            panic!()
        };
        assert_eq!(name, "vacuum");
        assert!(
            known.contains("vacuum-analyze") && known.contains("health"),
            "{known}"
        );
    }

    #[test]
    fn every_check_has_a_distinct_name_and_a_group() {
        let mut names: Vec<&str> = Check::ALL.iter().map(|c| c.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Check::ALL.len());
        for g in Group::ALL {
            assert!(
                Check::ALL.iter().any(|c| c.group() == g),
                "{g:?} has checks"
            );
        }
    }

    #[test]
    fn verdicts_grade_both_ways() {
        assert_eq!(Verdict::grade(5, 10, 20), Verdict::Ok);
        assert_eq!(Verdict::grade(10, 10, 20), Verdict::Warning);
        assert_eq!(Verdict::grade(25, 10, 20), Verdict::Problem);
        assert_eq!(Verdict::grade_low(0.995, 0.99, 0.95), Verdict::Ok);
        assert_eq!(Verdict::grade_low(0.97, 0.99, 0.95), Verdict::Warning);
        assert_eq!(Verdict::grade_low(0.5, 0.99, 0.95), Verdict::Problem);
    }
}
