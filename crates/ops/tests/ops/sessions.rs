//! Health: long transactions and lock chains, wraparound, connections, replication slots, checkpoints.

use std::time::Duration;

use pgstrata_ops::inspect::{Check, Details, DurationSetting, Verdict};

use crate::support::{connect, eager, ran, run, until};

#[tokio::test]
async fn a_long_idle_transaction_and_the_session_it_blocks_are_found() {
    let db = pgtest::TestDb::new().await;
    let setup = db.client().await;
    setup
        .batch_execute("CREATE TABLE accounts (id int PRIMARY KEY, balance int); INSERT INTO accounts VALUES (1, 0)")
        .await
        .unwrap();

    // Session A updates a row and sits idle in its transaction; session B wants the same row.
    let a = db.client().await;
    let a_pid: i32 = a
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    a.batch_execute("BEGIN; UPDATE accounts SET balance = balance + 1 WHERE id = 1")
        .await
        .unwrap();
    let b = db.client().await;
    let b_pid: i32 = b
        .query_one("SELECT pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0);
    let blocked = tokio::spawn(async move {
        b.batch_execute("UPDATE accounts SET balance = balance - 1 WHERE id = 1")
            .await
    });
    // Wait until B is really waiting for the lock.
    for _ in 0..100 {
        let waiting: bool = setup
            .query_one(
                "SELECT coalesce((SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1), false)",
                &[&b_pid],
            )
            .await
            .unwrap()
            .get(0);
        if waiting {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(400)).await;

    let mut settings = eager();
    settings.long_transaction_warning = DurationSetting(200);
    settings.idle_in_transaction_warning = DurationSetting(200);
    settings.lock_wait_warning = DurationSetting(200);
    let pg = connect(&db).await;
    let report = run(
        &pg,
        &[Check::LongTransactions, Check::BlockingLocks],
        &settings,
        None,
    )
    .await;

    let long = ran(&report, Check::LongTransactions);
    assert!(long.verdict >= Verdict::Warning, "{long:?}");
    let Details::Transactions(rows) = &long.details else {
        panic!()
    };
    let row_a = rows
        .iter()
        .find(|t| t.pid == Some(a_pid))
        .expect("session A is listed");
    assert_eq!(row_a.state.as_deref(), Some("idle in transaction"));
    assert!(row_a.transaction_age_s.unwrap() >= 0.2, "{row_a:?}");
    assert!(row_a.query.as_deref().unwrap().contains("UPDATE accounts"));

    let locks = ran(&report, Check::BlockingLocks);
    assert!(locks.verdict >= Verdict::Warning, "{locks:?}");
    let Details::BlockingLocks(rows) = &locks.details else {
        panic!()
    };
    let waiter = rows
        .iter()
        .find(|l| l.pid == b_pid)
        .expect("session B waits");
    assert_eq!(waiter.blocked_by, vec![a_pid]);
    assert!(waiter.waiting_s.unwrap() >= 0.2, "{waiter:?}");
    assert!(waiter.query.as_deref().unwrap().contains("balance - 1"));
    assert!(
        waiter.waiting_for.as_deref().unwrap().contains("Lock"),
        "{waiter:?}"
    );
    let holder = rows
        .iter()
        .find(|l| l.pid == a_pid)
        .expect("session A holds the lock");
    assert!(holder.blocked_by.is_empty());
    assert!(
        locks.summary.contains(&format!("pid {a_pid}")),
        "{}",
        locks.summary
    );

    a.batch_execute("ROLLBACK").await.unwrap();
    blocked.await.unwrap().unwrap();
    let report = run(&pg, &[Check::BlockingLocks], &settings, None).await;
    let Details::BlockingLocks(rows) = &ran(&report, Check::BlockingLocks).details else {
        panic!()
    };
    assert!(
        !rows.iter().any(|l| l.pid == a_pid || l.pid == b_pid),
        "released: {rows:?}"
    );
}

#[tokio::test]
async fn server_checks_report_wraparound_connections_slots_and_checkpoints() {
    let db = pgtest::TestDb::new().await;
    let c = db.client().await;
    let slot = format!("s_{}", db.name());
    c.batch_execute(&format!(
        "SELECT pg_create_physical_replication_slot('{slot}', true); SELECT txid_current();"
    ))
    .await
    .unwrap();
    let others = [db.client().await, db.client().await, db.client().await];
    let pg = connect(&db).await;
    let checks = [
        Check::Wraparound,
        Check::Connections,
        Check::ReplicationSlots,
        Check::Checkpoints,
    ];
    let before = run(&pg, &checks, &eager(), None).await;
    let Details::Checkpoints(cp_before) = &ran(&before, Check::Checkpoints).details else {
        panic!()
    };
    for _ in 0..3 {
        c.batch_execute("CHECKPOINT").await.unwrap();
    }

    let mut settings = eager();
    settings.xid_age_warning = 1;
    settings.requested_checkpoints_warning = 0.0;
    // Before PostgreSQL 15 the checkpointer's counters reach the statistics asynchronously.
    let report = until(&pg, &checks, &settings, |r| {
        matches!(&ran(r, Check::Checkpoints).details,
                 Details::Checkpoints(c) if c.requested >= cp_before.requested + 3)
    })
    .await;

    let wrap = ran(&report, Check::Wraparound);
    assert_eq!(
        wrap.verdict,
        Verdict::Warning,
        "any age ≥ 1 warns with these settings: {wrap:?}"
    );
    let Details::Wraparound(w) = &wrap.details else {
        panic!()
    };
    assert!(
        w.databases
            .iter()
            .any(|d| d.name == db.name() && d.xid_age > 0),
        "{w:?}"
    );
    assert!(!w.tables.is_empty() && w.autovacuum_freeze_max_age > 0);
    let report_default = run(&pg, &[Check::Wraparound], &Default::default(), None).await;
    assert_eq!(ran(&report_default, Check::Wraparound).verdict, Verdict::Ok);

    let conns = ran(&report, Check::Connections);
    let Details::Connections(cn) = &conns.details else {
        panic!()
    };
    assert!(cn.used >= 5, "this test alone holds five: {cn:?}");
    let ours = cn
        .by_database
        .iter()
        .find(|(d, _)| d == db.name())
        .map(|(_, n)| *n);
    assert!(ours >= Some(5), "{cn:?}");
    assert!(cn.max_connections > cn.reserved);

    let slots = ran(&report, Check::ReplicationSlots);
    let Details::ReplicationSlots(rows) = &slots.details else {
        panic!()
    };
    let s = rows.iter().find(|s| s.name == slot).expect("our slot");
    assert!(
        !s.active && s.kind == "physical" && s.retained_bytes.unwrap() >= 0,
        "{s:?}"
    );
    assert!(
        slots.verdict >= Verdict::Warning,
        "an inactive slot retains WAL: {slots:?}"
    );
    assert!(
        slots.summary.contains(&format!("{slot} is inactive")),
        "{}",
        slots.summary
    );

    let cp = ran(&report, Check::Checkpoints);
    let Details::Checkpoints(after) = &cp.details else {
        panic!()
    };
    assert!(
        after.requested >= cp_before.requested + 3,
        "{cp_before:?} → {after:?}"
    );
    assert_eq!(cp.verdict, Verdict::Warning);

    c.batch_execute(&format!("SELECT pg_drop_replication_slot('{slot}')"))
        .await
        .unwrap();
    drop(others);
}
