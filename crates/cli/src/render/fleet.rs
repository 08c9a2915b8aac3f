//! Rendering fleets: live progress (stderr), the summary table of `up`, the table of `status`, and their JSON.

use std::collections::BTreeMap;
use std::io::IsTerminal;

use console::style;
use indicatif::{ProgressBar, ProgressStyle};
use pgstrata_fleet::{FleetEvent, FleetReport, TargetOutcome, TargetState, TargetStatus};

use super::{Out, fmt_ms};

/// Above this many targets, the summary lists only those that did not succeed.
const FULL_TABLE: usize = 40;

impl Out {
    /// Live progress of a fleet `up`: a bar on terminals; the run's id and failures as lines otherwise.
    pub fn fleet_progress(&self) -> FleetProgress {
        let bar = (!self.json && !self.quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(0);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar
        });
        FleetProgress {
            bar,
            quiet: self.quiet,
            running: BTreeMap::new(),
            succeeded: 0,
            failed: 0,
        }
    }

    /// The summary of a fleet `up`: a table (or, for large fleets, the targets that did not succeed), counts, and
    /// how to resume.
    pub fn fleet_report(&self, report: &FleetReport, resume: &str) {
        if self.json {
            self.print_json(report);
            return;
        }
        for w in &report.warnings {
            eprintln!("{} {w}", style("warning:").yellow().bold());
        }
        let shown: Vec<&TargetOutcome> = if report.targets.len() <= FULL_TABLE {
            report.targets.iter().collect()
        } else {
            report
                .targets
                .iter()
                .filter(|t| t.state != TargetState::Succeeded)
                .collect()
        };
        if !self.quiet || !report.success() {
            let rows: Vec<[String; 5]> = shown
                .iter()
                .map(|t| {
                    [
                        t.target.clone(),
                        result_word(t).to_string(),
                        t.migrations.len().to_string(),
                        fmt_ms(t.duration_ms),
                        t.error
                            .as_ref()
                            .map(|e| e.summary.clone())
                            .unwrap_or_default(),
                    ]
                })
                .collect();
            if !rows.is_empty() {
                print_table(["TARGET", "RESULT", "MIGRATIONS", "TIME", "ERROR"], &rows);
            }
            let hidden = report.targets.len() - shown.len();
            if hidden > 0 {
                println!("… and {hidden} target(s) that succeeded (--json lists every target)");
            }
        }
        let c = &report.counts;
        let mut parts = vec![format!("{} succeeded ({} changed)", c.succeeded, c.changed)];
        for (n, what) in [
            (c.failed, "failed"),
            (c.abandoned, "abandoned"),
            (c.skipped, "skipped"),
        ] {
            if n > 0 {
                parts.push(format!("{n} {what}"));
            }
        }
        if c.earlier > 0 {
            parts.push(format!("{} succeeded in earlier attempts", c.earlier));
        }
        let line = format!(
            "fleet run {} (attempt {}): {} in {}",
            report.run_id,
            report.attempt,
            parts.join(", "),
            fmt_ms(report.duration_ms)
        );
        if report.success() {
            if !self.quiet {
                println!("{}", style(line).green());
            }
            return;
        }
        println!("{}", style(line).red().bold());
        for t in report.targets.iter().filter(|t| t.state.is_failure()) {
            if let Some(hint) = t.error.as_ref().and_then(|e| e.hint.as_deref()) {
                println!("  {}: {} {hint}", t.target, style("hint:").cyan());
            }
        }
        println!("resume (deploys only what did not succeed): {resume}");
    }

    /// `strata status` over a fleet.
    pub fn fleet_status(&self, statuses: &[TargetStatus]) {
        if self.json {
            self.print_json(&serde_json::json!({ "targets": statuses }));
            return;
        }
        let rows: Vec<[String; 5]> = statuses
            .iter()
            .map(|s| {
                let pending = match s.pending.as_slice() {
                    [] => String::new(),
                    [one] => one.clone(),
                    [first, ..] => format!("{} ({first}, …)", s.pending.len()),
                };
                let last = s
                    .last_run
                    .as_ref()
                    .map(|r| format!("#{} {} {}", r.id, r.outcome, r.at.format("%Y-%m-%d %H:%M")))
                    .unwrap_or_default();
                let error = s
                    .error
                    .clone()
                    .or_else(|| {
                        (!s.diverged.is_empty())
                            .then(|| format!("changed or missing: {}", s.diverged.join(", ")))
                    })
                    .or_else(|| {
                        s.last_run
                            .as_ref()
                            .and_then(|r| r.error.as_deref())
                            .map(first_line)
                    })
                    .unwrap_or_default();
                [
                    s.target.clone(),
                    s.health.as_str().to_string(),
                    pending,
                    last,
                    error,
                ]
            })
            .collect();
        print_table(["TARGET", "STATE", "PENDING", "LAST RUN", "ERROR"], &rows);
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for s in statuses {
            *counts.entry(s.health.as_str()).or_default() += 1;
        }
        let summary: Vec<String> = counts.iter().map(|(k, n)| format!("{n} {k}")).collect();
        println!("{} target(s): {}", statuses.len(), summary.join(", "));
    }
}

fn first_line(s: &str) -> String {
    s.lines().next().unwrap_or_default().to_string()
}

fn result_word(t: &TargetOutcome) -> &'static str {
    match t.state {
        TargetState::Succeeded if t.migrations.is_empty() && t.code_changes == 0 => "up to date",
        TargetState::Succeeded => "applied",
        other => other.as_str(),
    }
}

/// Columns padded to their widest cell; the last column is never padded.
fn print_table<const N: usize>(header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(str::len);
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let mut out = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == N {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.trim_end().to_string()
    };
    println!(
        "{}",
        style(line(header.iter().map(|h| h.to_string()).collect())).bold()
    );
    for row in rows {
        println!("{}", line(row.to_vec()));
    }
}

/// Live progress of a fleet `up`.
pub struct FleetProgress {
    bar: Option<ProgressBar>,
    quiet: bool,
    /// Running targets and the migration each is at.
    running: BTreeMap<String, String>,
    succeeded: usize,
    failed: usize,
}

impl FleetProgress {
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }

    fn say(&self, line: String) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.println(line),
            None => eprintln!("{line}"),
        }
    }

    fn refresh(&self) {
        let Some(b) = &self.bar else {
            return;
        };
        let names: Vec<String> = self
            .running
            .iter()
            .take(3)
            .map(|(t, m)| {
                if m.is_empty() {
                    t.clone()
                } else {
                    format!("{t} ({m})")
                }
            })
            .collect();
        let more = self.running.len().saturating_sub(names.len());
        b.set_message(format!(
            "{} ok, {} failed, {} running{}{}",
            self.succeeded,
            self.failed,
            self.running.len(),
            if names.is_empty() {
                String::new()
            } else {
                format!(": {}", names.join(", "))
            },
            if more > 0 {
                format!(" +{more}")
            } else {
                String::new()
            },
        ));
    }
}

impl pgstrata_fleet::FleetObserver for FleetProgress {
    fn event(&mut self, event: FleetEvent<'_>) {
        match event {
            FleetEvent::Started {
                run_id,
                attempt,
                total,
                earlier,
                canaries,
                jobs,
                recorded_in,
            } => {
                if let Some(b) = &self.bar {
                    b.set_length(total as u64);
                }
                let mut line = format!("fleet run {run_id}");
                if attempt > 1 {
                    line.push_str(&format!(
                        " (attempt {attempt}, {earlier} target(s) done earlier)"
                    ));
                }
                line.push_str(&format!(": {total} target(s), {jobs} at a time"));
                if canaries > 0 {
                    line.push_str(&format!(", {canaries} canary target(s) first"));
                }
                line.push_str(&format!("; recorded in {recorded_in}"));
                self.say(line);
            }
            FleetEvent::SharedPackages { location } => {
                self.say(format!(
                    "deploying the database's own packages first ({location})"
                ));
            }
            FleetEvent::TargetStarted { target } => {
                self.running.insert(target.to_string(), String::new());
                self.refresh();
            }
            FleetEvent::Migration { target, migration } => {
                if let Some(m) = self.running.get_mut(target) {
                    *m = migration.to_string();
                }
                self.refresh();
            }
            FleetEvent::TargetFinished { outcome } => {
                self.running.remove(&outcome.target);
                match outcome.state {
                    TargetState::Succeeded => self.succeeded += 1,
                    TargetState::Skipped => {}
                    _ => self.failed += 1,
                }
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
                if outcome.state.is_failure() {
                    let summary = outcome
                        .error
                        .as_ref()
                        .map(|e| e.summary.as_str())
                        .unwrap_or_default();
                    self.say(format!(
                        "{} {} {}: {summary}",
                        style("✗").red().bold(),
                        outcome.target,
                        outcome.state
                    ));
                }
                self.refresh();
            }
            FleetEvent::CanariesDone { success } => {
                self.say(if success {
                    "canaries succeeded; deploying the rest".to_string()
                } else {
                    "a canary failed: nothing else is started".to_string()
                });
            }
            _ => {}
        }
    }
}
