//! The Worker runner against a real database.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use minipaas::{JobError, Listener, Queue, QueueOptions, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::support;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    n: u32,
}

fn options() -> WorkerOptions {
    WorkerOptions {
        concurrency: 4,
        batch_size: 4,
        poll_interval: Duration::from_millis(100),
        shutdown_grace: Duration::from_secs(5),
        ..WorkerOptions::default()
    }
}

/// Runs `worker` until `done` says so (or 20 s pass), then shuts it down.
async fn run_until<F, Fut>(
    worker: Worker<Job>,
    client: Arc<tokio_postgres::Client>,
    handler: F,
    done: impl Fn() -> bool + Send + 'static,
) -> minipaas::WorkerReport
where
    F: Fn(minipaas::Job<Job>) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), JobError>> + Send + 'static,
{
    let (stop, stopped) = oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        let started = Instant::now();
        while !done() && started.elapsed() < Duration::from_secs(20) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = stop.send(());
    });
    let report = worker
        .run(client, handler, async {
            let _ = stopped.await;
        })
        .await
        .expect("the worker runs");
    watcher.await.unwrap();
    report
}

#[tokio::test]
async fn processes_every_message_with_bounded_concurrency() {
    let (_db, client) = support::fresh_db().await;
    let queue = Queue::<Job>::new("work").unwrap();
    queue
        .enqueue_batch(&client, &(0..40).map(|n| Job { n }).collect::<Vec<_>>())
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(HashSet::new()));
    let running = Arc::new(AtomicU32::new(0));
    let most = Arc::new(AtomicU32::new(0));
    let (seen2, running2, most2) = (seen.clone(), running.clone(), most.clone());
    let report = run_until(
        Worker::new(queue.clone(), options()),
        Arc::new(client),
        move |job| {
            let (seen, running, most) = (seen2.clone(), running2.clone(), most2.clone());
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
                seen.lock().unwrap().insert(job.payload().n);
                running.fetch_sub(1, Ordering::SeqCst);
                Ok(())
            }
        },
        {
            let seen = seen.clone();
            move || seen.lock().unwrap().len() == 40
        },
    )
    .await;
    assert_eq!(seen.lock().unwrap().len(), 40);
    assert_eq!((report.delivered, report.acked), (40, 40), "{report:?}");
    let most = most.load(Ordering::SeqCst);
    assert!((2..=4).contains(&most), "concurrency limit 4, saw {most}");
}

#[tokio::test]
async fn failures_retry_panics_retry_and_fatal_errors_dead_letter() {
    let (_db, client) = support::fresh_db().await;
    let queue = Queue::<Job>::new("flaky").unwrap();
    queue
        .create(
            &client,
            &QueueOptions {
                backoff_base: Some(Duration::from_millis(50)),
                backoff_max: Some(Duration::from_millis(50)),
                ..QueueOptions::default()
            },
        )
        .await
        .unwrap();
    // 1: fails once then works; 2: panics once then works; 3: can never work.
    for n in 1..=3 {
        queue.enqueue(&client, &Job { n }).await.unwrap();
    }
    let succeeded = Arc::new(Mutex::new(Vec::new()));
    let s2 = succeeded.clone();
    let client = Arc::new(client);
    let report = run_until(
        Worker::new(queue.clone(), options()),
        client.clone(),
        move |job| {
            let succeeded = s2.clone();
            async move {
                let (n, attempt) = (job.payload().n, job.delivery().attempt);
                match (n, attempt) {
                    (1, 1) => Err(JobError::retry("transient"))?,
                    (2, 1) => panic!("boom"),
                    (3, _) => Err(JobError::fatal("cannot ever work"))?,
                    _ => {}
                }
                let parsed: u32 = "7".parse()?;
                assert_eq!(parsed, 7);
                succeeded.lock().unwrap().push(n);
                Ok(())
            }
        },
        {
            let succeeded = succeeded.clone();
            move || succeeded.lock().unwrap().len() == 2
        },
    )
    .await;
    let mut ok = succeeded.lock().unwrap().clone();
    ok.sort_unstable();
    assert_eq!(ok, vec![1, 2]);
    assert_eq!(
        (report.retried, report.dead, report.acked),
        (2, 1, 2),
        "{report:?}"
    );
    let dead = queue.dead_letters(&*client, 10).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].errors[0]["error"], "cannot ever work");
    let history: Vec<String> = client
        .query("SELECT errors->0->>'error' FROM minipaas.messages", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        history,
        vec!["cannot ever work".to_owned()],
        "acked messages are gone"
    );
}

#[tokio::test]
async fn leases_are_extended_while_a_handler_runs() {
    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    support::install(&client).await;
    let queue = Queue::<Job>::new("slow").unwrap();
    let id = queue.enqueue(&client, &Job { n: 1 }).await.unwrap();
    let client = Arc::new(client);
    let watcher = Arc::new(db.client().await);
    let finished = Arc::new(AtomicU32::new(0));
    let f2 = finished.clone();
    let mut opts = options();
    opts.lease = Some(Duration::from_millis(1500));
    let report = run_until(
        Worker::new(queue.clone(), opts),
        client.clone(),
        move |_job| {
            let (finished, watcher) = (f2.clone(), watcher.clone());
            async move {
                // The handler runs until its lease was extended twice and it holds the message beyond its first
                // lease's end: without the extensions, another dequeue could have taken it.
                let lease_until = || async {
                    watcher
                        .query_one(
                            "SELECT lease_until, lease_until > clock_timestamp() FROM minipaas.messages
                              WHERE id = $1",
                            &[&id],
                        )
                        .await
                        .map(|row| (row.get::<_, chrono::DateTime<chrono::Utc>>(0), row.get::<_, bool>(1)))
                };
                let (first_until, _) = lease_until().await?;
                let mut seen = vec![first_until];
                let started = Instant::now();
                loop {
                    let (until, ahead) = lease_until().await?;
                    assert!(ahead, "the lease ran out while the handler ran: {until}");
                    if seen.last() != Some(&until) {
                        seen.push(until);
                    }
                    if seen.len() >= 3 && chrono::Utc::now() > first_until {
                        break;
                    }
                    assert!(
                        started.elapsed() < Duration::from_secs(20),
                        "the lease was not extended twice: {seen:?}"
                    );
                    // Polls the database for the worker's extensions (a third of the lease apart).
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                finished.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
        {
            let finished = finished.clone();
            move || finished.load(Ordering::SeqCst) == 1
        },
    )
    .await;
    assert_eq!(
        (report.delivered, report.acked, report.lease_lost),
        (1, 1, 0),
        "{report:?}"
    );
}

#[tokio::test]
async fn shutdown_releases_what_does_not_finish_in_time() {
    let (_db, client) = support::fresh_db().await;
    let queue = Queue::<Job>::new("stuck").unwrap();
    queue.enqueue(&client, &Job { n: 1 }).await.unwrap();
    queue.enqueue(&client, &Job { n: 2 }).await.unwrap();
    let client = Arc::new(client);
    let started = Arc::new(AtomicU32::new(0));
    let s2 = started.clone();
    let mut opts = options();
    opts.shutdown_grace = Duration::from_millis(300);
    let report = run_until(
        Worker::new(queue.clone(), opts),
        client.clone(),
        move |job| {
            let started = s2.clone();
            async move {
                started.fetch_add(1, Ordering::SeqCst);
                if job.payload().n == 2 {
                    // Never finishes.
                    std::future::pending::<()>().await;
                }
                Ok(())
            }
        },
        {
            let started = started.clone();
            move || started.load(Ordering::SeqCst) == 2
        },
    )
    .await;
    assert_eq!(
        (report.acked, report.released),
        (1, 1),
        "the short job finishes, the long one is released"
    );
    let stats = queue.stats(&*client).await.unwrap();
    assert_eq!((stats.ready, stats.in_flight), (1, 0));
    let again = queue.dequeue(&*client, 1, None).await.unwrap();
    assert_eq!(
        (again[0].payload.n, again[0].attempt),
        (2, 1),
        "released without using an attempt"
    );
}

#[tokio::test]
async fn a_listener_wakes_an_idle_worker_long_before_its_poll() {
    let db = pgtest::TestDb::new().await;
    let client = Arc::new(db.client().await);
    support::install(&client).await;
    let queue = Queue::<Job>::new("wake").unwrap();
    queue
        .create(&*client, &QueueOptions::default())
        .await
        .unwrap();
    let mut opts = options();
    opts.poll_interval = Duration::from_secs(30);
    let url = db.url();
    let worker = Worker::new(queue.clone(), opts).listen_with(move || {
        let url = url.clone();
        Box::pin(async move { Listener::connect(&url).await })
    });
    let handled_at = Arc::new(Mutex::new(None));
    let h2 = handled_at.clone();
    let producer = db.client().await;
    let enqueued_at = Arc::new(Mutex::new(None));
    let e2 = enqueued_at.clone();
    tokio::spawn(async move {
        // Once the worker found the queue empty it waits for a NOTIFY (it listens before it polls).
        support::wait_until("the worker goes idle", Duration::from_secs(20), || async {
            producer
                .query_one(
                    "SELECT consumers_idle_until IS NOT NULL FROM minipaas.queues WHERE name = 'wake'",
                    &[],
                )
                .await
                .unwrap()
                .get::<_, bool>(0)
        })
        .await;
        *e2.lock().unwrap() = Some(Instant::now());
        queue.enqueue(&producer, &Job { n: 1 }).await.unwrap();
    });
    let report = run_until(
        worker,
        client,
        move |_job| {
            let handled_at = h2.clone();
            async move {
                *handled_at.lock().unwrap() = Some(Instant::now());
                Ok(())
            }
        },
        {
            let handled_at = handled_at.clone();
            move || handled_at.lock().unwrap().is_some()
        },
    )
    .await;
    assert_eq!(report.acked, 1);
    let latency = handled_at.lock().unwrap().unwrap() - enqueued_at.lock().unwrap().unwrap();
    assert!(
        latency < Duration::from_secs(3),
        "woken by NOTIFY, not the 30 s poll: {latency:?}"
    );
}

#[tokio::test]
async fn a_handler_can_ack_inside_its_own_transaction() {
    let db = pgtest::TestDb::new().await;
    let client = Arc::new(db.client().await);
    support::install(&client).await;
    client
        .batch_execute("CREATE TABLE done (n int PRIMARY KEY)")
        .await
        .unwrap();
    let queue = Queue::<Job>::new("tx").unwrap();
    for n in 1..=3 {
        queue.enqueue(&*client, &Job { n }).await.unwrap();
    }
    let own = Arc::new(tokio::sync::Mutex::new(db.client().await));
    let committed = Arc::new(AtomicU32::new(0));
    let c2 = committed.clone();
    let report = run_until(
        Worker::new(queue.clone(), options()),
        client.clone(),
        move |job| {
            let (own, committed) = (own.clone(), c2.clone());
            async move {
                let mut conn = own.lock().await;
                let tx = conn.transaction().await?;
                tx.execute("INSERT INTO done VALUES ($1)", &[&(job.payload().n as i32)])
                    .await?;
                if !job.ack_with(&tx).await? {
                    return Err(JobError::retry("lease lost"));
                }
                tx.commit().await?;
                committed.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
        {
            let committed = committed.clone();
            move || committed.load(Ordering::SeqCst) == 3
        },
    )
    .await;
    assert_eq!(report.acked, 3, "{report:?}");
    let left: i64 = client
        .query_one("SELECT count(*) FROM minipaas.messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "acked in the handlers' transactions, once");
}

/// A handler that acks in its own transaction holds the message's row until it commits; the lease extension
/// that comes due meanwhile must neither wait for that row nor keep the handler from running (it did, and the
/// worker and its handler waited for each other forever).
#[tokio::test]
async fn a_lease_extension_never_waits_for_the_handlers_own_transaction() {
    let db = pgtest::TestDb::new().await;
    let client = Arc::new(db.client().await);
    support::install(&client).await;
    client
        .batch_execute("CREATE TABLE done (n int PRIMARY KEY)")
        .await
        .unwrap();
    let queue = Queue::<Job>::new("slowcommit").unwrap();
    for n in 1..=4 {
        queue.enqueue(&*client, &Job { n }).await.unwrap();
    }
    let own = Arc::new(tokio::sync::Mutex::new(db.client().await));
    let committed = Arc::new(AtomicU32::new(0));
    let c2 = committed.clone();
    let started = Instant::now();
    let report = run_until(
        Worker::new(
            queue.clone(),
            WorkerOptions {
                concurrency: 1,
                batch_size: 1,
                // Extended every 100 ms: several extensions come due while each handler holds its row.
                lease: Some(Duration::from_millis(300)),
                ..options()
            },
        ),
        client.clone(),
        move |job| {
            let (own, committed) = (own.clone(), c2.clone());
            async move {
                let mut conn = own.lock().await;
                let tx = conn.transaction().await?;
                tx.execute("INSERT INTO done VALUES ($1)", &[&(job.payload().n as i32)])
                    .await?;
                if !job.ack_with(&tx).await? {
                    return Err(JobError::retry("lease lost"));
                }
                // Holds the row while extensions come due (its subject: a real timer firing meanwhile).
                tokio::time::sleep(Duration::from_millis(450)).await;
                tx.commit().await?;
                committed.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
        },
        {
            let committed = committed.clone();
            move || committed.load(Ordering::SeqCst) == 4
        },
    )
    .await;
    assert_eq!(
        committed.load(Ordering::SeqCst),
        4,
        "every handler committed (after {:?}): {report:?}",
        started.elapsed()
    );
    assert_eq!(report.acked, 4, "{report:?}");
    let done: i64 = client
        .query_one("SELECT count(*) FROM done", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(done, 4);

    // In SQL: while another transaction holds the row, queue_extend returns the lease unchanged at once.
    let id = queue.enqueue(&*client, &Job { n: 5 }).await.unwrap();
    let delivery = queue
        .dequeue(&*client, 1, None)
        .await
        .unwrap()
        .pop()
        .expect("a delivery");
    assert_eq!(delivery.id, id);
    let mut holder = db.client().await;
    let tx = holder.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM minipaas.messages WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await
    .unwrap();
    client
        .batch_execute("SET statement_timeout = '2s'")
        .await
        .unwrap();
    let until: Option<chrono::DateTime<chrono::Utc>> = client
        .query_one(
            "SELECT minipaas.queue_extend($1, $2, '1 hour')",
            &[&id, &delivery.lease_token],
        )
        .await
        .expect("queue_extend does not wait for the row")
        .get(0);
    let until = until.expect("the lease is still ours");
    assert!(
        until < chrono::Utc::now() + chrono::Duration::minutes(59),
        "a busy row keeps its lease as it was: {until}"
    );
    tx.rollback().await.unwrap();
    let extended: Option<chrono::DateTime<chrono::Utc>> = client
        .query_one(
            "SELECT minipaas.queue_extend($1, $2, '1 hour')",
            &[&id, &delivery.lease_token],
        )
        .await
        .unwrap()
        .get(0);
    assert!(extended.expect("extended") > chrono::Utc::now() + chrono::Duration::minutes(59));
}
