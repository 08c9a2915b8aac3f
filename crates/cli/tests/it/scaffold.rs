//! `strata init` and `strata new`: a scaffolded package deploys as it is, and new migrations run in list order.

use crate::support::{Db, run, strata};

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

    // `new` finds the package from a subdirectory, numbers the file and lists it.
    let new = run(strata()
        .current_dir(root.join("migrations"))
        .args(["new", "add_status"]))
    .ok();
    assert!(new.says("migrations/0002_add_status.sql"), "{}", new.stdout);
    run(strata().current_dir(&root).args(["new", "add-index"])).ok();
    let bad = run(strata().current_dir(&root).args(["new", "no spaces"])).expect_code(2);
    assert!(bad.says("invalid migration name"), "{}", bad.stderr);

    let manifest = std::fs::read_to_string(root.join("strata.toml")).unwrap();
    snap!("new_manifest", manifest);

    std::fs::write(
        root.join("migrations/0001_init.sql"),
        "-- migrate:up\nCREATE TABLE invoice (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE invoice;\n",
    )
    .unwrap();
    std::fs::write(
        root.join("migrations/0002_add_status.sql"),
        "-- migrate:up\nALTER TABLE invoice ADD status text;\n-- migrate:down\nALTER TABLE invoice DROP status;\n",
    )
    .unwrap();
    // 0003_add-index stays as scaffolded: empty sections are a valid (empty) migration.
    run(db.strata_in(&root).arg("up")).ok();
    assert_eq!(
        db.applied(),
        [
            "github.com/acme/billing:0001_init",
            "github.com/acme/billing:0002_add_status",
            "github.com/acme/billing:0003_add-index"
        ]
    );
    assert!(db.has_column("billing.invoice", "status"));
    run(db.strata_in(&root).args(["down", "--steps", "3"])).ok();
    assert!(!db.has("billing.invoice"));
}
