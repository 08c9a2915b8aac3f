//! Comparing packages on disk with the history in the database: what is applied, pending, changed, missing.
//!
//! Pure computation: [`Plan::compute`] takes the packages and the applied rows and decides; the database is read
//! by the caller. `strata plan`, `strata status` and `strata up` all use it, so they always agree.

use std::collections::{HashMap, HashSet};

use crate::db::history::AppliedMigration;
use crate::error::{ChangedError, ChangedMigration, Error, Result};
use crate::report::MigrationId;
use crate::source::STRATA_PACKAGE;
use crate::source::package::Package;

/// What the caller allows.
#[derive(Debug, Clone, Default)]
pub struct PlanOptions {
    /// Stop after this migration (`NAME` or `PACKAGE:NAME`).
    pub target: Option<String>,
    /// Apply pending migrations that sort before applied ones (in manifest order) instead of refusing.
    pub allow_out_of_order: bool,
    /// Proceed although applied migrations have no file any more.
    pub allow_missing: bool,
    /// Applied migrations whose changed text is accepted (recorded without running). `*` accepts all.
    pub accept_changed: Vec<String>,
    /// Refuse every migration without a down part (as postgres-json's runner does). A package can also ask for it
    /// with `require_down = true` in its manifest.
    pub require_down: bool,
}

/// The state of one migration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MigrationState {
    /// Applied, and the file matches.
    Applied,
    /// Not applied yet.
    Pending,
    /// Not applied, but a migration listed after it is: applying it now changes the order of history.
    OutOfOrder,
    /// Applied, but the file's text changed since.
    Changed,
    /// Applied, but no longer listed in the manifest (file removed, or the code was rolled back).
    Missing,
}

/// One migration's line in a plan or status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationStatus {
    /// Migration name.
    pub name: String,
    /// Path (from the manifest, or as recorded for missing ones).
    pub path: String,
    /// State.
    pub state: MigrationState,
    /// When it was applied.
    pub applied_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Checksum of the file (None when missing).
    pub checksum: Option<String>,
    /// Checksum recorded when applied.
    pub applied_checksum: Option<String>,
    /// Runs outside a transaction.
    pub no_transaction: bool,
    /// Has down SQL (in the file, or stored for missing ones).
    pub has_down: bool,
}

/// One package's part of a plan.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackagePlan {
    /// Package name.
    pub name: String,
    /// Its schema.
    pub schema: String,
    /// Strata's own package.
    pub internal: bool,
    /// Every migration: the manifest's, in order, then the missing ones.
    pub migrations: Vec<MigrationStatus>,
    /// Last applied migration (by application order) before the run.
    pub from: Option<String>,
    /// Last migration after the run, if the plan is applied.
    pub to: Option<String>,
}

/// A pending migration to apply.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Step {
    /// Index into the plan's packages.
    #[serde(skip)]
    pub package_index: usize,
    /// Index into that package's migrations.
    #[serde(skip)]
    pub migration_index: usize,
    /// Package name.
    pub package: String,
    /// Migration name.
    pub name: String,
    /// Path.
    pub path: String,
    /// Runs (partly) outside a transaction: splits the run into segments.
    pub no_transaction: bool,
    /// Applied although it sorts before applied migrations.
    pub out_of_order: bool,
    /// The deploy commits right after this migration, and why: it adds an enum value a later migration uses
    /// (see `decide::segments`). Like a no-transaction migration, this splits the run into segments.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_after: Option<String>,
}

/// What `up` would do.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Plan {
    /// Every package, Strata's own first.
    pub packages: Vec<PackagePlan>,
    /// Pending migrations in the order they would run.
    pub steps: Vec<Step>,
    /// Changed migrations the caller accepted (their new text is recorded without running).
    pub accepted_changes: Vec<(String, String)>,
    /// Repeatable scripts and whether they run again (filled from the database by `plan`/`up`).
    pub repeatables: Vec<crate::decide::repeatable::RepeatableStatus>,
    /// Existing schemas a package role would take over (filled from the database by `plan`).
    pub adoptions: Vec<crate::db::roles::SchemaAdoption>,
    /// Problems that make `up` refuse (unless allowed by options).
    #[serde(skip)]
    problems: Problems,
}

#[derive(Debug, Clone, Default)]
struct Problems {
    changed: Vec<ChangedMigration>,
    out_of_order: Vec<MigrationId>,
    missing: Vec<MigrationId>,
    unknown_target: Option<String>,
    /// Migrations without a down part, when the options or their package require one.
    no_down: Vec<MigrationId>,
}

impl Plan {
    /// Compare `packages` (Strata's own first, then deploy order) with the `applied` history.
    pub fn compute(packages: &[Package], applied: &[AppliedMigration], opts: &PlanOptions) -> Plan {
        let mut by_pkg: HashMap<&str, Vec<&AppliedMigration>> = HashMap::new();
        for a in applied {
            by_pkg.entry(a.package.as_str()).or_default().push(a);
        }
        let accept_all = opts.accept_changed.iter().any(|a| a == "*");
        let mut plans = Vec::new();
        let mut steps = Vec::new();
        let mut problems = Problems::default();
        let mut accepted = Vec::new();
        for (pi, pkg) in packages.iter().enumerate() {
            let rows: Vec<&AppliedMigration> = by_pkg.remove(pkg.name()).unwrap_or_default();
            let by_name: HashMap<&str, &AppliedMigration> =
                rows.iter().map(|a| (a.name.as_str(), *a)).collect();
            let last_applied_index = pkg
                .migrations()
                .iter()
                .rposition(|m| by_name.contains_key(m.name()));
            let mut statuses = Vec::new();
            let require_down =
                (opts.require_down || pkg.manifest().require_down) && pkg.name() != STRATA_PACKAGE;
            for (mi, m) in pkg.migrations().iter().enumerate() {
                let row = by_name.get(m.name());
                if require_down && m.down().is_none() {
                    problems
                        .no_down
                        .push(MigrationId::new(pkg.name(), m.name()));
                }
                let state = match row {
                    Some(a) if a.checksum == m.checksum() => MigrationState::Applied,
                    Some(_) => MigrationState::Changed,
                    None if last_applied_index.is_some_and(|l| l > mi) => {
                        MigrationState::OutOfOrder
                    }
                    None => MigrationState::Pending,
                };
                match state {
                    MigrationState::Changed => {
                        let id = MigrationId::new(pkg.name(), m.name());
                        if accept_all
                            || opts
                                .accept_changed
                                .iter()
                                .any(|a| a == m.name() || id == a.as_str())
                        {
                            accepted.push((pkg.name().to_string(), m.name().to_string()));
                        } else if let Some(a) = row {
                            problems.changed.push(ChangedMigration {
                                package: pkg.name().to_string(),
                                name: m.name().to_string(),
                                path: m.up().origin().to_string(),
                                applied_checksum: a.checksum.clone(),
                                file_checksum: m.checksum().to_string(),
                                diff: String::new(),
                            });
                        }
                    }
                    MigrationState::OutOfOrder => {
                        problems
                            .out_of_order
                            .push(MigrationId::new(pkg.name(), m.name()));
                        steps.push(step(pkg, pi, mi, true));
                    }
                    MigrationState::Pending => steps.push(step(pkg, pi, mi, false)),
                    MigrationState::Applied | MigrationState::Missing => {}
                }
                statuses.push(MigrationStatus {
                    name: m.name().to_string(),
                    path: m.path().to_string(),
                    state,
                    applied_at: row.map(|a| a.applied_at),
                    checksum: Some(m.checksum().to_string()),
                    applied_checksum: row.map(|a| a.checksum.clone()),
                    no_transaction: m.no_transaction(),
                    has_down: m.down().is_some(),
                });
            }
            let listed: HashSet<&str> = pkg.migrations().iter().map(|m| m.name()).collect();
            for a in &rows {
                if !listed.contains(a.name.as_str()) {
                    problems.missing.push(MigrationId::new(pkg.name(), &a.name));
                    statuses.push(missing_status(a));
                }
            }
            plans.push(PackagePlan {
                name: pkg.name().to_string(),
                schema: pkg.schema().to_string(),
                internal: pkg.name() == STRATA_PACKAGE,
                migrations: statuses,
                from: rows.last().map(|a| a.name.clone()),
                to: rows.last().map(|a| a.name.clone()),
            });
        }
        // Applied migrations of packages that are not part of this project are not "missing": another project
        // may own them. They are simply not shown.

        if let Some(target) = &opts.target {
            match find_target(&steps, target) {
                Some(cut) => steps.truncate(cut + 1),
                None => {
                    let applied_already = plans.iter().any(|p| {
                        p.migrations.iter().any(|m| {
                            target_matches(target, &p.name, &m.name)
                                && m.state != MigrationState::Pending
                        })
                    });
                    if applied_already {
                        steps.clear();
                    } else {
                        problems.unknown_target = Some(target.clone());
                    }
                }
            }
        }
        for s in &steps {
            if let Some(p) = plans.get_mut(s.package_index) {
                p.to = Some(s.name.clone());
            }
        }
        let items: Vec<(&Package, &crate::source::package::Migration)> = steps
            .iter()
            .map(|s| {
                let pkg = &packages[s.package_index];
                (pkg, &pkg.migrations()[s.migration_index])
            })
            .collect();
        for (i, reason) in crate::decide::segments::enum_commit_points(&items) {
            if let Some(s) = steps.get_mut(i) {
                s.commit_after = Some(reason);
            }
        }
        Plan {
            packages: plans,
            steps,
            accepted_changes: accepted,
            repeatables: Vec::new(),
            adoptions: Vec::new(),
            problems,
        }
    }

    /// Refuse what the options do not allow: changed migrations (with diffs, using `stored` to fetch the applied
    /// text), out-of-order and missing migrations, an unknown target.
    pub fn check(&self, opts: &PlanOptions) -> Result<()> {
        if let Some(t) = &self.problems.unknown_target {
            return Err(Error::usage(
                format!("--target {t}: no such migration in the packages being deployed"),
                Some("use NAME or PACKAGE:NAME as listed by `strata status`".into()),
            ));
        }
        if !self.problems.no_down.is_empty() {
            return Err(Error::refused(
                format!(
                    "migration(s) without a down file: {}",
                    list(&self.problems.no_down)
                ),
                "down files are required (--require-down, or `require_down = true` in strata.toml): add NAME.down.sql \
                 next to each (or a `-- migrate:down` section)",
            ));
        }
        if !self.problems.changed.is_empty() {
            return Err(Error::Changed(Box::new(ChangedError {
                changes: self.problems.changed.clone(),
            })));
        }
        if !self.problems.out_of_order.is_empty() && !opts.allow_out_of_order {
            return Err(Error::refused(
                format!(
                    "pending migration(s) listed before applied ones: {}",
                    list(&self.problems.out_of_order)
                ),
                "this usually comes from merging branches. Check they do not conflict with what is applied, then \
                 re-run with --allow-out-of-order (they are applied in manifest order)",
            ));
        }
        if !self.problems.missing.is_empty() && !opts.allow_missing {
            return Err(Error::refused(
                format!(
                    "applied migration(s) no longer in the manifest: {}",
                    list(&self.problems.missing)
                ),
                "if the code was rolled back, roll the database back too with `strata down` (it uses the down SQL \
                 stored in the database); or proceed anyway with --allow-missing",
            ));
        }
        Ok(())
    }

    /// Changed migrations found (without diffs).
    pub fn changed(&self) -> &[ChangedMigration] {
        &self.problems.changed
    }

    /// Fill in the diffs of changed migrations from the stored up SQL.
    pub(crate) async fn load_diffs(
        &mut self,
        client: &tokio_postgres::Client,
        packages: &[Package],
    ) -> Result<()> {
        for c in &mut self.problems.changed {
            let stored = crate::db::history::stored_up_sql(client, &c.package, &c.name)
                .await?
                .unwrap_or_default();
            let file = packages
                .iter()
                .find(|p| p.name() == c.package)
                .and_then(|p| p.migrations().iter().find(|m| m.name() == c.name))
                .map(|m| m.up_sql().to_string())
                .unwrap_or_default();
            c.diff = similar::TextDiff::from_lines(&stored, &file)
                .unified_diff()
                .context_radius(2)
                .header("applied", "file")
                .to_string();
        }
        Ok(())
    }

    /// Out-of-order migrations.
    pub fn out_of_order(&self) -> &[MigrationId] {
        &self.problems.out_of_order
    }

    /// Missing migrations.
    pub fn missing(&self) -> &[MigrationId] {
        &self.problems.missing
    }

    /// True when there is nothing to apply or record.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
            && self.accepted_changes.is_empty()
            && self
                .repeatables
                .iter()
                .all(|r| r.state == crate::decide::repeatable::RepeatableState::Applied)
    }

    /// How the steps split into segments: consecutive transactional migrations share one transaction; each
    /// no-transaction migration runs on its own, statement by statement; a migration whose enum value a later one
    /// uses ends its transaction.
    pub fn segments(&self) -> Vec<Segment> {
        let mut out: Vec<Segment> = Vec::new();
        for s in &self.steps {
            let label = MigrationId::new(&s.package, &s.name);
            match out.last_mut() {
                Some(seg)
                    if seg.transactional && !s.no_transaction && seg.commit_reason.is_none() =>
                {
                    seg.migrations.push(label)
                }
                _ => out.push(Segment {
                    transactional: !s.no_transaction,
                    migrations: vec![label],
                    commit_reason: None,
                }),
            }
            if let (Some(reason), Some(seg)) = (&s.commit_after, out.last_mut()) {
                seg.commit_reason = Some(reason.clone());
            }
        }
        out
    }
}

/// A run of migrations executed as one unit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Segment {
    /// One transaction (true), or statement by statement in autocommit (false).
    pub transactional: bool,
    /// Its migrations, in order.
    pub migrations: Vec<MigrationId>,
    /// Why the segment commits after its last migration although the next one could share its transaction (an
    /// enum value it adds is used later).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit_reason: Option<String>,
}

fn step(pkg: &Package, pi: usize, mi: usize, out_of_order: bool) -> Step {
    let m = &pkg.migrations()[mi];
    Step {
        package_index: pi,
        migration_index: mi,
        package: pkg.name().to_string(),
        name: m.name().to_string(),
        path: m.path().to_string(),
        no_transaction: m.no_transaction(),
        out_of_order,
        commit_after: None,
    }
}

fn missing_status(a: &AppliedMigration) -> MigrationStatus {
    MigrationStatus {
        name: a.name.clone(),
        path: a.path.clone(),
        state: MigrationState::Missing,
        applied_at: Some(a.applied_at),
        checksum: None,
        applied_checksum: Some(a.checksum.clone()),
        no_transaction: a.no_transaction,
        has_down: a.has_down,
    }
}

fn target_matches(target: &str, package: &str, name: &str) -> bool {
    MigrationId::new(package, name).matches(target)
}

/// `a:x, b:y`.
fn list(ids: &[MigrationId]) -> String {
    ids.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn find_target(steps: &[Step], target: &str) -> Option<usize> {
    steps
        .iter()
        .position(|s| target_matches(target, &s.package, &s.name))
}
