//! Queues: enqueue in your transaction, lease, then ack, nack or extend with the lease token.

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::GenericClient;
use tokio_postgres::types::{ToSql, Type};

use crate::common::{check_name, decode, encode, seconds, sql_count};
use crate::error::{Error, Result};

/// The most messages one call may enqueue, dequeue or ack (the package's limit).
pub const MAX_BATCH: usize = 10_000;

/// A dequeue statement: the delivery columns of `queue_dequeue`, after whatever `$from` puts before it.
macro_rules! dequeue_sql {
    ($from:literal) => {
        concat!(
            "SELECT d.id, d.payload, d.lease_token, d.attempt, d.lease_expires_at, d.priority, d.enqueued_at, \
                    d.ordering_key, d.dedup_key \
               FROM ",
            $from,
            "minipaas.queue_dequeue($1, $2, $3 * interval '1 second') AS d"
        )
    };
}

const DEQUEUE_SQL: &str = dequeue_sql!("");

// One statement, so one implicit transaction: `set_config(…, true)` lasts until its commit and no further. When
// the dequeue comes back empty the setting may not be evaluated at all, which is harmless (the default is the
// safe one).
const DEQUEUE_ASYNC_COMMIT_SQL: &str =
    dequeue_sql!("(SELECT pg_catalog.set_config('synchronous_commit', 'off', true)) AS s, ");

/// A typed handle on a queue: its name and the payload type `T` (serde JSON).
///
/// A handle holds no connection. Every call takes a [`GenericClient`] — a `Client` or a `Transaction` — so an
/// enqueue commits or rolls back with the caller's own writes.
///
/// ```no_run
/// # async fn demo(client: &mut tokio_postgres::Client) -> minipaas::Result<()> {
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Welcome { user_id: i64 }
///
/// let queue = minipaas::Queue::<Welcome>::new("welcome-mails")?;
/// let tx = client.transaction().await?;
/// // ... insert the user with `tx` ...
/// queue.enqueue(&tx, &Welcome { user_id: 42 }).await?; // sent only if the user is committed
/// tx.commit().await?;
///
/// for delivery in queue.dequeue(&*client, 10, None).await? {
///     // ... send the mail ...
///     queue.ack(&*client, &delivery).await?;
/// }
/// # Ok(()) }
/// ```
pub struct Queue<T> {
    name: String,
    payload: PhantomData<fn() -> T>,
}

impl<T> Clone for Queue<T> {
    fn clone(&self) -> Self {
        Queue {
            name: self.name.clone(),
            payload: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Queue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).finish()
    }
}

/// Options of a queue; `None` keeps the current value (or the default, for a new queue).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueueOptions {
    /// How long a lease lasts unless the worker asks for another length (default 30 s, at most 12 hours: a longer
    /// job extends its lease, as the [`Worker`](crate::Worker) does).
    pub visibility_timeout: Option<Duration>,
    /// Deliveries before a failing message is dead-lettered (default 5).
    pub max_attempts: Option<u32>,
    /// First retry delay; it doubles with each attempt (default 1 s, at most 10 years).
    pub backoff_base: Option<Duration>,
    /// Cap of the retry delay (default 15 min, at most 10 years).
    pub backoff_max: Option<Duration>,
    /// Share of the delay taken off at random, 0 to 1 (default 0.2).
    pub backoff_jitter: Option<f64>,
    /// Where dead messages go: `Some(name)` moves them to that queue, `Some("")` keeps them in this queue (the
    /// default) for [`Queue::dead_letters`] and [`Queue::redrive`].
    pub dead_letter_queue: Option<String>,
    /// How long acked messages are kept (state done); zero deletes them on ack (the default); at most 10 years.
    pub retention: Option<Duration>,
}

/// Per-message options of [`Queue::enqueue_with`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnqueueOptions {
    /// Deliver no earlier than this long from now (at most 10 years).
    pub delay: Option<Duration>,
    /// Deliver no earlier than this time (at most 10 years ahead).
    pub run_at: Option<DateTime<Utc>>,
    /// Lower numbers are delivered first (default 0).
    pub priority: i16,
    /// While a message with this key is pending or in flight, enqueuing another returns the first one's id. At
    /// most 1,024 bytes.
    pub dedup_key: Option<String>,
    /// Messages with the same key are delivered one at a time, in enqueue order. At most 1,024 bytes.
    pub ordering_key: Option<String>,
}

/// Options of [`Queue::enqueue_batch_with`], applied to every message of the batch.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BatchOptions {
    /// Deliver no earlier than this long from now.
    pub delay: Option<Duration>,
    /// Lower numbers are delivered first (default 0).
    pub priority: i16,
}

/// A leased message: process it, then [`ack`](Queue::ack), [`nack`](Queue::nack) or
/// [`release`](Queue::release) it with its lease token before `lease_expires_at`
/// (or [`extend`](Queue::extend) the lease).
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery<T> {
    /// Message id.
    pub id: i64,
    /// Proof of this delivery; a later delivery of the same message gets another token.
    pub lease_token: i64,
    /// 1 for the first delivery, 2 for the first retry, ...
    pub attempt: i32,
    /// When the lease runs out and the message may be delivered again.
    pub lease_expires_at: DateTime<Utc>,
    /// The message's priority.
    pub priority: i16,
    /// When it was enqueued.
    pub enqueued_at: DateTime<Utc>,
    /// Its ordering key, if any.
    pub ordering_key: Option<String>,
    /// Its dedup key, if any.
    pub dedup_key: Option<String>,
    /// The decoded payload.
    pub payload: T,
}

/// How a nacked message is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// After the queue's exponential backoff.
    Backoff,
    /// After this delay.
    After(Duration),
    /// Never: dead-letter it now (e.g. a payload the worker can never handle).
    Never,
}

/// What [`Queue::nack`] did with the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NackOutcome {
    /// It will be delivered again at this time.
    Retry {
        /// When it becomes visible again.
        at: DateTime<Utc>,
    },
    /// It is dead: attempts used up, or [`Retry::Never`].
    Dead,
}

/// Counts of a queue's messages by state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueStats {
    /// Deliverable now.
    pub ready: i64,
    /// Delayed, or backing off before a retry.
    pub scheduled: i64,
    /// Behind an earlier message with the same ordering key.
    pub waiting: i64,
    /// Leased, lease still running.
    pub in_flight: i64,
    /// Leased, lease ran out: will be delivered again.
    pub expired: i64,
    /// Dead-lettered and kept in this queue.
    pub dead: i64,
    /// Acked and kept for the retention period.
    pub done: i64,
    /// Enqueue time of the oldest ready message.
    pub oldest_ready_at: Option<DateTime<Utc>>,
    /// When the next delayed message or lease comes due.
    pub next_visible_at: Option<DateTime<Utc>>,
}

/// A dead message kept in its queue, with its raw payload (it may not decode any more).
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    /// Message id (use it with [`Queue::redrive`]).
    pub id: i64,
    /// The payload as stored.
    pub payload: serde_json::Value,
    /// Deliveries it had.
    pub attempts: i32,
    /// Its error history: `[{"attempt", "at", "error"}, ...]`.
    pub errors: serde_json::Value,
    /// When it died.
    pub dead_at: Option<DateTime<Utc>>,
    /// When it was enqueued.
    pub enqueued_at: DateTime<Utc>,
}

type Param<'a> = (&'a (dyn ToSql + Sync), Type);

impl<T> Queue<T> {
    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The NOTIFY channel of this queue, for `LISTEN` (see [`crate::Listener`]).
    pub fn channel(&self) -> String {
        format!("minipaas.queue.{}", self.name)
    }
}

impl<T> Queue<T>
where
    T: Serialize + DeserializeOwned,
{
    /// A handle on queue `name` (checked against the package's naming rule; nothing is created yet).
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        check_name("queue", &name)?;
        Ok(Queue {
            name,
            payload: PhantomData,
        })
    }

    /// Creates the queue, or changes the options given; true if it was created. Queues named for the first time
    /// by an enqueue are created with the defaults, so this is only needed for other options.
    pub async fn create<C: GenericClient + Sync>(
        &self,
        client: &C,
        options: &QueueOptions,
    ) -> Result<bool> {
        let max_attempts = options
            .max_attempts
            .map(|n| {
                i32::try_from(n)
                    .map_err(|_| Error::InvalidArgument(format!("max_attempts {n} is too large")))
            })
            .transpose()?;
        let params: [Param<'_>; 8] = [
            (&self.name, Type::TEXT),
            (&options.visibility_timeout.map(seconds), Type::FLOAT8),
            (&max_attempts, Type::INT4),
            (&options.backoff_base.map(seconds), Type::FLOAT8),
            (&options.backoff_max.map(seconds), Type::FLOAT8),
            (&options.backoff_jitter, Type::FLOAT8),
            (&options.dead_letter_queue, Type::TEXT),
            (&options.retention.map(seconds), Type::FLOAT8),
        ];
        let row = client
            .query_typed_one(
                "SELECT minipaas.queue_create($1, $2 * interval '1 second', $3, $4 * interval '1 second', \
                 $5 * interval '1 second', $6, $7, $8 * interval '1 second')",
                &params,
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Drops the queue and its messages; false if there was no such queue.
    pub async fn drop_queue<C: GenericClient + Sync>(&self, client: &C) -> Result<bool> {
        let row = client
            .query_typed_one(
                "SELECT minipaas.queue_drop($1, true)",
                &[(&self.name, Type::TEXT)],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Enqueues a message and returns its id. Pass a `Transaction` to enqueue atomically with your writes.
    pub async fn enqueue<C: GenericClient + Sync>(&self, client: &C, payload: &T) -> Result<i64> {
        self.enqueue_with(client, payload, &EnqueueOptions::default())
            .await
    }

    /// [`enqueue`](Self::enqueue) with a delay, run time, priority, dedup key or ordering key.
    pub async fn enqueue_with<C: GenericClient + Sync>(
        &self,
        client: &C,
        payload: &T,
        options: &EnqueueOptions,
    ) -> Result<i64> {
        let payload = encode(payload)?;
        let priority = i32::from(options.priority);
        let params: [Param<'_>; 7] = [
            (&self.name, Type::TEXT),
            (&payload, Type::JSONB),
            (&options.delay.map(seconds), Type::FLOAT8),
            (&priority, Type::INT4),
            (&options.dedup_key, Type::TEXT),
            (&options.ordering_key, Type::TEXT),
            (&options.run_at, Type::TIMESTAMPTZ),
        ];
        let row = client
            .query_typed_one(
                "SELECT minipaas.queue_enqueue($1, $2, $3 * interval '1 second', $4, $5, $6, $7)",
                &params,
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Enqueues up to [`MAX_BATCH`] messages in one round trip, all or nothing; ids in input order.
    pub async fn enqueue_batch<C: GenericClient + Sync>(
        &self,
        client: &C,
        payloads: &[T],
    ) -> Result<Vec<i64>> {
        self.enqueue_batch_with(client, payloads, &BatchOptions::default())
            .await
    }

    /// [`enqueue_batch`](Self::enqueue_batch) with a delay and priority for the whole batch. (For per-message
    /// keys, call [`enqueue_with`](Self::enqueue_with) for each message in one transaction.)
    pub async fn enqueue_batch_with<C: GenericClient + Sync>(
        &self,
        client: &C,
        payloads: &[T],
        options: &BatchOptions,
    ) -> Result<Vec<i64>> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        sql_count("a batch", payloads.len(), MAX_BATCH)?;
        let payloads = payloads.iter().map(encode).collect::<Result<Vec<_>>>()?;
        let priority = i32::from(options.priority);
        let params: [Param<'_>; 4] = [
            (&self.name, Type::TEXT),
            (&payloads, Type::JSONB_ARRAY),
            (&options.delay.map(seconds), Type::FLOAT8),
            (&priority, Type::INT4),
        ];
        let rows = client
            .query_typed(
                "SELECT minipaas.queue_enqueue_batch($1, $2, $3 * interval '1 second', $4)",
                &params,
            )
            .await?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Leases up to `max` messages (1..=[`MAX_BATCH`]); fewer, or none, if fewer are ready. `lease` overrides the
    /// queue's visibility timeout.
    ///
    /// A payload that does not decode as `T` can never be handled: it is dead-lettered on the spot (its raw
    /// JSON stays in [`dead_letters`](Self::dead_letters)) and left out of the result.
    pub async fn dequeue<C: GenericClient + Sync>(
        &self,
        client: &C,
        max: usize,
        lease: Option<Duration>,
    ) -> Result<Vec<Delivery<T>>> {
        self.lease_with(client, max, lease, DEQUEUE_SQL).await
    }

    /// [`dequeue`](Self::dequeue) in a transaction of its own whose commit does not wait for the disk
    /// (`synchronous_commit = off` for that one transaction): a worker loop's lease costs no WAL flush, only its
    /// ack does. This is what [`Worker`](crate::Worker) uses.
    ///
    /// Why that is safe: a lease is soft state. If the server crashes before the lease reaches the disk (at most
    /// three `wal_writer_delay`s, 600 ms by default), the message is simply ready again as if never leased; the
    /// worker's ack then finds another lease token and returns false, and the message is delivered again —
    /// at-least-once holds, as after any lost lease. The ack itself is synchronous, and flushing its commit
    /// flushes the lease's too (the WAL is one sequence), so no acked message can come back.
    ///
    /// `client` must not be inside a transaction block (`BEGIN` sent by hand): the setting would last until that
    /// transaction ends and make its commit asynchronous as well. A `Transaction` is not accepted for that reason.
    pub async fn dequeue_async_commit(
        &self,
        client: &tokio_postgres::Client,
        max: usize,
        lease: Option<Duration>,
    ) -> Result<Vec<Delivery<T>>> {
        self.lease_with(client, max, lease, DEQUEUE_ASYNC_COMMIT_SQL)
            .await
    }

    async fn lease_with<C: GenericClient + Sync>(
        &self,
        client: &C,
        max: usize,
        lease: Option<Duration>,
        sql: &str,
    ) -> Result<Vec<Delivery<T>>> {
        let batch = sql_count("the batch size", max, MAX_BATCH)?;
        let params: [Param<'_>; 3] = [
            (&self.name, Type::TEXT),
            (&batch, Type::INT4),
            (&lease.map(seconds), Type::FLOAT8),
        ];
        let rows = client.query_typed(sql, &params).await?;
        let mut deliveries = Vec::with_capacity(rows.len());
        for row in rows {
            let id: i64 = row.try_get(0)?;
            let lease_token: i64 = row.try_get(2)?;
            let payload = match decode::<T>(row.try_get(1)?, || format!("message {id}")) {
                Ok(payload) => payload,
                Err(e) => {
                    tracing::warn!(queue = %self.name, id, error = %e, "dead-lettering a message that does not decode");
                    nack_lease(client, id, lease_token, &e.to_string(), Retry::Never).await?;
                    continue;
                }
            };
            deliveries.push(Delivery {
                id,
                lease_token,
                attempt: row.try_get(3)?,
                lease_expires_at: row.try_get(4)?,
                priority: row.try_get(5)?,
                enqueued_at: row.try_get(6)?,
                ordering_key: row.try_get(7)?,
                dedup_key: row.try_get(8)?,
                payload,
            });
        }
        Ok(deliveries)
    }

    /// Acknowledges a delivery: the message is done. False if the lease is no longer this delivery's (it
    /// expired and the message went to someone else). Pass your `Transaction` for exactly-once effects.
    pub async fn ack<C: GenericClient + Sync>(
        &self,
        client: &C,
        delivery: &Delivery<T>,
    ) -> Result<bool> {
        ack_lease(client, delivery.id, delivery.lease_token).await
    }

    /// Acknowledges up to [`MAX_BATCH`] deliveries in one round trip; returns the ids that were acked.
    pub async fn ack_batch<C: GenericClient + Sync>(
        &self,
        client: &C,
        deliveries: &[Delivery<T>],
    ) -> Result<Vec<i64>> {
        if deliveries.is_empty() {
            return Ok(Vec::new());
        }
        sql_count("a batch", deliveries.len(), MAX_BATCH)?;
        let ids: Vec<i64> = deliveries.iter().map(|d| d.id).collect();
        let tokens: Vec<i64> = deliveries.iter().map(|d| d.lease_token).collect();
        ack_leases(client, &ids, &tokens).await
    }

    /// Gives a delivery back with an error, to be retried (or dead-lettered when its attempts are used up).
    /// `None` if the lease is no longer this delivery's.
    pub async fn nack<C: GenericClient + Sync>(
        &self,
        client: &C,
        delivery: &Delivery<T>,
        error: &str,
        retry: Retry,
    ) -> Result<Option<NackOutcome>> {
        nack_lease(client, delivery.id, delivery.lease_token, error, retry).await
    }

    /// Extends a lease to now + `lease` (default: the queue's visibility timeout) and returns the new expiry;
    /// `None` if the lease is no longer this delivery's — stop working on it.
    pub async fn extend<C: GenericClient + Sync>(
        &self,
        client: &C,
        delivery: &Delivery<T>,
        lease: Option<Duration>,
    ) -> Result<Option<DateTime<Utc>>> {
        extend_lease(client, delivery.id, delivery.lease_token, lease).await
    }

    /// Gives a delivery back unprocessed (e.g. at shutdown): ready again at once, attempt not counted.
    pub async fn release<C: GenericClient + Sync>(
        &self,
        client: &C,
        delivery: &Delivery<T>,
    ) -> Result<bool> {
        release_lease(client, delivery.id, delivery.lease_token).await
    }

    /// Counts of the queue's messages by state.
    pub async fn stats<C: GenericClient + Sync>(&self, client: &C) -> Result<QueueStats> {
        let row = client
            .query_typed_one(
                "SELECT ready, scheduled, waiting, in_flight, expired, dead, done, oldest_ready_at, next_visible_at \
                   FROM minipaas.queue_stats($1)",
                &[(&self.name, Type::TEXT)],
            )
            .await?;
        Ok(QueueStats {
            ready: row.try_get(0)?,
            scheduled: row.try_get(1)?,
            waiting: row.try_get(2)?,
            in_flight: row.try_get(3)?,
            expired: row.try_get(4)?,
            dead: row.try_get(5)?,
            done: row.try_get(6)?,
            oldest_ready_at: row.try_get(7)?,
            next_visible_at: row.try_get(8)?,
        })
    }

    /// Up to `max` dead messages kept in this queue, oldest first.
    pub async fn dead_letters<C: GenericClient + Sync>(
        &self,
        client: &C,
        max: usize,
    ) -> Result<Vec<DeadLetter>> {
        let max = sql_count("max", max, MAX_BATCH)?;
        let rows = client
            .query_typed(
                "SELECT id, payload, attempts, errors, dead_at, enqueued_at FROM minipaas.queue_dead_letters($1, $2)",
                &[(&self.name, Type::TEXT), (&max, Type::INT4)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(DeadLetter {
                    id: row.try_get(0)?,
                    payload: row.try_get(1)?,
                    attempts: row.try_get(2)?,
                    errors: row
                        .try_get::<_, Option<serde_json::Value>>(3)?
                        .unwrap_or_default(),
                    dead_at: row.try_get(4)?,
                    enqueued_at: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// Makes dead messages deliverable again with a fresh attempt budget: those in `ids`, or all. Returns how many.
    pub async fn redrive<C: GenericClient + Sync>(
        &self,
        client: &C,
        ids: Option<&[i64]>,
    ) -> Result<u64> {
        let ids = ids.map(<[i64]>::to_vec);
        let row = client
            .query_typed_one(
                "SELECT minipaas.queue_redrive($1, $2)",
                &[(&self.name, Type::TEXT), (&ids, Type::INT8_ARRAY)],
            )
            .await?;
        let n: i64 = row.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// Deletes every message of the queue; returns how many.
    pub async fn purge<C: GenericClient + Sync>(&self, client: &C) -> Result<u64> {
        let row = client
            .query_typed_one(
                "SELECT minipaas.queue_purge($1)",
                &[(&self.name, Type::TEXT)],
            )
            .await?;
        let n: i64 = row.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }
}

pub(crate) async fn extend_lease<C: GenericClient + Sync>(
    client: &C,
    id: i64,
    lease_token: i64,
    lease: Option<Duration>,
) -> Result<Option<DateTime<Utc>>> {
    let row = client
        .query_typed_one(
            "SELECT minipaas.queue_extend($1, $2, $3 * interval '1 second')",
            &[
                (&id, Type::INT8),
                (&lease_token, Type::INT8),
                (&lease.map(seconds), Type::FLOAT8),
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

pub(crate) async fn release_lease<C: GenericClient + Sync>(
    client: &C,
    id: i64,
    lease_token: i64,
) -> Result<bool> {
    let row = client
        .query_typed_one(
            "SELECT minipaas.queue_release($1, $2)",
            &[(&id, Type::INT8), (&lease_token, Type::INT8)],
        )
        .await?;
    Ok(row.try_get(0)?)
}

pub(crate) async fn nack_lease<C: GenericClient + Sync>(
    client: &C,
    id: i64,
    lease_token: i64,
    error: &str,
    retry: Retry,
) -> Result<Option<NackOutcome>> {
    let (delay, again) = match retry {
        Retry::Backoff => (None, true),
        Retry::After(delay) => (Some(seconds(delay)), true),
        Retry::Never => (None, false),
    };
    let params: [Param<'_>; 5] = [
        (&id, Type::INT8),
        (&lease_token, Type::INT8),
        (&error, Type::TEXT),
        (&delay, Type::FLOAT8),
        (&again, Type::BOOL),
    ];
    let row = client
        .query_typed_opt(
            "SELECT outcome, retry_at FROM minipaas.queue_nack($1, $2, $3, $4 * interval '1 second', $5)",
            &params,
        )
        .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let outcome: String = row.try_get(0)?;
    let retry_at: Option<DateTime<Utc>> = row.try_get(1)?;
    Ok(Some(match (outcome.as_str(), retry_at) {
        ("retry", Some(at)) => NackOutcome::Retry { at },
        _ => NackOutcome::Dead,
    }))
}

pub(crate) async fn ack_lease<C: GenericClient + Sync>(
    client: &C,
    id: i64,
    lease_token: i64,
) -> Result<bool> {
    let row = client
        .query_typed_one(
            "SELECT minipaas.queue_ack($1, $2)",
            &[(&id, Type::INT8), (&lease_token, Type::INT8)],
        )
        .await?;
    Ok(row.try_get(0)?)
}

pub(crate) async fn ack_leases<C: GenericClient + Sync>(
    client: &C,
    ids: &[i64],
    lease_tokens: &[i64],
) -> Result<Vec<i64>> {
    let rows = client
        .query_typed(
            "SELECT minipaas.queue_ack_batch($1, $2)",
            &[(&ids, Type::INT8_ARRAY), (&lease_tokens, Type::INT8_ARRAY)],
        )
        .await?;
    rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
}
