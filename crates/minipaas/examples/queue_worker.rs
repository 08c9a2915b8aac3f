//! Enqueue jobs in a transaction, then work through them with a [`minipaas::Worker`] until Ctrl-C.
//!
//! ```text
//! DATABASE_URL=postgresql://localhost/app cargo run -p minipaas --example queue_worker
//! ```
//!
//! The database needs the MiniPaaS package (`strata up`, or `psql -f` the files of `minipaas-sql/`).

use std::sync::Arc;
use std::time::Duration;

use minipaas::{EnqueueOptions, JobError, Listener, Queue, QueueOptions, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct SendWelcome {
    user_id: i64,
    email: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL")?;
    // Connect as the `strata` CLI does: PG* variables and ~/.pgpass fill in the URL, TLS follows `sslmode`.
    let mut client = pgstrata_conn::ConnectOptions::from_env(Some(&url))?
        .connect()
        .await?
        .client;

    let queue = Queue::<SendWelcome>::new("welcome-mails")?;
    queue
        .create(
            &client,
            &QueueOptions {
                visibility_timeout: Some(Duration::from_secs(60)),
                max_attempts: Some(8),
                ..QueueOptions::default()
            },
        )
        .await?;

    // The jobs exist only if the transaction that creates the users commits.
    let tx = client.transaction().await?;
    for user_id in 1..=5 {
        let job = SendWelcome {
            user_id,
            email: format!("user{user_id}@example.com"),
        };
        let options = EnqueueOptions {
            dedup_key: Some(format!("welcome-{user_id}")),
            ..EnqueueOptions::default()
        };
        queue.enqueue_with(&tx, &job, &options).await?;
    }
    tx.commit().await?;

    let listen_url = url.clone();
    let worker = Worker::new(
        queue,
        WorkerOptions {
            concurrency: 4,
            ..WorkerOptions::default()
        },
    )
    // Wake-ups on NOTIFY come through a second connection; `Listener::connect` opens it without TLS (for a
    // server that requires TLS, connect it yourself and use `Listener::new`).
    .listen_with(move || {
        let url = listen_url.clone();
        Box::pin(async move { Listener::connect(&url).await })
    });
    let report = worker
        .run(
            Arc::new(client),
            |job| async move {
                let mail = job.payload();
                if !mail.email.contains('@') {
                    return Err(JobError::fatal(format!("not an address: {}", mail.email)));
                }
                tracing::info!(
                    user = mail.user_id,
                    attempt = job.delivery().attempt,
                    "sending welcome mail"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                Ok(())
            },
            async {
                let _ = tokio::signal::ctrl_c().await;
            },
        )
        .await?;
    println!("{report:?}");
    Ok(())
}
