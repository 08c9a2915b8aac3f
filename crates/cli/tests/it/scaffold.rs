//! `strata init` and `strata new`: a scaffolded package deploys as it is, new migrations are timestamped files in
//! version order, and two branches that each add one merge without a conflict.

use std::path::{Path, PathBuf};

use crate::support::{Db, run, strata};

/// The migration files of `dir`, sorted.
fn migrations(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn stem(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn init_new_up_round_trip() {
    let db = Db::new();
    let work = tempfile::tempdir().unwrap();

    let init = run(strata()
        .current_dir(work.path())
        .args(["init", "github.com/acme/billing"]))
    .ok();
    snap!("init", init.stdout);
    let root = work.path().join("billing");
    let manifest = std::fs::read_to_string(root.join("strata.toml")).unwrap();
    snap!("init_manifest", manifest);

    let again = run(strata()
        .current_dir(work.path())
        .args(["init", "github.com/acme/billing"]))
    .expect_code(2);
    assert!(again.says("already holds a package"), "{}", again.stderr);

    // `new` finds the package from a subdirectory and adds a timestamped file; the manifest stays as it is.
    let new = run(strata()
        .current_dir(root.join("migrations"))
        .args(["new", "add_status"]))
    .ok();
    assert!(new.says("_add_status.sql"), "{}", new.stdout);
    run(strata().current_dir(&root).args(["new", "add-index"])).ok();
    let bad = run(strata().current_dir(&root).args(["new", "no spaces"])).expect_code(2);
    assert!(bad.says("invalid migration name"), "{}", bad.stderr);
    assert_eq!(
        std::fs::read_to_string(root.join("strata.toml")).unwrap(),
        manifest
    );

    let files = migrations(&root.join("migrations"));
    let [init_sql, status_sql, index_sql] = files.as_slice() else {
        panic!("three migrations: {files:?}")
    };
    assert!(stem(init_sql).ends_with("_init") && stem(index_sql).ends_with("_add-index"));
    std::fs::write(
        init_sql,
        "-- migrate:up\nCREATE TABLE invoice (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE invoice;\n",
    )
    .unwrap();
    std::fs::write(
        status_sql,
        "-- migrate:up\nALTER TABLE invoice ADD status text;\n-- migrate:down\nALTER TABLE invoice DROP status;\n",
    )
    .unwrap();
    // add-index stays as scaffolded: empty sections are a valid (empty) migration.
    run(db.strata_in(&root).arg("up")).ok();
    let expected: Vec<String> = files
        .iter()
        .map(|f| format!("github.com/acme/billing:{}", stem(f)))
        .collect();
    assert_eq!(db.applied(), expected);
    assert!(db.has_column("billing.invoice", "status"));
    run(db.strata_in(&root).args(["down", "--steps", "3"])).ok();
    assert!(!db.has("billing.invoice"));
}

fn git(dir: &Path, args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .current_dir(dir)
        .args([
            "-c",
            "user.name=strata test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "init.defaultBranch=main",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .output()
        .expect("git runs (CI installs it)");
    assert!(
        out.status.success(),
        "git {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The everyday path of a team: two branches each run `strata new`, git merges them without a conflict (no list in
/// strata.toml, no shared number), and the merged package deploys both, in timestamp order.
#[test]
fn two_branches_that_each_add_a_migration_merge_cleanly_and_deploy() {
    let db = Db::new();
    let work = tempfile::tempdir().unwrap();
    let root = work.path().join("shop");
    run(strata()
        .current_dir(work.path())
        .args(["init", "github.com/acme/shop", "shop"]))
    .ok();
    let first = migrations(&root.join("migrations")).remove(0);
    std::fs::write(
        &first,
        "-- migrate:up\nCREATE TABLE item (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE item;\n",
    )
    .unwrap();
    git(&root, &["init", "-q"]);
    git(&root, &["add", "-A"]);
    git(&root, &["commit", "-qm", "init"]);

    // Versions are UTC seconds: each teammate's `strata new` comes a moment after the last one.
    let a_moment_later = || std::thread::sleep(std::time::Duration::from_millis(1100));
    let branch = |name: &str, migration: &str, sql: &str| {
        a_moment_later();
        git(&root, &["checkout", "-qb", name, "main"]);
        let out = run(strata().current_dir(&root).args(["new", migration])).ok();
        let file = PathBuf::from(out.stdout.trim().trim_start_matches("created "));
        let file = if file.is_absolute() {
            file
        } else {
            root.join(file)
        };
        std::fs::write(&file, sql).unwrap();
        git(&root, &["add", "-A"]);
        git(&root, &["commit", "-qm", migration]);
        stem(&file)
    };
    let a = branch(
        "feature-a",
        "add_price",
        "ALTER TABLE item ADD price numeric;\n",
    );
    let b = branch("feature-b", "add_name", "ALTER TABLE item ADD name text;\n");
    assert_ne!(a, b);

    git(&root, &["checkout", "-q", "main"]);
    git(&root, &["merge", "-q", "--no-edit", "feature-a"]);
    // A real merge (not a fast-forward): both branches changed the package since they forked.
    git(&root, &["merge", "-q", "--no-edit", "feature-b"]);
    let status = git(&root, &["status", "--porcelain"]);
    assert_eq!(status, "", "the merge left nothing to resolve");

    run(db.strata_in(&root).arg("up")).ok();
    let applied = db.applied();
    assert_eq!(
        applied,
        [
            format!("github.com/acme/shop:{}", stem(&first)),
            format!("github.com/acme/shop:{a}"),
            format!("github.com/acme/shop:{b}"),
        ],
        "timestamp order: feature-a's migration was created first"
    );
    assert!(db.has_column("shop.item", "price") && db.has_column("shop.item", "name"));
}
