//! Fleets: `strata up` and `strata status` over many databases (`--targets`, `--targets-query`) or the tenant
//! schemas of one (`--tenant-schemas`). Flags and the glue to `pgstrata-fleet`; the library does the work.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgGroup, Args, ValueEnum};
use pgstrata::{Database, PgDuration, Project};
use pgstrata_fleet::{FleetOptions, OnFailure, StateStore, Targets};

use crate::Failure;
use crate::args::{Global, StatusArgs, UpArgs};
use crate::render::Out;

impl From<pgstrata_fleet::Error> for Failure {
    fn from(e: pgstrata_fleet::Error) -> Failure {
        if e.is_usage() {
            Failure::Usage(miette::Report::new(e))
        } else {
            Failure::Failed(miette::Report::new(e))
        }
    }
}

/// Which targets (for `up` and `status`).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Fleets: many databases or tenant schemas")]
#[command(group(ArgGroup::new("fleet").args(["targets", "targets_query", "tenant_schemas"])))]
pub struct FleetTargets {
    /// Every database of a targets file: [[target]] tables with name, url (or libpq settings), password_env,
    /// group, tags. With -d, outcomes are recorded in that control database.
    #[arg(long, value_name = "FILE")]
    pub targets: Option<PathBuf>,
    /// The databases a query returns (a `url` column, or the first; optional `name`, `group`, `tags`), run
    /// against the control database (-d), which records the outcomes.
    #[arg(long, value_name = "SQL")]
    pub targets_query: Option<String>,
    /// Deploy the (last) package into each schema of the database (-d) matching a LIKE pattern, or named by a
    /// query (missing ones are created); each schema has its own history.
    #[arg(long, value_name = "PATTERN|SQL")]
    pub tenant_schemas: Option<String>,
    /// Also create and deploy this tenant schema (repeatable).
    #[arg(long, value_name = "SCHEMA", requires = "tenant_schemas")]
    pub new_tenant: Vec<String>,
    /// Only the targets with this name, group or tag (repeatable).
    #[arg(long, value_name = "SELECTOR", requires = "fleet")]
    pub only: Vec<String>,
    /// Leave out the targets with this name, group or tag (repeatable).
    #[arg(long, value_name = "SELECTOR", requires = "fleet")]
    pub exclude: Vec<String>,
    /// Targets handled at the same time (default: the number of CPU cores).
    #[arg(long, value_name = "N", requires = "fleet")]
    pub jobs: Option<usize>,
    /// Abandon a target that takes longer than this (connection included), e.g. 5min.
    #[arg(long, value_name = "DURATION", requires = "fleet")]
    pub target_timeout: Option<PgDuration>,
}

impl FleetTargets {
    /// True when a fleet was asked for.
    pub fn is_fleet(&self) -> bool {
        self.targets.is_some() || self.targets_query.is_some() || self.tenant_schemas.is_some()
    }
}

/// How a fleet `up` runs (`up` only).
#[derive(Debug, Args, Clone, Default)]
#[command(next_help_heading = "Fleets: many databases or tenant schemas")]
pub struct FleetRun {
    /// Deploy these first, alone: a number of targets, or a group, tag or name. If one fails, nothing else starts.
    #[arg(long, value_name = "N|GROUP", requires = "fleet")]
    pub canary: Option<String>,
    /// What a failed target does to the rest: stop (start no new target) or continue.
    #[arg(long, value_enum, default_value_t)]
    pub on_failure: FailurePolicy,
    /// With --on-failure continue: start no new target once this many have failed.
    #[arg(long, value_name = "N", requires = "fleet")]
    pub max_failures: Option<usize>,
    /// Deploy the targets of fleet run RUN that did not succeed (failed, abandoned, skipped, never started).
    #[arg(long, value_name = "RUN", requires = "fleet")]
    pub resume: Option<String>,
    /// Where fleet runs are recorded when there is no control database.
    #[arg(
        long,
        value_name = "DIR",
        env = "STRATA_FLEET_STATE",
        default_value = ".strata/fleet"
    )]
    pub state_dir: PathBuf,
}

/// `--on-failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum FailurePolicy {
    /// Start no new target after the first failure.
    #[default]
    Stop,
    /// Go on with the others (up to --max-failures).
    Continue,
}

/// The project, the targets (selected), and where a fleet `up` records its outcomes.
async fn resolve(
    g: &Global,
    f: &FleetTargets,
    state_dir: Option<&PathBuf>,
) -> Result<(Project, Targets, Option<StateStore>), Failure> {
    let project = crate::load_project(g)?;
    let control = || crate::connect_options(g, Some(&project));
    let (targets, store) = if let Some(file) = &f.targets {
        let targets = Targets::load(file)?;
        let store = match (&g.database_url, g.embedded) {
            (None, false) => state_dir.map(|d| StateStore::Dir(d.clone())),
            _ => Some(StateStore::Control(Box::new(control()?))),
        };
        (targets, store)
    } else if let Some(sql) = &f.targets_query {
        let options = control()?;
        let db = Database::connect(&options).await?;
        (
            Targets::from_query(&db, sql).await?,
            Some(StateStore::Control(Box::new(options))),
        )
    } else if let Some(pattern) = &f.tenant_schemas {
        let options = control()?;
        if g.embedded {
            pgstrata::create_database(&options).await?;
        }
        let db = Database::connect(&options).await?;
        let targets =
            Targets::tenant_schemas(&db, &options, &project, pattern, &f.new_tenant).await?;
        (targets, Some(StateStore::Control(Box::new(options))))
    } else {
        return Err(Failure::Usage(miette::miette!(
            "give --targets, --targets-query or --tenant-schemas"
        )));
    };
    let targets = targets.select(&f.only, &f.exclude)?;
    Ok((project, targets, store))
}

/// `strata up` over a fleet.
pub async fn up(g: &Global, a: UpArgs, out: &Out) -> Result<(), Failure> {
    let (project, targets, store) = resolve(g, &a.fleet, Some(&a.fleet_run.state_dir)).await?;
    let Some(store) = store else {
        return Err(Failure::Usage(miette::miette!(
            "no place to record the run"
        )));
    };
    if a.dry_run {
        return Err(Failure::Usage(miette::miette!(
            "--dry-run deploys one database; over a fleet, use `strata status` with the same targets"
        )));
    }
    let opts = FleetOptions {
        jobs: a.fleet.jobs.unwrap_or_else(pgstrata_fleet::default_jobs),
        canary: a.fleet_run.canary.as_deref().map(|c| {
            let Ok(canary) = c.parse::<pgstrata_fleet::Canary>();
            canary
        }),
        on_failure: match a.fleet_run.on_failure {
            FailurePolicy::Stop => OnFailure::Stop,
            FailurePolicy::Continue => OnFailure::Continue,
        },
        max_failures: a.fleet_run.max_failures,
        target_timeout: a.fleet.target_timeout.as_ref().map(PgDuration::duration),
        up: crate::up_options(&a, &project)?,
    };
    let mut progress = out.fleet_progress();
    let result = pgstrata_fleet::up(
        &project,
        &targets,
        &opts,
        &store,
        a.fleet_run.resume.as_deref(),
        &mut progress,
    )
    .await;
    progress.finish();
    let report = result?;
    out.fleet_report(&report, &resume_command(&a, &report.run_id));
    if report.success() {
        Ok(())
    } else {
        Err(Failure::Silent)
    }
}

/// `strata status` over a fleet.
pub async fn status(g: &Global, a: StatusArgs, out: &Out) -> Result<(), Failure> {
    let (project, targets, _) = resolve(g, &a.fleet, None).await?;
    let jobs = a.fleet.jobs.unwrap_or_else(pgstrata_fleet::default_jobs);
    let timeout: Option<Duration> = a.fleet.target_timeout.as_ref().map(PgDuration::duration);
    let statuses = pgstrata_fleet::status(&project, &targets, jobs, timeout).await?;
    out.fleet_status(&statuses);
    let dirty = statuses
        .iter()
        .any(|s| s.health != pgstrata_fleet::TargetHealth::UpToDate);
    if a.exit_code && dirty {
        return Err(Failure::Silent);
    }
    Ok(())
}

/// The command that resumes this run, for the summary.
fn resume_command(a: &UpArgs, run: &str) -> String {
    let f = &a.fleet;
    let source = if let Some(t) = &f.targets {
        format!("--targets {}", shell_word(&t.display().to_string()))
    } else if let Some(q) = &f.targets_query {
        format!("--targets-query {}", shell_word(q))
    } else {
        format!(
            "--tenant-schemas {}",
            shell_word(f.tenant_schemas.as_deref().unwrap_or_default())
        )
    };
    format!("strata up {source} --resume {run}")
}

/// `word`, quoted for a POSIX shell when it needs to be.
fn shell_word(word: &str) -> String {
    if !word.is_empty()
        && word
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./:%=@,+".contains(c))
    {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}
