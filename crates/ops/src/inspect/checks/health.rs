//! Server health: wraparound, long transactions, lock chains, connections, cache hits, replication slots,
//! checkpoints.

use super::details::{
    CacheHit, Checkpoints, Connections, Details, LockedSession, ReplicationSlot, Transaction,
    Wraparound, XidAge,
};
use super::{CheckResult, Ctx, SYSTEM_SCHEMAS, pretty_age, pretty_bytes, qualified, ratio};
use crate::inspect::{Findings, Verdict};

/// Every database, then this database's oldest tables (TOAST included: they freeze separately).
const WRAPAROUND_SQL: &str = "
SELECT x.*, current_setting('autovacuum_freeze_max_age')::int8,
       current_setting('autovacuum_multixact_freeze_max_age')::int8
  FROM (
    SELECT * FROM (
        SELECT NULL::text, d.datname::text, age(d.datfrozenxid)::int8, mxid_age(d.datminmxid)::int8
          FROM pg_catalog.pg_database d
         ORDER BY 3 DESC, 2
    ) dbs
    UNION ALL
    SELECT * FROM (
    SELECT n.nspname::text, c.relname::text, age(c.relfrozenxid)::int8, mxid_age(c.relminmxid)::int8
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'm', 't') AND c.relfrozenxid <> '0'
     ORDER BY greatest(age(c.relfrozenxid), mxid_age(c.relminmxid)) DESC, 1, 2
     LIMIT $1
    ) tbls
) x";

pub(super) async fn wraparound(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx.query(WRAPAROUND_SQL, &[&ctx.top()]).await?;
    let (freeze_max, mxid_freeze_max) = match rows.first() {
        Some(r) => (r.try_get(4)?, r.try_get(5)?),
        None => (0, 0),
    };
    let mut w = Wraparound {
        autovacuum_freeze_max_age: freeze_max,
        autovacuum_multixact_freeze_max_age: mxid_freeze_max,
        databases: Vec::new(),
        tables: Vec::new(),
    };
    for r in rows {
        let age = XidAge {
            schema: r.try_get(0)?,
            name: r.try_get(1)?,
            xid_age: r.try_get(2)?,
            multixact_age: r.try_get(3)?,
        };
        if age.schema.is_some() {
            w.tables.push(age);
        } else {
            w.databases.push(age);
        }
    }
    let all = || w.databases.iter().chain(&w.tables);
    let oldest_xid = all().max_by_key(|a| a.xid_age);
    let oldest_mxid = all().max_by_key(|a| a.multixact_age);
    let xid = oldest_xid.map_or(0, |a| a.xid_age);
    let mxid = oldest_mxid.map_or(0, |a| a.multixact_age);
    let verdict = Verdict::grade(xid, s.xid_age_warning, s.xid_age_problem).max(Verdict::grade(
        mxid,
        s.multixact_age_warning,
        s.multixact_age_problem,
    ));
    let name = |a: Option<&XidAge>| match a {
        Some(XidAge {
            schema: Some(schema),
            name,
            ..
        }) => format!("table {}", qualified(schema, name)),
        Some(a) => format!("database {}", a.name),
        None => "-".into(),
    };
    // Wraparound stops writes at 2^31 - 3 million.
    let left = |age: i64| {
        2_147_483_647_i64
            .saturating_sub(3_000_000)
            .saturating_sub(age)
    };
    let summary = format!(
        "oldest xid age {xid} ({}; {:.1}% of the way to wraparound), multixact age {mxid} ({})",
        name(oldest_xid),
        100.0 - ratio(left(xid), 2_144_483_647) * 100.0,
        name(oldest_mxid)
    );
    let mut notes = Vec::new();
    if xid > freeze_max && freeze_max > 0 {
        notes.push(format!(
            "xid age is past autovacuum_freeze_max_age ({freeze_max}): anti-wraparound autovacuum should be running; \
             a long transaction or an abandoned replication slot can stop it from freezing"
        ));
    }
    Ok(Findings {
        verdict,
        summary,
        notes,
        limited: Vec::new(),
        details: Details::Wraparound(w),
    })
}

/// Client sessions in a transaction older than the warning threshold, or idle inside one for longer than its
/// threshold; prepared transactions of any age above the first threshold (they hold back vacuum just the same).
const LONG_TRANSACTIONS_SQL: &str = "
SELECT * FROM (
    SELECT a.pid, a.usename::text, a.datname::text, a.application_name, a.state,
           extract(epoch FROM now() - a.xact_start)::float8 AS xact_age,
           extract(epoch FROM now() - a.state_change)::float8, a.query
      FROM pg_catalog.pg_stat_activity a
     WHERE a.pid <> pg_catalog.pg_backend_pid() AND a.backend_type = 'client backend' AND a.xact_start IS NOT NULL
       AND (now() - a.xact_start >= make_interval(secs => $1)
            OR (a.state LIKE 'idle in transaction%' AND now() - a.state_change >= make_interval(secs => $2)))
    UNION ALL
    SELECT NULL::int4, p.owner::text, p.database::text, NULL, 'prepared',
           extract(epoch FROM now() - p.prepared)::float8, extract(epoch FROM now() - p.prepared)::float8,
           'PREPARE TRANSACTION ' || quote_literal(p.gid)
      FROM pg_catalog.pg_prepared_xacts p
     WHERE now() - p.prepared >= make_interval(secs => $1)
) x
ORDER BY xact_age DESC NULLS LAST
LIMIT $3";

pub(super) async fn long_transactions(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx
        .query(
            LONG_TRANSACTIONS_SQL,
            &[
                &s.long_transaction_warning.seconds(),
                &s.idle_in_transaction_warning.seconds(),
                &ctx.top(),
            ],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Transaction {
            pid: r.try_get(0)?,
            user: r.try_get(1)?,
            database: r.try_get(2)?,
            application: r.try_get(3)?,
            state: r.try_get(4)?,
            transaction_age_s: r.try_get(5)?,
            state_age_s: r.try_get(6)?,
            query: r.try_get(7)?,
        });
    }
    let mut verdict = Verdict::Ok;
    let (mut long, mut idle) = (0, 0);
    for t in &out {
        let xact = t.transaction_age_s.unwrap_or(0.0);
        let v_long = Verdict::grade(
            xact,
            s.long_transaction_warning.seconds(),
            s.long_transaction_problem.seconds(),
        );
        let is_idle = t
            .state
            .as_deref()
            .is_some_and(|st| st.starts_with("idle in transaction"));
        let v_idle = if is_idle {
            Verdict::grade(
                t.state_age_s.unwrap_or(0.0),
                s.idle_in_transaction_warning.seconds(),
                s.idle_in_transaction_problem.seconds(),
            )
        } else {
            Verdict::Ok
        };
        if v_long > Verdict::Ok {
            long += 1;
        }
        if v_idle > Verdict::Ok {
            idle += 1;
        }
        verdict = verdict.max(v_long).max(v_idle);
    }
    let summary = match out.first() {
        None => format!(
            "no transaction older than {}, no session idle in a transaction for {}",
            s.long_transaction_warning, s.idle_in_transaction_warning
        ),
        Some(t) => format!(
            "{long} transaction(s) older than {}, {idle} session(s) idle in a transaction for {}+; oldest: {} \
             ({}, {})",
            s.long_transaction_warning,
            s.idle_in_transaction_warning,
            t.pid
                .map_or_else(|| "prepared".to_string(), |p| format!("pid {p}")),
            t.state.as_deref().unwrap_or("?"),
            pretty_age(t.transaction_age_s.unwrap_or(0.0))
        ),
    };
    Ok(Findings {
        verdict,
        summary,
        notes: vec![
            "long transactions hold back vacuum (dead tuples, wraparound) and MiniPaaS stream readers".into(),
        ],
        limited: Vec::new(),
        details: Details::Transactions(out),
    })
}

/// Sessions waiting for a heavyweight lock and everyone they wait for (`pg_blocking_pids`), with the lock awaited
/// and since when (`pg_locks.waitstart`, PostgreSQL 14+).
const BLOCKING_LOCKS_SQL: &str = "
WITH waiting AS (
    SELECT a.pid, pg_catalog.pg_blocking_pids(a.pid) AS blocked_by
      FROM pg_catalog.pg_stat_activity a
     WHERE a.wait_event_type = 'Lock'
),
involved AS (
    SELECT pid FROM waiting WHERE cardinality(blocked_by) > 0
    UNION
    SELECT unnest(blocked_by) FROM waiting
)
SELECT a.pid, a.usename::text, a.datname::text, a.state, a.query,
       extract(epoch FROM now() - a.xact_start)::float8,
       (SELECT extract(epoch FROM now() - coalesce(l.waitstart, a.query_start))::float8
          FROM pg_catalog.pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1),
       (SELECT l.mode || ' on ' || CASE WHEN l.relation IS NOT NULL THEN l.relation::regclass::text
                                        ELSE l.locktype END
          FROM pg_catalog.pg_locks l WHERE l.pid = a.pid AND NOT l.granted LIMIT 1),
       coalesce(w.blocked_by, '{}')
  FROM involved i
  JOIN pg_catalog.pg_stat_activity a ON a.pid = i.pid
  LEFT JOIN waiting w ON w.pid = a.pid
 ORDER BY a.xact_start NULLS LAST, a.pid";

pub(super) async fn blocking_locks(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx.query(BLOCKING_LOCKS_SQL, &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(LockedSession {
            pid: r.try_get(0)?,
            user: r.try_get(1)?,
            database: r.try_get(2)?,
            state: r.try_get(3)?,
            query: r.try_get(4)?,
            transaction_age_s: r.try_get(5)?,
            waiting_s: r.try_get(6)?,
            waiting_for: r.try_get(7)?,
            blocked_by: r.try_get(8)?,
        });
    }
    let waiting: Vec<&LockedSession> = out.iter().filter(|l| !l.blocked_by.is_empty()).collect();
    let longest = waiting
        .iter()
        .filter_map(|l| l.waiting_s)
        .fold(0.0, f64::max);
    let verdict = if waiting.is_empty() {
        Verdict::Ok
    } else {
        Verdict::grade(
            longest,
            s.lock_wait_warning.seconds(),
            s.lock_wait_problem.seconds(),
        )
    };
    let roots: Vec<String> = out
        .iter()
        .filter(|l| l.blocked_by.is_empty())
        .map(|l| l.pid.to_string())
        .collect();
    let summary = if waiting.is_empty() {
        "no session is waiting for a lock".to_string()
    } else {
        format!(
            "{} session(s) waiting for locks, the longest for {}; held by pid {}",
            waiting.len(),
            pretty_age(longest),
            if roots.is_empty() {
                "(a cycle)".to_string()
            } else {
                roots.join(", ")
            }
        )
    };
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::BlockingLocks(out),
    })
}

/// Client connections against `max_connections` less the reserved slots (`reserved_connections` exists from 16).
fn connections_sql(version: i32) -> String {
    let reserved = if version >= 160_000 {
        "current_setting('superuser_reserved_connections')::int8 + current_setting('reserved_connections')::int8"
    } else {
        "current_setting('superuser_reserved_connections')::int8"
    };
    format!(
        "WITH a AS (SELECT state, datname FROM pg_catalog.pg_stat_activity WHERE backend_type = 'client backend')
SELECT (SELECT count(*) FROM a)::int8, current_setting('max_connections')::int8, {reserved},
       ARRAY(SELECT coalesce(state, 'unknown') FROM a GROUP BY 1 ORDER BY count(*) DESC, 1),
       ARRAY(SELECT count(*)::int8 FROM a GROUP BY coalesce(state, 'unknown') ORDER BY count(*) DESC, coalesce(state, 'unknown')),
       ARRAY(SELECT coalesce(datname::text, '-') FROM a GROUP BY 1 ORDER BY count(*) DESC, 1),
       ARRAY(SELECT count(*)::int8 FROM a GROUP BY coalesce(datname::text, '-') ORDER BY count(*) DESC, coalesce(datname::text, '-'))"
    )
}

pub(super) async fn connections(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx.query(&connections_sql(ctx.version()), &[]).await?;
    let Some(r) = rows.first() else {
        return Err(super::CheckError::Unexpected(
            "the connections query returned no row".into(),
        ));
    };
    let used: i64 = r.try_get(0)?;
    let max: i64 = r.try_get(1)?;
    let reserved: i64 = r.try_get(2)?;
    let states: Vec<String> = r.try_get(3)?;
    let state_counts: Vec<i64> = r.try_get(4)?;
    let dbs: Vec<String> = r.try_get(5)?;
    let db_counts: Vec<i64> = r.try_get(6)?;
    let share = ratio(used, (max - reserved).max(1));
    let verdict = Verdict::grade(share, s.connections_warning, s.connections_problem);
    let by_state: Vec<(String, i64)> = states.into_iter().zip(state_counts).collect();
    let summary = format!(
        "{used} of {} connections in use ({:.0}%; {}){}",
        max - reserved,
        share * 100.0,
        by_state
            .iter()
            .map(|(st, n)| format!("{n} {st}"))
            .collect::<Vec<_>>()
            .join(", "),
        if verdict > Verdict::Ok {
            " — a connection pooler (PgBouncer) keeps this down"
        } else {
            ""
        }
    );
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::Connections(Connections {
            used,
            max_connections: max,
            reserved,
            ratio: share,
            by_state,
            by_database: dbs.into_iter().zip(db_counts).collect(),
        }),
    })
}

/// Below this many block accesses a ratio says nothing.
const MIN_BLOCKS: i64 = 1_000;

/// What `pg_statio_user_tables` sums, from the statistics functions directly (the view sums each table's indexes
/// per row): blocks found in shared buffers and blocks read, for tables and for their indexes.
fn cache_hit_sql() -> String {
    format!(
        "SELECT coalesce(sum(pg_catalog.pg_stat_get_blocks_hit(c.oid)) FILTER (WHERE c.relkind IN ('r', 'm')), 0)::int8,
       coalesce(sum(pg_catalog.pg_stat_get_blocks_fetched(c.oid) - pg_catalog.pg_stat_get_blocks_hit(c.oid))
                FILTER (WHERE c.relkind IN ('r', 'm')), 0)::int8,
       coalesce(sum(pg_catalog.pg_stat_get_blocks_hit(c.oid)) FILTER (WHERE c.relkind = 'i'), 0)::int8,
       coalesce(sum(pg_catalog.pg_stat_get_blocks_fetched(c.oid) - pg_catalog.pg_stat_get_blocks_hit(c.oid))
                FILTER (WHERE c.relkind = 'i'), 0)::int8,
       (SELECT d.blks_hit FROM pg_catalog.pg_stat_database d WHERE d.datname = current_database()),
       (SELECT d.blks_read FROM pg_catalog.pg_stat_database d WHERE d.datname = current_database())
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'm', 'i') AND {SYSTEM_SCHEMAS}"
    )
}

pub(super) async fn cache_hit(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx.query(&cache_hit_sql(), &[]).await?;
    let Some(r) = rows.first() else {
        return Err(super::CheckError::Unexpected(
            "the cache query returned no row".into(),
        ));
    };
    let (heap_hit, heap_read): (i64, i64) = (r.try_get(0)?, r.try_get(1)?);
    let (idx_hit, idx_read): (i64, i64) = (r.try_get(2)?, r.try_get(3)?);
    let db_hit: Option<i64> = r.try_get(4)?;
    let db_read: Option<i64> = r.try_get(5)?;
    let judged = |hit: i64, read: i64| (hit + read >= MIN_BLOCKS).then(|| ratio(hit, hit + read));
    let c = CacheHit {
        table_ratio: judged(heap_hit, heap_read),
        index_ratio: judged(idx_hit, idx_read),
        database_ratio: match (db_hit, db_read) {
            (Some(h), Some(r)) => judged(h, r),
            _ => None,
        },
        table_blocks: heap_hit + heap_read,
        index_blocks: idx_hit + idx_read,
    };
    let lowest = [c.table_ratio, c.index_ratio]
        .into_iter()
        .flatten()
        .fold(f64::NAN, f64::min);
    let verdict = if lowest.is_nan() {
        Verdict::Ok
    } else {
        Verdict::grade_low(lowest, s.cache_hit_warning, s.cache_hit_problem)
    };
    let pct =
        |r: Option<f64>| r.map_or_else(|| "n/a".to_string(), |r| format!("{:.2}%", r * 100.0));
    let summary = format!(
        "cache hit ratio: tables {}, indexes {} (database {}){}",
        pct(c.table_ratio),
        pct(c.index_ratio),
        pct(c.database_ratio),
        if verdict > Verdict::Ok {
            " — the working set does not fit in shared_buffers"
        } else {
            ""
        }
    );
    let mut notes = Vec::new();
    if c.table_ratio.is_none() || c.index_ratio.is_none() {
        notes.push(format!(
            "n/a: fewer than {MIN_BLOCKS} block reads since the statistics reset, too few to judge"
        ));
    }
    Ok(Findings {
        verdict,
        summary,
        notes,
        limited: Vec::new(),
        details: Details::CacheHit(c),
    })
}

/// WAL retained from each slot's `restart_lsn` up to the current (or, on a standby, last received) position;
/// `inactive_since` exists from PostgreSQL 17.
fn slots_sql(version: i32) -> String {
    let inactive = if version >= 170_000 {
        "extract(epoch FROM now() - s.inactive_since)::float8"
    } else {
        "NULL::float8"
    };
    format!(
        "SELECT s.slot_name::text, s.slot_type, s.plugin::text, s.database::text, s.active, s.temporary, s.wal_status,
       pg_catalog.pg_wal_lsn_diff(
           CASE WHEN pg_catalog.pg_is_in_recovery()
                THEN coalesce(pg_catalog.pg_last_wal_receive_lsn(), pg_catalog.pg_last_wal_replay_lsn())
                ELSE pg_catalog.pg_current_wal_lsn() END,
           s.restart_lsn)::int8,
       {inactive}
  FROM pg_catalog.pg_replication_slots s
 ORDER BY 8 DESC NULLS LAST, 1"
    )
}

pub(super) async fn replication_slots(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx.query(&slots_sql(ctx.version()), &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(ReplicationSlot {
            name: r.try_get(0)?,
            kind: r.try_get(1)?,
            plugin: r.try_get(2)?,
            database: r.try_get(3)?,
            active: r.try_get(4)?,
            temporary: r.try_get(5)?,
            wal_status: r.try_get(6)?,
            retained_bytes: r.try_get(7)?,
            inactive_s: r.try_get(8)?,
        });
    }
    let mut verdict = Verdict::Ok;
    let mut remarks = Vec::new();
    for slot in &out {
        let retained = slot.retained_bytes.unwrap_or(0);
        let mut v = Verdict::grade(
            retained,
            s.slot_retained_wal_warning.0 as i64,
            s.slot_retained_wal_problem.0 as i64,
        );
        if !slot.active && !slot.temporary {
            v = v.max(Verdict::Warning);
            remarks.push(format!(
                "{} is inactive and keeps {}",
                slot.name,
                pretty_bytes(retained)
            ));
        }
        match slot.wal_status.as_deref() {
            Some("lost") => {
                v = Verdict::Problem;
                remarks.push(format!("{} lost WAL its consumer needs", slot.name));
            }
            Some("unreserved") => v = v.max(Verdict::Warning),
            _ => {}
        }
        verdict = verdict.max(v);
    }
    let total: i64 = out.iter().filter_map(|s| s.retained_bytes).sum();
    let summary = if out.is_empty() {
        "no replication slots".to_string()
    } else if remarks.is_empty() {
        format!(
            "{} slot(s), all active, {} WAL retained",
            out.len(),
            pretty_bytes(total)
        )
    } else {
        format!(
            "{} slot(s), {} WAL retained: {} (drop slots nobody consumes)",
            out.len(),
            pretty_bytes(total),
            remarks.join("; ")
        )
    };
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::ReplicationSlots(out),
    })
}

/// `pg_stat_bgwriter` held the checkpoint counters until PostgreSQL 16; 17 moved them to `pg_stat_checkpointer`.
fn checkpoints_sql(version: i32) -> &'static str {
    if version >= 170_000 {
        "SELECT num_timed::int8, num_requested::int8, stats_reset, current_setting('checkpoint_timeout'),
                current_setting('max_wal_size')
           FROM pg_catalog.pg_stat_checkpointer"
    } else {
        "SELECT checkpoints_timed::int8, checkpoints_req::int8, stats_reset, current_setting('checkpoint_timeout'),
                current_setting('max_wal_size')
           FROM pg_catalog.pg_stat_bgwriter"
    }
}

pub(super) async fn checkpoints(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx.query(checkpoints_sql(ctx.version()), &[]).await?;
    let Some(r) = rows.first() else {
        return Err(super::CheckError::Unexpected(
            "the checkpoint statistics returned no row".into(),
        ));
    };
    let timed: i64 = r.try_get(0)?;
    let requested: i64 = r.try_get(1)?;
    let c = Checkpoints {
        timed,
        requested,
        requested_ratio: (timed + requested > 0).then(|| ratio(requested, timed + requested)),
        stats_reset: r.try_get(2)?,
        checkpoint_timeout: r.try_get(3)?,
        max_wal_size: r.try_get(4)?,
    };
    let share = c.requested_ratio.unwrap_or(0.0);
    let verdict = if share >= s.requested_checkpoints_warning {
        Verdict::Warning
    } else {
        Verdict::Ok
    };
    let summary = format!(
        "{timed} timed, {requested} requested checkpoint(s) ({:.0}% requested){}",
        share * 100.0,
        if verdict > Verdict::Ok {
            format!(
                " — WAL fills max_wal_size ({}) before checkpoint_timeout ({}): raise max_wal_size",
                c.max_wal_size, c.checkpoint_timeout
            )
        } else {
            String::new()
        }
    );
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::Checkpoints(c),
    })
}
