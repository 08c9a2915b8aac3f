//! Problems in the package are reported before anything is sent to the server. Every test here points strata at a
//! port where nothing listens: getting the package error rather than a connection error ("could not connect")
//! proves the server was not contacted. Both exit 2: the command could not start.

use crate::support::{Pkg, Run, dead_port, run, strata};

fn unreachable() -> String {
    format!("postgresql://nobody@127.0.0.1:{}/nowhere", dead_port())
}

/// `strata ARGS` in the package, against a server that does not exist.
fn offline(pkg: &Pkg, args: &[&str]) -> Run {
    run(strata()
        .current_dir(pkg.root())
        .args(["--database-url", &unreachable()])
        .args(args))
}

fn package_with_manifest(manifest: &str) -> Pkg {
    let pkg = Pkg::new("acme/x", "x");
    pkg.write("strata.toml", manifest);
    pkg.write("migrations/0001_a.sql", "CREATE TABLE a (id int);\n");
    pkg
}

#[test]
fn invalid_toml() {
    let pkg = package_with_manifest(
        "name = \"acme/x\"\nschema = \"x\"\nmigrations = [\n    \"migrations/0001_a.sql\"\n    \"migrations/0002_b.sql\",\n]\n",
    );
    let failed = offline(&pkg, &["up"]).expect_code(2);
    snap!("source_invalid_toml", failed.stderr);
}

#[test]
fn unknown_manifest_key() {
    let pkg = package_with_manifest(
        "name = \"acme/x\"\nschema = \"x\"\nmigration = [\"migrations/0001_a.sql\"]\n",
    );
    let failed = offline(&pkg, &["plan"]).expect_code(2);
    snap!("source_unknown_key", failed.stderr);
}

#[test]
fn unknown_deploy_setting_and_bad_duration() {
    let pkg = package_with_manifest(
        "name = \"acme/x\"\nschema = \"x\"\nmigrations = [\"migrations/0001_a.sql\"]\n\n[deploy]\nlock_timeout = \"5 parsecs\"\n",
    );
    let failed = offline(&pkg, &["up"]).expect_code(2);
    assert!(
        failed.says("[deploy] lock_timeout: unknown unit `parsecs`"),
        "{}",
        failed.stderr
    );
    pkg.write(
        "strata.toml",
        "name = \"acme/x\"\nschema = \"x\"\nmigrations = [\"migrations/0001_a.sql\"]\n\n[deploy]\nlock_timeuot = \"5s\"\n",
    );
    let failed = offline(&pkg, &["up"]).expect_code(2);
    assert!(
        failed.says("unknown field `lock_timeuot`"),
        "{}",
        failed.stderr
    );
}

#[test]
fn duplicate_migration_names() {
    let pkg = package_with_manifest(
        "name = \"acme/x\"\nschema = \"x\"\nmigrations = [\n    \"migrations/0001_a.sql\",\n    \"other/0001_a.sql\",\n]\n",
    );
    pkg.write("other/0001_a.sql", "SELECT 1;\n");
    let failed = offline(&pkg, &["up"]).expect_code(2);
    snap!("source_duplicate_name", failed.stderr);
}

#[test]
fn missing_migration_file() {
    let pkg = package_with_manifest(
        "name = \"acme/x\"\nschema = \"x\"\nmigrations = [\n    \"migrations/0001_a.sql\",\n    \"migrations/0002_gone.sql\",\n]\n",
    );
    let failed = offline(&pkg, &["up"]).expect_code(2);
    snap!("source_missing_file", failed.stderr);
}

#[test]
fn unlisted_migration_file() {
    let pkg = package_with_manifest(
        "name = \"acme/x\"\nschema = \"x\"\nmigrations = [\n    \"migrations/0001_a.sql\",\n]\n",
    );
    pkg.write(
        "migrations/0002_forgotten.sql",
        "CREATE TABLE b (id int);\n",
    );
    // Down files and tests next to migrations are not migrations.
    pkg.write("migrations/0001_a.down.sql", "DROP TABLE a;\n");
    pkg.write(
        "migrations/accounts_test.sql",
        "CREATE FUNCTION accounts_test() RETURNS void LANGUAGE sql AS 'SELECT 1';\n",
    );
    let failed = offline(&pkg, &["up"]).expect_code(2);
    snap!("source_unlisted_file", failed.stderr);

    std::fs::remove_file(pkg.path("migrations/0002_forgotten.sql")).unwrap();
    // Now only the connection fails: the package itself is fine.
    offline(&pkg, &["up"]).expect_code(2);
}

#[test]
fn invalid_section_markers() {
    let pkg = package_with_manifest(
        "name = \"acme/x\"\nschema = \"x\"\nmigrations = [\"migrations/0001_a.sql\"]\n",
    );
    pkg.write(
        "migrations/0001_a.sql",
        "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down transaction:maybe\nDROP TABLE a;\n",
    );
    let failed = offline(&pkg, &["up"]).expect_code(2);
    snap!("source_bad_marker_option", failed.stderr);

    pkg.write("migrations/0001_a.sql", "-- migrate:down\nDROP TABLE a;\n");
    let failed = offline(&pkg, &["up"]).expect_code(2);
    assert!(
        failed.says("has a `-- migrate:down` section but no `-- migrate:up` section"),
        "{}",
        failed.stderr
    );

    // A down section and a sibling down file: which one is meant?
    pkg.write(
        "migrations/0001_a.sql",
        "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
    );
    pkg.write("migrations/0001_a.down.sql", "DROP TABLE a;\n");
    let failed = offline(&pkg, &["up"]).expect_code(2);
    assert!(
        failed.says("and a sibling file migrations/0001_a.down.sql"),
        "{}",
        failed.stderr
    );
}

#[test]
fn non_utf8_migration_file() {
    let pkg = package_with_manifest(
        "name = \"acme/x\"\nschema = \"x\"\nmigrations = [\"migrations/0001_a.sql\"]\n",
    );
    pkg.write(
        "migrations/0001_a.sql",
        b"-- caf\xe9 (Latin-1)\nCREATE TABLE a (id int);\n",
    );
    let failed = offline(&pkg, &["up"]).expect_code(2);
    snap!("source_non_utf8", failed.stderr);
}

#[test]
fn no_package_here_is_a_usage_error() {
    let empty = tempfile::tempdir().unwrap();
    let failed =
        run(strata()
            .current_dir(empty.path())
            .args(["--database-url", &unreachable(), "up"]))
        .expect_code(2);
    assert!(failed.says("no strata.toml found in"), "{}", failed.stderr);
    let bad_flag = run(strata().args(["up", "--no-such-flag"])).expect_code(2);
    assert!(bad_flag.says("--no-such-flag"));
}

#[test]
fn an_unreachable_server_is_exit_code_2() {
    let mut pkg = Pkg::new("acme/x", "x");
    pkg.add("0001_a.sql", "CREATE TABLE a (id int);\n");
    for args in [&["up"][..], &["plan"], &["status"], &["down"]] {
        let failed = offline(&pkg, args).expect_code(2);
        assert!(!failed.stderr.is_empty(), "{args:?} says why");
    }
}

#[test]
fn an_unreadable_file_names_its_cause_once() {
    let pkg = package_with_manifest(
        "name = \"acme/x\"\nschema = \"x\"\nmigrations = [\"migrations/0002_dir.sql\"]\n",
    );
    std::fs::create_dir_all(pkg.path("migrations/0002_dir.sql")).unwrap();
    let human = offline(&pkg, &["plan"]).expect_code(2);
    assert_eq!(
        human.stderr.matches("Is a directory").count(),
        1,
        "{}",
        human.stderr
    );
    let json = offline(&pkg, &["--json", "plan"]).expect_code(2).json();
    let message = json["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("cannot read "), "{message}");
    assert!(
        message.ends_with("Is a directory (os error 21)"),
        "{message}"
    );
}
