//! Strata's history in the database (`strata.*` tables): reading what is applied (here), and recording what runs
//! (`record`, the only module that writes to the `strata` schema; the psql script of `strata export` runs its SQL
//! constants too).
//!
//! Queries are sent with their parameter types (`query_typed`): no separate prepare.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use crate::error::{Error, Result};
use crate::report::RunOutcome;

mod browse;
mod record;

pub use browse::{
    RunDetail, RunFilter, RunMigration, RunPage, run, run_migrations, run_packages, run_page,
};

pub(crate) use record::*;

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

/// The applied migrations of `packages` only, oldest first (empty when the history tables do not exist yet): a
/// tenant schema's history without the other tenants' (each is a package of its own, `NAME@SCHEMA`).
pub async fn applied_of(client: &Client, packages: &[&str]) -> Result<Vec<AppliedMigration>> {
    if !history_exists(client).await? {
        return Ok(Vec::new());
    }
    read_applied_of(client, Some(packages)).await
}

/// The columns of [`AppliedMigration`], in its order.
const APPLIED_COLUMNS: &str = "package, name, path, checksum, down_sql IS NOT NULL, no_transaction, applied_at, \
                               applied_by, duration_ms, id, source";

/// Every applied migration, oldest first, when the caller knows the history tables exist.
pub(crate) async fn read_applied(client: &Client) -> Result<Vec<AppliedMigration>> {
    read_applied_of(client, None).await
}

/// The applied migrations of `packages` (None: all), oldest first, when the caller knows the history tables exist.
pub(crate) async fn read_applied_of(
    client: &Client,
    packages: Option<&[&str]>,
) -> Result<Vec<AppliedMigration>> {
    let rows = match packages {
        None => {
            client
                .query_typed(
                    &format!("SELECT {APPLIED_COLUMNS} FROM strata.migration ORDER BY id"),
                    &[],
                )
                .await
        }
        Some(names) => {
            client
                .query_typed(
                    &format!(
                        "SELECT {APPLIED_COLUMNS} FROM strata.migration WHERE package = ANY($1) ORDER BY id"
                    ),
                    &[(&names, Type::TEXT_ARRAY)],
                )
                .await
        }
    }
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
    /// How it ended (`running` while it runs, or if it never recorded its end).
    pub outcome: RunOutcome,
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
    Ok(rows.iter().map(run_record).collect())
}

/// The last run into each of `schemas` (tenant schemas, `strata up --tenant-schemas`), by schema. Empty when the
/// history predates tenant schemas.
pub async fn last_schema_runs(
    client: &Client,
    schemas: &[&str],
) -> Result<BTreeMap<String, RunRecord>> {
    let has_column: bool = client
        .query_typed_one(
            "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute
                             WHERE attrelid = to_regclass('strata.run') AND attname = 'schema_name'
                               AND NOT attisdropped)",
            &[],
        )
        .await
        .map_err(Error::db("checking for strata.run.schema_name"))?
        .get(0);
    if !has_column {
        return Ok(BTreeMap::new());
    }
    let rows = client
        .query_typed(
            "SELECT DISTINCT ON (schema_name)
                    id, command, outcome, started_at, finished_at, from_state, to_state, detail, error, db_user,
                    schema_name
               FROM strata.run WHERE schema_name = ANY($1) ORDER BY schema_name, id DESC",
            &[(&schemas, Type::TEXT_ARRAY)],
        )
        .await
        .map_err(Error::db("reading strata.run"))?;
    Ok(rows.iter().map(|r| (r.get(10), run_record(r))).collect())
}

/// A row of `strata.run` whose first ten columns are those of [`RunRecord`], in order.
/// A row of `SELECT id, command, outcome, started_at, finished_at, from_state, to_state, detail, error, db_user`.
fn run_record(r: &tokio_postgres::Row) -> RunRecord {
    RunRecord {
        id: r.get(0),
        command: r.get(1),
        outcome: r.get::<_, &str>(2).parse().unwrap_or(RunOutcome::Running),
        started_at: r.get(3),
        finished_at: r.get(4),
        from_state: r.get(5),
        to_state: r.get(6),
        detail: r.get(7),
        error: r.get(8),
        db_user: r.get(9),
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

/// What each package's role was granted for `uses` by the last deploy (`strata.package.granted_uses`, read without
/// naming the column: it came with Strata's second migration, and a history that predates it has none).
/// The packages `strata.package` records for each of `schemas`: (schema, package) pairs.
pub(crate) async fn schema_claims(
    client: &Client,
    schemas: &[&str],
) -> std::result::Result<Vec<(String, String)>, tokio_postgres::Error> {
    let rows = client
        .query_typed(
            "SELECT schema_name, name FROM strata.package WHERE schema_name = ANY($1)",
            &[(&schemas, Type::TEXT_ARRAY)],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
}

pub(crate) async fn granted_uses(
    client: &Client,
    names: &[&str],
) -> std::result::Result<BTreeMap<String, Vec<String>>, tokio_postgres::Error> {
    let rows = client
        .query_typed(
            "SELECT name, to_jsonb(p) -> 'granted_uses' FROM strata.package p WHERE name = ANY($1)",
            &[(&names, Type::TEXT_ARRAY)],
        )
        .await?;
    let mut out = BTreeMap::new();
    for r in rows {
        let uses: Option<serde_json::Value> = r.get(1);
        if let Some(serde_json::Value::Array(uses)) = uses {
            out.insert(
                r.get(0),
                uses.iter()
                    .filter_map(|u| u.as_str().map(str::to_string))
                    .collect(),
            );
        }
    }
    Ok(out)
}
