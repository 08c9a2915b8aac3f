//! `*_test.sql`: run in every deploy that changes something, in savepoints, in a seeded random order; a failure
//! rolls the deploy back.

use pgstrata::testing::{TestOutcome, TestReport};
use pgstrata::{Error, TestMode, TestOptions, UpOptions};

use crate::managed::support::{Db, Pkg};

fn pkg() -> Pkg {
    let pkg = Pkg::new("acme/tested", "tested", "", &["0001.sql"]);
    pkg.write("migrations/0001.sql", "CREATE TABLE items (n int);\n");
    pkg.write(
        "code.sql",
        "CREATE FUNCTION tested.total() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT coalesce(sum(n), 0) FROM tested.items';\n",
    );
    pkg.write(
        "total_test.sql",
        "CREATE FUNCTION tested.seed_before() RETURNS void LANGUAGE sql AS 'INSERT INTO tested.items VALUES (1), (2)';\n\n\
         CREATE FUNCTION tested.expect(got bigint, want bigint) RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN\n  IF got IS DISTINCT FROM want THEN\n    RAISE EXCEPTION 'got %, want %', got, want;\n  END IF;\nEND $$;\n\n\
         CREATE FUNCTION tested.total_test() RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN\n  RAISE NOTICE 'items: %', (SELECT count(*) FROM tested.items);\n  PERFORM tested.expect(tested.total(), 3);\nEND $$;\n\n\
         CREATE FUNCTION tested.isolated_test() RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN\n  DELETE FROM tested.items;\n  PERFORM tested.expect(tested.total(), 0);\nEND $$;\n",
    );
    for i in 0..6 {
        pkg.write(
            &format!("more/t{i}_test.sql"),
            &format!(
                "CREATE FUNCTION tested.n{i}_test() RETURNS void LANGUAGE sql AS 'SELECT 1';\n"
            ),
        );
    }
    pkg
}

fn names(report: &TestReport) -> Vec<String> {
    report.results.iter().map(|r| r.name.clone()).collect()
}

#[tokio::test]
async fn tests_gate_the_deploy_and_leave_no_trace() {
    let pkg = pkg();
    let mut db = Db::new().await;
    let report = db.up(&pkg.project()).await.unwrap();
    let tests = report.tests.expect("tests ran");
    assert_eq!((tests.passed, tests.failed), (8, 0), "{tests:#?}");
    let total = tests
        .results
        .iter()
        .find(|r| r.name == "tested.total_test")
        .unwrap();
    assert_eq!(
        total.notices[0].message, "items: 2",
        "each test ran after its _before"
    );
    let items: i64 = db.value("SELECT count(*) FROM tested.items").await;
    assert_eq!(items, 0);
    let leftovers: i64 = db
        .value("SELECT count(*) FROM pg_proc WHERE pronamespace = 'tested'::regnamespace AND proname <> 'total'")
        .await;
    assert_eq!(leftovers, 0, "test functions are gone");

    // Nothing changed: no tests.
    assert!(db.up(&pkg.project()).await.unwrap().tests.is_none());

    // A failing test (and a changed function) roll everything back.
    pkg.edit("code.sql", "coalesce(sum(n), 0)", "coalesce(sum(n), 0) + 1");
    pkg.add_migration("0002.sql", "ALTER TABLE items ADD note text;\n");
    let before = db.catalog("tested").await;
    let err = db.up(&pkg.project()).await.unwrap_err();
    let Error::TestsFailed(failed) = err else {
        panic!("expected failed tests, got {err:?}")
    };
    let report = &failed.report;
    assert_eq!((report.passed, report.failed), (6, 2));
    let total = report
        .results
        .iter()
        .find(|r| r.name == "tested.total_test")
        .unwrap();
    assert_eq!(total.outcome, TestOutcome::Failed);
    let f = total.failure.as_ref().unwrap();
    assert_eq!(f.message, "got 4, want 3");
    assert_eq!(f.sqlstate.as_deref(), Some("P0001"));
    // The innermost frame in the package's SQL: the RAISE in tested.expect, line 6 of total_test.sql.
    assert!(
        f.location.as_deref().unwrap().ends_with("total_test.sql:6"),
        "{f:?}"
    );
    assert_eq!(total.notices[0].message, "items: 2");
    assert_eq!(
        db.catalog("tested").await,
        before,
        "the deploy was rolled back"
    );
    let note: bool = db
        .value("SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = 'tested.items'::regclass AND attname = 'note')")
        .await;
    assert!(!note);

    // --no-tests deploys anyway.
    let report = db
        .up_with(
            &pkg.project(),
            UpOptions {
                tests: TestMode::Skip,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(report.tests.is_none());
    assert_eq!(report.migrations.len(), 1);
}

#[tokio::test]
async fn seeds_replay_the_order_and_filters_select() {
    let pkg = pkg();
    let mut db = Db::new().await;
    let options = |seed| TestOptions {
        seed: Some(seed),
        ..Default::default()
    };
    let a = db
        .test(&pkg.project(), options(7))
        .await
        .unwrap()
        .tests
        .unwrap();
    let b = db
        .test(&pkg.project(), options(7))
        .await
        .unwrap()
        .tests
        .unwrap();
    let c = db
        .test(&pkg.project(), options(8))
        .await
        .unwrap()
        .tests
        .unwrap();
    assert_eq!(a.seed, 7);
    assert_eq!(names(&a), names(&b));
    assert_ne!(names(&a), names(&c));
    assert_eq!(a.results.len(), 8);
    // `strata test` on a fresh database deploys in a transaction it rolls back.
    let nothing: bool = db
        .value("SELECT to_regclass('strata.migration') IS NULL")
        .await;
    assert!(nothing);

    let filtered = db
        .test(
            &pkg.project(),
            TestOptions {
                filter: Some("n?_test".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .tests
        .unwrap();
    assert_eq!(filtered.results.len(), 6);
    assert_eq!(filtered.filtered_out, 2);
    let other_package = db
        .test(
            &pkg.project(),
            TestOptions {
                packages: Some(vec!["someone/else".into()]),
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .tests
        .unwrap();
    assert!(other_package.results.is_empty());
}

#[tokio::test]
async fn every_test_runs_and_failures_are_tallied() {
    let pkg = pkg();
    pkg.write(
        "bad_test.sql",
        "CREATE FUNCTION tested.args_test(n int) RETURNS void LANGUAGE sql AS 'SELECT 1';\n\
         CREATE FUNCTION tested.broken_test() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  SELECT 1/0;\nEND $$;\n\
         CREATE FUNCTION tested.uncompilable_test() RETURNS void LANGUAGE sql AS 'SELECT * FROM tested.nowhere';\n",
    );
    let mut db = Db::new().await;
    let err = db
        .test(&pkg.project(), TestOptions::default())
        .await
        .unwrap_err();
    let Error::TestsFailed(failed) = err else {
        panic!("{err:?}")
    };
    let r = &failed.report;
    assert_eq!((r.passed, r.failed), (8, 4), "{r:#?}");
    let phase = |name: &str| {
        r.results
            .iter()
            .find(|x| x.name == name)
            .and_then(|x| x.failure.as_ref())
            .map(|f| (f.phase.clone(), f.location.clone().unwrap_or_default()))
            .unwrap()
    };
    assert_eq!(phase("tested.args_test").0, "signature");
    let (p, at) = phase("tested.uncompilable_test");
    assert_eq!(p, "setup");
    assert!(at.ends_with("bad_test.sql:6"), "{at}");
    let (p, at) = phase("tested.broken_test");
    assert_eq!(p, "test");
    assert!(at.ends_with("bad_test.sql:4"), "{at}");
    let tap = pgstrata::testing::tap(r);
    assert!(tap.contains("1..12\n"));
    assert_eq!(tap.matches("\nnot ok ").count(), 4);
    let junit = pgstrata::testing::junit(r);
    assert!(junit.contains("tests=\"12\" failures=\"4\""));
}

#[tokio::test]
async fn a_failing_before_hook_fails_the_test() {
    let pkg = pkg();
    pkg.write(
        "zz_test.sql",
        "CREATE FUNCTION tested.zz_before() RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no setup'; END $$;\n",
    );
    let mut db = Db::new().await;
    let Error::TestsFailed(failed) = db
        .test(&pkg.project(), TestOptions::default())
        .await
        .unwrap_err()
    else {
        panic!()
    };
    assert_eq!(failed.report.failed, 8);
    let f = failed.report.results[0].failure.as_ref().unwrap();
    assert_eq!(f.phase, "before tested.zz_before");
    assert_eq!(f.message, "no setup");
}

#[tokio::test]
async fn tap_output_is_read_as_results() {
    // A test returning SETOF text in TAP form, without pgTAP.
    let pkg = Pkg::new("acme/tap", "tap", "", &[]);
    pkg.write(
        "plain_test.sql",
        "CREATE FUNCTION tap.lines_test() RETURNS SETOF text LANGUAGE sql AS $$\n\
           VALUES ('1..2'), ('ok 1 - first'), ('not ok 2 - second'), ('# have: 1'), ('# want: 2')\n$$;\n\
         CREATE FUNCTION tap.fine_test() RETURNS SETOF text LANGUAGE sql AS $$ VALUES ('ok 1 - fine') $$;\n",
    );
    let mut db = Db::new().await;
    let Error::TestsFailed(failed) = db
        .test(&pkg.project(), TestOptions::default())
        .await
        .unwrap_err()
    else {
        panic!()
    };
    let r = &failed.report;
    assert_eq!((r.passed, r.failed), (1, 1));
    let lines = r
        .results
        .iter()
        .find(|x| x.name == "tap.lines_test")
        .unwrap();
    assert_eq!(lines.tap.len(), 5);
    let f = lines.failure.as_ref().unwrap();
    assert_eq!(f.phase, "tap");
    assert_eq!(f.message, "not ok 2 - second\n# have: 1\n# want: 2");
}

#[tokio::test]
async fn pgtap_tests_run_with_a_plan() {
    let db = Db::new().await;
    let available: bool = db
        .value("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pgtap')")
        .await;
    if !available {
        // .ci/run installs it: there, a missing pgTAP is a failure, not a skip.
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "pgTAP is not installed on this server (Debian: postgresql-15-pgtap) and CI=true"
        );
        eprintln!(
            "pgTAP is not installed on this server (Debian: postgresql-15-pgtap): not tested"
        );
        return;
    }
    let pkg = Pkg::new("acme/pgtap", "pt", "extensions = [\"pgtap\"]", &[]);
    pkg.write(
        "code.sql",
        "CREATE FUNCTION pt.double(n int) RETURNS int LANGUAGE sql AS 'SELECT n * 2';\n",
    );
    pkg.write(
        "math_test.sql",
        "CREATE FUNCTION pt.double_test() RETURNS SETOF text LANGUAGE plpgsql AS $$\nBEGIN\n\
           RETURN NEXT is(pt.double(2), 4, 'two doubled');\n\
           RETURN NEXT ok(pt.double(0) = 0, 'zero');\nEND $$;\n\
         CREATE FUNCTION pt.wrong_test() RETURNS SETOF text LANGUAGE plpgsql AS $$\nBEGIN\n\
           RETURN NEXT is(pt.double(3), 7, 'three doubled');\nEND $$;\n",
    );
    let mut db = db;
    let Error::TestsFailed(failed) = db.up(&pkg.project()).await.unwrap_err() else {
        panic!()
    };
    let r = &failed.report;
    assert_eq!((r.passed, r.failed), (1, 1), "{r:#?}");
    let good = r
        .results
        .iter()
        .find(|x| x.name == "pt.double_test")
        .unwrap();
    assert_eq!(good.tap, ["ok 1 - two doubled", "ok 2 - zero", "1..2"]);
    let bad = r
        .results
        .iter()
        .find(|x| x.name == "pt.wrong_test")
        .unwrap();
    let message = &bad.failure.as_ref().unwrap().message;
    assert!(
        message.starts_with("not ok 1 - three doubled\n# Failed test 1: \"three doubled\""),
        "{message}"
    );
    assert!(
        message.contains("have: 6") && message.contains("want: 7"),
        "{message}"
    );
}
