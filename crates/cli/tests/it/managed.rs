//! Managed code and SQL tests through the CLI: `up` (tests gate the deploy, `--no-tests`, `--seed`), `strata test`
//! in every format, `status` showing drift.

use crate::support::{Db, Pkg};

fn shop() -> Pkg {
    let mut pkg = Pkg::new("acme/shop", "shop");
    pkg.add(
        "0001_orders.sql",
        "CREATE TABLE orders (id int PRIMARY KEY, qty int NOT NULL);\n",
    );
    pkg.write(
        "code/orders.sql",
        "CREATE FUNCTION shop.total_qty() RETURNS bigint LANGUAGE sql STABLE\n\
           AS 'SELECT coalesce(sum(qty), 0) FROM shop.orders';\n\
         CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE qty > 10;\n",
    );
    pkg.write(
        "code/orders_test.sql",
        "CREATE FUNCTION shop.fill_before() RETURNS void LANGUAGE sql AS 'INSERT INTO shop.orders VALUES (1, 5), (2, 20)';\n\
         CREATE FUNCTION shop.total_test() RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN\n  RAISE NOTICE 'total is %', shop.total_qty();\n  ASSERT shop.total_qty() = 25, 'total';\nEND $$;\n\
         CREATE FUNCTION shop.big_test() RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN\n  ASSERT (SELECT count(*) FROM shop.big_orders) = 1, 'one big order';\nEND $$;\n",
    );
    pkg
}

#[test]
fn up_installs_code_and_runs_the_tests() {
    let db = Db::new();
    let pkg = shop();
    let up = pkg.run(&db, &["up", "--seed", "3"]).ok();
    assert!(
        up.says("+ function shop.total_qty()  created  (code/orders.sql:1)"),
        "{}",
        up.stdout
    );
    assert!(
        up.says("+ view shop.big_orders  created  (code/orders.sql:3)"),
        "{}",
        up.stdout
    );
    assert!(up.says("Tests: 2 passed in "), "{}", up.stdout);
    assert!(up.says("(seed 3)"), "{}", up.stdout);
    assert!(
        up.says(" and 2 managed-object change(s) to "),
        "{}",
        up.stdout
    );

    let again = pkg.run(&db, &["up"]).ok();
    assert!(again.says("Nothing to apply"), "{}", again.stdout);

    // Drift: shown by status (and its exit code), restored by up.
    db.exec("CREATE OR REPLACE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE qty > 100");
    let status = pkg.run(&db, &["status", "--exit-code"]).expect_code(1);
    assert!(
        status.says("managed code: 1 in sync, 1 drifted"),
        "{}",
        status.stdout
    );
    assert!(
        status.says("drifted  view shop.big_orders  code/orders.sql:3  (changed outside Strata; `up` restores it)"),
        "{}",
        status.stdout
    );
    let restored = pkg.run(&db, &["up"]).ok();
    assert!(
        restored.says("! view shop.big_orders  restored"),
        "{}",
        restored.stdout
    );
    pkg.run(&db, &["status", "--exit-code"]).ok();
}

#[test]
fn failing_tests_roll_the_deploy_back_unless_skipped() {
    let db = Db::new();
    let mut pkg = shop();
    pkg.run(&db, &["up"]).ok();
    pkg.write(
        "code/orders.sql",
        "CREATE FUNCTION shop.total_qty() RETURNS bigint LANGUAGE sql STABLE\n\
           AS 'SELECT coalesce(sum(qty), 0) + 1 FROM shop.orders';\n\
         CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE qty > 10;\n",
    );
    pkg.add("0002_note.sql", "ALTER TABLE orders ADD note text;\n");
    let failed = pkg.run(&db, &["up", "--seed", "42"]).expect_code(1);
    assert!(
        failed.says("1 of 2 test(s) failed; the deploy was rolled back (seed 42)"),
        "{}",
        failed.stderr
    );
    assert!(
        failed.says("✗ shop.total_test (code/orders_test.sql:2)"),
        "{}",
        failed.stderr
    );
    assert!(failed.says("total"), "{}", failed.stderr);
    assert!(failed.says("notice: total is 26"), "{}", failed.stderr);
    assert!(
        !db.has_column("shop.orders", "note"),
        "the migration was rolled back"
    );
    let json = pkg.run(&db, &["--json", "up"]).expect_code(1).json();
    assert_eq!(json["error"]["tests"]["failed"], 1, "{json}");
    assert_eq!(
        json["error"]["tests"]["results"].as_array().unwrap().len(),
        2
    );

    let skipped = pkg.run(&db, &["up", "--no-tests"]).ok();
    assert!(
        skipped.says("~ function shop.total_qty()  replaced in place"),
        "{}",
        skipped.stdout
    );
    assert!(db.has_column("shop.orders", "note"));
}

#[test]
fn strata_test_formats_and_filters() {
    let db = Db::new();
    let pkg = shop();
    let human = pkg.run(&db, &["test", "--seed", "7"]).ok();
    assert!(human.says("✓ shop.total_test"), "{}", human.stdout);
    assert!(human.says("2 passed, 0 failed in "), "{}", human.stdout);
    assert!(human.says("(seed 7)"), "{}", human.stdout);
    assert!(!db.has("strata.migration"), "strata test leaves no trace");

    let tap = pkg
        .run(&db, &["test", "--format", "tap", "--filter", "big"])
        .ok();
    assert!(
        tap.stdout
            .starts_with("TAP version 13\n1..1\nok 1 - shop.big_test # time="),
        "{}",
        tap.stdout
    );

    let junit = pkg.run(&db, &["test", "--format", "junit"]).ok();
    assert!(
        junit.says("<testsuite name=\"acme/shop\" tests=\"2\" failures=\"0\""),
        "{}",
        junit.stdout
    );

    let json = pkg.run(&db, &["--json", "test"]).ok().json();
    assert_eq!(json["passed"], 2);
    assert_eq!(json["results"].as_array().unwrap().len(), 2);

    pkg.write(
        "code/more_test.sql",
        "CREATE FUNCTION shop.broken_test() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  RAISE EXCEPTION 'nope';\nEND $$;\n",
    );
    let failed = pkg.run(&db, &["test", "--format", "tap"]).expect_code(1);
    assert!(failed.says("not ok "), "{}", failed.stdout);
    assert!(failed.says("  message: \"nope\""), "{}", failed.stdout);
    assert!(
        failed.says("  at: \"code/more_test.sql:3\""),
        "{}",
        failed.stdout
    );
}

#[test]
fn managed_files_with_other_statements_are_refused_before_connecting() {
    let db = Db::new();
    let pkg = shop();
    pkg.write(
        "code/oops.sql",
        "\nGRANT SELECT ON shop.orders TO PUBLIC;\n",
    );
    // The package does not load: the command cannot start (exit 2).
    let failed = pkg.run(&db, &["up"]).expect_code(2);
    assert!(
        failed.says("GRANT is not managed code"),
        "{}",
        failed.stderr
    );
    assert!(failed.says("code/oops.sql:2:1"), "{}", failed.stderr);
    assert!(!db.has("strata.migration"));
}

#[test]
fn plan_shows_the_managed_code_changes_up_would_make() {
    let db = Db::new();
    let pkg = shop();
    pkg.run(&db, &["up"]).ok();
    let unchanged = pkg.run(&db, &["plan"]).ok();
    assert!(unchanged.says("Nothing to apply"), "{}", unchanged.stdout);

    // A new function and a changed view, no migration: `status` lists them, so must `plan`.
    pkg.write(
        "code/orders.sql",
        "CREATE FUNCTION shop.total_qty() RETURNS bigint LANGUAGE sql STABLE\n\
           AS 'SELECT coalesce(sum(qty), 0) FROM shop.orders';\n\
         CREATE VIEW shop.big_orders AS SELECT * FROM shop.orders WHERE qty > 15;\n\
         CREATE FUNCTION shop.order_count() RETURNS bigint LANGUAGE sql STABLE AS 'SELECT count(*) FROM shop.orders';\n",
    );
    let plan = pkg.run(&db, &["plan"]).ok();
    assert!(!plan.says("Nothing to apply"), "{}", plan.stdout);
    assert!(plan.says("No migrations to apply"), "{}", plan.stdout);
    assert!(plan.says("1 new, 1 changed"), "{}", plan.stdout);
    assert!(
        plan.says("new      function shop.order_count"),
        "{}",
        plan.stdout
    );
    let json = pkg.run(&db, &["--json", "plan"]).ok().json();
    assert_eq!(json["code"].as_array().map(Vec::len), Some(1), "{json}");
    let up = pkg.run(&db, &["up"]).ok();
    assert!(up.says("2 managed-object change(s)"), "{}", up.stdout);
}
