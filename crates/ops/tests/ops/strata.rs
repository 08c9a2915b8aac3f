//! Strata's own view: applied and pending migrations, managed-code drift, the last run and its outcome.

use pgstrata_ops::inspect::{Check, Details, Verdict};

use crate::support::{connect, deploy, eager, ran, run, write};

const MANIFEST: &str = r#"name = "example.com/app"
schema = "app"
migrations = [MIGRATIONS]
"#;

fn manifest(dir: &std::path::Path, migrations: &[&str]) {
    let list = migrations
        .iter()
        .map(|m| format!("\"migrations/{m}\""))
        .collect::<Vec<_>>()
        .join(", ");
    write(
        &dir.join("strata.toml"),
        &MANIFEST.replace("MIGRATIONS", &list),
    );
}

#[tokio::test]
async fn strata_check_reports_pending_drift_and_a_failed_run() {
    let db = pgtest::TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        &root.join("migrations/001_accounts.sql"),
        "-- migrate:up\nCREATE TABLE app.accounts (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE app.accounts;\n",
    );
    write(
        &root.join("code.sql"),
        "CREATE OR REPLACE FUNCTION app.answer() RETURNS int LANGUAGE sql AS $$ SELECT 42 $$;\n",
    );
    manifest(root, &["001_accounts.sql"]);
    let mut pg = connect(&db).await;
    let project = pgstrata::Project::load(&[root]).unwrap();
    deploy(&mut pg, &project).await.unwrap();

    let report = run(&pg, &[Check::Strata], &eager(), Some(&project)).await;
    let f = ran(&report, Check::Strata);
    assert_eq!(f.verdict, Verdict::Ok, "{f:?}");
    let Details::Strata(st) = &f.details else {
        panic!()
    };
    let app = st
        .packages
        .iter()
        .find(|p| p.name == "example.com/app")
        .expect("package app");
    assert_eq!(
        (app.applied, app.pending, app.drifted, app.managed_objects),
        (1, Some(0), Some(0), 1),
        "{app:?}"
    );
    let run_state = st.last_run.as_ref().expect("a run");
    assert_eq!(
        (run_state.command.as_str(), run_state.outcome.as_str()),
        ("up", "success")
    );
    assert!(f.summary.contains("0 pending"), "{}", f.summary);

    // Without the files: what the database knows, and a note on what it cannot know.
    let report = run(&pg, &[Check::Strata], &eager(), None).await;
    let f = ran(&report, Check::Strata);
    let Details::Strata(st) = &f.details else {
        panic!()
    };
    let app = st
        .packages
        .iter()
        .find(|p| p.name == "example.com/app")
        .unwrap();
    assert_eq!((app.applied, app.pending, app.drifted), (1, None, None));
    assert!(f.notes.iter().any(|n| n.contains("pass -p")), "{f:?}");

    // A new migration on disk, and the function changed outside Strata.
    write(
        &root.join("migrations/002_balance.sql"),
        "-- migrate:up\nALTER TABLE app.accounts ADD COLUMN balance int;\n-- migrate:down\nALTER TABLE app.accounts DROP COLUMN balance;\n",
    );
    manifest(root, &["001_accounts.sql", "002_balance.sql"]);
    let project = pgstrata::Project::load(&[root]).unwrap();
    db.client()
        .await
        .batch_execute(
            "CREATE OR REPLACE FUNCTION app.answer() RETURNS int LANGUAGE sql AS $$ SELECT 43 $$",
        )
        .await
        .unwrap();
    let report = run(&pg, &[Check::Strata], &eager(), Some(&project)).await;
    let f = ran(&report, Check::Strata);
    assert_eq!(f.verdict, Verdict::Warning, "{f:?}");
    let Details::Strata(st) = &f.details else {
        panic!()
    };
    let app = st
        .packages
        .iter()
        .find(|p| p.name == "example.com/app")
        .unwrap();
    assert_eq!((app.pending, app.drifted), (Some(1), Some(1)), "{app:?}");
    assert!(
        f.summary.contains("1 pending") && f.summary.contains("changed outside Strata"),
        "{}",
        f.summary
    );

    // A deploy that fails is recorded: the last run's outcome is a problem.
    write(
        &root.join("migrations/003_broken.sql"),
        "-- migrate:up\nALTER TABLE app.nope ADD COLUMN x int;\n",
    );
    manifest(
        root,
        &["001_accounts.sql", "002_balance.sql", "003_broken.sql"],
    );
    let project = pgstrata::Project::load(&[root]).unwrap();
    assert!(deploy(&mut pg, &project).await.is_err());
    let report = run(&pg, &[Check::Strata], &eager(), Some(&project)).await;
    let f = ran(&report, Check::Strata);
    assert_eq!(f.verdict, Verdict::Problem, "{f:?}");
    let Details::Strata(st) = &f.details else {
        panic!()
    };
    let failed = st.last_run.as_ref().unwrap();
    assert_eq!(failed.outcome, "failed");
    assert!(
        failed.error.as_deref().unwrap_or("").contains("app.nope"),
        "{failed:?}"
    );
    assert_eq!(st.last_failure.as_ref().map(|r| r.id), Some(failed.id));
}
