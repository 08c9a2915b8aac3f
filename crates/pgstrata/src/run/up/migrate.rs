//! Running one migration inside `up`: its sections in or outside a transaction, as its package's role, resuming
//! after the statements a failed run committed, and recording it in the history.

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Instant;

use pgstrata_sql::migration::Section;

use super::UpRun;
use crate::db::exec::{SectionFailure, run_split};
use crate::db::history;
use crate::db::roles;
use crate::db::session::Session;
use crate::decide::guard;
use crate::error::{Error, Result};
use crate::observe::{Event, Observer};
use crate::report::{MigrationId, RanMigration, ResumedMigration, ms};
use crate::source::package::{Migration, Package, Script};

/// The statements of a section, as split (byte ranges into the script, and the parse).
type Statements = [(Range<usize>, pgstrata_sql::Statement)];

impl UpRun<'_> {
    /// Run migration `m` of package `package_index` and record it.
    pub(super) async fn apply(
        &mut self,
        session: &mut Session<'_>,
        package_index: usize,
        m: &Migration,
        observer: &mut dyn Observer,
    ) -> Result<RanMigration> {
        let pkg = &self.packages[package_index];
        let id = MigrationId::new(pkg.name(), m.name());
        let label = id.to_string();
        let started = Instant::now();
        let mut statements = 0;
        let mut notices = Vec::new();
        let script: &Script = m.up();
        // Resuming: statements the failed run committed, in order; skipped while they lead the migration.
        let resume = self.resume.get(&id).cloned();
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
                    self.done.resumed.push(ResumedMigration {
                        migration: label.clone(),
                        skipped_statements: first,
                        failed_run: r.run_id,
                    });
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
                .run_section(session, pkg, script, section, &all[first..], &label)
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
            self.segments.uncommitted.push(id);
        } else {
            self.segments.committed.push(id);
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

    /// One section: in the open transaction, or (no-transaction) after committing it, as the package's role.
    async fn run_section(
        &mut self,
        session: &mut Session<'_>,
        pkg: &Package,
        script: &Script,
        section: &Section,
        statements: &Statements,
        label: &str,
    ) -> Result<usize> {
        if section.no_transaction {
            if session.in_transaction() {
                self.flush_records(session).await?;
                session.leave_transaction().await?;
                self.segments.commit();
            } else {
                session.leave_transaction().await?;
            }
        } else {
            session.ensure_transaction().await?;
        }
        let role = roles::role_of(pkg);
        if session.role() != role.as_deref() {
            // Schemas and extensions are created as the login.
            session.set_role(None).await?;
        }
        session
            .enter_package(pkg.schemas(), pkg.extensions())
            .await?;
        session.set_role(role.as_deref()).await?;
        let result = self
            .run_statements(session, pkg, script, section, statements, label)
            .await;
        if role.is_some() && !session.in_transaction() {
            // Outside a transaction the role was set for the session: back to the login at once.
            session.set_role(None).await?;
        }
        result
    }

    /// The statements of one section (from the first one a resume did not skip), in or outside a transaction.
    async fn run_statements(
        &mut self,
        session: &mut Session<'_>,
        pkg: &Package,
        script: &Script,
        section: &Section,
        statements: &Statements,
        label: &str,
    ) -> Result<usize> {
        let fail = |f: Box<SectionFailure>, committed: Vec<String>| -> Error {
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
            // as split already.
            let ranges: Vec<Range<usize>> = statements.iter().map(|(r, _)| r.clone()).collect();
            return match run_split(session.client(), script, &ranges, false).await {
                Ok(o) => Ok(o.statements),
                Err(f) => Err(fail(f, Vec::new())),
            };
        }
        // Outside a transaction, statement by statement; CONCURRENTLY statements run without lock_timeout.
        let section_text = section.text(script.text());
        let mut count = 0;
        let mut committed = Vec::new();
        for (range, statement) in statements {
            let one = std::slice::from_ref(range);
            let result = if guard::is_concurrent(section_text, statement) {
                session
                    .without_lock_timeout(async |client| run_split(client, script, one, true).await)
                    .await?
            } else {
                run_split(session.client(), script, one, true).await
            };
            let result = match result {
                Ok(o) => guard::check_index_valid(
                    session.client(),
                    script,
                    range.clone(),
                    statement,
                    pkg.schema(),
                )
                .await
                .map(|()| o)
                .map_err(|error| {
                    Box::new(SectionFailure {
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
            session.set_role(None).await?;
        }
        let pkg = &self.packages[package_index];
        let client = session.client();
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
            history::record_package(client, pkg).await?;
        }
        self.pending_records
            .push(history::Applied::of(pkg, m, duration_ms));
        if !session.in_transaction() {
            // A no-transaction migration has committed: its record must not wait for a later commit.
            self.flush_records(session).await?;
        }
        Ok(())
    }

    /// Write the pending records to `strata.migration` (and the log) in one statement, once per transaction
    /// segment, before it commits.
    pub(super) async fn flush_records(&mut self, session: &mut Session<'_>) -> Result<()> {
        if self.pending_records.is_empty() {
            return Ok(());
        }
        session.set_role(None).await?;
        let records = std::mem::take(&mut self.pending_records);
        history::record_migrations(session.client(), &records, self.run.id()).await
    }

    /// Record the new text of a changed migration the caller accepted.
    pub(super) async fn accept_change(
        &mut self,
        session: &mut Session<'_>,
        package: &str,
        name: &str,
    ) -> Result<()> {
        let Some((pkg, m)) = self
            .packages
            .iter()
            .find(|p| p.name() == package)
            .and_then(|p| {
                p.migrations()
                    .iter()
                    .find(|m| m.name() == name)
                    .map(|m| (p, m))
            })
        else {
            return Ok(());
        };
        session.ensure_transaction().await?;
        let run_id = self.run.ensure(session.client()).await?;
        history::accept_change(session.client(), pkg, m, run_id).await
    }
}
