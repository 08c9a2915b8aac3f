//! `up`: apply every pending migration of a project, atomically.
//!
//! Order of work inside the deploy transaction:
//! 1. take the deploy lock (waiting for other deployers), apply session settings (one pipelined round trip with
//!    the session's facts and the history probe, see `Session::open`);
//! 2. read the history (after the lock, so a deployer that waited sees what the previous one applied);
//! 3. plan and refuse changed / missing / out-of-order migrations unless allowed;
//! 4. create missing package roles and schemas, grant what `uses` asks for ([`crate::db::roles`]);
//! 5. run Strata's own pending migrations (its history tables), then each package's, packages in `uses` order,
//!    each migration recorded (checksum, up and down SQL, duration) right after it ran, as the package role,
//!    while the managed objects of the previous deploy are still installed;
//! 6. bring managed code up to date, all packages in one dependency graph ([`crate::decide::code`]);
//! 7. run the tests when something changed ([`crate::run::test`]); a failure rolls everything back;
//! 8. record the run, commit (or roll back for `--dry-run`).
//!
//! The run's row in `strata.run` is written just before the first record that points at it
//! (`history::RunRow`). A run with nothing to do writes only its `noop` run row, in one statement at the end, and
//! commits without waiting for the WAL flush (`synchronous_commit = off` for that transaction: the log keeps every
//! run, and a crash can only lose the record of a run that did nothing).
//!
//! A migration with a no-transaction section splits the run: the open transaction commits, the section's statements
//! run one by one in autocommit, and a new transaction starts for what follows.
//!
//! Guard-rails (see `crate::decide::guard`): a default `lock_timeout`, retries after lock timeouts, statements that
//! cannot run in a transaction refused before anything runs, lint errors refused (`crate::decide::lint`), and a
//! failed no-transaction migration resumed after the statements that committed.
//!
//! The migrations themselves (sections, statements, roles, records) are run by `migrate`.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

use crate::db::exec::Database;
use crate::db::history::{self, PackageFacts};
use crate::db::lock::LockScope;
use crate::db::roles;
use crate::db::session::{Session, SessionSettings};
use crate::decide::code::CodeReport;
use crate::decide::guard::{self, LockRetry, Resume};
use crate::decide::plan::{Plan, PlanOptions};
use crate::decide::repeatable::RepeatableState;
use crate::error::{Error, LintRefused, Result};
use crate::observe::{Event, Observer};
use crate::report::lint::LintReport;
use crate::report::{
    MigrationId, Outcome, RanMigration, ResumedMigration, RunOutcome, Transition, ms,
};
use crate::run::test::{TestMode, TestOptions, TestReport};
use crate::source::STRATA_PACKAGE;
use crate::source::manifest::PgDuration;
use crate::source::package::Package;
use crate::source::project::Project;
use tokio_postgres::error::SqlState;

mod migrate;

/// Options for [`up`].
#[derive(Debug, Clone, Default)]
pub struct UpOptions {
    /// What the plan may contain.
    pub plan: PlanOptions,
    /// Run everything, then roll back (stops before the first no-transaction migration, which cannot be undone).
    pub dry_run: bool,
    /// Session settings (lock wait timeout, lock_timeout, statement_timeout). Without a lock_timeout,
    /// [`guard::DEFAULT_LOCK_TIMEOUT`] applies (`"0"` turns it off).
    pub session: SessionSettings,
    /// Deploy even when the migrations about to run have lint errors.
    pub allow_lint_errors: bool,
    /// Retries after a statement gave up waiting for a lock.
    pub lock_retry: LockRetry,
    /// Run a failed no-transaction migration from its first statement, instead of skipping the statements its
    /// failed run committed.
    pub no_resume: bool,
    /// When to run the packages' tests.
    pub tests: TestMode,
    /// Which tests, in which order.
    pub test_options: TestOptions,
    /// Lint results reused by deploys of the same project with the same inputs (a fleet shares one among its
    /// targets; clones of these options share it too).
    pub lint_memo: crate::decide::lint::LintMemo,
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
    /// Repeatable scripts run because their text changed (Flyway `R__`).
    pub repeatables: Vec<RanMigration>,
    /// A dry run stops before the first no-transaction migration: which one.
    pub stopped_before: Option<String>,
    /// Things worth knowing that did not stop the run.
    pub warnings: Vec<String>,
    /// What the linter found in the migrations that ran (warnings, or errors allowed by `--allow-lint-errors`).
    pub lint: LintReport,
    /// Lock timeouts retried before the run went through.
    pub lock_retries: u32,
    /// Failed no-transaction migrations resumed after the statements that had committed.
    pub resumed: Vec<ResumedMigration>,
    /// What happened to managed code.
    pub code: CodeReport,
    /// The tests, when they ran (they all passed: a failure is an error).
    pub tests: Option<TestReport>,
    /// Package roles and grants created or changed.
    pub roles: Vec<String>,
    /// Total wall time.
    pub duration_ms: f64,
}

/// Compute the plan without changing anything (reads the history; no lock taken).
pub async fn plan(db: &Database, project: &Project, opts: &PlanOptions) -> Result<Plan> {
    let packages = project.with_internal()?;
    let applied = history::applied(db.client()).await?;
    let mut plan = Plan::compute(&packages, &applied, opts);
    plan.repeatables = crate::decide::repeatable::statuses(db.client(), &packages).await?;
    // What `up` would refuse about schemas, it refuses here too; what it would adopt is listed.
    plan.adoptions = roles::schema_adoptions(db.client(), &packages).await?;
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
    let mut settings = opts.session.clone();
    if settings.lock_timeout.is_none() {
        settings.lock_timeout = Some(guard::default_lock_timeout());
    }
    let mut retries = 0;
    // A retry lints the same migrations again: the observer hears of the findings once.
    let mut observer = LintedOnce {
        inner: observer,
        linted: false,
    };
    let observer = &mut observer;
    loop {
        let error = match up_once(db, project, opts, &settings, observer).await {
            Ok(mut report) => {
                report.lock_retries = retries;
                return Ok(report);
            }
            Err(e) => e,
        };
        if error.sqlstate() == Some(SqlState::LOCK_NOT_AVAILABLE.code())
            && retries < opts.lock_retry.retries
        {
            retries += 1;
            let delay = opts.lock_retry.delay(retries);
            observer.event(Event::LockRetry {
                attempt: retries,
                of: opts.lock_retry.retries,
                delay,
                error: &error.to_string(),
            });
            tokio::time::sleep(delay).await;
            continue;
        }
        return Err(explain(db, project, &settings, error, retries + 1).await);
    }
}

/// Passes events on, but `Linted` only the first time.
struct LintedOnce<'o> {
    inner: &'o mut dyn Observer,
    linted: bool,
}

impl Observer for LintedOnce<'_> {
    fn event(&mut self, event: Event<'_>) {
        if matches!(event, Event::Linted { .. }) {
            if self.linted {
                return;
            }
            self.linted = true;
        }
        self.inner.event(event);
    }
}

/// Add what Strata can find out about a failed statement: who holds the lock it waited for, invalid indexes left
/// by a failed concurrent index build.
async fn explain(
    db: &Database,
    project: &Project,
    settings: &SessionSettings,
    mut error: Error,
    attempts: u32,
) -> Error {
    let Error::Sql(sql) = &mut error else {
        return error;
    };
    let schema = sql
        .migration
        .as_deref()
        .and_then(|m| m.parse::<MigrationId>().ok())
        .and_then(|id| project.package(&id.package))
        .map(|p| p.schema().to_string());
    let offset = sql.span.offset();
    let text = sql.file.inner().clone();
    let mut hints: Vec<String> = sql.hint.take().into_iter().collect();
    if sql.sqlstate == SqlState::LOCK_NOT_AVAILABLE.code() {
        hints = vec![
            guard::explain_lock_timeout(
                db.client(),
                &text,
                offset,
                schema.as_deref(),
                settings
                    .lock_timeout
                    .as_ref()
                    .map_or("?", PgDuration::as_str),
                attempts,
            )
            .await,
        ];
    }
    let named_already = hints.iter().any(|h| h.contains("DROP INDEX CONCURRENTLY"));
    if let Some(schema) = &schema
        && !named_already
        && let Some(h) = guard::invalid_index_hint(db.client(), &text, offset, schema).await
    {
        hints.push(h);
    }
    if !hints.is_empty() {
        sql.hint = Some(hints.join("\n"));
    }
    error
}

async fn up_once(
    db: &mut Database,
    project: &Project,
    opts: &UpOptions,
    settings: &SessionSettings,
    observer: &mut dyn Observer,
) -> Result<UpReport> {
    let started = Instant::now();
    let packages = project.with_internal()?;
    let scope = LockScope::of(&packages)?;
    let mut session = Session::open_in(db, settings.clone(), scope.clone(), observer).await?;
    let mut run = UpRun::new(&packages, opts, scope);
    match run.execute(&mut session, observer).await {
        Ok((plan, outcome)) => {
            session.close().await;
            Ok(run.report(&plan, outcome, started))
        }
        Err(mut e) => {
            let rolled_back = session.in_transaction();
            session.abort().await;
            let committed: Vec<String> = run
                .segments
                .committed
                .iter()
                .map(ToString::to_string)
                .collect();
            if let Error::Sql(sql) = &mut e {
                sql.committed_migrations = committed.clone();
                // Only what the transaction still held was rolled back: never more than the error itself knows
                // (a statement that committed the deploy's transaction says so).
                sql.rolled_back =
                    sql.rolled_back && (rolled_back || sql.committed_statements.is_empty());
            }
            let recorded = !matches!(
                e,
                Error::Changed(_)
                    | Error::Refused { .. }
                    | Error::LockTimeout { .. }
                    | Error::Usage { .. }
                    | Error::Lint(_)
                    | Error::Source(_)
            );
            if recorded && !opts.dry_run {
                let (failed_migration, committed_statements) = match &e {
                    Error::Sql(s) => (s.migration.clone(), s.committed_statements.clone()),
                    _ => (None, Vec::new()),
                };
                let detail = serde_json::json!({
                    "committed_migrations": committed,
                    "failed_migration": failed_migration,
                    "committed_statements": committed_statements,
                });
                // The run's row survives the rollback when a segment committed it; record_failed_run checks.
                let existing_run = run.run.id();
                history::record_failed_run_in(
                    session.client(),
                    "up",
                    &run.from_state,
                    &detail,
                    &e.to_string(),
                    existing_run,
                    run.scope.schema(),
                )
                .await;
            }
            Err(e)
        }
    }
}

/// Migrations committed by earlier transaction segments, and those run in the open one.
#[derive(Debug, Default)]
struct Segments {
    /// Committed by earlier segments (they stay applied if the run fails).
    committed: Vec<MigrationId>,
    /// Run in the open transaction.
    uncommitted: Vec<MigrationId>,
}

impl Segments {
    /// The open transaction committed.
    fn commit(&mut self) {
        self.committed.append(&mut self.uncommitted);
    }
}

/// What the run did, for the report.
#[derive(Debug, Default)]
struct Done {
    /// What the linter found in the plan.
    lint: LintReport,
    ran: Vec<RanMigration>,
    repeatables: Vec<RanMigration>,
    resumed: Vec<ResumedMigration>,
    stopped_before: Option<MigrationId>,
    code: CodeReport,
    tests: Option<TestReport>,
    roles: roles::Prepared,
    /// What was repaired after an interrupted run (invalid indexes dropped and built again, …).
    repairs: Vec<String>,
    /// Runs found unfinished and marked `interrupted`.
    interrupted: Vec<i64>,
}

impl Done {
    /// Whether the run changed the database (given the plan's accepted changes).
    fn changed(&self, plan: &Plan) -> bool {
        !self.ran.is_empty()
            || !self.repeatables.is_empty()
            || !plan.accepted_changes.is_empty()
            || !self.code.is_noop()
            || !self.roles.actions.is_empty()
    }
}

/// One attempt of `up`, inside its session.
struct UpRun<'p> {
    packages: &'p [Package],
    opts: &'p UpOptions,
    /// The deploy lock held: the database's, or one tenant schema's (which may change only its own packages).
    scope: LockScope,
    /// The run's row in `strata.run`, written once something is recorded.
    run: history::RunRow,
    /// Strata's history tables exist (they are created by its own first migration).
    history_ready: bool,
    /// The last applied migration of each package before the run.
    from_state: serde_json::Value,
    /// Failed no-transaction migrations to resume.
    resume: HashMap<MigrationId, Resume>,
    segments: Segments,
    /// Packages whose `strata.package` row this run wrote (indices into `packages`).
    recorded_packages: BTreeSet<usize>,
    /// Applied migrations of the open transaction, not yet written to `strata.migration`.
    pending_records: Vec<history::Applied>,
    done: Done,
}

impl<'p> UpRun<'p> {
    fn new(packages: &'p [Package], opts: &'p UpOptions, scope: LockScope) -> UpRun<'p> {
        UpRun {
            packages,
            opts,
            run: history::RunRow::new("up").in_schema(scope.schema()),
            scope,
            history_ready: false,
            from_state: serde_json::Value::Null,
            resume: HashMap::new(),
            segments: Segments::default(),
            recorded_packages: BTreeSet::new(),
            pending_records: Vec::new(),
            done: Done::default(),
        }
    }

    async fn execute(
        &mut self,
        session: &mut Session<'_>,
        observer: &mut dyn Observer,
    ) -> Result<(Plan, Outcome)> {
        let plan = self.prepare(session, observer).await?;
        self.migrate_all(session, &plan, observer).await?;
        if self.done.stopped_before.is_none() {
            let (ran, stopped) = crate::run::repeatable::apply_pending(
                session,
                self.packages,
                &plan.repeatables,
                self.run.id(),
                self.opts.dry_run,
                observer,
            )
            .await?;
            self.done.repeatables = ran;
            self.done.stopped_before = stopped.and_then(|s| s.parse().ok());
        }
        for (package, name) in &plan.accepted_changes {
            self.accept_change(session, package, name).await?;
        }
        if self.done.stopped_before.is_none() {
            self.code_and_tests(session).await?;
        }
        if self.opts.dry_run {
            session.rollback().await?;
            return Ok((plan, Outcome::DryRun));
        }
        let outcome = self.finish(session, &plan).await?;
        observer.event(Event::Committed);
        Ok((plan, outcome))
    }

    /// Read the history (the lock is held), plan, and check everything that can be checked before anything runs:
    /// package roles and schemas, guard-rails, the linter, what to resume.
    async fn prepare(
        &mut self,
        session: &mut Session<'_>,
        observer: &mut dyn Observer,
    ) -> Result<Plan> {
        let client = session.client();
        self.history_ready = session.history_exists();
        let applied = if self.history_ready {
            // A tenant schema's deploy reads its own history, not every other tenant's.
            let names: Vec<&str> = self.packages.iter().map(Package::name).collect();
            let only = self.scope.schema().map(|_| names.as_slice());
            history::read_applied_of(client, only).await?
        } else {
            Vec::new()
        };
        self.from_state = history::state_of(&applied);
        // Holding the lock, a run still marked running is dead (its process or connection went away).
        let interrupted_known = applied
            .iter()
            .any(|a| a.package == STRATA_PACKAGE && a.name == history::INTERRUPTED_MIGRATION);
        if interrupted_known && !self.opts.dry_run {
            self.done.interrupted = history::mark_interrupted(client).await?;
        }
        if self.history_ready && !self.opts.dry_run {
            self.run.allow(self.from_state.clone());
        }
        let mut plan = Plan::compute(self.packages, &applied, &self.opts.plan);
        plan.repeatables = crate::decide::repeatable::statuses(client, self.packages).await?;
        if let Err(e) = plan.check(&self.opts.plan) {
            if matches!(e, Error::Changed(_)) {
                plan.load_diffs(client, self.packages).await?;
                plan.check(&self.opts.plan)?;
            }
            return Err(e);
        }
        if let Some(schema) = self.scope.schema() {
            crate::decide::tenant::check_plan(schema, self.packages, &plan)?;
        }
        observer.event(Event::Planned {
            total: plan.steps.len(),
        });
        // Package roles and schemas exist before migrations run as those roles.
        self.done.roles = roles::prepare(client, self.packages, self.history_ready).await?;
        // Its notices ("already a member", …) are not a migration's.
        session.notices();
        for p in self.packages {
            if roles::role_of(p).is_some() {
                for schema in p.schemas() {
                    session.know_schema(schema);
                }
            }
        }
        // Guard-rails, before anything runs: what the server would refuse in a transaction, what package code
        // must not do.
        crate::decide::hazards::check_plan(self.packages, &plan)?;
        let version = session.server_version();
        // Judged against the catalog as the deploy starts (the lock is held): hazards on relations this deploy
        // creates, or that are empty, block nobody.
        // A fleet shares one memo among its targets: the same plan on the same kind of target is linted once.
        self.done.lint = self
            .opts
            .lint_memo
            .lint_deploy(session.client(), self.packages, &plan, &version)
            .await?;
        observer.event(Event::Linted {
            report: &self.done.lint,
        });
        if self.done.lint.errors > 0 && !self.opts.allow_lint_errors {
            return Err(Error::Lint(Box::new(LintRefused {
                report: self.done.lint.clone(),
            })));
        }
        if self.history_ready && !self.opts.no_resume && !self.opts.dry_run {
            self.resume = guard::resume_points(session.client(), self.packages, &plan).await?;
        }
        let pending =
            |r: &&crate::decide::repeatable::RepeatableStatus| r.state != RepeatableState::Applied;
        let repeatable_pending = plan.repeatables.iter().any(|r| pending(&r));
        let repeatable_no_tx = plan
            .repeatables
            .iter()
            .any(|r| r.no_transaction && pending(&r));
        let commits_between = plan
            .steps
            .iter()
            .any(|s| s.no_transaction || s.commit_after.is_some());
        if (commits_between || repeatable_no_tx) && !self.opts.dry_run {
            session.hold_across_commits().await?;
        }
        if !plan.steps.is_empty() || repeatable_pending || !plan.accepted_changes.is_empty() {
            // The run's row comes first: every record of the run points at it.
            self.run.ensure(session.client()).await?;
        }
        Ok(plan)
    }

    /// Run the plan's migrations, in order (a dry run stops before the first no-transaction one).
    async fn migrate_all(
        &mut self,
        session: &mut Session<'_>,
        plan: &Plan,
        observer: &mut dyn Observer,
    ) -> Result<()> {
        let total = plan.steps.len();
        for (index, step) in plan.steps.iter().enumerate() {
            let pkg = &self.packages[step.package_index];
            let m = &pkg.migrations()[step.migration_index];
            // A dry run cannot commit: it stops where the real run would (before a no-transaction migration, or
            // after one whose new enum value a later one uses).
            let after_commit = index > 0 && plan.steps[index - 1].commit_after.is_some();
            if self.opts.dry_run && (m.no_transaction() || after_commit) {
                self.done.stopped_before = Some(MigrationId::new(pkg.name(), m.name()));
                break;
            }
            observer.event(Event::MigrationStarted {
                package: pkg.name(),
                name: m.name(),
                index,
                total,
            });
            let ran = self.apply(session, step.package_index, m, observer).await?;
            if step.commit_after.is_some() && !self.opts.dry_run && session.in_transaction() {
                // Its enum value is used later: commit it (see `decide::segments`).
                self.flush_records(session).await?;
                session.commit().await?;
                self.segments.commit();
            }
            observer.event(Event::MigrationFinished {
                package: pkg.name(),
                name: m.name(),
                duration: std::time::Duration::from_secs_f64(ran.duration_ms / 1000.0),
            });
            self.done.ran.push(ran);
        }
        session.set_role(None).await?;
        self.flush_records(session).await
    }

    /// Managed code, the containment check and the tests, in the open transaction.
    async fn code_and_tests(&mut self, session: &mut Session<'_>) -> Result<()> {
        session.ensure_transaction().await?;
        if !self.history_ready {
            // A dry run that applied nothing on a fresh database: there is no history to compare code with.
            self.history_ready = history::history_exists(session.client()).await?;
        }
        // Every package gets its row first: managed objects reference it.
        history::record_packages(session.client(), &self.package_facts(false)).await?;
        self.done.code = crate::run::code::deploy(session, self.packages, &mut self.run).await?;
        if !self.done.ran.is_empty() || !self.done.code.is_noop() {
            // Installing managed code runs none of it, but the session must come out as it went in.
            session.check_boundary().await?;
            // Migrations and managed code ran as package roles: nothing of theirs may be outside their schemas.
            roles::check_containment(session.client(), self.packages).await?;
        }
        self.run_tests(session).await?;
        if self.done.tests.is_some() {
            history::record_packages(session.client(), &self.package_facts(true)).await?;
        }
        Ok(())
    }

    /// What `strata.package` records of each deployed package (with the hash of its tests when they ran).
    fn package_facts(&self, tests_ran: bool) -> Vec<PackageFacts<'p>> {
        self.packages
            .iter()
            .filter(|p| p.name() != STRATA_PACKAGE)
            .map(|p| PackageFacts {
                package: p,
                role: roles::role_of(p),
                // Packages without a role keep an empty list: nothing was granted.
                granted: self
                    .done
                    .roles
                    .granted
                    .get(p.name())
                    .cloned()
                    .unwrap_or_default(),
                tests_hash: tests_ran.then(|| p.code().tests_hash()),
            })
            .collect()
    }

    /// Record the run and commit.
    async fn finish(&mut self, session: &mut Session<'_>, plan: &Plan) -> Result<Outcome> {
        session.ensure_transaction().await?;
        let changed = self.done.changed(plan);
        let outcome = if changed {
            Outcome::Applied
        } else {
            Outcome::Noop
        };
        let mut recorded_whole = false;
        if changed {
            self.run.ensure(session.client()).await?;
        } else if self.run.id().is_none() {
            // The run log keeps runs that found nothing to do too, at the cost of one small asynchronous commit.
            let state = self.to_state();
            self.run.record_noop(session.client(), &state).await?;
            recorded_whole = true;
        } else {
            // Nothing changed, but bookkeeping was refreshed (managed objects whose catalog rows moved): not worth
            // waiting for the WAL flush (a crash loses at most that refresh, done again next time).
            session.commit_asynchronously().await?;
        }
        if let Some(id) = self.run.id().filter(|_| !recorded_whole) {
            let to_state = self.to_state();
            let detail = (!self.done.resumed.is_empty())
                .then(|| serde_json::json!({ "resumed": self.done.resumed }));
            history::finish_run(
                session.client(),
                id,
                RunOutcome::from(outcome),
                Some(&to_state),
                detail.as_ref(),
                None,
            )
            .await?;
        }
        session.commit().await?;
        Ok(outcome)
    }

    /// Run the tests when asked to, or (by default) when the deploy changed something or the tests changed.
    async fn run_tests(&mut self, session: &mut Session<'_>) -> Result<()> {
        let run = match self.opts.tests {
            TestMode::Skip => false,
            TestMode::Always => true,
            TestMode::Auto => {
                !self.done.ran.is_empty()
                    || !self.done.code.is_noop()
                    || !self.done.roles.actions.is_empty()
                    || crate::decide::code::tests_changed(session.client(), self.packages).await?
            }
        };
        let has_tests = self.packages.iter().any(|p| !p.code().tests.is_empty());
        if !run || (!has_tests && self.opts.tests != TestMode::Always) {
            return Ok(());
        }
        let report =
            crate::run::test::run::run(session, self.packages, &self.opts.test_options).await?;
        if !report.success() {
            return Err(Error::TestsFailed(Box::new(crate::error::TestsFailed {
                report,
            })));
        }
        self.done.tests = Some(report);
        Ok(())
    }

    /// The last applied migration of each package after the run: the state before, moved on by what ran (new
    /// history rows are the newest of their package, in the order they ran).
    fn to_state(&self) -> serde_json::Value {
        let mut state = self.from_state.clone();
        if let Some(map) = state.as_object_mut() {
            for r in &self.done.ran {
                map.insert(r.package.clone(), serde_json::Value::String(r.name.clone()));
            }
        }
        state
    }

    fn report(&self, plan: &Plan, outcome: Outcome, started: Instant) -> UpReport {
        let done = &self.done;
        let mut transitions = Vec::new();
        for p in &plan.packages {
            let count = done.ran.iter().filter(|r| r.package == p.name).count();
            if count == 0 {
                continue;
            }
            let to = done
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
        let list = |ids: &[MigrationId]| {
            ids.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !plan.missing().is_empty() {
            warnings.push(format!(
                "applied migrations with no file (allowed by --allow-missing): {}",
                list(plan.missing())
            ));
        }
        if !plan.out_of_order().is_empty() {
            warnings.push(format!(
                "applied out of order (allowed by --allow-out-of-order): {}",
                list(plan.out_of_order())
            ));
        }
        if let Some(s) = &done.stopped_before {
            let no_transaction = plan
                .steps
                .iter()
                .any(|st| st.no_transaction && MigrationId::new(&st.package, &st.name) == *s);
            warnings.push(if no_transaction {
                format!(
                    "dry run stopped before {s}: a no-transaction migration cannot be rolled back (managed code and \
                     tests were not run)"
                )
            } else {
                format!(
                    "dry run stopped before {s}: the run commits just before it (an earlier migration adds an enum \
                     value a later one uses), which a dry run cannot do (managed code and tests were not run)"
                )
            });
        }
        warnings.extend(done.interrupted.iter().map(|id| {
            format!(
                "run #{id} never finished (strata or its connection was killed, or the server stopped): marked \
                 interrupted; what it committed is resumed from"
            )
        }));
        warnings.extend(done.repairs.iter().cloned());
        warnings.extend(done.code.retried.iter().map(|r| {
            format!("managed code ordered by retry (the dependency graph missed a reference): {r}")
        }));
        UpReport {
            outcome,
            run_id: self.run.id(),
            migrations: done.ran.clone(),
            packages: transitions,
            accepted_changes: plan
                .accepted_changes
                .iter()
                .map(|(p, n)| MigrationId::new(p, n).to_string())
                .collect(),
            repeatables: done.repeatables.clone(),
            stopped_before: done.stopped_before.as_ref().map(ToString::to_string),
            warnings,
            lint: done.lint.clone(),
            lock_retries: 0,
            resumed: done.resumed.clone(),
            code: done.code.clone(),
            tests: done.tests.clone(),
            roles: done.roles.actions.clone(),
            duration_ms: ms(started.elapsed()),
        }
    }
}
