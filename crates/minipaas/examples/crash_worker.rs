//! A worker process for the crash test (`tests/integration/crash.rs` starts several and SIGKILLs them at
//! random). It can also be run by hand against a database that has the MiniPaaS package and the test tables:
//!
//! ```text
//! DATABASE_URL=postgresql://localhost/app cargo run -p minipaas --example crash_worker
//! ```
//!
//! Each message `{"n": …, "poison": bool}` is handled like real work: the delivery is logged
//! (`crash_deliveries`), then the result row (`crash_done`) and the ack are committed in one transaction, so
//! an acked message has exactly one result row. Poison messages always fail and end up dead-lettered by the
//! queue's `max_attempts`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use minipaas::{JobError, Listener, Queue, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;
use tokio_postgres::{Client, NoTls};

#[derive(Debug, Serialize, Deserialize)]
struct Work {
    n: i64,
    poison: bool,
}

/// Tables the crash test reads; created by the test (and here, if missing, for runs by hand).
const TABLES: &str = "
    CREATE TABLE IF NOT EXISTS crash_deliveries (message_id bigint NOT NULL, pid int NOT NULL, attempt int NOT NULL);
    CREATE TABLE IF NOT EXISTS crash_done (message_id bigint PRIMARY KEY, n bigint NOT NULL, pid int NOT NULL);
";

async fn connect(url: &str) -> Result<Client, Box<dyn std::error::Error>> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            eprintln!("crash_worker: connection ended: {e}");
        }
    });
    Ok(client)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL")?;
    let queue_name = std::env::var("CRASH_QUEUE").unwrap_or_else(|_| "crash".to_owned());
    let concurrency: usize = std::env::var("CRASH_CONCURRENCY")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let lease_ms: u64 = std::env::var("CRASH_LEASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);

    let client = Arc::new(connect(&url).await?);
    client.batch_execute(TABLES).await?;
    // A few connections for the handlers' transactions (each is held only for an insert and the ack).
    let pool_size = concurrency.div_ceil(4).max(1);
    let mut pool = Vec::with_capacity(pool_size);
    for _ in 0..pool_size {
        pool.push(Mutex::new(connect(&url).await?));
    }
    let pool = Arc::new(pool);
    let next = Arc::new(AtomicUsize::new(0));
    let pid = i32::try_from(std::process::id())?;

    let queue = Queue::<Work>::new(queue_name)?;
    let options = WorkerOptions {
        concurrency,
        batch_size: concurrency,
        lease: Some(Duration::from_millis(lease_ms)),
        poll_interval: Duration::from_millis(200),
        shutdown_grace: Duration::from_secs(5),
        maintenance_interval: None,
    };
    let listen_url = url.clone();
    let worker = Worker::new(queue, options).listen_with(move || {
        let url = listen_url.clone();
        Box::pin(async move { Listener::connect(&url).await })
    });
    let log = Arc::clone(&client);
    let report = worker
        .run(
            client,
            move |job| {
                let (pool, next, log) = (Arc::clone(&pool), Arc::clone(&next), Arc::clone(&log));
                async move {
                    let d = job.delivery();
                    log.execute(
                        "INSERT INTO crash_deliveries (message_id, pid, attempt) VALUES ($1, $2, $3)",
                        &[&d.id, &pid, &d.attempt],
                    )
                    .await?;
                    if job.payload().poison {
                        return Err(JobError::retry("poison message"));
                    }
                    let slot = next.fetch_add(1, Ordering::Relaxed) % pool.len();
                    let mut conn = pool[slot].lock().await;
                    let tx = conn.transaction().await?;
                    tx.execute(
                        "INSERT INTO crash_done (message_id, n, pid) VALUES ($1, $2, $3)",
                        &[&d.id, &job.payload().n, &pid],
                    )
                    .await?;
                    if job.ack_with(&tx).await? {
                        tx.commit().await?;
                        Ok(())
                    } else {
                        // Our lease went to another delivery: leave the result to that one.
                        tx.rollback().await?;
                        Err(JobError::retry("lease lost before the ack"))
                    }
                }
            },
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await?;
    eprintln!("crash_worker {pid}: {report:?}");
    Ok(())
}
