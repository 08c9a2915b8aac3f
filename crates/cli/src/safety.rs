//! `strata lint`, and the safety part of `strata plan` and `strata up`: lint findings (compiler-style
//! diagnostics, JSON or GitHub annotations), the lock report, retries and resumed migrations.

use std::io::Write;

use console::style;
use pgstrata::lint::{LintRefused, LintReport, Severity};
use pgstrata::{LockReport, Plan, Project};

use crate::Failure;
use crate::args::{Global, LintArgs, LintFormat};
use crate::render::Out;

/// What `plan` shows besides the plan itself.
pub struct PlanSafety {
    pub lint: LintReport,
    pub locks: LockReport,
}

impl PlanSafety {
    pub async fn compute(
        db: &pgstrata::Database,
        project: &Project,
        plan: &Plan,
    ) -> Result<PlanSafety, Failure> {
        let version = pgstrata::lint::server_version(db).await?;
        Ok(PlanSafety {
            lint: pgstrata::lint::lint_plan_at(db, project, plan, Some(&version)).await?,
            locks: pgstrata::lock_report(Some(db), project, plan).await?,
        })
    }

    /// `plan` fails, like `up` would, on lint errors unless they are allowed.
    pub fn check(self, allow_lint_errors: bool) -> Result<(), Failure> {
        if self.lint.errors == 0 || allow_lint_errors {
            return Ok(());
        }
        let refused = LintRefused { report: self.lint };
        let help = miette::Diagnostic::help(&refused)
            .map(|h| h.to_string())
            .unwrap_or_default();
        Err(Failure::Failed(miette::miette!(
            code = "strata::lint",
            help = help,
            "`strata up` would refuse: {} lint error(s) in the migrations about to run",
            refused.report.errors
        )))
    }
}

/// The human part of `plan`: the lock report on stdout, lint findings on stderr.
pub fn print_plan_safety(safety: &PlanSafety) {
    print_locks(&safety.locks);
    print_findings(&safety.lint, false);
    if !safety.lint.is_clean() {
        eprintln!("{}", lint_summary(&safety.lint));
    }
}

fn print_locks(report: &LockReport) {
    if report.migrations.is_empty() {
        return;
    }
    println!(
        "\nLocks (held until the statement's transaction commits; outside a transaction, until the statement ends):"
    );
    for m in &report.migrations {
        println!(
            "  {}:{} ({}{})",
            m.package,
            m.migration,
            m.path,
            if m.no_transaction {
                ", no transaction"
            } else {
                ""
            }
        );
        for s in &m.statements {
            println!("    {}:{}  {}", s.line, s.column, s.sql);
            for l in &s.locks {
                let what = if l.on_table_of_index {
                    match &l.table {
                        Some(t) => format!("{t} (table of index {})", l.relation),
                        None => format!("the table of index {}", l.relation),
                    }
                } else {
                    l.relation.clone()
                };
                let state = if l.new {
                    " (created in this deploy: blocks nobody)".to_string()
                } else if l.exists == Some(false) {
                    " (does not exist yet)".to_string()
                } else {
                    l.size_text().map(|t| format!(" ({t})")).unwrap_or_default()
                };
                let line = format!("{} on {what}{state}: blocks {}", l.mode, l.blocks);
                if pgstrata::lock_report::is_disruptive(l) {
                    println!("      {} {}", style("!").red().bold(), style(line).bold());
                } else {
                    println!("      · {line}");
                }
            }
            if let Some(r) = &s.rewrite {
                println!("      {} rewrites the table: {r}", style("!").red().bold());
            }
            if let Some(r) = &s.scan {
                println!("      · reads the whole table: {r}");
            }
            if let Some(n) = &s.note {
                println!("      ? {n}");
            }
        }
    }
}

/// Lint findings as compiler-style diagnostics, on stdout (`strata lint`) or stderr (`plan`, `up`).
pub fn print_findings(report: &LintReport, to_stdout: bool) {
    for d in report.diagnostics() {
        let text = crate::render::diagnostic::render(&miette::Report::new(d));
        if to_stdout {
            println!("{text}");
        } else {
            eprintln!("{text}");
        }
    }
}

fn lint_summary(report: &LintReport) -> String {
    let word = |n: usize, one: &str| {
        if n == 1 {
            format!("1 {one}")
        } else {
            format!("{n} {one}s")
        }
    };
    format!(
        "lint: {}, {} in {} checked",
        word(report.errors, "error"),
        word(report.warnings, "warning"),
        word(report.files_checked, "file")
    )
}

/// `strata lint`.
pub async fn lint(g: &Global, a: LintArgs, out: &Out) -> Result<(), Failure> {
    let format = if g.json { LintFormat::Json } else { a.format };
    if a.list_rules {
        list_rules(format);
        return Ok(());
    }
    let report = if !a.paths.is_empty() {
        let project = crate::try_load_project(g)?;
        pgstrata::lint::lint_paths(&a.paths, project.as_ref(), None)?
    } else if a.all {
        let project = crate::load_project(g)?;
        pgstrata::lint::lint_all(&project, None)?
    } else {
        let project = crate::load_project(g)?;
        let (db, _) = crate::connect(g, Some(&project))
            .await
            .map_err(needs_database)?;
        let plan = pgstrata::plan(&db, &project, &pgstrata::PlanOptions::default()).await?;
        let version = pgstrata::lint::server_version(&db).await?;
        pgstrata::lint::lint_plan_at(&db, &project, &plan, Some(&version)).await?
    };
    match format {
        LintFormat::Human => {
            print_findings(&report, true);
            if !g.quiet || !report.is_clean() {
                println!("{}", lint_summary(&report));
            }
        }
        LintFormat::Json => out.json_value(&report),
        LintFormat::Github => print_github(&report),
    }
    if report.errors > 0 || (a.deny_warnings && report.warnings > 0) {
        return Err(Failure::Silent);
    }
    Ok(())
}

fn needs_database(f: Failure) -> Failure {
    match f {
        Failure::Usage(r) => Failure::Usage(r.wrap_err(
            "linting the pending migrations needs the database (lint without one with --all, or name files)",
        )),
        other => other,
    }
}

fn list_rules(format: LintFormat) {
    let rules = pgstrata_sql::lint::rules();
    let default = |r: &pgstrata_sql::lint::RuleInfo| {
        if r.on_by_default {
            r.severity.as_str()
        } else {
            "off"
        }
    };
    let source = |r: &pgstrata_sql::lint::RuleInfo| match r.source {
        pgstrata_sql::lint::RuleSource::Squawk => "squawk",
        pgstrata_sql::lint::RuleSource::Strata => "strata",
    };
    let applies = |r: &pgstrata_sql::lint::RuleInfo| match r.applies {
        pgstrata_sql::lint::Applies::Migrations => "migrations",
        pgstrata_sql::lint::Applies::Managed => "managed code",
        pgstrata_sql::lint::Applies::Both => "migrations and managed code",
    };
    if format == LintFormat::Json {
        let list: Vec<serde_json::Value> = rules
            .iter()
            .map(|r| {
                serde_json::json!({
                    "rule": r.name,
                    "default": default(r),
                    "severity_when_enabled": r.severity.as_str(),
                    "source": source(r),
                    "applies_to": applies(r),
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&list).unwrap_or_default()
        );
        return;
    }
    let width = rules.iter().map(|r| r.name.len()).max().unwrap_or(0);
    let mut stdout = std::io::stdout().lock();
    for r in rules {
        let _ = writeln!(
            stdout,
            "{:<width$}  {:<7}  {:<6}  {}",
            r.name,
            default(r),
            source(r),
            applies(r)
        );
    }
}

/// GitHub Actions workflow commands: one annotation per finding.
fn print_github(report: &LintReport) {
    let mut stdout = std::io::stdout().lock();
    for file in &report.files {
        for f in &file.findings {
            let level = match f.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            };
            let mut message = f.message.clone();
            if let Some(h) = &f.help {
                message.push_str("\nhelp: ");
                message.push_str(h);
            }
            if let Some(fix) = &f.fix {
                message.push_str("\nfix: ");
                message.push_str(&fix.title);
            }
            let _ = writeln!(
                stdout,
                "::{level} file={},line={},col={},endLine={},endColumn={},title={}::{}",
                escape_property(&file.path),
                f.line,
                f.column,
                f.end_line,
                f.end_column,
                escape_property(&format!("{} ({})", f.rule, level)),
                escape_data(&message)
            );
        }
    }
}

/// Escaping of a workflow command's message (`%`, CR, LF).
fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escaping of a workflow command's property value (also `:` and `,`).
fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// How `up` reports guard-rail events on stderr.
pub fn event(event: &pgstrata::Event<'_>, bar: Option<&indicatif::ProgressBar>, show: bool) {
    let say = |line: String| match bar {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    };
    match event {
        pgstrata::Event::Linted { report } if show && !report.is_clean() => {
            // A deploy shows errors in full (they stop it, or were allowed) and warnings one line each; `strata
            // plan` and `strata lint` show everything in full.
            for file in &report.files {
                for f in file
                    .findings
                    .iter()
                    .filter(|f| f.severity == Severity::Warning)
                {
                    say(format!(
                        "{}[{}] {}:{}:{}: {}",
                        style("warning").yellow(),
                        f.rule,
                        file.path,
                        f.line,
                        f.column,
                        f.message
                    ));
                }
            }
            for d in report.diagnostics() {
                if miette::Diagnostic::severity(&d) == Some(miette::Severity::Error) {
                    say(crate::render::diagnostic::render(&miette::Report::new(d)));
                }
            }
            say(lint_summary(report));
        }
        pgstrata::Event::LockRetry {
            attempt,
            of,
            delay,
            error,
        } if show => say(format!(
            "{} {error}; everything since the last commit was rolled back, retrying in {} ({attempt} of {of})",
            style("lock timeout:").yellow(),
            humantime(*delay)
        )),
        pgstrata::Event::Resumed {
            migration,
            skipped,
            run_id,
        } if show => say(format!(
            "resuming {migration}: skipping {skipped} statement(s) that committed before run #{run_id} stopped"
        )),
        pgstrata::Event::Repaired { migration, what } if show => say(format!(
            "{} {migration}: {what}",
            style("repaired").yellow()
        )),
        _ => {}
    }
}

fn humantime(d: std::time::Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{} ms", d.as_millis())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workflow_commands_are_escaped() {
        assert_eq!(escape_data("50% done\nnext"), "50%25 done%0Anext");
        assert_eq!(escape_property("a:b,c"), "a%3Ab%2Cc");
    }
}
