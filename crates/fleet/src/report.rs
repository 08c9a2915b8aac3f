//! What a fleet run did: one outcome per target, the run's id and counts, and the progress events sent while it
//! runs.

use serde::Serialize;

/// Where a target stands in a fleet run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetState {
    /// Not started yet.
    Pending,
    /// Started, and not known to have ended (a run killed while it ran leaves this).
    Running,
    /// Deployed (or already up to date).
    Succeeded,
    /// Its deploy failed: nothing of the failed transaction stayed applied.
    Failed,
    /// It did not finish within `--target-timeout` and was left (its connection closed, so the server rolls back
    /// what had not committed).
    Abandoned,
    /// Not started: the run stopped (a failed canary, `--on-failure stop`, `--max-failures`).
    Skipped,
}

impl TargetState {
    /// The name used in state records, JSON and tables.
    pub fn as_str(self) -> &'static str {
        match self {
            TargetState::Pending => "pending",
            TargetState::Running => "running",
            TargetState::Succeeded => "succeeded",
            TargetState::Failed => "failed",
            TargetState::Abandoned => "abandoned",
            TargetState::Skipped => "skipped",
        }
    }

    /// The state named `s` (as written by [`TargetState::as_str`]).
    pub fn parse(s: &str) -> Option<TargetState> {
        [
            TargetState::Pending,
            TargetState::Running,
            TargetState::Succeeded,
            TargetState::Failed,
            TargetState::Abandoned,
            TargetState::Skipped,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    /// True for a failure of the target itself (failed or abandoned).
    pub fn is_failure(self) -> bool {
        matches!(self, TargetState::Failed | TargetState::Abandoned)
    }
}

impl std::fmt::Display for TargetState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a target failed, in the parts a person (or a script) acts on.
#[derive(Debug, Clone, Serialize)]
pub struct TargetError {
    /// One line: the migration, its file:line:col, the server's message and SQLSTATE.
    pub summary: String,
    /// The error's message.
    pub message: String,
    /// The SQLSTATE, for a statement the server refused.
    pub sqlstate: Option<String>,
    /// The failed migration (`package:name`).
    pub migration: Option<String>,
    /// The file, line and column of the failed statement.
    pub file: Option<String>,
    /// Line (1-based).
    pub line: Option<u32>,
    /// Column (1-based).
    pub column: Option<u32>,
    /// What to do about it.
    pub hint: Option<String>,
}

impl TargetError {
    /// From the library's error.
    pub fn from_strata(e: &pgstrata::Error) -> TargetError {
        let hint = miette::Diagnostic::help(e).map(|h| h.to_string());
        if let pgstrata::Error::Sql(sql) = e {
            let place = format!("{}:{}:{}", sql.origin, sql.line, sql.col);
            let summary = match &sql.migration {
                Some(m) => format!("{m} ({place}): {} [{}]", sql.message, sql.sqlstate),
                None => format!("{place}: {} [{}]", sql.message, sql.sqlstate),
            };
            return TargetError {
                summary,
                message: sql.message.clone(),
                sqlstate: Some(sql.sqlstate.clone()),
                migration: sql.migration.clone(),
                file: Some(sql.origin.clone()),
                line: Some(sql.line),
                column: Some(sql.col),
                hint: sql.hint.clone().or(hint),
            };
        }
        let message = e.to_string();
        TargetError {
            summary: one_line(&message),
            message,
            sqlstate: e.sqlstate().map(str::to_string),
            migration: None,
            file: None,
            line: None,
            column: None,
            hint,
        }
    }

    /// An error that is not the library's (a timeout, a target no longer listed).
    pub fn other(message: impl Into<String>, hint: Option<&str>) -> TargetError {
        let message = message.into();
        TargetError {
            summary: one_line(&message),
            message,
            sqlstate: None,
            migration: None,
            file: None,
            line: None,
            column: None,
            hint: hint.map(str::to_string),
        }
    }
}

/// The first line of `text`, for tables.
fn one_line(text: &str) -> String {
    text.lines().next().unwrap_or_default().to_string()
}

/// What happened to one target in this attempt of a fleet run.
#[derive(Debug, Clone, Serialize)]
pub struct TargetOutcome {
    /// The target's name.
    pub target: String,
    /// Its group.
    pub group: Option<String>,
    /// The database (without password), and for a tenant the schema.
    pub location: String,
    /// The tenant schema, for tenant targets.
    pub schema: Option<String>,
    /// How it ended.
    pub state: TargetState,
    /// Deployed in the canary phase.
    pub canary: bool,
    /// Migrations applied (`package:name`), in order.
    pub migrations: Vec<String>,
    /// Managed objects created, replaced or dropped.
    pub code_changes: usize,
    /// The target's `strata.run` id, when the deploy recorded one.
    pub strata_run: Option<i64>,
    /// Wall time of the target's deploy, connection included.
    pub duration_ms: f64,
    /// Why it failed, was abandoned, or was skipped.
    pub error: Option<TargetError>,
    /// Warnings of its deploy.
    pub warnings: Vec<String>,
}

/// Counts of a report's targets by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Deployed in this attempt (or found up to date).
    pub succeeded: usize,
    /// Of those, the ones that applied something.
    pub changed: usize,
    /// Failed.
    pub failed: usize,
    /// Abandoned after the timeout.
    pub abandoned: usize,
    /// Not started.
    pub skipped: usize,
    /// Succeeded in an earlier attempt of the same run (not deployed again).
    pub earlier: usize,
}

/// What a fleet run (or one resumed attempt of it) did.
#[derive(Debug, Clone, Serialize)]
pub struct FleetReport {
    /// The run's id (`--resume` takes it).
    pub run_id: String,
    /// 1 for a new run, then 2, 3, … for each `--resume`.
    pub attempt: u32,
    /// Where the outcomes are recorded (the control database, or the state file).
    pub recorded_in: String,
    /// Every target of this attempt, in the run's order.
    pub targets: Vec<TargetOutcome>,
    /// Counts by state.
    pub counts: Counts,
    /// Problems that did not stop the run (an outcome that could not be recorded).
    pub warnings: Vec<String>,
    /// Wall time of the whole attempt.
    pub duration_ms: f64,
}

impl FleetReport {
    /// True when every target of the run has succeeded (in this attempt or an earlier one).
    pub fn success(&self) -> bool {
        self.counts.failed == 0 && self.counts.abandoned == 0 && self.counts.skipped == 0
    }
}

/// Something that happened during a fleet run, for live progress.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum FleetEvent<'a> {
    /// The run starts: its id, the targets of this attempt, and how many run at once.
    Started {
        /// Run id.
        run_id: &'a str,
        /// Attempt (1, or more when resumed).
        attempt: u32,
        /// Targets to deploy in this attempt.
        total: usize,
        /// Targets that succeeded in earlier attempts.
        earlier: usize,
        /// Canary targets (deployed first).
        canaries: usize,
        /// Parallel deploys.
        jobs: usize,
        /// Where outcomes are recorded.
        recorded_in: &'a str,
    },
    /// The database's own packages are being deployed before its tenant schemas.
    SharedPackages {
        /// The database.
        location: &'a str,
    },
    /// A target's deploy starts.
    TargetStarted {
        /// Target name.
        target: &'a str,
    },
    /// A migration of a target starts.
    Migration {
        /// Target name.
        target: &'a str,
        /// `package:name`.
        migration: &'a str,
    },
    /// A target is done (any state).
    TargetFinished {
        /// Its outcome.
        outcome: &'a TargetOutcome,
    },
    /// The canary phase ended.
    CanariesDone {
        /// Whether they all succeeded (if not, nothing else starts).
        success: bool,
    },
}

/// Receives [`FleetEvent`]s.
pub trait FleetObserver {
    /// Called for every event, in order.
    fn event(&mut self, event: FleetEvent<'_>);
}

/// Ignores every event.
#[derive(Debug, Default, Clone, Copy)]
pub struct QuietFleet;

impl FleetObserver for QuietFleet {
    fn event(&mut self, _event: FleetEvent<'_>) {}
}

impl<F: FnMut(FleetEvent<'_>)> FleetObserver for F {
    fn event(&mut self, event: FleetEvent<'_>) {
        self(event)
    }
}
