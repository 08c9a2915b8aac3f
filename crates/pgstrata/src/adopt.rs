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
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use sha2::{Digest, Sha384};
use tokio_postgres::Client;

use crate::deploy::Outcome;
use crate::error::{Error, Result};
use crate::exec::{Database, run_section};
use crate::history;
use crate::layout::{FlywayVersion, Layout, flyway_checksum};
use crate::observe::Observer;
use crate::package::{Migration, Package};
use crate::plan::{Plan, PlanOptions};
use crate::project::{Project, strata_package};
use crate::session::{Session, SessionSettings};

/// A migration tool whose tracking table `strata adopt` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// dbmate: `schema_migrations(version varchar)`.
    Dbmate,
    /// sqlx: `_sqlx_migrations(version, description, installed_on, success, checksum, execution_time)`.
    Sqlx,
    /// diesel: `__diesel_schema_migrations(version, run_on)`.
    Diesel,
    /// golang-migrate: `schema_migrations(version bigint, dirty boolean)`, one row.
    GolangMigrate,
    /// Flyway: `flyway_schema_history`.
    Flyway,
    /// refinery: `refinery_schema_history(version, name, applied_on, checksum)`.
    Refinery,
}

impl Tool {
    /// Every tool.
    pub const ALL: [Tool; 6] = [
        Tool::Dbmate,
        Tool::Sqlx,
        Tool::Diesel,
        Tool::GolangMigrate,
        Tool::Flyway,
        Tool::Refinery,
    ];

    /// Its name on the command line and in `source = 'adopted:<name>'`.
    pub fn name(self) -> &'static str {
        self.layout().name()
    }

    /// The tracking table the tool creates by default.
    pub fn default_table(self) -> &'static str {
        match self {
            Tool::Dbmate | Tool::GolangMigrate => "schema_migrations",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Flyway => "flyway_schema_history",
            Tool::Refinery => "refinery_schema_history",
        }
    }

    /// The folder layout the tool uses.
    pub fn layout(self) -> Layout {
        match self {
            Tool::Dbmate => Layout::Dbmate,
            Tool::Sqlx => Layout::Sqlx,
            Tool::Diesel => Layout::Diesel,
            Tool::GolangMigrate => Layout::GolangMigrate,
            Tool::Flyway => Layout::Flyway,
            Tool::Refinery => Layout::Refinery,
        }
    }

    /// The tool that uses `layout`, if any (the up/down layout has no tracking table).
    pub fn for_layout(layout: Layout) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.layout() == layout)
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tool {
    type Err = Error;

    fn from_str(s: &str) -> Result<Tool> {
        Tool::ALL
            .into_iter()
            .find(|t| t.name() == s || (s == "golang" && *t == Tool::GolangMigrate))
            .ok_or_else(|| {
                Error::usage(
                    format!("unknown tool `{s}`"),
                    Some(format!(
                        "use one of: {}",
                        Tool::ALL.map(Tool::name).join(", ")
                    )),
                )
            })
    }
}

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
    /// Things worth knowing (out-of-order gaps, versions without files allowed by the options).
    pub warnings: Vec<String>,
    /// Row id in `strata.run`.
    pub run_id: Option<i64>,
}

/// One applied entry of the tool's tracking table.
#[derive(Debug, Clone)]
struct ToolEntry {
    version: String,
    check: Option<Check>,
}

#[derive(Debug, Clone)]
enum Check {
    Sha384(Vec<u8>),
    Crc32(i32),
    SipHash(String),
}

impl Check {
    fn kind(&self) -> &'static str {
        match self {
            Check::Sha384(_) => "sha384",
            Check::Crc32(_) => "crc32",
            Check::SipHash(_) => "siphash13",
        }
    }
}

/// What the tracking table says.
struct ToolState {
    table: String,
    entries: Vec<ToolEntry>,
    /// golang-migrate keeps only the current version: everything up to it is applied.
    up_to: Option<i128>,
    /// Flyway baseline marker: every version up to it counts as applied.
    flyway_baseline: Option<FlywayVersion>,
    /// Flyway repeatables: script name → checksum of the latest successful run.
    repeatables: HashMap<String, i32>,
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
    let client = session.db.client();
    let tool = match opts.from {
        Some(t) => t,
        None => match pkg.layout().and_then(Tool::for_layout) {
            Some(t) => t,
            None => detect_tool(client).await?,
        },
    };
    let table = opts
        .table
        .clone()
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
        let Some(m) = VersionKey::parse(tool, &entry.version).and_then(|k| by_key.get(&k)) else {
            missing.push(entry.version.clone());
            continue;
        };
        let verified = match &entry.check {
            Some(check) => {
                let raw = pkg.source().read(m.path())?.unwrap_or_default();
                match verify(check, &raw, m) {
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
    let client = session.db.client();
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
        warnings,
        run_id: Some(run_id),
    };
    let mut seen_pending = false;
    for m in pkg.migrations() {
        let label = format!("{}:{}", pkg.name(), m.name());
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
                record_migration(client, pkg, m, 0.0, Some(run_id), &source).await?;
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
        let done = crate::repeatable::statuses(client, std::slice::from_ref(pkg)).await?;
        for r in pkg.repeatables() {
            let base = r.path().rsplit('/').next().unwrap_or(r.path());
            let Some(applied_crc) = state.repeatables.get(base) else {
                continue;
            };
            let up_to_date = done.iter().any(|s| {
                s.name == r.name() && s.state == crate::repeatable::RepeatableState::Applied
            });
            let raw = pkg.source().read(r.path())?.unwrap_or_default();
            if up_to_date || flyway_checksum(&raw) != *applied_crc {
                // Changed since Flyway ran it: `strata up` runs it again, as Flyway would.
                continue;
            }
            crate::repeatable::record(client, pkg, r, 0.0, Some(run_id), &source).await?;
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
    let mut found: Vec<(&Package, usize)> = Vec::new();
    for p in project.packages() {
        let (pkg_filter, name) = match target.rsplit_once(':') {
            Some((p, n)) => (Some(p), n),
            None => (None, target),
        };
        if pkg_filter.is_some_and(|f| f != p.name()) {
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
    let client = session.db.client();
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
        warnings: Vec::new(),
        run_id: Some(run_id),
    };
    for (i, m) in pkg.migrations().iter().enumerate() {
        let label = format!("{}:{}", pkg.name(), m.name());
        if let Some(checksum) = existing.get(m.name()) {
            if i <= last && checksum != m.checksum() {
                return Err(Error::refused(
                    format!("{label} is already in Strata's history with another text"),
                    "nothing was recorded. `strata status` shows the difference",
                ));
            }
            report.already_recorded.push(label);
        } else if i <= last {
            record_migration(client, pkg, m, 0.0, Some(run_id), "baseline").await?;
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
        "recorded": report.recorded.iter().map(|a| format!("{}:{}", a.package, a.name)).collect::<Vec<_>>(),
        "repeatables": report.repeatables.iter().map(|a| format!("{}:{}", a.package, a.name)).collect::<Vec<_>>(),
    });
    history::finish_run(
        client,
        run_id,
        "success",
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
    let applied = history::applied(session.db.client()).await?;
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
        session.enter_package(strata.schema(), &[]).await?;
        for section in m.up().sections() {
            run_section(session.db.client(), m.up(), section, false)
                .await
                .map_err(|f| Error::from(f.error))?;
        }
        ran.push(m);
    }
    for m in &ran {
        record_migration(session.db.client(), &strata, m, 0.0, None, "strata").await?;
    }
    Ok(ran
        .iter()
        .map(|m| format!("{}:{}", strata.name(), m.name()))
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

/// Insert or refresh the package's row in `strata.package`.
pub(crate) async fn record_package(client: &Client, pkg: &Package) -> Result<()> {
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
    Ok(())
}

/// Record a migration in `strata.migration` (and the audit log) with its up and down SQL.
pub(crate) async fn record_migration(
    client: &Client,
    pkg: &Package,
    m: &Migration,
    duration_ms: f64,
    run_id: Option<i64>,
    source: &str,
) -> Result<()> {
    record_package(client, pkg).await?;
    let down_sql = m.down_sql();
    client
        .execute(
            "WITH m AS (
               INSERT INTO strata.migration
                      (package, name, path, checksum, up_sql, down_sql, no_transaction, duration_ms,
                       strata_version, run_id, source)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
               RETURNING package, name, checksum)
             INSERT INTO strata.migration_log (run_id, package, name, action, checksum, duration_ms)
             SELECT $10, package, name, CASE WHEN $11 = 'strata' THEN 'apply' ELSE 'record' END, checksum, $8
               FROM m",
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
                &run_id,
                &source,
            ],
        )
        .await
        .map_err(Error::db(format!(
            "recording {}:{} in strata.migration",
            pkg.name(),
            m.name()
        )))?;
    Ok(())
}

/// Which tracking table is in the database (its search path).
async fn detect_tool(client: &Client) -> Result<Tool> {
    let mut found = Vec::new();
    for tool in Tool::ALL {
        if tool == Tool::GolangMigrate {
            continue;
        }
        if let Some(table) = resolve_table(client, tool.default_table()).await? {
            let tool = if tool == Tool::Dbmate && has_column(client, &table, "dirty").await? {
                Tool::GolangMigrate
            } else {
                tool
            };
            found.push(tool);
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::usage(
            format!(
                "no other tool's tracking table in this database (looked for {})",
                [
                    "schema_migrations",
                    "_sqlx_migrations",
                    "__diesel_schema_migrations",
                    "flyway_schema_history",
                    "refinery_schema_history"
                ]
                .join(", ")
            ),
            Some(
                "for a database no tool tracked, record what it already has with `strata baseline --to NAME`; \
                 for a table in another schema, pass --from TOOL --table SCHEMA.TABLE"
                    .into(),
            ),
        )),
        several => Err(Error::usage(
            format!(
                "several tools' tracking tables are in this database: {}",
                several.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
            ),
            Some("pass --from TOOL".into()),
        )),
    }
}

/// The table's quoted, schema-qualified name, if it exists.
async fn resolve_table(client: &Client, name: &str) -> Result<Option<String>> {
    let row = client
        .query_one(
            "SELECT to_regclass($1)::text, to_regclass($1)::oid",
            &[&name],
        )
        .await
        .map_err(|e| Error::usage(format!("invalid table name `{name}`: {e}"), None))?;
    let text: Option<String> = row.get(0);
    let oid: Option<u32> = row.get(1);
    match (text, oid) {
        (Some(_), Some(oid)) => {
            let qualified: String = client
                .query_one(
                    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                    &[&oid],
                )
                .await
                .map_err(Error::db("reading the tracking table's name"))?
                .get(0);
            Ok(Some(qualified))
        }
        _ => Ok(None),
    }
}

async fn has_column(client: &Client, table: &str, column: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2
                               AND NOT attisdropped AND attnum > 0)",
            &[&table, &column],
        )
        .await
        .map_err(Error::db("reading the tracking table's columns"))?
        .get(0))
}

async fn read_tool_state(client: &Client, tool: Tool, table: &str) -> Result<ToolState> {
    let Some(qualified) = resolve_table(client, table).await? else {
        return Err(Error::usage(
            format!("{tool}'s tracking table {table} is not in this database"),
            Some(
                "check the connection settings (database, search_path), or pass --table SCHEMA.TABLE".into(),
            ),
        ));
    };
    let is_golang = has_column(client, &qualified, "dirty").await?;
    match (tool, is_golang) {
        (Tool::Dbmate, true) => {
            return Err(Error::usage(
                format!(
                    "{qualified} has a `dirty` column: it is golang-migrate's table, not dbmate's"
                ),
                Some("use --from golang-migrate".into()),
            ));
        }
        (Tool::GolangMigrate, false) => {
            return Err(Error::usage(
                format!("{qualified} has no `dirty` column: it is not golang-migrate's table"),
                Some("use --from dbmate if dbmate created it".into()),
            ));
        }
        _ => {}
    }
    let query = |sql: &str| sql.replace("{t}", &qualified);
    let db_err = || Error::db(format!("reading {qualified}"));
    let mut state = ToolState {
        table: qualified.clone(),
        entries: Vec::new(),
        up_to: None,
        flyway_baseline: None,
        repeatables: HashMap::new(),
    };
    match tool {
        Tool::Dbmate | Tool::Diesel => {
            for r in client
                .query(&query("SELECT version::text FROM {t} ORDER BY 1"), &[])
                .await
                .map_err(db_err())?
            {
                state.entries.push(ToolEntry {
                    version: r.get(0),
                    check: None,
                });
            }
        }
        Tool::GolangMigrate => {
            let rows = client
                .query(&query("SELECT version::bigint, dirty FROM {t}"), &[])
                .await
                .map_err(db_err())?;
            match rows.as_slice() {
                [] => {}
                [row] => {
                    let version: i64 = row.get(0);
                    let dirty: bool = row.get(1);
                    if dirty {
                        return Err(Error::refused(
                            format!(
                                "golang-migrate marked version {version} dirty: it failed part-way, and the database \
                                 may hold some of its changes"
                            ),
                            format!(
                                "nothing was recorded. Check the database by hand, finish or undo migration {version}, \
                                 then clear the flag with `migrate force {version}` (if it is complete) or \
                                 `migrate force <previous version>`, and adopt again"
                            ),
                        ));
                    }
                    // golang-migrate uses -1 for "nothing applied" after a full rollback.
                    if version >= 0 {
                        state.up_to = Some(i128::from(version));
                    }
                }
                _ => {
                    return Err(Error::refused(
                        format!(
                            "{qualified} has {} rows; golang-migrate keeps exactly one",
                            rows.len()
                        ),
                        "nothing was recorded. Is this really golang-migrate's table?",
                    ));
                }
            }
        }
        Tool::Sqlx => {
            for r in client
                .query(
                    &query(
                        "SELECT version, description, success, checksum FROM {t} ORDER BY version",
                    ),
                    &[],
                )
                .await
                .map_err(db_err())?
            {
                let version: i64 = r.get(0);
                let description: String = r.get(1);
                let success: bool = r.get(2);
                if !success {
                    return Err(Error::refused(
                        format!(
                            "sqlx recorded migration {version} ({description}) as failed (success = false): it \
                             stopped part-way"
                        ),
                        format!(
                            "nothing was recorded. Check the database by hand, complete or undo migration {version}, \
                             then delete its row from {qualified} (or set success = true if it is complete), and \
                             adopt again"
                        ),
                    ));
                }
                state.entries.push(ToolEntry {
                    version: version.to_string(),
                    check: Some(Check::Sha384(r.get(3))),
                });
            }
        }
        Tool::Refinery => {
            for r in client
                .query(
                    &query("SELECT version::bigint, checksum FROM {t} ORDER BY 1"),
                    &[],
                )
                .await
                .map_err(db_err())?
            {
                let version: i64 = r.get(0);
                state.entries.push(ToolEntry {
                    version: version.to_string(),
                    check: Some(Check::SipHash(r.get(1))),
                });
            }
        }
        Tool::Flyway => read_flyway(client, &qualified, &mut state).await?,
    }
    Ok(state)
}

async fn read_flyway(client: &Client, table: &str, state: &mut ToolState) -> Result<()> {
    let rows = client
        .query(
            &format!(
                "SELECT installed_rank, version, description, type, script, checksum, success
                   FROM {table} ORDER BY installed_rank"
            ),
            &[],
        )
        .await
        .map_err(Error::db(format!("reading {table}")))?;
    // Replay the history: an undo un-applies its version, a later run of a repeatable replaces the earlier one.
    let mut versioned: BTreeMap<Vec<u128>, ToolEntry> = BTreeMap::new();
    for r in rows {
        let rank: i32 = r.get(0);
        let version: Option<String> = r.get(1);
        let description: String = r.get(2);
        let kind: String = r.get(3);
        let script: String = r.get(4);
        let checksum: Option<i32> = r.get(5);
        let success: bool = r.get(6);
        if !success {
            return Err(Error::refused(
                format!(
                    "Flyway recorded a failed migration: {script} (rank {rank}, version {})",
                    version.as_deref().unwrap_or("repeatable")
                ),
                format!(
                    "nothing was recorded. Clean up what it left in the database, then run `flyway repair` (it removes \
                     failed entries from {table}) and adopt again"
                ),
            ));
        }
        let parsed = version.as_deref().and_then(FlywayVersion::parse);
        match (kind.as_str(), parsed) {
            ("SCHEMA", _) | ("DELETE", _) => {}
            ("BASELINE", Some(v)) => state.flyway_baseline = Some(v),
            ("UNDO_SQL", Some(v)) => {
                versioned.remove(v.parts());
            }
            ("SQL", Some(v)) => {
                versioned.insert(
                    v.parts().to_vec(),
                    ToolEntry {
                        version: v.to_string(),
                        check: checksum.map(Check::Crc32),
                    },
                );
            }
            ("SQL", None) => {
                let base = script.rsplit('/').next().unwrap_or(&script).to_string();
                if let Some(c) = checksum {
                    state.repeatables.insert(base, c);
                }
            }
            (other, _) => {
                return Err(Error::refused(
                    format!(
                        "{table} has a {other} migration ({script}, {description}): only SQL migrations can be \
                         adopted"
                    ),
                    "Java and script migrations have no SQL file Strata could record",
                ));
            }
        }
    }
    state.entries = versioned.into_values().collect();
    Ok(())
}

/// A tool's version, comparable between the table and the files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum VersionKey {
    Text(String),
    Int(i128),
    Parts(Vec<u128>),
}

impl VersionKey {
    fn parse(tool: Tool, v: &str) -> Option<VersionKey> {
        match tool {
            Tool::Dbmate | Tool::Diesel => Some(VersionKey::Text(v.to_string())),
            Tool::Sqlx | Tool::GolangMigrate | Tool::Refinery => {
                v.trim().parse::<i128>().ok().map(VersionKey::Int)
            }
            Tool::Flyway => FlywayVersion::parse(v).map(|f| VersionKey::Parts(f.parts().to_vec())),
        }
    }

    fn as_int(&self) -> Option<i128> {
        match self {
            VersionKey::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// The version `tool` gives migration `m`: from the layout it was read with, or else from its name (a package
/// converted to Strata's manifest that kept the tool's file names).
fn tool_version(tool: Tool, pkg: &Package, m: &Migration) -> Option<String> {
    if pkg.layout() == Some(tool.layout()) {
        return m.tool_version().map(str::to_string);
    }
    let name = m.name();
    match tool {
        Tool::Dbmate => crate::layout::leading_digits(name).map(|(d, _)| d.to_string()),
        Tool::Sqlx => name
            .split_once('_')
            .and_then(|(v, _)| v.parse::<i64>().ok())
            .map(|v| v.to_string()),
        Tool::GolangMigrate => crate::layout::leading_digits(name)
            .filter(|(_, rest)| rest.starts_with('_'))
            .map(|(d, _)| d.to_string()),
        Tool::Diesel => Some(name.split('_').next().unwrap_or(name).replace('-', "")),
        Tool::Flyway | Tool::Refinery => name
            .strip_prefix(['V', 'U'])
            .and_then(|rest| rest.split_once("__"))
            .map(|(v, _)| v.replace('_', ".")),
    }
}

/// Check a tool's checksum against the file's raw text.
fn verify(check: &Check, raw: &str, m: &Migration) -> std::result::Result<(), String> {
    match check {
        Check::Sha384(expected) => {
            let actual = Sha384::digest(raw.as_bytes());
            if actual.as_slice() == expected.as_slice() {
                Ok(())
            } else {
                Err(format!(
                    "sqlx checksum {} != file {}",
                    short_hex(expected),
                    short_hex(&actual)
                ))
            }
        }
        Check::Crc32(expected) => {
            let actual = flyway_checksum(raw);
            if actual == *expected {
                Ok(())
            } else {
                Err(format!("Flyway checksum {expected} != file {actual}"))
            }
        }
        Check::SipHash(expected) => {
            let base = m.path().rsplit('/').next().unwrap_or(m.path());
            let Some((_, version, name)) = refinery_parts(base) else {
                return Err("not a refinery file name".into());
            };
            let matches = refinery_checksums(name, version, raw)
                .iter()
                .any(|c| c.to_string() == expected.trim());
            if matches {
                Ok(())
            } else {
                Err(format!(
                    "refinery checksum {expected} does not match the file"
                ))
            }
        }
    }
}

fn refinery_parts(base: &str) -> Option<(char, i64, &str)> {
    let stem = base.strip_suffix(".sql")?;
    let prefix = stem.chars().next()?;
    let (version, name) = stem.get(1..)?.split_once("__")?;
    Some((prefix, version.parse().ok()?, name))
}

/// refinery's checksum: SipHash-1-3 (keys 0) of name, version and SQL through `std::hash::Hash`; the version is an
/// `i32`, or an `i64` with refinery's `int8-versions` feature, so both are returned.
fn refinery_checksums(name: &str, version: i64, sql: &str) -> Vec<u64> {
    let mut out = Vec::new();
    if let Ok(v32) = i32::try_from(version) {
        let mut h = siphasher::sip::SipHasher13::new();
        name.hash(&mut h);
        v32.hash(&mut h);
        sql.hash(&mut h);
        out.push(h.finish());
    }
    let mut h = siphasher::sip::SipHasher13::new();
    name.hash(&mut h);
    version.hash(&mut h);
    sql.hash(&mut h);
    out.push(h.finish());
    out
}

fn short_hex(bytes: &[u8]) -> String {
    let hex = hex::encode(bytes);
    format!("{}…", &hex[..hex.len().min(16)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_round_trip() {
        for t in Tool::ALL {
            assert_eq!(t.name().parse::<Tool>().unwrap(), t);
            assert_eq!(Tool::for_layout(t.layout()), Some(t));
        }
        assert_eq!(Tool::for_layout(Layout::UpDown), None);
    }

    #[test]
    fn version_keys_compare_like_each_tool() {
        assert_eq!(
            VersionKey::parse(Tool::Sqlx, "0001"),
            VersionKey::parse(Tool::Sqlx, "1")
        );
        assert_ne!(
            VersionKey::parse(Tool::Dbmate, "0001"),
            VersionKey::parse(Tool::Dbmate, "1")
        );
        assert_eq!(
            VersionKey::parse(Tool::Flyway, "1.0"),
            VersionKey::parse(Tool::Flyway, "1")
        );
    }

    #[test]
    fn refinery_checksum_is_stable() {
        // Same inputs, same value; the i32 and i64 variants differ.
        let a = refinery_checksums("initial", 1, "CREATE TABLE t ();");
        let b = refinery_checksums("initial", 1, "CREATE TABLE t ();");
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert_ne!(a[0], a[1]);
    }
}
