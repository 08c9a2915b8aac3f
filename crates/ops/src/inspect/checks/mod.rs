//! Running one check: skip it when the role may not, else one read-only transaction with bounded timeouts
//! around its query, then its verdict. The queries live in one module per group; each one's text is chosen by
//! server version in one place (the function that returns it).

pub mod details;
mod health;
mod indexes;
pub(crate) mod minipaas;
mod sizes;
mod statements;
mod strata;
mod tables;

use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Row};

use super::access::{Access, STRATA_TABLES, Tables};
use super::{Check, CheckOutcome, Findings, InspectSettings};

/// What every check gets.
pub(crate) struct Ctx<'a> {
    pub db: &'a pgstrata::Database,
    pub access: &'a Access,
    pub settings: &'a InspectSettings,
    pub project: Option<&'a pgstrata::Project>,
}

impl Ctx<'_> {
    pub fn client(&self) -> &Client {
        self.db.client()
    }

    /// `server_version_num`.
    pub fn version(&self) -> i32 {
        self.access.server_version_num
    }

    /// The row limit as a query parameter.
    pub fn top(&self) -> i64 {
        i64::from(self.settings.top)
    }

    /// Run the check's query (in the transaction [`run`] opened).
    pub async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, CheckError> {
        self.client()
            .query(sql, params)
            .await
            .map_err(CheckError::Db)
    }
}

/// Why a check's query did not give findings.
#[derive(Debug)]
pub(crate) enum CheckError {
    /// The server refused or failed the query.
    Db(tokio_postgres::Error),
    /// pgstrata's history API failed.
    Strata(pgstrata::Error),
    /// The server answered something the check cannot use.
    Unexpected(String),
}

impl From<tokio_postgres::Error> for CheckError {
    fn from(e: tokio_postgres::Error) -> Self {
        CheckError::Db(e)
    }
}

pub(crate) type CheckResult = Result<Findings, CheckError>;

/// The transaction every check of one inspection runs in: read-only, repeatable read (one moment for the whole
/// report), bounded. Catalog queries over many relations get high cost estimates: the JIT would then compile them
/// for seconds and parallel workers start for nothing, so both are off. From PostgreSQL 15 statistics come from
/// shared memory; one snapshot of them all, shared by every check, is several times cheaper than a lookup per
/// relation.
pub(crate) fn begin_sql(version: i32, settings: &InspectSettings) -> String {
    let snapshot = if version >= 150_000 {
        "; SET LOCAL stats_fetch_consistency = snapshot"
    } else {
        ""
    };
    format!(
        "BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY; SET LOCAL statement_timeout = {}; \
         SET LOCAL lock_timeout = {}; SET LOCAL max_parallel_workers_per_gather = 0; SET LOCAL jit = off{snapshot}",
        settings.statement_timeout.0, settings.lock_timeout.0
    )
}

/// Run one check inside the inspection's transaction (see [`begin_sql`]), in a savepoint that is always rolled
/// back: that ends an error, and releases the relation locks the size functions took, at once. Never fails:
/// failures are outcomes.
pub(crate) async fn run(ctx: &Ctx<'_>, check: Check) -> CheckOutcome {
    if let Some(reason) = skip_reason(ctx.access, check) {
        return CheckOutcome::Skipped { reason };
    }
    if let Err(e) = ctx.client().batch_execute("SAVEPOINT strata_inspect").await {
        return failed(ctx, &CheckError::Db(e));
    }
    let result = dispatch(ctx, check).await;
    let end = ctx
        .client()
        .batch_execute("ROLLBACK TO SAVEPOINT strata_inspect")
        .await;
    match (result, end) {
        (Ok(mut findings), Ok(())) => {
            findings.limited = limits(ctx.access, check);
            CheckOutcome::Ran(findings)
        }
        (Err(e), _) => match permission_denied(&e) {
            Some(message) => CheckOutcome::Skipped {
                reason: format!(
                    "permission denied ({message}): grant the role pg_monitor, or read access to what the check \
                     reads"
                ),
            },
            None => failed(ctx, &e),
        },
        (Ok(_), Err(e)) => failed(ctx, &CheckError::Db(e)),
    }
}

async fn dispatch(ctx: &Ctx<'_>, check: Check) -> CheckResult {
    match check {
        Check::DatabaseSizes => sizes::databases(ctx).await,
        Check::SchemaSizes => sizes::schemas(ctx).await,
        Check::TableSizes => sizes::tables(ctx).await,
        Check::UnusedIndexes => indexes::unused(ctx).await,
        Check::DuplicateIndexes => indexes::duplicates(ctx).await,
        Check::InvalidIndexes => indexes::invalid(ctx).await,
        Check::IndexBloat => indexes::bloat(ctx).await,
        Check::TableBloat => tables::bloat(ctx).await,
        Check::DeadTuples => tables::dead_tuples(ctx).await,
        Check::VacuumAnalyze => tables::vacuum_analyze(ctx).await,
        Check::SeqScans => tables::seq_scans(ctx).await,
        Check::Wraparound => health::wraparound(ctx).await,
        Check::LongTransactions => health::long_transactions(ctx).await,
        Check::BlockingLocks => health::blocking_locks(ctx).await,
        Check::Connections => health::connections(ctx).await,
        Check::CacheHit => health::cache_hit(ctx).await,
        Check::ReplicationSlots => health::replication_slots(ctx).await,
        Check::Checkpoints => health::checkpoints(ctx).await,
        Check::Strata => strata::check(ctx).await,
        Check::Queues => minipaas::queues(ctx).await,
        Check::Streams => minipaas::streams(ctx).await,
        Check::Statements => statements::check(ctx).await,
    }
}

/// Why a check cannot run for this role, or on this database.
fn skip_reason(access: &Access, check: Check) -> Option<String> {
    let user = &access.user;
    let tables = |names: &[&str], absent: &str, schema: &str| match access.tables(names) {
        Tables::Readable => None,
        Tables::Absent => Some(absent.to_string()),
        Tables::Unreadable(missing) => Some(format!(
            "role {user} may not read {} (GRANT USAGE ON SCHEMA {schema} TO {user}; GRANT SELECT ON ALL TABLES IN \
             SCHEMA {schema} TO {user})",
            missing.join(", ")
        )),
    };
    match check {
        Check::Strata => tables(
            STRATA_TABLES,
            "no Strata history in this database (nothing was deployed with Strata)",
            "strata",
        ),
        Check::Queues => tables(
            minipaas::QUEUE_TABLES,
            "MiniPaaS is not installed in this database",
            "minipaas",
        ),
        Check::Streams => tables(
            minipaas::STREAM_TABLES,
            "MiniPaaS is not installed in this database",
            "minipaas",
        ),
        Check::Statements => match (&access.pg_stat_statements_schema, access.pg_stat_statements_loaded) {
            (None, _) => Some(
                "pg_stat_statements is not installed in this database (CREATE EXTENSION pg_stat_statements; it \
                 must also be in shared_preload_libraries)"
                    .into(),
            ),
            (Some(_), false) => Some(
                "pg_stat_statements is installed but not loaded: add it to shared_preload_libraries and restart \
                 the server"
                    .into(),
            ),
            (Some(_), true) => None,
        },
        _ => None,
    }
}

/// What a check that ran could not see, for this role.
fn limits(access: &Access, check: Check) -> Vec<String> {
    let mut notes = Vec::new();
    if !access.read_all_stats {
        let hidden = match check {
            Check::LongTransactions | Check::BlockingLocks => {
                Some("queries and times of other roles' sessions are hidden")
            }
            Check::Statements => Some("other roles' statements are shown without their text"),
            _ => None,
        };
        if let Some(what) = hidden {
            notes.push(format!(
                "{what}: role {} lacks pg_read_all_stats (part of pg_monitor)",
                access.user
            ));
        }
    }
    if !access.superuser && matches!(check, Check::TableBloat | Check::IndexBloat) {
        notes.push(
            "estimated only for tables whose column statistics the role may read (pg_stats needs SELECT on the \
             table)"
                .into(),
        );
    }
    notes
}

fn permission_denied(e: &CheckError) -> Option<String> {
    let db = match e {
        CheckError::Db(e) => e.as_db_error(),
        CheckError::Strata(pgstrata::Error::Database { source, .. }) => source.as_db_error(),
        CheckError::Strata(_) | CheckError::Unexpected(_) => None,
    }?;
    (db.code() == &tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
        .then(|| db.message().to_string())
}

fn failed(ctx: &Ctx<'_>, e: &CheckError) -> CheckOutcome {
    let (error, sqlstate) = match e {
        CheckError::Db(e) => match e.as_db_error() {
            Some(db) if db.code() == &tokio_postgres::error::SqlState::QUERY_CANCELED => (
                format!(
                    "gave up after {} (statement_timeout; raise [inspect] statement_timeout)",
                    ctx.settings.statement_timeout
                ),
                Some(db.code().code().to_string()),
            ),
            Some(db) if db.code() == &tokio_postgres::error::SqlState::LOCK_NOT_AVAILABLE => (
                format!(
                    "a relation it reads is locked; gave up after {} (lock_timeout; see blocking-locks)",
                    ctx.settings.lock_timeout
                ),
                Some(db.code().code().to_string()),
            ),
            Some(db) => (db.message().to_string(), Some(db.code().code().to_string())),
            None => (e.to_string(), None),
        },
        CheckError::Strata(e) => (e.to_string(), e.sqlstate().map(str::to_string)),
        CheckError::Unexpected(m) => (m.clone(), None),
    };
    CheckOutcome::Failed { error, sqlstate }
}

/// Relations someone holds or awaits an `ACCESS EXCLUSIVE` lock on, in this database: the size functions would
/// queue behind that lock, so their size comes from the catalog's page count instead.
pub(crate) const BUSY_CTE: &str = "busy AS (
    SELECT l.relation FROM pg_catalog.pg_locks l
     WHERE l.locktype = 'relation' AND l.mode = 'AccessExclusiveLock'
       AND l.database = (SELECT d.oid FROM pg_catalog.pg_database d WHERE d.datname = current_database())
)";

/// Schemas no check looks into.
pub(crate) const SYSTEM_SCHEMAS: &str = "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'";

/// `a` / `b`, 0 when `b` is 0.
pub(crate) fn ratio(a: i64, b: i64) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// Bytes as PostgreSQL's `pg_size_pretty` shows them.
pub fn pretty_bytes(bytes: i64) -> String {
    let mut value = bytes as f64;
    for unit in ["bytes", "kB", "MB", "GB", "TB"] {
        if value.abs() < 10_240.0 || unit == "TB" {
            return if unit == "bytes" {
                format!("{bytes} bytes")
            } else {
                format!("{} {unit}", value.round())
            };
        }
        value /= 1024.0;
    }
    format!("{bytes} bytes")
}

/// Seconds as `3s`, `4min`, `2h 5min`, `3d 4h`.
pub fn pretty_age(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}min {}s", s / 60, s % 60),
        3600..=86_399 => format!("{}h {}min", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86_400, (s % 86_400) / 3600),
    }
}

/// `schema.name`, as people type it.
pub(crate) fn qualified(schema: &str, name: &str) -> String {
    format!("{schema}.{name}")
}
