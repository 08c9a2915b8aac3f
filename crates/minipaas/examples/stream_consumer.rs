//! Publish events, then consume them as a consumer group whose offset commits share the transaction of the
//! work they record (each event's effect happens exactly once, even across crashes).
//!
//! ```text
//! DATABASE_URL=postgresql://localhost/app cargo run -p minipaas --example stream_consumer
//! ```

use std::time::Duration;

use minipaas::{PublishOptions, Stream};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
enum AccountEvent {
    Opened { owner: String },
    Deposited { cents: i64 },
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("DATABASE_URL").map_err(|_| "set DATABASE_URL")?;
    // Connect as the `strata` CLI does: PG* variables and ~/.pgpass fill in the URL, TLS follows `sslmode`.
    let mut client = pgstrata_conn::ConnectOptions::from_env(Some(&url))?
        .connect()
        .await?
        .client;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS balances (account text PRIMARY KEY, cents bigint NOT NULL)",
        )
        .await?;

    let stream = Stream::<AccountEvent>::new("accounts")?;
    // Optimistic concurrency per account: each write states the version it expects.
    let account = "acct-7";
    let mut version = stream.read_key(&client, account, 0, 10_000).await?.len() as i64;
    for event in [
        AccountEvent::Opened {
            owner: "ada".into(),
        },
        AccountEvent::Deposited { cents: 1_500 },
        AccountEvent::Deposited { cents: 250 },
    ] {
        let options = PublishOptions {
            key: Some(account.into()),
            expected_version: Some(version),
            ..PublishOptions::default()
        };
        let offset = stream.publish_with(&client, &event, &options).await?;
        version += 1;
        println!("published {event:?} at offset {offset} (version {version})");
    }

    let consumer = stream.consumer("balances")?.with_batch_size(100)?;
    loop {
        let tx = client.transaction().await?;
        let events = consumer.consume(&tx).await?;
        if events.is_empty() {
            tx.rollback().await?;
            break;
        }
        for event in &events {
            let key = event.key.clone().unwrap_or_default();
            let cents = match event.payload {
                AccountEvent::Opened { .. } => 0,
                AccountEvent::Deposited { cents } => cents,
            };
            tx.execute(
                "INSERT INTO balances VALUES ($1, $2)
                 ON CONFLICT (account) DO UPDATE SET cents = balances.cents + excluded.cents",
                &[&key, &cents],
            )
            .await?;
        }
        // The offset commit is part of the same transaction as the balance updates.
        consumer.commit(&tx, &events).await?;
        tx.commit().await?;
        println!("applied {} events", events.len());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for lag in consumer.lag(&client).await? {
        println!(
            "partition {}: committed {}, pending {}",
            lag.partition, lag.committed_offset, lag.pending
        );
    }
    Ok(())
}
