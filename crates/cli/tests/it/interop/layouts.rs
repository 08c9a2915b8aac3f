//! Public projects' folders through the CLI, no flags needed: stray files named, an explicit layout that matches
//! nothing refused, `--schema` for a folder whose SQL relies on another search_path.

use super::{strata, write};

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
    let out = strata(&db)
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("up");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("note: ignored 1 file(s)") && stderr.contains("data_seed.sql"),
        "{stderr}"
    );
}

#[test]
fn an_explicit_layout_that_matches_nothing_exits_2() {
    let db = pgtest::TestDb::new_blocking();
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("app");
    write(&dir.join("0001_init.sql"), "CREATE TABLE a (id bigint);\n");
    write(&dir.join("0002_more.sql"), "CREATE TABLE b (id bigint);\n");
    let out = strata(&db)
        .args(["up", "--layout", "golang-migrate", "--dir"])
        .arg(&dir)
        .output()
        .expect("up");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("no golang-migrate migrations")
            && stderr.contains("<version>_<name>.up.sql"),
        "{stderr}"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("Applied"));
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
    let out = strata(&db)
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("up");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let db = pgtest::TestDb::new_blocking();
    let out = strata(&db)
        .args(["up", "--schema", "storage", "--dir"])
        .arg(&dir)
        .output()
        .expect("up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = strata(&db)
        .args(["status", "--schema", "storage", "--dir"])
        .arg(&dir)
        .output()
        .expect("status");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("(schema storage): 2 applied"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Not meaningful for a Strata package: said, not ignored.
    let out = strata(&db)
        .args(["status", "--schema", "storage"])
        .current_dir(tmp.path())
        .output()
        .expect("status");
    assert_eq!(out.status.code(), Some(2));

    // The same folder described by a strata.toml: its `schema` does the same.
    let project = tmp.path().join("project");
    storage_folder(&project.join("migrations"));
    write(
        &project.join("strata.toml"),
        "name = \"storage\"\nschema = \"storage\"\nlayout = \"postgres-migrations\"\n\n[security]\npackage_role = false\n",
    );
    let db = pgtest::TestDb::new_blocking();
    let out = strata(&db)
        .arg("up")
        .current_dir(&project)
        .output()
        .expect("up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
