//! Streams: an ordered, replayable log; consumer groups keep their committed offsets in the database.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{GenericClient, Row};

use crate::common::{check_name, decode, encode, seconds, sql_count};
use crate::error::{Error, Result};
use crate::queue::MAX_BATCH;

type Param<'a> = (&'a (dyn ToSql + Sync), Type);

/// A typed handle on a stream: its name and the event payload type `T` (serde JSON).
///
/// Offsets only grow, and a reader never skips an event that commits after one it has seen: offsets follow
/// transaction ids and reads stop below the oldest transaction still running (see `streams.sql`). So a
/// consumer can store "everything up to offset X is done" and trust it.
///
/// ```no_run
/// # async fn demo(client: &tokio_postgres::Client) -> minipaas::Result<()> {
/// #[derive(serde::Serialize, serde::Deserialize, Debug)]
/// struct Signup { user: i64 }
///
/// let stream = minipaas::Stream::<Signup>::new("activity_log")?;
/// let offset = stream.publish(client, &Signup { user: 12 }).await?;
/// for event in stream.read(client, offset - 1, 100).await? {
///     println!("{} {:?}", event.offset, event.payload);
/// }
/// # Ok(()) }
/// ```
pub struct Stream<T> {
    name: String,
    payload: PhantomData<fn() -> T>,
}

impl<T> Clone for Stream<T> {
    fn clone(&self) -> Self {
        Stream {
            name: self.name.clone(),
            payload: PhantomData,
        }
    }
}

impl<T> fmt::Debug for Stream<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stream").field("name", &self.name).finish()
    }
}

/// Options of a stream; `None` keeps the current value (or the default for a new stream).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamOptions {
    /// Partitions, 1..=256, fixed at creation (default 1). Events with a key go to the key's partition.
    pub partitions: Option<u32>,
    /// Trim events older than this (zero turns it off).
    pub retention_age: Option<Duration>,
    /// Keep at most this many events per partition (zero turns it off).
    pub retention_count: Option<u64>,
}

/// Per-event options of [`Stream::publish_with`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishOptions {
    /// The entity the event belongs to: per-key versions 1, 2, ..., and the partition.
    pub key: Option<String>,
    /// Publishing an id the stream still holds returns the earlier event's offset instead.
    pub dedup_id: Option<String>,
    /// Optimistic concurrency: the key's current version must be this (0: no events yet), else
    /// [`Error::WrongExpectedVersion`].
    pub expected_version: Option<i64>,
}

/// An event read from a stream.
#[derive(Debug, Clone, PartialEq)]
pub struct Event<T> {
    /// Its offset.
    pub offset: i64,
    /// Its partition.
    pub partition: i32,
    /// Its key, if published with one.
    pub key: Option<String>,
    /// Its version within the key.
    pub key_version: Option<i64>,
    /// Its dedup id, if any.
    pub dedup_id: Option<String>,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// The decoded payload.
    pub payload: T,
}

/// A consumer group's position in one partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (0: nothing yet).
    pub committed_offset: i64,
    /// The newest event's offset, if any.
    pub latest_offset: Option<i64>,
    /// Readable events after the committed offset.
    pub pending: i64,
    /// Committed events not readable yet because an older transaction is still open.
    pub held_back: i64,
}

const EVENT_COLUMNS: &str =
    "event_offset, partition, key, key_version, dedup_id, published_at, payload";

fn event<T: DeserializeOwned>(row: &Row) -> Result<Event<T>> {
    let offset: i64 = row.try_get(0)?;
    Ok(Event {
        offset,
        partition: row.try_get(1)?,
        key: row.try_get(2)?,
        key_version: row.try_get(3)?,
        dedup_id: row.try_get(4)?,
        published_at: row.try_get(5)?,
        payload: decode(row.try_get(6)?, || format!("the event at offset {offset}"))?,
    })
}

fn partition_arg(partition: Option<u32>) -> Result<Option<i32>> {
    partition
        .map(|p| {
            i32::try_from(p)
                .map_err(|_| Error::InvalidArgument(format!("partition {p} is out of range")))
        })
        .transpose()
}

impl<T> Stream<T> {
    /// The stream's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl<T> Stream<T>
where
    T: Serialize + DeserializeOwned,
{
    /// A handle on stream `name` (checked against the package's naming rule; nothing is created yet).
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        check_name("stream", &name)?;
        Ok(Stream {
            name,
            payload: PhantomData,
        })
    }

    /// Creates the stream or changes its retention; true if it was created.
    pub async fn create<C: GenericClient + Sync>(
        &self,
        client: &C,
        options: &StreamOptions,
    ) -> Result<bool> {
        let partitions = options
            .partitions
            .map(|p| {
                i32::try_from(p)
                    .map_err(|_| Error::InvalidArgument(format!("{p} partitions are too many")))
            })
            .transpose()?;
        let count = options
            .retention_count
            .map(|n| {
                i64::try_from(n).map_err(|_| {
                    Error::InvalidArgument(format!("retention count {n} is too large"))
                })
            })
            .transpose()?;
        let params: [Param<'_>; 4] = [
            (&self.name, Type::TEXT),
            (&partitions, Type::INT4),
            (&options.retention_age.map(seconds), Type::FLOAT8),
            (&count, Type::INT8),
        ];
        let row = client
            .query_typed_one(
                "SELECT minipaas.stream_create($1, $2, $3 * interval '1 second', $4)",
                &params,
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Drops the stream, its events and its consumer groups; false if there was no such stream.
    pub async fn drop_stream<C: GenericClient + Sync>(&self, client: &C) -> Result<bool> {
        let row = client
            .query_typed_one(
                "SELECT minipaas.stream_drop($1, true)",
                &[(&self.name, Type::TEXT)],
            )
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Publishes an event (in the caller's transaction, if `client` is one) and returns its offset.
    pub async fn publish<C: GenericClient + Sync>(&self, client: &C, payload: &T) -> Result<i64> {
        self.publish_with(client, payload, &PublishOptions::default())
            .await
    }

    /// [`publish`](Self::publish) with a key, dedup id or expected version. A keyed publish from a transaction
    /// older than the key's latest writer fails with a retryable error ([`Error::is_retryable`]).
    pub async fn publish_with<C: GenericClient + Sync>(
        &self,
        client: &C,
        payload: &T,
        options: &PublishOptions,
    ) -> Result<i64> {
        let payload = encode(payload)?;
        let params: [Param<'_>; 5] = [
            (&self.name, Type::TEXT),
            (&payload, Type::JSONB),
            (&options.key, Type::TEXT),
            (&options.dedup_id, Type::TEXT),
            (&options.expected_version, Type::INT8),
        ];
        let row = client
            .query_typed_one(
                "SELECT minipaas.stream_publish($1, $2, $3, $4, $5)",
                &params,
            )
            .await
            .map_err(Error::from_db)?;
        Ok(row.try_get(0)?)
    }

    /// Publishes up to [`MAX_BATCH`] events in one round trip, all or nothing; offsets in input order.
    pub async fn publish_batch<C: GenericClient + Sync>(
        &self,
        client: &C,
        payloads: &[T],
    ) -> Result<Vec<i64>> {
        if payloads.is_empty() {
            return Ok(Vec::new());
        }
        sql_count("a batch", payloads.len(), MAX_BATCH)?;
        let payloads = payloads.iter().map(encode).collect::<Result<Vec<_>>>()?;
        let rows = client
            .query_typed(
                "SELECT minipaas.stream_publish_batch($1, $2)",
                &[(&self.name, Type::TEXT), (&payloads, Type::JSONB_ARRAY)],
            )
            .await
            .map_err(Error::from_db)?;
        rows.iter().map(|row| Ok(row.try_get(0)?)).collect()
    }

    /// Up to `max` events after `after_offset` (0: from the start), in offset order, across all partitions.
    pub async fn read<C: GenericClient + Sync>(
        &self,
        client: &C,
        after_offset: i64,
        max: usize,
    ) -> Result<Vec<Event<T>>> {
        self.read_partition(client, None, after_offset, max).await
    }

    /// [`read`](Self::read) of one partition, or of all with `None`.
    pub async fn read_partition<C: GenericClient + Sync>(
        &self,
        client: &C,
        partition: Option<u32>,
        after_offset: i64,
        max: usize,
    ) -> Result<Vec<Event<T>>> {
        let max = sql_count("max", max, MAX_BATCH)?;
        let partition = partition_arg(partition)?;
        let params: [Param<'_>; 4] = [
            (&self.name, Type::TEXT),
            (&after_offset, Type::INT8),
            (&max, Type::INT4),
            (&partition, Type::INT4),
        ];
        let rows = client
            .query_typed(
                &format!("SELECT {EVENT_COLUMNS} FROM minipaas.stream_consume($1, $2, $3, $4)"),
                &params,
            )
            .await?;
        rows.iter().map(event).collect()
    }

    /// The events of one key after `after_version` (0: from its first), in version order.
    pub async fn read_key<C: GenericClient + Sync>(
        &self,
        client: &C,
        key: &str,
        after_version: i64,
        max: usize,
    ) -> Result<Vec<Event<T>>> {
        let max = sql_count("max", max, MAX_BATCH)?;
        let params: [Param<'_>; 4] = [
            (&self.name, Type::TEXT),
            (&key, Type::TEXT),
            (&after_version, Type::INT8),
            (&max, Type::INT4),
        ];
        let rows = client
            .query_typed(
                "SELECT event_offset, partition, $2::text, key_version, dedup_id, published_at, payload \
                   FROM minipaas.stream_read_key($1, $2, $3, $4)",
                &params,
            )
            .await?;
        rows.iter().map(event).collect()
    }

    /// Applies the stream's retention now; returns the number of events deleted.
    pub async fn trim<C: GenericClient + Sync>(&self, client: &C) -> Result<u64> {
        let row = client
            .query_typed_one(
                "SELECT minipaas.stream_trim($1)",
                &[(&self.name, Type::TEXT)],
            )
            .await?;
        let n: i64 = row.try_get(0)?;
        Ok(u64::try_from(n).unwrap_or_default())
    }

    /// A consumer group `group` on this stream.
    pub fn consumer(&self, group: impl Into<String>) -> Result<Consumer<T>> {
        Consumer::new(self.clone(), group)
    }
}

/// A member of a consumer group: consumes events after the group's committed offsets, then commits.
///
/// Committed offsets live in the database, so a commit can share the transaction of the work it records:
/// consume, write your results and commit the offset in one transaction, and each event's effects happen
/// exactly once. Members that do so split the partitions between them (a partition held by another member's
/// open transaction is skipped).
///
/// ```no_run
/// # async fn demo(client: &mut tokio_postgres::Client) -> minipaas::Result<()> {
/// let stream = minipaas::Stream::<serde_json::Value>::new("activity_log")?;
/// let consumer = stream.consumer("billing")?;
/// loop {
///     let tx = client.transaction().await?;
///     let events = consumer.consume(&tx).await?;
///     if events.is_empty() {
///         break;
///     }
///     for event in &events {
///         tx.execute("INSERT INTO billing_log (event) VALUES ($1)", &[&event.payload]).await?;
///     }
///     consumer.commit(&tx, &events).await?;
///     tx.commit().await?;
/// }
/// # Ok(()) }
/// ```
pub struct Consumer<T> {
    stream: Stream<T>,
    group: String,
    batch_size: usize,
    partition: Option<u32>,
}

impl<T> Clone for Consumer<T> {
    fn clone(&self) -> Self {
        Consumer {
            stream: self.stream.clone(),
            group: self.group.clone(),
            batch_size: self.batch_size,
            partition: self.partition,
        }
    }
}

impl<T> fmt::Debug for Consumer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Consumer")
            .field("stream", &self.stream.name)
            .field("group", &self.group)
            .field("batch_size", &self.batch_size)
            .field("partition", &self.partition)
            .finish()
    }
}

impl<T> Consumer<T>
where
    T: Serialize + DeserializeOwned,
{
    /// A member of consumer group `group` on `stream`, reading 100 events per call from every partition.
    pub fn new(stream: Stream<T>, group: impl Into<String>) -> Result<Self> {
        let group = group.into();
        check_name("consumer group", &group)?;
        Ok(Consumer {
            stream,
            group,
            batch_size: 100,
            partition: None,
        })
    }

    /// Reads up to `batch_size` events per call (1..=[`MAX_BATCH`]).
    pub fn with_batch_size(mut self, batch_size: usize) -> Result<Self> {
        sql_count("the batch size", batch_size, MAX_BATCH)?;
        self.batch_size = batch_size;
        Ok(self)
    }

    /// Reads only this partition (static assignment of partitions to members).
    pub fn with_partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// The group's name.
    pub fn group(&self) -> &str {
        &self.group
    }

    /// The next events after the group's committed offsets, in offset order. Empty when the group is caught
    /// up (or every partition is held by another member's open transaction).
    pub async fn consume<C: GenericClient + Sync>(&self, client: &C) -> Result<Vec<Event<T>>> {
        let max = sql_count("the batch size", self.batch_size, MAX_BATCH)?;
        let partition = partition_arg(self.partition)?;
        let params: [Param<'_>; 4] = [
            (&self.stream.name, Type::TEXT),
            (&self.group, Type::TEXT),
            (&max, Type::INT4),
            (&partition, Type::INT4),
        ];
        let rows = client
            .query_typed(
                &format!(
                    "SELECT {EVENT_COLUMNS} FROM minipaas.stream_group_consume($1, $2, $3, $4)"
                ),
                &params,
            )
            .await?;
        rows.iter().map(event).collect()
    }

    /// Commits the group past these events: the highest offset per partition. Commits only move forward.
    pub async fn commit<C: GenericClient + Sync>(
        &self,
        client: &C,
        events: &[Event<T>],
    ) -> Result<()> {
        let mut highest: BTreeMap<i32, i64> = BTreeMap::new();
        for event in events {
            let entry = highest.entry(event.partition).or_insert(event.offset);
            *entry = (*entry).max(event.offset);
        }
        for (partition, offset) in highest {
            self.set(client, "stream_group_commit", offset, Some(partition))
                .await?;
        }
        Ok(())
    }

    /// Commits the group up to `offset` in `partition` (`None`: the partition of the event at `offset`).
    pub async fn commit_offset<C: GenericClient + Sync>(
        &self,
        client: &C,
        offset: i64,
        partition: Option<u32>,
    ) -> Result<()> {
        self.set(
            client,
            "stream_group_commit",
            offset,
            partition_arg(partition)?,
        )
        .await
    }

    /// Moves the group to `offset`, backwards (replay; 0 = from the beginning) or forwards, in `partition` or
    /// in all partitions.
    pub async fn seek<C: GenericClient + Sync>(
        &self,
        client: &C,
        offset: i64,
        partition: Option<u32>,
    ) -> Result<()> {
        self.set(
            client,
            "stream_group_seek",
            offset,
            partition_arg(partition)?,
        )
        .await
    }

    async fn set<C: GenericClient + Sync>(
        &self,
        client: &C,
        function: &str,
        offset: i64,
        partition: Option<i32>,
    ) -> Result<()> {
        let params: [Param<'_>; 4] = [
            (&self.stream.name, Type::TEXT),
            (&self.group, Type::TEXT),
            (&offset, Type::INT8),
            (&partition, Type::INT4),
        ];
        client
            .query_typed(
                &format!("SELECT minipaas.{function}($1, $2, $3, $4)"),
                &params,
            )
            .await?;
        Ok(())
    }

    /// The group's position and lag in every partition.
    pub async fn lag<C: GenericClient + Sync>(&self, client: &C) -> Result<Vec<PartitionLag>> {
        let rows = client
            .query_typed(
                "SELECT partition, committed_offset, latest_offset, pending, held_back \
                   FROM minipaas.stream_group_lag($1, $2)",
                &[(&self.stream.name, Type::TEXT), (&self.group, Type::TEXT)],
            )
            .await?;
        rows.iter()
            .map(|row| {
                Ok(PartitionLag {
                    partition: row.try_get(0)?,
                    committed_offset: row.try_get(1)?,
                    latest_offset: row.try_get(2)?,
                    pending: row.try_get(3)?,
                    held_back: row.try_get(4)?,
                })
            })
            .collect()
    }
}
