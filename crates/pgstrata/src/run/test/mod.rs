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

pub(crate) mod run;
mod shuffle;

pub use crate::error::TestsFailed;
pub use crate::report::tap::{junit, tap};
pub use crate::report::test::{TestFailure, TestOutcome, TestReport, TestResult, failure_text};
pub use shuffle::shuffle;

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
