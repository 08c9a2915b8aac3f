//! Everything the CLI prints: human text (stdout), a progress bar (stderr, terminals only), JSON (`--json`), and
//! diagnostics (stderr, rendered by miette).

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use console::style;
use indicatif::{ProgressBar, ProgressStyle};
use pgstrata::{DownReport, Event, MigrationState, Outcome, Plan, Project, UpReport};

use crate::args::Global;

mod code;
pub mod diagnostic;
mod fleet;
mod ops;

pub struct Out {
    json: bool,
    quiet: bool,
    verbose: u8,
}

impl Out {
    pub fn new(g: &Global) -> Out {
        Out {
            json: g.json,
            quiet: g.quiet,
            verbose: g.verbose,
        }
    }

    pub fn is_json(&self) -> bool {
        self.json
    }

    pub fn is_quiet(&self) -> bool {
        self.quiet
    }

    pub fn json_value(&self, value: &impl serde::Serialize) {
        self.print_json(value);
    }

    fn print_json(&self, value: &impl serde::Serialize) {
        match serde_json::to_string_pretty(value) {
            Ok(s) => println!("{s}"),
            Err(e) => eprintln!("strata: cannot encode JSON: {e}"),
        }
    }

    /// A plain value on stdout (URLs), even with --quiet.
    pub fn plain(&self, s: &str) {
        if self.json {
            self.print_json(&serde_json::json!({ "value": s }));
        } else {
            println!("{s}");
        }
    }

    pub fn line(&self, s: &str) {
        if self.json {
            self.print_json(&serde_json::json!({ "message": s }));
        } else if !self.quiet {
            println!("{s}");
        }
    }

    pub fn error(&self, report: &miette::Report) {
        if self.json {
            let mut obj = serde_json::json!({
                "error": {
                    "message": message_with_causes(report),
                    "code": report.code().map(|c| c.to_string()),
                    "help": report.help().map(|h| h.to_string()),
                }
            });
            if let Some(pgstrata::Error::Sql(sql)) = report.downcast_ref::<pgstrata::Error>() {
                obj["error"]["sqlstate"] = sql.sqlstate.clone().into();
                obj["error"]["file"] = sql.origin.clone().into();
                obj["error"]["line"] = sql.line.into();
                obj["error"]["column"] = sql.col.into();
                obj["error"]["detail"] = sql.detail.clone().into();
                obj["error"]["hint"] = sql.hint.clone().into();
                obj["error"]["migration"] = sql.migration.clone().into();
                obj["error"]["rolled_back"] = sql.rolled_back.into();
            }
            if let Some(pgstrata::Error::Source(src)) = report.downcast_ref::<pgstrata::Error>() {
                // Errors in strata.toml or a SQL file, found before anything ran: where, as for SQL errors.
                obj["error"]["file"] = src.file.name().into();
                if let Some(span) = src.span {
                    let at = pgstrata_sql::LineIndex::new(src.file.inner()).line_col(span.offset());
                    obj["error"]["line"] = at.line.into();
                    obj["error"]["column"] = at.col.into();
                }
            }
            if let Some(pgstrata::Error::Changed(c)) = report.downcast_ref::<pgstrata::Error>() {
                obj["error"]["changed"] = serde_json::to_value(&c.changes).unwrap_or_default();
            }
            if let Some(pgstrata::Error::TestsFailed(t)) = report.downcast_ref::<pgstrata::Error>()
            {
                obj["error"]["tests"] = serde_json::to_value(&t.report).unwrap_or_default();
            }
            if let Some(pgstrata::Error::Lint(l)) = report.downcast_ref::<pgstrata::Error>() {
                obj["error"]["lint"] = serde_json::to_value(&l.report).unwrap_or_default();
            }
            self.print_json(&obj);
        } else {
            eprintln!("{}", diagnostic::render(report));
        }
    }

    pub fn created(&self, files: &[PathBuf]) {
        if self.json {
            self.print_json(&serde_json::json!({ "created": files }));
        } else if !self.quiet {
            for f in files {
                println!("created {}", f.display());
            }
        }
    }

    pub fn plan(
        &self,
        project: &Project,
        plan: &Plan,
        target: &str,
        with_sql: bool,
        safety: &crate::safety::PlanSafety,
        code: &[pgstrata::managed::PackageCode],
    ) {
        let code_changes: Vec<&pgstrata::managed::PackageCode> = code
            .iter()
            .filter(|c| {
                c.objects
                    .iter()
                    .any(|o| o.state != pgstrata::managed::ObjectState::InSync)
            })
            .collect();
        if self.json {
            self.print_json(&serde_json::json!({
                "code": code_changes,
                "lint": safety.lint,
                "locks": safety.locks,
                "target": target,
                "packages": plan.packages,
                "steps": plan.steps,
                "segments": plan.segments(),
                "accepted_changes": plan.accepted_changes,
                "repeatables": plan.repeatables,
                "adoptions": plan.adoptions,
                "changed": plan.changed(),
                "out_of_order": plan.out_of_order(),
                "missing": plan.missing(),
            }));
            return;
        }
        if plan.is_empty() && code_changes.is_empty() {
            println!("Nothing to apply on {target}.");
        } else if plan.steps.is_empty() {
            println!("No migrations to apply on {target}.");
        } else {
            let segments = plan.segments();
            // "in 1 transaction" only when that is what it is: a lone no-transaction segment is a segment.
            let shape = match segments.as_slice() {
                [one] if one.transactional => "in 1 transaction".to_string(),
                [_] => "in 1 segment".to_string(),
                many => format!("in {} segments", many.len()),
            };
            println!(
                "{} migration(s) to apply on {target}, {shape}:",
                plan.steps.len()
            );
            for (i, seg) in segments.iter().enumerate() {
                if segments.len() > 1 || !seg.transactional {
                    let how = if seg.transactional {
                        "one transaction"
                    } else {
                        "no transaction: statement by statement, each committed on its own"
                    };
                    println!("  segment {} ({how}):", i + 1);
                }
                for m in &seg.migrations {
                    println!("    {m}");
                }
                if let Some(reason) = &seg.commit_reason {
                    println!("    commits here: {reason}");
                }
            }
        }
        for a in &plan.adoptions {
            println!(
                "  adopt schema {} (owned by {}, {} object(s)) for {}: it and its objects will belong to the package \
                 role{}",
                a.schema,
                a.owner,
                a.objects,
                a.package,
                if a.recorded_for.as_deref() == Some(a.package.as_str()) {
                    ""
                } else {
                    " (adopt_schema = true)"
                }
            );
        }
        for c in &plan.accepted_changes {
            println!(
                "  accept changed text of {}:{} (recorded, not run)",
                c.0, c.1
            );
        }
        for r in plan
            .repeatables
            .iter()
            .filter(|r| r.state != pgstrata::RepeatableState::Applied)
        {
            println!(
                "  repeatable {}:{} runs after the migrations ({})",
                r.package,
                r.name,
                if r.state == pgstrata::RepeatableState::Pending {
                    "new"
                } else {
                    "changed"
                }
            );
        }
        for p in plan.packages.iter().filter(|p| !p.internal) {
            if let (Some(from), Some(to)) = (&p.from, &p.to)
                && from == to
            {
                continue;
            }
            if p.from == p.to {
                continue;
            }
            println!(
                "  {}: {} → {}",
                p.name,
                p.from.as_deref().unwrap_or("(nothing)"),
                p.to.as_deref().unwrap_or("(nothing)")
            );
        }
        for c in &code_changes {
            println!("  {}:", c.package);
            self.code_status(c);
        }
        crate::safety::print_plan_safety(safety);
        if with_sql {
            for s in &plan.steps {
                let sql = project
                    .package(&s.package)
                    .and_then(|p| p.migrations().iter().find(|m| m.name() == s.name))
                    .map(|m| m.up_sql().to_string());
                if let Some(sql) = sql {
                    println!("\n-- {}:{} ({})", s.package, s.name, s.path);
                    println!("{}", sql.trim_end());
                }
            }
        }
        for w in plan.out_of_order() {
            println!("  out of order: {w} (needs --allow-out-of-order)");
        }
        for w in plan.missing() {
            println!("  missing file: {w} (applied; needs --allow-missing, or `strata down`)");
        }
    }

    pub fn up(&self, report: &UpReport, target: &str) {
        if self.json {
            self.print_json(report);
            return;
        }
        if self.quiet {
            return;
        }
        match report.outcome {
            Outcome::Noop => {
                println!("Nothing to apply on {target}: everything is up to date.");
            }
            Outcome::Applied | Outcome::DryRun => {
                let width = label_width(&report.migrations);
                for m in &report.migrations {
                    let label = format!("{}:{}", m.package, m.name);
                    println!(
                        "  {} {label:<width$}  {:>9}{}",
                        style("✓").green(),
                        fmt_ms(m.duration_ms),
                        if m.no_transaction {
                            "  (no transaction)"
                        } else {
                            ""
                        }
                    );
                }
                for r in &report.repeatables {
                    println!(
                        "  {} {}:{}  {:>9}  (repeatable, changed)",
                        style("✓").green(),
                        r.package,
                        r.name,
                        fmt_ms(r.duration_ms)
                    );
                }
                for t in &report.packages {
                    println!(
                        "{}: {} → {} ({} migration{})",
                        t.package,
                        t.from.as_deref().unwrap_or("(nothing)"),
                        t.to.as_deref().unwrap_or("(nothing)"),
                        t.count,
                        if t.count == 1 { "" } else { "s" }
                    );
                }
                for c in &report.accepted_changes {
                    println!("accepted the changed text of {c}");
                }
                self.up_code(report);
                if report.outcome == Outcome::DryRun {
                    println!(
                        "Dry run: {} migration(s){} ran on {target} and were rolled back in {}.",
                        report.migrations.len(),
                        code::changes_suffix(report),
                        fmt_ms(report.duration_ms)
                    );
                } else {
                    println!(
                        "Applied {} migration(s){} to {target} in {}.",
                        report.migrations.len(),
                        code::changes_suffix(report),
                        fmt_ms(report.duration_ms)
                    );
                }
            }
        }
        for w in &report.warnings {
            eprintln!("{} {w}", style("warning:").yellow());
        }
    }

    pub fn down(&self, report: &DownReport, target: &str) {
        if self.json {
            self.print_json(report);
            return;
        }
        if self.quiet {
            return;
        }
        if report.outcome == Outcome::Noop {
            println!("Nothing to roll back on {target}.");
            return;
        }
        let width = label_width(&report.migrations);
        for m in &report.migrations {
            let label = format!("{}:{}", m.package, m.name);
            println!(
                "  {} {label:<width$}  {:>9}  (stored down SQL)",
                style("↶").cyan(),
                fmt_ms(m.duration_ms)
            );
        }
        let verb = if report.outcome == Outcome::DryRun {
            "Dry run: reverted and rolled back"
        } else {
            "Reverted"
        };
        println!(
            "{verb} {} migration(s) on {target} in {}.",
            report.migrations.len(),
            fmt_ms(report.duration_ms)
        );
        if let Some(s) = &report.stopped_before {
            eprintln!(
                "{} dry run stopped before {s}: its down SQL runs outside a transaction and cannot be rolled back",
                style("warning:").yellow()
            );
        }
        if !report.broken.is_empty() {
            eprintln!(
                "{} the rollback broke {} managed routine(s): they use what it dropped",
                style("warning:").yellow(),
                report.broken.len()
            );
            for b in &report.broken {
                eprintln!(
                    "  {} {} {}  {}:{}  ({})",
                    style("✗").red(),
                    b.kind,
                    b.identity,
                    b.file,
                    b.line,
                    b.error
                );
            }
            eprintln!(
                "  deploy the code that matches this schema (e.g. check out the matching version and `strata up`), \
                 or re-apply the migration with `strata up`"
            );
        }
    }

    pub fn status(
        &self,
        plan: &Plan,
        last_run: Option<&pgstrata::history::RunRecord>,
        target: &str,
        invalid_indexes: &[pgstrata::InvalidIndex],
        code: &[pgstrata::managed::PackageCode],
    ) {
        if self.json {
            self.print_json(&serde_json::json!({
                "target": target,
                "packages": plan.packages,
                "repeatables": plan.repeatables,
                "adoptions": plan.adoptions,
                "code": code,
                "last_run": last_run,
                "invalid_indexes": invalid_indexes,
            }));
            return;
        }
        println!("{target}");
        for p in &plan.packages {
            if p.internal && self.verbose == 0 {
                continue;
            }
            let count = |s: MigrationState| p.migrations.iter().filter(|m| m.state == s).count();
            println!(
                "\n{} (schema {}): {} applied, {} pending{}{}{}",
                style(&p.name).bold(),
                p.schema,
                count(MigrationState::Applied),
                count(MigrationState::Pending) + count(MigrationState::OutOfOrder),
                nonzero(", {} changed", count(MigrationState::Changed)),
                nonzero(", {} missing", count(MigrationState::Missing)),
                nonzero(", {} out of order", count(MigrationState::OutOfOrder)),
            );
            for m in &p.migrations {
                let (word, note) = match m.state {
                    MigrationState::Applied => (style("applied ").green(), String::new()),
                    MigrationState::Pending => (style("pending ").yellow(), String::new()),
                    MigrationState::OutOfOrder => (
                        style("pending ").yellow(),
                        "  (out of order: listed before applied migrations)".into(),
                    ),
                    MigrationState::Changed => (
                        style("changed ").red(),
                        "  (file changed since it was applied)".into(),
                    ),
                    MigrationState::Missing => (
                        style("missing ").red(),
                        format!(
                            "  (applied, but not in the manifest{})",
                            if m.has_down { "; down SQL stored" } else { "" }
                        ),
                    ),
                };
                let when = m
                    .applied_at
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default();
                println!("  {word} {:<40} {when}{note}", m.name);
            }
            if let Some(c) = code.iter().find(|c| c.package == p.name) {
                self.code_status(c);
            }
        }
        if !plan.repeatables.is_empty() {
            println!("\n{}", style("repeatable scripts").bold());
            for r in &plan.repeatables {
                let word = match r.state {
                    pgstrata::RepeatableState::Applied => style("applied ").green(),
                    pgstrata::RepeatableState::Pending => style("pending ").yellow(),
                    pgstrata::RepeatableState::Changed => style("changed ").yellow(),
                };
                println!("  {word} {}:{}", r.package, r.name);
            }
        }
        if let Some(r) = last_run
            && (r.outcome == "failed" || r.outcome == "interrupted" || r.outcome == "running")
        {
            let how = match r.outcome.as_str() {
                "failed" => "failed",
                "interrupted" => "was interrupted (strata or its connection was killed)",
                _ => "is running, or died without a trace (the next `up` marks it interrupted)",
            };
            println!(
                "\n{} last run #{} ({}) {how}, started {}: {}",
                style("!").red(),
                r.id,
                r.command,
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                r.error.as_deref().unwrap_or("")
            );
            if let Some(d) = &r.detail {
                let committed: Vec<&str> = d["committed_statements"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|s| s.as_str()).collect())
                    .unwrap_or_default();
                let progress = &d["progress"];
                let recorded = progress["committed"].as_array().map_or(0, Vec::len);
                if committed.is_empty() && recorded > 0 {
                    println!(
                        "  {recorded} statement(s) of {} committed and were recorded as they did (they stay applied; \
                         `strata up` resumes after them){}",
                        progress["migration"]
                            .as_str()
                            .unwrap_or("a no-transaction migration"),
                        if progress["started"].is_object() {
                            "; one more was under way outside any transaction"
                        } else {
                            ""
                        }
                    );
                } else if committed.is_empty() {
                    println!("  detail: {d}");
                } else {
                    println!(
                        "  {} statement(s) of {} committed before the failure (they stay applied; `strata up` skips \
                         them and resumes, `--no-resume` runs them again):",
                        committed.len(),
                        d["failed_migration"]
                            .as_str()
                            .unwrap_or("the failed migration")
                    );
                    for s in committed {
                        println!("    {}", s.lines().next().unwrap_or(""));
                    }
                }
            }
        }
        if !invalid_indexes.is_empty() {
            println!(
                "\n{} invalid index(es), left by a failed CREATE INDEX CONCURRENTLY (they slow writes and serve no \
                 query; drop, then build again):",
                style("!").red()
            );
            for i in invalid_indexes {
                println!("  {}.{} on {}: {}", i.schema, i.name, i.table, i.drop_sql());
            }
        }
    }

    pub fn runs(&self, runs: &[pgstrata::history::RunRecord]) {
        if self.json {
            self.print_json(&runs);
            return;
        }
        for r in runs {
            // started_at and finished_at come from different clocks (the run's transaction, the statement that
            // ended it): a run that took no time can come out a few microseconds negative.
            let took = r
                .finished_at
                .map(|f| {
                    fmt_ms(
                        (f - r.started_at).num_microseconds().unwrap_or(0).max(0) as f64 / 1000.0,
                    )
                })
                .unwrap_or_default();
            println!(
                "#{:<5} {} {:<5} {:<8} {:>9}  by {}",
                r.id,
                r.started_at.format("%Y-%m-%d %H:%M:%S"),
                r.command,
                r.outcome,
                took,
                r.db_user
            );
            for line in state_changes(&r.from_state, r.to_state.as_ref()) {
                println!("       {line}");
            }
            if let Some(e) = &r.error {
                println!("       error: {}", e.lines().next().unwrap_or(""));
            }
        }
    }

    pub fn waited(&self, target: &str, waited: Duration) {
        if self.json {
            self.print_json(&serde_json::json!({ "ready": true, "target": target, "waited_ms": waited.as_millis() as u64 }));
        } else if !self.quiet {
            println!(
                "{target} accepts connections (waited {} ms)",
                waited.as_millis()
            );
        }
    }

    pub fn db_changed(&self, verb: &str, name: &str, changed: bool) {
        if self.json {
            self.print_json(&serde_json::json!({ "database": name, verb: changed }));
        } else if !self.quiet {
            if changed {
                println!("{verb} database {name}");
            } else {
                println!("database {name}: nothing to do (already {verb})");
            }
        }
    }

    pub fn dev_status(&self, s: &pgstrata_embedded::DevStatus) {
        if self.json {
            self.print_json(s);
        } else {
            println!(
                "{} PostgreSQL {} in {} (port {}{})\n{}",
                if s.running { "running:" } else { "stopped:" },
                s.version,
                s.dir.display(),
                s.port,
                s.pid.map(|p| format!(", pid {p}")).unwrap_or_default(),
                s.url
            );
        }
    }

    pub fn progress(&self) -> Progress {
        let bar = if !self.json && !self.quiet && std::io::stderr().is_terminal() {
            let bar = ProgressBar::hidden();
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            Some(bar)
        } else {
            None
        };
        Progress {
            bar,
            verbose: self.verbose > 0 && !self.json,
            safety: !self.json && !self.quiet,
            lock_messages: !self.quiet,
        }
    }
}

/// Progress bar on stderr (terminals only) and, with -v, notices as they arrive.
pub struct Progress {
    bar: Option<ProgressBar>,
    verbose: bool,
    /// Show lint findings, retries and resumes (not with --json or --quiet).
    safety: bool,
    /// Say when the deploy waits for another one's lock (on stderr, so also with --json; not with --quiet).
    lock_messages: bool,
}

impl Progress {
    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

impl pgstrata::Observer for Progress {
    fn event(&mut self, event: Event<'_>) {
        crate::safety::event(&event, self.bar.as_ref(), self.safety);
        match event {
            Event::LockWaiting if self.lock_messages => {
                let _ = writeln!(std::io::stderr(), "waiting for another deploy to finish…");
            }
            Event::LockAcquired { waited } if self.lock_messages => {
                let _ = writeln!(
                    std::io::stderr(),
                    "got the deploy lock after {} ms",
                    waited.as_millis()
                );
            }
            Event::Planned { total } => {
                if let Some(b) = &self.bar
                    && total > 0
                {
                    b.set_length(total as u64);
                    b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                }
            }
            Event::MigrationStarted { package, name, .. } => {
                if let Some(b) = &self.bar {
                    b.set_message(format!("{package}:{name}"));
                }
            }
            Event::MigrationFinished { .. } => {
                if let Some(b) = &self.bar {
                    b.inc(1);
                }
            }
            Event::Notice {
                package,
                name,
                severity,
                message,
            } if self.verbose || severity == "WARNING" => {
                let line = format!("{package}:{name}: {severity}: {message}");
                match &self.bar {
                    Some(b) => b.println(line),
                    None => eprintln!("{line}"),
                }
            }
            _ => {}
        }
    }
}

fn label_width(migrations: &[pgstrata::RanMigration]) -> usize {
    migrations
        .iter()
        .map(|m| m.package.len() + m.name.len() + 1)
        .max()
        .unwrap_or(0)
}

fn fmt_ms(ms: f64) -> String {
    if ms >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else {
        format!("{ms:.1} ms")
    }
}

fn nonzero(fmt: &str, n: usize) -> String {
    if n == 0 {
        String::new()
    } else {
        fmt.replace("{}", &n.to_string())
    }
}

/// The error and its causes on one line (`cannot read x.sql: Is a directory (os error 21)`), for JSON, where
/// there is no cause chain to draw.
fn message_with_causes(report: &miette::Report) -> String {
    let mut message = report.to_string();
    for cause in report.chain().skip(1) {
        let cause = cause.to_string();
        if !message.contains(&cause) {
            message.push_str(": ");
            message.push_str(&cause);
        }
    }
    message
}

/// What a run changed, one line per package: `package: from → to` (`(nothing)` for no migration). `to` is `None`
/// for a run that failed before recording its end state.
fn state_changes(from: &serde_json::Value, to: Option<&serde_json::Value>) -> Vec<String> {
    let Some(to) = to else {
        return Vec::new();
    };
    let name = |state: &serde_json::Value, package: &str| -> String {
        state
            .get(package)
            .and_then(|v| v.as_str())
            .unwrap_or("(nothing)")
            .to_string()
    };
    let mut packages: Vec<&String> = from
        .as_object()
        .into_iter()
        .chain(to.as_object())
        .flat_map(|m| m.keys())
        .collect();
    packages.sort();
    packages.dedup();
    packages
        .into_iter()
        .filter_map(|p| {
            let (a, b) = (name(from, p), name(to, p));
            (a != b).then(|| format!("{p}: {a} → {b}"))
        })
        .collect()
}
