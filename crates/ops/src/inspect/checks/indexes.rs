//! Indexes: unused, duplicate or redundant, invalid, bloated.

use super::details::{Bloat, Details, DuplicateIndex, InvalidIndex, UnusedIndex, UnusedIndexes};
use super::{BUSY_CTE, CheckResult, Ctx, SYSTEM_SCHEMAS, pretty_bytes, qualified};
use crate::inspect::{Findings, Verdict};

/// The size of index `$oid` (an expression) without waiting on a lock: exact unless it is in `busy`.
fn index_size(oid: &str, relpages: &str) -> String {
    format!(
        "CASE WHEN {oid} IN (SELECT relation FROM busy)
              THEN {relpages}::int8 * current_setting('block_size')::int8
              ELSE coalesce(pg_catalog.pg_relation_size({oid}), 0) END"
    )
}

/// Non-unique, valid indexes never scanned (`pg_stat_get_numscans`, what `pg_stat_user_indexes.idx_scan` shows),
/// not backing a constraint, not part of an extension. Written against the catalog rather than the statistics
/// view so that every join can be a hash join (the view's own joins cost a lookup per index). Ranked by the
/// catalog's page counts (no index is opened for that); the ones listed are measured exactly.
fn unused_sql() -> String {
    format!(
        "WITH {BUSY_CTE},
u AS (
    SELECT n.nspname::text AS schema, ct.relname::text AS tbl, ci.relname::text AS idx, i.indexrelid,
           ci.relpages, ci.relpages::int8 * current_setting('block_size')::int8 AS est_bytes
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid
      JOIN pg_catalog.pg_class ct ON ct.oid = i.indrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = ct.relnamespace
     WHERE NOT i.indisunique AND NOT i.indisprimary AND i.indisvalid AND {SYSTEM_SCHEMAS}
       AND pg_catalog.pg_stat_get_numscans(i.indexrelid) = 0
       AND i.indexrelid NOT IN (SELECT k.conindid FROM pg_catalog.pg_constraint k)
       AND i.indexrelid NOT IN (SELECT d.objid FROM pg_catalog.pg_depend d
                                 WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'e')
       AND ci.relpages::int8 * current_setting('block_size')::int8 >= $1
)
SELECT x.schema, x.tbl, x.idx, {size}, pg_catalog.pg_get_indexdef(x.indexrelid), x.n, x.total, r.stats_reset
  FROM (SELECT d.stats_reset FROM pg_catalog.pg_stat_database d WHERE d.datname = current_database()) r
  LEFT JOIN LATERAL (
      SELECT u.*, count(*) OVER ()::int8 AS n, (sum(est_bytes) OVER ())::int8 AS total
        FROM u
       ORDER BY est_bytes DESC, schema, tbl, idx
       LIMIT $2
  ) x ON true",
        size = index_size("x.indexrelid", "x.relpages")
    )
}

pub(super) async fn unused(ctx: &Ctx<'_>) -> CheckResult {
    let min = ctx.settings.unused_index_min_size.0 as i64;
    let rows = ctx.query(&unused_sql(), &[&min, &ctx.top()]).await?;
    let mut indexes = Vec::with_capacity(rows.len());
    let (mut count, mut total): (i64, i64) = (0, 0);
    let mut stats_reset: Option<chrono::DateTime<chrono::Utc>> = None;
    for r in rows {
        stats_reset = r.try_get(7)?;
        let Some(schema) = r.try_get::<_, Option<String>>(0)? else {
            continue; // no unused index: the row only carries the reset time
        };
        count = r.try_get(5)?;
        total = r.try_get(6)?;
        indexes.push(UnusedIndex {
            schema,
            table: r.try_get(1)?,
            index: r.try_get(2)?,
            bytes: r.try_get(3)?,
            definition: r.try_get(4)?,
        });
    }
    let since = match stats_reset {
        Some(t) => format!(
            "since the statistics reset of {}",
            t.format("%Y-%m-%d %H:%M UTC")
        ),
        None => "since the statistics were created (never reset)".to_string(),
    };
    let (verdict, summary) = if count == 0 {
        (Verdict::Ok, format!("every index was scanned {since}"))
    } else {
        (
            Verdict::Warning,
            format!(
                "{count} index(es) never scanned {since}, about {}; drop them if no replica or rare job uses them",
                pretty_bytes(total)
            ),
        )
    };
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::UnusedIndexes(UnusedIndexes {
            stats_reset,
            count,
            total_bytes: total,
            indexes,
        }),
    })
}

/// Pairs (a, b) on the same table and access method, same expressions and predicate, where a is unnecessary:
/// - the same key columns, operator classes, collations and options as b, and b is at least as strong (unique
///   beats non-unique, a constraint's index beats a plain one; between equals the newer one goes);
/// - or a non-unique B-tree whose key columns are a strict prefix of b's.
///
/// Expressions are compared deparsed (`pg_get_expr`), except on relations locked exclusively (see `busy`).
fn duplicates_sql() -> String {
    let expr = |col: &str| {
        format!(
            "CASE WHEN i.{col} IS NULL THEN ''
                  WHEN i.indrelid IN (SELECT relation FROM busy) THEN i.{col}::text
                  ELSE pg_catalog.pg_get_expr(i.{col}, i.indrelid) END"
        )
    };
    format!(
        "WITH {BUSY_CTE},
idx AS (
    SELECT i.indexrelid, i.indrelid, ci.relam, i.indisunique,
           k.conindid IS NOT NULL AS constraint_backed,
           array_to_string((i.indkey::int2[])[0:i.indnkeyatts - 1], ' ') AS keys,
           array_to_string((i.indclass::oid[])[0:i.indnkeyatts - 1], ' ') AS classes,
           array_to_string((i.indcollation::oid[])[0:i.indnkeyatts - 1], ' ') AS collations,
           array_to_string((i.indoption::int2[])[0:i.indnkeyatts - 1], ' ') AS options,
           {exprs} AS exprs,
           {pred} AS pred,
           n.nspname::text AS schema, ct.relname::text AS tbl, ci.relname::text AS name, ci.relpages
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid
      JOIN pg_catalog.pg_class ct ON ct.oid = i.indrelid
      JOIN pg_catalog.pg_namespace n ON n.oid = ci.relnamespace
      LEFT JOIN (SELECT DISTINCT conindid FROM pg_catalog.pg_constraint WHERE conindid <> 0) k
             ON k.conindid = i.indexrelid
     WHERE i.indisvalid AND {SYSTEM_SCHEMAS}
       -- Only indexes that share their table and first key column with another can cover or be covered: the
       -- strings below are built for those alone.
       AND (i.indrelid, i.indkey[0]) IN (SELECT x.indrelid, x.indkey[0] FROM pg_catalog.pg_index x
                                          GROUP BY 1, 2 HAVING count(*) > 1)
),
pairs AS (
    SELECT DISTINCT ON (a.indexrelid)
           a.schema, a.tbl, a.name, a.indexrelid, a.relpages, b.name AS covered_by, b.indexrelid AS covering,
           (a.keys = b.keys) AS exact
      FROM idx a
      JOIN idx b ON b.indrelid = a.indrelid AND b.indexrelid <> a.indexrelid AND b.relam = a.relam
                AND b.exprs = a.exprs AND b.pred = a.pred
     WHERE (a.keys = b.keys AND a.classes = b.classes AND a.collations = b.collations AND a.options = b.options
            AND ((b.indisunique AND NOT a.indisunique)
                 OR (b.indisunique = a.indisunique AND b.constraint_backed AND NOT a.constraint_backed)
                 OR (b.indisunique = a.indisunique AND b.constraint_backed = a.constraint_backed
                     AND a.indexrelid > b.indexrelid)))
        OR (a.relam = (SELECT am.oid FROM pg_catalog.pg_am am WHERE am.amname = 'btree')
            AND NOT a.indisunique AND NOT a.constraint_backed AND a.keys <> b.keys
            AND (b.keys || ' ') LIKE (a.keys || ' %')
            AND (b.classes || ' ') LIKE (a.classes || ' %')
            AND (b.collations || ' ') LIKE (a.collations || ' %')
            AND (b.options || ' ') LIKE (a.options || ' %'))
     ORDER BY a.indexrelid, (a.keys = b.keys) DESC, b.indexrelid
)
SELECT p.schema, p.tbl, p.name, {size}, pg_catalog.pg_get_indexdef(p.indexrelid), p.covered_by,
       pg_catalog.pg_get_indexdef(p.covering), p.exact, p.n, p.total
  FROM (SELECT pairs.*, count(*) OVER ()::int8 AS n,
               (sum(relpages) OVER () * current_setting('block_size')::int8)::int8 AS total
          FROM pairs ORDER BY relpages DESC, schema, tbl, name LIMIT $1) p
 ORDER BY p.schema, p.tbl, p.name",
        exprs = expr("indexprs"),
        pred = expr("indpred"),
        size = index_size("p.indexrelid", "p.relpages")
    )
}

pub(super) async fn duplicates(ctx: &Ctx<'_>) -> CheckResult {
    let rows = ctx.query(&duplicates_sql(), &[&ctx.top()]).await?;
    let mut out: Vec<DuplicateIndex> = Vec::with_capacity(rows.len());
    let (mut count, mut total): (i64, i64) = (0, 0);
    for r in rows {
        count = r.try_get(8)?;
        total = r.try_get(9)?;
        out.push(DuplicateIndex {
            schema: r.try_get(0)?,
            table: r.try_get(1)?,
            index: r.try_get(2)?,
            bytes: r.try_get(3)?,
            definition: r.try_get(4)?,
            covered_by: r.try_get(5)?,
            covered_by_definition: r.try_get(6)?,
            exact: r.try_get(7)?,
        });
    }
    let (verdict, summary) = match count {
        0 => (Verdict::Ok, "no duplicate or redundant indexes".to_string()),
        n => (
            Verdict::Warning,
            format!(
                "{n} index(es) duplicate or redundant (about {}): another index answers the same lookups",
                pretty_bytes(total)
            ),
        ),
    };
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::DuplicateIndexes(out),
    })
}

fn invalid_sql() -> String {
    format!(
        "WITH {BUSY_CTE}
SELECT n.nspname::text, ct.relname::text, ci.relname::text, {size}, pg_catalog.pg_get_indexdef(i.indexrelid),
       EXISTS (SELECT 1 FROM pg_catalog.pg_stat_progress_create_index p WHERE p.index_relid = i.indexrelid)
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid
  JOIN pg_catalog.pg_class ct ON ct.oid = i.indrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = ci.relnamespace
 WHERE NOT i.indisvalid AND {SYSTEM_SCHEMAS}
 ORDER BY 1, 2, 3",
        size = index_size("i.indexrelid", "ci.relpages")
    )
}

pub(super) async fn invalid(ctx: &Ctx<'_>) -> CheckResult {
    let rows = ctx.query(&invalid_sql(), &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(InvalidIndex {
            schema: r.try_get(0)?,
            table: r.try_get(1)?,
            index: r.try_get(2)?,
            bytes: r.try_get(3)?,
            definition: r.try_get(4)?,
            being_built: r.try_get(5)?,
        });
    }
    let broken: Vec<String> = out
        .iter()
        .filter(|i| !i.being_built)
        .map(|i| qualified(&i.schema, &i.index))
        .collect();
    let building = out.len() - broken.len();
    let (verdict, summary) = if broken.is_empty() {
        let mut s = "no invalid indexes".to_string();
        if building > 0 {
            s.push_str(&format!(" ({building} being built concurrently right now)"));
        }
        (Verdict::Ok, s)
    } else {
        (
            Verdict::Problem,
            format!(
                "{} invalid index(es): {} — writes still maintain them, reads never use them; DROP INDEX \
                 CONCURRENTLY and create again",
                broken.len(),
                broken.join(", ")
            ),
        )
    };
    Ok(Findings {
        verdict,
        summary,
        notes: Vec::new(),
        limited: Vec::new(),
        details: Details::InvalidIndexes(out),
    })
}

/// B-tree bloat, estimated from the catalog and column statistics (the widely used estimate of
/// ioguix/pgsql-bloat-estimation): index tuples' expected width × rows vs. pages. Indexes smaller than
/// `bloat_min_size` are left out first (a materialized CTE), and each remaining index's columns are looked up by
/// key (lateral), so the cost follows the indexes measured, not the catalog's size. Indexes with a column lacking
/// statistics are left out rather than guessed.
const INDEX_BLOAT_SQL: &str = "
WITH ic AS MATERIALIZED (
    SELECT ci.relname AS idxname, ci.reltuples, ci.relpages, i.indrelid AS tbloid, i.indexrelid AS idxoid,
           coalesce(substring(array_to_string(ci.reloptions, ' ') FROM 'fillfactor=([0-9]+)')::int, 90) AS fillfactor,
           i.indnatts, string_to_array(textin(int2vectorout(i.indkey)), ' ')::int[] AS indkey
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class ci ON ci.oid = i.indexrelid
     WHERE ci.relam = (SELECT am.oid FROM pg_catalog.pg_am am WHERE am.amname = 'btree')
       AND ci.relpages > 0 AND ci.relpages::int8 * current_setting('block_size')::int8 >= $1
),
stats AS (
    SELECT n.nspname, ct.relname AS tblname, ic.idxname, ic.reltuples, ic.relpages, ic.fillfactor,
           current_setting('block_size')::numeric AS bs,
           CASE WHEN version() ~ 'mingw32|64-bit|x86_64|ppc64|ia64|amd64|aarch64' THEN 8 ELSE 4 END AS maxalign,
           24 AS pagehdr, 16 AS pageopqdata, a.*
      FROM ic
      JOIN pg_catalog.pg_class ct ON ct.oid = ic.tbloid
      JOIN pg_catalog.pg_namespace n ON n.oid = ct.relnamespace
      CROSS JOIN LATERAL (
          SELECT CASE WHEN max(coalesce(s.null_frac, 0)) = 0 THEN 8 ELSE 8 + ((32 + 8 - 1) / 8) END
                   AS index_tuple_hdr_bm,
                 sum((1 - coalesce(s.null_frac, 0)) * coalesce(s.avg_width, 1024)) AS nulldatawidth,
                 bool_or(x.atttypid = 'pg_catalog.name'::regtype) OR count(s.attname) < count(*) AS is_na
            FROM generate_series(1, ic.indnatts) AS k(attpos)
            JOIN pg_catalog.pg_attribute x
              ON x.attrelid = CASE WHEN ic.indkey[k.attpos] <> 0 THEN ic.tbloid ELSE ic.idxoid END
             AND x.attnum = CASE WHEN ic.indkey[k.attpos] <> 0 THEN ic.indkey[k.attpos] ELSE k.attpos END
            LEFT JOIN pg_catalog.pg_stats s
              ON s.schemaname = n.nspname
             AND s.tablename = CASE WHEN ic.indkey[k.attpos] <> 0 THEN ct.relname ELSE ic.idxname END
             AND s.attname = x.attname
      ) a
     WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
),
widths AS (
    SELECT s.*,
           (index_tuple_hdr_bm + maxalign
              - CASE WHEN index_tuple_hdr_bm % maxalign = 0 THEN maxalign ELSE index_tuple_hdr_bm % maxalign END
              + nulldatawidth + maxalign
              - CASE WHEN nulldatawidth = 0 THEN 0
                     WHEN nulldatawidth::int % maxalign = 0 THEN maxalign
                     ELSE nulldatawidth::int % maxalign END)::numeric AS nulldatahdrwidth
      FROM stats s
     WHERE NOT is_na
),
est AS (
    SELECT w.*,
           coalesce(1 + ceil(reltuples / floor((bs - pageopqdata - pagehdr) * fillfactor
                                               / (100 * (4 + nulldatahdrwidth)::float))), 0) AS est_pages_ff
      FROM widths w
),
bloat AS (
    SELECT nspname::text AS schema, tblname::text AS tbl, idxname::text AS idx,
           (bs * relpages)::int8 AS bytes,
           CASE WHEN relpages > est_pages_ff THEN (bs * (relpages - est_pages_ff))::int8 ELSE 0 END AS wasted
      FROM est
)
SELECT schema, tbl, idx, bytes, wasted, wasted::float8 / greatest(bytes, 1), count(*) OVER ()::int8
  FROM bloat
 WHERE wasted::float8 / greatest(bytes, 1) >= $2
 ORDER BY wasted DESC, schema, idx
 LIMIT $3";

pub(super) async fn bloat(ctx: &Ctx<'_>) -> CheckResult {
    let s = ctx.settings;
    let rows = ctx
        .query(
            INDEX_BLOAT_SQL,
            &[
                &(s.bloat_min_size.0 as i64),
                &s.index_bloat_warning,
                &ctx.top(),
            ],
        )
        .await?;
    let mut out = Vec::with_capacity(rows.len());
    let mut count: i64 = 0;
    for r in rows {
        count = r.try_get(6)?;
        out.push(Bloat {
            schema: r.try_get(0)?,
            table: r.try_get(1)?,
            index: Some(r.try_get(2)?),
            bytes: r.try_get(3)?,
            wasted_bytes: r.try_get(4)?,
            ratio: r.try_get(5)?,
        });
    }
    Ok(bloat_findings(
        out,
        count,
        ("index", "indexes"),
        s.index_bloat_warning,
        s.index_bloat_problem,
        "REINDEX INDEX CONCURRENTLY",
        &s.bloat_min_size.to_string(),
    ))
}

/// Findings shared by table and index bloat.
pub(super) fn bloat_findings(
    rows: Vec<Bloat>,
    count: i64,
    (what, plural): (&str, &str),
    warning: f64,
    problem: f64,
    remedy: &str,
    min_size: &str,
) -> Findings {
    let worst = rows.iter().map(|b| b.ratio).fold(0.0, f64::max);
    let verdict = if rows.is_empty() {
        Verdict::Ok
    } else {
        Verdict::grade(worst, warning, problem)
    };
    let wasted: i64 = rows.iter().map(|b| b.wasted_bytes).sum();
    let summary = if rows.is_empty() {
        format!(
            "no {what} of at least {min_size} has an estimated bloat of {:.0}% or more",
            warning * 100.0
        )
    } else {
        format!(
            "{count} {plural} estimated {:.0}%+ bloated, about {} reclaimable in the largest; worst {:.0}% ({remedy})",
            warning * 100.0,
            pretty_bytes(wasted),
            worst * 100.0
        )
    };
    Findings {
        verdict,
        summary,
        notes: vec!["bloat is an estimate from statistics: ANALYZE first for a good one".into()],
        limited: Vec::new(),
        details: Details::Bloat(rows),
    }
}
