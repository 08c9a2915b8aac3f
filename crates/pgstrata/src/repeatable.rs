//! Repeatable scripts: Flyway's `R__*.sql` and the functions folder of the up/down layout.
//!
//! A repeatable is re-run whenever its text changes, after the versioned migrations of the run (package by
//! package, in deploy order; within a package in the layout's order), and recorded in `strata.repeatable` with its
//! checksum and text. It is what Flyway does with `R__` files; Strata's managed code (functions and views declared as
//! code) will take these scripts over, and until then they work on their own. `strata down` does not touch them.

use std::time::Instant;

use crate::deploy::RanMigration;
use crate::error::{Error, Result};
use crate::exec::run_section;
use crate::observe::{Event, Observer};
use crate::package::{Package, Script, checksum};
use crate::session::{Session, ms};

/// A script re-applied whenever its text changes.
#[derive(Debug, Clone)]
pub struct Repeatable {
    name: String,
    path: String,
    script: Script,
    checksum: String,
}

impl Repeatable {
    pub(crate) fn new(name: String, path: String, script: Script) -> Repeatable {
        let checksum = checksum(script.text());
        Repeatable {
            name,
            path,
            script,
            checksum,
        }
    }

    /// Its identity: the file's base name without `.sql` (`R__views`), or its path under `functions/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path relative to the package root.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The script (normalised text and sections).
    pub fn script(&self) -> &Script {
        &self.script
    }

    /// `sha256:<hex>` of the normalised text.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }
}

/// Whether a repeatable is up to date in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepeatableState {
    /// Applied with the current text.
    Applied,
    /// Never applied.
    Pending,
    /// Applied, but the text changed since: it runs again.
    Changed,
}

/// One repeatable's line in a plan or status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepeatableStatus {
    /// Package.
    pub package: String,
    /// Repeatable name.
    pub name: String,
    /// Path relative to the package root.
    pub path: String,
    /// State.
    pub state: RepeatableState,
    /// Checksum of the file.
    pub checksum: String,
    /// Checksum recorded when last applied.
    pub applied_checksum: Option<String>,
    /// Runs outside a transaction.
    pub no_transaction: bool,
}

/// Compare every package's repeatables with `strata.repeatable` (all pending when the table does not exist yet).
pub(crate) async fn statuses(
    client: &tokio_postgres::Client,
    packages: &[Package],
) -> Result<Vec<RepeatableStatus>> {
    if packages.iter().all(|p| p.repeatables().is_empty()) {
        return Ok(Vec::new());
    }
    let exists: bool = client
        .query_one("SELECT to_regclass('strata.repeatable') IS NOT NULL", &[])
        .await
        .map_err(Error::db("checking for strata.repeatable"))?
        .get(0);
    let applied: std::collections::HashMap<(String, String), String> = if exists {
        client
            .query("SELECT package, name, checksum FROM strata.repeatable", &[])
            .await
            .map_err(Error::db("reading strata.repeatable"))?
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect()
    } else {
        Default::default()
    };
    let mut out = Vec::new();
    for p in packages {
        for r in p.repeatables() {
            let applied_checksum = applied
                .get(&(p.name().to_string(), r.name().to_string()))
                .cloned();
            let state = match &applied_checksum {
                Some(c) if c == r.checksum() => RepeatableState::Applied,
                Some(_) => RepeatableState::Changed,
                None => RepeatableState::Pending,
            };
            out.push(RepeatableStatus {
                package: p.name().to_string(),
                name: r.name().to_string(),
                path: r.path().to_string(),
                state,
                checksum: r.checksum().to_string(),
                applied_checksum,
                no_transaction: r.script().has_no_transaction_section(),
            });
        }
    }
    Ok(out)
}

/// Run the repeatables that are not up to date and record them. A dry run stops before the first no-transaction
/// one (returned as the second value).
pub(crate) async fn apply_pending(
    session: &mut Session<'_>,
    packages: &[Package],
    statuses: &[RepeatableStatus],
    run_id: Option<i64>,
    dry_run: bool,
    observer: &mut dyn Observer,
) -> Result<(Vec<RanMigration>, Option<String>)> {
    let pending: Vec<&RepeatableStatus> = statuses
        .iter()
        .filter(|s| s.state != RepeatableState::Applied)
        .collect();
    let mut ran = Vec::with_capacity(pending.len());
    for (index, status) in pending.iter().enumerate() {
        let Some(pkg) = packages.iter().find(|p| p.name() == status.package) else {
            continue;
        };
        let Some(r) = pkg.repeatables().iter().find(|r| r.name() == status.name) else {
            continue;
        };
        let label = format!("{}:{}", pkg.name(), r.name());
        if dry_run && r.script().has_no_transaction_section() {
            return Ok((ran, Some(label)));
        }
        observer.event(Event::MigrationStarted {
            package: pkg.name(),
            name: r.name(),
            index,
            total: pending.len(),
        });
        let started = Instant::now();
        let mut statements = 0;
        let mut notices = Vec::new();
        for section in r.script().sections() {
            if section.no_transaction {
                session.leave_transaction().await?;
            } else {
                session.ensure_transaction().await?;
            }
            session
                .enter_package(pkg.schema(), pkg.extensions())
                .await?;
            match run_section(
                session.db.client(),
                r.script(),
                section,
                section.no_transaction,
            )
            .await
            {
                Ok(o) => statements += o.statements,
                Err(f) => {
                    let mut error = f.error;
                    error.migration = Some(label);
                    error.committed_statements = f.committed;
                    return Err(error.into());
                }
            }
            notices.extend(session.notices());
        }
        let duration_ms = ms(started.elapsed());
        session.ensure_transaction().await?;
        record(session.db.client(), pkg, r, duration_ms, run_id, "strata").await?;
        observer.event(Event::MigrationFinished {
            package: pkg.name(),
            name: r.name(),
            duration: started.elapsed(),
        });
        ran.push(RanMigration {
            package: pkg.name().to_string(),
            name: r.name().to_string(),
            origin: r.script().origin().to_string(),
            duration_ms,
            statements,
            no_transaction: r.script().has_no_transaction_section(),
            notices,
        });
    }
    Ok((ran, None))
}

/// Record (or update) an applied repeatable, and its package.
pub(crate) async fn record(
    client: &tokio_postgres::Client,
    pkg: &Package,
    r: &Repeatable,
    duration_ms: f64,
    run_id: Option<i64>,
    source: &str,
) -> Result<()> {
    crate::adopt::record_package(client, pkg).await?;
    client
        .execute(
            "WITH r AS (
               INSERT INTO strata.repeatable
                      (package, name, path, checksum, sql, duration_ms, strata_version, run_id, source)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
               ON CONFLICT (package, name) DO UPDATE
                  SET path = EXCLUDED.path, checksum = EXCLUDED.checksum, sql = EXCLUDED.sql,
                      applied_at = clock_timestamp(), applied_by = current_user,
                      duration_ms = EXCLUDED.duration_ms, strata_version = EXCLUDED.strata_version,
                      run_id = EXCLUDED.run_id, source = EXCLUDED.source
               RETURNING package, name, checksum)
             INSERT INTO strata.migration_log (run_id, package, name, action, checksum, duration_ms)
             SELECT $8, package, name, CASE WHEN $9 = 'strata' THEN 'apply' ELSE 'record' END, checksum, $6 FROM r",
            &[
                &pkg.name(),
                &r.name(),
                &r.path(),
                &r.checksum(),
                &r.script().text(),
                &duration_ms,
                &crate::VERSION,
                &run_id,
                &source,
            ],
        )
        .await
        .map_err(Error::db(format!(
            "recording repeatable {}:{} in strata.repeatable",
            pkg.name(),
            r.name()
        )))?;
    Ok(())
}
