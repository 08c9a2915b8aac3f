//! `adopt` and `baseline`: take over a database that another tool (or nobody) migrated, without re-running anything.
//!
//! `adopt` reads the other tool's tracking table, checks every entry against the migration files (the checksum where
//! the tool keeps one: sqlx's SHA-384, Flyway's CRC-32, refinery's SipHash-1-3), refuses a dirty or failed entry
//! with an explanation, and records the applied migrations in Strata's history with their up and down SQL and
//! `source = 'adopted:<tool>'`, so nothing runs again and `strata down` works from then on. `baseline` records every
//! migration up to a given one with `source = 'baseline'`. Both run in one transaction under the deploy lock (with
//! Strata's own history tables created in the same transaction when missing), and are idempotent: what is already
//! recorded is left alone.

use std::collections::{BTreeMap, HashMap};

use tokio_postgres::Client;

use crate::db::exec::{Database, run_section};
use crate::db::history::{self, LogAction};
use crate::db::session::{Session, SessionSettings};
use crate::decide::plan::{Plan, PlanOptions};
use crate::decide::repeatable::RepeatableState;
use crate::error::{Error, Result};
use crate::observe::Observer;
use crate::report::{MigrationId, Outcome, RunOutcome};
use crate::source::layout::{FlywayVersion, SqlxConfig, flyway_checksum};
use crate::source::package::{Migration, Package};
use crate::source::project::{Project, strata_package};

mod tools;

pub use tools::Tool;
use tools::{VersionKey, detect_tool, files_for, read_tool_state, tool_version, verify};

/// Options for [`adopt`].
#[derive(Debug, Clone, Default)]
pub struct AdoptOptions {
    /// The tool. `None`: the package's layout says it, else the one tracking table found in the database.
    pub from: Option<Tool>,
    /// The tracking table (optionally `schema.table`), if not the tool's default.
    pub table: Option<String>,
    /// Proceed although the tool recorded versions that have no file (they are left out of Strata's history).
    pub allow_missing: bool,
    /// Check and report, then roll back.
    pub dry_run: bool,
    /// Session settings (lock wait, timeouts).
    pub session: SessionSettings,
}

/// Options for [`baseline`].
#[derive(Debug, Clone, Default)]
pub struct BaselineOptions {
    /// The last migration already in the database (`NAME`, `PACKAGE:NAME`, or the tool's version).
    pub to: String,
    /// Check and report, then roll back.
    pub dry_run: bool,
    /// Session settings.
    pub session: SessionSettings,
}

/// A migration recorded by `adopt` or `baseline`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Adopted {
    /// Package.
    pub package: String,
    /// Migration (or repeatable) name.
    pub name: String,
    /// The version the tool recorded.
    pub version: Option<String>,
    /// The tool's checksum that was verified against the file (`sha384`, `crc32`, `siphash13`), if it keeps one.
    pub verified: Option<&'static str>,
}

impl Adopted {
    /// `package:name`.
    fn id(&self) -> MigrationId {
        MigrationId::new(&self.package, &self.name)
    }
}

/// What `adopt` or `baseline` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdoptReport {
    /// `adopted:<tool>` or `baseline`.
    pub source: String,
    /// The tracking table read (adopt only).
    pub table: Option<String>,
    /// Applied (recorded), nothing to do (noop), or rolled back (dry-run).
    pub outcome: Outcome,
    /// Newly recorded migrations, in order.
    pub recorded: Vec<Adopted>,
    /// Repeatables recorded as applied (Flyway `R__` whose checksum matches).
    pub repeatables: Vec<Adopted>,
    /// Already in Strata's history (`package:name`).
    pub already_recorded: Vec<String>,
    /// Not applied by the tool: `strata up` runs them (`package:name`).
    pub pending: Vec<String>,
    /// Strata's own history migrations applied first (`strata:name`).
    pub bootstrapped: Vec<String>,
    /// Migrations the tool ran that have no SQL file (Flyway's Java migrations): left to the tool, named in the
    /// run's record in `strata.run`, and not counted as missing.
    pub external: Vec<String>,
    /// Things worth knowing (out-of-order gaps, versions without files allowed by the options).
    pub warnings: Vec<String>,
    /// Row id in `strata.run`.
    pub run_id: Option<i64>,
}

/// Adopt a database migrated by another tool. See the module docs.
///
/// ```no_run
/// # async fn demo() -> Result<(), pgstrata::Error> {
/// let package = pgstrata::Package::from_layout("db/migrations", pgstrata::Layout::Dbmate)?;
/// let project = pgstrata::Project::new(vec![package])?;
/// let mut db = pgstrata::Database::connect(&pgstrata_conn::ConnectOptions::from_env(None)?).await?;
/// let report = pgstrata::adopt(&mut db, &project, &pgstrata::AdoptOptions::default(), &mut pgstrata::Quiet).await?;
/// println!("{} migrations adopted", report.recorded.len());
/// # Ok(()) }
/// ```
pub async fn adopt(
    db: &mut Database,
    project: &Project,
    opts: &AdoptOptions,
    observer: &mut dyn Observer,
) -> Result<AdoptReport> {
    let pkg = single_package(project, "adopt")?;
    let mut session = Session::open(db, opts.session.clone(), observer).await?;
    let result = adopt_in(&mut session, pkg, opts).await;
    finish(&mut session, result, opts.dry_run).await
}

/// Record every migration up to `opts.to` as applied without running it (a database set up before Strata, by hand
/// or by a tool without a tracking table).
pub async fn baseline(
    db: &mut Database,
    project: &Project,
    opts: &BaselineOptions,
    observer: &mut dyn Observer,
) -> Result<AdoptReport> {
    let mut session = Session::open(db, opts.session.clone(), observer).await?;
    let result = baseline_in(&mut session, project, &opts.to).await;
    finish(&mut session, result, opts.dry_run).await
}

async fn finish(
    session: &mut Session<'_>,
    result: Result<AdoptReport>,
    dry_run: bool,
) -> Result<AdoptReport> {
    match result {
        Ok(mut report) => {
            // Nothing recorded: roll back, history tables included, so a no-op adoption leaves no trace.
            let changed = !report.recorded.is_empty() || !report.repeatables.is_empty();
            if dry_run {
                session.rollback().await?;
                report.outcome = Outcome::DryRun;
                report.run_id = None;
            } else if changed {
                session.commit().await?;
            } else {
                session.rollback().await?;
                report.outcome = Outcome::Noop;
                report.run_id = None;
                report.bootstrapped.clear();
            }
            session.close().await;
            Ok(report)
        }
        Err(e) => {
            session.abort().await;
            Err(e)
        }
    }
}

fn single_package<'p>(project: &'p Project, command: &str) -> Result<&'p Package> {
    match project.packages() {
        [one] => Ok(one),
        [] => Err(Error::usage(format!("{command}: no package"), None)),
        many => Err(Error::usage(
            format!(
                "{command} works on one package at a time; this project has {}: {}",
                many.len(),
                many.iter()
                    .map(Package::name)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            Some("point --package (or --dir) at the one package".into()),
        )),
    }
}

async fn adopt_in(
    session: &mut Session<'_>,
    pkg: &Package,
    opts: &AdoptOptions,
) -> Result<AdoptReport> {
    let client = session.client();
    let tool = match opts.from {
        Some(t) => t,
        None => match pkg.layout().and_then(Tool::for_layout) {
            Some(t) => t,
            None => detect_tool(client).await?,
        },
    };
    // sqlx's `sqlx.toml` may drop characters before hashing, and name another tracking table.
    let sqlx = match (tool, pkg.root()) {
        (Tool::Sqlx, Some(root)) => SqlxConfig::find(root)?,
        _ => SqlxConfig::default(),
    };
    let table = opts
        .table
        .clone()
        .or_else(|| sqlx.table_name.clone())
        .unwrap_or_else(|| tool.default_table().to_string());
    let state = read_tool_state(client, tool, &table).await?;

    // Match the tool's entries with the files, checking what can be checked, before changing anything.
    let mut by_key: BTreeMap<VersionKey, &Migration> = BTreeMap::new();
    for m in pkg.migrations() {
        if let Some(key) = tool_version(tool, pkg, m).and_then(|v| VersionKey::parse(tool, &v)) {
            by_key.insert(key, m);
        }
    }
    let mut applied: HashMap<&str, Option<&'static str>> = HashMap::new();
    let mut missing = Vec::new();
    let mut mismatched = Vec::new();
    for entry in &state.entries {
        let files = files_for(tool, &entry.version, &by_key);
        if files.is_empty() {
            missing.push(entry.version.clone());
            continue;
        }
        for m in files {
            let verified = match &entry.check {
                Some(check) => {
                    let raw = pkg.source().read(m.path())?.unwrap_or_default();
                    match verify(check, &raw, m, &sqlx) {
                        Ok(()) => Some(check.kind()),
                        Err(detail) => {
                            mismatched.push(format!("{} ({}): {detail}", m.path(), entry.version));
                            continue;
                        }
                    }
                }
                None => None,
            };
            applied.insert(m.name(), verified);
        }
    }
    if let Some(limit) = state.up_to {
        for (key, m) in &by_key {
            if key.as_int().is_some_and(|v| v <= limit) {
                applied.entry(m.name()).or_insert(None);
            }
        }
    }
    if let Some(base) = &state.flyway_baseline {
        for m in pkg.migrations() {
            let v = tool_version(tool, pkg, m).and_then(|v| FlywayVersion::parse(&v));
            if v.is_some_and(|v| &v <= base) {
                applied.entry(m.name()).or_insert(None);
            }
        }
    }
    if !mismatched.is_empty() {
        return Err(Error::refused(
            format!(
                "{} migration file(s) differ from what {tool} applied:\n  {}",
                mismatched.len(),
                mismatched.join("\n  ")
            ),
            format!(
                "nothing was recorded. Restore the files as {tool} applied them (git history), or, if the edit is \
                 harmless, repair {tool}'s checksums first; then run adopt again"
            ),
        ));
    }
    let mut warnings = Vec::new();
    if !state.external.is_empty() {
        warnings.push(format!(
            "{} migration(s) {tool} ran have no SQL file (Java or script migrations): left to {tool}, recorded as \
             external in this run's record, not in Strata's history: {}",
            state.external.len(),
            state.external.join(", ")
        ));
    }
    if !missing.is_empty() {
        let text = format!(
            "{tool} recorded version(s) with no migration file: {}",
            missing.join(", ")
        );
        if !opts.allow_missing {
            return Err(Error::refused(
                text,
                "nothing was recorded. Point --dir/--package at the folder that holds every migration, or proceed \
                 with --allow-missing (those versions stay out of Strata's history)",
            ));
        }
        warnings.push(text);
    }

    let bootstrapped = bootstrap_history(session).await?;
    let client = session.client();
    let existing = recorded_names(client, pkg.name()).await?;
    let from_state = history::state_of(&history::applied(client).await?);
    let run_id = history::start_run(client, "adopt", &from_state).await?;
    let source = format!("adopted:{tool}");
    let mut report = AdoptReport {
        source: source.clone(),
        table: Some(state.table.clone()),
        outcome: Outcome::Applied,
        recorded: Vec::new(),
        repeatables: Vec::new(),
        already_recorded: Vec::new(),
        pending: Vec::new(),
        bootstrapped,
        external: state.external.clone(),
        warnings,
        run_id: Some(run_id),
    };
    let mut seen_pending = false;
    for m in pkg.migrations() {
        let label = MigrationId::new(pkg.name(), m.name()).to_string();
        match applied.get(m.name()) {
            Some(verified) => {
                if seen_pending {
                    report.warnings.push(format!(
                        "{label} was applied by {tool} although an earlier migration was not: `strata up` will \
                         need --allow-out-of-order for the earlier one(s)"
                    ));
                }
                if let Some(checksum) = existing.get(m.name()) {
                    if checksum != m.checksum() {
                        return Err(Error::refused(
                            format!("{label} is already in Strata's history with another text"),
                            "nothing was recorded. `strata status` shows the difference",
                        ));
                    }
                    report.already_recorded.push(label);
                    continue;
                }
                history::record_migration(client, pkg, m, Some(run_id), &source, LogAction::Record)
                    .await?;
                report.recorded.push(Adopted {
                    package: pkg.name().to_string(),
                    name: m.name().to_string(),
                    version: tool_version(tool, pkg, m),
                    verified: *verified,
                });
            }
            None if existing.contains_key(m.name()) => report.already_recorded.push(label),
            None => {
                seen_pending = true;
                report.pending.push(label);
            }
        }
    }
    if tool == Tool::Flyway && !state.repeatables.is_empty() {
        let done = crate::decide::repeatable::statuses(client, std::slice::from_ref(pkg)).await?;
        for r in pkg.repeatables() {
            let base = r.path().rsplit('/').next().unwrap_or(r.path());
            let Some(applied_crc) = state.repeatables.get(base) else {
                continue;
            };
            let up_to_date = done
                .iter()
                .any(|s| s.name == r.name() && s.state == RepeatableState::Applied);
            let raw = pkg.source().read(r.path())?.unwrap_or_default();
            if up_to_date || flyway_checksum(&raw) != *applied_crc {
                // Changed since Flyway ran it: `strata up` runs it again, as Flyway would.
                continue;
            }
            history::record_repeatable(
                client,
                pkg,
                r,
                0.0,
                Some(run_id),
                &source,
                LogAction::Record,
            )
            .await?;
            report.repeatables.push(Adopted {
                package: pkg.name().to_string(),
                name: r.name().to_string(),
                version: None,
                verified: Some("crc32"),
            });
        }
    }
    close_run(client, run_id, &report).await?;
    Ok(report)
}

async fn baseline_in(
    session: &mut Session<'_>,
    project: &Project,
    to: &str,
) -> Result<AdoptReport> {
    let target = to.strip_suffix(".sql").unwrap_or(to);
    let (pkg_filter, name) = match target.parse::<MigrationId>() {
        Ok(id) => (Some(id.package), id.name),
        Err(_) => (None, target.to_string()),
    };
    let name = name.as_str();
    let mut found: Vec<(&Package, usize)> = Vec::new();
    for p in project.packages() {
        if pkg_filter.as_deref().is_some_and(|f| f != p.name()) {
            continue;
        }
        if let Some(i) = p.migrations().iter().position(|m| {
            m.name() == name
                || m.path() == to
                || m.tool_version() == Some(name)
                || m.path().rsplit('/').next() == Some(to)
        }) {
            found.push((p, i));
        }
    }
    let (pkg, last) = match found.as_slice() {
        [one] => *one,
        [] => {
            return Err(Error::usage(
                format!("--to {to}: no such migration in the package(s)"),
                Some(
                    "give a migration name as `strata status` lists it (or PACKAGE:NAME, or the tool's version)"
                        .into(),
                ),
            ));
        }
        _ => {
            return Err(Error::usage(
                format!("--to {to} matches migrations in several packages"),
                Some("use PACKAGE:NAME".into()),
            ));
        }
    };
    let bootstrapped = bootstrap_history(session).await?;
    let client = session.client();
    let existing = recorded_names(client, pkg.name()).await?;
    let from_state = history::state_of(&history::applied(client).await?);
    let run_id = history::start_run(client, "baseline", &from_state).await?;
    let mut report = AdoptReport {
        source: "baseline".into(),
        table: None,
        outcome: Outcome::Applied,
        recorded: Vec::new(),
        repeatables: Vec::new(),
        already_recorded: Vec::new(),
        pending: Vec::new(),
        bootstrapped,
        external: Vec::new(),
        warnings: Vec::new(),
        run_id: Some(run_id),
    };
    for (i, m) in pkg.migrations().iter().enumerate() {
        let label = MigrationId::new(pkg.name(), m.name()).to_string();
        if let Some(checksum) = existing.get(m.name()) {
            if i <= last && checksum != m.checksum() {
                return Err(Error::refused(
                    format!("{label} is already in Strata's history with another text"),
                    "nothing was recorded. `strata status` shows the difference",
                ));
            }
            report.already_recorded.push(label);
        } else if i <= last {
            history::record_migration(client, pkg, m, Some(run_id), "baseline", LogAction::Record)
                .await?;
            report.recorded.push(Adopted {
                package: pkg.name().to_string(),
                name: m.name().to_string(),
                version: m.tool_version().map(str::to_string),
                verified: None,
            });
        } else {
            report.pending.push(label);
        }
    }
    close_run(client, run_id, &report).await?;
    Ok(report)
}

async fn close_run(client: &Client, run_id: i64, report: &AdoptReport) -> Result<()> {
    let to_state = history::state_of(&history::applied(client).await?);
    let detail = serde_json::json!({
        "source": report.source,
        "table": report.table,
        "recorded": report.recorded.iter().map(Adopted::id).collect::<Vec<_>>(),
        "repeatables": report.repeatables.iter().map(Adopted::id).collect::<Vec<_>>(),
        "external": report.external,
    });
    history::finish_run(
        client,
        run_id,
        RunOutcome::from(Outcome::Applied),
        Some(&to_state),
        Some(&detail),
        None,
    )
    .await
}

/// Apply Strata's own pending history migrations inside the open transaction and record them (like the first
/// `strata up` does). Returns their names.
pub(crate) async fn bootstrap_history(session: &mut Session<'_>) -> Result<Vec<String>> {
    let strata = strata_package()?;
    let applied = history::applied(session.client()).await?;
    let plan = Plan::compute(
        std::slice::from_ref(&strata),
        &applied,
        &PlanOptions::default(),
    );
    plan.check(&PlanOptions::default())?;
    let mut ran = Vec::new();
    for step in &plan.steps {
        let m = &strata.migrations()[step.migration_index];
        session.ensure_transaction().await?;
        session.enter_package(strata.schemas(), &[]).await?;
        for section in m.up().sections() {
            run_section(session.client(), m.up(), section, false, None)
                .await
                .map_err(|f| Error::from(f.error))?;
        }
        ran.push(m);
    }
    for m in &ran {
        history::record_migration(
            session.client(),
            &strata,
            m,
            None,
            "strata",
            LogAction::Apply,
        )
        .await?;
    }
    Ok(ran
        .iter()
        .map(|m| MigrationId::new(strata.name(), m.name()).to_string())
        .collect())
}

/// `name → checksum` of the package's migrations already in Strata's history.
async fn recorded_names(client: &Client, package: &str) -> Result<HashMap<String, String>> {
    Ok(client
        .query(
            "SELECT name, checksum FROM strata.migration WHERE package = $1",
            &[&package],
        )
        .await
        .map_err(Error::db("reading strata.migration"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect())
}
