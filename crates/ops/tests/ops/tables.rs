//! Table bloat, dead tuples, vacuum and analyze, sequential scans, sizes.

use pgstrata_ops::inspect::{Check, Details, Verdict};

use crate::support::{connect, eager, flush_stats, json, ran, run, until};

#[tokio::test]
async fn table_checks_find_bloat_dead_tuples_unanalyzed_tables_and_seq_scans() {
    let db = pgtest::TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE churn (id bigint, body text) WITH (autovacuum_enabled = false);
         INSERT INTO churn SELECT g, repeat('x', 100) FROM generate_series(1, 50000) g;
         DELETE FROM churn WHERE id % 10 <> 0;
         ANALYZE churn;
         CREATE TABLE fresh (id int) WITH (autovacuum_enabled = false);
         INSERT INTO fresh SELECT generate_series(1, 500);
         CREATE TABLE scanned (id int PRIMARY KEY, v int) WITH (autovacuum_enabled = false);
         INSERT INTO scanned SELECT g, g FROM generate_series(1, 2000) g;
         ANALYZE scanned;",
    )
    .await
    .unwrap();
    for _ in 0..3 {
        c.batch_execute("SELECT count(*) FROM scanned WHERE v = 7")
            .await
            .unwrap();
    }
    flush_stats(&c).await;

    let pg = connect(&db).await;
    let checks = [
        Check::TableBloat,
        Check::DeadTuples,
        Check::VacuumAnalyze,
        Check::SeqScans,
    ];
    let report = until(&pg, &checks, &eager(), |r| {
        let tables = |check| json(&ran(r, check).details).to_string();
        tables(Check::DeadTuples).contains("churn")
            && tables(Check::VacuumAnalyze).contains("fresh")
            && tables(Check::SeqScans).contains("scanned")
    })
    .await;

    let bloat = ran(&report, Check::TableBloat);
    let Details::Bloat(rows) = &bloat.details else {
        panic!()
    };
    let churn = rows
        .iter()
        .find(|b| b.table == "churn")
        .unwrap_or_else(|| panic!("churn is bloated: {bloat:?}"));
    assert!(churn.ratio > 0.8, "{churn:?}");
    assert_eq!(bloat.verdict, Verdict::Problem);

    let dead = ran(&report, Check::DeadTuples);
    let Details::DeadTuples(rows) = &dead.details else {
        panic!()
    };
    let churn = rows
        .iter()
        .find(|d| d.table == "churn")
        .expect("churn has dead tuples");
    assert!(
        churn.dead >= 40_000 && churn.ratio > 0.5,
        "45,000 rows deleted: {churn:?}"
    );
    assert!(churn.autovacuum_disabled);
    assert_eq!(dead.verdict, Verdict::Problem, "{dead:?}");
    assert!(
        dead.notes
            .iter()
            .any(|n| n.contains("autovacuum is switched off for public.churn"))
    );

    let va = ran(&report, Check::VacuumAnalyze);
    let Details::VacuumAnalyze(rows) = &va.details else {
        panic!()
    };
    let fresh = rows
        .iter()
        .find(|v| v.table == "fresh")
        .expect("fresh was never analyzed");
    assert!(fresh.never_analyzed);
    assert!(
        !rows.iter().any(|v| v.table == "churn"),
        "churn was analyzed just now: {rows:?}"
    );
    assert_eq!(va.verdict, Verdict::Warning);
    assert!(
        va.summary.contains("never analyzed: public.fresh"),
        "{}",
        va.summary
    );

    let seq = ran(&report, Check::SeqScans);
    let Details::SeqScans(rows) = &seq.details else {
        panic!()
    };
    let scanned = rows
        .iter()
        .find(|s| s.table == "scanned")
        .expect("scanned is read by seq scans");
    assert!(scanned.seq_scans >= 3, "{scanned:?}");
    assert_eq!(seq.verdict, Verdict::Warning);

    // With the default thresholds these small tables are not worth a warning.
    let report = run(
        &pg,
        &[Check::TableBloat, Check::SeqScans],
        &Default::default(),
        None,
    )
    .await;
    assert_eq!(ran(&report, Check::TableBloat).verdict, Verdict::Ok);
    assert_eq!(ran(&report, Check::SeqScans).verdict, Verdict::Ok);
}

#[tokio::test]
async fn sizes_list_databases_schemas_and_the_largest_tables_exactly() {
    let db = pgtest::TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE SCHEMA shop;
         CREATE TABLE shop.big (id int PRIMARY KEY, note text);
         INSERT INTO shop.big SELECT g, repeat('n', 200) FROM generate_series(1, 20000) g;
         CREATE TABLE shop.small (id int);
         CREATE TABLE public.loaded (id int);
         INSERT INTO public.loaded SELECT generate_series(1, 100000);",
    )
    .await
    .unwrap();
    c.batch_execute("VACUUM ANALYZE shop.big").await.unwrap();
    flush_stats(&c).await;
    let pg = connect(&db).await;
    let checks = [Check::DatabaseSizes, Check::SchemaSizes, Check::TableSizes];
    // `loaded` has never been vacuumed: its page count is 0 until then, but its rows are counted.
    let report = until(&pg, &checks, &eager(), |r| {
        json(&ran(r, Check::TableSizes).details)
            .to_string()
            .contains("loaded")
    })
    .await;

    let dbs = ran(&report, Check::DatabaseSizes);
    let Details::DatabaseSizes(rows) = &dbs.details else {
        panic!()
    };
    let this = rows.iter().find(|d| d.current).expect("this database");
    assert_eq!(this.name, db.name());
    assert!(this.bytes.unwrap() > 4 << 20);

    let schemas = ran(&report, Check::SchemaSizes);
    let Details::SchemaSizes(rows) = &schemas.details else {
        panic!()
    };
    let shop = rows
        .iter()
        .find(|s| s.schema == "shop")
        .expect("schema shop");
    assert_eq!(shop.tables, 2);
    assert!(shop.bytes > 4 << 20, "{shop:?}");

    let tables = ran(&report, Check::TableSizes);
    let Details::TableSizes(t) = &tables.details else {
        panic!()
    };
    let big = t
        .largest
        .iter()
        .find(|t| t.table == "big")
        .expect("shop.big");
    let exact: i64 = c
        .query_one("SELECT pg_total_relation_size('shop.big')", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(big.total_bytes, exact, "listed tables are measured exactly");
    assert!(big.index_bytes > 0 && big.toast_bytes >= 0 && big.table_bytes > big.index_bytes);
    assert_eq!(big.rows_estimate, Some(20_000));
    let loaded = t.largest.iter().find(|t| t.table == "loaded").unwrap();
    assert!(loaded.total_bytes > 3 << 20, "{loaded:?}");
    assert!(tables.summary.contains("table(s)"), "{}", tables.summary);
    assert_eq!(tables.verdict, Verdict::Ok);
}
