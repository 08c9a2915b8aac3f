//! Browsing MiniPaaS's queues and streams one page at a time (what `strata console` shows): the figures of the
//! `queues` and `streams` checks for a page of queues or streams, a queue's messages by state and a stream's
//! events. The queries live beside the checks' (`inspect/checks/minipaas.rs`, every query on MiniPaaS's tables),
//! read only, and each reads the partial index of the state it lists.
//!
//! Changing state (redrive, delete) is not here: front ends call MiniPaaS's own SQL functions for that.

use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio_postgres::Client;

use crate::error::Result;
use crate::inspect::checks::minipaas as sql;
pub use crate::inspect::{GroupLag, QueueState, StreamState};

/// Which rows of a listing: `limit` rows after skipping `offset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Page {
    /// Rows skipped.
    pub offset: i64,
    /// Rows returned at most.
    pub limit: i64,
}

impl Page {
    /// Page `number` (from 1) of `size` rows.
    pub fn numbered(number: i64, size: i64) -> Page {
        let size = size.max(1);
        Page {
            offset: (number.max(1) - 1).saturating_mul(size),
            limit: size,
        }
    }
}

/// A message's delivery state, as the `queues` check counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum MessageState {
    /// Deliverable now.
    Ready,
    /// Deliverable later (a delay or a retry backoff).
    Delayed,
    /// Leased by a worker (its lease may have run out: then the next dequeue delivers it again).
    InFlight,
    /// Behind an earlier message with the same ordering key.
    Waiting,
    /// Dead-lettered after its last attempt.
    Dead,
    /// Acked, kept for the queue's retention.
    Done,
}

impl MessageState {
    /// Every state, in the order a message usually goes through them.
    pub const ALL: [MessageState; 6] = [
        MessageState::Ready,
        MessageState::Delayed,
        MessageState::InFlight,
        MessageState::Waiting,
        MessageState::Dead,
        MessageState::Done,
    ];

    /// The name used in URLs and JSON.
    pub fn name(self) -> &'static str {
        match self {
            MessageState::Ready => "ready",
            MessageState::Delayed => "delayed",
            MessageState::InFlight => "in-flight",
            MessageState::Waiting => "waiting",
            MessageState::Dead => "dead",
            MessageState::Done => "done",
        }
    }

    /// The state named `name` ([`MessageState::name`]).
    pub fn parse(name: &str) -> Option<MessageState> {
        MessageState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// How many messages of `queue` are in this state.
    pub fn count(self, queue: &QueueState) -> i64 {
        match self {
            MessageState::Ready => queue.ready,
            MessageState::Delayed => queue.delayed,
            MessageState::InFlight => queue.in_flight + queue.expired,
            MessageState::Waiting => queue.waiting,
            MessageState::Dead => queue.dead,
            MessageState::Done => queue.done,
        }
    }
}

/// One message of a queue, its payload cut to a preview.
#[derive(Debug, Clone, Serialize)]
pub struct QueueMessage {
    /// Message id (unique over all queues).
    pub id: i64,
    /// Its state.
    pub state: MessageState,
    /// Lower first.
    pub priority: i32,
    /// Deliveries so far.
    pub attempts: i32,
    /// When it was enqueued.
    pub enqueued_at: DateTime<Utc>,
    /// When it became (or becomes) deliverable.
    pub ready_at: DateTime<Utc>,
    /// When its lease runs out, while leased.
    pub lease_until: Option<DateTime<Utc>>,
    /// When it was acked or dead-lettered.
    pub finished_at: Option<DateTime<Utc>>,
    /// Deduplication key.
    pub dedup_key: Option<String>,
    /// Ordering key.
    pub ordering_key: Option<String>,
    /// The start of the payload's JSON text.
    pub payload_preview: String,
    /// The length of the payload's JSON text in bytes.
    pub payload_bytes: i64,
    /// The error history (`[{attempt, at, error}, …]`).
    pub errors: Option<serde_json::Value>,
}

/// One event of a stream, its payload cut to a preview.
#[derive(Debug, Clone, Serialize)]
pub struct StreamEvent {
    /// Partition.
    pub partition: i32,
    /// Offset (increasing in commit order within a partition).
    pub offset: i64,
    /// Key, if published with one.
    pub key: Option<String>,
    /// The key's version.
    pub key_version: Option<i64>,
    /// When it was published.
    pub published_at: DateTime<Utc>,
    /// The start of the payload's JSON text.
    pub payload_preview: String,
    /// The length of the payload's JSON text in bytes.
    pub payload_bytes: i64,
}

/// Queues whose name contains `filter` (every queue when empty), by name: one page of them and how many match.
pub async fn queues(client: &Client, filter: &str, page: Page) -> Result<(Vec<QueueState>, i64)> {
    sql::queue_page(client, filter, page).await
}

/// Every queue's state (for sampling), by name.
pub async fn all_queues(client: &Client) -> Result<Vec<QueueState>> {
    let page = Page {
        offset: 0,
        limit: i64::MAX,
    };
    Ok(sql::queue_page(client, "", page).await?.0)
}

/// The queue named `name`, if there is one.
pub async fn queue(client: &Client, name: &str) -> Result<Option<QueueState>> {
    sql::queue(client, name).await
}

/// One page of `queue`'s messages in `state` (ready and delayed ones in delivery order, dead ones oldest first,
/// done ones newest first), payloads cut after `preview` characters.
pub async fn messages(
    client: &Client,
    queue: &str,
    state: MessageState,
    page: Page,
    preview: i32,
) -> Result<Vec<QueueMessage>> {
    sql::queue_messages(client, queue, state, page, preview).await
}

/// Streams whose name contains `filter`, by name: one page of them (with each consumer group's lag) and how
/// many match.
pub async fn streams(client: &Client, filter: &str, page: Page) -> Result<(Vec<StreamState>, i64)> {
    sql::stream_page(client, filter, page).await
}

/// The stream named `name`, if there is one.
pub async fn stream(client: &Client, name: &str) -> Result<Option<StreamState>> {
    sql::stream(client, name).await
}

/// One page of `stream`'s events, newest first, payloads cut after `preview` characters.
pub async fn events(
    client: &Client,
    stream: &str,
    page: Page,
    preview: i32,
) -> Result<Vec<StreamEvent>> {
    sql::stream_events(client, stream, page, preview).await
}

/// How many messages were ever enqueued into any queue (`None` when the role may not read the sequence):
/// sampled over time, its growth is the enqueue rate.
pub async fn messages_enqueued(client: &Client) -> Result<Option<i64>> {
    sql::messages_enqueued(client).await
}

/// Whether MiniPaaS is installed in this database (its queue and stream tables exist).
pub async fn installed(client: &Client) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT to_regclass('minipaas.messages') IS NOT NULL
                AND to_regclass('minipaas.stream_events') IS NOT NULL",
            &[],
        )
        .await
        .map_err(crate::Error::db("looking for MiniPaaS"))?;
    Ok(row.get(0))
}
