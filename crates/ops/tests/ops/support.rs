//! Helpers: a pgstrata connection to a test database, running checks, picking a check's findings.

use std::time::{Duration, Instant};

use pgstrata_ops::inspect::{
    Check, CheckOutcome, Details, Findings, InspectOptions, InspectReport, InspectSettings, inspect,
};

/// Connection settings of a test database.
pub fn options(db: &pgtest::TestDb) -> pgstrata_conn::ConnectOptions {
    pgstrata_conn::ConnectOptions::parse(&db.url()).expect("pgtest URL parses")
}

/// A pgstrata connection to a test database.
pub async fn connect(db: &pgtest::TestDb) -> pgstrata::Database {
    pgstrata::Database::connect(&options(db))
        .await
        .expect("connect")
}

/// Settings that flag everything a test creates: no minimum sizes, short ages.
pub fn eager() -> InspectSettings {
    InspectSettings {
        bloat_min_size: pgstrata_ops::inspect::SizeSetting(0),
        dead_tuples_min: 1,
        seq_scan_min_rows: 100,
        analyze_min_rows: 100,
        top: 50,
        ..Default::default()
    }
}

/// Run `checks` with `settings`.
pub async fn run(
    db: &pgstrata::Database,
    checks: &[Check],
    settings: &InspectSettings,
    project: Option<&pgstrata::Project>,
) -> InspectReport {
    let opts = InspectOptions {
        checks: checks.to_vec(),
        settings: settings.clone(),
    };
    inspect(db, &opts, project).await.expect("inspect runs")
}

/// The findings of a check that must have run.
#[track_caller]
pub fn ran(report: &InspectReport, check: Check) -> &Findings {
    let c = report
        .get(check)
        .unwrap_or_else(|| panic!("{check} was not in the report"));
    match &c.outcome {
        CheckOutcome::Ran(f) => f,
        other => panic!("{check} did not run: {other:?}"),
    }
}

/// Run `checks` until `found` accepts the report (statistics reach the server asynchronously), at most 15 s.
pub async fn until(
    db: &pgstrata::Database,
    checks: &[Check],
    settings: &InspectSettings,
    found: impl Fn(&InspectReport) -> bool,
) -> InspectReport {
    let start = Instant::now();
    loop {
        let report = run(db, checks, settings, None).await;
        if found(&report) || start.elapsed() > Duration::from_secs(15) {
            return report;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Push this session's pending statistics to the server now. From PostgreSQL 15 a function does it; before, a
/// session sends them when it finishes a transaction at least 500 ms after its last report, so: wait, then finish
/// one.
pub async fn flush_stats(client: &tokio_postgres::Client) {
    let v: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .unwrap()
        .get(0);
    if v >= 150_000 {
        client
            .batch_execute("SELECT pg_stat_force_next_flush()")
            .await
            .unwrap();
    } else {
        tokio::time::sleep(Duration::from_millis(600)).await;
        client.batch_execute("SELECT 1").await.unwrap();
    }
}

/// The details of a check as JSON (for assertions on names without matching every variant).
pub fn json(details: &Details) -> serde_json::Value {
    serde_json::to_value(details).unwrap()
}

/// `packages/minipaas` at the repository root.
pub fn minipaas_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packages/minipaas")
}

/// Deploy `project` with pgstrata (its SQL tests skipped: they are pgstrata's and MiniPaaS's business).
pub async fn deploy(
    db: &mut pgstrata::Database,
    project: &pgstrata::Project,
) -> Result<pgstrata::UpReport, pgstrata::Error> {
    let opts = pgstrata::UpOptions {
        tests: pgstrata::TestMode::Skip,
        ..Default::default()
    };
    pgstrata::up(db, project, &opts, &mut pgstrata::Quiet).await
}

/// Write a file (and its directories).
pub fn write(path: &std::path::Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}
