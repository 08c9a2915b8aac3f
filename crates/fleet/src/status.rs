//! `status` over a fleet: for each target, whether it is up to date, what is pending, and its last run (with the
//! error, if it failed). Databases are read `jobs` at a time, each within the target timeout; tenant schemas of one
//! database are read over one connection, with one query for all their histories.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use pgstrata::history::RunRecord;
use pgstrata::{Database, MigrationState, Plan, PlanOptions, Project};
use serde::Serialize;

use crate::deploy::tenant_project;
use crate::error::Result;
use crate::targets::{Target, Targets};

/// Where a target stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetHealth {
    /// Everything applied.
    UpToDate,
    /// Migrations to apply.
    Pending,
    /// Applied migrations whose files changed, or that are no longer listed: `up` would refuse.
    Diverged,
    /// Not reachable, or its history could not be read.
    Unreachable,
}

impl TargetHealth {
    /// The name used in tables and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetHealth::UpToDate => "up-to-date",
            TargetHealth::Pending => "pending",
            TargetHealth::Diverged => "diverged",
            TargetHealth::Unreachable => "unreachable",
        }
    }
}

/// The last run recorded in a target (`strata.run`).
#[derive(Debug, Clone, Serialize)]
pub struct LastRun {
    /// Its id in the target's `strata.run`.
    pub id: i64,
    /// `success`, `noop`, `failed`, …
    pub outcome: String,
    /// When it ended (or started, if it never recorded its end).
    pub at: chrono::DateTime<chrono::Utc>,
    /// Its error, if it failed.
    pub error: Option<String>,
}

/// One target's status.
#[derive(Debug, Clone, Serialize)]
pub struct TargetStatus {
    /// Target name.
    pub target: String,
    /// Its group.
    pub group: Option<String>,
    /// The database (without password), and for a tenant the schema.
    pub location: String,
    /// Where it stands.
    pub health: TargetHealth,
    /// Pending migrations (`package:name`).
    pub pending: Vec<String>,
    /// Changed or missing migrations.
    pub diverged: Vec<String>,
    /// Its last run.
    pub last_run: Option<LastRun>,
    /// Why it could not be read.
    pub error: Option<String>,
}

/// The status of every target, in order.
pub async fn status(
    project: &Project,
    targets: &Targets,
    jobs: usize,
    timeout: Option<Duration>,
) -> Result<Vec<TargetStatus>> {
    if targets.are_tenants() {
        return tenant_status(project, targets.list()).await;
    }
    let mut out: Vec<Option<TargetStatus>> = (0..targets.list().len()).map(|_| None).collect();
    let mut queue = targets.list().iter().enumerate();
    let mut running = FuturesUnordered::new();
    loop {
        while running.len() < jobs.max(1) {
            let Some((i, t)) = queue.next() else {
                break;
            };
            running.push(async move { (i, database_status(project, t, timeout).await) });
        }
        let Some((i, s)) = running.next().await else {
            break;
        };
        out[i] = Some(s);
    }
    Ok(out.into_iter().flatten().collect())
}

async fn database_status(project: &Project, t: &Target, timeout: Option<Duration>) -> TargetStatus {
    let work = async {
        let db = Database::connect(&t.connect).await?;
        let plan = pgstrata::plan(&db, project, &PlanOptions::default()).await?;
        let runs = pgstrata::history::runs(db.client(), 1).await?;
        Ok::<_, pgstrata::Error>((plan, runs.into_iter().next()))
    };
    let result = match timeout {
        Some(limit) => tokio::time::timeout(limit, work).await.unwrap_or_else(|_| {
            Err(pgstrata::Error::Usage {
                message: format!("no answer within {}s", limit.as_secs_f64()),
                help: None,
            })
        }),
        None => work.await,
    };
    match result {
        Ok((plan, run)) => from_plan(t, &plan, run.as_ref()),
        Err(e) => unreachable(t, e.to_string()),
    }
}

fn unreachable(t: &Target, error: String) -> TargetStatus {
    TargetStatus {
        target: t.name.clone(),
        group: t.group.clone(),
        location: t.location(),
        health: TargetHealth::Unreachable,
        pending: Vec::new(),
        diverged: Vec::new(),
        last_run: None,
        error: Some(error.lines().next().unwrap_or_default().to_string()),
    }
}

fn from_plan(t: &Target, plan: &Plan, run: Option<&RunRecord>) -> TargetStatus {
    let mut pending = Vec::new();
    let mut diverged = Vec::new();
    for p in &plan.packages {
        for m in &p.migrations {
            let id = format!("{}:{}", p.name, m.name);
            match m.state {
                MigrationState::Applied => {}
                MigrationState::Pending | MigrationState::OutOfOrder => pending.push(id),
                MigrationState::Changed | MigrationState::Missing => diverged.push(id),
            }
        }
    }
    let health = if !diverged.is_empty() {
        TargetHealth::Diverged
    } else if !pending.is_empty() {
        TargetHealth::Pending
    } else {
        TargetHealth::UpToDate
    };
    TargetStatus {
        target: t.name.clone(),
        group: t.group.clone(),
        location: t.location(),
        health,
        pending,
        diverged,
        last_run: run.map(|r| LastRun {
            id: r.id,
            outcome: r.outcome.as_str().to_string(),
            at: r.finished_at.unwrap_or(r.started_at),
            error: r.error.clone(),
        }),
        error: None,
    }
}

/// Tenant schemas of one database: one connection, one read of their histories and of their last runs.
async fn tenant_status(project: &Project, targets: &[Target]) -> Result<Vec<TargetStatus>> {
    let Some(first) = targets.first() else {
        return Ok(Vec::new());
    };
    let db = Database::connect(&first.connect).await?;
    let mut tenants = Vec::with_capacity(targets.len());
    for t in targets {
        let schema = t.schema.as_deref().unwrap_or(&t.name);
        let project = tenant_project(project, schema)?;
        let Some(package) = project.packages().last().cloned() else {
            continue;
        };
        tenants.push((t, package));
    }
    let names: Vec<&str> = tenants.iter().map(|(_, p)| p.name()).collect();
    let schemas: Vec<&str> = tenants.iter().map(|(_, p)| p.schema()).collect();
    let applied = pgstrata::history::applied_of(db.client(), &names).await?;
    let runs = pgstrata::history::last_schema_runs(db.client(), &schemas).await?;
    let mut by_package: BTreeMap<&str, Vec<pgstrata::history::AppliedMigration>> = BTreeMap::new();
    for a in &applied {
        by_package
            .entry(a.package.as_str())
            .or_default()
            .push(a.clone());
    }
    Ok(tenants
        .iter()
        .map(|(t, package)| {
            let rows = by_package
                .get(package.name())
                .map_or(&[][..], Vec::as_slice);
            let plan = Plan::compute(std::slice::from_ref(package), rows, &PlanOptions::default());
            from_plan(t, &plan, runs.get(package.schema()))
        })
        .collect())
}
