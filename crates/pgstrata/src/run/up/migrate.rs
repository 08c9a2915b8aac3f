//! Running one migration inside `up`: its sections in or outside a transaction, as its package's role, checked
//! after every statement (`crate::db::boundary`), resuming after the statements an unfinished run committed, and
//! recording it in the history.
//!
//! A no-transaction section records each statement as it commits, in the run's `detail.progress` (its index
//! among the migration's statements and a checksum of its text): sent in the same message as the statement, so
//! the two commit in one implicit transaction. A statement that cannot share a transaction (`CREATE INDEX
//! CONCURRENTLY`, `VACUUM`, …) is recorded as started before it is sent and as committed after it succeeded; the
//! next run settles one left started (an index that exists and is valid was built: kept; an invalid one is
//! dropped and built again).

use std::collections::VecDeque;
use std::ops::Range;
use std::time::Instant;

use pgstrata_sql::StatementKind;
use pgstrata_sql::migration::Section;
use tokio_postgres::error::SqlState;

use super::UpRun;
use crate::db::boundary::Boundary;
use crate::db::exec::{
    SectionFailure, StatementFailure, boundary_error, run_own, run_split, run_with,
};
use crate::db::history;
use crate::db::roles;
use crate::db::session::Session;
use crate::decide::guard::{self, Committed, Resume};
use crate::error::{Error, Result, SqlError};
use crate::observe::{Event, Observer};
use crate::report::{MigrationId, RanMigration, ResumedMigration, ms};
use crate::source::package::{Migration, Package, Script};

/// The statements of a section, as split (byte ranges into the script, and the parse), each with its index among
/// the migration's statements and its checksum.
type Statements = [(Range<usize>, pgstrata_sql::Statement, Key)];

/// The statements of a section to run: with their kinds and keys (a migration that can end half applied needs
/// them), or only their ranges (one that cannot, and is not resumed).
#[derive(Clone, Copy)]
enum Work<'a> {
    Statements(&'a Statements),
    Ranges(&'a [Range<usize>]),
}

impl Work<'_> {
    fn len(&self) -> usize {
        match self {
            Work::Statements(s) => s.len(),
            Work::Ranges(r) => r.len(),
        }
    }
}

/// A statement's index among its migration's statements, and its checksum ([`guard::statement_checksum`]).
type Key = (usize, String);

/// What the run knows about the statements of the migration under way that committed (or will commit with the
/// open transaction) but are not yet in the run's progress record.
#[derive(Default)]
struct Progress {
    unrecorded: Vec<Key>,
}

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
        // Resuming: statements an unfinished run committed, in order; skipped while they lead the migration.
        let resume = self.resume.get(&id).cloned();
        let mut skip: VecDeque<Committed> = resume
            .as_ref()
            .map(|r| r.committed.iter().cloned().collect())
            .unwrap_or_default();
        // Statements of this migration that are committed (they stay if it fails), and those run in the open
        // transaction (they commit with it).
        let mut committed_here: Vec<String> = Vec::new();
        let mut open_here: Vec<String> = Vec::new();
        let mut progress = Progress::default();
        let mut base = 0;
        // Only a migration with a no-transaction section can end half applied: only its statements need
        // checksums and texts (a big transactional file would pay for them in time and memory).
        let tracked = script.sections().iter().any(|s| s.no_transaction);
        // A transactional migration that is not resumed needs only where its statements are: a data load of
        // millions of them is run from their ranges alone.
        let plain = !tracked && resume.is_none();
        for section in script.sections() {
            let ranges: Vec<Range<usize>> = if plain {
                pgstrata_sql::statement_ranges(section.text(script.text()))
                    .into_iter()
                    .map(|r| section.range.start + r.start..section.range.start + r.end)
                    .collect()
            } else {
                Vec::new()
            };
            let all: Vec<(Range<usize>, pgstrata_sql::Statement, Key)> = if plain {
                Vec::new()
            } else {
                guard::section_statements(script, section)
                    .into_iter()
                    .enumerate()
                    .map(|(k, (r, s))| {
                        let sum = if tracked {
                            guard::statement_checksum(&script.text()[r.clone()])
                        } else {
                            String::new()
                        };
                        (r, s, (base + k, sum))
                    })
                    .collect()
            };
            base += all.len();
            let text_of = |r: &Range<usize>| script.text()[r.clone()].to_string();
            let mut first = 0;
            while first < all.len()
                && skip.front().is_some_and(|c| {
                    let (r, _, (index, sum)) = &all[first];
                    c.is(*index, &script.text()[r.clone()], sum)
                })
            {
                skip.pop_front();
                first += 1;
            }
            if skip.is_empty()
                && first < all.len()
                && section.no_transaction
                && let Some(r) = &resume
                && self
                    .finished_by_interrupted_run(
                        session,
                        pkg,
                        script,
                        &all[first],
                        r,
                        &label,
                        observer,
                    )
                    .await?
            {
                first += 1;
            }
            if first > 0 {
                committed_here.extend(all[..first].iter().map(|(r, _, _)| text_of(r)));
                progress
                    .unrecorded
                    .extend(all[..first].iter().map(|(_, _, k)| k.clone()));
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
            let work = if plain {
                Work::Ranges(&ranges)
            } else {
                Work::Statements(&all[first..])
            };
            let commits_open = section.no_transaction && session.in_transaction();
            let result = self
                .run_section(session, pkg, script, section, work, &label, &mut progress)
                .await;
            if commits_open {
                committed_here.append(&mut open_here);
            }
            match result {
                Ok(n) => {
                    statements += n;
                    if tracked {
                        let ran = all[first..].iter().map(|(r, _, _)| text_of(r));
                        if section.no_transaction {
                            committed_here.extend(ran);
                        } else {
                            open_here.extend(ran);
                        }
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

    /// Whether the statement after the skipped ones is a `CREATE INDEX CONCURRENTLY` that the unfinished run
    /// started and that did finish (the index exists and is valid): then it is kept, not built again.
    #[allow(clippy::too_many_arguments)]
    async fn finished_by_interrupted_run(
        &mut self,
        session: &mut Session<'_>,
        pkg: &Package,
        script: &Script,
        (range, statement, key): &(Range<usize>, pgstrata_sql::Statement, Key),
        resume: &Resume,
        label: &str,
        observer: &mut dyn Observer,
    ) -> Result<bool> {
        if resume.started.as_ref() != Some(key)
            || statement.kind != (StatementKind::CreateIndex { concurrently: true })
        {
            return Ok(false);
        }
        let Some(index) = guard::created_index(script, range.clone(), pkg.schema()) else {
            return Ok(false);
        };
        if guard::index_validity(session.client(), &index).await? != Some(true) {
            return Ok(false);
        }
        let what = format!(
            "index {index}, which run #{} was building when it stopped, is complete and valid: kept",
            resume.run_id
        );
        observer.event(Event::Repaired {
            migration: label,
            what: &what,
        });
        self.done.repairs.push(format!("{label}: {what}"));
        Ok(true)
    }

    /// One section: in the open transaction, or (no-transaction) after committing it, as the package's role.
    #[allow(clippy::too_many_arguments)]
    async fn run_section(
        &mut self,
        session: &mut Session<'_>,
        pkg: &Package,
        script: &Script,
        section: &Section,
        statements: Work<'_>,
        label: &str,
        progress: &mut Progress,
    ) -> Result<usize> {
        if section.no_transaction {
            if session.in_transaction() {
                self.flush_records(session).await?;
                // What this migration ran in the open transaction commits with it: recorded in the same one.
                self.write_progress(session, label, progress, None).await?;
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
        let boundary = session.boundary(role.as_deref()).await?;
        let result = self
            .run_statements(
                session, pkg, script, section, statements, label, &boundary, progress,
            )
            .await;
        if !session.in_transaction() {
            if result.is_err() {
                // A statement may have left its own transaction block open (and failed in it).
                session.end_stray_block().await;
            }
            if role.is_some() {
                // Outside a transaction the role was set for the session: back to the login at once. After a
                // failure this is best effort: the connection may be gone, and the statement's error is the news.
                match &result {
                    Ok(_) => session.set_role(None).await?,
                    Err(_) => {
                        let _ = session.set_role(None).await;
                    }
                }
            }
        }
        result
    }

    /// The statements of one section (from the first one a resume did not skip), in or outside a transaction.
    #[allow(clippy::too_many_arguments)]
    async fn run_statements(
        &mut self,
        session: &mut Session<'_>,
        pkg: &Package,
        script: &Script,
        section: &Section,
        work: Work<'_>,
        label: &str,
        boundary: &Boundary,
        progress: &mut Progress,
    ) -> Result<usize> {
        let fail = |f: Box<SectionFailure>, committed: Vec<String>| -> Error {
            let mut error = f.error;
            error.migration = Some(label.to_string());
            error.committed_statements = committed;
            error.into()
        };
        if work.len() == 0 {
            return Ok(0);
        }
        let statements = match work {
            Work::Statements(statements) => statements,
            Work::Ranges(ranges) => {
                // Only transactional sections come as ranges.
                return match run_split(session.client(), script, ranges, false, Some(boundary))
                    .await
                {
                    Ok(o) => Ok(o.statements),
                    Err(f) => Err(fail(f, Vec::new())),
                };
            }
        };
        if !section.no_transaction {
            // One transaction: the statements (earlier ones may have been skipped by a resume) in as few messages
            // as their size allows, as split already, each followed by the boundary check.
            let ranges: Vec<Range<usize>> = statements.iter().map(|(r, _, _)| r.clone()).collect();
            return match run_split(session.client(), script, &ranges, false, Some(boundary)).await {
                Ok(o) => {
                    if statements
                        .first()
                        .is_some_and(|(_, _, (_, sum))| !sum.is_empty())
                    {
                        // A later no-transaction section commits these: they go into its progress record.
                        progress
                            .unrecorded
                            .extend(statements.iter().map(|(_, _, k)| k.clone()));
                    }
                    Ok(o.statements)
                }
                Err(f) => Err(fail(f, Vec::new())),
            };
        }
        // Outside a transaction, statement by statement, each with its check and its record.
        let section_text = section.text(script.text());
        let mut committed = Vec::new();
        for (k, (range, statement, key)) in statements.iter().enumerate() {
            let last = k + 1 == statements.len();
            let alone = pgstrata_sql::non_transactional_reason(section_text, statement).is_some()
                || guard::is_concurrent(section_text, statement);
            let outcome = if alone {
                self.run_alone(
                    session,
                    pkg,
                    script,
                    section_text,
                    range,
                    statement,
                    key,
                    label,
                    boundary,
                    last,
                    progress,
                )
                .await
            } else {
                match self
                    .run_recorded(session, script, range, key, label, boundary, last, progress)
                    .await
                {
                    // PostgreSQL refuses it in the implicit transaction of a message: a statement the text scan did
                    // not know cannot run in a transaction block. Nothing ran; send it alone.
                    Err(Outcome::Failed(e))
                        if e.sqlstate == SqlState::ACTIVE_SQL_TRANSACTION.code() =>
                    {
                        self.run_alone(
                            session,
                            pkg,
                            script,
                            section_text,
                            range,
                            statement,
                            key,
                            label,
                            boundary,
                            last,
                            progress,
                        )
                        .await
                    }
                    other => other,
                }
            };
            match outcome {
                Ok(()) => committed.push(script.text()[range.clone()].to_string()),
                Err(Outcome::Failed(error)) => {
                    return Err(fail(
                        Box::new(SectionFailure {
                            error: *error,
                            committed: Vec::new(),
                        }),
                        committed,
                    ));
                }
                Err(Outcome::FailedAfterCommit(error)) => {
                    committed.push(script.text()[range.clone()].to_string());
                    return Err(fail(
                        Box::new(SectionFailure {
                            error: *error,
                            committed: Vec::new(),
                        }),
                        committed,
                    ));
                }
                Err(Outcome::Strata(e)) => return Err(e),
            }
        }
        Ok(statements.len())
    }

    /// A statement that can share a transaction: sent with its boundary check and its record, which commit with
    /// it or not at all.
    #[allow(clippy::too_many_arguments)]
    async fn run_recorded(
        &mut self,
        session: &mut Session<'_>,
        script: &Script,
        range: &Range<usize>,
        key: &Key,
        label: &str,
        boundary: &Boundary,
        last: bool,
        progress: &mut Progress,
    ) -> std::result::Result<(), Outcome> {
        let mut entries = progress.unrecorded.clone();
        entries.push(key.clone());
        let mut after = boundary.check_sql(0, last);
        after.push_str(";\n");
        after.push_str(&self.record_sql(boundary, label, &entries, None));
        match run_with(session.client(), script, range.clone(), &after).await {
            Ok(()) => {
                progress.unrecorded.clear();
                Ok(())
            }
            Err(StatementFailure::Statement(e)) => Err(Outcome::Failed(e)),
            // The implicit transaction rolled back: the statement did not commit either.
            Err(StatementFailure::Check(e)) => Err(Outcome::Failed(Box::new(boundary_error(
                script,
                range.clone(),
                boundary,
                &e,
            )))),
            Err(StatementFailure::After(e)) => Err(Outcome::Strata(Error::db(
                "recording the statement's progress in strata.run",
            )(e))),
        }
    }

    /// A statement that cannot run in a transaction block: recorded as started, sent alone (`CONCURRENTLY` ones
    /// without lock_timeout), then checked and recorded as committed.
    #[allow(clippy::too_many_arguments)]
    async fn run_alone(
        &mut self,
        session: &mut Session<'_>,
        pkg: &Package,
        script: &Script,
        section_text: &str,
        range: &Range<usize>,
        statement: &pgstrata_sql::Statement,
        key: &Key,
        label: &str,
        boundary: &Boundary,
        last: bool,
        progress: &mut Progress,
    ) -> std::result::Result<(), Outcome> {
        if statement.kind == (StatementKind::CreateIndex { concurrently: true }) {
            self.drop_invalid_leftover(session, pkg, script, range, label)
                .await
                .map_err(Outcome::Strata)?;
        }
        let started = self.record_sql(
            boundary,
            label,
            &progress.unrecorded,
            Some((key.0, key.1.as_str())),
        );
        if !started.is_empty() {
            run_own(session.client(), &started)
                .await
                .map_err(|(_, e)| {
                    Outcome::Strata(Error::db("recording the statement's start in strata.run")(
                        e,
                    ))
                })?;
            progress.unrecorded.clear();
        }
        let one = std::slice::from_ref(range);
        let result = if guard::is_concurrent(section_text, statement) {
            session
                .without_lock_timeout(async |client| {
                    run_split(client, script, one, true, None).await
                })
                .await
                .map_err(Outcome::Strata)?
        } else {
            run_split(session.client(), script, one, true, None).await
        };
        if let Err(f) = result {
            return Err(Outcome::Failed(Box::new(f.error)));
        }
        guard::check_index_valid(
            session.client(),
            script,
            range.clone(),
            statement,
            pkg.schema(),
        )
        .await
        .map_err(|e| Outcome::FailedAfterCommit(Box::new(e)))?;
        let mut after = boundary.check_sql(0, last);
        after.push_str(";\n");
        after.push_str(&self.record_sql(boundary, label, std::slice::from_ref(key), None));
        match run_own(session.client(), &after).await {
            Ok(()) => Ok(()),
            Err((0, e)) => {
                let mut error = boundary_error(script, range.clone(), boundary, &e);
                error.rolled_back = false;
                Err(Outcome::FailedAfterCommit(Box::new(error)))
            }
            Err((_, e)) => Err(Outcome::Strata(Error::db(
                "recording the statement's progress in strata.run",
            )(e))),
        }
    }

    /// Before a `CREATE INDEX CONCURRENTLY`: an invalid index of the same name is what an interrupted or failed
    /// build of it left behind. Dropped (and said so), so the statement builds it again.
    async fn drop_invalid_leftover(
        &mut self,
        session: &mut Session<'_>,
        pkg: &Package,
        script: &Script,
        range: &Range<usize>,
        label: &str,
    ) -> Result<()> {
        let Some(index) = guard::created_index(script, range.clone(), pkg.schema()) else {
            return Ok(());
        };
        if guard::index_validity(session.client(), &index).await? != Some(false) {
            return Ok(());
        }
        let drop = format!("DROP INDEX CONCURRENTLY {index}");
        session
            .without_lock_timeout(async |client| client.batch_execute(&drop).await)
            .await?
            .map_err(Error::db(format!(
                "dropping the invalid index {index} left by an interrupted build"
            )))?;
        let what = format!(
            "index {index} was left invalid by an interrupted or failed CREATE INDEX CONCURRENTLY: dropped, and built \
             again"
        );
        self.done.repairs.push(format!("{label}: {what}"));
        Ok(())
    }

    /// Strata's record of statements of a no-transaction migration (`entries` committed, `started` under way), run
    /// as the login and back to the package role, as SQL text for a message; empty for a dry run (no run row).
    fn record_sql(
        &self,
        boundary: &Boundary,
        label: &str,
        entries: &[Key],
        started: Option<(usize, &str)>,
    ) -> String {
        let Some(run_id) = self.run.id() else {
            return String::new();
        };
        let record = history::progress_sql(run_id, label, entries, started);
        match &boundary.role {
            Some(role) => format!(
                "RESET ROLE;\n{record};\n{}",
                roles::set_role_sql(Some(role), false)
            ),
            None => record,
        }
    }

    /// Write the progress entries of statements that ran in the open transaction (they commit with it).
    async fn write_progress(
        &mut self,
        session: &mut Session<'_>,
        label: &str,
        progress: &mut Progress,
        started: Option<(usize, &str)>,
    ) -> Result<()> {
        if progress.unrecorded.is_empty() && started.is_none() {
            return Ok(());
        }
        let Some(run_id) = self.run.id() else {
            return Ok(());
        };
        session.set_role(None).await?;
        let sql = history::progress_sql(run_id, label, &progress.unrecorded, started);
        session
            .client()
            .batch_execute(&sql)
            .await
            .map_err(Error::db("recording progress in strata.run"))?;
        progress.unrecorded.clear();
        Ok(())
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

/// How a statement of a no-transaction section went wrong.
enum Outcome {
    /// It failed, and did not commit.
    Failed(Box<SqlError>),
    /// It committed, then something about it failed (an invalid index, the boundary check).
    FailedAfterCommit(Box<SqlError>),
    /// Strata's own work around it failed.
    Strata(Error),
}
