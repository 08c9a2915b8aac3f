//! Reading the history one page at a time (what `strata console` shows): runs filtered by package and outcome,
//! one run with who ran it from where, and the migrations it applied or reverted with their SQL.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use super::{RunRecord, history_exists};
use crate::error::{Error, Result};
use crate::report::RunOutcome;

/// Which runs to list: newest first, optionally of one package or one outcome.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    /// Only runs whose state before or after names this package.
    pub package: Option<String>,
    /// Only runs that ended so.
    pub outcome: Option<RunOutcome>,
    /// Runs skipped (newest first).
    pub offset: i64,
    /// Runs returned at most.
    pub limit: i64,
}

/// One page of runs and how many match the filter.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunPage {
    /// The runs, newest first.
    pub runs: Vec<RunRecord>,
    /// How many runs match the filter.
    pub total: i64,
}

/// A run with where it came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunDetail {
    /// What every run has.
    #[serde(flatten)]
    pub run: RunRecord,
    /// The Strata version that ran it.
    pub strata_version: String,
    /// The operating-system user that ran it.
    pub os_user: Option<String>,
    /// The host it ran on.
    pub client_host: Option<String>,
}

/// One migration a run applied, reverted or recorded (`strata.migration_log`), with its SQL as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunMigration {
    /// Package name.
    pub package: String,
    /// Migration name.
    pub name: String,
    /// `apply`, `revert`, `accept-change`, `refresh-down` or `record`.
    pub action: String,
    /// When.
    pub at: DateTime<Utc>,
    /// How long it took, when it ran.
    pub duration_ms: Option<f64>,
    /// Checksum of the file it ran.
    pub checksum: Option<String>,
    /// Path (relative to the package root), while the migration is applied.
    pub path: Option<String>,
    /// The up SQL as applied, while the migration is applied (a reverted migration's row is gone).
    pub up_sql: Option<String>,
    /// The down SQL stored with it.
    pub down_sql: Option<String>,
    /// Who applied it (database user).
    pub applied_by: Option<String>,
}

/// The packages named in any run's history (for a filter's choices), by name.
pub async fn run_packages(client: &Client) -> Result<Vec<String>> {
    if !history_exists(client).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query_typed("SELECT name FROM strata.package ORDER BY name", &[])
        .await
        .map_err(Error::db("reading strata.package"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// One page of runs, newest first, and how many match.
pub async fn run_page(client: &Client, filter: &RunFilter) -> Result<RunPage> {
    if !history_exists(client).await? {
        return Ok(RunPage {
            runs: Vec::new(),
            total: 0,
        });
    }
    // A package is named in the state before (every package of the project a run deployed) or after the run.
    const WHERE: &str = "($1::text IS NULL OR from_state ? $1 OR coalesce(to_state ? $1, false))
                         AND ($2::text IS NULL OR outcome = $2)";
    let outcome = filter.outcome.map(|o| o.to_string());
    let rows = client
        .query_typed(
            &format!(
                "SELECT id, command, outcome, started_at, finished_at, from_state, to_state, detail, error, db_user
                   FROM strata.run WHERE {WHERE} ORDER BY id DESC OFFSET $3 LIMIT $4"
            ),
            &[
                (&filter.package, Type::TEXT),
                (&outcome, Type::TEXT),
                (&filter.offset.max(0), Type::INT8),
                (&filter.limit.max(0), Type::INT8),
            ],
        )
        .await
        .map_err(Error::db("reading strata.run"))?;
    let total: i64 = client
        .query_typed_one(
            &format!("SELECT count(*) FROM strata.run WHERE {WHERE}"),
            &[(&filter.package, Type::TEXT), (&outcome, Type::TEXT)],
        )
        .await
        .map_err(Error::db("counting strata.run"))?
        .get(0);
    Ok(RunPage {
        runs: rows.iter().map(super::run_record).collect(),
        total,
    })
}

/// The run `id`, if recorded.
pub async fn run(client: &Client, id: i64) -> Result<Option<RunDetail>> {
    if !history_exists(client).await? {
        return Ok(None);
    }
    let row = client
        .query_typed_opt(
            "SELECT id, command, outcome, started_at, finished_at, from_state, to_state, detail, error, db_user,
                    strata_version, os_user, client_host
               FROM strata.run WHERE id = $1",
            &[(&id, Type::INT8)],
        )
        .await
        .map_err(Error::db("reading strata.run"))?;
    Ok(row.map(|r| RunDetail {
        run: super::run_record(&r),
        strata_version: r.get(10),
        os_user: r.get(11),
        client_host: r.get(12),
    }))
}

/// The migrations run `id` applied, reverted or recorded, in the order it did, with their stored SQL.
pub async fn run_migrations(client: &Client, id: i64) -> Result<Vec<RunMigration>> {
    if !history_exists(client).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query_typed(
            "SELECT l.package, l.name, l.action, l.at, l.duration_ms, l.checksum, m.path, m.up_sql, m.down_sql,
                    m.applied_by
               FROM strata.migration_log l
               LEFT JOIN strata.migration m ON m.package = l.package AND m.name = l.name
              WHERE l.run_id = $1
              ORDER BY l.id",
            &[(&id, Type::INT8)],
        )
        .await
        .map_err(Error::db("reading strata.migration_log"))?;
    Ok(rows
        .iter()
        .map(|r| RunMigration {
            package: r.get(0),
            name: r.get(1),
            action: r.get(2),
            at: r.get(3),
            duration_ms: r.get(4),
            checksum: r.get(5),
            path: r.get(6),
            up_sql: r.get(7),
            down_sql: r.get(8),
            applied_by: r.get(9),
        })
        .collect())
}
