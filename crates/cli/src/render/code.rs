//! Rendering managed code changes, code status and test reports.

use console::style;
use pgstrata::managed::{ObjectState, PackageCode};
use pgstrata::testing::{TestOutcome, TestReport};
use pgstrata::{CodeAction, UpReport};

use super::{Out, fmt_ms};
use crate::args::TestFormat;

/// `, 3 managed object change(s)` when there were some.
pub(super) fn changes_suffix(report: &UpReport) -> String {
    let mut out = match report.repeatables.len() {
        0 => String::new(),
        n => format!(" and {n} repeatable script(s)"),
    };
    if !report.code.changes.is_empty() {
        out.push_str(&format!(
            " and {} managed-object change(s)",
            report.code.changes.len()
        ));
    }
    out
}

impl Out {
    /// Managed code changes and the test tally of an `up`.
    pub(super) fn up_code(&self, report: &UpReport) {
        if self.verbose > 0 {
            for r in &report.roles {
                println!("  {} {r}", style("•").cyan());
            }
        }
        // A first deploy of a big package: counts, unless -v asks for every object.
        if report.code.changes.len() > 30 && self.verbose == 0 {
            let mut counts: Vec<(String, usize)> = Vec::new();
            for c in &report.code.changes {
                let key = format!(
                    "{} {}",
                    serde_json::to_value(c.action)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_string))
                        .unwrap_or_default(),
                    c.kind
                );
                match counts.iter_mut().find(|(k, _)| *k == key) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((key, 1)),
                }
            }
            let list: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
            println!("  managed code: {} (-v lists them)", list.join(", "));
        } else {
            self.list_changes(report);
        }
        if let Some(t) = &report.tests {
            println!(
                "Tests: {} passed in {} (seed {})",
                t.passed,
                fmt_ms(t.duration_ms),
                t.seed
            );
        }
    }

    fn list_changes(&self, report: &UpReport) {
        for c in &report.code.changes {
            let (mark, word) = match c.action {
                CodeAction::Created => (style("+").green(), "created"),
                CodeAction::Replaced => (style("~").yellow(), "replaced in place"),
                CodeAction::Recreated => (style("~").yellow(), "dropped and re-created"),
                CodeAction::Restored => (
                    style("!").magenta(),
                    "restored (had changed outside Strata)",
                ),
                CodeAction::Adopted => (style("+").green(), "adopted (existed, now managed)"),
                CodeAction::Dropped => (style("-").red(), "dropped"),
                CodeAction::Forgotten => (style("-").red(), "forgotten (already gone)"),
            };
            let at = match (&c.file, c.line) {
                (Some(f), Some(l)) => format!("  ({f}:{l})"),
                _ => String::new(),
            };
            println!("  {mark} {} {}  {word}{at}", c.kind, c.identity);
        }
    }

    /// The managed-code part of `strata status` for one package.
    pub fn code_status(&self, c: &PackageCode) {
        if c.objects.is_empty() {
            return;
        }
        println!(
            "  managed code: {} in sync{}{}{}{}{}{}",
            c.count(ObjectState::InSync),
            nonzero(", {} new", c.count(ObjectState::New)),
            nonzero(", {} changed", c.count(ObjectState::Changed)),
            nonzero(", {} removed", c.count(ObjectState::Removed)),
            nonzero(", {} drifted", c.count(ObjectState::Drifted)),
            nonzero(", {} missing", c.count(ObjectState::Missing)),
            nonzero(", {} broken", c.count(ObjectState::Broken)),
        );
        for o in &c.objects {
            let word = match o.state {
                ObjectState::InSync if self.verbose == 0 => continue,
                ObjectState::InSync => style("in sync ").green(),
                ObjectState::New => style("new     ").yellow(),
                ObjectState::Changed => style("changed ").yellow(),
                ObjectState::Removed => style("removed ").yellow(),
                ObjectState::Drifted => style("drifted ").red(),
                ObjectState::Missing => style("missing ").red(),
                ObjectState::Broken => style("broken  ").red(),
            };
            let note = match (o.state, &o.error) {
                (ObjectState::Drifted, _) => {
                    "  (changed outside Strata; `up` restores it)".to_string()
                }
                (ObjectState::Missing, _) => {
                    "  (dropped outside Strata; `up` restores it)".to_string()
                }
                (ObjectState::Broken, Some(e)) => format!("  ({e})"),
                _ => String::new(),
            };
            println!(
                "  {word} {} {}  {}:{}{note}",
                o.kind, o.name, o.file, o.line
            );
        }
    }

    /// A `strata test` report in the chosen format.
    pub fn test_report(&self, report: &TestReport, format: TestFormat) {
        match format {
            TestFormat::Json => self.print_json(report),
            TestFormat::Tap => print!("{}", pgstrata::testing::tap(report)),
            TestFormat::Junit => print!("{}", pgstrata::testing::junit(report)),
            TestFormat::Human => {
                let width = report
                    .results
                    .iter()
                    .map(|r| r.name.len())
                    .max()
                    .unwrap_or(0);
                for r in &report.results {
                    let mark = if r.outcome == TestOutcome::Passed {
                        style("✓").green()
                    } else {
                        style("✗").red()
                    };
                    if !self.quiet || r.outcome == TestOutcome::Failed {
                        println!("  {mark} {:<width$}  {:>9}", r.name, fmt_ms(r.duration_ms));
                    }
                    if self.verbose > 0 && r.outcome == TestOutcome::Passed {
                        for n in &r.notices {
                            println!("      {}: {}", n.severity.to_lowercase(), n.message);
                        }
                    }
                }
                let failures: Vec<_> = report.failures().collect();
                if !failures.is_empty() {
                    println!();
                    for r in failures {
                        print!("{}", pgstrata::testing::failure_text(r));
                    }
                }
                let filtered = if report.filtered_out > 0 {
                    format!(", {} filtered out", report.filtered_out)
                } else {
                    String::new()
                };
                let tally = format!(
                    "{} passed, {} failed{filtered} in {} (seed {})",
                    report.passed,
                    report.failed,
                    fmt_ms(report.duration_ms),
                    report.seed
                );
                if report.failed == 0 {
                    println!("{}", style(tally).green());
                } else {
                    println!("{}", style(tally).red());
                }
            }
        }
    }
}

fn nonzero(fmt: &str, n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        fmt.replace("{}", &n.to_string())
    }
}
