//! The queue client against a real database.

use std::time::Duration;

use minipaas::{EnqueueOptions, Error, NackOutcome, Queue, QueueOptions, Retry};
use serde::{Deserialize, Serialize};

use crate::support;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Task {
    user: i64,
    action: String,
}

fn task(user: i64) -> Task {
    Task {
        user,
        action: "process-user".into(),
    }
}

#[tokio::test]
async fn enqueue_commits_and_rolls_back_with_the_callers_transaction() {
    let (_db, mut client) = support::fresh_db().await;
    let queue = Queue::<Task>::new("tx").unwrap();

    let tx = client.transaction().await.unwrap();
    queue.enqueue(&tx, &task(1)).await.unwrap();
    tx.rollback().await.unwrap();
    assert!(
        queue.dequeue(&client, 10, None).await.unwrap().is_empty(),
        "rolled back with the caller"
    );

    let tx = client.transaction().await.unwrap();
    let id = queue.enqueue(&tx, &task(2)).await.unwrap();
    tx.commit().await.unwrap();
    let got = queue.dequeue(&client, 10, None).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id);
    assert_eq!(got[0].payload, task(2), "typed payload round trip");
    assert_eq!(got[0].attempt, 1);
    assert!(queue.ack(&client, &got[0]).await.unwrap());
    assert!(
        !queue.ack(&client, &got[0]).await.unwrap(),
        "acked once only"
    );
}

#[tokio::test]
async fn leases_fence_stale_workers() {
    let (_db, client) = support::fresh_db().await;
    let queue = Queue::<Task>::new("fence").unwrap();
    queue.enqueue(&client, &task(1)).await.unwrap();
    let first = queue.dequeue(&client, 1, None).await.unwrap().remove(0);
    assert!(
        queue.dequeue(&client, 1, None).await.unwrap().is_empty(),
        "not delivered again while the lease runs"
    );
    support::time_passes_for(&client, first.id).await;
    let second = queue
        .dequeue(&client, 1, None)
        .await
        .unwrap()
        .pop()
        .expect("the expired lease comes back");
    assert_eq!(second.id, first.id, "an expired lease is redelivered");
    assert_eq!(second.attempt, 2);
    assert!(
        !queue.ack(&client, &first).await.unwrap(),
        "the stale worker cannot ack"
    );
    assert_eq!(
        queue.extend(&client, &first, None).await.unwrap(),
        None,
        "nor extend"
    );
    assert_eq!(
        queue
            .nack(&client, &first, "late", Retry::Backoff)
            .await
            .unwrap(),
        None,
        "nor nack"
    );
    let until = queue
        .extend(&client, &second, Some(Duration::from_secs(120)))
        .await
        .unwrap()
        .expect("the current lease extends");
    assert!(until > chrono::Utc::now() + chrono::Duration::seconds(100));
    assert!(queue.ack(&client, &second).await.unwrap());
}

#[tokio::test]
async fn nack_retries_then_dead_letters_and_redrive_brings_it_back() {
    let (_db, client) = support::fresh_db().await;
    let queue = Queue::<Task>::new("retry").unwrap();
    let options = QueueOptions {
        max_attempts: Some(2),
        backoff_base: Some(Duration::from_millis(100)),
        backoff_max: Some(Duration::from_millis(100)),
        backoff_jitter: Some(0.0),
        ..QueueOptions::default()
    };
    assert!(queue.create(&client, &options).await.unwrap());
    let id = queue.enqueue(&client, &task(7)).await.unwrap();

    let d = queue.dequeue(&client, 1, None).await.unwrap().remove(0);
    let outcome = queue
        .nack(&client, &d, "boom", Retry::Backoff)
        .await
        .unwrap();
    assert!(
        matches!(outcome, Some(NackOutcome::Retry { .. })),
        "{outcome:?}"
    );
    assert!(
        queue.dequeue(&client, 1, None).await.unwrap().is_empty(),
        "backing off"
    );
    support::time_passes_for(&client, id).await;
    let d = queue.dequeue(&client, 1, None).await.unwrap().remove(0);
    assert_eq!(d.attempt, 2);
    assert_eq!(
        queue
            .nack(&client, &d, "boom again", Retry::Backoff)
            .await
            .unwrap(),
        Some(NackOutcome::Dead)
    );

    let stats = queue.stats(&client).await.unwrap();
    assert_eq!((stats.dead, stats.ready, stats.in_flight), (1, 0, 0));
    let dead = queue.dead_letters(&client, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, id);
    assert_eq!(dead[0].errors[1]["error"], "boom again", "error history");

    assert_eq!(queue.redrive(&client, None).await.unwrap(), 1);
    let d = queue.dequeue(&client, 1, None).await.unwrap().remove(0);
    assert_eq!((d.id, d.attempt), (id, 1), "redriven with a fresh budget");
    assert_eq!(
        queue
            .nack(&client, &d, "never", Retry::Never)
            .await
            .unwrap(),
        Some(NackOutcome::Dead)
    );
}

#[tokio::test]
async fn a_payload_that_does_not_decode_is_dead_lettered() {
    let (_db, client) = support::fresh_db().await;
    let raw = Queue::<serde_json::Value>::new("typed").unwrap();
    raw.enqueue(&client, &serde_json::json!({"user": "not a number"}))
        .await
        .unwrap();
    let good = raw
        .enqueue(&client, &serde_json::json!({"user": 5, "action": "x"}))
        .await
        .unwrap();

    let typed = Queue::<Task>::new("typed").unwrap();
    let got = typed.dequeue(&client, 10, None).await.unwrap();
    assert_eq!(got.len(), 1, "only the message that decodes is handed out");
    assert_eq!(got[0].id, good);
    let dead = typed.dead_letters(&client, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert!(
        dead[0].errors[0]["error"]
            .as_str()
            .unwrap()
            .contains("does not decode"),
        "{:?}",
        dead[0].errors
    );
}

#[tokio::test]
async fn batches_delays_priorities_release_and_purge() {
    let (_db, client) = support::fresh_db().await;
    let queue = Queue::<Task>::new("batch").unwrap();
    let ids = queue
        .enqueue_batch(&client, &(0..5).map(task).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(ids.len(), 5);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids in input order");
    let urgent = queue
        .enqueue_with(
            &client,
            &task(99),
            &EnqueueOptions {
                priority: -1,
                ..EnqueueOptions::default()
            },
        )
        .await
        .unwrap();
    queue
        .enqueue_with(
            &client,
            &task(100),
            &EnqueueOptions {
                delay: Some(Duration::from_secs(3600)),
                ..EnqueueOptions::default()
            },
        )
        .await
        .unwrap();

    let got = queue.dequeue(&client, 10, None).await.unwrap();
    assert_eq!(got.len(), 6, "the delayed message waits");
    assert_eq!(got[0].id, urgent, "lower priority number first");
    assert!(queue.release(&client, &got[1]).await.unwrap());
    let acked = queue.ack_batch(&client, &got[2..]).await.unwrap();
    assert_eq!(acked.len(), 4);
    let again = queue.dequeue(&client, 10, None).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id, again[0].attempt),
        (got[1].id, 1),
        "released, attempt not counted"
    );

    let stats = queue.stats(&client).await.unwrap();
    assert_eq!((stats.scheduled, stats.in_flight), (1, 2));
    assert_eq!(queue.purge(&client).await.unwrap(), 3);
    assert!(queue.drop_queue(&client).await.unwrap());
    assert!(!queue.drop_queue(&client).await.unwrap());
}

#[tokio::test]
async fn dedup_and_ordering_keys() {
    let (_db, client) = support::fresh_db().await;
    let queue = Queue::<Task>::new("keys").unwrap();
    let keyed = |dedup: Option<&str>, lane: Option<&str>| EnqueueOptions {
        dedup_key: dedup.map(Into::into),
        ordering_key: lane.map(Into::into),
        ..EnqueueOptions::default()
    };
    let a = queue
        .enqueue_with(&client, &task(1), &keyed(Some("d"), None))
        .await
        .unwrap();
    assert_eq!(
        queue
            .enqueue_with(&client, &task(1), &keyed(Some("d"), None))
            .await
            .unwrap(),
        a
    );
    let l1 = queue
        .enqueue_with(&client, &task(2), &keyed(None, Some("acct")))
        .await
        .unwrap();
    let l2 = queue
        .enqueue_with(&client, &task(3), &keyed(None, Some("acct")))
        .await
        .unwrap();
    let got: Vec<i64> = queue
        .dequeue(&client, 10, None)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(got, vec![a, l1], "one message of the lane at a time");
    let d = queue.dequeue(&client, 10, None).await.unwrap();
    assert!(d.is_empty());
    client
        .execute("SELECT minipaas.queue_ack($1)", &[&l1])
        .await
        .unwrap();
    let next: Vec<i64> = queue
        .dequeue(&client, 10, None)
        .await
        .unwrap()
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(next, vec![l2], "the lane moves on after the ack");
}

#[tokio::test]
async fn ordering_keys_refuse_repeatable_read() {
    let (_db, mut client) = support::fresh_db().await;
    let queue = Queue::<Task>::new("rr").unwrap();
    let tx = client
        .build_transaction()
        .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
        .start()
        .await
        .unwrap();
    let err = queue
        .enqueue_with(
            &tx,
            &task(1),
            &EnqueueOptions {
                ordering_key: Some("k".into()),
                ..EnqueueOptions::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.sqlstate(),
        Some(&tokio_postgres::error::SqlState::FEATURE_NOT_SUPPORTED),
        "{err}"
    );
    assert!(err.to_string().contains("READ COMMITTED"), "{err}");
}

#[tokio::test]
async fn bad_names_fail_before_the_database() {
    assert!(matches!(
        Queue::<Task>::new("it's"),
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        Queue::<Task>::new(""),
        Err(Error::InvalidName { .. })
    ));
    let (_db, client) = support::fresh_db().await;
    let queue = Queue::<Task>::new("q").unwrap();
    assert!(matches!(
        queue.dequeue(&client, 0, None).await,
        Err(Error::InvalidArgument(_))
    ));
    let err = client
        .execute("SELECT minipaas.queue_enqueue('it''s', '{}')", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_PARAMETER_VALUE)
    );
}

/// A producer that commits after a dequeue already moved past its message's position: the session's rescan, due
/// within about a second, finds the message — nothing is stranded.
#[tokio::test]
async fn a_late_commit_is_not_stranded() {
    let db = pgtest::TestDb::new().await;
    let mut producer = db.client().await;
    support::install(&producer).await;
    let other = db.client().await;
    let worker = db.client().await;
    let queue = Queue::<Task>::new("late").unwrap();
    // Created up front: a queue created inside the slow transaction would make other producers wait for it.
    queue
        .create(&producer, &QueueOptions::default())
        .await
        .unwrap();

    let slow = producer.transaction().await.unwrap();
    let late = queue.enqueue(&slow, &task(1)).await.unwrap();
    let early = queue.enqueue(&other, &task(2)).await.unwrap();
    let got = queue.dequeue(&worker, 10, None).await.unwrap();
    assert_eq!(got.iter().map(|d| d.id).collect::<Vec<_>>(), vec![early]);
    slow.commit().await.unwrap();

    let due = support::rescan_in(&worker, "late")
        .await
        .expect("the worker's session remembers where it stopped");
    assert!(
        due > 0.0 && due <= 60.0,
        "a full scan schedules the next one a second later (or 100 times the scan's length), at most a minute, \
         not {due} s"
    );
    support::rescan_in_seconds(&worker, 30.0).await;
    assert!(
        queue.dequeue(&worker, 10, None).await.unwrap().is_empty(),
        "until the rescan, dequeues start after the position, past the late message"
    );
    support::rescan_due(&worker).await;
    let got = queue.dequeue(&worker, 10, None).await.unwrap();
    assert_eq!(
        got.iter().map(|d| d.id).collect::<Vec<_>>(),
        vec![late],
        "the rescan finds it"
    );
}

/// NOTIFY wake-ups: after a consumer found the queue empty, an enqueue notifies its channel.
#[tokio::test]
async fn enqueue_notifies_waiting_consumers() {
    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    support::install(&client).await;
    let queue = Queue::<Task>::new("wake").unwrap();
    queue
        .create(&client, &QueueOptions::default())
        .await
        .unwrap();
    let mut listener = minipaas::Listener::connect(&db.url()).await.unwrap();
    listener.listen(&queue.channel()).await.unwrap();
    assert!(
        queue.dequeue(&client, 1, None).await.unwrap().is_empty(),
        "the consumer goes idle"
    );

    queue.enqueue(&client, &task(1)).await.unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a wake-up arrives")
        .expect("the listener is alive");
    assert_eq!(n.channel(), "minipaas.queue.wake");
    assert_eq!(n.payload(), "", "due now");

    support::notify_window_ends(&client).await;
    queue
        .enqueue_with(
            &client,
            &task(2),
            &EnqueueOptions {
                delay: Some(Duration::from_secs(60)),
                ..EnqueueOptions::default()
            },
        )
        .await
        .unwrap();
    let n = tokio::time::timeout(Duration::from_secs(5), listener.recv())
        .await
        .expect("a wake-up arrives")
        .expect("the listener is alive");
    let due: f64 = n
        .payload()
        .parse()
        .expect("a delayed message announces its due time");
    let ahead = due - chrono::Utc::now().timestamp() as f64;
    assert!(
        (55.0..=61.0).contains(&ahead),
        "due in about a minute, got {ahead}"
    );

    // With a backlog, consumers get full batches and enqueues stop notifying.
    assert_eq!(
        queue.dequeue(&client, 1, None).await.unwrap().len(),
        1,
        "a full batch"
    );
    support::notify_window_ends(&client).await;
    queue.enqueue(&client, &task(5)).await.unwrap();
    // A wake-up claims the queue's throttle row before it notifies; an unclaimed row means no NOTIFY was sent.
    let claimed: bool = client
        .query_one(
            "SELECT w.notified_at > '-infinity' FROM minipaas.queue_wakeups w
               JOIN minipaas.queues q USING (queue_id) WHERE q.name = 'wake'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!claimed, "no NOTIFY while consumers are busy");
}

#[tokio::test]
async fn an_async_commit_lease_is_asynchronous_for_its_own_transaction_only() {
    let (_db, client) = support::fresh_db().await;
    let queue = Queue::<Task>::new("async_lease").unwrap();
    queue.enqueue(&client, &task(1)).await.unwrap();
    queue.enqueue(&client, &task(2)).await.unwrap();
    // A trigger sees the setting the lease's own transaction runs with. (The test cluster's default is off.)
    client
        .batch_execute(
            "SET synchronous_commit = on;
             CREATE TABLE seen (setting text);
             CREATE FUNCTION remember_commit_mode() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN INSERT INTO seen VALUES (current_setting('synchronous_commit')); RETURN NULL; END $$;
             CREATE TRIGGER remember AFTER UPDATE OR DELETE ON minipaas.messages
                FOR EACH ROW EXECUTE FUNCTION remember_commit_mode();",
        )
        .await
        .unwrap();
    let setting = || async {
        let row = client
            .query_one("SELECT string_agg(setting, ',') FROM seen", &[])
            .await
            .unwrap();
        client.batch_execute("TRUNCATE seen").await.unwrap();
        row.get::<_, Option<String>>(0)
    };

    let fast = queue.dequeue_async_commit(&client, 1, None).await.unwrap();
    assert_eq!(fast.len(), 1);
    assert_eq!(fast[0].payload, task(1));
    assert_eq!(
        setting().await.as_deref(),
        Some("off"),
        "the lease commits asynchronously"
    );
    let show = client
        .query_one("SHOW synchronous_commit", &[])
        .await
        .unwrap();
    assert_eq!(
        show.get::<_, String>(0),
        "on",
        "the session keeps its setting"
    );

    assert!(queue.ack(&client, &fast[0]).await.unwrap());
    assert_eq!(
        setting().await.as_deref(),
        Some("on"),
        "the ack commits synchronously"
    );

    let plain = queue.dequeue(&client, 1, None).await.unwrap();
    assert_eq!(plain[0].payload, task(2));
    assert_eq!(
        setting().await.as_deref(),
        Some("on"),
        "dequeue keeps the caller's setting"
    );
    assert!(queue.ack(&client, &plain[0]).await.unwrap());
    assert!(
        queue
            .dequeue_async_commit(&client, 1, None)
            .await
            .unwrap()
            .is_empty(),
        "an empty queue leases nothing"
    );
}
