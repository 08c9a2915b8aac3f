//! Guard-rails for production deploys, used by `up`:
//!
//! - **A default `lock_timeout`** ([`DEFAULT_LOCK_TIMEOUT`]) when neither the command line nor `strata.toml`
//!   sets one (`0` turns it off): a statement that needs a lock held by a long transaction gives up instead of
//!   queueing, and blocking every query behind it, for as long as that transaction lasts. It does not apply to
//!   `CONCURRENTLY` statements: their waits block nobody, and a timeout would leave an invalid index behind.
//! - **Retries** ([`LockRetry`]): after a lock timeout (SQLSTATE 55P03) the deploy is rolled back, waits (1 s, 2 s,
//!   4 s, … by default) and starts over, three times by default. Each attempt re-reads the history, so what a
//!   no-transaction segment committed is not run twice.
//! - **Statements that cannot run in a transaction block** (`CREATE INDEX CONCURRENTLY`, `VACUUM`, …) in a
//!   migration that runs inside one are refused before anything runs, naming the statement (with what else
//!   package code must not do: `crate::decide::hazards`).
//! - **Resuming an unfinished no-transaction migration**: each statement that commits is recorded as it commits
//!   (in `strata.run.detail.progress`: its index and checksum, written in the same implicit transaction as the
//!   statement, or right after a statement that cannot share one); the next `up` skips them — as long as they
//!   still read exactly the same and lead the migration — and runs the rest, also after a run that was killed.
//!   `--no-resume` runs it from the start. A `CREATE INDEX CONCURRENTLY` that was under way is checked: a valid
//!   index is kept, an invalid one dropped and built again.
//! - **Invalid indexes** left by a failed `CREATE INDEX CONCURRENTLY` are found ([`invalid_indexes`]) and named in
//!   the error and by `strata status`.

use std::collections::HashMap;
use std::time::Duration;

use postgres_protocol::escape::escape_identifier;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::db::exec::Database;
use crate::decide::plan::Plan;
use crate::error::{Error, Result};
use crate::report::MigrationId;
use crate::source::manifest::{DeploySettings, PgDuration};
use crate::source::package::{Package, Script};

/// `lock_timeout` of deploy sessions when none is configured.
pub const DEFAULT_LOCK_TIMEOUT: &str = "2s";

/// [`DEFAULT_LOCK_TIMEOUT`], parsed.
pub(crate) fn default_lock_timeout() -> PgDuration {
    PgDuration::from_secs(2)
}

/// What `up` does after a statement gave up waiting for a lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct LockRetry {
    /// How many times to start over (0: never).
    pub retries: u32,
    /// Pause before the first retry; doubled before each next one (at most a minute).
    pub backoff: Duration,
}

impl Default for LockRetry {
    fn default() -> LockRetry {
        LockRetry {
            retries: 3,
            backoff: Duration::from_secs(1),
        }
    }
}

impl LockRetry {
    /// The policy in a manifest's `[deploy]` table (`lock_retries`, `lock_retry_backoff`), defaults elsewhere.
    pub fn from_manifest(d: &DeploySettings) -> LockRetry {
        let default = LockRetry::default();
        LockRetry {
            retries: d.lock_retries.unwrap_or(default.retries),
            backoff: d
                .lock_retry_backoff
                .as_ref()
                .map_or(default.backoff, PgDuration::duration),
        }
    }

    /// The pause before retry number `attempt` (1-based).
    pub fn delay(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1));
        self.backoff
            .saturating_mul(factor)
            .min(Duration::from_secs(60))
    }
}

/// True when `statement` (of `text`) is a `CONCURRENTLY` one, whose lock waits block
/// nobody (and which a lock timeout would leave half done).
pub(crate) fn is_concurrent(text: &str, statement: &pgstrata_sql::Statement) -> bool {
    use pgstrata_sql::StatementKind as K;
    match &statement.kind {
        K::CreateIndex { concurrently } | K::DropIndex { concurrently } => *concurrently,
        K::Reindex { concurrently } => *concurrently,
        K::AlterTable => pgstrata_sql::non_transactional_reason(text, statement).is_some(),
        K::Other(tag) => {
            tag == "REFRESH MATERIALIZED VIEW" && {
                let t = statement.text(text).to_ascii_uppercase();
                t.split_whitespace().nth(3) == Some("CONCURRENTLY")
            }
        }
        _ => false,
    }
}

/// What an unfinished run recorded about a no-transaction migration.
#[derive(Debug, Clone, Default)]
pub(crate) struct Resume {
    /// The run that recorded it (failed, or interrupted).
    pub run_id: i64,
    /// The statements that committed, in order: by index and checksum (see [`statement_checksum`]), or, as runs
    /// before per-statement progress recorded them, by text.
    pub committed: Vec<Committed>,
    /// A statement that was under way outside any transaction when the run ended (`CREATE INDEX CONCURRENTLY`
    /// and other statements that cannot run with their record in one transaction): it may or may not have
    /// finished.
    pub started: Option<(usize, String)>,
}

/// One committed statement of a no-transaction migration, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Committed {
    /// Its 0-based index among the migration's statements, and its checksum.
    Statement(usize, String),
    /// Its text (recorded by older versions).
    Text(String),
}

impl Committed {
    /// Whether this record is statement number `index`, with text `text` and checksum `checksum`.
    pub(crate) fn is(&self, index: usize, text: &str, checksum: &str) -> bool {
        match self {
            Committed::Statement(i, c) => *i == index && c == checksum,
            Committed::Text(t) => t == text,
        }
    }
}

/// The checksum a no-transaction statement is recorded with: SHA-256 of its text, 16 hex digits.
pub(crate) fn statement_checksum(text: &str) -> String {
    use sha2::Digest;
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..8])
}

/// For each pending migration with a no-transaction section, what the last unfinished run (failed, interrupted,
/// or still marked running: the caller holds the deploy lock, so it is dead) recorded of it, when nothing applied
/// or reverted it since.
pub(crate) async fn resume_points(
    client: &Client,
    packages: &[Package],
    plan: &Plan,
) -> Result<HashMap<MigrationId, Resume>> {
    let mut out = HashMap::new();
    for step in plan.steps.iter().filter(|s| s.no_transaction) {
        let id = MigrationId::new(&step.package, &step.name);
        if packages
            .get(step.package_index)
            .and_then(|p| p.migrations().get(step.migration_index))
            .is_none()
        {
            continue;
        }
        let row = client
            .query_opt(
                "SELECT r.id, r.detail->'committed_statements', r.detail->'progress'
                   FROM strata.run r
                  WHERE r.command = 'up' AND r.outcome IN ('failed', 'interrupted', 'running')
                    AND (r.detail->>'failed_migration' = $1 OR r.detail->'progress'->>'migration' = $1)
                    AND NOT EXISTS (SELECT FROM strata.migration_log l
                                     WHERE l.package = $2 AND l.name = $3 AND l.at > r.started_at)
                  ORDER BY r.id DESC LIMIT 1",
                &[&id.to_string(), &step.package, &step.name],
            )
            .await
            .map_err(Error::db("reading the record of the last unfinished run"))?;
        let Some(row) = row else {
            continue;
        };
        let mut resume = Resume {
            run_id: row.get(0),
            ..Resume::default()
        };
        let progress: Option<serde_json::Value> = row.get(2);
        let entry = |v: &serde_json::Value| -> Option<(usize, String)> {
            Some((
                usize::try_from(v.get("index")?.as_u64()?).ok()?,
                v.get("checksum")?.as_str()?.to_string(),
            ))
        };
        match progress
            .filter(|p| p.get("migration").and_then(|m| m.as_str()) == Some(&id.to_string()))
        {
            Some(p) => {
                resume.committed = p
                    .get("committed")
                    .and_then(|c| c.as_array())
                    .map(|a| {
                        a.iter()
                            .filter_map(entry)
                            .map(|(i, c)| Committed::Statement(i, c))
                            .collect()
                    })
                    .unwrap_or_default();
                resume.started = p.get("started").and_then(entry);
            }
            None => {
                let texts: Vec<String> = row
                    .get::<_, Option<serde_json::Value>>(1)
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default();
                resume.committed = texts.into_iter().map(Committed::Text).collect();
            }
        }
        if !resume.committed.is_empty() || resume.started.is_some() {
            out.insert(id, resume);
        }
    }
    Ok(out)
}

/// The index a `CREATE INDEX` statement (at `range` of `script`) creates, qualified with `schema` when the
/// statement does not name one.
pub(crate) fn created_index(
    script: &Script,
    range: std::ops::Range<usize>,
    schema: &str,
) -> Option<String> {
    let text = &script.text()[range];
    pgstrata_sql::locks::analyze(text)
        .first()
        .and_then(|s| s.creates.first().cloned())
        .map(|index| index.qualified_or(schema).to_string())
}

/// Whether index `name` is valid (None: there is no such index).
pub(crate) async fn index_validity(client: &Client, name: &str) -> Result<Option<bool>> {
    let row = client
        .query_opt(
            "SELECT indisvalid FROM pg_catalog.pg_index WHERE indexrelid = pg_catalog.to_regclass($1)",
            &[&name],
        )
        .await
        .map_err(Error::db(format!("checking index {name}")))?;
    Ok(row.map(|r| r.get(0)))
}

/// An index PostgreSQL marked invalid: left by a failed `CREATE INDEX CONCURRENTLY` (or `REINDEX CONCURRENTLY`).
/// It costs writes and serves no query; drop it (`DROP INDEX CONCURRENTLY`) and build it again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct InvalidIndex {
    /// Its schema.
    pub schema: String,
    /// Its name.
    pub name: String,
    /// Its table, schema-qualified.
    pub table: String,
    /// `CREATE INDEX …` as PostgreSQL would recreate it.
    pub definition: String,
}

impl InvalidIndex {
    /// `DROP INDEX CONCURRENTLY schema.name;`
    pub fn drop_sql(&self) -> String {
        format!(
            "DROP INDEX CONCURRENTLY {}.{};",
            escape_identifier(&self.schema),
            escape_identifier(&self.name)
        )
    }
}

/// Invalid indexes in `schemas`.
pub async fn invalid_indexes(db: &Database, schemas: &[String]) -> Result<Vec<InvalidIndex>> {
    query_invalid_indexes(db.client(), schemas).await
}

pub(crate) async fn query_invalid_indexes(
    client: &Client,
    schemas: &[String],
) -> Result<Vec<InvalidIndex>> {
    let rows = client
        .query(
            "SELECT n.nspname::text, c.relname::text,
                    format('%I.%I', tn.nspname, t.relname), pg_get_indexdef(i.indexrelid)
               FROM pg_index i
               JOIN pg_class c ON c.oid = i.indexrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_class t ON t.oid = i.indrelid
               JOIN pg_namespace tn ON tn.oid = t.relnamespace
              WHERE NOT i.indisvalid AND n.nspname = ANY($1)
              ORDER BY 1, 2",
            &[&schemas],
        )
        .await
        .map_err(Error::db("looking for invalid indexes"))?;
    Ok(rows
        .iter()
        .map(|r| InvalidIndex {
            schema: r.get(0),
            name: r.get(1),
            table: r.get(2),
            definition: r.get(3),
        })
        .collect())
}

/// The statement of `text` that contains byte `offset`.
fn statement_at(text: &str, offset: usize) -> Option<pgstrata_sql::Statement> {
    pgstrata_sql::split(text)
        .statements
        .into_iter()
        .find(|s| s.range.start <= offset && offset <= s.range.end)
}

/// Explain a lock timeout: the lock the statement needed, on what, and who holds locks there now.
pub(crate) async fn explain_lock_timeout(
    client: &Client,
    text: &str,
    offset: usize,
    schema: Option<&str>,
    lock_timeout: &str,
    attempts: u32,
) -> String {
    let tries = if attempts == 1 {
        "once".to_string()
    } else {
        format!("{attempts} times, with pauses in between")
    };
    let mut out = format!(
        "the statement waited longer than lock_timeout ({lock_timeout}) for a lock, {tries}; every attempt was \
         rolled back"
    );
    let Some(statement) = statement_at(text, offset) else {
        return out;
    };
    let analysis = pgstrata_sql::locks::analyze(statement.text(text));
    let Some(first) = analysis.first() else {
        return out;
    };
    for lock in &first.locks {
        let relation = match schema {
            Some(s) => lock.relation.qualified_or(s),
            None => lock.relation.clone(),
        };
        out.push_str(&format!(
            "\nit needs {} on {}{} (blocking {})",
            lock.mode,
            if lock.on_table_of_index {
                "the table of index "
            } else {
                ""
            },
            relation,
            lock.mode.blocks()
        ));
        let holders = lock_holders(client, &relation, &lock.relation, lock.on_table_of_index).await;
        if holders.is_empty() {
            out.push_str("; nothing holds a lock there now");
        } else {
            out.push_str("; sessions holding locks on it now:");
            for h in holders {
                out.push_str(&format!("\n  {h}"));
            }
        }
    }
    out.push_str(
        "\nretry when the table is less busy, end the blocking sessions, or raise --lock-timeout / --lock-retries \
         (`[deploy] lock_timeout`, `lock_retries`)",
    );
    out
}

/// Other sessions holding granted locks on a relation: `pid 123 (idle in transaction for 35 s, ROW EXCLUSIVE): …`.
async fn lock_holders(
    client: &Client,
    qualified: &pgstrata_sql::locks::RelationName,
    as_written: &pgstrata_sql::locks::RelationName,
    via_index: bool,
) -> Vec<String> {
    let rows = client
        .query(
            "WITH r AS (SELECT COALESCE(to_regclass($1), to_regclass($2)) AS oid),
                  t AS (SELECT CASE WHEN $3 THEN (SELECT indrelid FROM pg_index, r WHERE indexrelid = r.oid)
                                    ELSE (SELECT oid FROM r) END AS oid)
             SELECT l.pid, string_agg(DISTINCT l.mode, ', '), a.state,
                    COALESCE(extract(epoch FROM now() - a.xact_start), 0)::float8,
                    left(regexp_replace(a.query, '\\s+', ' ', 'g'), 120)
               FROM pg_locks l JOIN pg_stat_activity a USING (pid), t
              WHERE l.relation = t.oid AND l.granted AND l.pid <> pg_backend_pid()
              GROUP BY l.pid, a.state, a.xact_start, a.query
              ORDER BY a.xact_start NULLS LAST
              LIMIT 5",
            &[&qualified.to_string(), &as_written.to_string(), &via_index],
        )
        .await;
    match rows {
        Ok(rows) => rows
            .iter()
            .map(|r| {
                let pid: i32 = r.get(0);
                let modes: String = r.get(1);
                let state: Option<String> = r.get(2);
                let secs: f64 = r.get(3);
                let query: Option<String> = r.get(4);
                format!(
                    "pid {pid} ({} for {:.0} s, holds {modes}): {}",
                    state.as_deref().unwrap_or("unknown state"),
                    secs,
                    query.as_deref().unwrap_or("")
                )
            })
            .collect(),
        Err(e) => {
            tracing::debug!("could not list lock holders: {e}");
            Vec::new()
        }
    }
}

/// After a failed `CREATE INDEX CONCURRENTLY`/`REINDEX CONCURRENTLY`: the invalid indexes PostgreSQL left in
/// `schema`, as a hint.
pub(crate) async fn invalid_index_hint(
    client: &Client,
    script_text: &str,
    offset: usize,
    schema: &str,
) -> Option<String> {
    let statement = statement_at(script_text, offset)?;
    let concurrent_build = matches!(
        statement.kind,
        pgstrata_sql::StatementKind::CreateIndex { concurrently: true }
            | pgstrata_sql::StatementKind::Reindex { concurrently: true }
    );
    if !concurrent_build {
        return None;
    }
    let invalid = query_invalid_indexes(client, &[schema.to_string()])
        .await
        .ok()?;
    if invalid.is_empty() {
        return None;
    }
    let list: Vec<String> = invalid
        .iter()
        .map(|i| format!("{}.{} on {}: {}", i.schema, i.name, i.table, i.drop_sql()))
        .collect();
    Some(format!(
        "PostgreSQL left invalid index(es) behind (they slow down writes and serve no query); drop them before \
         re-running:\n  {}",
        list.join("\n  ")
    ))
}

/// After a `CREATE INDEX CONCURRENTLY` succeeded: the index it names must be valid. With `IF NOT EXISTS`, an
/// invalid index left by an earlier failed build makes the statement a silent no-op, and the migration would be
/// recorded as applied with an index that serves no query.
pub(crate) async fn check_index_valid(
    client: &Client,
    script: &Script,
    range: std::ops::Range<usize>,
    statement: &pgstrata_sql::Statement,
    schema: &str,
) -> std::result::Result<(), crate::error::SqlError> {
    if statement.kind != (pgstrata_sql::StatementKind::CreateIndex { concurrently: true }) {
        return Ok(());
    }
    let text = &script.text()[range.clone()];
    let Some(index) = created_index(script, range.clone(), schema) else {
        return Ok(());
    };
    let valid = match index_validity(client, &index).await {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!("could not check that {index} is valid: {e}");
            return Ok(());
        }
    };
    if valid != Some(false) {
        return Ok(());
    }
    let lc = pgstrata_sql::LineIndex::new(script.text()).line_col(range.start);
    let first_line = text.find('\n').unwrap_or(text.len());
    Err(crate::error::SqlError {
        origin: script.origin().to_string(),
        line: lc.line,
        col: lc.col,
        sqlstate: SqlState::OBJECT_NOT_IN_PREREQUISITE_STATE
            .code()
            .to_string(),
        message: format!(
            "index {index} exists but is invalid: an earlier CREATE INDEX CONCURRENTLY failed, and IF NOT EXISTS \
             skipped building it"
        ),
        detail: None,
        hint: Some(format!(
            "drop it with `DROP INDEX CONCURRENTLY {index};`, then run `strata up` again (it resumes at this statement)"
        )),
        context: None,
        migration: None,
        rolled_back: false,
        span: crate::report::widen(script.text(), range.start..range.start + first_line),
        file: miette::NamedSource::new(script.origin(), script.text().to_string())
            .with_language("SQL"),
        committed_statements: Vec::new(),
        committed_migrations: Vec::new(),
    })
}

/// Statements of a section, with their text.
pub(crate) fn section_statements(
    script: &Script,
    section: &pgstrata_sql::migration::Section,
) -> Vec<(std::ops::Range<usize>, pgstrata_sql::Statement)> {
    let text = section.text(script.text());
    pgstrata_sql::statements(text)
        .into_iter()
        .map(|s| {
            (
                section.range.start + s.range.start..section.range.start + s.range.end,
                s,
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_backoff_doubles_up_to_a_minute() {
        let retry = LockRetry::default();
        assert_eq!(retry.delay(1), Duration::from_secs(1));
        assert_eq!(retry.delay(3), Duration::from_secs(4));
        assert_eq!(retry.delay(30), Duration::from_secs(60));
    }

    #[test]
    fn retry_policy_from_the_manifest() {
        let d = DeploySettings {
            lock_retries: Some(5),
            lock_retry_backoff: Some("250ms".parse().unwrap()),
            ..DeploySettings::default()
        };
        let retry = LockRetry::from_manifest(&d);
        assert_eq!(retry.retries, 5);
        assert_eq!(retry.delay(2), Duration::from_millis(500));
        assert_eq!(
            LockRetry::from_manifest(&DeploySettings::default()),
            LockRetry::default()
        );
        assert_eq!(
            default_lock_timeout(),
            DEFAULT_LOCK_TIMEOUT.parse::<PgDuration>().unwrap()
        );
    }

    #[test]
    fn concurrent_statements_are_recognised() {
        let text = "CREATE INDEX CONCURRENTLY i ON t (a);\nCREATE INDEX j ON t (b);\nREFRESH MATERIALIZED VIEW CONCURRENTLY m;\nALTER TABLE p DETACH PARTITION c CONCURRENTLY;\nDROP INDEX CONCURRENTLY i;\n";
        let found: Vec<bool> = pgstrata_sql::split(text)
            .statements
            .iter()
            .map(|s| is_concurrent(text, s))
            .collect();
        assert_eq!(found, [true, false, true, true, true]);
    }
}
