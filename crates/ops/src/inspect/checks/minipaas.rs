//! MiniPaaS queues and streams (`packages/minipaas`). Every query against MiniPaaS's tables lives in this file, so
//! a change to its schema is mended here alone.
//!
//! The queries read the tables directly (not `queue_stats()` / `stream_group_lag()`): one statement covers every
//! queue or stream, works for a role with only SELECT, and never calls code that could take locks. Like
//! `queue_stats`, each queue count reads only the partial index of its state, never the queue's history.

use super::details::{Details, GroupLag, QueueState, StreamState};
use super::{CheckResult, Ctx, pretty_age};
use crate::error::{Error, Result};
use crate::inspect::{Findings, Verdict};
use crate::minipaas::{MessageState, Page, QueueMessage, StreamEvent};
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row};

/// The tables the queue check reads.
pub(crate) const QUEUE_TABLES: &[&str] = &["minipaas.queues", "minipaas.messages"];
/// The tables the stream check reads.
pub(crate) const STREAM_TABLES: &[&str] = &[
    "minipaas.streams",
    "minipaas.stream_events",
    "minipaas.stream_group_offsets",
];
/// All of them (probed up front).
pub(crate) const TABLES: &[&str] = &[
    "minipaas.queues",
    "minipaas.messages",
    "minipaas.streams",
    "minipaas.stream_events",
    "minipaas.stream_group_offsets",
];

/// Per queue: messages by delivery state. A message is `ready` until acked; among those, a lease running is in
/// flight, a lease run out is expired (the next dequeue delivers it again), no lease and `ready_at` ahead is
/// delayed. The age of the oldest deliverable message counts from when it became ready (`ready_at`), so a delay
/// or a retry backoff is not counted as lag.
const QUEUES_SQL: &str = "
SELECT q.name, r.ready, r.delayed, r.in_flight, r.expired,
       (SELECT count(*) FROM minipaas.messages m
         WHERE m.queue_id = q.queue_id AND m.ordering_key IS NOT NULL AND m.state = 'waiting')::int8,
       (SELECT count(*) FROM minipaas.messages m WHERE m.queue_id = q.queue_id AND m.state = 'dead')::int8,
       (SELECT count(*) FROM minipaas.messages m WHERE m.queue_id = q.queue_id AND m.state = 'done')::int8,
       extract(epoch FROM now() - r.oldest_ready_at)::float8,
       q.dead_letter_queue
  FROM QUEUES q
  CROSS JOIN LATERAL (
      SELECT count(*) FILTER (WHERE m.lease_until IS NULL AND m.ready_at <= now())::int8 AS ready,
             count(*) FILTER (WHERE m.lease_until IS NULL AND m.ready_at > now())::int8 AS delayed,
             count(*) FILTER (WHERE m.lease_until > now())::int8 AS in_flight,
             count(*) FILTER (WHERE m.lease_until <= now())::int8 AS expired,
             min(m.ready_at) FILTER (WHERE m.lease_until IS NULL AND m.ready_at <= now()) AS oldest_ready_at
        FROM minipaas.messages m
       WHERE m.queue_id = q.queue_id AND m.state = 'ready'
  ) r
 ORDER BY q.name";

/// [`QUEUES_SQL`] over the queues that `source` (a parenthesised query of `minipaas.queues` rows) selects.
fn queues_sql(source: &str) -> String {
    QUEUES_SQL.replace("FROM QUEUES q", &format!("FROM {source} q"))
}

fn queue_state(r: &Row) -> Result<QueueState, tokio_postgres::Error> {
    Ok(QueueState {
        name: r.try_get(0)?,
        ready: r.try_get(1)?,
        delayed: r.try_get(2)?,
        in_flight: r.try_get(3)?,
        expired: r.try_get(4)?,
        waiting: r.try_get(5)?,
        dead: r.try_get(6)?,
        done: r.try_get(7)?,
        oldest_ready_age_s: r.try_get(8)?,
        dead_letter_queue: r.try_get(9)?,
    })
}

pub(crate) async fn queues(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx.query(&queues_sql("minipaas.queues"), &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        out.push(queue_state(r)?);
    }
    let mut verdict = Verdict::Ok;
    let mut remarks = Vec::new();
    for q in &out {
        let by_age = match q.oldest_ready_age_s {
            Some(age) => Verdict::grade(
                age,
                s.queue_age_warning.seconds(),
                s.queue_age_problem.seconds(),
            ),
            None => Verdict::Ok,
        };
        let age = q.oldest_ready_age_s.unwrap_or(0.0);
        let by_dead = if q.dead > 0 {
            Verdict::grade(q.dead, s.dead_letters_warning, s.dead_letters_problem)
        } else {
            Verdict::Ok
        };
        if by_age > Verdict::Ok {
            remarks.push(format!("{}: oldest ready {} ago", q.name, pretty_age(age)));
        }
        if by_dead > Verdict::Ok {
            remarks.push(format!("{}: {} dead letter(s)", q.name, q.dead));
        }
        verdict = verdict.max(by_age).max(by_dead);
    }
    let depth: i64 = out.iter().map(|q| q.ready + q.delayed + q.waiting).sum();
    let in_flight: i64 = out.iter().map(|q| q.in_flight + q.expired).sum();
    let summary = if out.is_empty() {
        "no queues".to_string()
    } else {
        let mut s = format!(
            "{} queue(s), {depth} message(s) waiting, {in_flight} in flight",
            out.len()
        );
        if !remarks.is_empty() {
            s.push_str(&format!(" — {}", remarks.join("; ")));
        }
        s
    };
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::Queues(out),
    })
}

/// Per stream its events, and per consumer group (every group that ever committed) the events after its committed
/// offsets, over all partitions, with the publish time of the oldest of them.
const STREAMS_SQL: &str = "
WITH page AS (SELECT * FROM STREAMS),
groups AS (
    SELECT g.stream_id, g.group_name, sum(e.pending)::int8 AS pending, min(e.oldest) AS oldest,
           max(c.updated_at) AS last_commit
      FROM (SELECT DISTINCT o.stream_id, o.group_name FROM minipaas.stream_group_offsets o
             WHERE o.stream_id IN (SELECT page.stream_id FROM page)) g
      JOIN page st ON st.stream_id = g.stream_id
      CROSS JOIN LATERAL generate_series(0, st.partitions - 1) AS p(n)
      LEFT JOIN minipaas.stream_group_offsets c
             ON c.stream_id = g.stream_id AND c.group_name = g.group_name AND c.partition = p.n
      CROSS JOIN LATERAL (
          SELECT count(*) AS pending, min(ev.published_at) AS oldest
            FROM minipaas.stream_events ev
           WHERE ev.stream_id = g.stream_id AND ev.partition = p.n
             AND ev.event_offset > coalesce(c.committed_offset, 0)
      ) e
     GROUP BY g.stream_id, g.group_name
)
SELECT s.name, s.partitions, (SELECT count(*) FROM minipaas.stream_events ev WHERE ev.stream_id = s.stream_id)::int8,
       s.retention_age::text, s.retention_count,
       g.group_name, g.pending, extract(epoch FROM now() - g.oldest)::float8, g.last_commit
  FROM page s
  LEFT JOIN groups g ON g.stream_id = s.stream_id
 ORDER BY s.name, g.group_name";

/// [`STREAMS_SQL`] over the streams that `source` (a relation or parenthesised query of `minipaas.streams` rows)
/// selects.
fn streams_sql(source: &str) -> String {
    STREAMS_SQL.replace("FROM STREAMS)", &format!("FROM {source} AS sel)"))
}

/// The rows of [`STREAMS_SQL`] (one per stream and group, in stream order) as one state per stream.
fn stream_states(rows: &[Row]) -> Result<Vec<StreamState>, tokio_postgres::Error> {
    let mut out: Vec<StreamState> = Vec::new();
    for r in rows {
        let name: String = r.try_get(0)?;
        if out.last().is_none_or(|st| st.name != name) {
            out.push(StreamState {
                name,
                partitions: r.try_get(1)?,
                events: r.try_get(2)?,
                retention_age: r.try_get(3)?,
                retention_count: r.try_get(4)?,
                groups: Vec::new(),
            });
        }
        if let (Some(group), Some(stream)) = (r.try_get::<_, Option<String>>(5)?, out.last_mut()) {
            stream.groups.push(GroupLag {
                group,
                pending: r.try_get::<_, Option<i64>>(6)?.unwrap_or(0),
                oldest_pending_age_s: r.try_get(7)?,
                last_commit_at: r.try_get(8)?,
            });
        }
    }
    Ok(out)
}

pub(crate) async fn streams(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx.query(&streams_sql("minipaas.streams"), &[]).await?;
    let out = stream_states(&rows)?;
    let mut verdict = Verdict::Ok;
    let mut remarks = Vec::new();
    for st in &out {
        for g in &st.groups {
            // No pending event, no lag (whatever the thresholds).
            let Some(age) = g.oldest_pending_age_s.filter(|_| g.pending > 0) else {
                continue;
            };
            let v = Verdict::grade(
                age,
                s.stream_lag_warning.seconds(),
                s.stream_lag_problem.seconds(),
            );
            if v > Verdict::Ok {
                remarks.push(format!(
                    "{}/{}: {} event(s) behind, oldest {} old",
                    st.name,
                    g.group,
                    g.pending,
                    pretty_age(age)
                ));
            }
            verdict = verdict.max(v);
        }
    }
    let events: i64 = out.iter().map(|s| s.events).sum();
    let groups: usize = out.iter().map(|s| s.groups.len()).sum();
    let summary = if out.is_empty() {
        "no streams".to_string()
    } else {
        let mut s = format!(
            "{} stream(s), {events} event(s), {groups} consumer group(s)",
            out.len()
        );
        if !remarks.is_empty() {
            s.push_str(&format!(" — lagging: {}", remarks.join("; ")));
        }
        s
    };
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::Streams(out),
    })
}

// ---- Browsing (the console): the same figures for one page of queues or streams, and their messages and events.

/// Queues whose name contains `filter` (all when empty), by name: one page of states and the number of matches.
pub(crate) async fn queue_page(
    client: &Client,
    filter: &str,
    page: Page,
) -> Result<(Vec<QueueState>, i64)> {
    let sql = queues_sql(
        "(SELECT * FROM minipaas.queues WHERE strpos(name, $1) > 0 ORDER BY name OFFSET $2 LIMIT $3)",
    );
    let rows = client
        .query_typed(
            &sql,
            &[
                (&filter, Type::TEXT),
                (&page.offset, Type::INT8),
                (&page.limit, Type::INT8),
            ],
        )
        .await
        .map_err(Error::db("reading MiniPaaS queues"))?;
    let states = rows
        .iter()
        .map(queue_state)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::db("reading MiniPaaS queues"))?;
    let total: i64 = client
        .query_typed_one(
            "SELECT count(*) FROM minipaas.queues WHERE strpos(name, $1) > 0",
            &[(&filter, Type::TEXT)],
        )
        .await
        .map_err(Error::db("counting MiniPaaS queues"))?
        .get(0);
    Ok((states, total))
}

/// The state of the queue named `name`, if there is one.
pub(crate) async fn queue(client: &Client, name: &str) -> Result<Option<QueueState>> {
    let sql = queues_sql("(SELECT * FROM minipaas.queues WHERE name = $1)");
    let rows = client
        .query_typed(&sql, &[(&name, Type::TEXT)])
        .await
        .map_err(Error::db(format!("reading MiniPaaS queue {name}")))?;
    rows.first()
        .map(queue_state)
        .transpose()
        .map_err(Error::db(format!("reading MiniPaaS queue {name}")))
}

/// The condition and order of each state's messages, written so that each reads the partial index of its state.
fn state_clause(state: MessageState) -> &'static str {
    match state {
        MessageState::Ready => {
            "m.state = 'ready' AND m.lease_until IS NULL AND m.ready_at <= now() \
             ORDER BY m.priority, m.ready_at, m.id"
        }
        MessageState::Delayed => {
            "m.state = 'ready' AND m.lease_until IS NULL AND m.ready_at > now() \
             ORDER BY m.priority, m.ready_at, m.id"
        }
        MessageState::InFlight => {
            "m.state = 'ready' AND m.lease_until IS NOT NULL ORDER BY m.priority, m.ready_at, m.id"
        }
        MessageState::Waiting => "m.state = 'waiting' ORDER BY m.id",
        MessageState::Dead => "m.state = 'dead' ORDER BY m.id",
        MessageState::Done => "m.state = 'done' ORDER BY m.finished_at DESC, m.id",
    }
}

/// One page of a queue's messages in one state, with the first `preview` characters of each payload.
pub(crate) async fn queue_messages(
    client: &Client,
    queue: &str,
    state: MessageState,
    page: Page,
    preview: i32,
) -> Result<Vec<QueueMessage>> {
    let sql = format!(
        "SELECT m.id, m.priority::int4, m.attempts, m.enqueued_at, m.ready_at, m.lease_until, m.finished_at,
                m.dedup_key, m.ordering_key, left(m.payload::text, $4), octet_length(m.payload::text)::int8,
                m.errors
           FROM minipaas.messages m
          WHERE m.queue_id = (SELECT q.queue_id FROM minipaas.queues q WHERE q.name = $1)
            AND {}
         OFFSET $2 LIMIT $3",
        state_clause(state)
    );
    let context = || format!("reading the messages of MiniPaaS queue {queue}");
    let rows = client
        .query_typed(
            &sql,
            &[
                (&queue, Type::TEXT),
                (&page.offset, Type::INT8),
                (&page.limit, Type::INT8),
                (&preview, Type::INT4),
            ],
        )
        .await
        .map_err(Error::db(context()))?;
    let message = |r: &Row| -> Result<QueueMessage, tokio_postgres::Error> {
        Ok(QueueMessage {
            id: r.try_get(0)?,
            state,
            priority: r.try_get(1)?,
            attempts: r.try_get(2)?,
            enqueued_at: r.try_get(3)?,
            ready_at: r.try_get(4)?,
            lease_until: r.try_get(5)?,
            finished_at: r.try_get(6)?,
            dedup_key: r.try_get(7)?,
            ordering_key: r.try_get(8)?,
            payload_preview: r.try_get(9)?,
            payload_bytes: r.try_get(10)?,
            errors: r.try_get(11)?,
        })
    };
    rows.iter()
        .map(message)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::db(context()))
}

/// Streams whose name contains `filter`, by name: one page of states (with each group's lag) and the number of
/// matches.
pub(crate) async fn stream_page(
    client: &Client,
    filter: &str,
    page: Page,
) -> Result<(Vec<StreamState>, i64)> {
    let sql = streams_sql(
        "(SELECT * FROM minipaas.streams WHERE strpos(name, $1) > 0 ORDER BY name OFFSET $2 LIMIT $3)",
    );
    let rows = client
        .query_typed(
            &sql,
            &[
                (&filter, Type::TEXT),
                (&page.offset, Type::INT8),
                (&page.limit, Type::INT8),
            ],
        )
        .await
        .map_err(Error::db("reading MiniPaaS streams"))?;
    let states = stream_states(&rows).map_err(Error::db("reading MiniPaaS streams"))?;
    let total: i64 = client
        .query_typed_one(
            "SELECT count(*) FROM minipaas.streams WHERE strpos(name, $1) > 0",
            &[(&filter, Type::TEXT)],
        )
        .await
        .map_err(Error::db("counting MiniPaaS streams"))?
        .get(0);
    Ok((states, total))
}

/// The state of the stream named `name`, if there is one.
pub(crate) async fn stream(client: &Client, name: &str) -> Result<Option<StreamState>> {
    let sql = streams_sql("(SELECT * FROM minipaas.streams WHERE name = $1)");
    let rows = client
        .query_typed(&sql, &[(&name, Type::TEXT)])
        .await
        .map_err(Error::db(format!("reading MiniPaaS stream {name}")))?;
    Ok(stream_states(&rows)
        .map_err(Error::db(format!("reading MiniPaaS stream {name}")))?
        .pop())
}

/// One page of a stream's events, newest first (by publish time, then offset).
pub(crate) async fn stream_events(
    client: &Client,
    stream: &str,
    page: Page,
    preview: i32,
) -> Result<Vec<StreamEvent>> {
    let context = || format!("reading the events of MiniPaaS stream {stream}");
    let rows = client
        .query_typed(
            "SELECT e.partition, e.event_offset, e.key, e.key_version, e.published_at,
                    left(e.payload::text, $4), octet_length(e.payload::text)::int8
               FROM minipaas.stream_events e
              WHERE e.stream_id = (SELECT s.stream_id FROM minipaas.streams s WHERE s.name = $1)
              ORDER BY e.event_offset DESC, e.partition
             OFFSET $2 LIMIT $3",
            &[
                (&stream, Type::TEXT),
                (&page.offset, Type::INT8),
                (&page.limit, Type::INT8),
                (&preview, Type::INT4),
            ],
        )
        .await
        .map_err(Error::db(context()))?;
    let event = |r: &Row| -> Result<StreamEvent, tokio_postgres::Error> {
        Ok(StreamEvent {
            partition: r.try_get(0)?,
            offset: r.try_get(1)?,
            key: r.try_get(2)?,
            key_version: r.try_get(3)?,
            published_at: r.try_get(4)?,
            payload_preview: r.try_get(5)?,
            payload_bytes: r.try_get(6)?,
        })
    };
    rows.iter()
        .map(event)
        .collect::<Result<Vec<_>, _>>()
        .map_err(Error::db(context()))
}

/// How many messages were ever enqueued (the identity sequence of `minipaas.messages`), when the role may read
/// it: sampled over time, its growth is the enqueue rate of all queues together.
pub(crate) async fn messages_enqueued(client: &Client) -> Result<Option<i64>> {
    let row = client
        .query_typed_one(
            "SELECT CASE WHEN has_sequence_privilege(s.seq, 'SELECT') THEN pg_sequence_last_value(s.seq) END
               FROM (SELECT pg_get_serial_sequence('minipaas.messages', 'id')::regclass AS seq) s",
            &[],
        )
        .await
        .map_err(Error::db("reading the MiniPaaS message sequence"))?;
    Ok(row.get(0))
}
