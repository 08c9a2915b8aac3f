//! Progress events, so a front end can show a progress bar or stream a log while a run proceeds. The library
//! itself never prints.

use std::time::Duration;

/// Something that happened during a run.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event<'a> {
    /// Another deployer holds the lock; waiting.
    LockWaiting,
    /// Got the lock after waiting.
    LockAcquired {
        /// How long we waited.
        waited: Duration,
    },
    /// The plan is known.
    Planned {
        /// Migrations to run.
        total: usize,
    },
    /// A migration starts.
    MigrationStarted {
        /// Package.
        package: &'a str,
        /// Migration.
        name: &'a str,
        /// 0-based position in the run.
        index: usize,
        /// Migrations in the run.
        total: usize,
    },
    /// A migration finished.
    MigrationFinished {
        /// Package.
        package: &'a str,
        /// Migration.
        name: &'a str,
        /// Time it took.
        duration: Duration,
    },
    /// The server sent a notice while a migration ran.
    Notice {
        /// Package.
        package: &'a str,
        /// Migration.
        name: &'a str,
        /// `NOTICE`, `WARNING`, …
        severity: &'a str,
        /// Text.
        message: &'a str,
    },
    /// A transaction segment committed (runs with no-transaction migrations have several).
    Committed,
    /// The migrations about to run were linted (before any of them ran).
    Linted {
        /// What the linter found.
        report: &'a crate::report::lint::LintReport,
    },
    /// A statement gave up waiting for a lock (lock_timeout); everything since the last commit was rolled
    /// back, and the deploy starts over after a pause.
    LockRetry {
        /// The retry about to happen (1-based).
        attempt: u32,
        /// Retries allowed.
        of: u32,
        /// The pause before it.
        delay: Duration,
        /// The error that triggered it (`file:line:col: canceling statement due to lock timeout`).
        error: &'a str,
    },
    /// A no-transaction migration that failed part-way is resumed: its statements that committed before the
    /// failure are skipped.
    Resumed {
        /// `package:name`.
        migration: &'a str,
        /// Statements skipped.
        skipped: usize,
        /// The failed run that recorded them.
        run_id: i64,
    },
    /// Before resuming, Strata dealt with what an interrupted statement left behind (an invalid index dropped to
    /// be built again, a finished one kept).
    Repaired {
        /// `package:name`.
        migration: &'a str,
        /// What was done, in words.
        what: &'a str,
    },
}

/// Receives [`Event`]s.
pub trait Observer {
    /// Called for every event, in order.
    fn event(&mut self, event: Event<'_>);
}

/// Ignores every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Observer for Quiet {
    fn event(&mut self, _event: Event<'_>) {}
}

impl<F: FnMut(Event<'_>)> Observer for F {
    fn event(&mut self, event: Event<'_>) {
        self(event)
    }
}
