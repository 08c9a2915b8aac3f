//! The outcome of a run of the SQL tests, and its text form (the TAP and JUnit forms are in `tap`).

use std::fmt;

use super::Notice;

/// How a test ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestOutcome {
    /// Returned without raising (and, for pgTAP tests, printed no `not ok`).
    Passed,
    /// Raised an error, printed `not ok`, or could not be set up.
    Failed,
}

/// Why a test failed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestFailure {
    /// `test`, `before NAME` (a `_before` function failed), `setup` (the test file's function could not be
    /// created), `signature` (the test takes arguments), or `tap` (pgTAP reported `not ok`).
    pub phase: String,
    /// The error message (for pgTAP: the failing lines).
    pub message: String,
    /// SQLSTATE, when PostgreSQL raised.
    pub sqlstate: Option<String>,
    /// DETAIL.
    pub detail: Option<String>,
    /// HINT.
    pub hint: Option<String>,
    /// CONTEXT: the PL/pgSQL stack.
    pub context: Option<String>,
    /// `file:line` of the innermost frame in the package's SQL (test or managed code), when known.
    pub location: Option<String>,
}

/// One test's result.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestResult {
    /// Package.
    pub package: String,
    /// `schema.function`.
    pub name: String,
    /// Test file (as shown to users).
    pub file: String,
    /// Line of the function in it.
    pub line: u32,
    /// Passed or failed.
    pub outcome: TestOutcome,
    /// Wall time, `_before` functions included.
    pub duration_ms: f64,
    /// Notices and warnings the test raised.
    pub notices: Vec<Notice>,
    /// pgTAP output lines, for tests returning `SETOF text`.
    pub tap: Vec<String>,
    /// Why it failed.
    pub failure: Option<TestFailure>,
}

/// The outcome of a test run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TestReport {
    /// Seed of the order the tests ran in (`--seed` replays it).
    pub seed: u64,
    /// Results in the order the tests ran.
    pub results: Vec<TestResult>,
    /// Tests passed.
    pub passed: usize,
    /// Tests failed.
    pub failed: usize,
    /// Tests left out by the filter or the package selection.
    pub filtered_out: usize,
    /// Wall time of the whole run (creating test functions included).
    pub duration_ms: f64,
}

impl TestReport {
    /// True when no test failed.
    pub fn success(&self) -> bool {
        self.failed == 0
    }

    /// The failed results.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results
            .iter()
            .filter(|r| r.outcome == TestOutcome::Failed)
    }
}

impl fmt::Display for TestReport {
    /// `12 passed, 1 failed in 45.2 ms (seed 1234)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} passed, {} failed in {:.1} ms (seed {})",
            self.passed, self.failed, self.duration_ms, self.seed
        )
    }
}

/// A failure as a few lines of text: name, location, message, context, notices.
pub fn failure_text(r: &TestResult) -> String {
    let mut text = format!("✗ {} ({}:{})\n", r.name, r.file, r.line);
    if let Some(f) = &r.failure {
        let at = f
            .location
            .as_ref()
            .map(|l| format!(" at {l}"))
            .unwrap_or_default();
        let phase = if f.phase == "test" {
            String::new()
        } else {
            format!(" [{}]", f.phase)
        };
        text.push_str(&format!("    {}{at}{phase}\n", f.message));
        if let Some(d) = &f.detail {
            text.push_str(&format!("    detail: {d}\n"));
        }
        if let Some(h) = &f.hint {
            text.push_str(&format!("    hint: {h}\n"));
        }
        if let Some(c) = &f.context {
            for line in c.lines() {
                text.push_str(&format!("    context: {line}\n"));
            }
        }
    }
    for n in &r.notices {
        text.push_str(&format!(
            "    {}: {}\n",
            n.severity.to_lowercase(),
            n.message
        ));
    }
    text
}
