//! Strata's history in the database (`strata.*` tables): reading what is applied, recording what runs.
//!
//! Queries are sent with their parameter types (`query_typed`): one round trip each, no separate prepare. A no-op
//! `up` is mostly these queries, so each round trip saved shows.

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use crate::error::{Error, Result};

/// An applied migration as recorded in `strata.migration`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppliedMigration {
    /// Package name.
    pub package: String,
    /// Migration name.
    pub name: String,
    /// Path when applied (relative to the package root).
    pub path: String,
    /// Checksum when applied.
    pub checksum: String,
    /// Whether down SQL is stored.
    pub has_down: bool,
    /// Whether some up section ran outside a transaction.
    pub no_transaction: bool,
    /// When.
    pub applied_at: DateTime<Utc>,
    /// Database user that applied it.
    pub applied_by: String,
    /// How long it took.
    pub duration_ms: f64,
    /// Order of application (increasing).
    pub seq: i64,
    /// `strata`, or how it was recorded without running (`baseline`, `adopted:dbmate`, …).
    pub source: String,
}

/// True once Strata's history tables exist in this database.
pub async fn history_exists(client: &Client) -> Result<bool> {
    let row = client
        .query_typed_one("SELECT to_regclass('strata.migration') IS NOT NULL", &[])
        .await
        .map_err(Error::db("checking for strata's history tables"))?;
    Ok(row.get(0))
}

/// Every applied migration, oldest first. Empty when the history tables do not exist yet.
pub async fn applied(client: &Client) -> Result<Vec<AppliedMigration>> {
    if !history_exists(client).await? {
        return Ok(Vec::new());
    }
    read_applied(client).await
}

/// Every applied migration, oldest first, when the caller knows the history tables exist.
pub(crate) async fn read_applied(client: &Client) -> Result<Vec<AppliedMigration>> {
    let rows = client
        .query_typed(
            "SELECT package, name, path, checksum, down_sql IS NOT NULL, no_transaction, applied_at, applied_by,
                    duration_ms, id, source
               FROM strata.migration ORDER BY id",
            &[],
        )
        .await
        .map_err(Error::db("reading strata.migration"))?;
    Ok(rows
        .iter()
        .map(|r| AppliedMigration {
            package: r.get(0),
            name: r.get(1),
            path: r.get(2),
            checksum: r.get(3),
            has_down: r.get(4),
            no_transaction: r.get(5),
            applied_at: r.get(6),
            applied_by: r.get(7),
            duration_ms: r.get(8),
            seq: r.get(9),
            source: r.get(10),
        })
        .collect())
}

/// The up SQL stored for an applied migration.
pub async fn stored_up_sql(client: &Client, package: &str, name: &str) -> Result<Option<String>> {
    let row = client
        .query_typed_opt(
            "SELECT up_sql FROM strata.migration WHERE package = $1 AND name = $2",
            &[(&package, Type::TEXT), (&name, Type::TEXT)],
        )
        .await
        .map_err(Error::db("reading stored up SQL"))?;
    Ok(row.map(|r| r.get(0)))
}

/// The down SQL stored for an applied migration.
pub(crate) async fn stored_down_sql(
    client: &Client,
    package: &str,
    name: &str,
) -> Result<Option<String>> {
    let row = client
        .query_typed_opt(
            "SELECT down_sql FROM strata.migration WHERE package = $1 AND name = $2",
            &[(&package, Type::TEXT), (&name, Type::TEXT)],
        )
        .await
        .map_err(Error::db("reading stored down SQL"))?;
    Ok(row.and_then(|r| r.get(0)))
}

/// A recorded run (`strata.run`).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunRecord {
    /// Run id.
    pub id: i64,
    /// `up`, `down`, …
    pub command: String,
    /// `success`, `noop`, `failed`, `running`.
    pub outcome: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// Last applied migration per package before.
    pub from_state: serde_json::Value,
    /// Last applied migration per package after.
    pub to_state: Option<serde_json::Value>,
    /// Extra facts (for a failed no-transaction migration: the statements that ran).
    pub detail: Option<serde_json::Value>,
    /// The error, for failed runs.
    pub error: Option<String>,
    /// Database user.
    pub db_user: String,
}

/// The most recent runs, newest first.
pub async fn runs(client: &Client, limit: i64) -> Result<Vec<RunRecord>> {
    if !history_exists(client).await? {
        return Ok(Vec::new());
    }
    let rows = client
        .query_typed(
            "SELECT id, command, outcome, started_at, finished_at, from_state, to_state, detail, error, db_user
               FROM strata.run ORDER BY id DESC LIMIT $1",
            &[(&limit, Type::INT8)],
        )
        .await
        .map_err(Error::db("reading strata.run"))?;
    Ok(rows
        .iter()
        .map(|r| RunRecord {
            id: r.get(0),
            command: r.get(1),
            outcome: r.get(2),
            started_at: r.get(3),
            finished_at: r.get(4),
            from_state: r.get(5),
            to_state: r.get(6),
            detail: r.get(7),
            error: r.get(8),
            db_user: r.get(9),
        })
        .collect())
}

/// The `strata.run` row of a deploy, inserted when something needs it, or at the end (with outcome `noop`) for
/// a run with nothing to do — without waiting for the WAL flush at commit.
#[derive(Debug)]
pub(crate) struct RunRow {
    command: &'static str,
    id: Option<i64>,
    /// The state before the run, once a row may be written (the history tables exist, not a dry run).
    from_state: Option<serde_json::Value>,
}

impl RunRow {
    pub(crate) fn new(command: &'static str) -> RunRow {
        RunRow {
            command,
            id: None,
            from_state: None,
        }
    }

    /// From now on a row may be written, recording `from_state`.
    pub(crate) fn allow(&mut self, from_state: serde_json::Value) {
        self.from_state = Some(from_state);
    }

    /// The row's id, if it was written.
    pub(crate) fn id(&self) -> Option<i64> {
        self.id
    }

    /// The row's id, inserting the row first if it is allowed and not written yet.
    pub(crate) async fn ensure(&mut self, client: &Client) -> Result<Option<i64>> {
        if self.id.is_none()
            && let Some(from_state) = &self.from_state
        {
            self.id = Some(start_run(client, self.command, from_state).await?);
        }
        Ok(self.id)
    }
}

impl RunRow {
    /// Record a run that changed nothing, in one statement, if a row may be written and none was: the run log
    /// keeps every run, and the transaction commits without waiting for the WAL flush (`synchronous_commit = off`
    /// for it alone: a crash can lose the record of a run that did nothing, never anything else).
    pub(crate) async fn record_noop(
        &mut self,
        client: &Client,
        state: &serde_json::Value,
    ) -> Result<()> {
        if self.id.is_some() {
            return Ok(());
        }
        let Some(from_state) = &self.from_state else {
            return Ok(());
        };
        let host = whoami::fallible::hostname().ok();
        let os_user = whoami::username();
        let row = client
            .query_typed_one(
                "INSERT INTO strata.run (command, from_state, to_state, outcome, finished_at, strata_version, os_user,
                                         client_host)
                 SELECT $1, $2, $3, 'noop', clock_timestamp(), $4, $5, $6
                   FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit
                 RETURNING id",
                &[
                    (&self.command, Type::TEXT),
                    (from_state, Type::JSONB),
                    (state, Type::JSONB),
                    (&crate::VERSION, Type::TEXT),
                    (&os_user, Type::TEXT),
                    (&host, Type::TEXT),
                ],
            )
            .await
            .map_err(Error::db("recording the run in strata.run"))?;
        self.id = Some(row.get(0));
        Ok(())
    }
}

/// Insert a run row; returns its id.
pub(crate) async fn start_run(
    client: &Client,
    command: &str,
    from_state: &serde_json::Value,
) -> Result<i64> {
    let host = whoami::fallible::hostname().ok();
    let os_user = whoami::username();
    let row = client
        .query_typed_one(
            "INSERT INTO strata.run (command, from_state, strata_version, os_user, client_host)
             VALUES ($1, $2, $3, $4, $5) RETURNING id",
            &[
                (&command, Type::TEXT),
                (from_state, Type::JSONB),
                (&crate::VERSION, Type::TEXT),
                (&os_user, Type::TEXT),
                (&host, Type::TEXT),
            ],
        )
        .await
        .map_err(Error::db("recording the run in strata.run"))?;
    Ok(row.get(0))
}

/// Close a run row.
pub(crate) async fn finish_run(
    client: &Client,
    run_id: i64,
    outcome: &str,
    to_state: Option<&serde_json::Value>,
    detail: Option<&serde_json::Value>,
    error: Option<&str>,
) -> Result<()> {
    client
        .query_typed(
            "UPDATE strata.run SET outcome = $2, finished_at = clock_timestamp(), to_state = $3, detail = $4,
                    error = $5
              WHERE id = $1",
            &[
                (&run_id, Type::INT8),
                (&outcome, Type::TEXT),
                (&to_state, Type::JSONB),
                (&detail, Type::JSONB),
                (&error, Type::TEXT),
            ],
        )
        .await
        .map_err(Error::db("recording the run's outcome"))?;
    Ok(())
}

/// Record a run that failed after its transaction was rolled back (so the row of the run is gone too): a new row,
/// in its own transaction. Best effort: if even that fails, the error of the run is what matters.
pub(crate) async fn record_failed_run(
    client: &Client,
    command: &str,
    from_state: &serde_json::Value,
    detail: &serde_json::Value,
    error: &str,
    existing_run: Option<i64>,
) {
    let result = async {
        if !history_exists(client).await? {
            return Ok(());
        }
        let id = match existing_run {
            Some(id) => id,
            None => start_run(client, command, from_state).await?,
        };
        finish_run(client, id, "failed", None, Some(detail), Some(error)).await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!("could not record the failed run: {e}");
    }
}

/// The last applied migration of each package, as a JSON object (for `strata.run.from_state/to_state`).
pub(crate) fn state_of(applied: &[AppliedMigration]) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for a in applied {
        map.insert(a.package.clone(), serde_json::Value::String(a.name.clone()));
    }
    serde_json::Value::Object(map)
}
