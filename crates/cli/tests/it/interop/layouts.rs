//! Public projects' folders through the CLI, no flags needed: stray files named, an explicit layout that matches
//! nothing refused, `--schema` for a folder whose SQL relies on another search_path.

use super::{assert_contains, strata, write};
use crate::support::run;

#[test]
fn a_stray_file_is_ignored_and_said() {
    let db = pgtest::TestDb::new_blocking();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("shop");
    write(
        &dir.join("2024-01-01-000000_users/up.sql"),
        "CREATE TABLE users (id bigint);\n",
    );
    write(
        &dir.join("data_seed.sql"),
        "INSERT INTO users VALUES (1);\n",
    );
    let out = run(strata(&db).args(["up", "--dir"]).arg(&dir)).ok();
    assert_contains(&out.stderr, &["note: ignored 1 file(s)", "data_seed.sql"]);
}

#[test]
fn an_explicit_layout_that_matches_nothing_exits_2() {
    let db = pgtest::TestDb::new_blocking();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("app");
    write(&dir.join("0001_init.sql"), "CREATE TABLE a (id bigint);\n");
    write(&dir.join("0002_more.sql"), "CREATE TABLE b (id bigint);\n");
    let out = run(strata(&db)
        .args(["up", "--layout", "golang-migrate", "--dir"])
        .arg(&dir))
    .expect_code(2);
    assert_contains(
        &out.stderr,
        &["no golang-migrate migrations", "<version>_<name>.up.sql"],
    );
    assert!(!out.stdout.contains("Applied"), "{}", out.stdout);
}

/// Unqualified names that mean schema `storage`: the folder relies on its tool's search_path.
fn storage_folder(dir: &std::path::Path) {
    write(
        &dir.join("0001-objects.sql"),
        "CREATE TABLE objects (id bigint PRIMARY KEY, name text);\n",
    );
    write(
        &dir.join("0002-count.sql"),
        "CREATE FUNCTION storage.object_count() RETURNS bigint LANGUAGE sql AS 'SELECT count(*) FROM objects';\n",
    );
}

#[test]
fn schema_sets_the_search_path_a_folder_relies_on() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("storage");
    storage_folder(&dir);
    // Without it, the objects land in public and storage does not exist.
    let db = pgtest::TestDb::new_blocking();
    run(strata(&db).args(["up", "--dir"]).arg(&dir)).expect_code(1);
    let db = pgtest::TestDb::new_blocking();
    run(strata(&db)
        .args(["up", "--schema", "storage", "--dir"])
        .arg(&dir))
    .ok();
    let out = run(strata(&db)
        .args(["status", "--schema", "storage", "--dir"])
        .arg(&dir));
    assert_contains(&out.stdout, &["(schema storage): 2 applied"]);
    // Not meaningful for a Strata package: said, not ignored.
    run(strata(&db)
        .args(["status", "--schema", "storage"])
        .current_dir(tmp.path()))
    .expect_code(2);

    // The same folder described by a strata.toml: its `schema` does the same.
    let project = tmp.path().join("project");
    storage_folder(&project.join("migrations"));
    write(
        &project.join("strata.toml"),
        "name = \"storage\"\nschema = \"storage\"\nlayout = \"postgres-migrations\"\n\n[security]\npackage_role = false\n",
    );
    let db = pgtest::TestDb::new_blocking();
    run(strata(&db).arg("up").current_dir(&project)).ok();
}
