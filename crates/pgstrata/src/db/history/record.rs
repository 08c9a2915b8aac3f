//! Recording in Strata's history: the only code that writes to the `strata` schema.
//!
//! Every statement is a constant whose parameters carry their types (`$1::text`), so the same text runs here
//! (`query_typed`, `execute`) and in the psql script of `strata export` (`EXECUTE … USING`): both record a run, a
//! package, a migration or a managed object the same way, and a new column is one edit.

use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};

use crate::db::VERSION;
use crate::error::{Error, Result};
use crate::report::{MigrationId, RunOutcome};
use crate::source::package::{Migration, Package};
use crate::source::repeatable::Repeatable;

/// What a `strata.migration_log` row says happened, where callers choose it (reverts and accepted changes have
/// statements of their own).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogAction {
    /// A migration (or repeatable script) ran.
    Apply,
    /// Recorded as applied without running (`adopt`, `baseline`).
    Record,
}

impl LogAction {
    /// The value of `strata.migration_log.action`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            LogAction::Apply => "apply",
            LogAction::Record => "record",
        }
    }
}

/// A run row: command ($1), state before ($2), Strata's version ($3), OS user ($4) and client host ($5). Returns
/// its id.
pub(crate) const START_RUN_SQL: &str =
    "INSERT INTO strata.run (command, from_state, strata_version, os_user, client_host)
     VALUES ($1::text, $2::jsonb, $3::text, $4::text, $5::text) RETURNING id";

/// [`START_RUN_SQL`] for a run into one tenant schema ($6, `strata.run.schema_name`, from Strata's migration `0006_tenant_schemas`:
/// only runs into a tenant schema name it, and they never bootstrap Strata's tables).
const START_SCHEMA_RUN_SQL: &str =
    "INSERT INTO strata.run (command, from_state, strata_version, os_user, client_host, schema_name)
     VALUES ($1::text, $2::jsonb, $3::text, $4::text, $5::text, $6::text) RETURNING id";

/// Close run $1: outcome ($2), state after ($3), detail ($4, merged into what the run recorded as it went), error
/// ($5). A failed run keeps the progress of its no-transaction migration (the next `up` resumes from it).
pub(crate) const FINISH_RUN_SQL: &str = "UPDATE strata.run SET outcome = $2::text, finished_at = clock_timestamp(), to_state = $3::jsonb,
            detail = nullif(CASE WHEN $2::text = 'failed' THEN coalesce(detail, '{}'::jsonb)
                                 ELSE coalesce(detail, '{}'::jsonb) - 'progress' END
                            || coalesce($4::jsonb, '{}'::jsonb), '{}'::jsonb),
            error = $5::text
      WHERE id = $1::bigint";

/// The progress of a no-transaction migration, in run $1's detail: migration ($2, `package:name`), statements that
/// committed ($3, a JSON array of `{"index", "checksum"}` appended to those recorded, or started afresh for another
/// migration), and the statement under way outside any transaction ($4, one such object, or null). Sent inline,
/// in the same message (and implicit transaction) as the statement it records: see [`progress_sql`].
pub(crate) const PROGRESS_SQL: &str = "UPDATE strata.run r
        SET detail = pg_catalog.jsonb_set(coalesce(r.detail, '{}'::jsonb), '{progress}', pg_catalog.jsonb_build_object(
              'migration', $2::text,
              'committed', CASE WHEN r.detail->'progress'->>'migration' = $2::text
                                THEN coalesce(r.detail->'progress'->'committed', '[]'::jsonb)
                                ELSE '[]'::jsonb END || $3::jsonb,
              'started', $4::jsonb))
      WHERE r.id = $1::bigint";

/// Strata's own migration that allows the `interrupted` outcome: runs are marked only once it is applied.
pub(crate) const INTERRUPTED_MIGRATION: &str = "0005_interrupted";

/// Runs that never finished (`running` with the deploy lock free: the process or its connection died): marked
/// `interrupted` with an explanation ($1). Returns their ids.
const INTERRUPTED_SQL: &str =
    "UPDATE strata.run SET outcome = 'interrupted', error = coalesce(error, $1::text)
      WHERE outcome = 'running' RETURNING id";

/// A whole run that changed nothing, in one statement: command ($1), state before ($2) and after ($3), version
/// ($4), OS user ($5), client host ($6); its transaction commits without waiting for the WAL flush
/// (`synchronous_commit = off` for it alone: a crash can lose the record of a run that did nothing, never
/// anything else).
const NOOP_RUN_SQL: &str = "INSERT INTO strata.run (command, from_state, to_state, outcome, finished_at, strata_version, os_user,
                         client_host)
     SELECT $1::text, $2::jsonb, $3::jsonb, 'noop', clock_timestamp(), $4::text, $5::text, $6::text
       FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit
     RETURNING id";

/// [`NOOP_RUN_SQL`] for a run into one tenant schema ($7).
const NOOP_SCHEMA_RUN_SQL: &str = "INSERT INTO strata.run (command, from_state, to_state, outcome, finished_at, strata_version, os_user,
                         client_host, schema_name)
     SELECT $1::text, $2::jsonb, $3::jsonb, 'noop', clock_timestamp(), $4::text, $5::text, $6::text, $7::text
       FROM (SELECT set_config('synchronous_commit', 'off', true)) AS asynchronous_commit
     RETURNING id";

/// Insert or refresh a package's row: name ($1), schema ($2), uses ($3), extensions ($4). Writes only what differs.
pub(crate) const PACKAGE_SQL: &str =
    "INSERT INTO strata.package (name, schema_name, uses, extensions)
     VALUES ($1::text, $2::text, $3::text[], $4::text[])
     ON CONFLICT (name) DO UPDATE
        SET schema_name = EXCLUDED.schema_name, uses = EXCLUDED.uses,
            extensions = EXCLUDED.extensions, updated_at = clock_timestamp()
      WHERE (strata.package.schema_name, strata.package.uses, strata.package.extensions)
            IS DISTINCT FROM (EXCLUDED.schema_name, EXCLUDED.uses, EXCLUDED.extensions)";

/// Upsert `strata.package` rows from arrays: name, schema, role, granted uses (each a JSON array) and test hash (NULL:
/// keep the recorded one). Rows already as wanted are filtered out before the upsert: `ON CONFLICT DO UPDATE` locks
/// every conflicting row even when its WHERE is false, which would make a deploy with nothing to do write (and wait
/// for the WAL flush at commit).
pub(crate) const PACKAGES_SQL: &str = "INSERT INTO strata.package AS p (name, schema_name, role_name, granted_uses, tests_hash)
             SELECT u.name, u.schema, u.role, u.uses, u.tests
               FROM (SELECT u.name, u.schema, u.role, ARRAY(SELECT jsonb_array_elements_text(u.uses)) AS uses,
                            u.tests
                       FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::text[])
                            AS u(name, schema, role, uses, tests)) AS u
              WHERE NOT EXISTS (SELECT FROM strata.package q
                                 WHERE q.name = u.name
                                   AND (q.role_name, q.granted_uses) IS NOT DISTINCT FROM (u.role, u.uses)
                                   AND (u.tests IS NULL OR q.tests_hash IS NOT DISTINCT FROM u.tests))
             ON CONFLICT (name) DO UPDATE
                SET role_name = EXCLUDED.role_name, granted_uses = EXCLUDED.granted_uses,
                    tests_hash = coalesce(EXCLUDED.tests_hash, p.tests_hash)
              WHERE (p.role_name, p.granted_uses) IS DISTINCT FROM (EXCLUDED.role_name, EXCLUDED.granted_uses)
                 OR (EXCLUDED.tests_hash IS NOT NULL AND p.tests_hash IS DISTINCT FROM EXCLUDED.tests_hash)";

/// One migration and its log row: package ($1), name ($2), path ($3), checksum ($4), up SQL ($5), down SQL ($6),
/// no-transaction ($7), duration in ms ($8), Strata's version ($9), run ($10), source ($11), log action ($12).
pub(crate) const MIGRATION_SQL: &str = "WITH m AS (
       INSERT INTO strata.migration
              (package, name, path, checksum, up_sql, down_sql, no_transaction, duration_ms, strata_version, run_id,
               source)
       VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::text, $7::boolean, $8::float8, $9::text,
               $10::bigint, $11::text)
       RETURNING package, name, checksum)
     INSERT INTO strata.migration_log (run_id, package, name, action, checksum, duration_ms)
     SELECT $10::bigint, package, name, $12::text, checksum, $8::float8 FROM m";

/// The migrations of a transaction segment in one statement, from arrays in the order they ran ($1–$8: package,
/// name, path, checksum, up SQL, down SQL, no-transaction, duration), with Strata's version ($9) and the run ($10).
/// Identities follow `ORDER BY ord`, so `id` keeps the order the migrations ran in.
const MIGRATIONS_SQL: &str = "WITH m AS (
       INSERT INTO strata.migration
              (package, name, path, checksum, up_sql, down_sql, no_transaction, duration_ms, strata_version, run_id)
       SELECT package, name, path, checksum, up_sql, down_sql, no_transaction, duration_ms, $9::text, $10::bigint
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::boolean[],
                     $8::float8[])
              WITH ORDINALITY
              AS r (package, name, path, checksum, up_sql, down_sql, no_transaction, duration_ms, ord)
        ORDER BY ord
       RETURNING package, name, checksum, duration_ms)
     INSERT INTO strata.migration_log (run_id, package, name, action, checksum, duration_ms)
     SELECT $10::bigint, package, name, 'apply', checksum, duration_ms FROM m";

/// [`MIGRATIONS_SQL`] when up texts were staged (see `stage_text`): a missing one is joined from its pieces.
fn migrations_staged_sql() -> String {
    MIGRATIONS_SQL.replacen(
        "checksum, up_sql, down_sql, no_transaction, duration_ms, $9::text",
        "checksum,\n              coalesce(up_sql, (SELECT string_agg(s.part, '' ORDER BY s.piece)\n                 \
         FROM pg_temp.strata_staged_text s WHERE s.ord = r.ord)),\n              \
         down_sql, no_transaction, duration_ms, $9::text",
        1,
    )
}

/// The new text of a changed migration, recorded without running it: package ($1), name ($2), checksum ($3), up
/// SQL ($4), down SQL ($5), path ($6), run ($7).
const ACCEPT_CHANGE_SQL: &str = "WITH m AS (
       UPDATE strata.migration SET checksum = $3::text, up_sql = $4::text, down_sql = $5::text, path = $6::text
        WHERE package = $1::text AND name = $2::text RETURNING package, name, checksum)
     INSERT INTO strata.migration_log (run_id, package, name, action, checksum)
     SELECT $7::bigint, package, name, 'accept-change', checksum FROM m";

/// A reverted migration leaves the history: package ($1), name ($2), run ($3), duration ($4).
const REVERT_SQL: &str =
    "WITH d AS (DELETE FROM strata.migration WHERE package = $1::text AND name = $2::text
                RETURNING package, name, checksum)
     INSERT INTO strata.migration_log (run_id, package, name, action, checksum, duration_ms)
     SELECT $3::bigint, package, name, 'revert', checksum, $4::float8 FROM d";

/// A repeatable script (inserted, or updated when it ran again) and its log row: package ($1), name ($2), path
/// ($3), checksum ($4), text ($5), duration ($6), Strata's version ($7), run ($8), source ($9), log action ($10).
pub(crate) const REPEATABLE_SQL: &str = "WITH r AS (
       INSERT INTO strata.repeatable
              (package, name, path, checksum, sql, duration_ms, strata_version, run_id, source)
       VALUES ($1::text, $2::text, $3::text, $4::text, $5::text, $6::float8, $7::text, $8::bigint, $9::text)
       ON CONFLICT (package, name) DO UPDATE
          SET path = EXCLUDED.path, checksum = EXCLUDED.checksum, sql = EXCLUDED.sql,
              applied_at = clock_timestamp(), applied_by = current_user,
              duration_ms = EXCLUDED.duration_ms, strata_version = EXCLUDED.strata_version,
              run_id = EXCLUDED.run_id, source = EXCLUDED.source
       RETURNING package, name, checksum)
     INSERT INTO strata.migration_log (run_id, package, name, action, checksum, duration_ms)
     SELECT $8::bigint, package, name, $10::text, checksum, $6::float8 FROM r";

/// Upsert rows of `strata.managed_object` from arrays: package, kind, identity, object_oid, sub_id,
/// catalog_version, catalog_hash (empty: keep the recorded one), source_hash, file, line, seq ($1..$11) and the run
/// ($12).
pub(crate) const MANAGED_SQL: &str = "INSERT INTO strata.managed_object AS m
                            (package, kind, identity, object_oid, sub_id, catalog_version, catalog_hash, source_hash,
                             file, line, seq, run_id)
                     SELECT u.*, $12::bigint
                       FROM unnest($1::text[], $2::text[], $3::text[], $4::oid[], $5::int4[], $6::text[], $7::text[],
                                   $8::text[], $9::text[], $10::int4[], $11::int4[]) AS u
                     ON CONFLICT (package, kind, identity) DO UPDATE
                        SET object_oid = EXCLUDED.object_oid, sub_id = EXCLUDED.sub_id,
                            catalog_version = EXCLUDED.catalog_version,
                            catalog_hash = CASE WHEN EXCLUDED.catalog_hash = '' THEN m.catalog_hash
                                                ELSE EXCLUDED.catalog_hash END,
                            source_hash = EXCLUDED.source_hash, file = EXCLUDED.file, line = EXCLUDED.line,
                            seq = EXCLUDED.seq,
                            installed_at = CASE WHEN EXCLUDED.catalog_hash = '' THEN m.installed_at
                                                ELSE clock_timestamp() END,
                            run_id = CASE WHEN EXCLUDED.catalog_hash = '' THEN m.run_id ELSE EXCLUDED.run_id END";

/// Delete rows of `strata.managed_object` given as arrays of package, kind and identity.
pub(crate) const FORGET_MANAGED_SQL: &str = "DELETE FROM strata.managed_object m
                      USING unnest($1::text[], $2::text[], $3::text[]) AS d(package, kind, identity)
                      WHERE (m.package, m.kind, m.identity) = (d.package, d.kind, d.identity)";

/// A managed object found as installed whose catalog row moved (grants, dump and restore): its new version ($4), by
/// package ($1), kind ($2) and identity ($3).
pub(crate) const MANAGED_VERSION_SQL: &str =
    "UPDATE strata.managed_object SET catalog_version = $4::text
      WHERE package = $1::text AND kind = $2::text AND identity = $3::text";

/// The catalog version ($4) of the managed objects of packages $1 with oid $2 and kind $3 (functions and procedures
/// alike: they share `pg_proc`), where it moved.
pub(crate) const MANAGED_VERSIONS_BY_OID_SQL: &str = "UPDATE strata.managed_object SET catalog_version = $4::text
      WHERE package = ANY ($1::text[]) AND object_oid = $2::oid AND kind <> 'comment'
        AND (kind = $3::text OR (kind IN ('function', 'procedure') AND $3::text IN ('function', 'procedure')))
        AND catalog_version <> $4::text";

/// The `strata.run` row of a deploy, inserted when something needs it, or at the end (with outcome `noop`) for
/// a run with nothing to do — without waiting for the WAL flush at commit.
#[derive(Debug)]
pub(crate) struct RunRow {
    command: &'static str,
    id: Option<i64>,
    /// The state before the run, once a row may be written (the history tables exist, not a dry run).
    from_state: Option<serde_json::Value>,
    /// The tenant schema the run deploys into, if it is one (`strata.run.schema_name`).
    schema: Option<String>,
}

impl RunRow {
    pub(crate) fn new(command: &'static str) -> RunRow {
        RunRow {
            command,
            id: None,
            from_state: None,
            schema: None,
        }
    }

    /// The row of a run into tenant schema `schema` (None: the database's packages).
    pub(crate) fn in_schema(mut self, schema: Option<&str>) -> RunRow {
        self.schema = schema.map(str::to_string);
        self
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
            self.id =
                Some(start_run_in(client, self.command, from_state, self.schema.as_deref()).await?);
        }
        Ok(self.id)
    }

    /// Record a run that changed nothing, in one statement (see [`NOOP_RUN_SQL`]), if a row may be written and none
    /// was.
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
        let (os_user, host) = who();
        let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
            (&self.command, Type::TEXT),
            (from_state, Type::JSONB),
            (state, Type::JSONB),
            (&VERSION, Type::TEXT),
            (&os_user, Type::TEXT),
            (&host, Type::TEXT),
        ];
        let sql = match &self.schema {
            Some(schema) => {
                params.push((schema, Type::TEXT));
                NOOP_SCHEMA_RUN_SQL
            }
            None => NOOP_RUN_SQL,
        };
        let row = client
            .query_typed_one(sql, &params)
            .await
            .map_err(Error::db("recording the run in strata.run"))?;
        self.id = Some(row.get(0));
        Ok(())
    }
}

/// The OS user and host running Strata, for `strata.run`.
fn who() -> (String, Option<String>) {
    (whoami::username(), whoami::fallible::hostname().ok())
}

/// Insert a run row; returns its id.
pub(crate) async fn start_run(
    client: &Client,
    command: &str,
    from_state: &serde_json::Value,
) -> Result<i64> {
    start_run_in(client, command, from_state, None).await
}

/// Insert the row of a run into tenant schema `schema` (None: the database's packages); returns its id.
async fn start_run_in(
    client: &Client,
    command: &str,
    from_state: &serde_json::Value,
    schema: Option<&str>,
) -> Result<i64> {
    let (os_user, host) = who();
    let mut params: Vec<(&(dyn ToSql + Sync), Type)> = vec![
        (&command, Type::TEXT),
        (from_state, Type::JSONB),
        (&VERSION, Type::TEXT),
        (&os_user, Type::TEXT),
        (&host, Type::TEXT),
    ];
    let sql = match &schema {
        Some(schema) => {
            params.push((schema, Type::TEXT));
            START_SCHEMA_RUN_SQL
        }
        None => START_RUN_SQL,
    };
    let row = client
        .query_typed_one(sql, &params)
        .await
        .map_err(Error::db("recording the run in strata.run"))?;
    Ok(row.get(0))
}

/// Close a run row.
pub(crate) async fn finish_run(
    client: &Client,
    run_id: i64,
    outcome: RunOutcome,
    to_state: Option<&serde_json::Value>,
    detail: Option<&serde_json::Value>,
    error: Option<&str>,
) -> Result<()> {
    client
        .query_typed(
            FINISH_RUN_SQL,
            &[
                (&run_id, Type::INT8),
                (&outcome.as_str(), Type::TEXT),
                (&to_state, Type::JSONB),
                (&detail, Type::JSONB),
                (&error, Type::TEXT),
            ],
        )
        .await
        .map_err(Error::db("recording the run's outcome"))?;
    Ok(())
}

/// [`PROGRESS_SQL`] with its values written in, as one statement of a simple-query message: the record of a
/// no-transaction statement travels with the statement, so both commit together or not at all.
pub(crate) fn progress_sql(
    run_id: i64,
    migration: &str,
    committed: &[(usize, String)],
    started: Option<(usize, &str)>,
) -> String {
    let entry = |(index, checksum): (usize, &str)| serde_json::json!({"index": index, "checksum": checksum});
    let committed: Vec<serde_json::Value> = committed
        .iter()
        .map(|(i, c)| entry((*i, c.as_str())))
        .collect();
    let started = started.map_or(serde_json::Value::Null, entry);
    let escape = postgres_protocol::escape::escape_literal;
    inline(
        PROGRESS_SQL,
        &[
            run_id.to_string(),
            escape(migration),
            escape(&serde_json::Value::Array(committed).to_string()),
            escape(&started.to_string()),
        ],
    )
}

/// `sql` with its `$n` placeholders replaced by `values[n - 1]` (SQL text, already escaped), in one pass: a value
/// that happens to contain `$2` stays as it is.
fn inline(sql: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(sql.len() + values.iter().map(String::len).sum::<usize>());
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        let value = rest[at + 1..at + 1 + digits]
            .parse::<usize>()
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|n| values.get(n));
        match value {
            Some(v) => out.push_str(v),
            None => out.push_str(&rest[at..at + 1 + digits]),
        }
        rest = &rest[at + 1 + digits..];
    }
    out.push_str(rest);
    out
}

/// Mark the runs that never finished as `interrupted` (the caller holds the deploy lock, so none of them is still
/// going); their ids.
pub(crate) async fn mark_interrupted(client: &Client) -> Result<Vec<i64>> {
    let rows = client
        .query_typed(
            INTERRUPTED_SQL,
            &[(
                &"the run ended without recording how (strata or its connection was killed, or the server stopped)",
                Type::TEXT,
            )],
        )
        .await
        .map_err(Error::db("marking interrupted runs"))?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Record a run that failed. `run`: the run's own row, if it was written; it survives the rollback when a
/// no-transaction segment committed it, else a new row is written, in its own transaction. Best effort: if even
/// that fails, the error of the run is what matters.
pub(crate) async fn record_failed_run(
    client: &Client,
    command: &str,
    from_state: &serde_json::Value,
    detail: &serde_json::Value,
    error: &str,
    existing_run: Option<i64>,
) {
    record_failed_run_in(
        client,
        command,
        from_state,
        detail,
        error,
        existing_run,
        None,
    )
    .await
}

/// [`record_failed_run`] of a run into tenant schema `schema` (None: the database's packages).
pub(crate) async fn record_failed_run_in(
    client: &Client,
    command: &str,
    from_state: &serde_json::Value,
    detail: &serde_json::Value,
    error: &str,
    existing_run: Option<i64>,
    schema: Option<&str>,
) {
    let result = async {
        if !super::history_exists(client).await? {
            return Ok(());
        }
        let survived = match existing_run {
            Some(id) => client
                .query_one(
                    "SELECT EXISTS (SELECT FROM strata.run WHERE id = $1)",
                    &[&id],
                )
                .await
                .map_err(Error::db("reading strata.run"))?
                .get::<_, bool>(0)
                .then_some(id),
            None => None,
        };
        let id = match survived {
            Some(id) => id,
            None => start_run_in(client, command, from_state, schema).await?,
        };
        finish_run(
            client,
            id,
            RunOutcome::Failed,
            None,
            Some(detail),
            Some(error),
        )
        .await
    }
    .await;
    if let Err(e) = result {
        tracing::warn!("could not record the failed run: {e}");
    }
}

/// Insert or refresh the package's row in `strata.package`.
pub(crate) async fn record_package(client: &Client, pkg: &Package) -> Result<()> {
    let uses: Vec<String> = pkg.uses().iter().map(|u| u.name.clone()).collect();
    client
        .execute(
            PACKAGE_SQL,
            &[&pkg.name(), &pkg.schema(), &uses, &pkg.extensions()],
        )
        .await
        .map_err(Error::db("recording the package in strata.package"))?;
    Ok(())
}

/// What each package's row in `strata.package` records besides its name and schema (see [`record_packages`]).
pub(crate) struct PackageFacts<'a> {
    pub package: &'a Package,
    /// The package's role, if it has one.
    pub role: Option<String>,
    /// The used packages its role is granted on.
    pub granted: Vec<String>,
    /// The hash of its test files, when the tests ran (None: keep the recorded one).
    pub tests_hash: Option<String>,
}

/// Make sure every package has a row in `strata.package`, with its role, what its role was granted for `uses`, and
/// (when the tests ran) the hash of its test files. Writes only what differs.
pub(crate) async fn record_packages(client: &Client, facts: &[PackageFacts<'_>]) -> Result<()> {
    if facts.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = facts.iter().map(|f| f.package.name()).collect();
    let schemas: Vec<&str> = facts.iter().map(|f| f.package.schema()).collect();
    let roles: Vec<Option<&str>> = facts.iter().map(|f| f.role.as_deref()).collect();
    let uses: Vec<serde_json::Value> = facts.iter().map(|f| serde_json::json!(f.granted)).collect();
    let tests: Vec<Option<&str>> = facts.iter().map(|f| f.tests_hash.as_deref()).collect();
    client
        .query_typed(
            PACKAGES_SQL,
            &[
                (&names, Type::TEXT_ARRAY),
                (&schemas, Type::TEXT_ARRAY),
                (&roles, Type::TEXT_ARRAY),
                (&uses, Type::JSONB_ARRAY),
                (&tests, Type::TEXT_ARRAY),
            ],
        )
        .await
        .map_err(Error::db("recording packages in strata.package"))?;
    Ok(())
}

/// Record one migration in `strata.migration` (and the log) with its up and down SQL, and its package.
pub(crate) async fn record_migration(
    client: &Client,
    pkg: &Package,
    m: &Migration,
    run_id: Option<i64>,
    source: &str,
    action: LogAction,
) -> Result<()> {
    record_package(client, pkg).await?;
    let down_sql = m.down_sql();
    let duration_ms = 0.0f64;
    client
        .execute(
            MIGRATION_SQL,
            &[
                &pkg.name(),
                &m.name(),
                &m.path(),
                &m.checksum(),
                &m.up_sql(),
                &down_sql,
                &m.no_transaction(),
                &duration_ms,
                &VERSION,
                &run_id,
                &source,
                &action.as_str(),
            ],
        )
        .await
        .map_err(Error::db(format!(
            "recording {} in strata.migration",
            MigrationId::new(pkg.name(), m.name())
        )))?;
    Ok(())
}

/// A migration that ran, to be recorded with the others of its transaction segment.
pub(crate) struct Applied {
    pub package: String,
    pub name: String,
    pub path: String,
    pub checksum: String,
    /// Shared with the loaded migration, not copied.
    pub up_sql: std::sync::Arc<str>,
    pub down_sql: Option<String>,
    pub no_transaction: bool,
    pub duration_ms: f64,
}

impl Applied {
    /// What to record of migration `m` of `pkg`, which ran in `duration_ms`.
    pub(crate) fn of(pkg: &Package, m: &Migration, duration_ms: f64) -> Applied {
        Applied {
            package: pkg.name().to_string(),
            name: m.name().to_string(),
            path: m.path().to_string(),
            checksum: m.checksum().to_string(),
            up_sql: m.up_sql_shared(),
            down_sql: m.down_sql(),
            no_transaction: m.no_transaction(),
            duration_ms,
        }
    }
}

/// Record the migrations of a transaction segment in one statement (once per segment, before it commits).
pub(crate) async fn record_migrations(
    client: &Client,
    records: &[Applied],
    run_id: Option<i64>,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let text = |f: fn(&Applied) -> &str| records.iter().map(f).collect::<Vec<&str>>();
    // A big up text goes ahead in pieces (see `stage_text`); the record statement joins them.
    let mut up_sql: Vec<Option<&str>> = Vec::with_capacity(records.len());
    for (k, r) in records.iter().enumerate() {
        if r.up_sql.len() > STAGED_TEXT_BYTES {
            stage_text(client, k + 1, &r.up_sql).await?;
            up_sql.push(None);
        } else {
            up_sql.push(Some(&r.up_sql));
        }
    }
    let down_sql: Vec<Option<&str>> = records.iter().map(|r| r.down_sql.as_deref()).collect();
    let no_transaction: Vec<bool> = records.iter().map(|r| r.no_transaction).collect();
    let duration_ms: Vec<f64> = records.iter().map(|r| r.duration_ms).collect();
    let params: [(&(dyn ToSql + Sync), Type); 10] = [
        (&text(|r| &r.package), Type::TEXT_ARRAY),
        (&text(|r| &r.name), Type::TEXT_ARRAY),
        (&text(|r| &r.path), Type::TEXT_ARRAY),
        (&text(|r| &r.checksum), Type::TEXT_ARRAY),
        (&up_sql, Type::TEXT_ARRAY),
        (&down_sql, Type::TEXT_ARRAY),
        (&no_transaction, Type::BOOL_ARRAY),
        (&duration_ms, Type::FLOAT8_ARRAY),
        (&VERSION, Type::TEXT),
        (&run_id, Type::INT8),
    ];
    let staged = up_sql.iter().any(Option::is_none);
    let sql = if staged {
        std::borrow::Cow::Owned(migrations_staged_sql())
    } else {
        std::borrow::Cow::Borrowed(MIGRATIONS_SQL)
    };
    client.query_typed(&sql, &params).await.map_err(Error::db(
        "recording applied migrations in strata.migration",
    ))?;
    if staged {
        client
            .batch_execute(UNSTAGE_SQL)
            .await
            .map_err(Error::db("emptying Strata's staged texts"))?;
    }
    Ok(())
}

/// An up text longer than this is not sent as a parameter of the record statement, which the client encodes whole
/// (and whose buffers grow by doubling): a data load of tens of megabytes would be held three or four times over.
const STAGED_TEXT_BYTES: usize = 4 << 20;

/// Pieces of one COPY row of a staged text.
const STAGED_PIECE_BYTES: usize = 1 << 20;

/// Staged texts live in a session-private table: rolled back with the deploy's transaction, gone with the session.
const STAGE_TABLE_SQL: &str = "SELECT to_regclass('pg_temp.strata_staged_text') IS NULL";
const CREATE_STAGE_SQL: &str =
    "CREATE TEMP TABLE strata_staged_text (ord bigint, piece bigint, part text)";
const STAGE_COPY_SQL: &str = "COPY pg_temp.strata_staged_text (ord, piece, part) FROM STDIN";
const UNSTAGE_SQL: &str = "DELETE FROM pg_temp.strata_staged_text";

/// Send `text` (the up text of the `ord`-th record) in pieces with COPY, so that neither side holds a copy of it
/// in a message: the record statement reads it back with `string_agg`.
async fn stage_text(client: &Client, ord: usize, text: &str) -> Result<()> {
    use futures_util::SinkExt;
    let missing: bool = client
        .query_one(STAGE_TABLE_SQL, &[])
        .await
        .map_err(Error::db("looking for Strata's staged texts"))?
        .get(0);
    if missing {
        client
            .batch_execute(CREATE_STAGE_SQL)
            .await
            .map_err(Error::db("creating the table of Strata's staged texts"))?;
    }
    let context = format!("staging the up text of migration {ord} of the record");
    let failed = |e: tokio_postgres::Error| Error::db(context.clone())(e);
    let sink = client
        .copy_in::<_, std::io::Cursor<Vec<u8>>>(STAGE_COPY_SQL)
        .await
        .map_err(failed)?;
    let mut sink = std::pin::pin!(sink);
    let mut rest = text;
    let mut piece = 0;
    while !rest.is_empty() {
        let mut cut = rest.len().min(STAGED_PIECE_BYTES);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        let (part, after) = rest.split_at(cut);
        let mut row = Vec::with_capacity(part.len() + part.len() / 16 + 32);
        row.extend_from_slice(format!("{ord}\t{piece}\t").as_bytes());
        // COPY's text format: backslash escapes for the characters that delimit rows and columns.
        for b in part.bytes() {
            match b {
                b'\\' => row.extend_from_slice(b"\\\\"),
                b'\n' => row.extend_from_slice(b"\\n"),
                b'\r' => row.extend_from_slice(b"\\r"),
                b'\t' => row.extend_from_slice(b"\\t"),
                _ => row.push(b),
            }
        }
        row.push(b'\n');
        sink.send(std::io::Cursor::new(row)).await.map_err(failed)?;
        rest = after;
        piece += 1;
    }
    sink.as_mut().finish().await.map_err(failed)?;
    Ok(())
}

/// Record the new text of a changed migration without running it.
pub(crate) async fn accept_change(
    client: &Client,
    pkg: &Package,
    m: &Migration,
    run_id: Option<i64>,
) -> Result<()> {
    let down_sql = m.down_sql();
    client
        .execute(
            ACCEPT_CHANGE_SQL,
            &[
                &pkg.name(),
                &m.name(),
                &m.checksum(),
                &m.up_sql(),
                &down_sql,
                &m.path(),
                &run_id,
            ],
        )
        .await
        .map_err(Error::db("recording an accepted change"))?;
    Ok(())
}

/// Remove a reverted migration from `strata.migration` (the log keeps it).
pub(crate) async fn record_revert(
    client: &Client,
    package: &str,
    name: &str,
    run_id: Option<i64>,
    duration_ms: f64,
) -> Result<()> {
    client
        .execute(REVERT_SQL, &[&package, &name, &run_id, &duration_ms])
        .await
        .map_err(Error::db(
            "removing the reverted migration from strata.migration",
        ))?;
    Ok(())
}

/// Record (or update) an applied repeatable, and its package.
pub(crate) async fn record_repeatable(
    client: &Client,
    pkg: &Package,
    r: &Repeatable,
    duration_ms: f64,
    run_id: Option<i64>,
    source: &str,
    action: LogAction,
) -> Result<()> {
    record_package(client, pkg).await?;
    client
        .execute(
            REPEATABLE_SQL,
            &[
                &pkg.name(),
                &r.name(),
                &r.path(),
                &r.checksum(),
                &r.script().text(),
                &duration_ms,
                &VERSION,
                &run_id,
                &source,
                &action.as_str(),
            ],
        )
        .await
        .map_err(Error::db(format!(
            "recording repeatable {}:{} in strata.repeatable",
            pkg.name(),
            r.name()
        )))?;
    Ok(())
}

/// Rows of `strata.managed_object` to write, as the arrays of [`MANAGED_SQL`].
#[derive(Debug, Default)]
pub(crate) struct ManagedRows {
    pub package: Vec<String>,
    pub kind: Vec<&'static str>,
    pub identity: Vec<String>,
    pub oid: Vec<u32>,
    pub sub_id: Vec<i32>,
    pub version: Vec<String>,
    pub hash: Vec<String>,
    pub source_hash: Vec<String>,
    pub file: Vec<String>,
    pub line: Vec<i32>,
    pub seq: Vec<i32>,
}

impl ManagedRows {
    /// True when there is nothing to write.
    pub(crate) fn is_empty(&self) -> bool {
        self.package.is_empty()
    }
}

/// Delete the rows of `forget` (package, kind, identity), then upsert `rows`, pointing at run `run_id`.
pub(crate) async fn record_managed(
    client: &Client,
    forget: &[(&str, &str, &str)],
    rows: &ManagedRows,
    run_id: Option<i64>,
) -> Result<()> {
    if !forget.is_empty() {
        let package: Vec<&str> = forget.iter().map(|f| f.0).collect();
        let kind: Vec<&str> = forget.iter().map(|f| f.1).collect();
        let identity: Vec<&str> = forget.iter().map(|f| f.2).collect();
        client
            .execute(FORGET_MANAGED_SQL, &[&package, &kind, &identity])
            .await
            .map_err(Error::db("deleting rows of strata.managed_object"))?;
    }
    if !rows.is_empty() {
        let r = rows;
        client
            .execute(
                MANAGED_SQL,
                &[
                    &r.package,
                    &r.kind,
                    &r.identity,
                    &r.oid,
                    &r.sub_id,
                    &r.version,
                    &r.hash,
                    &r.source_hash,
                    &r.file,
                    &r.line,
                    &r.seq,
                    &run_id,
                ],
            )
            .await
            .map_err(Error::db(
                "recording managed objects in strata.managed_object",
            ))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_is_written_in_one_pass() {
        let sql = progress_sql(7, "p:a$3b", &[(0, "ab".into())], Some((1, "cd")));
        assert!(sql.contains("WHERE r.id = 7::bigint"), "{sql}");
        assert!(sql.contains("'p:a$3b'::text"), "{sql}");
        assert!(
            sql.contains(r#"'[{"checksum":"ab","index":0}]'::jsonb"#),
            "{sql}"
        );
        assert!(
            sql.contains(r#"'{"checksum":"cd","index":1}'::jsonb"#),
            "{sql}"
        );
        assert!(!sql.contains("$4"), "{sql}");
    }
}
