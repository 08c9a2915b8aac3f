//! MiniPaaS queues and streams (`packages/minipaas`). Every query against MiniPaaS's tables lives in this file, so
//! a change to its schema is mended here alone.
//!
//! The queries read the tables directly (not `queue_stats()` / `stream_group_lag()`): one statement covers every
//! queue or stream, works for a role with only SELECT, and never calls code that could take locks. Like
//! `queue_stats`, each queue count reads only the partial index of its state, never the queue's history.

use super::details::{Details, GroupLag, QueueState, StreamState};
use super::{CheckResult, Ctx, pretty_age};
use crate::inspect::{Findings, Verdict};

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
  FROM minipaas.queues q
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

pub(crate) async fn queues(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx.query(QUEUES_SQL, &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(QueueState {
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
        });
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
WITH groups AS (
    SELECT g.stream_id, g.group_name, sum(e.pending)::int8 AS pending, min(e.oldest) AS oldest,
           max(c.updated_at) AS last_commit
      FROM (SELECT DISTINCT o.stream_id, o.group_name FROM minipaas.stream_group_offsets o) g
      JOIN minipaas.streams st ON st.stream_id = g.stream_id
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
  FROM minipaas.streams s
  LEFT JOIN groups g ON g.stream_id = s.stream_id
 ORDER BY s.name, g.group_name";

pub(crate) async fn streams(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx.query(STREAMS_SQL, &[]).await?;
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
