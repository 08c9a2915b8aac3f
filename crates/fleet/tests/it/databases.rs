//! A fleet of databases: 200 targets, one of which fails on its own data; `continue` deploys the 199 others and
//! names the failing one; after its data is fixed, resuming the run deploys only it. Outcomes are recorded in a
//! control database.

use pgstrata_fleet::{
    FleetOptions, OnFailure, QuietFleet, StateStore, TargetState, Targets, status,
};
use pgtest::TestDb;

use crate::support::{Databases, connect, project};

/// 200 targets; 40 when the version matrix runs the suite again (`STRATA_TEST_SCALE_DOWN`: the scale is proven once,
/// on the distribution's server).
fn target_count() -> usize {
    crate::support::scaled(200, 40)
}

/// The target that fails on its own data (db-0137 of 200).
fn bad_index() -> usize {
    target_count() * 68 / 100
}

fn bad_name() -> String {
    format!("db-{:04}", bad_index() + 1)
}

/// Every database has customers; the migration copies their e-mails into the package's schema and requires them.
const FILES: &[(&str, &str)] = &[
    (
        "0001_contacts.sql",
        "CREATE TABLE contact (email text);\nINSERT INTO contact SELECT email FROM public.customer;\n",
    ),
    (
        "0002_required.sql",
        "-- every contact has an e-mail\nALTER TABLE contact ALTER COLUMN email SET NOT NULL;\n",
    ),
];

#[tokio::test]
async fn two_hundred_databases_one_failing_on_its_data_then_resumed() {
    let template = TestDb::new().await;
    template
        .client()
        .await
        .batch_execute(
            "CREATE TABLE public.customer (email text);
             INSERT INTO public.customer SELECT 'c' || g || '@example.com' FROM generate_series(1, 20) g;",
        )
        .await
        .unwrap();
    let dbs = Databases::create("fleet200", target_count(), template.name()).await;
    let bad = &dbs.names[bad_index()];
    connect(bad)
        .await
        .client()
        .batch_execute("INSERT INTO public.customer VALUES (NULL)")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dbs.targets_file(dir.path(), |i| {
        format!("group = \"{}\"", if i % 2 == 0 { "even" } else { "odd" })
    });
    let targets = Targets::load(&file).unwrap();
    assert_eq!(targets.list().len(), target_count());
    let (_pkg, app) = project("[security]\npackage_role = false", FILES);
    let control = TestDb::new().await;
    let store = StateStore::Control(Box::new(
        pgstrata_conn::ConnectOptions::parse(&control.url()).unwrap(),
    ));
    let opts = FleetOptions {
        jobs: 4,
        on_failure: OnFailure::Continue,
        ..FleetOptions::default()
    };

    let report = pgstrata_fleet::up(&app, &targets, &opts, &store, None, &mut QuietFleet)
        .await
        .unwrap();
    assert_eq!(
        report.counts.succeeded,
        target_count() - 1,
        "{:?}",
        report.counts
    );
    assert_eq!(report.counts.failed, 1);
    assert!(!report.success());
    let failed: Vec<_> = report
        .targets
        .iter()
        .filter(|t| t.state == TargetState::Failed)
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].target, bad_name());
    let error = failed[0].error.as_ref().unwrap();
    assert_eq!(error.sqlstate.as_deref(), Some("23502"));
    assert_eq!(error.migration.as_deref(), Some("acme/app:0002_required"));
    assert_eq!((error.line, error.column), (Some(2), Some(1)));
    assert!(
        error.summary.contains("0002_required.sql:2:1"),
        "{}",
        error.summary
    );
    // The failed target kept nothing of its deploy; the others have everything.
    assert!(!has_schema(bad, "app").await);
    assert!(has_schema(&dbs.names[0], "app").await);
    // The control database says the same.
    let rows = control
        .client()
        .await
        .query(
            "SELECT state, count(*) FROM strata_fleet.target WHERE run_id = $1 GROUP BY 1 ORDER BY 1",
            &[&report.run_id],
        )
        .await
        .unwrap();
    let by_state: Vec<(String, i64)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(
        by_state,
        [
            ("failed".to_string(), 1),
            ("succeeded".to_string(), (target_count() - 1) as i64)
        ]
    );

    // Status agrees: one target with two pending migrations and the error of its last run.
    let statuses = status(&app, &targets, 4, None).await.unwrap();
    let pending: Vec<_> = statuses.iter().filter(|s| !s.pending.is_empty()).collect();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].target, bad_name());

    // Fix the data, resume: only the failed target is deployed.
    connect(bad)
        .await
        .client()
        .batch_execute("UPDATE public.customer SET email = 'fixed@example.com' WHERE email IS NULL")
        .await
        .unwrap();
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
    assert!(resumed.success());
    assert_eq!(resumed.attempt, 2);
    assert_eq!(resumed.counts.earlier, target_count() - 1);
    let names: Vec<&str> = resumed.targets.iter().map(|t| t.target.as_str()).collect();
    assert_eq!(names, [bad_name()]);
    assert!(has_schema(bad, "app").await);
    // The others were not even connected to again: one run each in their history.
    for name in [&dbs.names[0], &dbs.names[target_count() - 1]] {
        let runs: i64 = connect(name)
            .await
            .client()
            .query_one("SELECT count(*) FROM strata.run", &[])
            .await
            .unwrap()
            .get(0);
        assert_eq!(runs, 1, "{name}");
    }
    dbs.drop_all().await;
}

async fn has_schema(db: &str, schema: &str) -> bool {
    connect(db)
        .await
        .client()
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)",
            &[&schema],
        )
        .await
        .unwrap()
        .get(0)
}
