//! `up`: apply every pending migration of a project, atomically.
//!
//! Order of work inside the deploy transaction:
//! 1. take the deploy lock (waiting for other deployers), apply session settings (one pipelined round trip with
//!    the session's facts and the history probe, see `Session::open`);
//! 2. read the history (after the lock, so a deployer that waited sees what the previous one applied);
//! 3. plan and refuse changed / missing / out-of-order migrations unless allowed;
//! 4. create missing package roles and schemas, grant what `uses` asks for ([`crate::roles`]);
//! 5. run Strata's own pending migrations (its history tables), then each package's, packages in `uses` order,
//!    each migration recorded (checksum, up and down SQL, duration) right after it ran, as the package role,
//!    while the managed objects of the previous deploy are still installed;
//! 6. bring managed code up to date, all packages in one dependency graph ([`crate::managed`]);
//! 7. run the tests when something changed ([`crate::testing`]); a failure rolls everything back;
//! 8. record the run, commit (or roll back for `--dry-run`).
//!
//! The run's row in `strata.run` is written just before the first record that points at it
//! (`history::RunRow`). A run with nothing to do writes only its `noop` run row, in one statement at the end, and
//! commits without waiting for the WAL flush (`synchronous_commit = off` for that transaction: the log keeps every
//! run, and a crash can only lose the record of a run that did nothing). It costs seven round trips after
//! connecting: open + lock, the applied migrations, package roles and grants, the package rows check, the managed
//! objects, the run row, and the commit (plus one for the catalog state of recorded managed objects and one for the tests' hash, when the
//! packages have them).
//!
//! A migration with a no-transaction section splits the run: the open transaction commits, the section's statements
//! run one by one in autocommit, and a new transaction starts for what follows.
//!
//! Guard-rails (see `crate::guard`): a default `lock_timeout`, retries after lock timeouts, statements that cannot
//! run in a transaction refused before anything runs, lint errors refused (`crate::lint`), and a failed
//! no-transaction migration resumed after the statements that committed.

use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::time::Instant;

use pgstrata_sql::migration::Section;
use postgres_protocol::escape::escape_literal;
use tokio_postgres::types::Type;

use crate::error::{Error, Result};
use crate::exec::{Database, Notice, run_split};
use crate::guard::{self, LockRetry, Resume};
use crate::history;
use crate::lint::{LintRefused, LintReport};
use crate::managed::CodeReport;
use crate::observe::{Event, Observer};
use crate::package::{Migration, Package, Script};
use crate::plan::{Plan, PlanOptions};
use crate::project::Project;
use crate::roles;
use crate::session::{Session, SessionSettings, ms};
use crate::testing::{TestMode, TestOptions, TestReport};

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

/// A failed no-transaction migration that `up` resumed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResumedMigration {
    /// `package:name`.
    pub migration: String,
    /// Statements skipped (they had committed).
    pub skipped_statements: usize,
    /// The failed run that recorded them.
    pub failed_run: i64,
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
    let mut settings = opts.session.clone();
    if settings.lock_timeout.is_none() {
        settings.lock_timeout = Some(guard::DEFAULT_LOCK_TIMEOUT.to_string());
    }
    let mut retries = 0;
    loop {
        let error = match up_once(db, project, opts, &settings, observer).await {
            Ok(mut report) => {
                report.lock_retries = retries;
                return Ok(report);
            }
            Err(e) => e,
        };
        if error.sqlstate() == Some("55P03") && retries < opts.lock_retry.retries {
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
        .and_then(|m| m.rsplit_once(':'))
        .and_then(|(pkg, _)| project.package(pkg))
        .map(|p| p.schema().to_string());
    let offset = sql.span.offset();
    let text = sql.file.inner().clone();
    let mut hints: Vec<String> = sql.hint.take().into_iter().collect();
    if sql.sqlstate == "55P03" {
        hints = vec![
            guard::explain_lock_timeout(
                db.client(),
                &text,
                offset,
                schema.as_deref(),
                settings.lock_timeout.as_deref().unwrap_or("?"),
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
    let mut session = Session::open(db, settings.clone(), observer).await?;
    let mut run = UpRun {
        packages: &packages,
        opts,
        lint: LintReport::default(),
        resume: HashMap::new(),
        resumed: Vec::new(),
        lock_timeout: settings
            .lock_timeout
            .clone()
            .filter(|t| crate::manifest::parse_duration(t).is_ok_and(|ms| ms > 0)),
        run: history::RunRow::new("up"),
        history_ready: false,
        from_state: serde_json::Value::Null,
        ran: Vec::new(),
        repeatables: Vec::new(),
        committed: Vec::new(),
        uncommitted: Vec::new(),
        recorded_packages: Default::default(),
        role_in_effect: None,
        stopped_before: None,
        pending_records: Vec::new(),
        code: CodeReport::default(),
        tests: None,
        roles: roles::Prepared::default(),
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
                    | Error::Lint(_)
                    | Error::Source(_)
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
                        run.run.id()
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
    /// What the linter found in the plan.
    lint: LintReport,
    /// Failed no-transaction migrations to resume, by `package:name`.
    resume: HashMap<String, Resume>,
    /// Resumed migrations: (`package:name`, statements skipped, run that recorded them).
    resumed: Vec<(String, usize, i64)>,
    /// The session's lock_timeout, when one applies (CONCURRENTLY statements run without it).
    lock_timeout: Option<String>,
    /// The run's row in `strata.run`, written once something is recorded.
    run: history::RunRow,
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
    code: CodeReport,
    tests: Option<TestReport>,
    roles: roles::Prepared,
    /// Applied migrations of the open transaction, not yet written to `strata.migration`.
    pending_records: Vec<PendingRecord>,
    /// The package role set with `SET LOCAL ROLE` in the open transaction: consecutive migrations of one package
    /// keep it (two round trips per migration saved), Strata's own queries reset it first.
    role_in_effect: Option<String>,
}

/// A migration that ran, to be recorded.
struct PendingRecord {
    package: String,
    name: String,
    path: String,
    checksum: String,
    up_sql: String,
    down_sql: Option<String>,
    no_transaction: bool,
    duration_ms: f64,
}

impl UpRun<'_> {
    async fn execute(
        &mut self,
        session: &mut Session<'_>,
        observer: &mut dyn Observer,
    ) -> Result<(Plan, Outcome)> {
        let client = session.db.client();
        self.history_ready = session.history_exists();
        let applied = if self.history_ready {
            history::read_applied(client).await?
        } else {
            Vec::new()
        };
        self.from_state = history::state_of(&applied);
        if self.history_ready && !self.opts.dry_run {
            self.run.allow(self.from_state.clone());
        }
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
        // Package roles and schemas exist before migrations run as those roles.
        self.roles = roles::prepare(session.db.client(), self.packages, self.history_ready).await?;
        // Its notices ("already a member", …) are not a migration's.
        session.notices();
        for p in self.packages {
            if roles::role_of(p).is_some() {
                session.know_schema(p.schema());
            }
        }
        // Guard-rails, before anything runs.
        guard::check_transactional(self.packages, &plan)?;
        let version = session.server_version();
        self.lint = crate::lint::lint_steps(self.packages, &plan, Some(&version), &[])?;
        observer.event(Event::Linted { report: &self.lint });
        if self.lint.errors > 0 && !self.opts.allow_lint_errors {
            return Err(Error::Lint(Box::new(LintRefused {
                report: self.lint.clone(),
            })));
        }
        if self.history_ready && !self.opts.no_resume && !self.opts.dry_run {
            self.resume = guard::resume_points(session.db.client(), self.packages, &plan).await?;
        }
        let repeatable_pending = plan
            .repeatables
            .iter()
            .any(|r| r.state != crate::repeatable::RepeatableState::Applied);
        let repeatable_no_tx = plan
            .repeatables
            .iter()
            .any(|r| r.no_transaction && r.state != crate::repeatable::RepeatableState::Applied);
        if (plan.steps.iter().any(|s| s.no_transaction) || repeatable_no_tx) && !self.opts.dry_run {
            session.hold_across_commits().await?;
        }
        if !plan.steps.is_empty() || repeatable_pending || !plan.accepted_changes.is_empty() {
            // The run's row comes first: every record of the run points at it.
            self.run.ensure(session.db.client()).await?;
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
        self.reset_role(session).await?;
        self.flush_records(session).await?;
        // interop: repeatable scripts whose text changed run after every versioned migration.
        if self.stopped_before.is_none() {
            let (ran, stopped) = crate::repeatable::apply_pending(
                session,
                self.packages,
                &plan.repeatables,
                self.run.id(),
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
        if self.stopped_before.is_none() {
            session.ensure_transaction().await?;
            if !self.history_ready {
                // A dry run that applied nothing on a fresh database: there is no history to compare code with.
                self.history_ready = history::history_exists(session.db.client()).await?;
            }
            // Every package gets its row first: managed objects reference it.
            crate::managed::record_packages(
                session.db.client(),
                self.packages,
                &self.roles.granted,
                false,
            )
            .await?;
            self.code =
                crate::managed::apply::deploy(session, self.packages, &mut self.run).await?;
            if !self.ran.is_empty() || !self.code.is_noop() {
                // Migrations and managed code ran as package roles: nothing of theirs may be outside their schemas.
                roles::check_containment(session.db.client(), self.packages).await?;
            }
            self.run_tests(session).await?;
            if self.tests.is_some() {
                crate::managed::record_packages(
                    session.db.client(),
                    self.packages,
                    &self.roles.granted,
                    true,
                )
                .await?;
            }
        }
        let changed = !self.ran.is_empty()
            || !plan.accepted_changes.is_empty()
            || !self.code.is_noop()
            || !self.roles.actions.is_empty();
        if self.opts.dry_run {
            session.rollback().await?;
            return Ok((plan, Outcome::DryRun));
        }
        session.ensure_transaction().await?;
        let mut recorded_whole = false;
        if changed {
            self.run.ensure(session.db.client()).await?;
        } else if self.run.id().is_none() {
            // The run log keeps runs that found nothing to do too, at the cost of one small asynchronous commit.
            let state = self.to_state();
            self.run.record_noop(session.db.client(), &state).await?;
            recorded_whole = true;
        } else {
            // Nothing changed, but bookkeeping was refreshed (managed objects whose catalog rows moved): not worth
            // waiting for the WAL flush (a crash loses at most that refresh, done again next time).
            session
                .db
                .client()
                .batch_execute("SET LOCAL synchronous_commit = off")
                .await
                .map_err(Error::db("recording a run with nothing to do"))?;
        }
        if let Some(id) = self.run.id().filter(|_| !recorded_whole) {
            let to_state = self.to_state();
            let detail = (!self.resumed.is_empty()).then(|| {
                serde_json::json!({
                    "resumed": self.resumed.iter().map(|(m, skipped, run)| serde_json::json!({
                        "migration": m, "skipped_statements": skipped, "failed_run": run,
                    })).collect::<Vec<_>>(),
                })
            });
            history::finish_run(
                session.db.client(),
                id,
                if changed { "success" } else { "noop" },
                Some(&to_state),
                detail.as_ref(),
                None,
            )
            .await?;
        }
        session.commit().await?;
        observer.event(Event::Committed);
        Ok((
            plan,
            if changed {
                Outcome::Applied
            } else {
                Outcome::Noop
            },
        ))
    }

    /// Run the tests when asked to, or (by default) when the deploy changed something or the tests changed.
    async fn run_tests(&mut self, session: &mut Session<'_>) -> Result<()> {
        let run = match self.opts.tests {
            TestMode::Skip => false,
            TestMode::Always => true,
            TestMode::Auto => {
                !self.ran.is_empty()
                    || !self.code.is_noop()
                    || !self.roles.actions.is_empty()
                    || crate::managed::tests_changed(session.db.client(), self.packages).await?
            }
        };
        let has_tests = self.packages.iter().any(|p| !p.code().tests.is_empty());
        if !run || (!has_tests && self.opts.tests != TestMode::Always) {
            return Ok(());
        }
        let report =
            crate::testing::run::run(session, self.packages, &self.opts.test_options).await?;
        if !report.success() {
            return Err(Error::TestsFailed(Box::new(crate::testing::TestsFailed {
                report,
            })));
        }
        self.tests = Some(report);
        Ok(())
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
        // Resuming: statements the failed run committed, in order; skipped while they lead the migration.
        let resume = self.resume.get(&label).cloned();
        let mut skip: VecDeque<String> = resume
            .as_ref()
            .map(|r| r.statements.iter().cloned().collect())
            .unwrap_or_default();
        // Statements of this migration that are committed (they stay if it fails), and those run in the open
        // transaction (they commit with it).
        let mut committed_here: Vec<String> = Vec::new();
        let mut open_here: Vec<String> = Vec::new();
        for section in script.sections() {
            let all = guard::section_statements(script, section);
            let text_of = |r: &Range<usize>| script.text()[r.clone()].to_string();
            let mut first = 0;
            while first < all.len() && skip.front() == Some(&text_of(&all[first].0)) {
                skip.pop_front();
                first += 1;
            }
            if first > 0 {
                committed_here.extend(all[..first].iter().map(|(r, _)| text_of(r)));
                if let Some(r) = &resume {
                    observer.event(Event::Resumed {
                        migration: &label,
                        skipped: first,
                        run_id: r.run_id,
                    });
                    self.resumed.push((label.clone(), first, r.run_id));
                }
            }
            if first < all.len() {
                // Once a statement runs, the rest of the migration runs too.
                skip.clear();
            } else if !all.is_empty() {
                continue;
            }
            let commits_open = section.no_transaction && session.in_transaction();
            let result = self
                .run_one_section(session, pkg, script, section, &all[first..], &label)
                .await;
            if commits_open {
                committed_here.append(&mut open_here);
            }
            match result {
                Ok(n) => {
                    statements += n;
                    let ran = all[first..].iter().map(|(r, _)| text_of(r));
                    if section.no_transaction {
                        committed_here.extend(ran);
                    } else {
                        open_here.extend(ran);
                    }
                }
                Err(mut e) => {
                    if let Error::Sql(sql) = &mut e {
                        let mut all_committed = committed_here;
                        all_committed.append(&mut sql.committed_statements);
                        sql.committed_statements = all_committed;
                    }
                    return Err(e);
                }
            }
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
        statements: &[(Range<usize>, pgstrata_sql::Statement)],
        label: &str,
    ) -> Result<usize> {
        if section.no_transaction {
            if session.in_transaction() {
                self.flush_records(session).await?;
                session.leave_transaction().await?;
                self.committed.append(&mut self.uncommitted);
            } else {
                session.leave_transaction().await?;
            }
        } else {
            session.ensure_transaction().await?;
        }
        if !session.in_transaction() {
            // A SET LOCAL ROLE ended with its transaction.
            self.role_in_effect = None;
        }
        let role = roles::role_of(pkg);
        if self.role_in_effect != role {
            // Schemas and extensions are created as the login.
            self.reset_role(session).await?;
        }
        session
            .enter_package(pkg.schema(), pkg.extensions())
            .await?;
        let in_transaction = session.in_transaction();
        if role.is_some() && self.role_in_effect != role {
            session
                .db
                .client()
                .batch_execute(&roles::set_role_sql(role.as_deref(), in_transaction))
                .await
                .map_err(Error::db(format!(
                    "switching to the role of {}",
                    pkg.name()
                )))?;
            if in_transaction {
                self.role_in_effect = role.clone();
            }
        }
        let result = self
            .run_statements(session, pkg, script, section, statements, label)
            .await;
        if role.is_some() && !session.in_transaction() {
            // Outside a transaction the role was set for the session: back to the login at once.
            self.role_in_effect = None;
            session
                .db
                .client()
                .batch_execute("RESET ROLE")
                .await
                .map_err(Error::db("resetting the role"))?;
        }
        result
    }

    /// Back to the login's role, if a package role is in effect (before Strata's own queries).
    async fn reset_role(&mut self, session: &mut Session<'_>) -> Result<()> {
        if self.role_in_effect.take().is_some() && session.in_transaction() {
            session
                .db
                .client()
                .batch_execute("RESET ROLE")
                .await
                .map_err(Error::db("resetting the role"))?;
        }
        Ok(())
    }

    /// The statements of one section (from the first one a resume did not skip), in or outside a transaction.
    async fn run_statements(
        &mut self,
        session: &mut Session<'_>,
        pkg: &Package,
        script: &Script,
        section: &Section,
        statements: &[(Range<usize>, pgstrata_sql::Statement)],
        label: &str,
    ) -> Result<usize> {
        let fail = |f: Box<crate::exec::SectionFailure>, committed: Vec<String>| -> Error {
            let mut error = f.error;
            error.migration = Some(label.to_string());
            error.committed_statements = committed;
            error.into()
        };
        if statements.is_empty() {
            return Ok(0);
        }
        if !section.no_transaction {
            // One transaction: the statements (earlier ones may have been skipped by a resume) in one message,
            // as split already: parsing each migration again cost a tenth of a fresh deploy's CPU.
            let ranges: Vec<Range<usize>> = statements.iter().map(|(r, _)| r.clone()).collect();
            return match run_split(session.db.client(), script, &ranges, false).await {
                Ok(o) => Ok(o.statements),
                Err(f) => Err(fail(f, Vec::new())),
            };
        }
        // Outside a transaction, statement by statement; CONCURRENTLY statements run without lock_timeout (their
        // waits block nobody, and a timeout would leave an invalid index behind).
        let section_text = section.text(script.text());
        let mut count = 0;
        let mut committed = Vec::new();
        for (range, statement) in statements {
            let relax =
                self.lock_timeout.is_some() && guard::is_concurrent(section_text, statement);
            if relax {
                session
                    .db
                    .client()
                    .batch_execute("SET lock_timeout = 0")
                    .await
                    .map_err(Error::db(
                        "lifting lock_timeout for a CONCURRENTLY statement",
                    ))?;
            }
            let result = run_split(
                session.db.client(),
                script,
                std::slice::from_ref(range),
                true,
            )
            .await;
            if relax && let Some(timeout) = &self.lock_timeout {
                session
                    .db
                    .client()
                    .batch_execute(&format!("SET lock_timeout = {}", escape_literal(timeout)))
                    .await
                    .map_err(Error::db("restoring lock_timeout"))?;
            }
            let result = match result {
                Ok(o) => guard::check_index_valid(
                    session.db.client(),
                    script,
                    range.clone(),
                    statement,
                    pkg.schema(),
                )
                .await
                .map(|()| o)
                .map_err(|error| {
                    Box::new(crate::exec::SectionFailure {
                        error,
                        committed: Vec::new(),
                    })
                }),
                Err(f) => Err(f),
            };
            match result {
                Ok(o) => {
                    count += o.statements;
                    committed.push(script.text()[range.clone()].to_string());
                }
                Err(f) => {
                    committed.extend(f.committed.iter().cloned());
                    return Err(fail(f, committed));
                }
            }
        }
        Ok(count)
    }

    /// Record an applied migration (and its package, the first time in this run).
    async fn record(
        &mut self,
        session: &mut Session<'_>,
        package_index: usize,
        m: &Migration,
        duration_ms: f64,
    ) -> Result<()> {
        if !self.history_ready || !self.recorded_packages.contains(&package_index) {
            // Strata's bookkeeping runs as the login.
            self.reset_role(session).await?;
        }
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
                self.run.allow(self.from_state.clone());
                self.run.ensure(client).await?;
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
        self.pending_records.push(PendingRecord {
            package: pkg.name().to_string(),
            name: m.name().to_string(),
            path: m.path().to_string(),
            checksum: m.checksum().to_string(),
            up_sql: m.up_sql().to_string(),
            down_sql: m.down_sql(),
            no_transaction: m.no_transaction(),
            duration_ms,
        });
        if !session.in_transaction() {
            // A no-transaction migration has committed: its record must not wait for a later commit.
            self.flush_records(session).await?;
        }
        Ok(())
    }

    /// Write the pending records to `strata.migration` (and the log) in one statement: once per transaction
    /// segment, before it commits, instead of a round trip per migration.
    async fn flush_records(&mut self, session: &mut Session<'_>) -> Result<()> {
        if self.pending_records.is_empty() {
            return Ok(());
        }
        self.reset_role(session).await?;
        let records = std::mem::take(&mut self.pending_records);
        let text = |f: fn(&PendingRecord) -> &str| records.iter().map(f).collect::<Vec<&str>>();
        let down_sql: Vec<Option<&str>> = records.iter().map(|r| r.down_sql.as_deref()).collect();
        let no_transaction: Vec<bool> = records.iter().map(|r| r.no_transaction).collect();
        let duration_ms: Vec<f64> = records.iter().map(|r| r.duration_ms).collect();
        session
            .db
            .client()
            .query_typed(
                // Identities follow ORDER BY ord, so `id` keeps the order the migrations ran in.
                "WITH m AS (
                   INSERT INTO strata.migration
                          (package, name, path, checksum, up_sql, down_sql, no_transaction, duration_ms,
                           strata_version, run_id)
                   SELECT package, name, path, checksum, up_sql, down_sql, no_transaction, duration_ms, $9, $10
                     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
                                 $7::boolean[], $8::float8[])
                          WITH ORDINALITY
                          AS r (package, name, path, checksum, up_sql, down_sql, no_transaction, duration_ms, ord)
                    ORDER BY ord
                   RETURNING package, name, checksum, duration_ms)
                 INSERT INTO strata.migration_log (run_id, package, name, action, checksum, duration_ms)
                 SELECT $10, package, name, 'apply', checksum, duration_ms FROM m",
                &[
                    (&text(|r| &r.package), Type::TEXT_ARRAY),
                    (&text(|r| &r.name), Type::TEXT_ARRAY),
                    (&text(|r| &r.path), Type::TEXT_ARRAY),
                    (&text(|r| &r.checksum), Type::TEXT_ARRAY),
                    (&text(|r| &r.up_sql), Type::TEXT_ARRAY),
                    (&down_sql, Type::TEXT_ARRAY),
                    (&no_transaction, Type::BOOL_ARRAY),
                    (&duration_ms, Type::FLOAT8_ARRAY),
                    (&crate::VERSION, Type::TEXT),
                    (&self.run.id(), Type::INT8),
                ],
            )
            .await
            .map_err(Error::db("recording applied migrations in strata.migration"))?;
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
        let run_id = self.run.ensure(session.db.client()).await?;
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
                    &run_id,
                ],
            )
            .await
            .map_err(Error::db("recording an accepted change"))?;
        Ok(())
    }

    /// The last applied migration of each package after the run: the state before, moved on by what ran (new
    /// history rows are the newest of their package, in the order they ran).
    fn to_state(&self) -> serde_json::Value {
        let mut state = self.from_state.clone();
        if let Some(map) = state.as_object_mut() {
            for r in &self.ran {
                map.insert(r.package.clone(), serde_json::Value::String(r.name.clone()));
            }
        }
        state
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
                "dry run stopped before {s}: a no-transaction migration cannot be rolled back (managed code and \
                 tests were not run)"
            ));
        }
        warnings.extend(self.code.retried.iter().map(|r| {
            format!("managed code ordered by retry (the dependency graph missed a reference): {r}")
        }));
        UpReport {
            outcome,
            run_id: self.run.id(),
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
            lint: self.lint.clone(),
            lock_retries: 0,
            resumed: self
                .resumed
                .iter()
                .map(|(m, skipped, run)| ResumedMigration {
                    migration: m.clone(),
                    skipped_statements: *skipped,
                    failed_run: *run,
                })
                .collect(),
            code: self.code.clone(),
            tests: self.tests.clone(),
            roles: self.roles.actions.clone(),
            duration_ms: ms(started.elapsed()),
        }
    }
}
