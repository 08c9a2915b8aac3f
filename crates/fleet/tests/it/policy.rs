//! What a failure does to the rest of a run (stop, canaries, max failures), a target that accepts connections and
//! never answers, and the local state file.

use std::time::{Duration, Instant};

use pgstrata_fleet::{
    Canary, FleetEvent, FleetOptions, OnFailure, QuietFleet, StateStore, TargetState, Targets,
};
use pgtest::TestDb;

use crate::support::{Databases, connect, project};

const FILES: &[(&str, &str)] = &[
    ("0001_t.sql", "CREATE TABLE t (id int);\n"),
    (
        "0002_check.sql",
        "DO $$ BEGIN IF to_regclass('public.broken') IS NOT NULL THEN\n  RAISE EXCEPTION 'this database is broken' USING HINT = 'drop public.broken';\nEND IF; END $$;\n",
    ),
];

/// Six databases; those in `broken` (0-based) fail the second migration.
async fn six(prefix: &str, broken: &[usize]) -> (TestDb, Databases) {
    let template = TestDb::new().await;
    let dbs = Databases::create(prefix, 6, template.name()).await;
    for &i in broken {
        connect(&dbs.names[i])
            .await
            .client()
            .batch_execute("CREATE TABLE public.broken ()")
            .await
            .unwrap();
    }
    (template, dbs)
}

fn states(report: &pgstrata_fleet::FleetReport) -> Vec<(String, TargetState)> {
    report
        .targets
        .iter()
        .map(|t| (t.target.clone(), t.state))
        .collect()
}

#[tokio::test]
async fn stop_canaries_and_max_failures() {
    let (_template, dbs) = six("fleetpolicy", &[1, 4]).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dbs.targets_file(dir.path(), |i| {
        if i == 5 {
            "tags = [\"canary\"]".into()
        } else {
            String::new()
        }
    });
    let targets = Targets::load(&file).unwrap();
    let (_pkg, app) = project("", FILES);
    let store = StateStore::Dir(dir.path().join("state"));
    use TargetState::*;

    // One at a time, stop: after db-0002 fails, nothing else starts.
    let opts = FleetOptions {
        jobs: 1,
        ..FleetOptions::default()
    };
    let report = pgstrata_fleet::up(&app, &targets, &opts, &store, None, &mut QuietFleet)
        .await
        .unwrap();
    let s = |n: &str, st| (n.to_string(), st);
    assert_eq!(
        states(&report),
        [
            s("db-0001", Succeeded),
            s("db-0002", Failed),
            s("db-0003", Skipped),
            s("db-0004", Skipped),
            s("db-0005", Skipped),
            s("db-0006", Skipped),
        ]
    );
    let failed = &report.targets[1];
    assert_eq!(
        failed.error.as_ref().unwrap().hint.as_deref(),
        Some("drop public.broken")
    );
    assert!(
        report.targets[2]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("stopped after 1 failed"),
        "{:?}",
        report.targets[2].error
    );
    // The state file has the run. Resuming (still broken) with `continue` but at most one failure: db-0002 comes
    // first (the run's order), fails again, and nothing else starts.
    let opts = FleetOptions {
        jobs: 1,
        on_failure: OnFailure::Continue,
        max_failures: Some(1),
        ..FleetOptions::default()
    };
    let resumed = pgstrata_fleet::up(
        &app,
        &targets,
        &opts,
        &store,
        Some(&report.run_id),
        &mut QuietFleet,
    )
    .await
    .unwrap();
    assert_eq!(resumed.counts.earlier, 1);
    assert_eq!(
        states(&resumed),
        [
            s("db-0002", Failed),
            s("db-0003", Skipped),
            s("db-0004", Skipped),
            s("db-0005", Skipped),
            s("db-0006", Skipped),
        ]
    );

    // A new run with the canary tag: the canary (db-0006) goes first, alone; it succeeds, then the rest run and
    // both broken ones fail (continue).
    let opts = FleetOptions {
        jobs: 2,
        canary: Some("canary".parse().unwrap()),
        on_failure: OnFailure::Continue,
        ..FleetOptions::default()
    };
    let mut events = Vec::new();
    let mut observer = |e: FleetEvent<'_>| match e {
        FleetEvent::TargetStarted { target } => events.push(format!("start {target}")),
        FleetEvent::CanariesDone { success } => events.push(format!("canaries {success}")),
        _ => {}
    };
    let report = pgstrata_fleet::up(&app, &targets, &opts, &store, None, &mut observer)
        .await
        .unwrap();
    assert_eq!(&events[..2], ["start db-0006", "canaries true"]);
    assert_eq!(report.counts.failed, 2);
    assert_eq!(report.counts.succeeded, 4);
    assert!(report.targets[0].canary);

    // A failing canary stops everything: db-0002 as the only canary.
    let opts = FleetOptions {
        jobs: 2,
        canary: Some(Canary::Group("db-0002".into())),
        on_failure: OnFailure::Continue,
        ..FleetOptions::default()
    };
    let report = pgstrata_fleet::up(&app, &targets, &opts, &store, None, &mut QuietFleet)
        .await
        .unwrap();
    assert_eq!(report.counts.failed, 1);
    assert_eq!(report.counts.skipped, 5);
    assert!(
        report.targets[1]
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("a canary failed"),
        "{:?}",
        report.targets[1].error
    );
    dbs.drop_all().await;
}

#[tokio::test]
async fn a_target_that_never_answers_is_abandoned() {
    // A "server" that accepts connections and never says a word.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for conn in listener.incoming() {
            held.push(conn);
        }
    });
    let (_template, dbs) = six("fleethang", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut file =
        std::fs::read_to_string(dbs.targets_file(dir.path(), |_| String::new())).unwrap();
    file.push_str(&format!(
        "[[target]]\nname = \"silent\"\nhost = \"127.0.0.1\"\nport = {port}\ndbname = \"app\"\nuser = \"x\"\nsslmode = \"disable\"\n"
    ));
    let path = dir.path().join("with-silent.toml");
    std::fs::write(&path, file).unwrap();
    let targets = Targets::load(&path).unwrap();
    let (_pkg, app) = project("", FILES);
    let opts = FleetOptions {
        jobs: 3,
        on_failure: OnFailure::Continue,
        target_timeout: Some(Duration::from_millis(1500)),
        ..FleetOptions::default()
    };
    let store = StateStore::Dir(dir.path().join("state"));
    let started = Instant::now();
    let report = pgstrata_fleet::up(&app, &targets, &opts, &store, None, &mut QuietFleet)
        .await
        .unwrap();
    // Well before the 30 s connect timeout.
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(report.counts.succeeded, 6);
    assert_eq!(report.counts.abandoned, 1);
    let silent = report
        .targets
        .iter()
        .find(|t| t.target == "silent")
        .unwrap();
    assert_eq!(silent.state, TargetState::Abandoned);
    assert!(silent.duration_ms >= 1500.0 && silent.duration_ms < 10_000.0);
    let message = &silent.error.as_ref().unwrap().message;
    assert!(message.contains("--target-timeout 1.5s"), "{message}");
    assert!(!report.success());
    // The state file says so, for a resume.
    let text = std::fs::read_to_string(
        dir.path()
            .join("state")
            .join(format!("{}.jsonl", report.run_id)),
    )
    .unwrap();
    assert!(
        text.contains("\"state\":\"abandoned\",\"target\":\"silent\""),
        "{text}"
    );
    dbs.drop_all().await;
}
