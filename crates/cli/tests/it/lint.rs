//! Safe migrations (issue 6): `strata lint` (exit codes, JSON and GitHub formats, pending/all/paths,
//! `[lint]` settings, ignore comments), lint findings and the lock report in `plan`, and the guard-rails of `up`:
//! refusing lint errors and non-transactional statements before anything runs, giving up on a lock held by another
//! session after lock_timeout, resuming a failed no-transaction migration, invalid indexes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Db, Pkg, run, strata};

/// Another session (psql) that reads `table` in a transaction it keeps open for a minute, so it holds ACCESS SHARE
/// on the table; killed on drop.
struct LockHolder(Child);

impl LockHolder {
    fn reading(db: &Db, table: &str) -> LockHolder {
        let child = Command::new(pgtest::tool("psql"))
            .envs(db.env())
            .args([
                "-X",
                "-q",
                "-c",
                &format!("BEGIN; SELECT count(*) FROM {table}; SELECT pg_sleep(60); COMMIT;"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("psql starts");
        let holder = LockHolder(child);
        let started = Instant::now();
        let held = format!(
            "SELECT EXISTS (SELECT FROM pg_locks WHERE relation = '{table}'::regclass AND granted \
             AND pid <> pg_backend_pid())"
        );
        while !db.value::<bool>(&held) {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "psql never took its lock"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        holder
    }

    /// End the transaction: the server only notices a vanished client when it next writes to it, so end the backend
    /// too.
    fn release(self, db: &Db) {
        db.exec(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE '%pg_sleep(60)%'",
        );
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A migration with one lint error: an index built without CONCURRENTLY on an existing table.
const RISKY: &str = "ALTER TABLE invoice ADD COLUMN note varchar(100);\nCREATE INDEX invoice_note ON invoice (note);\n";

fn billing(db: &Db) -> Pkg {
    let mut pkg = Pkg::new("acme/billing", "billing");
    pkg.add(
        "0001_invoice.sql",
        "CREATE TABLE invoice (id bigint PRIMARY KEY, total numeric NOT NULL DEFAULT 0);\n\
         INSERT INTO invoice SELECT g, g FROM generate_series(1, 1000) g;\n",
    );
    pkg.run(db, &["up"]).ok();
    pkg
}

#[test]
fn lint_exit_codes() {
    let mut pkg = Pkg::new("acme/lint", "lint");
    pkg.add(
        "0001_clean.sql",
        "CREATE TABLE IF NOT EXISTS t (id bigint PRIMARY KEY, note text);\n",
    );
    let clean = run(strata().current_dir(pkg.root()).args(["lint", "--all"])).ok();
    assert!(
        clean.says("0 errors, 0 warnings in 1 file checked"),
        "{}",
        clean.stdout
    );

    // A warning: exit 0, or 1 with --deny-warnings.
    pkg.add("0002_warning.sql", "ALTER TABLE t ADD COLUMN amount int;\n");
    let warned = run(strata().current_dir(pkg.root()).args(["lint", "--all"])).ok();
    assert!(warned.says("prefer-bigint-over-int"), "{}", warned.stdout);
    run(strata()
        .current_dir(pkg.root())
        .args(["lint", "--all", "--deny-warnings"]))
    .expect_code(1);

    // An error: exit 1.
    pkg.add("0003_error.sql", "CREATE INDEX t_note ON t (note);\n");
    let failed = run(strata().current_dir(pkg.root()).args(["lint", "--all"])).expect_code(1);
    assert!(failed.says("require-concurrent-index-creation"));
    crate::snap!("lint_human", failed.stdout);

    // Files by path: the package's [lint] settings apply to its own migrations.
    pkg.extra = "[lint]\ndisable = [\"require-concurrent-index-creation\"]\n".into();
    pkg.write_manifest();
    run(strata()
        .current_dir(pkg.root())
        .args(["lint", "migrations/0003_error.sql"]))
    .ok();
    run(strata()
        .current_dir(pkg.root())
        .args(["lint", "migrations"]))
    .ok();

    // Usage errors: exit 2.
    run(strata()
        .current_dir(pkg.root())
        .args(["lint", "no/such/file.sql"]))
    .expect_code(2);
    run(strata()
        .current_dir(pkg.root())
        .args(["lint", "--all", "--format", "xml"]))
    .expect_code(2);
}

#[test]
fn a_syntax_error_is_a_lint_error() {
    let mut pkg = Pkg::new("acme/syntax", "syntax");
    pkg.add("0001_typo.sql", "CREATE TABLE t (id bigint,);\n");
    let failed = run(strata().current_dir(pkg.root()).args(["lint", "--all"])).expect_code(1);
    assert!(failed.says("syntax-error"), "{}", failed.stdout);
    assert!(failed.says("1 error"), "{}", failed.stdout);
}

#[test]
fn lint_settings_are_checked_with_the_manifest() {
    let mut pkg = Pkg::new("acme/lint", "lint");
    pkg.add("0001_a.sql", "SELECT 1;\n");
    pkg.extra = "[lint]\nenable = [\"no-such-rule\"]\n".into();
    pkg.write_manifest();
    // The manifest does not load: the command cannot start (exit 2).
    let failed = run(strata().current_dir(pkg.root()).args(["lint", "--all"])).expect_code(2);
    assert!(
        failed.says("unknown lint rule \"no-such-rule\""),
        "{}",
        failed.stderr
    );
    assert!(
        failed.says("strata.toml:"),
        "points into the manifest: {}",
        failed.stderr
    );

    pkg.extra = "[lint]\nseverity = { prefer-bigint-over-int = \"fatal\" }\n".into();
    pkg.write_manifest();
    let failed = run(strata().current_dir(pkg.root()).args(["lint", "--all"])).expect_code(2);
    assert!(
        failed.says("unknown severity \"fatal\""),
        "{}",
        failed.stderr
    );
}

#[test]
fn lint_settings_and_ignore_comments_change_findings() {
    let mut pkg = Pkg::new("acme/lint", "lint");
    pkg.add(
        "0001_a.sql",
        "CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY);\n\
         -- squawk-ignore require-concurrent-index-creation\n\
         CREATE INDEX t_id ON t (id);\n",
    );
    let json = run(strata()
        .current_dir(pkg.root())
        .args(["lint", "--all", "--format", "json"]))
    .ok()
    .json();
    let rules: Vec<&str> = json["files"][0]["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert_eq!(rules, ["prefer-bigint-over-int"]);

    // Graded up to an error: exit 1; disabled: clean.
    pkg.extra = "[lint]\nseverity = { prefer-bigint-over-int = \"error\" }\n".into();
    pkg.write_manifest();
    run(strata().current_dir(pkg.root()).args(["lint", "--all"])).expect_code(1);
    pkg.extra = "[lint]\ndisable = [\"prefer-bigint-over-int\"]\npg_version = 16\n".into();
    pkg.write_manifest();
    let clean = run(strata().current_dir(pkg.root()).args(["lint", "--all"])).ok();
    assert!(clean.says("0 errors, 0 warnings"), "{}", clean.stdout);
}

#[test]
fn lint_json_and_github_formats() {
    let mut pkg = Pkg::new("acme/lint", "lint");
    pkg.add(
        "0001_a.sql",
        "CREATE TABLE IF NOT EXISTS t (id int PRIMARY KEY, note text);\nVACUUM t;\n",
    );
    let json = run(strata()
        .current_dir(pkg.root())
        .args(["lint", "--all", "--format", "json"]))
    .expect_code(1)
    .json();
    assert_eq!(json["errors"], 1);
    assert_eq!(json["warnings"], 1);
    crate::snap_json!("lint_json", json.clone());
    // --json means the same.
    let global = run(strata()
        .current_dir(pkg.root())
        .args(["--json", "lint", "--all"]))
    .expect_code(1)
    .json();
    assert_eq!(global, json);

    let github = run(strata()
        .current_dir(pkg.root())
        .args(["lint", "--all", "--format", "github"]))
    .expect_code(1);
    for line in github.stdout.lines() {
        assert!(
            line.starts_with("::error file=") || line.starts_with("::warning file="),
            "{line}"
        );
    }
    crate::snap!("lint_github", github.stdout);
}

#[test]
fn lint_lists_its_rules() {
    let pkg = Pkg::new("acme/lint", "lint");
    let list = run(strata()
        .current_dir(pkg.root())
        .args(["lint", "--list-rules"]))
    .ok();
    for rule in [
        "no-transaction-required",
        "drop-managed-dependency",
        "security-definer-search-path",
        "require-concurrent-index-creation",
    ] {
        assert!(list.says(rule), "{rule}: {}", list.stdout);
    }
}

#[test]
fn lint_checks_pending_migrations_by_default() {
    let db = Db::new();
    let mut pkg = billing(&db);
    // The applied migration is not linted again; the pending one is.
    pkg.add("0002_risky.sql", RISKY);
    let pending = pkg
        .run(&db, &["lint", "--format", "json"])
        .expect_code(1)
        .json();
    assert_eq!(pending["files_checked"], 1);
    assert_eq!(pending["files"][0]["migration"], "0002_risky");

    // Without a reachable database, say how to lint without one.
    let offline = run(strata().current_dir(pkg.root()).args([
        "--database-url",
        "postgresql://nobody@127.0.0.1:1/none",
        "lint",
    ]))
    .expect_code(2);
    assert!(offline.says("--all"), "{}", offline.stderr);
}

#[test]
fn plan_shows_lint_findings_and_the_lock_report() {
    let db = Db::new();
    let mut pkg = billing(&db);
    db.exec("ANALYZE billing.invoice");
    pkg.add("0002_risky.sql", RISKY);
    pkg.add(
        "0003_new_table.sql",
        "CREATE TABLE payment (id bigint PRIMARY KEY, invoice bigint REFERENCES invoice);\n\
         CREATE INDEX payment_invoice ON payment (invoice);\n",
    );
    let plan = pkg.run(&db, &["plan", "--no-sql"]).expect_code(1);
    assert!(
        plan.says("ACCESS EXCLUSIVE on billing.invoice"),
        "{}",
        plan.stdout
    );
    assert!(plan.says("~1,000 rows"), "{}", plan.stdout);
    assert!(
        plan.says("`strata up` would refuse: 1 lint error(s)"),
        "{}",
        plan.stderr
    );
    let mut settings = crate::support::settings();
    settings.add_filter(r"\d+ (bytes|kB|MB)", "[SIZE]");
    settings.bind(|| insta::assert_snapshot!("plan_lock_report", plan.stdout));

    let allowed = pkg
        .run(&db, &["plan", "--no-sql", "--allow-lint-errors"])
        .ok();
    assert!(allowed.says("require-concurrent-index-creation"));

    let json = pkg
        .run(&db, &["--json", "plan", "--allow-lint-errors"])
        .ok()
        .json();
    let lock = &json["locks"]["migrations"][0]["statements"][0]["locks"][0];
    assert_eq!(lock["relation"], "billing.invoice");
    assert_eq!(lock["mode"], "ACCESS EXCLUSIVE");
    assert_eq!(lock["rows_estimate"], 1000);
    assert!(lock["size_bytes"].as_i64().unwrap() > 0);
    assert_eq!(json["lint"]["errors"], 1);
    // The new table's foreign key locks the existing table; the index on the new table blocks nobody and is left
    // out.
    let new_table = &json["locks"]["migrations"][1]["statements"];
    assert_eq!(new_table.as_array().unwrap().len(), 1, "{json}");
    assert_eq!(new_table[0]["locks"][0]["relation"], "billing.invoice");
    assert_eq!(new_table[0]["locks"][0]["mode"], "SHARE ROW EXCLUSIVE");
}

#[test]
fn up_refuses_lint_errors_before_anything_runs() {
    let db = Db::new();
    let mut pkg = billing(&db);
    pkg.add("0002_risky.sql", RISKY);
    let before = db.catalog();
    let refused = pkg.run(&db, &["up"]).expect_code(1);
    assert!(
        refused.says("1 lint error(s) in the migrations about to run"),
        "{}",
        refused.stderr
    );
    assert!(refused.says("--allow-lint-errors"));
    db.assert_catalog(&before, "a refused deploy changes nothing");

    let json = pkg.run(&db, &["--json", "up"]).expect_code(1).json();
    assert_eq!(json["error"]["code"], "strata::lint");
    assert_eq!(json["error"]["lint"]["errors"], 1);

    let applied = pkg
        .run(&db, &["--json", "up", "--allow-lint-errors"])
        .ok()
        .json();
    assert_eq!(applied["lint"]["errors"], 1);
    assert!(db.has_column("billing.invoice", "note"));
}

#[test]
fn non_transactional_statements_are_refused_before_anything_runs() {
    let db = Db::new();
    let mut pkg = billing(&db);
    pkg.add(
        "0002_table.sql",
        "CREATE TABLE IF NOT EXISTS audit (id bigint);\n",
    );
    pkg.add(
        "0003_index.sql",
        "-- squawk-ignore-file\nCREATE INDEX CONCURRENTLY IF NOT EXISTS invoice_total\n    ON invoice (total);\n",
    );
    let before = db.catalog();
    let refused = pkg.run(&db, &["up"]).expect_code(1);
    assert!(
        refused.says("CREATE INDEX CONCURRENTLY cannot run inside a transaction block"),
        "{}",
        refused.stderr
    );
    assert!(refused.says("-- strata:no-transaction"));
    assert!(
        refused.says("migrations/0003_index.sql:2:1"),
        "{}",
        refused.stderr
    );
    crate::snap!("no_transaction_required", refused.stderr);
    db.assert_catalog(&before, "nothing ran, not even the migration before it");
}

#[test]
fn a_deploy_gives_up_on_a_lock_held_by_another_session() {
    let db = Db::new();
    let mut pkg = billing(&db);
    // One lint warning (an `int` column): a retry lints again, but says it once.
    pkg.add(
        "0002_audit.sql",
        "CREATE TABLE IF NOT EXISTS audit (id int);\n",
    );
    pkg.add(
        "0003_note.sql",
        "ALTER TABLE invoice ADD COLUMN note text;\n",
    );
    let before = db.catalog();

    // Another session reads the table in an open transaction: it holds ACCESS SHARE until it ends, and ADD COLUMN
    // needs ACCESS EXCLUSIVE.
    let holder = LockHolder::reading(&db, "billing.invoice");

    let started = Instant::now();
    let failed = pkg
        .run(
            &db,
            &["up", "--lock-timeout", "200ms", "--lock-retries", "1"],
        )
        .expect_code(1);
    let took = started.elapsed();
    assert!(
        failed.says("canceling statement due to lock timeout"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.says("migrations/0003_note.sql:1:1"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.says("it needs ACCESS EXCLUSIVE on billing.invoice"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.says("sessions holding locks on it now"),
        "{}",
        failed.stderr
    );
    assert!(failed.says("holds AccessShareLock"), "{}", failed.stderr);
    assert!(
        failed.says("pg_sleep(60)"),
        "the holder's query is shown: {}",
        failed.stderr
    );
    assert!(
        failed.says("retrying in"),
        "one retry was announced: {}",
        failed.stderr
    );
    assert!(failed.says("nothing was applied"), "{}", failed.stderr);
    assert_eq!(
        failed.stderr.matches("prefer-bigint-over-int").count(),
        1,
        "the lint warning is printed once: {}",
        failed.stderr
    );
    // Two attempts of 200 ms and a one-second pause, not a wait for the other session.
    assert!(took < Duration::from_secs(20), "{took:?}");
    db.assert_catalog(&before, "the database is unchanged");

    holder.release(&db);
    pkg.run(&db, &["up", "--lock-timeout", "200ms"]).ok();
    assert!(db.has_column("billing.invoice", "note"));
}

#[test]
fn a_failed_no_transaction_migration_is_resumed() {
    let db = Db::new();
    let mut pkg = billing(&db);
    pkg.add(
        "0002_indexes.sql",
        "-- strata:no-transaction\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS invoice_total ON invoice (total);\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS invoice_typo ON invoice (totl);\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS invoice_both ON invoice (id, total);\n",
    );
    pkg.run(&db, &["up"]).expect_code(1);
    assert!(db.has("billing.invoice_total"));
    assert!(!db.has("billing.invoice_both"));

    let status = pkg.run(&db, &["status"]).ok();
    assert!(
        status.says("1 statement(s) of acme/billing:0002_indexes committed before the failure"),
        "{}",
        status.stdout
    );
    assert!(
        status.says("CREATE INDEX CONCURRENTLY IF NOT EXISTS invoice_total ON invoice (total);")
    );

    // Fix the typo: the committed statement is skipped, the rest runs.
    pkg.write(
        "migrations/0002_indexes.sql",
        "-- strata:no-transaction\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS invoice_total ON invoice (total);\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS invoice_typo ON invoice (total, id);\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS invoice_both ON invoice (id, total);\n",
    );
    let resumed = pkg.run(&db, &["--json", "up"]).ok().json();
    assert_eq!(
        resumed["resumed"][0]["migration"], "acme/billing:0002_indexes",
        "{resumed}"
    );
    assert_eq!(resumed["resumed"][0]["skipped_statements"], 1);
    assert_eq!(resumed["migrations"][0]["statements"], 2);
    assert!(db.has("billing.invoice_typo") && db.has("billing.invoice_both"));
    let detail: String = db.value(
        "SELECT detail::text FROM strata.run WHERE outcome = 'success' ORDER BY id DESC LIMIT 1",
    );
    assert!(detail.contains("\"skipped_statements\": 1"), "{detail}");
}

#[test]
fn invalid_indexes_are_reported_and_not_mistaken_for_built_ones() {
    let db = Db::new();
    let mut pkg = billing(&db);
    db.exec("UPDATE billing.invoice SET total = 1 WHERE id <= 2");
    pkg.add(
        "0002_unique.sql",
        "-- strata:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS invoice_total_key ON invoice (total);\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    assert!(
        failed.says("Key (total)=(1) is duplicated."),
        "{}",
        failed.stderr
    );
    assert!(
        failed.says("DROP INDEX CONCURRENTLY \"billing\".\"invoice_total_key\";"),
        "{}",
        failed.stderr
    );

    let status = pkg.run(&db, &["--json", "status"]).ok().json();
    assert_eq!(status["invalid_indexes"][0]["name"], "invoice_total_key");
    assert_eq!(status["invalid_indexes"][0]["table"], "billing.invoice");

    // Once the data is fixed, the next run knows the invalid index is its own failed build (recorded in the run's
    // progress): IF NOT EXISTS would skip it, so it is dropped and built again, and the warning says so.
    db.exec("UPDATE billing.invoice SET total = id + 1000 WHERE id <= 2");
    let again = pkg.run(&db, &["up"]).ok();
    assert!(
        again.says("was left invalid by an interrupted or failed CREATE INDEX CONCURRENTLY: dropped, and built again"),
        "{}",
        again.stderr
    );
    assert!(db.applied().iter().any(|m| m == "acme/billing:0002_unique"));
    let valid: bool = db.value(
        "SELECT indisvalid FROM pg_index WHERE indexrelid = 'billing.invoice_total_key'::regclass",
    );
    assert!(valid);
}

#[test]
fn dropping_what_managed_code_uses_is_a_lint_error_in_lint_and_up() {
    let db = Db::new();
    let mut pkg = billing(&db);
    pkg.write(
        "views.sql",
        "CREATE VIEW invoice_summary AS SELECT count(*) AS invoices, sum(total) AS total FROM invoice;\n",
    );
    pkg.run(&db, &["up"]).ok();
    pkg.add(
        "0002_drop_invoice.sql",
        "DROP VIEW invoice_summary;\nDROP TABLE invoice;\n",
    );

    let lint = pkg.run(&db, &["lint"]).expect_code(1);
    assert!(lint.says("drop-managed-dependency"), "{}", lint.stdout);
    assert!(
        lint.says("drops billing.invoice, which managed code still uses: view billing.invoice_summary (views.sql:1)"),
        "{}",
        lint.stdout
    );

    let before = db.catalog();
    let refused = pkg.run(&db, &["up"]).expect_code(1);
    assert!(
        refused.says("drop-managed-dependency"),
        "{}",
        refused.stderr
    );
    db.assert_catalog(&before, "a refused deploy changes nothing");

    // Changing the managed code in the same release is the fix the finding suggests.
    pkg.write(
        "views.sql",
        "CREATE VIEW invoice_summary AS SELECT 0::bigint AS invoices, 0::numeric AS total;\n",
    );
    pkg.run(&db, &["lint"]).ok();
}
