//! SQL tests: functions in `*_test.sql` files, run inside the deploy transaction.
//!
//! A test file may only define functions. A function whose name ends in `_test` is a test, one ending in
//! `_before` runs before each test (in name order), any other is a helper tests may call. They are created as the
//! package role inside a savepoint that is rolled back at the end, so neither the functions nor anything the tests
//! did survives.
//!
//! Each test runs in its own savepoint: its `_before` functions, then the test; then everything is rolled back
//! to the savepoint. A test passes when it returns without raising. A test returning `SETOF text` is read as
//! pgTAP output: a line starting with `not ok` fails it. All selected tests run, in a random order drawn from a
//! printed seed (`--seed N` replays it); the [`TestReport`] tallies them with their durations, and each failure
//! carries the error, the file:line in the test source, and the notices the test raised.
//!
//! `strata up` runs the tests of every deployed package after migrations and managed code when something changed
//! (a failure rolls the whole deploy back; `--no-tests` skips them). `strata test` always runs them, in a deploy
//! that is rolled back.

mod report;
pub(crate) mod run;
mod shuffle;

use std::fmt;

pub use report::{junit, tap};
pub use shuffle::shuffle;

use crate::exec::Notice;

/// When `up` runs tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum TestMode {
    /// When the deploy changed something (a migration, managed code, or the tests themselves).
    #[default]
    Auto,
    /// Never (`--no-tests`).
    Skip,
    /// Always (`strata test`).
    Always,
}

/// Which tests to run, and in what order.
#[derive(Debug, Clone, Default)]
pub struct TestOptions {
    /// Seed of the random order (None: a new one, reported in [`TestReport::seed`]).
    pub seed: Option<u64>,
    /// Only tests whose name matches: a glob (`*`, `?`) when it has one, else a substring. Matched against the
    /// function name and `schema.name`.
    pub filter: Option<String>,
    /// Only the tests of these packages (None: every package deployed).
    pub packages: Option<Vec<String>>,
}

impl TestOptions {
    /// Whether a test of `package` named `schema.name` is selected.
    pub fn selects(&self, package: &str, schema: &str, name: &str) -> bool {
        if let Some(list) = &self.packages
            && !list.iter().any(|p| p == package)
        {
            return false;
        }
        match &self.filter {
            None => true,
            Some(f) => {
                let qualified = format!("{schema}.{name}");
                if f.contains(['*', '?']) {
                    glob(f, name) || glob(f, &qualified)
                } else {
                    name.contains(f.as_str()) || qualified.contains(f.as_str())
                }
            }
        }
    }
}

/// `*` matches any run of characters, `?` one character.
fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

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

/// Tests failed during `up`: the deploy was rolled back.
#[derive(Debug, thiserror::Error)]
#[error("{} of {} test(s) failed; the deploy was rolled back (seed {})", report.failed, report.results.len(), report.seed)]
pub struct TestsFailed {
    /// The full report.
    pub report: TestReport,
}

impl miette::Diagnostic for TestsFailed {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("strata::tests_failed"))
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let mut text = String::new();
        for r in self.report.failures() {
            text.push_str(&failure_text(r));
        }
        text.push_str(&format!(
            "nothing was applied. Replay this order with --seed {}, run only these tests with `strata test --filter NAME`, \
             or deploy without tests with --no-tests",
            self.report.seed
        ));
        Some(Box::new(text))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters() {
        let all = TestOptions::default();
        assert!(all.selects("p", "app", "x_test"));
        let sub = TestOptions {
            filter: Some("invoice".into()),
            ..Default::default()
        };
        assert!(sub.selects("p", "app", "invoice_total_test"));
        assert!(!sub.selects("p", "app", "customer_test"));
        let g = TestOptions {
            filter: Some("app.inv*_test".into()),
            ..Default::default()
        };
        assert!(g.selects("p", "app", "invoice_test"));
        assert!(!g.selects("p", "other", "invoice_test"));
        assert!(!g.selects("p", "app", "invoice_test_helper"));
        let scoped = TestOptions {
            packages: Some(vec!["p".into()]),
            ..Default::default()
        };
        assert!(!scoped.selects("q", "app", "x_test"));
    }
}
