//! Crash test: several worker processes (`examples/crash_worker.rs`) consume a queue while some are SIGKILLed at
//! random. Afterwards every message was acked exactly once or dead-lettered by policy, none is lost, and only
//! messages whose worker died were delivered again.
//!
//! 20,000 messages by default (under a minute on two cores); `MINIPAAS_CRASH_MESSAGES=100000` for the full run.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use minipaas::{Queue, QueueOptions};
use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::support;

#[derive(Debug, Serialize, Deserialize)]
struct Work {
    n: i64,
    poison: bool,
}

/// `cargo test` builds the examples next to the test binary's directory.
fn worker_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let binary = dir.join("examples").join("crash_worker");
    assert!(
        binary.exists(),
        "{} is missing: run the crash test with `cargo test -p minipaas` (which builds the examples), or \
         `cargo build -p minipaas --example crash_worker` first",
        binary.display()
    );
    binary
}

fn spawn_worker(binary: &PathBuf, url: &str) -> Child {
    Command::new(binary)
        .env("DATABASE_URL", url)
        .env("CRASH_CONCURRENCY", "16")
        .env("CRASH_LEASE_MS", "1500")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start a crash_worker")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_killed_at_random_lose_nothing_and_duplicate_nothing() {
    let messages: i64 = std::env::var("MINIPAAS_CRASH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let binary = worker_binary();
    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    support::install(&client).await;
    client
        .batch_execute(
            "CREATE TABLE crash_deliveries (message_id bigint NOT NULL, pid int NOT NULL, attempt int NOT NULL);
             CREATE TABLE crash_done (message_id bigint PRIMARY KEY, n bigint NOT NULL, pid int NOT NULL);",
        )
        .await
        .unwrap();
    let queue = Queue::<Work>::new("crash").unwrap();
    queue
        .create(
            &client,
            &QueueOptions {
                max_attempts: Some(4),
                backoff_base: Some(Duration::from_millis(50)),
                backoff_max: Some(Duration::from_millis(200)),
                ..QueueOptions::default()
            },
        )
        .await
        .unwrap();
    // One message in a hundred is poison: it always fails and must end up dead-lettered, not lost.
    let payloads: Vec<Work> = (0..messages)
        .map(|n| Work {
            n,
            poison: n % 100 == 42,
        })
        .collect();
    for chunk in payloads.chunks(minipaas::MAX_BATCH) {
        queue.enqueue_batch(&client, chunk).await.unwrap();
    }
    let poison = payloads.iter().filter(|w| w.poison).count() as i64;

    let url = db.url();
    let mut workers: Vec<Child> = (0..3).map(|_| spawn_worker(&binary, &url)).collect();
    let mut killed: HashSet<i32> = HashSet::new();
    let started = Instant::now();
    let deadline = Duration::from_secs(if messages > 20_000 { 900 } else { 240 });
    loop {
        let pause = rand::rng().random_range(300..1200);
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let stats = queue.stats(&client).await.unwrap();
        let open = stats.ready + stats.scheduled + stats.waiting + stats.in_flight + stats.expired;
        if open == 0 {
            break;
        }
        if started.elapsed() >= deadline {
            // Say why before failing: which messages are open, who holds locks, what each backend does.
            let open = client
                .query(
                    "SELECT row_to_json(m)::text FROM (SELECT id, state, attempts, priority, ready_at, lease_until,
                            leased_at, errors, now() AS now FROM minipaas.messages
                      WHERE state NOT IN ('dead', 'done') LIMIT 20) m",
                    &[],
                )
                .await
                .unwrap();
            let backends = client
                .query(
                    "SELECT row_to_json(a)::text FROM (SELECT pid, state, wait_event_type, wait_event, xact_start,
                            left(query, 120) AS query FROM pg_stat_activity
                      WHERE datname = current_database() AND pid <> pg_backend_pid()) a",
                    &[],
                )
                .await
                .unwrap();
            let dump = |rows: &[tokio_postgres::Row]| {
                rows.iter()
                    .map(|r| r.get::<_, String>(0))
                    .collect::<Vec<_>>()
                    .join("\n")
            };
            panic!(
                "not done after {deadline:?}: {stats:?}\nopen messages:\n{}\nbackends:\n{}",
                dump(&open),
                dump(&backends)
            );
        }
        // Kill one worker at random, mid-flight, and start a replacement.
        if killed.len() < 30 {
            let victim = rand::rng().random_range(0..workers.len());
            let mut child = workers.swap_remove(victim);
            killed.insert(i32::try_from(child.id()).unwrap());
            child.kill().unwrap();
            child.wait().unwrap();
            workers.push(spawn_worker(&binary, &url));
        }
    }
    let elapsed = started.elapsed();
    for mut child in workers {
        child.kill().unwrap();
        child.wait().unwrap();
    }

    let one = |sql: &'static str| {
        let client = &client;
        async move { client.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let done = one("SELECT count(*) FROM crash_done").await;
    let dead = one("SELECT count(*) FROM minipaas.messages WHERE state = 'dead'").await;
    let left = one("SELECT count(*) FROM minipaas.messages WHERE state <> 'dead'").await;
    let distinct_n = one("SELECT count(DISTINCT n) FROM crash_done").await;
    let dead_poison = one(
        "SELECT count(*) FROM minipaas.messages WHERE state = 'dead' AND (payload->>'poison')::boolean",
    )
    .await;
    eprintln!(
        "crash test: {messages} messages in {elapsed:.1?}, {} workers killed, {done} acked, {dead} dead",
        killed.len()
    );
    // Every property is checked and every violation reported, not only the first.
    let mut failures: Vec<String> = Vec::new();
    let mut check = |ok: bool, what: String| {
        if !ok {
            failures.push(what);
        }
    };
    check(
        left == 0,
        format!("no message is stuck or lost: {left} left"),
    );
    check(
        done + dead == messages,
        format!("every message was acked or dead-lettered: {done} + {dead} of {messages}"),
    );
    check(
        distinct_n == done,
        format!("each acked message has exactly one result: {distinct_n} distinct of {done}"),
    );
    check(
        dead_poison == poison,
        format!(
            "every poison message was dead-lettered by max_attempts: {dead_poison} of {poison}"
        ),
    );
    // A healthy message may only die if every one of its deliveries went to a worker that was killed.
    let dead_healthy: Vec<i64> = client
        .query(
            "SELECT m.id FROM minipaas.messages m
              WHERE m.state = 'dead' AND NOT (m.payload->>'poison')::boolean",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    // Redeliveries: a healthy message delivered more than once must have lost an earlier delivery to a kill.
    let rows = client
        .query(
            "SELECT d.message_id, d.pid, d.attempt,
                    d.attempt = max(d.attempt) OVER (PARTITION BY d.message_id) AS last
               FROM crash_deliveries d
              WHERE d.message_id IN (SELECT message_id FROM crash_deliveries GROUP BY 1 HAVING count(*) > 1)
                AND d.message_id IN (SELECT message_id FROM crash_done)",
            &[],
        )
        .await
        .unwrap();
    let mut redelivered = HashSet::new();
    for row in &rows {
        let (id, pid, last): (i64, i32, bool) = (row.get(0), row.get(1), row.get(3));
        redelivered.insert(id);
        if !last {
            check(
                killed.contains(&pid),
                format!(
                    "message {id} was delivered again although its earlier worker {pid} was not killed"
                ),
            );
        }
    }
    for id in &dead_healthy {
        let pids: Vec<i32> = client
            .query(
                "SELECT pid FROM crash_deliveries WHERE message_id = $1",
                &[id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect();
        check(
            pids.iter().all(|pid| killed.contains(pid)),
            format!("healthy message {id} died without its workers being killed: {pids:?}"),
        );
    }
    eprintln!(
        "crash test: {} healthy messages were redelivered after a kill, {} died of repeated kills",
        redelivered.len(),
        dead_healthy.len()
    );
    assert!(
        failures.is_empty(),
        "{} crash-test properties failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
