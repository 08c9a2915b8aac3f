//! Concurrent deployers serialise on the advisory lock: one applies, the others wait and find nothing to do.

use std::process::Stdio;

use crate::support::{Db, Pkg, Run, strata_process};

#[test]
fn eight_deployers_started_at_once_apply_everything_exactly_once() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/race", "race");
    for i in 1..=5 {
        pkg.add(
            &format!("{i:04}_t{i}.sql"),
            &format!("CREATE TABLE t{i} (id int);\nINSERT INTO t{i} VALUES ({i});\n"),
        );
    }
    // A no-transaction migration makes the winner commit several times: the losers must wait across all of them.
    pkg.add(
        "0006_index.sql",
        "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY t1_id ON t1 (id);\nCREATE INDEX CONCURRENTLY t2_id ON t2 (id);\n",
    );
    pkg.add("0007_last.sql", "CREATE TABLE t7 (id int);\n");

    let children: Vec<_> = (0..8)
        .map(|_| {
            strata_process()
                .current_dir(pkg.root())
                .args(["--json", "--database-url", &db.url(), "up"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("strata starts")
        })
        .collect();
    let runs: Vec<Run> = children
        .into_iter()
        .map(|c| Run::of(c.wait_with_output().expect("strata finishes")))
        .collect();

    let mut applied = 0;
    let mut noop = 0;
    for run in &runs {
        assert_eq!(
            run.code, 0,
            "stdout:\n{}\nstderr:\n{}",
            run.stdout, run.stderr
        );
        match run.json()["outcome"].as_str() {
            Some("applied") => applied += 1,
            Some("noop") => noop += 1,
            other => panic!("unexpected outcome {other:?}: {}", run.stdout),
        }
    }
    assert_eq!((applied, noop), (1, 7));

    assert_eq!(
        db.value::<i64>("SELECT count(*) FROM strata.migration WHERE package = 'acme/race'"),
        7
    );
    assert_eq!(
        db.value::<i64>(
            "SELECT count(*) FROM (SELECT package, name FROM strata.migration_log WHERE action = 'apply'
                                     GROUP BY 1, 2 HAVING count(*) > 1) dup"
        ),
        0,
        "every migration ran once"
    );
    assert_eq!(
        db.column::<String>("SELECT outcome FROM strata.run ORDER BY id"),
        [
            "success", "noop", "noop", "noop", "noop", "noop", "noop", "noop"
        ],
        "the first run applied, every later one found nothing to do"
    );
    assert_eq!(
        db.value::<i64>(
            "SELECT sum(id) FROM (SELECT id FROM race.t1 UNION ALL SELECT id FROM race.t5) s"
        ),
        6
    );
}

#[test]
fn a_deployer_gives_up_after_the_lock_wait_timeout() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/busy", "busy");
    pkg.add("0001_t.sql", "CREATE TABLE t (id int);\n");

    // Another deployer holds the lock (in an open transaction on our own connection).
    db.exec(&format!(
        "BEGIN; SELECT pg_advisory_xact_lock({});",
        pgstrata::STRATA_LOCK_KEY
    ));
    let waited = pkg
        .run(&db, &["up", "--lock-wait-timeout", "200ms"])
        .expect_code(1);
    assert!(
        waited.says(
            "another deploy holds the strata lock on this database; gave up after waiting 200ms"
        ),
        "{}",
        waited.stderr
    );
    assert!(waited.says("waiting for another deploy to finish"));
    let quiet = pkg
        .run(&db, &["-q", "up", "--lock-wait-timeout", "200ms"])
        .expect_code(1);
    assert!(
        !quiet.says("waiting for another deploy"),
        "{}",
        quiet.stderr
    );
    assert!(
        quiet.says("gave up after waiting 200ms"),
        "{}",
        quiet.stderr
    );
    db.exec("ROLLBACK");
    pkg.run(&db, &["up"]).ok();
    assert_eq!(db.applied(), ["acme/busy:0001_t"]);
}
