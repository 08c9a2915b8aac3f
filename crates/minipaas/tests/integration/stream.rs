//! The stream client against a real database, including the concurrent no-skipped-events proof.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use minipaas::{Error, PublishOptions, Stream, StreamOptions};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::support;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Signup {
    user: i64,
}

#[tokio::test]
async fn publish_and_read_typed_events() {
    let (_db, mut client) = support::fresh_db().await;
    let stream = Stream::<Signup>::new("activity_log").unwrap();
    let first = stream.publish(&client, &Signup { user: 12 }).await.unwrap();
    let second = stream.publish(&client, &Signup { user: 13 }).await.unwrap();
    assert!(second > first, "offsets strictly increase");

    let tx = client.transaction().await.unwrap();
    stream.publish(&tx, &Signup { user: 99 }).await.unwrap();
    tx.rollback().await.unwrap();

    let batch = stream
        .publish_batch(&client, &[Signup { user: 14 }, Signup { user: 15 }])
        .await
        .unwrap();
    assert!(batch[0] > second && batch[1] > batch[0]);

    let events = stream.read(&client, first - 1, 100).await.unwrap();
    let users: Vec<i64> = events.iter().map(|e| e.payload.user).collect();
    assert_eq!(
        users,
        vec![12, 13, 14, 15],
        "in order; the rolled-back event never appears"
    );
    let after = stream.read(&client, second, 100).await.unwrap();
    assert_eq!(after.len(), 2, "read after an offset");
    let raw = Stream::<serde_json::Value>::new("activity_log").unwrap();
    raw.publish(&client, &serde_json::json!({"user": "x"}))
        .await
        .unwrap();
    let err = stream.read(&client, batch[1], 10).await.unwrap_err();
    assert!(matches!(err, Error::Decode { .. }), "{err}");
}

#[tokio::test]
async fn keyed_events_have_versions_and_optimistic_concurrency() {
    let (_db, client) = support::fresh_db().await;
    let stream = Stream::<serde_json::Value>::new("accounts").unwrap();
    stream
        .create(
            &client,
            &StreamOptions {
                partitions: Some(4),
                ..StreamOptions::default()
            },
        )
        .await
        .unwrap();
    let keyed = |version: Option<i64>| PublishOptions {
        key: Some("acct-1".into()),
        expected_version: version,
        ..PublishOptions::default()
    };
    stream
        .publish_with(
            &client,
            &serde_json::json!({"opened": true}),
            &keyed(Some(0)),
        )
        .await
        .unwrap();
    stream
        .publish_with(&client, &serde_json::json!({"deposit": 5}), &keyed(Some(1)))
        .await
        .unwrap();
    let err = stream
        .publish_with(&client, &serde_json::json!({"deposit": 7}), &keyed(Some(1)))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::WrongExpectedVersion(_)), "{err}");
    let history = stream.read_key(&client, "acct-1", 0, 10).await.unwrap();
    assert_eq!(
        history.iter().map(|e| e.key_version).collect::<Vec<_>>(),
        vec![Some(1), Some(2)]
    );
    assert!(
        history.iter().all(|e| e.partition == history[0].partition),
        "one key, one partition"
    );
    let dedup = PublishOptions {
        dedup_id: Some("evt-9".into()),
        ..PublishOptions::default()
    };
    let a = stream
        .publish_with(&client, &serde_json::json!(1), &dedup)
        .await
        .unwrap();
    let b = stream
        .publish_with(&client, &serde_json::json!(2), &dedup)
        .await
        .unwrap();
    assert_eq!(a, b, "a dedup id returns the earlier offset");
}

/// A keyed publish from a transaction whose id is older than the key's latest writer must not slip in front
/// of that writer's event: it fails with a retryable error.
#[tokio::test]
async fn an_older_transaction_cannot_reorder_a_key() {
    let db = pgtest::TestDb::new().await;
    let mut old = db.client().await;
    support::install(&old).await;
    let young = db.client().await;
    let stream = Stream::<serde_json::Value>::new("ledger").unwrap();
    stream
        .create(&young, &StreamOptions::default())
        .await
        .unwrap();
    let keyed = PublishOptions {
        key: Some("k".into()),
        ..PublishOptions::default()
    };
    let old_tx = old.transaction().await.unwrap();
    old_tx
        .query_one("SELECT pg_current_xact_id()", &[])
        .await
        .unwrap();
    stream
        .publish_with(&young, &serde_json::json!("young"), &keyed)
        .await
        .unwrap();
    let err = stream
        .publish_with(&old_tx, &serde_json::json!("old"), &keyed)
        .await
        .unwrap_err();
    assert!(err.is_retryable(), "{err}");
    old_tx.rollback().await.unwrap();
    stream
        .publish_with(&old, &serde_json::json!("retried"), &keyed)
        .await
        .unwrap();
    let versions: Vec<_> = stream
        .read_key(&old, "k", 0, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.key_version, e.payload))
        .collect();
    assert_eq!(
        versions,
        vec![
            (Some(1), serde_json::json!("young")),
            (Some(2), serde_json::json!("retried"))
        ]
    );
}

/// The mechanism in miniature: an event that commits late (from an older transaction) is held back until
/// that transaction ends, so a reader that already moved on cannot skip it.
#[tokio::test]
async fn a_late_commit_is_not_skipped() {
    let db = pgtest::TestDb::new().await;
    let mut slow = db.client().await;
    support::install(&slow).await;
    let fast = db.client().await;
    let reader = db.client().await;
    let stream = Stream::<serde_json::Value>::new("log").unwrap();
    stream
        .create(&fast, &StreamOptions::default())
        .await
        .unwrap();

    let slow_tx = slow.transaction().await.unwrap();
    let slow_offset = stream
        .publish(&slow_tx, &serde_json::json!("slow"))
        .await
        .unwrap();
    let fast_offset = stream
        .publish(&fast, &serde_json::json!("fast"))
        .await
        .unwrap();
    assert!(
        fast_offset > slow_offset,
        "offsets follow transaction ids, not commit order"
    );
    assert!(
        stream.read(&reader, 0, 100).await.unwrap().is_empty(),
        "the committed fast event waits behind the running slow transaction"
    );
    slow_tx.commit().await.unwrap();
    let offsets: Vec<i64> = stream
        .read(&reader, 0, 100)
        .await
        .unwrap()
        .iter()
        .map(|e| e.offset)
        .collect();
    assert_eq!(
        offsets,
        vec![slow_offset, fast_offset],
        "both, in offset order"
    );
}

/// Transaction ids are cluster-wide, but a transaction open in another database cannot write this stream: it
/// must not hold readers back.
#[tokio::test]
async fn transactions_in_other_databases_do_not_hold_readers_back() {
    let here = pgtest::TestDb::new().await;
    let elsewhere = pgtest::TestDb::new().await;
    let client = here.client().await;
    support::install(&client).await;
    let mut other = elsewhere.client().await;
    let open = other.transaction().await.unwrap();
    open.query_one("SELECT pg_current_xact_id()", &[])
        .await
        .unwrap();
    let stream = Stream::<serde_json::Value>::new("log").unwrap();
    let offset = stream
        .publish(&client, &serde_json::json!("x"))
        .await
        .unwrap();
    let read = stream.read(&client, 0, 10).await.unwrap();
    assert_eq!(
        read.iter().map(|e| e.offset).collect::<Vec<_>>(),
        vec![offset]
    );
    open.rollback().await.unwrap();
}

#[tokio::test]
async fn consumer_groups_commit_with_the_work_and_split_partitions() {
    let db = pgtest::TestDb::new().await;
    let mut a = db.client().await;
    support::install(&a).await;
    let mut b = db.client().await;
    a.batch_execute("CREATE TABLE seen (event_offset bigint PRIMARY KEY)")
        .await
        .unwrap();
    let stream = Stream::<Signup>::new("signups").unwrap();
    stream
        .publish_batch(&a, &(0..10).map(|user| Signup { user }).collect::<Vec<_>>())
        .await
        .unwrap();
    let member_a = stream
        .consumer("welcome")
        .unwrap()
        .with_batch_size(4)
        .unwrap();
    let member_b = member_a.clone();

    // Member A consumes and records in one transaction; the commit is part of it.
    let tx_a = a.transaction().await.unwrap();
    let batch = member_a.consume(&tx_a).await.unwrap();
    assert_eq!(batch.len(), 4);
    // While A's transaction holds the partition, member B gets nothing: no event is handled twice.
    let tx_b = b.transaction().await.unwrap();
    assert!(member_b.consume(&tx_b).await.unwrap().is_empty());
    tx_b.rollback().await.unwrap();
    for event in &batch {
        tx_a.execute("INSERT INTO seen VALUES ($1)", &[&event.offset])
            .await
            .unwrap();
    }
    member_a.commit(&tx_a, &batch).await.unwrap();
    tx_a.commit().await.unwrap();

    // A crash mid-batch: the work and the commit roll back together, so the events come again.
    let tx_b = b.transaction().await.unwrap();
    let batch = member_b.consume(&tx_b).await.unwrap();
    assert_eq!(batch[0].payload.user, 4, "after A's commit");
    member_b.commit(&tx_b, &batch).await.unwrap();
    drop(tx_b);
    let lag = member_b.lag(&b).await.unwrap();
    assert_eq!(lag[0].pending, 6, "{lag:?}");

    let mut all = Vec::new();
    loop {
        let tx = b.transaction().await.unwrap();
        let batch = member_b.consume(&tx).await.unwrap();
        if batch.is_empty() {
            break;
        }
        for event in &batch {
            tx.execute("INSERT INTO seen VALUES ($1)", &[&event.offset])
                .await
                .unwrap();
        }
        member_b.commit(&tx, &batch).await.unwrap();
        tx.commit().await.unwrap();
        all.extend(batch);
    }
    assert_eq!(all.len(), 6);
    let seen: i64 = a
        .query_one("SELECT count(*) FROM seen", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seen, 10, "every event's effect exactly once");
    assert_eq!(member_b.lag(&b).await.unwrap()[0].pending, 0);

    member_b.seek(&b, 0, None).await.unwrap();
    assert_eq!(member_b.consume(&b).await.unwrap().len(), 4, "seek replays");
}

/// 8 concurrent publishers with random transaction lengths (some roll back); a consumer reading concurrently
/// in offset order sees every committed event exactly once, in order, and nothing else.
#[tokio::test]
async fn concurrent_publishers_never_make_a_reader_skip() {
    const PUBLISHERS: usize = 8;
    const TRANSACTIONS: usize = 40;
    let db = pgtest::TestDb::new().await;
    let setup = db.client().await;
    support::install(&setup).await;
    let stream = Stream::<serde_json::Value>::new("busy").unwrap();
    stream
        .create(&setup, &StreamOptions::default())
        .await
        .unwrap();

    let committed = Arc::new(Mutex::new(BTreeSet::new()));
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let mut client = db.client().await;
        let stream = stream.clone();
        let committed = committed.clone();
        publishers.push(tokio::spawn(async move {
            for t in 0..TRANSACTIONS {
                let (events, pause_ms, commit) = {
                    let mut rng = rand::rng();
                    (
                        rng.random_range(1..=4),
                        rng.random_range(0..15u64),
                        rng.random_bool(0.85),
                    )
                };
                let tx = client.transaction().await.unwrap();
                let mut offsets = Vec::new();
                for e in 0..events {
                    let payload = serde_json::json!({"publisher": p, "tx": t, "event": e});
                    offsets.push(stream.publish(&tx, &payload).await.unwrap());
                    tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                }
                if commit {
                    tx.commit().await.unwrap();
                    committed.lock().unwrap().extend(offsets);
                } else {
                    tx.rollback().await.unwrap();
                }
            }
        }));
    }

    let reader = db.client().await;
    let mut seen = Vec::new();
    let mut last = 0;
    let mut publishing = true;
    while publishing || !stream.read(&reader, last, 1).await.unwrap().is_empty() {
        publishing = publishers.iter().any(|p| !p.is_finished());
        for event in stream.read(&reader, last, 50).await.unwrap() {
            assert!(
                event.offset > last,
                "offsets only grow: {} after {last}",
                event.offset
            );
            last = event.offset;
            seen.push(event.offset);
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for p in publishers {
        p.await.unwrap();
    }
    let committed = committed.lock().unwrap().clone();
    let seen_set: BTreeSet<i64> = seen.iter().copied().collect();
    assert_eq!(seen.len(), seen_set.len(), "no event seen twice");
    let missed: Vec<_> = committed.difference(&seen_set).collect();
    let phantom: Vec<_> = seen_set.difference(&committed).collect();
    assert!(
        missed.is_empty(),
        "committed events skipped by the reader: {missed:?}"
    );
    assert!(
        phantom.is_empty(),
        "events that never committed were read: {phantom:?}"
    );
    assert!(
        committed.len() > 300,
        "a meaningful run: {} events",
        committed.len()
    );
}
