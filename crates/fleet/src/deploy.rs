//! `up` over a fleet: canaries first, then every other target, `jobs` at a time, each target with its own
//! connection and its own deploy ([`pgstrata::up`]: the same TLS, connect timeout, lock timeout and guard-rails as
//! a single deploy), bounded by `--target-timeout`; a failure policy decides whether new targets still start.
//!
//! All targets are driven concurrently on the caller's task (deploys mostly wait for their servers); the outcomes
//! are recorded by a writer running beside them ([`crate::state`]).
//!
//! Tenant schemas all live in one database: a connection whose deploy succeeded is reset (`DISCARD ALL`: settings,
//! temporary tables, prepared statements, advisory locks and listeners of the session are gone) and deploys the
//! next tenant, so a run of N tenants opens `jobs` connections, not N, and their backends' catalog caches stay
//! warm. A connection whose deploy failed, timed out or could not be reset is closed.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use pgstrata::{Database, Event, Project, UpOptions};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::report::{
    Counts, FleetEvent, FleetObserver, FleetReport, TargetError, TargetOutcome, TargetState,
};
use crate::state::{Recorded, Recorder, RunHeader, StateStore, Update, new_run_id};
use crate::targets::{Target, Targets};

/// Which targets go first, alone: if one of them fails, nothing else starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Canary {
    /// The first N targets (in the order listed).
    First(usize),
    /// The targets of a group, tag or name.
    Group(String),
}

impl std::str::FromStr for Canary {
    type Err = std::convert::Infallible;

    /// A number is a count; anything else a group, tag or target name.
    fn from_str(s: &str) -> std::result::Result<Canary, Self::Err> {
        Ok(match s.parse::<usize>() {
            Ok(n) => Canary::First(n),
            Err(_) => Canary::Group(s.to_string()),
        })
    }
}

/// What a failed target does to the rest of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnFailure {
    /// Start no new target after the first failure (those running finish).
    #[default]
    Stop,
    /// Go on with every other target (up to `max_failures`).
    Continue,
}

/// How a fleet deploys.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// Deploys at the same time (at least 1).
    pub jobs: usize,
    /// Targets deployed first, alone.
    pub canary: Option<Canary>,
    /// What a failure does to the rest.
    pub on_failure: OnFailure,
    /// Start no new target once this many have failed (with [`OnFailure::Continue`]).
    pub max_failures: Option<usize>,
    /// Abandon a target whose deploy (connection included) takes longer.
    pub target_timeout: Option<Duration>,
    /// Each target's deploy.
    pub up: UpOptions,
}

impl Default for FleetOptions {
    fn default() -> FleetOptions {
        FleetOptions {
            jobs: default_jobs(),
            canary: None,
            on_failure: OnFailure::Stop,
            max_failures: None,
            target_timeout: None,
            up: UpOptions::default(),
        }
    }
}

/// The number of CPU cores (the default of `--jobs`).
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

/// Deploy `project` to every target (or, with `resume`, to the targets of that run that did not succeed), recording
/// each outcome in `store`. Targets that are tenant schemas get the project's last package deployed into them, after
/// the database's own packages (the others, and Strata's tables) are brought up to date.
///
/// A target's failure is an outcome, not an error: the error is for what stops the run as a whole (the control
/// database, the tenant database's own packages, a run id that does not exist).
pub async fn up(
    project: &Project,
    targets: &Targets,
    opts: &FleetOptions,
    store: &StateStore,
    resume: Option<&str>,
    observer: &mut dyn FleetObserver,
) -> Result<FleetReport> {
    let started = Instant::now();
    if opts.jobs == 0 {
        return Err(Error::usage("--jobs must be at least 1", None));
    }
    if targets.are_tenants() && project.packages().is_empty() {
        return Err(Error::usage(
            "tenant schemas need a package to deploy into them",
            None,
        ));
    }
    let ordered = order(targets.list(), opts.canary.as_ref())?;
    let mut warnings = Vec::new();
    let (mut recorder, run_id, attempt, todo, earlier) = match resume {
        None => {
            let header = RunHeader {
                run: new_run_id(),
                command: "up".into(),
                source: targets.source().to_string(),
                packages: project
                    .packages()
                    .iter()
                    .map(|p| p.name().to_string())
                    .collect(),
                started_at: Utc::now(),
                strata_version: pgstrata::VERSION.to_string(),
                targets: ordered.list.iter().map(|t| t.name.clone()).collect(),
            };
            let recorder = Recorder::begin(store, &header).await?;
            let todo: Vec<Slot<'_>> = ordered
                .list
                .iter()
                .enumerate()
                .map(|(i, t)| Slot {
                    name: t.name.clone(),
                    target: Some(t),
                    canary: i < ordered.canaries,
                })
                .collect();
            (recorder, header.run, 1, todo, 0)
        }
        Some(run) => {
            let (recorder, recorded) = Recorder::resume(store, run).await?;
            let source = targets.source().to_string();
            if recorded.source != source {
                warnings.push(format!(
                    "run {run} started with {}, resumed with {source}: its targets are matched by name",
                    recorded.source
                ));
            }
            let (todo, earlier) = resumed(&recorded, &ordered);
            (recorder, run.to_string(), recorded.attempts, todo, earlier)
        }
    };
    let recorded_in = store.describe();
    observer.event(FleetEvent::Started {
        run_id: &run_id,
        attempt,
        total: todo.len(),
        earlier,
        canaries: todo.iter().filter(|s| s.canary).count(),
        jobs: opts.jobs,
        recorded_in: &recorded_in,
    });
    if targets.are_tenants()
        && let Some(first) = todo.iter().find_map(|s| s.target)
    {
        shared_packages(project, first, opts, observer).await?;
    }

    let (tx, rx) = mpsc::unbounded_channel();
    let observer = RefCell::new(observer);
    let run = Run {
        project,
        opts,
        attempt,
        observer: &observer,
        updates: tx,
        idle: RefCell::new(Vec::new()),
    };
    let (outcomes, written) = tokio::join!(run.all(todo), write_updates(&mut recorder, rx));
    if let Err(e) = written {
        warnings.push(format!(
            "some outcomes could not be recorded ({e}): a resumed run deploys those targets again, which is safe"
        ));
    }
    if let Err(e) = recorder.finish(attempt).await {
        warnings.push(format!("could not record the end of the run: {e}"));
    }
    let mut counts = Counts {
        earlier,
        ..Counts::default()
    };
    for o in &outcomes {
        match o.state {
            TargetState::Succeeded => {
                counts.succeeded += 1;
                if !o.migrations.is_empty() || o.code_changes > 0 {
                    counts.changed += 1;
                }
            }
            TargetState::Failed => counts.failed += 1,
            TargetState::Abandoned => counts.abandoned += 1,
            TargetState::Skipped | TargetState::Pending | TargetState::Running => {
                counts.skipped += 1
            }
        }
    }
    Ok(FleetReport {
        run_id,
        attempt,
        recorded_in,
        targets: outcomes,
        counts,
        warnings,
        duration_ms: started.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The targets in run order (canaries first) and how many canaries lead.
struct Ordered<'t> {
    list: Vec<&'t Target>,
    canaries: usize,
}

fn order<'t>(list: &'t [Target], canary: Option<&Canary>) -> Result<Ordered<'t>> {
    let (first, rest): (Vec<&Target>, Vec<&Target>) = match canary {
        None => (Vec::new(), list.iter().collect()),
        Some(Canary::First(n)) => {
            let n = (*n).min(list.len());
            (list[..n].iter().collect(), list[n..].iter().collect())
        }
        Some(Canary::Group(g)) => {
            let (c, r): (Vec<&Target>, Vec<&Target>) = list.iter().partition(|t| t.matches(g));
            if c.is_empty() {
                return Err(Error::usage(
                    format!("--canary {g}: no target has that name, group or tag"),
                    Some("--canary takes a number of targets, or a group, tag or target name"),
                ));
            }
            (c, r)
        }
    };
    let canaries = first.len();
    Ok(Ordered {
        list: first.into_iter().chain(rest).collect(),
        canaries,
    })
}

/// A target to deploy in this attempt (None: recorded by the run, but no longer among the targets).
struct Slot<'t> {
    name: String,
    target: Option<&'t Target>,
    canary: bool,
}

/// The slots of a resumed run: its recorded targets that did not succeed, in its order (canaries chosen among
/// them), and how many did succeed.
fn resumed<'t>(recorded: &Recorded, ordered: &Ordered<'t>) -> (Vec<Slot<'t>>, usize) {
    let canaries: Vec<&str> = ordered.list[..ordered.canaries]
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    let mut earlier = 0;
    let mut todo: Vec<Slot<'t>> = Vec::new();
    for name in &recorded.targets {
        if recorded.states.get(name) == Some(&TargetState::Succeeded) {
            earlier += 1;
            continue;
        }
        let target = ordered.list.iter().copied().find(|t| t.name == *name);
        todo.push(Slot {
            name: name.clone(),
            target,
            canary: canaries.contains(&name.as_str()),
        });
    }
    // Canaries first, keeping the run's order otherwise.
    todo.sort_by_key(|s| !s.canary);
    (todo, earlier)
}

/// Bring the database's own packages (Strata's tables, the packages the tenant package uses) up to date before its
/// tenant schemas, which may not change them.
async fn shared_packages(
    project: &Project,
    first: &Target,
    opts: &FleetOptions,
    observer: &mut dyn FleetObserver,
) -> Result<()> {
    let location = first.connect.redacted();
    observer.event(FleetEvent::SharedPackages {
        location: &location,
    });
    let packages = project.packages();
    let shared = Project::new(packages[..packages.len() - 1].to_vec())?;
    let mut db = Database::connect(&first.connect).await?;
    pgstrata::up(&mut db, &shared, &opts.up, &mut pgstrata::Quiet).await?;
    Ok(())
}

/// The project deployed into tenant schema `schema`: the last package of `project` deployed into it, after the
/// others.
pub(crate) fn tenant_project(project: &Project, schema: &str) -> pgstrata::Result<Project> {
    let packages = project.packages();
    let Some((tenant, shared)) = packages.split_last() else {
        return Project::new(Vec::new());
    };
    let mut list = shared.to_vec();
    list.push(tenant.in_schema(schema)?);
    Project::new(list)
}

/// What a reusable connection was made with: where to (without password) and with which password, so a target is
/// never served by a connection its own settings would not have made.
#[derive(PartialEq, Eq)]
struct ConnectionKey {
    location: String,
    password: Option<String>,
}

impl ConnectionKey {
    fn of(target: &Target) -> ConnectionKey {
        ConnectionKey {
            location: target.connect.redacted(),
            password: target.connect.password().map(str::to_string),
        }
    }
}

/// One attempt's deploys.
struct Run<'a, 'o> {
    project: &'a Project,
    opts: &'a FleetOptions,
    attempt: u32,
    observer: &'a RefCell<&'o mut dyn FleetObserver>,
    updates: mpsc::UnboundedSender<Update>,
    /// Reset connections of tenant deploys that went through, by where they connect to, for the next tenant.
    idle: RefCell<Vec<(ConnectionKey, Database)>>,
}

impl Run<'_, '_> {
    /// Deploy the slots: the canaries, then (if they all succeeded) the rest. Outcomes in the slots' order.
    async fn all(self, slots: Vec<Slot<'_>>) -> Vec<TargetOutcome> {
        let canaries = slots.iter().filter(|s| s.canary).count();
        let mut outcomes: Vec<Option<TargetOutcome>> = (0..slots.len()).map(|_| None).collect();
        let mut failures = 0;
        let mut stop: Option<String> = None;
        if canaries > 0 {
            self.phase(&slots, 0..canaries, &mut outcomes, &mut failures, &mut stop)
                .await;
            let success = outcomes[..canaries]
                .iter()
                .flatten()
                .all(|o| o.state == TargetState::Succeeded);
            self.observer
                .borrow_mut()
                .event(FleetEvent::CanariesDone { success });
            if !success {
                stop = Some("a canary failed".into());
            }
        }
        self.phase(
            &slots,
            canaries..slots.len(),
            &mut outcomes,
            &mut failures,
            &mut stop,
        )
        .await;
        drop(self.updates);
        outcomes.into_iter().flatten().collect()
    }

    /// Deploy `range` of the slots, `jobs` at a time, until done or stopped (the rest are skipped).
    async fn phase(
        &self,
        slots: &[Slot<'_>],
        range: std::ops::Range<usize>,
        outcomes: &mut [Option<TargetOutcome>],
        failures: &mut usize,
        stop: &mut Option<String>,
    ) {
        let mut queue: VecDeque<usize> = range.collect();
        let mut running = FuturesUnordered::new();
        loop {
            while stop.is_none() && running.len() < self.opts.jobs {
                let Some(i) = queue.pop_front() else {
                    break;
                };
                let slot = &slots[i];
                let Some(target) = slot.target else {
                    let outcome = self.missing(slot);
                    self.finished(&outcome, None);
                    *failures += 1;
                    outcomes[i] = Some(outcome);
                    continue;
                };
                let started_at = Utc::now();
                let _ = self.updates.send(Update {
                    target: slot.name.clone(),
                    state: TargetState::Running,
                    attempt: self.attempt,
                    started_at: Some(started_at),
                    finished_at: None,
                    duration_ms: None,
                    migrations: None,
                    error: None,
                });
                self.observer
                    .borrow_mut()
                    .event(FleetEvent::TargetStarted { target: &slot.name });
                let canary = slot.canary;
                running.push(async move {
                    let mut outcome = self.deploy(target).await;
                    outcome.canary = canary;
                    (i, outcome, started_at)
                });
            }
            if stop.is_none() && self.stopped(*failures) {
                *stop = Some(format!(
                    "the run stopped after {} failed target(s)",
                    *failures
                ));
            }
            let Some((i, outcome, started_at)) = running.next().await else {
                break;
            };
            if outcome.state.is_failure() {
                *failures += 1;
            }
            self.finished(&outcome, Some(started_at));
            outcomes[i] = Some(outcome);
            if stop.is_none() && self.stopped(*failures) {
                *stop = Some(format!(
                    "the run stopped after {} failed target(s)",
                    *failures
                ));
            }
        }
        let reason = stop.clone().unwrap_or_default();
        for i in queue {
            let slot = &slots[i];
            let outcome = TargetOutcome {
                target: slot.name.clone(),
                group: slot.target.and_then(|t| t.group.clone()),
                location: slot.target.map(Target::location).unwrap_or_default(),
                schema: slot.target.and_then(|t| t.schema.clone()),
                state: TargetState::Skipped,
                canary: slot.canary,
                migrations: Vec::new(),
                code_changes: 0,
                strata_run: None,
                duration_ms: 0.0,
                error: Some(TargetError::other(
                    format!("not started: {reason}"),
                    Some("fix the failure, then `--resume` the run to deploy the rest"),
                )),
                warnings: Vec::new(),
            };
            self.finished(&outcome, None);
            outcomes[i] = Some(outcome);
        }
    }

    /// True when the failure policy says no new target may start.
    fn stopped(&self, failures: usize) -> bool {
        match self.opts.on_failure {
            OnFailure::Stop => failures > 0,
            OnFailure::Continue => self.opts.max_failures.is_some_and(|m| failures >= m),
        }
    }

    /// Record and announce a finished target.
    fn finished(&self, outcome: &TargetOutcome, started_at: Option<chrono::DateTime<Utc>>) {
        let _ = self.updates.send(Update {
            target: outcome.target.clone(),
            state: outcome.state,
            attempt: self.attempt,
            started_at,
            finished_at: Some(Utc::now()),
            duration_ms: Some(outcome.duration_ms),
            migrations: Some(i32::try_from(outcome.migrations.len()).unwrap_or(i32::MAX)),
            error: outcome.error.as_ref().map(|e| e.summary.clone()),
        });
        self.observer
            .borrow_mut()
            .event(FleetEvent::TargetFinished { outcome });
    }

    /// The outcome of a recorded target that is no longer among the targets.
    fn missing(&self, slot: &Slot<'_>) -> TargetOutcome {
        TargetOutcome {
            target: slot.name.clone(),
            group: None,
            location: String::new(),
            schema: None,
            state: TargetState::Failed,
            canary: slot.canary,
            migrations: Vec::new(),
            code_changes: 0,
            strata_run: None,
            duration_ms: 0.0,
            error: Some(TargetError::other(
                format!(
                    "`{}` is part of this run but no longer among the targets",
                    slot.name
                ),
                Some(
                    "resume with the same targets (file, query or tenant pattern) the run started with",
                ),
            )),
            warnings: Vec::new(),
        }
    }

    /// An idle connection made with `key`, if an earlier deploy left one.
    fn take_idle(&self, key: &ConnectionKey) -> Option<Database> {
        let mut idle = self.idle.borrow_mut();
        let i = idle.iter().position(|(at, _)| at == key)?;
        Some(idle.swap_remove(i).1)
    }

    /// Deploy one target, within the target timeout.
    async fn deploy(&self, target: &Target) -> TargetOutcome {
        let started = Instant::now();
        let name = target.name.as_str();
        let work = async {
            let tenant;
            let project = match &target.schema {
                Some(schema) => {
                    tenant = tenant_project(self.project, schema)?;
                    &tenant
                }
                None => self.project,
            };
            // Tenant schemas share their database: a connection of an earlier tenant's deploy, reset, serves.
            let reuse = target.schema.as_ref().map(|_| ConnectionKey::of(target));
            let idle = reuse.as_ref().and_then(|at| self.take_idle(at));
            let mut db = match idle {
                Some(db) => db,
                None => Database::connect(&target.connect).await?,
            };
            let mut progress = |e: Event<'_>| {
                if let Event::MigrationStarted {
                    package, name: m, ..
                } = e
                {
                    let migration = format!("{package}:{m}");
                    self.observer.borrow_mut().event(FleetEvent::Migration {
                        target: name,
                        migration: &migration,
                    });
                }
            };
            let report = pgstrata::up(&mut db, project, &self.opts.up, &mut progress).await?;
            if let Some(at) = reuse
                && db.client().batch_execute("DISCARD ALL").await.is_ok()
            {
                self.idle.borrow_mut().push((at, db));
            }
            Ok(report)
        };
        let result = match self.opts.target_timeout {
            Some(limit) => tokio::time::timeout(limit, work).await.map_err(|_| limit),
            None => Ok(work.await),
        };
        let mut outcome = TargetOutcome {
            target: target.name.clone(),
            group: target.group.clone(),
            location: target.location(),
            schema: target.schema.clone(),
            state: TargetState::Succeeded,
            canary: false,
            migrations: Vec::new(),
            code_changes: 0,
            strata_run: None,
            duration_ms: 0.0,
            error: None,
            warnings: Vec::new(),
        };
        match result {
            Ok(Ok(report)) => {
                outcome.migrations = report
                    .migrations
                    .iter()
                    .map(|m| format!("{}:{}", m.package, m.name))
                    .collect();
                outcome.code_changes = report.code.changes.len();
                outcome.strata_run = report.run_id;
                outcome.warnings = report.warnings;
            }
            Ok(Err(e)) => {
                outcome.state = TargetState::Failed;
                outcome.error = Some(TargetError::from_strata(&e));
            }
            Err(limit) => {
                outcome.state = TargetState::Abandoned;
                outcome.error = Some(TargetError::other(
                    format!(
                        "no answer within --target-timeout {}: abandoned (its connection was closed, so the server \
                         rolls back what had not committed)",
                        fmt_duration(limit)
                    ),
                    Some(
                        "check the server; deploying it again (`--resume`) is safe: its deploy lock and history make a deploy idempotent",
                    ),
                ));
            }
        }
        outcome.duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        outcome
    }
}

/// `1.5s`, `2min`.
fn fmt_duration(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s >= 60.0 && s.fract() == 0.0 && (s as u64).is_multiple_of(60) {
        format!("{}min", s as u64 / 60)
    } else {
        format!("{s}s")
    }
}

/// Write the updates as they come, in batches: what arrived while the previous batch was being written.
async fn write_updates(
    recorder: &mut Recorder,
    mut rx: mpsc::UnboundedReceiver<Update>,
) -> Result<()> {
    let mut failed = None;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while let Ok(u) = rx.try_recv() {
            batch.push(u);
        }
        if failed.is_none()
            && let Err(e) = recorder.write(&batch).await
        {
            // Keep draining (the deploys go on); report once at the end.
            failed = Some(e);
        }
    }
    failed.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canaries_lead() {
        let t = crate::targets::Targets::parse(
            "t.toml",
            "[[target]]\nname = \"a\"\n[[target]]\nname = \"b\"\ngroup = \"c\"\n[[target]]\nname = \"d\"\n",
            &|_| None,
        )
        .unwrap();
        fn names(o: &Ordered<'_>) -> Vec<String> {
            o.list.iter().map(|t| t.name.clone()).collect()
        }
        let o = order(t.list(), Some(&"c".parse().unwrap())).unwrap();
        assert_eq!(
            (names(&o), o.canaries),
            (vec!["b".to_string(), "a".into(), "d".into()], 1)
        );
        let o = order(t.list(), Some(&Canary::First(2))).unwrap();
        assert_eq!(
            (names(&o), o.canaries),
            (vec!["a".to_string(), "b".into(), "d".into()], 2)
        );
        let o = order(t.list(), Some(&Canary::First(9))).unwrap();
        assert_eq!(o.canaries, 3);
        assert!(order(t.list(), Some(&Canary::Group("zz".into()))).is_err());
        assert_eq!(fmt_duration(Duration::from_secs(120)), "2min");
        assert_eq!(fmt_duration(Duration::from_millis(1500)), "1.5s");
    }
}
