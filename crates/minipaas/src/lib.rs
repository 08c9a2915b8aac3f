//! Async Rust client for MiniPaaS: durable queues and streams that live in PostgreSQL (the `minipaas` SQL
//! package, schema `minipaas`; install it with Strata, dbmate, Flyway or `psql -f`).
//!
//! - [`Queue`]: at-least-once work queue with leases. [`Queue::enqueue`] inside your own transaction;
//!   [`Queue::dequeue`] leases messages ([`Queue::dequeue_async_commit`] without waiting for the disk: a lease is
//!   soft state); [`Queue::ack`], [`Queue::nack`] and [`Queue::extend`] need the delivery's lease token, so a
//!   worker whose lease ran out cannot touch a message someone else now holds.
//!   Retries back off exponentially; after `max_attempts` a message is dead-lettered with its error history
//!   and [`Queue::redrive`] brings it back. Dedup keys, ordering keys, priorities and delays per message.
//! - [`Worker`]: runs a handler over a queue with a concurrency limit, wakes up on NOTIFY through a
//!   [`Listener`] (polling as a fallback), leases with [`Queue::dequeue_async_commit`], extends leases while
//!   handlers run, retries failures through nack and shuts down gracefully, releasing what it could not finish.
//! - [`Stream`]: an ordered, replayable log; [`Stream::publish`] inside your transaction, [`Stream::read`] from
//!   any offset. Readers never skip an event that commits late.
//! - [`Consumer`]: a consumer-group member whose committed offsets live in the database, so
//!   [`Consumer::commit`] can share the transaction of the work it records (exactly-once effects).
//!
//! Every call takes a [`tokio_postgres::GenericClient`]: a `Client`, or a `Transaction` to make the call part
//! of your own unit of work. Payloads are any serde type, stored as `jsonb`.
//!
//! ```no_run
//! # async fn demo() -> minipaas::Result<()> {
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Serialize, Deserialize)]
//! struct ProcessUser { id: i64 }
//!
//! let (client, connection) = tokio_postgres::connect("postgresql://localhost/app", tokio_postgres::NoTls).await?;
//! tokio::spawn(connection);
//! let queue = minipaas::Queue::<ProcessUser>::new("my_queue")?;
//! let id = queue.enqueue(&client, &ProcessUser { id: 42 }).await?;
//! for delivery in queue.dequeue(&client, 1, None).await? {
//!     assert_eq!(delivery.id, id);
//!     queue.ack(&client, &delivery).await?;
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod common;
mod error;
mod listener;
mod queue;
mod stream;
mod worker;

pub use error::{Error, Result};
pub use listener::Listener;
pub use queue::{
    BatchOptions, DeadLetter, Delivery, EnqueueOptions, MAX_BATCH, NackOutcome, Queue,
    QueueOptions, QueueStats, Retry,
};
pub use stream::{Consumer, Event, PartitionLag, PublishOptions, Stream, StreamOptions};
pub use tokio_postgres::Notification;
pub use worker::{Job, JobError, Worker, WorkerOptions, WorkerReport};
