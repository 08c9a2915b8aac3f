//! The deploy session: the lock that serialises deployers, session settings, transaction segments, and the
//! per-package search_path. Shared by `up` and `down`.
//!
//! Locking: every run tries `pg_try_advisory_xact_lock(STRATA_LOCK_KEY)` in its first transaction, so concurrent
//! deployers queue up and each re-reads the history once it holds the lock. A run that finds the lock taken rolls
//! its transaction back and polls for the session-level lock on the same key from outside any transaction: a
//! waiter inside a transaction, or blocked in `pg_advisory_lock` (a running statement holds a snapshot), would be
//! waited for by the holder's `CREATE INDEX CONCURRENTLY`, a deadlock. A run that contains a no-transaction
//! migration must keep other deployers out across its commits too, so it also takes the session-level lock (no
//! wait: it already holds the transaction lock). Session locks are released at the end; both kinds die with the
//! connection, so a crashed deployer never leaves the database locked.
//!
//! A deploy into one tenant schema holds that schema's lock (and the database's, shared) instead: `crate::db::lock`.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use postgres_protocol::escape::{escape_identifier, escape_literal};

use crate::db::boundary::{self, Boundary};
use crate::db::exec::Database;
use crate::db::lock::LockScope;
use crate::error::{Error, Result};
use crate::observe::{Event, Observer};
use crate::report::Notice;
use crate::source::manifest::{DeploySettings, PgDuration};

/// Advisory lock key shared by every Strata deployer of a database ("STRATA" in ASCII, as a bigint).
pub const STRATA_LOCK_KEY: i64 = 0x5354_5241_5441;

/// Session settings for deploys (durations in PostgreSQL's syntax: `500ms`, `5s`, `2min`; `0` = off).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SessionSettings {
    /// `lock_timeout` while migrations run.
    pub lock_timeout: Option<PgDuration>,
    /// `statement_timeout` while migrations run.
    pub statement_timeout: Option<PgDuration>,
    /// How long to wait for another deployer's lock (None: wait as long as it takes).
    pub lock_wait_timeout: Option<PgDuration>,
}

impl SessionSettings {
    /// Settings from a manifest's `[deploy]` table.
    pub fn from_manifest(d: &DeploySettings) -> SessionSettings {
        SessionSettings {
            lock_timeout: d.lock_timeout.clone(),
            statement_timeout: d.statement_timeout.clone(),
            lock_wait_timeout: d.lock_wait_timeout.clone(),
        }
    }

    /// These settings, with unset values taken from `fallback`.
    pub fn or(self, fallback: &SessionSettings) -> SessionSettings {
        SessionSettings {
            lock_timeout: self.lock_timeout.or_else(|| fallback.lock_timeout.clone()),
            statement_timeout: self
                .statement_timeout
                .or_else(|| fallback.statement_timeout.clone()),
            lock_wait_timeout: self
                .lock_wait_timeout
                .or_else(|| fallback.lock_wait_timeout.clone()),
        }
    }

    /// `SET [LOCAL] …` statements for the deploy settings.
    fn set_sql(&self, local: bool) -> String {
        let scope = if local { "SET LOCAL" } else { "SET" };
        let mut sql = String::new();
        for (k, v) in [
            ("lock_timeout", &self.lock_timeout),
            ("statement_timeout", &self.statement_timeout),
        ] {
            if let Some(v) = v {
                sql.push_str(&format!("{scope} {k} = {};", escape_literal(v.as_str())));
            }
        }
        sql
    }
}

/// Whether Strata's history tables exist, and its table of managed objects.
const HISTORY_PROBE: &str = "SELECT to_regclass('strata.migration') IS NOT NULL, to_regclass('strata.managed_object') IS NOT NULL";

/// The deploy's `SET LOCAL`s, after resetting what the lock wait may have changed.
fn local_settings_sql(settings: &SessionSettings) -> String {
    let mut sql = String::from("SET LOCAL lock_timeout TO DEFAULT;");
    sql.push_str(&settings.set_sql(true));
    sql
}

/// A deploy session over one connection. The connection is its own: what changes the session's state (the
/// transaction, the role, `search_path`, timeouts) goes through its methods, so it always knows that state; other
/// statements use [`Session::client`].
pub(crate) struct Session<'a> {
    db: &'a mut Database,
    settings: SessionSettings,
    /// The deploy lock held: the database's, or one tenant schema's (`crate::db::lock`).
    scope: LockScope,
    in_tx: bool,
    session_lock: bool,
    session_settings_dirty: bool,
    original_search_path: String,
    /// The caller's `lock_timeout` and `statement_timeout`, restored by `close`.
    original_timeouts: (String, String),
    server_version_num: i32,
    history_exists: bool,
    /// `strata.managed_object` existed once the lock was held (only ever turns true later in the run: Strata's
    /// own migrations create it).
    managed_table_exists: bool,
    /// The package schemas the search_path starts with (None: not set by `enter_package`).
    search_path_for: Option<Vec<String>>,
    /// The package role in effect (None: the login's), and whether it was set for the transaction only.
    role: Option<(String, bool)>,
    /// `session_user` when the session opened: the deploying login.
    login: String,
    /// The id of the open transaction, once package code needed it (the boundary check compares it).
    xact: Option<String>,
    /// The prepared boundary check: for which role and transaction, and its `prepare_time`.
    prepared: Option<(BoundaryKey, String)>,
    schemas: HashSet<String>,
    extensions: HashSet<String>,
}

/// What a prepared boundary check was prepared for: the package role and the transaction id.
type BoundaryKey = (Option<String>, Option<String>);

impl<'a> Session<'a> {
    /// Begin the first transaction and take the deploy lock (waiting at most `lock_wait_timeout`).
    ///
    /// When the lock is free, the session facts, `BEGIN`, the lock, the deploy's `SET LOCAL`s and the
    /// history probe are pipelined (tokio-postgres sends concurrent requests back to back on the connection). The
    /// probe is a statement of its own after the lock, so its snapshot sees what the previous holder committed.
    pub async fn open(
        db: &'a mut Database,
        settings: SessionSettings,
        observer: &mut dyn Observer,
    ) -> Result<Session<'a>> {
        Session::open_in(db, settings, LockScope::Database, observer).await
    }

    /// [`Session::open`], holding the deploy lock of `scope` (one tenant schema's, or the database's).
    pub async fn open_in(
        db: &'a mut Database,
        settings: SessionSettings,
        scope: LockScope,
        observer: &mut dyn Observer,
    ) -> Result<Session<'a>> {
        let client = db.client();
        let lock_sql = scope.try_transaction_sql();
        let lock_params = scope.params();
        let local_settings = local_settings_sql(&settings);
        let (facts, begin, lock, local, probe) = tokio::join!(
            client.query_typed_one(
                "SELECT current_setting('search_path'),
                        ARRAY(SELECT nspname::text FROM pg_namespace),
                        ARRAY(SELECT extname::text FROM pg_extension),
                        current_setting('lock_timeout'), current_setting('statement_timeout'),
                        current_setting('server_version_num')::int, session_user::text",
                &[],
            ),
            client.batch_execute("BEGIN"),
            client.query_typed_one(&lock_sql, &lock_params),
            client.batch_execute(&local_settings),
            client.query_typed_one(HISTORY_PROBE, &[]),
        );
        let checked = (|| {
            let facts = facts.map_err(Error::db("reading the session's search_path"))?;
            begin.map_err(Error::db("starting the deploy transaction"))?;
            let lock = lock.map_err(Error::db("taking the deploy lock"))?;
            local.map_err(Error::db("applying lock_timeout/statement_timeout"))?;
            let probe = probe.map_err(Error::db("checking for strata's history tables"))?;
            Ok::<_, Error>((facts, lock, probe))
        })();
        let (facts, lock, probe) = match checked {
            Ok(rows) => rows,
            Err(e) => {
                // A transaction may be open (BEGIN went through before the failure): leave it.
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(e);
            }
        };
        let schemas: Vec<String> = facts.get(1);
        let extensions: Vec<String> = facts.get(2);
        let mut s = Session {
            db,
            settings,
            scope,
            in_tx: true,
            session_lock: false,
            session_settings_dirty: false,
            original_search_path: facts.get(0),
            original_timeouts: (facts.get(3), facts.get(4)),
            server_version_num: facts.get(5),
            history_exists: probe.get(0),
            managed_table_exists: probe.get(1),
            search_path_for: None,
            role: None,
            login: facts.get(6),
            xact: None,
            prepared: None,
            schemas: schemas.into_iter().collect(),
            extensions: extensions.into_iter().collect(),
        };
        if !lock.get::<_, bool>(0) {
            let waited = async {
                s.wait_for_lock(observer).await?;
                s.apply_local_settings().await?;
                // Another deployer may have created the history tables meanwhile.
                let probe =
                    s.db.client()
                        .query_typed_one(HISTORY_PROBE, &[])
                        .await
                        .map_err(Error::db("checking for strata's history tables"))?;
                s.history_exists = probe.get(0);
                s.managed_table_exists = probe.get(1);
                Ok::<(), Error>(())
            }
            .await;
            if let Err(e) = waited {
                s.abort().await;
                return Err(e);
            }
        }
        Ok(s)
    }

    /// True if Strata's history tables existed once the deploy lock was held.
    pub fn history_exists(&self) -> bool {
        self.history_exists
    }

    /// True if `strata.managed_object` is known to exist (false: unknown, check again).
    pub fn managed_table_exists(&self) -> bool {
        self.managed_table_exists
    }

    /// The server's version as `major.minor` (from `server_version_num`), for the linter.
    pub fn server_version(&self) -> String {
        let n = self.server_version_num;
        format!("{}.{}", n / 10_000, n % 10_000)
    }

    /// The transaction lock was taken by another deployer: leave the transaction and wait for the session lock.
    async fn wait_for_lock(&mut self, observer: &mut dyn Observer) -> Result<()> {
        observer.event(Event::LockWaiting);
        // Wait outside any transaction, polling, never blocked inside a statement: a waiter that sat in an open
        // transaction (or in a running `pg_advisory_lock` call, which holds a snapshot) would be waited for by
        // the holder's `CREATE INDEX CONCURRENTLY`, and the two would deadlock.
        self.db
            .client()
            .batch_execute("ROLLBACK")
            .await
            .map_err(Error::db(
                "leaving the transaction to wait for the deploy lock",
            ))?;
        self.in_tx = false;
        self.xact = None;
        let started = Instant::now();
        let wait = self.settings.lock_wait_timeout.clone();
        let limit = wait.as_ref().map_or(Duration::ZERO, PgDuration::duration);
        let mut pause = Duration::from_millis(5);
        loop {
            let got: bool = self
                .db
                .client()
                .query_typed_one(&self.scope.try_session_sql(), &self.scope.params())
                .await
                .map_err(Error::db("waiting for the deploy lock"))?
                .get(0);
            if got {
                break;
            }
            let waited = started.elapsed();
            if !limit.is_zero() && waited >= limit {
                return Err(Error::LockTimeout {
                    waited: wait.map(|w| w.to_string()).unwrap_or_default(),
                });
            }
            let mut next = pause;
            if !limit.is_zero() {
                next = next.min(limit.saturating_sub(waited));
            }
            tokio::time::sleep(next).await;
            pause = (pause * 2).min(Duration::from_millis(250));
        }
        // The session-level lock is held until `close`, like the one `hold_across_commits` takes.
        self.session_lock = true;
        self.db
            .client()
            .batch_execute("BEGIN")
            .await
            .map_err(Error::db("starting the deploy transaction"))?;
        self.in_tx = true;
        observer.event(Event::LockAcquired {
            waited: started.elapsed(),
        });
        Ok(())
    }

    async fn apply_local_settings(&mut self) -> Result<()> {
        self.db
            .client()
            .batch_execute(&local_settings_sql(&self.settings))
            .await
            .map_err(Error::db("applying lock_timeout/statement_timeout"))
    }

    /// Keep other deployers out across commits (needed before the first no-transaction migration).
    pub async fn hold_across_commits(&mut self) -> Result<()> {
        if self.session_lock {
            return Ok(());
        }
        self.db
            .client()
            .query_typed_one(&self.scope.session_sql(), &self.scope.params())
            .await
            .map_err(Error::db("taking the session deploy lock"))?;
        self.session_lock = true;
        Ok(())
    }

    pub fn in_transaction(&self) -> bool {
        self.in_tx
    }

    /// Make sure a transaction is open (after a no-transaction segment).
    pub async fn ensure_transaction(&mut self) -> Result<()> {
        if self.in_tx {
            return Ok(());
        }
        self.db
            .client()
            .batch_execute("BEGIN")
            .await
            .map_err(Error::db("starting a transaction"))?;
        self.in_tx = true;
        self.xact = None;
        self.search_path_for = None;
        self.apply_local_settings().await
    }

    /// Commit the open transaction and switch to autocommit (before a no-transaction section).
    pub async fn leave_transaction(&mut self) -> Result<()> {
        if self.in_tx {
            self.commit().await?;
        }
        if !self.session_settings_dirty {
            let sql = self.settings.set_sql(false);
            if !sql.is_empty() {
                self.db
                    .client()
                    .batch_execute(&sql)
                    .await
                    .map_err(Error::db("applying session settings"))?;
            }
            self.session_settings_dirty = true;
        }
        Ok(())
    }

    pub async fn commit(&mut self) -> Result<()> {
        self.db
            .client()
            .batch_execute("COMMIT")
            .await
            .map_err(Error::db("committing"))?;
        self.in_tx = false;
        self.xact = None;
        self.search_path_for = None;
        self.transaction_ended();
        Ok(())
    }

    /// A `SET LOCAL ROLE` ends with its transaction.
    fn transaction_ended(&mut self) {
        if self.role.as_ref().is_some_and(|(_, local)| *local) {
            self.role = None;
        }
    }

    pub async fn rollback(&mut self) -> Result<()> {
        if self.in_tx {
            self.in_tx = false;
            self.xact = None;
            self.search_path_for = None;
            self.transaction_ended();
            self.db
                .client()
                .batch_execute("ROLLBACK")
                .await
                .map_err(Error::db("rolling back"))?;
        }
        Ok(())
    }

    /// Roll back whatever is open and release the session; errors are ignored (we are already failing).
    pub async fn abort(&mut self) {
        let _ = self.rollback().await;
        self.close().await;
    }

    /// Release the session lock and undo session-level settings, so a caller's own connection is left as it was.
    pub async fn close(&mut self) {
        let mut sql = String::new();
        if self.prepared.take().is_some() {
            sql.push_str(&format!("DEALLOCATE {};", boundary::PREPARED));
        }
        if self.session_lock {
            sql.push_str(&self.scope.unlock_sql());
            self.session_lock = false;
        }
        if self.session_settings_dirty {
            // The caller's values, not the server defaults (RESET): an application may go on using this connection.
            sql.push_str(&format!(
                "SELECT set_config('lock_timeout', {}, false), set_config('statement_timeout', {}, false), \
                 set_config('search_path', {}, false);",
                escape_literal(&self.original_timeouts.0),
                escape_literal(&self.original_timeouts.1),
                escape_literal(&self.original_search_path)
            ));
            self.session_settings_dirty = false;
        }
        if !sql.is_empty()
            && let Err(e) = self.db.client().batch_execute(&sql).await
        {
            tracing::warn!("could not release the deploy session cleanly: {e}");
        }
    }

    /// Create the package's schemas and extensions if missing, and point search_path at its schemas, in order (then
    /// the session's original path), so unqualified names in migrations land in the package's main schema and
    /// names of its other schemas resolve too.
    pub async fn enter_package(&mut self, schemas: &[String], extensions: &[String]) -> Result<()> {
        let client = self.db.client();
        for schema in schemas {
            if !self.schemas.contains(schema) {
                client
                    .batch_execute(&format!(
                        "CREATE SCHEMA IF NOT EXISTS {}",
                        escape_identifier(schema)
                    ))
                    .await
                    .map_err(Error::db(format!("creating schema {schema}")))?;
                self.schemas.insert(schema.clone());
            }
        }
        for ext in extensions {
            if !self.extensions.contains(ext) {
                // Extensions go where the session would put them without Strata (its original search_path).
                client
                    .query_one(
                        "SELECT set_config('search_path', $1, $2)",
                        &[&self.original_search_path, &self.in_tx],
                    )
                    .await
                    .map_err(Error::db("setting search_path"))?;
                self.search_path_for = None;
                client
                    .batch_execute(&format!(
                        "CREATE EXTENSION IF NOT EXISTS {}",
                        escape_identifier(ext)
                    ))
                    .await
                    .map_err(Error::db(format!("creating extension {ext}")))?;
                self.extensions.insert(ext.clone());
            }
        }
        if self.search_path_for.as_deref() != Some(schemas) {
            let mut parts: Vec<String> = schemas.iter().map(|s| escape_identifier(s)).collect();
            if !self.original_search_path.trim().is_empty() {
                parts.push(self.original_search_path.clone());
            }
            let path = parts.join(", ");
            client
                .query_one(
                    "SELECT set_config('search_path', $1, $2)",
                    &[&path, &self.in_tx],
                )
                .await
                .map_err(Error::db("setting search_path"))?;
            if !self.in_tx {
                self.session_settings_dirty = true;
            }
            self.search_path_for = Some(schemas.to_vec());
        }
        Ok(())
    }

    /// The search_path was changed behind the session's back (rolled back with a savepoint): set it again next time.
    pub(crate) fn forget_search_path(&mut self) {
        self.search_path_for = None;
    }

    /// A schema created by someone else in this session (the package role set-up).
    pub(crate) fn know_schema(&mut self, schema: &str) {
        self.schemas.insert(schema.to_string());
    }

    /// The connection, for statements that leave the session's state alone (queries, DDL of migrations, Strata's
    /// bookkeeping); the role, `search_path`, timeouts and transactions go through the methods of the session.
    pub fn client(&self) -> &tokio_postgres::Client {
        self.db.client()
    }

    /// Run the next statements as `role` (None: the login): `SET LOCAL ROLE` inside a transaction, `SET ROLE`
    /// outside one (until [`Session::set_role`] with None). Nothing is sent when that role is in effect already.
    pub async fn set_role(&mut self, role: Option<&str>) -> Result<()> {
        if self.role() == role {
            return Ok(());
        }
        let sql = crate::db::roles::set_role_sql(role, self.in_tx);
        self.db
            .client()
            .batch_execute(&sql)
            .await
            .map_err(Error::db(match role {
                Some(r) => format!("switching to the role {r}"),
                None => "resetting the role".to_string(),
            }))?;
        self.role = role.map(|r| (r.to_string(), self.in_tx));
        Ok(())
    }

    /// What package code about to run as `role` (None: the login) must leave intact: the role, the login, and
    /// inside a transaction its id (read once per transaction).
    pub async fn boundary(&mut self, role: Option<&str>) -> Result<Boundary> {
        let mut boundary = self.boundary_unprepared(role).await?;
        if !self.in_tx {
            // Outside a transaction every statement goes alone, followed by the full check.
            return Ok(boundary);
        }
        let key = (boundary.role.clone(), boundary.xact.clone());
        if let Some((k, at)) = &self.prepared
            && *k == key
        {
            boundary.prepared = Some(at.clone());
            return Ok(boundary);
        }
        let client = self.db.client();
        if self.prepared.take().is_some() {
            client
                .batch_execute(&format!("DEALLOCATE {}", boundary::PREPARED))
                .await
                .map_err(Error::db("replacing the boundary check"))?;
        }
        let prepare = boundary.prepare_sql();
        if let Err(e) = client.batch_execute(&prepare).await {
            if e.code() != Some(&tokio_postgres::error::SqlState::DUPLICATE_PSTATEMENT) {
                return Err(Error::db("preparing the boundary check")(e));
            }
            // The caller's connection had one by that name: ours replaces it.
            client
                .batch_execute(&format!("DEALLOCATE {}; {prepare}", boundary::PREPARED))
                .await
                .map_err(Error::db("preparing the boundary check"))?;
        }
        let at: String = client
            .query_one(
                "SELECT prepare_time::text FROM pg_catalog.pg_prepared_statements WHERE name = $1",
                &[&boundary::PREPARED],
            )
            .await
            .map_err(Error::db("reading the boundary check"))?
            .get(0);
        self.prepared = Some((key, at.clone()));
        boundary.prepared = Some(at);
        Ok(boundary)
    }

    /// Check, in one round trip, that the session is what it believes: its role, the login, its transaction
    /// (after code that runs no package statement of its own, such as installing managed code).
    pub async fn check_boundary(&mut self) -> Result<()> {
        let role = self.role().map(str::to_string);
        let mut boundary = self.boundary_unprepared(role.as_deref()).await?;
        boundary.prepared = None;
        match crate::db::exec::run_own(self.db.client(), &boundary.check_sql(0, true)).await {
            Ok(()) => Ok(()),
            Err((_, e)) => match Boundary::breach(&e) {
                Some(breach) => Err(Error::refused(
                    breach.describe(&boundary).0,
                    "package code must leave the deploy's role and transaction as they were; the deploy was \
                     stopped (see the README's security section)",
                )),
                None => Err(Error::db("checking the deploy session")(e)),
            },
        }
    }

    async fn boundary_unprepared(&mut self, role: Option<&str>) -> Result<Boundary> {
        if self.in_tx && self.xact.is_none() {
            let row = self
                .db
                .client()
                .query_one("SELECT pg_catalog.pg_current_xact_id()::text", &[])
                .await
                .map_err(Error::db("reading the deploy transaction's id"))?;
            self.xact = Some(row.get(0));
        }
        Ok(Boundary {
            role: role.map(str::to_string),
            login: self.login.clone(),
            xact: if self.in_tx { self.xact.clone() } else { None },
            prepared: None,
        })
    }

    /// A statement of a no-transaction section failed: whatever transaction block it left open (its own `BEGIN`)
    /// is rolled back, so Strata's next statements run in autocommit again.
    pub async fn end_stray_block(&mut self) {
        if !self.in_tx {
            let _ = self.db.client().batch_execute("ROLLBACK").await;
        }
    }

    /// The package role in effect (None: the login's).
    pub fn role(&self) -> Option<&str> {
        self.role.as_ref().map(|(r, _)| r.as_str())
    }

    /// A role change rolled back behind the session's back (`ROLLBACK TO SAVEPOINT`): set it again next time.
    pub(crate) fn forget_role(&mut self) {
        self.role = None;
    }

    /// Run `statement` outside the deploy's `lock_timeout` (a `CONCURRENTLY` statement, in autocommit: its waits
    /// block nobody, and a timeout would leave an invalid index behind), then set it back.
    pub async fn without_lock_timeout<T>(
        &mut self,
        statement: impl AsyncFnOnce(&tokio_postgres::Client) -> T,
    ) -> Result<T> {
        let timeout = self.settings.lock_timeout.clone().filter(|t| !t.is_off());
        let Some(timeout) = timeout else {
            return Ok(statement(self.db.client()).await);
        };
        self.db
            .client()
            .batch_execute("SET lock_timeout = 0")
            .await
            .map_err(Error::db(
                "lifting lock_timeout for a CONCURRENTLY statement",
            ))?;
        let result = statement(self.db.client()).await;
        self.db
            .client()
            .batch_execute(&format!(
                "SET lock_timeout = {}",
                escape_literal(timeout.as_str())
            ))
            .await
            .map_err(Error::db("restoring lock_timeout"))?;
        Ok(result)
    }

    /// Commit the open transaction, when it comes, without waiting for the WAL flush (`synchronous_commit = off`
    /// for it alone): for transactions that only refreshed bookkeeping, which the next run would redo.
    pub async fn commit_asynchronously(&mut self) -> Result<()> {
        self.db
            .client()
            .batch_execute("SET LOCAL synchronous_commit = off")
            .await
            .map_err(Error::db("recording a run with nothing to do"))
    }

    pub fn notices(&mut self) -> Vec<Notice> {
        self.db.drain_notices()
    }
}
