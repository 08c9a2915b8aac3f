//! Checks that need a server configured for them: `pg_stat_statements` loaded, and shared buffers small enough
//! that a table does not fit. They run on a cluster of their own, started (and stopped) by the test.

use pgstrata_embedded::{ChildCluster, ChildClusterOptions};
use pgstrata_ops::inspect::{Check, CheckOutcome, Details, DurationSetting, Verdict};

use crate::support::{connect, eager, ran, run, until};

#[tokio::test]
async fn statements_and_a_poor_cache_hit_ratio_are_found_on_a_configured_server() {
    let cluster = tokio::task::spawn_blocking(|| {
        ChildCluster::start(&ChildClusterOptions {
            max_connections: 20,
            extra_settings: vec![
                (
                    "shared_preload_libraries".into(),
                    "pg_stat_statements".into(),
                ),
                ("shared_buffers".into(), "1MB".into()),
            ],
            ..Default::default()
        })
    })
    .await
    .unwrap()
    .expect("a cluster with pg_stat_statements loaded");
    let options = pgstrata_conn::ConnectOptions::parse(&cluster.url("postgres")).unwrap();
    let pg = pgstrata::Database::connect(&options).await.unwrap();
    let c = pg.client();
    c.batch_execute(
        "CREATE EXTENSION pg_stat_statements;
         CREATE TABLE wide (id int, pad text);
         INSERT INTO wide SELECT g, repeat('p', 500) FROM generate_series(1, 20000) g;",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        c.batch_execute("SELECT pg_sleep(0.2); SELECT count(*) FROM wide;")
            .await
            .unwrap();
    }
    c.batch_execute("SELECT pg_stat_force_next_flush()")
        .await
        .ok();

    let mut settings = eager();
    settings.slow_statement = DurationSetting(100);
    // Table statistics reach the server asynchronously before PostgreSQL 15.
    let report = until(&pg, &[Check::Statements, Check::CacheHit], &settings, |r| {
        matches!(&ran(r, Check::CacheHit).details, Details::CacheHit(ch) if ch.table_ratio.is_some())
    })
    .await;

    let st = ran(&report, Check::Statements);
    let Details::Statements(rows) = &st.details else {
        panic!()
    };
    let sleep = rows
        .iter()
        .find(|s| s.query.as_deref().is_some_and(|q| q.contains("pg_sleep")))
        .unwrap_or_else(|| panic!("pg_sleep is a top statement: {rows:?}"));
    assert!(sleep.calls >= 3 && sleep.mean_ms >= 150.0, "{sleep:?}");
    assert_eq!(st.verdict, Verdict::Warning, "{st:?}");

    let cache = ran(&report, Check::CacheHit);
    let Details::CacheHit(ch) = &cache.details else {
        panic!()
    };
    let table = ch.table_ratio.expect("enough table reads to judge");
    assert!(
        table < 0.9,
        "a table 6 times the size of shared_buffers, read 3 times: {ch:?}"
    );
    assert_eq!(cache.verdict, Verdict::Problem, "{cache:?}");

    drop(pg);
    tokio::task::spawn_blocking(move || cluster.shutdown())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn an_installed_but_not_loaded_pg_stat_statements_is_skipped_with_the_reason() {
    let db = pgtest::TestDb::new().await;
    let c = db.client().await;
    let loaded: bool = c
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_settings WHERE name = 'pg_stat_statements.max')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    c.batch_execute("CREATE EXTENSION pg_stat_statements")
        .await
        .unwrap();
    let pg = connect(&db).await;
    let report = run(&pg, &[Check::Statements], &eager(), None).await;
    match &report.get(Check::Statements).unwrap().outcome {
        CheckOutcome::Skipped { reason } if !loaded => {
            assert!(reason.contains("installed but not loaded"), "{reason}")
        }
        CheckOutcome::Ran(_) if loaded => {}
        other => panic!("loaded={loaded}: {other:?}"),
    }
}
