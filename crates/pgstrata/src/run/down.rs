//! `down`: revert applied migrations, newest first, with the down SQL **stored in the database** — so a rollback
//! works even after the code that contained the migration was rolled back.

use std::time::Instant;

use crate::db::exec::{Database, run_section};
use crate::db::history::{self, AppliedMigration};
use crate::db::session::{Session, SessionSettings};
use crate::error::{Error, Result};
use crate::observe::{Event, Observer};
use crate::report::{MigrationId, Outcome, RanMigration, RunOutcome, ms};
use crate::source::STRATA_PACKAGE;
use crate::source::package::Script;

/// Which migrations to revert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownTarget {
    /// The newest N applied migrations.
    Steps(usize),
    /// Everything applied after this migration (`NAME` or `PACKAGE:NAME`), which stays applied.
    To(String),
}

impl Default for DownTarget {
    fn default() -> Self {
        DownTarget::Steps(1)
    }
}

/// Options for [`down`].
#[derive(Debug, Clone, Default)]
pub struct DownOptions {
    /// How far to go.
    pub target: DownTarget,
    /// Only these packages (None: every package except Strata's own).
    pub packages: Option<Vec<String>>,
    /// Run, then roll back.
    pub dry_run: bool,
    /// Session settings.
    pub session: SessionSettings,
}

/// What `down` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DownReport {
    /// How it ended (`applied` means reverted).
    pub outcome: Outcome,
    /// Row in `strata.run`.
    pub run_id: Option<i64>,
    /// Migrations reverted, in the order they ran (newest first).
    pub migrations: Vec<RanMigration>,
    /// A dry run stops before the first migration whose down SQL runs outside a transaction (it could not be
    /// rolled back): which one.
    pub stopped_before: Option<String>,
    /// Total wall time.
    pub duration_ms: f64,
    /// Managed routines whose bodies no longer compile after the rollback: it dropped something they use
    /// (checked after the commit; empty for a dry run).
    pub broken: Vec<crate::report::code::BrokenObject>,
}

/// Revert migrations with their stored down SQL, in one transaction (split only by no-transaction down sections).
pub async fn down(
    db: &mut Database,
    opts: &DownOptions,
    observer: &mut dyn Observer,
) -> Result<DownReport> {
    let started = Instant::now();
    let mut session = Session::open(db, opts.session.clone(), observer).await?;
    let mut ran = Vec::new();
    let mut run_id = None;
    let mut from_state = serde_json::Value::Null;
    let mut stopped_before = None;
    let result = revert(
        &mut session,
        opts,
        observer,
        &mut ran,
        &mut run_id,
        &mut from_state,
        &mut stopped_before,
    )
    .await;
    match result {
        Ok(outcome) => {
            session.close().await;
            drop(session);
            // The rollback may have dropped what managed code uses: re-check it, so the damage is reported now
            // rather than when the code is next called (`status` reports it too).
            let broken = if opts.dry_run || ran.is_empty() {
                Vec::new()
            } else {
                crate::db::broken::broken_routines(db.client(), opts.packages.as_deref()).await?
            };
            Ok(DownReport {
                outcome,
                run_id,
                migrations: ran,
                stopped_before,
                duration_ms: ms(started.elapsed()),
                broken,
            })
        }
        Err(e) => {
            let in_tx = session.in_transaction();
            session.abort().await;
            let reverted_before: Vec<String> = if in_tx {
                Vec::new()
            } else {
                ran.iter()
                    .map(|r| MigrationId::new(&r.package, &r.name).to_string())
                    .collect()
            };
            let mut e = e;
            if let Error::Sql(s) = &mut e {
                s.rolled_back = reverted_before.is_empty() && s.committed_statements.is_empty();
            }
            if !opts.dry_run
                && !matches!(
                    e,
                    Error::Usage { .. } | Error::Refused { .. } | Error::LockTimeout { .. }
                )
            {
                history::record_failed_run(
                    session.client(),
                    "down",
                    &from_state,
                    &serde_json::json!({ "reverted_before_failure": reverted_before }),
                    &e.to_string(),
                    None,
                )
                .await;
            }
            Err(e)
        }
    }
}

async fn revert(
    session: &mut Session<'_>,
    opts: &DownOptions,
    observer: &mut dyn Observer,
    ran: &mut Vec<RanMigration>,
    run_id: &mut Option<i64>,
    from_state: &mut serde_json::Value,
    stopped_before: &mut Option<String>,
) -> Result<Outcome> {
    let client = session.client();
    let applied = history::applied(client).await?;
    *from_state = history::state_of(&applied);
    let selected = select(&applied, opts)?;
    if selected.is_empty() {
        session.rollback().await?;
        return Ok(Outcome::Noop);
    }
    let no_down: Vec<String> = selected
        .iter()
        .filter(|a| !a.has_down)
        .map(|a| MigrationId::new(&a.package, &a.name).to_string())
        .collect();
    if !no_down.is_empty() {
        return Err(Error::refused(
            format!("no down SQL was recorded for: {}", no_down.join(", ")),
            "nothing was reverted. A migration without a down part (no `-- migrate:down` section and no \
             NAME.down.sql file when it was applied) cannot be rolled back by Strata",
        ));
    }
    let schemas: std::collections::HashMap<String, String> = client
        .query("SELECT name, schema_name FROM strata.package", &[])
        .await
        .map_err(Error::db("reading strata.package"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut scripts = Vec::new();
    for a in &selected {
        let text = history::stored_down_sql(client, &a.package, &a.name)
            .await?
            .unwrap_or_default();
        let origin = format!(
            "stored down SQL of {}",
            MigrationId::new(&a.package, &a.name)
        );
        scripts.push(Script::stored_down(origin, &text)?);
    }
    if !opts.dry_run {
        if scripts.iter().any(Script::has_no_transaction_section) {
            session.hold_across_commits().await?;
        }
        *run_id = Some(history::start_run(session.client(), "down", from_state).await?);
    }
    observer.event(Event::Planned {
        total: selected.len(),
    });
    let total = selected.len();
    for (index, (a, script)) in selected.iter().zip(&scripts).enumerate() {
        if opts.dry_run && script.has_no_transaction_section() {
            *stopped_before = Some(MigrationId::new(&a.package, &a.name).to_string());
            break;
        }
        observer.event(Event::MigrationStarted {
            package: &a.package,
            name: &a.name,
            index,
            total,
        });
        let started = Instant::now();
        let mut statements = 0;
        let label = MigrationId::new(&a.package, &a.name).to_string();
        let schema = schemas
            .get(&a.package)
            .cloned()
            .unwrap_or_else(|| "public".into());
        for section in script.sections() {
            if section.no_transaction {
                session.leave_transaction().await?;
            } else {
                session.ensure_transaction().await?;
            }
            session
                .enter_package(std::slice::from_ref(&schema), &[])
                .await?;
            // Stored down SQL is package code too: checked after every statement (it runs as the login).
            let boundary = if section.no_transaction {
                None
            } else {
                Some(session.boundary(None).await?)
            };
            match run_section(
                session.client(),
                script,
                section,
                section.no_transaction,
                boundary.as_ref(),
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
        }
        let duration_ms = ms(started.elapsed());
        history::record_revert(session.client(), &a.package, &a.name, *run_id, duration_ms).await?;
        let notices = session.notices();
        observer.event(Event::MigrationFinished {
            package: &a.package,
            name: &a.name,
            duration: started.elapsed(),
        });
        ran.push(RanMigration {
            package: a.package.clone(),
            name: a.name.clone(),
            origin: script.origin().to_string(),
            duration_ms,
            statements,
            no_transaction: script.has_no_transaction_section(),
            notices,
        });
    }
    if opts.dry_run {
        session.rollback().await?;
        return Ok(Outcome::DryRun);
    }
    session.ensure_transaction().await?;
    if let Some(id) = *run_id {
        let to_state = history::state_of(&history::applied(session.client()).await?);
        history::finish_run(
            session.client(),
            id,
            RunOutcome::from(Outcome::Applied),
            Some(&to_state),
            None,
            None,
        )
        .await?;
    }
    session.commit().await?;
    observer.event(Event::Committed);
    Ok(Outcome::Applied)
}

/// The migrations to revert, newest first.
fn select<'a>(
    applied: &'a [AppliedMigration],
    opts: &DownOptions,
) -> Result<Vec<&'a AppliedMigration>> {
    let newest_first: Vec<&AppliedMigration> = applied
        .iter()
        .rev()
        .filter(|a| a.package != STRATA_PACKAGE)
        .filter(|a| {
            opts.packages
                .as_ref()
                .is_none_or(|ps| ps.iter().any(|p| p == &a.package))
        })
        .collect();
    match &opts.target {
        DownTarget::Steps(n) => Ok(newest_first.into_iter().take(*n).collect()),
        DownTarget::To(target) => {
            let target = target.strip_suffix(".sql").unwrap_or(target);
            let matches =
                |a: &AppliedMigration| MigrationId::new(&a.package, &a.name).matches(target);
            let Some(pos) = newest_first.iter().position(|a| matches(a)) else {
                return Err(Error::usage(
                    format!("--to {target}: no such applied migration"),
                    Some(
                        "`strata status` lists applied migrations; use NAME or PACKAGE:NAME".into(),
                    ),
                ));
            };
            Ok(newest_first.into_iter().take(pos).collect())
        }
    }
}
