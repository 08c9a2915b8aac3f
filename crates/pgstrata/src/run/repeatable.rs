//! Repeatable scripts: Flyway's `R__*.sql`.
//!
//! A repeatable is re-run whenever its text changes, after the versioned migrations of the run (package by
//! package, in deploy order; within a package in the layout's order), and recorded in `strata.repeatable` with its
//! checksum and text. It is what Flyway does with `R__` files; Strata's managed code (functions and views declared as
//! code) will take these scripts over, and until then they work on their own. `strata down` does not touch them.

use std::time::Instant;

use crate::db::exec::run_section;
use crate::db::history::{self, LogAction};
use crate::db::session::Session;
use crate::decide::repeatable::{RepeatableState, RepeatableStatus};
use crate::error::Result;
use crate::observe::{Event, Observer};
use crate::report::{MigrationId, RanMigration, ms};
use crate::source::package::Package;

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
        let label = MigrationId::new(pkg.name(), r.name());
        if dry_run && r.script().has_no_transaction_section() {
            return Ok((ran, Some(label.to_string())));
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
                .enter_package(pkg.schemas(), pkg.extensions())
                .await?;
            let boundary = if section.no_transaction {
                None
            } else {
                Some(session.boundary(None).await?)
            };
            match run_section(
                session.client(),
                r.script(),
                section,
                section.no_transaction,
                boundary.as_ref(),
            )
            .await
            {
                Ok(o) => statements += o.statements,
                Err(f) => {
                    let mut error = f.error;
                    error.migration = Some(label.to_string());
                    error.committed_statements = f.committed;
                    return Err(error.into());
                }
            }
            notices.extend(session.notices());
        }
        let duration_ms = ms(started.elapsed());
        session.ensure_transaction().await?;
        history::record_repeatable(
            session.client(),
            pkg,
            r,
            duration_ms,
            run_id,
            "strata",
            LogAction::Apply,
        )
        .await?;
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
