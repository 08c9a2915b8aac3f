//! Package roles as a boundary, and the deploy's transaction kept whole (issue 16, sections 1 and 3): what package
//! code must not do is refused before anything runs, and what a text scan cannot see is caught by the check after
//! every statement.

use crate::support::{Db, Pkg};

/// A package whose first migration creates a table, so "nothing was applied" can be checked.
fn pkg_with(second: &str) -> Pkg {
    let mut pkg = Pkg::new("acme/app", "app");
    pkg.add("0001_t.sql", "CREATE TABLE t (id bigint);\n");
    pkg.add("0002_x.sql", second);
    pkg
}

#[test]
fn a_role_change_built_at_run_time_stops_the_deploy_at_its_statement() {
    let db = Db::new();
    let pkg = pkg_with(
        "CREATE FUNCTION escape() RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'RE' || 'SET ROLE'; END $$;\n\
         SELECT escape();\n\
         CREATE TABLE stolen (id bigint);\n",
    );
    let run = pkg.run(&db, &["up"]).expect_code(1);
    assert!(run.says("0002_x.sql:2:1"), "{}", run.stderr);
    assert!(
        run.says("this statement changed the role to postgres: package code must run as the package role $acme/app"),
        "{}",
        run.stderr
    );
    assert!(run.says("SQLSTATE 42501"), "{}", run.stderr);
    assert!(run.says("nothing was applied"), "{}", run.stderr);
    assert!(!db.has("app.t") && !db.has("app.stolen") && !db.has("public.stolen"));
}

#[test]
fn set_config_of_the_role_at_run_time_is_caught_in_a_no_transaction_section_before_it_commits() {
    let db = Db::new();
    let mut pkg = pkg_with(
        "CREATE FUNCTION app.become(r text) RETURNS void LANGUAGE sql AS $$ SELECT 1 $$;\n",
    );
    pkg.run(&db, &["up"]).ok();
    // The function's new body sets a role whose name is computed: invisible to the text scan of the migration
    // that calls it.
    pkg.add(
        "0003_escape.sql",
        "-- strata:no-transaction\n\
         INSERT INTO t VALUES (1);\n\
         CREATE OR REPLACE FUNCTION app.become(r text) RETURNS void LANGUAGE plpgsql AS $$ BEGIN EXECUTE 'SET ' || 'ROLE ' || r; END $$;\n\
         INSERT INTO t SELECT 2 FROM app.become('postgres');\n\
         INSERT INTO t VALUES (3);\n",
    );
    let run = pkg.run(&db, &["up"]).expect_code(1);
    assert!(run.says("0003_escape.sql:4:1"), "{}", run.stderr);
    assert!(run.says("changed the role to postgres"), "{}", run.stderr);
    // The statement that escaped ran in one transaction with its check: it did not commit.
    assert_eq!(db.column::<i64>("SELECT id FROM app.t ORDER BY id"), [1]);
    assert_eq!(
        db.value::<String>("SELECT current_user::text"),
        "postgres",
        "the test connection is unaffected"
    );
}

#[test]
fn role_changes_written_in_package_code_are_refused_before_anything_runs() {
    for (sql, at) in [
        ("RESET ROLE;\n", "RESET ROLE"),
        (
            "SET SESSION AUTHORIZATION postgres;\n",
            "SET SESSION AUTHORIZATION",
        ),
        (
            "SELECT set_config('role', 'postgres', true);\n",
            "set_config('role'",
        ),
        (
            "DO $$ BEGIN PERFORM set_config(current_setting('x.y'), 'postgres', false); END $$;\n",
            "set_config(current_setting",
        ),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET role = postgres AS 'SELECT 1';\n",
            "SET role",
        ),
    ] {
        let db = Db::new();
        let pkg = pkg_with(sql);
        let run = pkg.run(&db, &["up", "--allow-lint-errors"]).expect_code(1);
        assert!(
            run.says("changes the role it runs as"),
            "{sql}: {}",
            run.stderr
        );
        assert!(run.says("0002_x.sql:1:"), "{sql}: {}", run.stderr);
        assert!(run.says(at), "{sql}: {}", run.stderr);
        assert!(run.says("Nothing was run."), "{sql}: {}", run.stderr);
        assert!(!db.has("app.t"), "{sql}");
    }
}

#[test]
fn reaching_outside_the_package_needs_the_manifest_to_say_so() {
    for (sql, key, message) in [
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';\n",
            "allow_security_definer",
            "declares a SECURITY DEFINER routine",
        ),
        (
            "CREATE FUNCTION app.ddl() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$;\n\
             CREATE EVENT TRIGGER app_ddl ON ddl_command_start EXECUTE FUNCTION app.ddl();\n",
            "allow_event_triggers",
            "creates or alters an event trigger",
        ),
        (
            "COPY t TO PROGRAM 'cat > /dev/null';\n",
            "allow_copy_program",
            "runs a program on the database server",
        ),
        (
            "ALTER ROLE CURRENT_USER SUPERUSER;\n",
            "allow_alter_role",
            "creates, changes or grants roles",
        ),
    ] {
        let db = Db::new();
        let mut pkg = pkg_with(sql);
        let refused = pkg.run(&db, &["up", "--allow-lint-errors"]).expect_code(1);
        assert!(refused.says(message), "{sql}: {}", refused.stderr);
        assert!(refused.says(key), "{sql}: {}", refused.stderr);
        assert!(!db.has("app.t"), "{sql}");
        // Allowed: Strata lets it through, and PostgreSQL decides what the package role may do.
        pkg.extra = format!("[security]\n{key} = true\n");
        pkg.write_manifest();
        let allowed = pkg.run(&db, &["up", "--allow-lint-errors"]);
        assert!(!allowed.says(message), "{sql}: {}", allowed.stderr);
    }
}

#[test]
fn a_package_without_a_role_keeps_the_old_freedom() {
    let db = Db::new();
    // Roles belong to the cluster, which tests share: names of this test's own.
    let owner = format!("{}_owner", db.name());
    let reader = format!("{}_reader", db.name());
    db.exec(&format!(
        "CREATE ROLE {owner}; CREATE SCHEMA app; GRANT ALL ON SCHEMA app TO {owner}"
    ));
    let mut pkg = pkg_with(&format!(
        "SET ROLE {owner};\nCREATE TABLE app.owned (id bigint);\nRESET ROLE;\nCREATE ROLE {reader};\n"
    ));
    pkg.extra = "[security]\npackage_role = false\n".into();
    pkg.write_manifest();
    let run = pkg.run(&db, &["up"]);
    db.exec(&format!(
        "DROP TABLE IF EXISTS app.owned; DROP ROLE IF EXISTS {reader}"
    ));
    run.ok();

    // But it must give the role back before its section ends.
    let other = Db::new();
    let mut pkg = pkg_with(&format!("SET ROLE {owner};\nSELECT 1;\n"));
    pkg.extra = "[security]\npackage_role = false\n".into();
    pkg.write_manifest();
    let run = pkg.run(&other, &["up"]);
    db.exec(&format!(
        "REVOKE ALL ON SCHEMA app FROM {owner}; DROP ROLE {owner}"
    ));
    let run = run.expect_code(1);
    assert!(
        run.says(&format!("left the role set to {owner}")),
        "{}",
        run.stderr
    );
    assert!(!other.has("app.t"));
}

#[test]
fn transaction_control_in_a_transactional_migration_is_refused_even_with_lint_silenced() {
    for (sql, what) in [
        (
            "INSERT INTO t VALUES (1);\n-- squawk-ignore transaction-nesting\nCOMMIT;\nINSERT INTO t VALUES (2);\n",
            "COMMIT",
        ),
        ("ROLLBACK AND CHAIN;\n", "ROLLBACK"),
        ("BEGIN;\nINSERT INTO t VALUES (1);\nEND;\n", "BEGIN"),
        ("PREPARE TRANSACTION 'x';\n", "PREPARE TRANSACTION"),
        ("RELEASE SAVEPOINT strata_code;\n", "RELEASE SAVEPOINT"),
        ("ROLLBACK TO SAVEPOINT elsewhere;\n", "ROLLBACK TO"),
    ] {
        let db = Db::new();
        let pkg = pkg_with(sql);
        let run = pkg.run(&db, &["up", "--allow-lint-errors"]).expect_code(1);
        assert!(
            run.says("strata::transaction_control"),
            "{sql}: {}",
            run.stderr
        );
        assert!(run.says("Nothing was run."), "{sql}: {}", run.stderr);
        assert!(run.says(what), "{sql}: {}", run.stderr);
        assert!(!db.has("app.t"), "{sql}");
        assert!(
            !db.value::<bool>("SELECT EXISTS (SELECT FROM pg_prepared_xacts)"),
            "{sql}"
        );
    }
    // Savepoints a migration creates itself are its own business.
    let db = Db::new();
    let pkg = pkg_with(
        "SAVEPOINT a;\nINSERT INTO t VALUES (1);\nROLLBACK TO SAVEPOINT a;\nINSERT INTO t VALUES (2);\nRELEASE a;\n",
    );
    // (squawk's transaction-nesting rule still flags them; that one is a lint rule, and may be silenced.)
    pkg.run(&db, &["up", "--allow-lint-errors"]).ok();
    assert_eq!(db.column::<i64>("SELECT id FROM app.t"), [2]);
}

#[test]
fn a_commit_the_splitter_cannot_see_is_caught_and_reported_as_committed() {
    let db = Db::new();
    // psql's rules (which Strata's splitter follows) read `begin` after CREATE FUNCTION as the start of a
    // BEGIN ATOMIC body, so the whole text up to END is one statement to them; the server runs the COMMIT.
    let pkg = pkg_with(
        "INSERT INTO t VALUES (1);\n\
         CREATE FUNCTION trick() RETURNS int LANGUAGE sql SET search_path = begin RETURN 1;\n\
         COMMIT;\n\
         SELECT 1; END;\n\
         INSERT INTO t VALUES (2);\n",
    );
    let run = pkg.run(&db, &["up", "--allow-lint-errors"]).expect_code(1);
    assert!(run.says("0002_x.sql:2:1"), "{}", run.stderr);
    assert!(
        run.says("this statement committed the deploy's transaction"),
        "{}",
        run.stderr
    );
    assert!(
        !run.says("rolled back"),
        "never say rolled back when it was not: {}",
        run.stderr
    );
    // What the COMMIT committed is there; nothing after it ran.
    assert_eq!(db.column::<i64>("SELECT id FROM app.t"), [1]);
    let other = Db::new();
    let json = pkg
        .run(&other, &["--json", "up", "--allow-lint-errors"])
        .expect_code(1);
    assert_eq!(
        json.json()["error"]["rolled_back"],
        false,
        "{}",
        json.stdout
    );
}

#[test]
fn copy_through_the_connection_is_a_clear_error() {
    for sql in ["COPY t TO STDOUT;\n", "COPY t FROM STDIN;\n1\n\\.\n"] {
        let db = Db::new();
        let pkg = pkg_with(sql);
        let run = pkg.run(&db, &["up", "--allow-lint-errors"]).expect_code(1);
        assert!(
            run.says("copies data from STDIN or to STDOUT"),
            "{sql}: {}",
            run.stderr
        );
        assert!(run.says("0002_x.sql:1:"), "{sql}: {}", run.stderr);
        assert!(!db.has("app.t"));
    }
}

#[test]
fn a_test_that_changes_the_role_fails_the_deploy() {
    let db = Db::new();
    let pkg = pkg_with("SELECT 1;\n");
    pkg.write(
        "escape_test.sql",
        "CREATE FUNCTION app.escape_test() RETURNS void LANGUAGE plpgsql AS $$\n\
         BEGIN EXECUTE 'RE' || 'SET ROLE'; END $$;\n",
    );
    let run = pkg.run(&db, &["up"]).expect_code(1);
    assert!(run.says("changed the role to postgres"), "{}", run.stderr);
    assert!(!db.has("app.t"));
}
