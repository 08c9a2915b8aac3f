//! `up`: apply every pending migration of a project, atomically.
//!
//! Order of work inside the deploy transaction:
//! 1. take the deploy lock (waiting for other deployers), apply session settings;
//! 2. read the history (after the lock, so a deployer that waited sees what the previous one applied);
//! 3. plan and refuse changed / missing / out-of-order migrations unless allowed;
//! 4. run Strata's own pending migrations (its history tables), then each package's, packages in `uses` order,
//!    each migration recorded (checksum, up and down SQL, duration) right after it ran;
//! 5. record the run, commit (or roll back for `--dry-run`).
//!
//! A migration with a no-transaction section splits the run: the open transaction commits, the section's statements
//! run one by one in autocommit, and a new transaction starts for what follows.

use std::time::Instant;

use pgstrata_sql::migration::Section;

use crate::error::{Error, Result};
use crate::exec::{Database, Notice, run_section};
use crate::history;
use crate::observe::{Event, Observer};
use crate::package::{Migration, Package, Script};
use crate::plan::{Plan, PlanOptions};
use crate::project::Project;
use crate::session::{Session, SessionSettings, ms};

/// Options for [`up`].
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// What the plan may contain.
    pub plan: PlanOptions,
    /// Run everything, then roll back (stops before the first no-transaction migration, which cannot be undone).
    pub dry_run: bool,
    /// Session settings (lock wait timeout, lock_timeout, statement_timeout).
    pub session: SessionSettings,
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

/// A package's state before and after the run (seed 004's "from → to").
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

/// What `up` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UpReport {
    /// How it ended.
    pub outcome: Outcome,
    /// Row id in `strata.run` (None for dry runs).
    pub run_id: Option<i64>,
    /// Migrations run, in order.
    pub migrations: Vec<RanMigration>,
    /// Per-package transitions (only packages that changed, plus Strata's own when it bootstrapped).
    pub packages: Vec<Transition>,
    /// Changed migrations whose new text was recorded (`--accept-changed`).
    pub accepted_changes: Vec<String>,
    /// Repeatable scripts run because their text changed (Flyway `R__`, functions folders).
    pub repeatables: Vec<RanMigration>,
    /// A dry run stops before the first no-transaction migration: which one.
    pub stopped_before: Option<String>,
    /// Things worth knowing that did not stop the run.
    pub warnings: Vec<String>,
    /// Total wall time.
    pub duration_ms: f64,
}

/// Compute the plan without changing anything (reads the history; no lock taken).
pub async fn plan(db: &Database, project: &Project, opts: &PlanOptions) -> Result<Plan> {
    let packages = project.with_internal()?;
    let applied = history::applied(db.client()).await?;
    let mut plan = Plan::compute(&packages, &applied, opts);
    plan.repeatables = crate::repeatable::statuses(db.client(), &packages).await?;
    if !plan.changed().is_empty() {
        plan.load_diffs(db.client(), &packages).await?;
    }
    Ok(plan)
}

/// Apply every pending migration of `project` (see the module docs for the exact order of work).
///
/// ```no_run
/// # async fn demo() -> Result<(), pgstrata::Error> {
/// let project = pgstrata::Project::load(&["db/billing"])?;
/// let options = pgstrata_conn::ConnectOptions::from_env(None)?;
/// let mut db = pgstrata::Database::connect(&options).await?;
/// let report = pgstrata::up(&mut db, &project, &pgstrata::UpOptions::default(), &mut pgstrata::Quiet).await?;
/// println!("{} migrations applied", report.migrations.len());
/// # Ok(()) }
/// ```
pub async fn up(
    db: &mut Database,
    project: &Project,
    opts: &UpOptions,
    observer: &mut dyn Observer,
) -> Result<UpReport> {
    let started = Instant::now();
    let packages = project.with_internal()?;
    let mut session = Session::open(db, opts.session.clone(), observer).await?;
    let mut run = UpRun {
        packages: &packages,
        opts,
        run_id: None,
        history_ready: false,
        from_state: serde_json::Value::Null,
        ran: Vec::new(),
        repeatables: Vec::new(),
        committed: Vec::new(),
        uncommitted: Vec::new(),
        recorded_packages: Default::default(),
        stopped_before: None,
    };
    match run.execute(&mut session, observer).await {
        Ok((plan, outcome)) => {
            session.close().await;
            Ok(run.report(&plan, outcome, started))
        }
        Err(mut e) => {
            let rolled_back = session.in_transaction();
            session.abort().await;
            if let Error::Sql(sql) = &mut e {
                sql.committed_migrations = run.committed.clone();
                sql.rolled_back = rolled_back || sql.committed_statements.is_empty();
            }
            if !matches!(
                e,
                Error::Changed(_)
                    | Error::Refused { .. }
                    | Error::LockTimeout { .. }
                    | Error::Usage { .. }
            ) && !opts.dry_run
            {
                let detail = serde_json::json!({
                    "committed_migrations": run.committed,
                    "failed_migration": match &e { Error::Sql(s) => s.migration.clone(), _ => None },
                    "committed_statements": match &e { Error::Sql(s) => s.committed_statements.clone(), _ => Vec::new() },
                });
                history::record_failed_run(
                    db_client(&mut session),
                    "up",
                    &run.from_state,
                    &detail,
                    &e.to_string(),
                    if run.committed.is_empty() {
                        None
                    } else {
                        run.run_id
                    },
                )
                .await;
            }
            Err(e)
        }
    }
}

fn db_client<'s>(session: &'s mut Session<'_>) -> &'s tokio_postgres::Client {
    session.db.client()
}

struct UpRun<'p> {
    packages: &'p [Package],
    opts: &'p UpOptions,
    run_id: Option<i64>,
    history_ready: bool,
    from_state: serde_json::Value,
    ran: Vec<RanMigration>,
    repeatables: Vec<RanMigration>,
    /// Migrations committed by earlier segments.
    committed: Vec<String>,
    /// Migrations run in the open transaction.
    uncommitted: Vec<String>,
    recorded_packages: std::collections::HashSet<usize>,
    stopped_before: Option<String>,
}

impl UpRun<'_> {
    async fn execute(
        &mut self,
        session: &mut Session<'_>,
        observer: &mut dyn Observer,
    ) -> Result<(Plan, Outcome)> {
        let client = session.db.client();
        self.history_ready = history::history_exists(client).await?;
        let applied = history::applied(client).await?;
        self.from_state = history::state_of(&applied);
        let mut plan = Plan::compute(self.packages, &applied, &self.opts.plan);
        plan.repeatables = crate::repeatable::statuses(client, self.packages).await?;
        if let Err(e) = plan.check(&self.opts.plan) {
            if matches!(e, Error::Changed(_)) {
                plan.load_diffs(client, self.packages).await?;
                plan.check(&self.opts.plan)?;
            }
            return Err(e);
        }
        observer.event(Event::Planned {
            total: plan.steps.len(),
        });
        if plan.is_empty() {
            if self.history_ready && !self.opts.dry_run {
                // The row of a run that changed nothing is bookkeeping: not worth waiting for a WAL flush (a
                // no-op deploy should cost no more than the other tools' read-only check).
                session
                    .db
                    .client()
                    .batch_execute("SET LOCAL synchronous_commit = off")
                    .await
                    .map_err(Error::db("recording the no-op run"))?;
                let id = history::start_run(session.db.client(), "up", &self.from_state).await?;
                history::finish_run(
                    session.db.client(),
                    id,
                    "noop",
                    Some(&self.from_state),
                    None,
                    None,
                )
                .await?;
                self.run_id = Some(id);
                session.commit().await?;
            } else {
                session.rollback().await?;
            }
            return Ok((plan, Outcome::Noop));
        }
        let repeatable_no_tx = plan
            .repeatables
            .iter()
            .any(|r| r.no_transaction && r.state != crate::repeatable::RepeatableState::Applied);
        if (plan.steps.iter().any(|s| s.no_transaction) || repeatable_no_tx) && !self.opts.dry_run {
            session.hold_across_commits().await?;
        }
        if self.history_ready && !self.opts.dry_run {
            self.run_id =
                Some(history::start_run(session.db.client(), "up", &self.from_state).await?);
        }
        let total = plan.steps.len();
        for (index, step) in plan.steps.clone().iter().enumerate() {
            let pkg = &self.packages[step.package_index];
            let m = &pkg.migrations()[step.migration_index];
            if self.opts.dry_run && m.no_transaction() {
                self.stopped_before = Some(format!("{}:{}", pkg.name(), m.name()));
                break;
            }
            observer.event(Event::MigrationStarted {
                package: pkg.name(),
                name: m.name(),
                index,
                total,
            });
            let ran = self.apply(session, step.package_index, m, observer).await?;
            observer.event(Event::MigrationFinished {
                package: pkg.name(),
                name: m.name(),
                duration: std::time::Duration::from_secs_f64(ran.duration_ms / 1000.0),
            });
            self.ran.push(ran);
        }
        // interop: repeatable scripts whose text changed run after every versioned migration.
        if self.stopped_before.is_none() {
            let (ran, stopped) = crate::repeatable::apply_pending(
                session,
                self.packages,
                &plan.repeatables,
                self.run_id,
                self.opts.dry_run,
                observer,
            )
            .await?;
            self.repeatables = ran;
            self.stopped_before = stopped;
        }
        for (pkg, name) in &plan.accepted_changes {
            self.accept_change(session, pkg, name).await?;
        }
        if self.opts.dry_run {
            session.rollback().await?;
            return Ok((plan, Outcome::DryRun));
        }
        session.ensure_transaction().await?;
        if let Some(id) = self.run_id {
            let to_state = history::state_of(&history::applied(session.db.client()).await?);
            history::finish_run(
                session.db.client(),
                id,
                "success",
                Some(&to_state),
                None,
                None,
            )
            .await?;
        }
        session.commit().await?;
        observer.event(Event::Committed);
        Ok((plan, Outcome::Applied))
    }

    async fn apply(
        &mut self,
        session: &mut Session<'_>,
        package_index: usize,
        m: &Migration,
        observer: &mut dyn Observer,
    ) -> Result<RanMigration> {
        let pkg = &self.packages[package_index];
        let label = format!("{}:{}", pkg.name(), m.name());
        let started = Instant::now();
        let mut statements = 0;
        let mut notices = Vec::new();
        let script: &Script = m.up();
        for section in script.sections() {
            statements += self
                .run_one_section(session, pkg, script, section, &label)
                .await?;
            for n in session.notices() {
                observer.event(Event::Notice {
                    package: pkg.name(),
                    name: m.name(),
                    severity: &n.severity,
                    message: &n.message,
                });
                notices.push(n);
            }
        }
        let duration_ms = ms(started.elapsed());
        self.record(session, package_index, m, duration_ms).await?;
        if session.in_transaction() {
            self.uncommitted.push(label);
        } else {
            self.committed.push(label);
        }
        Ok(RanMigration {
            package: pkg.name().to_string(),
            name: m.name().to_string(),
            origin: script.origin().to_string(),
            duration_ms,
            statements,
            no_transaction: m.no_transaction(),
            notices,
        })
    }

    async fn run_one_section(
        &mut self,
        session: &mut Session<'_>,
        pkg: &Package,
        script: &Script,
        section: &Section,
        label: &str,
    ) -> Result<usize> {
        if section.no_transaction {
            if session.in_transaction() {
                session.leave_transaction().await?;
                self.committed.append(&mut self.uncommitted);
            } else {
                session.leave_transaction().await?;
            }
        } else {
            session.ensure_transaction().await?;
        }
        session
            .enter_package(pkg.schema(), pkg.extensions())
            .await?;
        match run_section(session.db.client(), script, section, section.no_transaction).await {
            Ok(o) => Ok(o.statements),
            Err(f) => {
                let mut error = f.error;
                error.migration = Some(label.to_string());
                error.committed_statements = f.committed;
                Err(error.into())
            }
        }
    }

    /// Record an applied migration (and its package, the first time in this run).
    async fn record(
        &mut self,
        session: &mut Session<'_>,
        package_index: usize,
        m: &Migration,
        duration_ms: f64,
    ) -> Result<()> {
        let pkg = &self.packages[package_index];
        let client = session.db.client();
        if !self.history_ready {
            // Strata's own first migration has just created the history tables.
            self.history_ready = history::history_exists(client).await?;
            if !self.history_ready {
                return Err(Error::usage(
                    "strata's history tables are missing after bootstrapping",
                    None,
                ));
            }
            if !self.opts.dry_run {
                self.run_id = Some(history::start_run(client, "up", &self.from_state).await?);
            }
        }
        if self.recorded_packages.insert(package_index) {
            let uses: Vec<String> = pkg.uses().iter().map(|u| u.name.clone()).collect();
            client
                .execute(
                    "INSERT INTO strata.package (name, schema_name, uses, extensions) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name) DO UPDATE
                        SET schema_name = EXCLUDED.schema_name, uses = EXCLUDED.uses,
                            extensions = EXCLUDED.extensions, updated_at = clock_timestamp()
                      WHERE (strata.package.schema_name, strata.package.uses, strata.package.extensions)
                            IS DISTINCT FROM (EXCLUDED.schema_name, EXCLUDED.uses, EXCLUDED.extensions)",
                    &[&pkg.name(), &pkg.schema(), &uses, &pkg.extensions()],
                )
                .await
                .map_err(Error::db("recording the package in strata.package"))?;
        }
        let down_sql = m.down_sql();
        client
            .execute(
                "WITH m AS (
                   INSERT INTO strata.migration
                          (package, name, path, checksum, up_sql, down_sql, no_transaction, duration_ms,
                           strata_version, run_id)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
                   RETURNING package, name, checksum)
                 INSERT INTO strata.migration_log (run_id, package, name, action, checksum, duration_ms)
                 SELECT $10, package, name, 'apply', checksum, $8 FROM m",
                &[
                    &pkg.name(),
                    &m.name(),
                    &m.path(),
                    &m.checksum(),
                    &m.up_sql(),
                    &down_sql,
                    &m.no_transaction(),
                    &duration_ms,
                    &crate::VERSION,
                    &self.run_id,
                ],
            )
            .await
            .map_err(Error::db(format!("recording {}:{} in strata.migration", pkg.name(), m.name())))?;
        Ok(())
    }

    async fn accept_change(
        &mut self,
        session: &mut Session<'_>,
        package: &str,
        name: &str,
    ) -> Result<()> {
        let Some(m) = self
            .packages
            .iter()
            .find(|p| p.name() == package)
            .and_then(|p| p.migrations().iter().find(|m| m.name() == name))
        else {
            return Ok(());
        };
        session.ensure_transaction().await?;
        let down_sql = m.down_sql();
        session
            .db
            .client()
            .execute(
                "WITH m AS (
                   UPDATE strata.migration SET checksum = $3, up_sql = $4, down_sql = $5, path = $6
                    WHERE package = $1 AND name = $2 RETURNING package, name, checksum)
                 INSERT INTO strata.migration_log (run_id, package, name, action, checksum)
                 SELECT $7, package, name, 'accept-change', checksum FROM m",
                &[
                    &package,
                    &name,
                    &m.checksum(),
                    &m.up_sql(),
                    &down_sql,
                    &m.path(),
                    &self.run_id,
                ],
            )
            .await
            .map_err(Error::db("recording an accepted change"))?;
        Ok(())
    }

    fn report(&self, plan: &Plan, outcome: Outcome, started: Instant) -> UpReport {
        let mut transitions = Vec::new();
        for p in &plan.packages {
            let count = self.ran.iter().filter(|r| r.package == p.name).count();
            if count == 0 {
                continue;
            }
            let to = self
                .ran
                .iter()
                .rev()
                .find(|r| r.package == p.name)
                .map(|r| r.name.clone());
            transitions.push(Transition {
                package: p.name.clone(),
                schema: p.schema.clone(),
                from: p.from.clone(),
                to,
                count,
            });
        }
        let mut warnings = Vec::new();
        if !plan.missing().is_empty() {
            warnings.push(format!(
                "applied migrations with no file (allowed by --allow-missing): {}",
                plan.missing().join(", ")
            ));
        }
        if !plan.out_of_order().is_empty() {
            warnings.push(format!(
                "applied out of order (allowed by --allow-out-of-order): {}",
                plan.out_of_order().join(", ")
            ));
        }
        if let Some(s) = &self.stopped_before {
            warnings.push(format!(
                "dry run stopped before {s}: a no-transaction migration cannot be rolled back"
            ));
        }
        UpReport {
            outcome,
            run_id: self.run_id,
            migrations: self.ran.clone(),
            packages: transitions,
            accepted_changes: plan
                .accepted_changes
                .iter()
                .map(|(p, n)| format!("{p}:{n}"))
                .collect(),
            repeatables: self.repeatables.clone(),
            stopped_before: self.stopped_before.clone(),
            warnings,
            duration_ms: ms(started.elapsed()),
        }
    }
}
