//! A failing migration: the database is left exactly as before, and the error points at the file, line and column
//! with the SQLSTATE, detail and hint — also for errors inside PL/pgSQL bodies.

use crate::support::{Db, Pkg};

fn applied_once() -> (Db, Pkg) {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/ledger", "ledger");
    pkg.add(
        "0001_account.sql",
        "CREATE TABLE account (id int PRIMARY KEY, name text UNIQUE);\nINSERT INTO account VALUES (1, 'cash');\n",
    );
    pkg.run(&db, &["up"]).ok();
    (db, pkg)
}

#[test]
fn a_failing_migration_leaves_the_database_untouched() {
    let (db, mut pkg) = applied_once();
    pkg.add(
        "0002_entry.sql",
        "CREATE TABLE entry (id int, account int REFERENCES account);\nCREATE INDEX ON entry (account);\n",
    );
    pkg.add(
        "0003_more.sql",
        "-- Several statements; the third one fails.\n\
         ALTER TABLE account ADD kind text;\n\
         UPDATE account SET kind = 'asset';\n\
         INSERT INTO account (id, name)\n\
         VALUES (2, 'bank'),\n       (3, 'cash');\n",
    );
    let before = db.catalog();
    let rows_before: Vec<String> = db.column("SELECT name FROM ledger.account ORDER BY id");

    let failed = pkg.run(&db, &["up"]).expect_code(1);
    snap!("unique_violation", failed.stderr);
    assert!(failed.says("migrations/0003_more.sql:4:1"));
    assert!(failed.says("SQLSTATE 23505"));
    assert!(failed.says("Key (name)=(cash) already exists."));

    db.assert_catalog(&before, "schema and history as before");
    assert_eq!(
        db.column::<String>("SELECT name FROM ledger.account ORDER BY id"),
        rows_before
    );
    // The failure itself is on record (its own transaction, after the rollback).
    let last = db.row(
        "SELECT command, outcome, error, detail->>'failed_migration' FROM strata.run ORDER BY id DESC LIMIT 1",
    );
    assert_eq!(last[0].as_deref(), Some("up"));
    assert_eq!(last[1].as_deref(), Some("failed"));
    assert!(
        last[2]
            .as_deref()
            .unwrap()
            .starts_with("migrations/0003_more.sql:4:1: duplicate key value"),
        "{last:?}"
    );
    assert_eq!(last[3].as_deref(), Some("acme/ledger:0003_more"));

    let status = pkg.run(&db, &["status"]).ok();
    snap!("status_after_failure", status.stdout);
}

#[test]
fn the_first_deploy_failing_leaves_no_trace() {
    let db = Db::new();
    let empty = db.catalog();
    let mut pkg = Pkg::new("acme/first", "first");
    pkg.add("0001_ok.sql", "CREATE TABLE ok (id int);\n");
    pkg.add(
        "0002_typo.sql",
        "CREATE TABLE t (\n    id int,\n    created timestamptz DEFAULT nwo()\n);\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    snap!("undefined_function", failed.stderr);
    db.assert_catalog(
        &empty,
        "not even the strata schema or the package schema remains",
    );
}

#[test]
fn errors_in_a_do_block_point_at_the_body_line() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/plpgsql", "plpgsql");
    pkg.add(
        "0001_do.sql",
        "CREATE TABLE t (id int);\n\
         \n\
         DO $$\n\
         DECLARE\n\
         \x20 n int;\n\
         BEGIN\n\
         \x20 SELECT count(*) INTO n FROM t;\n\
         \x20 IF n = 0 THEN\n\
         \x20   RAISE EXCEPTION 'table t is empty: %', n USING HINT = 'seed it first';\n\
         \x20 END IF;\n\
         END\n\
         $$;\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    snap!("do_block_raise", failed.stderr);
    assert!(failed.says("migrations/0001_do.sql:9:5"));
    assert!(failed.says("SQLSTATE P0001"));
    assert!(failed.says("hint: seed it first"));

    // An error in a statement the DO block runs: the line of that statement.
    pkg.write(
        "migrations/0001_do.sql",
        "CREATE TABLE t (id int);\n\
         DO $body$\n\
         BEGIN\n\
         \x20 PERFORM 1;\n\
         \x20 PERFORM * FROM no_such_table;\n\
         END\n\
         $body$;\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    snap!("do_block_perform", failed.stderr);
    assert!(
        failed.says("migrations/0001_do.sql:5:"),
        "{}",
        failed.stderr
    );

    // An error raised by a function the DO block calls: the DO block's line that called it.
    pkg.write(
        "migrations/0001_do.sql",
        "CREATE FUNCTION half(n int) RETURNS int LANGUAGE plpgsql AS $$\n\
         BEGIN\n\
         \x20 RETURN n / 0;\n\
         END\n\
         $$;\n\
         DO $$\n\
         BEGIN\n\
         \x20 PERFORM 1;\n\
         \x20 PERFORM half(4);\n\
         END\n\
         $$;\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    assert!(
        failed.says("migrations/0001_do.sql:9:"),
        "{}",
        failed.stderr
    );
    assert!(failed.says("SQLSTATE 22012"));
    assert!(!db.has("plpgsql.t"));
}

#[test]
fn errors_in_a_plpgsql_function_body_point_at_the_body_line() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/plpgsql", "plpgsql");
    pkg.add(
        "0001_fn.sql",
        "CREATE TABLE t (id int);\n\
         \n\
         CREATE FUNCTION t_count() RETURNS int\n\
         LANGUAGE plpgsql AS $fn$\n\
         DECLARE\n\
         \x20 n int;\n\
         BEGIN\n\
         \x20 SELECT count(*) INTO n FROM t;\n\
         \x20 RETURN n +;\n\
         END\n\
         $fn$;\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    snap!("function_body_syntax", failed.stderr);
    assert!(failed.says("migrations/0001_fn.sql:9:13"));
    assert!(failed.says("SQLSTATE 42601"));

    // Compile errors PostgreSQL reports by body line only ("near line 2").
    pkg.write(
        "migrations/0001_fn.sql",
        "CREATE FUNCTION t_count() RETURNS int\n\
         LANGUAGE plpgsql AS $fn$\n\
         DECLARE\n\
         \x20 n no_such_type;\n\
         BEGIN\n\
         \x20 RETURN 1;\n\
         END\n\
         $fn$;\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    assert!(
        failed.says("migrations/0001_fn.sql:4:"),
        "{}",
        failed.stderr
    );
    assert!(failed.says("SQLSTATE 42704"));
    assert!(!db.has("plpgsql.t"));
}

#[test]
fn the_json_error_has_the_location_fields() {
    let (db, mut pkg) = applied_once();
    pkg.add(
        "0002_bad.sql",
        "ALTER TABLE account\n  ADD COLUMN balance numeric NOT NULL DEFAULT 'zero';\n",
    );
    let failed = pkg.run(&db, &["--json", "up"]).expect_code(1);
    snap_json!("json_sql_error", failed.json());
}

#[test]
fn the_failing_statement_is_found_among_the_statements_of_a_migration() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/middle", "middle");
    // Positionless error (a CHECK violation) in the third of four statements.
    pkg.add(
        "0001_checks.sql",
        "CREATE TABLE t (n int CHECK (n > 0));\n\
         INSERT INTO t VALUES (1);\n\
         INSERT INTO t\n  VALUES (0);\n\
         INSERT INTO t VALUES (2);\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    assert!(
        failed.says(
            "migrations/0001_checks.sql:3:1: new row for relation \"t\" violates check constraint"
        ),
        "{}",
        failed.stderr
    );
    assert!(failed.says("SQLSTATE 23514"));

    // A syntax error in the last statement: nothing before it ran, and the position says where.
    pkg.write(
        "migrations/0001_checks.sql",
        "CREATE TABLE t (n int);\nINSERT INTO t VALUES (1);\nSELEC n FROM t;\n",
    );
    // The linter refuses it before anything runs (a syntax error is a lint error)…
    let refused = pkg.run(&db, &["up"]).expect_code(1);
    assert!(
        refused.says("syntax-error") && refused.says("migrations/0001_checks.sql:3:1"),
        "{}",
        refused.stderr
    );
    // … and PostgreSQL, when the deploy goes ahead anyway, says the same.
    let failed = pkg.run(&db, &["up", "--allow-lint-errors"]).expect_code(1);
    assert!(
        failed.says("migrations/0001_checks.sql:3:1: syntax error at or near \"SELEC\""),
        "{}",
        failed.stderr
    );
    assert!(!db.has("middle.t"));
}
