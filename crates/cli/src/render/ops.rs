//! Rendering `inspect`, `backup` and `restore`.

use std::io::IsTerminal;
use std::time::Duration;

use console::style;
use indicatif::{ProgressBar, ProgressStyle};
use pgstrata_ops::backup::{BackupReport, Event, RestoreReport};
use pgstrata_ops::inspect::{
    Check, CheckOutcome, CheckReport, Details, Group, InspectReport, InspectSettings,
    LockedSession, Verdict, pretty_age, pretty_bytes,
};

use super::{Out, fmt_ms};

/// Longest query text shown on one line.
const QUERY_WIDTH: usize = 100;

impl Out {
    /// `inspect --list`: the checks by group, then the settings in effect.
    pub fn inspect_list(&self, settings: &InspectSettings) {
        if self.json {
            let checks: Vec<serde_json::Value> = Check::ALL
                .iter()
                .map(|c| serde_json::json!({ "check": c.name(), "group": c.group(), "about": c.about() }))
                .collect();
            self.print_json(&serde_json::json!({ "checks": checks, "settings": settings }));
            return;
        }
        for group in Group::ALL {
            println!("{}", style(group.name()).bold());
            for c in Check::ALL.iter().filter(|c| c.group() == group) {
                println!("  {:<20} {}", c.name(), c.about());
            }
        }
        println!();
        println!("{}", style("[inspect] settings in effect").bold());
        match toml::to_string(settings) {
            Ok(text) => print!("{text}"),
            Err(e) => eprintln!("strata: cannot show the settings: {e}"),
        }
    }

    /// One inspection.
    pub fn inspect(&self, report: &InspectReport, previous: Option<&InspectReport>) {
        if self.json {
            self.print_json(report);
            return;
        }
        println!(
            "{} on PostgreSQL {} as {} — {} check(s) in {}",
            style(&report.database).bold(),
            report.server_version,
            report.user,
            report.checks.len(),
            fmt_ms(report.duration_ms)
        );
        let mut group = None;
        for c in &report.checks {
            if group != Some(c.group) {
                group = Some(c.group);
                println!("{}", style(c.group.name()).bold());
            }
            let before = previous.and_then(|p| p.get(c.check));
            self.check_lines(c, before);
        }
        let count = |f: &dyn Fn(&CheckOutcome) -> bool| {
            report.checks.iter().filter(|c| f(&c.outcome)).count()
        };
        let v = |verdict: Verdict| move |o: &CheckOutcome| o.verdict() == Some(verdict);
        println!(
            "\n{} problem(s), {} warning(s), {} ok, {} skipped, {} failed",
            count(&v(Verdict::Problem)),
            count(&v(Verdict::Warning)),
            count(&v(Verdict::Ok)),
            count(&|o| matches!(o, CheckOutcome::Skipped { .. })),
            count(&|o| matches!(o, CheckOutcome::Failed { .. })),
        );
    }

    /// A round of `--watch`: a redraw on a terminal, a JSON line with --json.
    pub fn inspect_watch(
        &self,
        report: &InspectReport,
        previous: Option<&InspectReport>,
        every: Duration,
    ) {
        if self.json {
            match serde_json::to_string(report) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("strata: cannot encode JSON: {e}"),
            }
            return;
        }
        if std::io::stdout().is_terminal() {
            print!("\x1b[2J\x1b[H");
        }
        println!(
            "{}",
            style(format!(
                "every {} · {} · Ctrl-C stops",
                pretty_age(every.as_secs_f64()),
                report.started_at.format("%H:%M:%S UTC")
            ))
            .dim()
        );
        self.inspect(report, previous);
    }

    fn check_lines(&self, c: &CheckReport, before: Option<&CheckReport>) {
        let name = c.check.name();
        match &c.outcome {
            CheckOutcome::Ran(f) => {
                let tag = match f.verdict {
                    Verdict::Ok => style("ok     ").green(),
                    Verdict::Warning => style("warning").yellow(),
                    Verdict::Problem => style("problem").red().bold(),
                };
                println!("  {tag}  {name:<18} {}", f.summary);
                for l in &f.limited {
                    println!("           {} {l}", style("limited:").yellow());
                }
                let live = matches!(c.check, Check::Strata | Check::Queues | Check::Streams);
                if f.verdict != Verdict::Ok || live || self.verbose > 0 {
                    let before = before.and_then(|b| match &b.outcome {
                        CheckOutcome::Ran(f) => Some(&f.details),
                        _ => None,
                    });
                    for line in detail_lines(&f.details, before) {
                        println!("           {line}");
                    }
                    for n in &f.notes {
                        println!("           {} {n}", style("note:").dim());
                    }
                }
            }
            CheckOutcome::Skipped { reason } => {
                println!(
                    "  {}  {name:<18} {}",
                    style("skipped").dim(),
                    style(reason).dim()
                );
            }
            CheckOutcome::Failed { error, sqlstate } => {
                let code = sqlstate
                    .as_deref()
                    .map(|s| format!(" (SQLSTATE {s})"))
                    .unwrap_or_default();
                println!(
                    "  {}  {name:<18} {error}{code}",
                    style("failed ").red().bold()
                );
            }
        }
    }

    /// A progress bar for backup and restore (stderr, terminals only).
    pub fn backup_progress(&self) -> BackupProgress {
        let bar = (!self.json && !self.quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::hidden();
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} {prefix} [{bar:30}] {pos}/{len} tables {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        BackupProgress { bar, bytes: 0 }
    }

    pub fn backup(&self, r: &BackupReport) {
        if self.json {
            self.print_json(r);
            return;
        }
        for w in &r.warnings {
            eprintln!("{} {w}", style("pg_dump warning:").yellow());
        }
        if self.quiet {
            return;
        }
        let m = &r.manifest;
        let rows: i64 = m.tables.iter().map(|t| t.rows).sum();
        println!(
            "backed up {} ({}) to {}: {}, {} table(s), {rows} row(s), {} migration(s) in Strata's history, in {}",
            m.database,
            m.server_version,
            r.archive.display(),
            pretty_bytes(i64::try_from(m.bytes).unwrap_or(i64::MAX)),
            m.tables.len(),
            m.history.len(),
            fmt_ms(r.duration_ms)
        );
        println!(
            "manifest {} (sha256 {}; pg_dump {})",
            r.manifest_path.display(),
            &m.checksum.value[..m.checksum.value.len().min(16)],
            r.pg_dump.version
        );
    }

    pub fn restore(&self, r: &RestoreReport) {
        if self.json {
            self.print_json(r);
            return;
        }
        if self.quiet {
            return;
        }
        match &r.verification {
            Some(v) if r.database.starts_with("strata_verify_") => println!(
                "verified {}: restored into a throwaway database, {} table(s) with {} row(s) and {} migration(s) \
                 of history match the manifest, in {}",
                r.archive.display(),
                v.tables,
                v.rows,
                v.history,
                fmt_ms(r.duration_ms)
            ),
            Some(v) => println!(
                "restored {} into {} and verified it: {} table(s) with {} row(s) and {} migration(s) of history \
                 match the manifest, in {}",
                r.archive.display(),
                r.database,
                v.tables,
                v.rows,
                v.history,
                fmt_ms(r.duration_ms)
            ),
            None => println!(
                "restored {} into {}: {} table(s), in {}{}",
                r.archive.display(),
                r.database,
                r.tables,
                fmt_ms(r.duration_ms),
                if r.manifest.is_some() {
                    " (checksum matched the manifest)"
                } else {
                    " (no manifest: not checked)"
                }
            ),
        }
    }
}

/// The backup/restore progress bar.
pub struct BackupProgress {
    bar: Option<ProgressBar>,
    bytes: u64,
}

impl BackupProgress {
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl pgstrata_ops::backup::Progress for BackupProgress {
    fn event(&mut self, event: Event) {
        let Some(bar) = &self.bar else { return };
        match event {
            Event::Start { step, total } => {
                bar.set_prefix(step);
                bar.set_length(total);
                bar.set_position(0);
                bar.reset_elapsed();
            }
            Event::Table { done, name } => {
                bar.set_position(done);
                bar.set_message(format!("{} · {name}", pretty_bytes(self.bytes as i64)));
            }
            Event::Bytes(b) => {
                self.bytes = b;
                bar.set_message(pretty_bytes(b as i64));
            }
            Event::Finish => bar.set_position(bar.length().unwrap_or(0)),
        }
    }
}

fn short(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > QUERY_WIDTH {
        format!(
            "{}…",
            one_line.chars().take(QUERY_WIDTH).collect::<String>()
        )
    } else {
        one_line
    }
}

fn when(t: Option<chrono::DateTime<chrono::Utc>>) -> String {
    t.map_or_else(
        || "never".into(),
        |t| t.format("%Y-%m-%d %H:%M").to_string(),
    )
}

/// `(+3)` / `(-2)` against the previous round, nothing when unchanged or unknown.
fn delta(now: i64, before: Option<i64>) -> String {
    match before {
        Some(b) if b != now => format!(" ({:+})", now - b),
        _ => String::new(),
    }
}

/// The rows of a check as short lines.
fn detail_lines(details: &Details, before: Option<&Details>) -> Vec<String> {
    match details {
        Details::DatabaseSizes(rows) => rows
            .iter()
            .map(|d| {
                format!(
                    "{}{}  {}",
                    d.name,
                    if d.current { " (this one)" } else { "" },
                    d.bytes.map_or_else(|| "?".into(), pretty_bytes)
                )
            })
            .collect(),
        Details::SchemaSizes(rows) => rows
            .iter()
            .map(|s| {
                let pkg = if s.packages.is_empty() {
                    String::new()
                } else {
                    format!("  [{}]", s.packages.join(", "))
                };
                format!(
                    "{}  {}  {} table(s){pkg}",
                    s.schema,
                    pretty_bytes(s.bytes),
                    s.tables
                )
            })
            .collect(),
        Details::TableSizes(t) => t
            .largest
            .iter()
            .map(|t| {
                format!(
                    "{}.{}  {} (table {}, indexes {}, toast {}){}{}",
                    t.schema,
                    t.table,
                    pretty_bytes(t.total_bytes),
                    pretty_bytes(t.table_bytes),
                    pretty_bytes(t.index_bytes),
                    pretty_bytes(t.toast_bytes),
                    t.rows_estimate
                        .map(|r| format!(", ~{r} rows"))
                        .unwrap_or_default(),
                    if t.estimated { ", estimated" } else { "" }
                )
            })
            .collect(),
        Details::UnusedIndexes(u) => u
            .indexes
            .iter()
            .map(|i| {
                format!(
                    "{}.{} on {}  {}",
                    i.schema,
                    i.index,
                    i.table,
                    pretty_bytes(i.bytes)
                )
            })
            .collect(),
        Details::DuplicateIndexes(rows) => rows
            .iter()
            .map(|d| {
                format!(
                    "{}.{} ({}) {} {}",
                    d.schema,
                    d.index,
                    pretty_bytes(d.bytes),
                    if d.exact {
                        "duplicates"
                    } else {
                        "is a prefix of"
                    },
                    d.covered_by
                )
            })
            .collect(),
        Details::InvalidIndexes(rows) => rows
            .iter()
            .map(|i| {
                format!(
                    "{}.{}{}  {}",
                    i.schema,
                    i.index,
                    if i.being_built { " (being built)" } else { "" },
                    short(&i.definition)
                )
            })
            .collect(),
        Details::Bloat(rows) => rows
            .iter()
            .map(|b| {
                format!(
                    "{}.{}{}  ~{} of {} wasted ({:.0}%)",
                    b.schema,
                    b.index.as_deref().unwrap_or(&b.table),
                    b.index
                        .as_ref()
                        .map(|_| format!(" on {}", b.table))
                        .unwrap_or_default(),
                    pretty_bytes(b.wasted_bytes),
                    pretty_bytes(b.bytes),
                    b.ratio * 100.0
                )
            })
            .collect(),
        Details::DeadTuples(rows) => rows
            .iter()
            .map(|d| {
                format!(
                    "{}.{}  {} dead / {} live ({:.0}%), last autovacuum {}{}",
                    d.schema,
                    d.table,
                    d.dead,
                    d.live,
                    d.ratio * 100.0,
                    when(d.last_autovacuum),
                    if d.autovacuum_disabled {
                        " (autovacuum off)"
                    } else {
                        ""
                    }
                )
            })
            .collect(),
        Details::VacuumAnalyze(rows) => rows
            .iter()
            .map(|v| {
                if v.never_analyzed {
                    format!(
                        "{}.{}  never analyzed ({} live rows)",
                        v.schema, v.table, v.live
                    )
                } else {
                    format!(
                        "{}.{}  last analyzed {}, {} rows changed since",
                        v.schema,
                        v.table,
                        when(v.last_analyze.max(v.last_autoanalyze)),
                        v.modified_since_analyze
                    )
                }
            })
            .collect(),
        Details::SeqScans(rows) => rows
            .iter()
            .map(|s| {
                format!(
                    "{}.{}  ~{} rows, {} seq scans ({} rows read), {:.0}% by index",
                    s.schema,
                    s.table,
                    s.rows,
                    s.seq_scans,
                    s.seq_rows_read,
                    s.index_use * 100.0
                )
            })
            .collect(),
        Details::Wraparound(w) => w
            .databases
            .iter()
            .map(|d| {
                format!(
                    "database {}  xid age {}, multixact age {}",
                    d.name, d.xid_age, d.multixact_age
                )
            })
            .chain(w.tables.iter().take(3).map(|t| {
                format!(
                    "table {}.{}  xid age {}, multixact age {}",
                    t.schema.as_deref().unwrap_or("?"),
                    t.name,
                    t.xid_age,
                    t.multixact_age
                )
            }))
            .collect(),
        Details::Transactions(rows) => rows
            .iter()
            .map(|t| {
                format!(
                    "{} {} {} {}, transaction {}, state {}: {}",
                    t.pid
                        .map_or_else(|| "prepared".into(), |p| format!("pid {p}")),
                    t.user.as_deref().unwrap_or("?"),
                    t.database.as_deref().unwrap_or("?"),
                    t.state.as_deref().unwrap_or("?"),
                    t.transaction_age_s.map_or_else(|| "?".into(), pretty_age),
                    t.state_age_s.map_or_else(|| "?".into(), pretty_age),
                    short(t.query.as_deref().unwrap_or("(hidden)"))
                )
            })
            .collect(),
        Details::BlockingLocks(rows) => lock_tree(rows),
        Details::Connections(c) => c
            .by_database
            .iter()
            .map(|(db, n)| format!("{db}: {n}"))
            .collect(),
        Details::CacheHit(_) | Details::Checkpoints(_) => Vec::new(),
        Details::ReplicationSlots(rows) => rows
            .iter()
            .map(|s| {
                format!(
                    "{} ({}{})  {}, {} retained, wal {}",
                    s.name,
                    s.kind,
                    s.plugin
                        .as_deref()
                        .map(|p| format!(", {p}"))
                        .unwrap_or_default(),
                    if s.active { "active" } else { "inactive" },
                    s.retained_bytes.map_or_else(|| "?".into(), pretty_bytes),
                    s.wal_status.as_deref().unwrap_or("?")
                )
            })
            .collect(),
        Details::Strata(st) => {
            let mut lines: Vec<String> = st
                .packages
                .iter()
                .map(|p| {
                    let mut l = format!("{} ({}): {} applied", p.name, p.schema, p.applied);
                    if let Some(n) = p.pending {
                        l.push_str(&format!(", {n} pending"));
                    }
                    if let Some(n) = p.changed_or_missing.filter(|n| *n > 0) {
                        l.push_str(&format!(", {n} changed/missing"));
                    }
                    if let Some(n) = p.drifted.filter(|n| *n > 0) {
                        l.push_str(&format!(", {n} drifted"));
                    }
                    if let Some(n) = p.code_pending.filter(|n| *n > 0) {
                        l.push_str(&format!(", {n} code change(s) to install"));
                    }
                    l.push_str(&format!("; {} managed object(s)", p.managed_objects));
                    l
                })
                .collect();
            if let Some(f) = &st.last_failure {
                lines.push(format!(
                    "last failure: run #{} {} at {}: {}",
                    f.id,
                    f.command,
                    f.started_at.format("%Y-%m-%d %H:%M"),
                    short(f.error.as_deref().unwrap_or("?"))
                ));
            }
            lines
        }
        Details::Queues(rows) => {
            let prev = match before {
                Some(Details::Queues(p)) => Some(p),
                _ => None,
            };
            rows.iter()
                .map(|q| {
                    let b = prev.and_then(|p| p.iter().find(|x| x.name == q.name));
                    format!(
                        "{:<20} ready {}{}  delayed {}  in flight {}{}  dead {}{}  oldest ready {}",
                        q.name,
                        q.ready,
                        delta(q.ready, b.map(|b| b.ready)),
                        q.delayed,
                        q.in_flight + q.expired,
                        delta(q.in_flight + q.expired, b.map(|b| b.in_flight + b.expired)),
                        q.dead,
                        delta(q.dead, b.map(|b| b.dead)),
                        q.oldest_ready_age_s.map_or_else(|| "-".into(), pretty_age)
                    )
                })
                .collect()
        }
        Details::Streams(rows) => {
            let prev = match before {
                Some(Details::Streams(p)) => Some(p),
                _ => None,
            };
            let mut lines = Vec::new();
            for s in rows {
                let b = prev.and_then(|p| p.iter().find(|x| x.name == s.name));
                let retention = match (&s.retention_age, s.retention_count) {
                    (None, None) => "kept forever".to_string(),
                    (age, count) => format!(
                        "kept {}{}",
                        age.as_deref().unwrap_or(""),
                        count.map(|c| format!(" / last {c}")).unwrap_or_default()
                    ),
                };
                lines.push(format!(
                    "{:<20} {} event(s){} in {} partition(s), {retention}",
                    s.name,
                    s.events,
                    delta(s.events, b.map(|b| b.events)),
                    s.partitions
                ));
                for g in &s.groups {
                    let gb = b.and_then(|b| b.groups.iter().find(|x| x.group == g.group));
                    lines.push(format!(
                        "  group {:<14} {} behind{}, oldest {}, last commit {}",
                        g.group,
                        g.pending,
                        delta(g.pending, gb.map(|g| g.pending)),
                        g.oldest_pending_age_s
                            .map_or_else(|| "-".into(), pretty_age),
                        when(g.last_commit_at)
                    ));
                }
            }
            lines
        }
        Details::Statements(rows) => rows
            .iter()
            .map(|s| {
                format!(
                    "{:>5.1}%  {:>10.2} ms/call  {:>8} calls  {}",
                    s.share * 100.0,
                    s.mean_ms,
                    s.calls,
                    short(s.query.as_deref().unwrap_or("(hidden)"))
                )
            })
            .collect(),
    }
}

/// Lock chains: each holder that waits for nobody, then who waits for it, indented.
fn lock_tree(rows: &[LockedSession]) -> Vec<String> {
    fn describe(s: &LockedSession) -> String {
        let waiting = match (s.waiting_s, &s.waiting_for) {
            (Some(w), Some(what)) => format!("waits {} for {what}; ", pretty_age(w)),
            _ => String::new(),
        };
        format!(
            "pid {} {} ({}, transaction {}): {waiting}{}",
            s.pid,
            s.user.as_deref().unwrap_or("?"),
            s.state.as_deref().unwrap_or("?"),
            s.transaction_age_s.map_or_else(|| "?".into(), pretty_age),
            short(s.query.as_deref().unwrap_or("(hidden)"))
        )
    }
    fn walk(
        rows: &[LockedSession],
        pid: i32,
        depth: usize,
        seen: &mut Vec<i32>,
        out: &mut Vec<String>,
    ) {
        for s in rows.iter().filter(|s| s.blocked_by.contains(&pid)) {
            if seen.contains(&s.pid) {
                continue;
            }
            seen.push(s.pid);
            out.push(format!("{}└ {}", "  ".repeat(depth), describe(s)));
            walk(rows, s.pid, depth + 1, seen, out);
        }
    }
    let mut out = Vec::new();
    let mut seen = Vec::new();
    for root in rows.iter().filter(|s| s.blocked_by.is_empty()) {
        seen.push(root.pid);
        out.push(describe(root));
        walk(rows, root.pid, 1, &mut seen, &mut out);
    }
    // A deadlock-in-the-making (a cycle) has no root: list what is left.
    for s in rows.iter().filter(|s| !seen.contains(&s.pid)) {
        out.push(describe(s));
    }
    out
}
