//! Interrupted no-transaction migrations (issue 16, section 4): every statement is recorded as it commits, so a
//! run killed at any point (`strata` itself, or its backend) is resumed exactly after what committed; the original
//! server error is reported; the dead run is marked `interrupted`.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Db, Pkg, Run, strata_process};

/// `strata up` in `pkg` against `db`, started in the background.
fn spawn_up(pkg: &Pkg, db: &Db) -> Child {
    strata_process()
        .current_dir(pkg.root())
        .args(["--database-url", &db.url(), "up"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("strata starts")
}

/// Wait until the deploy's backend runs a statement containing `text`; its pid.
fn backend_running(db: &Db, text: &str) -> i32 {
    let started = Instant::now();
    loop {
        let pids: Vec<i32> = db.column(&format!(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
             AND application_name LIKE 'strata%' AND state = 'active' AND query LIKE '%{text}%'"
        ));
        if let Some(pid) = pids.first() {
            return *pid;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no backend ran {text}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Wait until no backend of this database is left from a killed `strata` (it finishes its message first).
fn no_backend_left(db: &Db) {
    let started = Instant::now();
    while db.value::<i64>(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() \
         AND application_name LIKE 'strata%'",
    ) > 0
    {
        assert!(started.elapsed() < Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn finished(child: Child) -> Run {
    Run::of(child.wait_with_output().expect("strata ends"))
}

/// A package whose no-transaction migration inserts, sleeps, builds an index and inserts again.
fn slow_pkg() -> Pkg {
    let mut pkg = Pkg::new("acme/slow", "slow");
    pkg.add(
        "0001_t.sql",
        "CREATE TABLE t (id bigint PRIMARY KEY);\nCREATE TABLE log (step text);\n",
    );
    pkg.add(
        "0002_steps.sql",
        "-- strata:no-transaction\n\
         INSERT INTO log VALUES ('a');\n\
         SELECT pg_sleep(2);\n\
         INSERT INTO log VALUES ('b');\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS log_step ON log (step);\n\
         INSERT INTO log VALUES ('c');\n",
    );
    pkg
}

#[test]
fn a_terminated_backend_reports_its_error_and_the_next_run_resumes_without_repeating() {
    let db = Db::new();
    let pkg = slow_pkg();
    let child = spawn_up(&pkg, &db);
    let pid = backend_running(&db, "pg_sleep");
    db.exec(&format!("SELECT pg_terminate_backend({pid})"));
    let run = finished(child).expect_code(1);
    assert!(run.says("SQLSTATE 57P01"), "{}", run.stderr);
    assert!(
        run.says("terminating connection due to administrator command"),
        "{}",
        run.stderr
    );
    assert!(run.says("0002_steps.sql:3:1"), "{}", run.stderr);
    assert!(!run.says("resetting the role"), "{}", run.stderr);
    assert_eq!(db.column::<String>("SELECT step FROM slow.log"), ["a"]);

    // Its run could not record its end: `status` says so, and the next `up` marks it interrupted.
    let status = pkg.run(&db, &["status"]);
    assert!(
        status.says("is running, or died without a trace"),
        "{}",
        status.stdout
    );
    let again = pkg.run(&db, &["up"]).ok();
    assert!(
        again.says("resuming acme/slow:0002_steps: skipping 1 statement(s)"),
        "{}",
        again.stderr
    );
    assert!(again.says("marked interrupted"), "{}", again.stdout);
    assert_eq!(
        db.column::<String>("SELECT step FROM slow.log ORDER BY step"),
        ["a", "b", "c"]
    );
    assert_eq!(
        db.column::<String>("SELECT outcome FROM strata.run ORDER BY id"),
        ["interrupted", "success"]
    );
    let log = pkg.run(&db, &["log"]).ok();
    assert!(log.says("interrupted"), "{}", log.stdout);
}

#[test]
fn a_killed_strata_is_resumed_after_what_its_backend_committed() {
    let db = Db::new();
    let pkg = slow_pkg();
    let mut child = spawn_up(&pkg, &db);
    backend_running(&db, "pg_sleep");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // The backend still runs the message it received (the sleep, its check and its record), then notices.
    no_backend_left(&db);
    let again = pkg.run(&db, &["up"]).ok();
    assert!(again.says("skipping 2 statement(s)"), "{}", again.stderr);
    assert_eq!(
        db.column::<String>("SELECT step FROM slow.log ORDER BY step"),
        ["a", "b", "c"]
    );
    assert_eq!(
        db.column::<String>("SELECT outcome FROM strata.run ORDER BY id"),
        ["interrupted", "success"]
    );
}

#[test]
fn an_invalid_index_left_by_a_failed_build_is_dropped_and_built_again() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/idx", "idx");
    pkg.add(
        "0001_t.sql",
        "CREATE TABLE t (v text);\nINSERT INTO t VALUES ('x'), ('x');\n",
    );
    pkg.add(
        "0002_unique.sql",
        "-- strata:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY t_v ON t (v);\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    assert!(failed.says("23505"), "{}", failed.stderr);
    assert_eq!(
        db.column::<bool>("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx.t_v'::regclass"),
        [false]
    );
    db.exec("DELETE FROM idx.t WHERE ctid <> (SELECT min(ctid) FROM idx.t)");
    let fixed = pkg.run(&db, &["up"]).ok();
    assert!(
        fixed.says("index idx.t_v was left invalid by an interrupted or failed CREATE INDEX CONCURRENTLY: dropped, and built again"),
        "{}",
        fixed.stdout
    );
    assert_eq!(
        db.column::<bool>("SELECT indisvalid FROM pg_index WHERE indexrelid = 'idx.t_v'::regclass"),
        [true]
    );
}

#[test]
fn a_concurrent_index_the_killed_run_finished_building_is_kept() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/cic", "cic");
    pkg.add(
        "0001_t.sql",
        "CREATE TABLE t (id bigint);\nINSERT INTO t SELECT generate_series(1, 4);\n\
         CREATE FUNCTION slow(i bigint) RETURNS bigint LANGUAGE plpgsql IMMUTABLE AS $$\n\
         BEGIN PERFORM pg_sleep(0.25); RETURN i; END $$;\n",
    );
    pkg.add(
        "0002_index.sql",
        "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY t_slow ON t (cic.slow(id));\nINSERT INTO t VALUES (5);\n",
    );
    let mut child = spawn_up(&pkg, &db);
    backend_running(&db, "CREATE INDEX CONCURRENTLY");
    child.kill().expect("SIGKILL");
    let _ = child.wait();
    // The backend finishes building the index, but nobody is left to record it.
    no_backend_left(&db);
    assert_eq!(
        db.column::<bool>(
            "SELECT indisvalid FROM pg_index WHERE indexrelid = 'cic.t_slow'::regclass"
        ),
        [true]
    );
    let again = pkg.run(&db, &["up"]).ok();
    assert!(again.says("complete and valid: kept"), "{}", again.stderr);
    assert_eq!(db.value::<i64>("SELECT count(*) FROM cic.t"), 5);
    assert_eq!(db.applied(), ["acme/cic:0001_t", "acme/cic:0002_index"]);
}

/// A few kills at random points of a deploy of transactional and no-transaction migrations; `bench/chaos/run.sh`
/// does the same many more times and prints a table.
#[test]
fn killed_at_random_points_nothing_is_partial_or_run_twice() {
    let mut pkg = Pkg::new("acme/chaos", "chaos");
    pkg.add(
        "0001_t.sql",
        "CREATE TABLE log (migration text, step int, UNIQUE (migration, step));\n",
    );
    pkg.add(
        "0002_tx.sql",
        "INSERT INTO log VALUES ('0002', 1);\nSELECT pg_sleep(0.15);\nINSERT INTO log VALUES ('0002', 2);\n",
    );
    pkg.add(
        "0003_notx.sql",
        "-- strata:no-transaction\nINSERT INTO log VALUES ('0003', 1);\nSELECT pg_sleep(0.15);\n\
         INSERT INTO log VALUES ('0003', 2);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS log_step ON log (step);\n\
         INSERT INTO log VALUES ('0003', 3);\nSELECT pg_sleep(0.15);\nINSERT INTO log VALUES ('0003', 4);\n",
    );
    pkg.add(
        "0004_tx.sql",
        "INSERT INTO log VALUES ('0004', 1);\nSELECT pg_sleep(0.15);\nINSERT INTO log VALUES ('0004', 2);\n",
    );
    for (trial, delay_ms) in [(0, 150u64), (1, 450), (2, 750)] {
        let db = Db::new();
        let mut child = spawn_up(&pkg, &db);
        std::thread::sleep(Duration::from_millis(delay_ms));
        if trial % 2 == 0 {
            child.kill().expect("SIGKILL");
        } else {
            db.exec(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() \
                 AND application_name LIKE 'strata%'",
            );
        }
        let _ = child.wait();
        no_backend_left(&db);
        // Transactional migrations are all there or not at all; a statement never ran twice (UNIQUE).
        for m in ["0002", "0004"] {
            let n: i64 = if db.has("chaos.log") {
                db.value(&format!(
                    "SELECT count(*) FROM chaos.log WHERE migration = '{m}'"
                ))
            } else {
                0
            };
            assert!(n == 0 || n == 2, "trial {trial}: {m} has {n} of 2 rows");
        }
        pkg.run(&db, &["up"]).ok();
        assert_eq!(
            db.value::<i64>("SELECT count(*) FROM chaos.log"),
            8,
            "trial {trial}: every statement ran exactly once"
        );
        assert_eq!(
            db.applied().len(),
            4,
            "trial {trial}: every migration is recorded"
        );
        assert_eq!(
            db.value::<i64>("SELECT count(*) FROM strata.run WHERE outcome = 'running'"),
            0,
            "trial {trial}"
        );
        assert_eq!(
            db.value::<i64>("SELECT count(*) FROM pg_index WHERE NOT indisvalid"),
            0,
            "trial {trial}"
        );
    }
}
