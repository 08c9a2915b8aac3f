//! Tables: bloat estimate, dead tuples, vacuum and analyze, sequential scans on large tables.

use super::details::{Bloat, DeadTuples, Details, SeqScans, VacuumAnalyze};
use super::indexes::bloat_findings;
use super::{CheckResult, Ctx, SYSTEM_SCHEMAS, qualified};
use crate::inspect::{Findings, Verdict};

/// Table bloat, estimated from the catalog and column statistics (ioguix/pgsql-bloat-estimation): the expected
/// tuple width × rows at the table's fillfactor vs. pages. Tables smaller than `bloat_min_size` are left out
/// before anything is computed for them; tables with columns lacking statistics (never analyzed, or not readable
/// by the role) are left out too.
const TABLE_BLOAT_SQL: &str = "
WITH t AS MATERIALIZED (
    SELECT tbl.oid, ns.nspname, tbl.relname, tbl.reltuples, tbl.relpages AS heappages,
           coalesce(toast.relpages, 0) AS toastpages, coalesce(toast.reltuples, 0) AS toasttuples,
           coalesce(substring(array_to_string(tbl.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::int, 100) AS fillfactor
      FROM pg_catalog.pg_class tbl
      JOIN pg_catalog.pg_namespace ns ON ns.oid = tbl.relnamespace
      LEFT JOIN pg_catalog.pg_class toast ON toast.oid = tbl.reltoastrelid
     WHERE tbl.relkind IN ('r', 'm') AND tbl.relpages > 0
       AND (tbl.relpages + coalesce(toast.relpages, 0))::int8 * current_setting('block_size')::int8 >= $1
       AND ns.nspname NOT IN ('pg_catalog', 'information_schema') AND ns.nspname !~ '^pg_toast'
),
stats AS (
    SELECT t.*, current_setting('block_size')::numeric AS bs,
           CASE WHEN version() ~ 'mingw32|64-bit|x86_64|ppc64|ia64|amd64|aarch64' THEN 8 ELSE 4 END AS ma,
           24 AS page_hdr, a.*
      FROM t
      CROSS JOIN LATERAL (
          SELECT 23 + CASE WHEN max(coalesce(s.null_frac, 0)) > 0 THEN (7 + count(s.attname)) / 8 ELSE 0::int END
                   AS tpl_hdr_size,
                 sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 0)) AS tpl_data_size,
                 bool_or(att.atttypid = 'pg_catalog.name'::regtype) OR count(*) <> count(s.attname) AS is_na
            FROM pg_catalog.pg_attribute att
            LEFT JOIN pg_catalog.pg_stats s ON s.schemaname = t.nspname AND s.tablename = t.relname
                                           AND s.inherited = false AND s.attname = att.attname
           WHERE att.attrelid = t.oid AND att.attnum > 0 AND NOT att.attisdropped
      ) a
),
sizes AS (
    SELECT s.*,
           (4 + tpl_hdr_size + tpl_data_size + (2 * ma)
              - CASE WHEN tpl_hdr_size % ma = 0 THEN ma ELSE tpl_hdr_size % ma END
              - CASE WHEN ceil(tpl_data_size)::int % ma = 0 THEN ma ELSE ceil(tpl_data_size)::int % ma END
           ) AS tpl_size
      FROM stats s
     WHERE NOT is_na
),
est AS (
    SELECT z.*, heappages + toastpages AS tblpages,
           ceil(reltuples / ((bs - page_hdr) * fillfactor / (tpl_size * 100))) + ceil(toasttuples / 4)
              AS est_tblpages_ff
      FROM sizes z
),
bloat AS (
    SELECT nspname::text AS schema, relname::text AS tbl, (bs * tblpages)::int8 AS bytes,
           CASE WHEN tblpages > est_tblpages_ff THEN (bs * (tblpages - est_tblpages_ff))::int8 ELSE 0 END AS wasted
      FROM est
)
SELECT schema, tbl, bytes, wasted, wasted::float8 / greatest(bytes, 1), count(*) OVER ()::int8
  FROM bloat
 WHERE wasted::float8 / greatest(bytes, 1) >= $2
 ORDER BY wasted DESC, schema, tbl
 LIMIT $3";

pub(super) async fn bloat(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx
        .query(
            TABLE_BLOAT_SQL,
            &[
                &(s.bloat_min_size.0 as i64),
                &s.table_bloat_warning,
                &ctx.top(),
            ],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut count: i64 = 0;
    for r in rows {
        count = r.try_get(5)?;
        out.push(Bloat {
            schema: r.try_get(0)?,
            table: r.try_get(1)?,
            index: None,
            bytes: r.try_get(2)?,
            wasted_bytes: r.try_get(3)?,
            ratio: r.try_get(4)?,
        });
    }
    Ok(bloat_findings(
        out,
        count,
        ("table", "tables"),
        s.table_bloat_warning,
        s.table_bloat_problem,
        "VACUUM reuses the space; VACUUM FULL or pg_repack returns it",
        &s.bloat_min_size.to_string(),
    ))
}

/// The statistics views (`pg_stat_user_tables`, …) join every table's indexes to sum their scans, for every row;
/// the checks below call the statistics functions those views are made of, for the columns they need only.
fn dead_tuples_sql() -> String {
    format!(
        "SELECT schema, name, live, dead, dead::float8 / greatest(live + dead, 1), last_vacuum, last_autovacuum,
       coalesce('autovacuum_enabled=false' = ANY (reloptions), false), count(*) OVER ()::int8
  FROM (SELECT n.nspname::text AS schema, c.relname::text AS name, c.reloptions,
               pg_catalog.pg_stat_get_live_tuples(c.oid) AS live, pg_catalog.pg_stat_get_dead_tuples(c.oid) AS dead,
               pg_catalog.pg_stat_get_last_vacuum_time(c.oid) AS last_vacuum,
               pg_catalog.pg_stat_get_last_autovacuum_time(c.oid) AS last_autovacuum
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'm') AND {SYSTEM_SCHEMAS}
        OFFSET 0) s
 WHERE dead >= $1 AND dead::float8 / greatest(live + dead, 1) >= $2
 ORDER BY dead DESC, 1, 2
 LIMIT $3"
    )
}

pub(super) async fn dead_tuples(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx
        .query(
            &dead_tuples_sql(),
            &[&s.dead_tuples_min, &s.dead_tuples_warning, &ctx.top()],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut count: i64 = 0;
    for r in rows {
        count = r.try_get(8)?;
        out.push(DeadTuples {
            schema: r.try_get(0)?,
            table: r.try_get(1)?,
            live: r.try_get(2)?,
            dead: r.try_get(3)?,
            ratio: r.try_get(4)?,
            last_vacuum: r.try_get(5)?,
            last_autovacuum: r.try_get(6)?,
            autovacuum_disabled: r.try_get(7)?,
        });
    }
    let worst = out.iter().map(|d| d.ratio).fold(0.0, f64::max);
    let verdict = if out.is_empty() {
        Verdict::Ok
    } else {
        Verdict::grade(worst, s.dead_tuples_warning, s.dead_tuples_problem)
    };
    let summary = match out.first() {
        None => format!(
            "no table has {}+ dead tuples making up {:.0}% or more",
            s.dead_tuples_min,
            s.dead_tuples_warning * 100.0
        ),
        Some(d) => format!(
            "{count} table(s) with many dead tuples; most: {} ({} dead, {:.0}%)",
            qualified(&d.schema, &d.table),
            d.dead,
            d.ratio * 100.0
        ),
    };
    let mut notes = Vec::new();
    let off: Vec<String> = out
        .iter()
        .filter(|d| d.autovacuum_disabled)
        .map(|d| qualified(&d.schema, &d.table))
        .collect();
    if !off.is_empty() {
        notes.push(format!("autovacuum is switched off for {}", off.join(", ")));
    }
    Ok(Findings {
        verdict,
        summary,
        notes,
        limited: Vec::new(),
        details: Details::DeadTuples(out),
    })
}

/// Tables never analyzed that hold at least `analyze_min_rows` rows, and tables analyzed longer ago than
/// `analyze_stale_after` that changed by more than 10 % since.
fn vacuum_analyze_sql() -> String {
    format!(
        "SELECT schema, name, live, modified, last_analyze IS NULL AND last_autoanalyze IS NULL,
       last_vacuum, last_autovacuum, last_analyze, last_autoanalyze, count(*) OVER ()::int8
  FROM (SELECT n.nspname::text AS schema, c.relname::text AS name,
               pg_catalog.pg_stat_get_live_tuples(c.oid) AS live,
               pg_catalog.pg_stat_get_mod_since_analyze(c.oid) AS modified,
               pg_catalog.pg_stat_get_last_vacuum_time(c.oid) AS last_vacuum,
               pg_catalog.pg_stat_get_last_autovacuum_time(c.oid) AS last_autovacuum,
               pg_catalog.pg_stat_get_last_analyze_time(c.oid) AS last_analyze,
               pg_catalog.pg_stat_get_last_autoanalyze_time(c.oid) AS last_autoanalyze
          FROM pg_catalog.pg_class c
          JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'm') AND {SYSTEM_SCHEMAS}
        OFFSET 0) s
 WHERE (last_analyze IS NULL AND last_autoanalyze IS NULL AND greatest(live, modified) >= $3)
    OR (greatest(last_analyze, last_autoanalyze) < now() - make_interval(secs => $1)
        AND modified > 0.1 * greatest(live, 1))
 ORDER BY 5 DESC, modified DESC, 1, 2
 LIMIT $2"
    )
}

pub(super) async fn vacuum_analyze(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx
        .query(
            &vacuum_analyze_sql(),
            &[
                &s.analyze_stale_after.seconds(),
                &ctx.top(),
                &s.analyze_min_rows,
            ],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut count: i64 = 0;
    for r in rows {
        count = r.try_get(9)?;
        out.push(VacuumAnalyze {
            schema: r.try_get(0)?,
            table: r.try_get(1)?,
            live: r.try_get(2)?,
            modified_since_analyze: r.try_get(3)?,
            never_analyzed: r.try_get(4)?,
            last_vacuum: r.try_get(5)?,
            last_autovacuum: r.try_get(6)?,
            last_analyze: r.try_get(7)?,
            last_autoanalyze: r.try_get(8)?,
        });
    }
    let never: Vec<String> = out
        .iter()
        .filter(|v| v.never_analyzed)
        .map(|v| qualified(&v.schema, &v.table))
        .collect();
    let (verdict, summary) = if count == 0 {
        (
            Verdict::Ok,
            format!(
                "every table with rows has been analyzed, none stale for more than {}",
                s.analyze_stale_after
            ),
        )
    } else {
        let mut parts = Vec::new();
        if !never.is_empty() {
            parts.push(format!("never analyzed: {}", never.join(", ")));
        }
        let stale = out.len() - never.len();
        if stale > 0 {
            parts.push(format!(
                "{stale} changed since an analyze older than {}",
                s.analyze_stale_after
            ));
        }
        (
            Verdict::Warning,
            format!("{count} table(s) need ANALYZE ({})", parts.join("; ")),
        )
    };
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::VacuumAnalyze(out),
    })
}

/// Large tables (estimated rows ≥ `seq_scan_min_rows`) whose scans used an index less often than
/// `index_use_warning`. Index scans are summed over a table's indexes only for the large tables that had sequential
/// scans. `last_seq_scan` exists from PostgreSQL 16.
fn seq_scans_sql(version: i32) -> String {
    let last_seq_scan = if version >= 160_000 {
        "pg_catalog.pg_stat_get_lastscan(l.oid)"
    } else {
        "NULL::timestamptz"
    };
    format!(
        "SELECT schema, name, rows, seq_scan, seq_read, idx_scan,
       idx_scan::float8 / greatest(seq_scan + idx_scan, 1), last_seq_scan, count(*) OVER ()::int8
  FROM (SELECT l.*, {last_seq_scan} AS last_seq_scan,
               coalesce((SELECT sum(pg_catalog.pg_stat_get_numscans(i.indexrelid)) FROM pg_catalog.pg_index i
                          WHERE i.indrelid = l.oid), 0)::int8 AS idx_scan
          FROM (SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name,
                       CASE WHEN c.reltuples >= 0 THEN c.reltuples::int8
                            ELSE pg_catalog.pg_stat_get_live_tuples(c.oid) END AS rows,
                       pg_catalog.pg_stat_get_numscans(c.oid) AS seq_scan,
                       pg_catalog.pg_stat_get_tuples_returned(c.oid) AS seq_read
                  FROM pg_catalog.pg_class c
                  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                 WHERE c.relkind IN ('r', 'm') AND {SYSTEM_SCHEMAS}
                   AND greatest(c.reltuples::int8, pg_catalog.pg_stat_get_live_tuples(c.oid)) >= $1
                OFFSET 0) l
         WHERE l.seq_scan > 0
        OFFSET 0) s
 WHERE idx_scan::float8 / (seq_scan + idx_scan) < $2
 ORDER BY seq_read DESC, 1, 2
 LIMIT $3"
    )
}

pub(super) async fn seq_scans(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx
        .query(
            &seq_scans_sql(ctx.version()),
            &[&s.seq_scan_min_rows, &s.index_use_warning, &ctx.top()],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut count: i64 = 0;
    for r in rows {
        count = r.try_get(8)?;
        out.push(SeqScans {
            schema: r.try_get(0)?,
            table: r.try_get(1)?,
            rows: r.try_get(2)?,
            seq_scans: r.try_get(3)?,
            seq_rows_read: r.try_get(4)?,
            index_scans: r.try_get(5)?,
            index_use: r.try_get(6)?,
            last_seq_scan: r.try_get(7)?,
        });
    }
    let (verdict, summary) = match out.first() {
        None => (
            Verdict::Ok,
            format!(
                "tables of {}+ rows use an index for at least {:.0}% of their scans",
                s.seq_scan_min_rows,
                s.index_use_warning * 100.0
            ),
        ),
        Some(t) => (
            Verdict::Warning,
            format!(
                "{count} large table(s) read mostly by sequential scans; most rows read: {} ({} scans, {:.0}% by \
                 index) — a missing index?",
                qualified(&t.schema, &t.table),
                t.seq_scans,
                t.index_use * 100.0
            ),
        ),
    };
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::SeqScans(out),
    })
}
