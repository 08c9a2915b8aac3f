//! unused, duplicate and redundant, invalid indexes; index bloat.

use pgstrata_ops::inspect::{Check, Details, Verdict};

use crate::support::{connect, eager, flush_stats, ran, run, until};

#[tokio::test]
async fn index_checks_find_unused_duplicate_redundant_and_invalid_indexes() {
    let db = pgtest::TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer int NOT NULL, placed date NOT NULL, code text);
         INSERT INTO orders SELECT g, g % 100, date '2024-01-01' + g % 300, 'c' || (g % 50) FROM generate_series(1, 5000) g;
         CREATE INDEX orders_customer ON orders (customer);
         CREATE INDEX orders_customer_again ON orders (customer);
         CREATE INDEX orders_customer_placed ON orders (customer, placed);
         CREATE INDEX orders_placed ON orders (placed);
         CREATE UNIQUE INDEX orders_id_unique ON orders (id);
         ANALYZE orders;",
    )
    .await
    .unwrap();
    // A failed CREATE UNIQUE INDEX CONCURRENTLY (duplicate codes) leaves an invalid index behind.
    let failed = c
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY orders_code_unique ON orders (code)")
        .await;
    assert!(failed.is_err(), "the unique index cannot be built");
    // Use one index so that it is not "unused".
    c.batch_execute(
        "SET enable_seqscan = off; SET enable_bitmapscan = off;
         SELECT count(*) FROM orders WHERE placed = date '2024-02-01';",
    )
    .await
    .unwrap();
    flush_stats(&c).await;

    let pg = connect(&db).await;
    let checks = [
        Check::UnusedIndexes,
        Check::DuplicateIndexes,
        Check::InvalidIndexes,
    ];
    let report = until(&pg, &checks, &eager(), |r| {
        let Details::UnusedIndexes(u) = &ran(r, Check::UnusedIndexes).details else {
            return false;
        };
        !u.indexes.iter().any(|i| i.index == "orders_placed")
    })
    .await;

    let unused = ran(&report, Check::UnusedIndexes);
    assert_eq!(unused.verdict, Verdict::Warning, "{unused:?}");
    let Details::UnusedIndexes(u) = &unused.details else {
        panic!("unexpected details {unused:?}")
    };
    let names: Vec<&str> = u.indexes.iter().map(|i| i.index.as_str()).collect();
    for expected in [
        "orders_customer",
        "orders_customer_again",
        "orders_customer_placed",
    ] {
        assert!(names.contains(&expected), "{expected} is unused: {names:?}");
    }
    assert!(
        !names.contains(&"orders_placed"),
        "orders_placed was scanned: {names:?}"
    );
    assert!(
        !names.contains(&"orders_pkey"),
        "primary keys are never listed: {names:?}"
    );
    assert!(
        !names.contains(&"orders_id_unique"),
        "unique indexes are never listed: {names:?}"
    );
    assert!(
        !names.contains(&"orders_code_unique"),
        "invalid indexes are another check: {names:?}"
    );
    let customer = u
        .indexes
        .iter()
        .find(|i| i.index == "orders_customer")
        .unwrap();
    assert!(customer.bytes >= 8192, "the exact size: {customer:?}");
    assert!(
        customer
            .definition
            .starts_with("CREATE INDEX orders_customer ON")
    );

    let dups = ran(&report, Check::DuplicateIndexes);
    assert_eq!(dups.verdict, Verdict::Warning);
    let Details::DuplicateIndexes(d) = &dups.details else {
        panic!("unexpected details {dups:?}")
    };
    let pairs: Vec<(&str, &str, bool)> = d
        .iter()
        .map(|d| (d.index.as_str(), d.covered_by.as_str(), d.exact))
        .collect();
    // The newer of two equal indexes goes; a plain index equal to a unique one goes; the shorter prefix goes.
    assert!(
        pairs.contains(&("orders_customer_again", "orders_customer", true)),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("orders_customer", "orders_customer_placed", false)),
        "{pairs:?}"
    );
    assert!(
        !pairs
            .iter()
            .any(|p| p.0 == "orders_pkey" || p.0 == "orders_id_unique" && p.1 != "orders_pkey"),
        "{pairs:?}"
    );
    assert!(
        pairs.contains(&("orders_id_unique", "orders_pkey", true)),
        "a unique index equal to the primary key's is a duplicate: {pairs:?}"
    );
    assert!(!pairs.iter().any(|p| p.0 == "orders_placed"), "{pairs:?}");

    let invalid = ran(&report, Check::InvalidIndexes);
    assert_eq!(invalid.verdict, Verdict::Problem, "{invalid:?}");
    assert!(
        invalid.summary.contains("public.orders_code_unique"),
        "{}",
        invalid.summary
    );
    let Details::InvalidIndexes(rows) = &invalid.details else {
        panic!()
    };
    assert_eq!(rows.len(), 1);
    assert!(!rows[0].being_built);
}

#[tokio::test]
async fn a_database_without_index_trouble_is_ok() {
    let db = pgtest::TestDb::new().await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text UNIQUE)")
        .await
        .unwrap();
    let pg = connect(&db).await;
    let report = run(
        &pg,
        &[
            Check::UnusedIndexes,
            Check::DuplicateIndexes,
            Check::InvalidIndexes,
            Check::IndexBloat,
        ],
        &eager(),
        None,
    )
    .await;
    for check in [
        Check::UnusedIndexes,
        Check::DuplicateIndexes,
        Check::InvalidIndexes,
        Check::IndexBloat,
    ] {
        assert_eq!(
            ran(&report, check).verdict,
            Verdict::Ok,
            "{check}: {:?}",
            ran(&report, check)
        );
    }
}

#[tokio::test]
async fn index_bloat_is_estimated_for_a_btree_that_lost_most_of_its_rows() {
    let db = pgtest::TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE events (id bigint, kind text) WITH (autovacuum_enabled = false);
         INSERT INTO events SELECT g, 'kind-' || (g % 7) FROM generate_series(1, 60000) g;
         CREATE INDEX events_id ON events (id);
         DELETE FROM events WHERE id % 10 <> 0;
         ANALYZE events;",
    )
    .await
    .unwrap();
    let pg = connect(&db).await;
    let report = run(&pg, &[Check::IndexBloat], &eager(), None).await;
    let f = ran(&report, Check::IndexBloat);
    let Details::Bloat(rows) = &f.details else {
        panic!()
    };
    let row = rows
        .iter()
        .find(|b| b.index.as_deref() == Some("events_id"))
        .unwrap_or_else(|| panic!("events_id is bloated: {f:?}"));
    assert!(row.ratio > 0.8, "90% of the entries are dead: {row:?}");
    assert_eq!(f.verdict, Verdict::Problem, "{f:?}");

    // Above the minimum size, it is left out.
    let mut settings = eager();
    settings.bloat_min_size = pgstrata_ops::inspect::SizeSetting(1 << 30);
    let report = run(&pg, &[Check::IndexBloat], &settings, None).await;
    assert_eq!(ran(&report, Check::IndexBloat).verdict, Verdict::Ok);
}
