//! Sizes: databases, schemas (with their packages), the largest tables. Information only: always `ok`.

use super::details::{DatabaseSize, Details, SchemaSize, TableSize, TableSizes};
use super::{BUSY_CTE, CheckResult, Ctx, SYSTEM_SCHEMAS, pretty_bytes, qualified};
use crate::inspect::access::{STRATA_TABLES, Tables};
use crate::inspect::{Findings, Verdict};

/// `pg_database_size` needs CONNECT on the database, or `pg_read_all_stats`.
const DATABASES_SQL: &str = "
SELECT d.datname::text,
       CASE WHEN pg_catalog.has_database_privilege(d.oid, 'CONNECT')
                 OR pg_catalog.pg_has_role('pg_read_all_stats', 'MEMBER')
            THEN pg_catalog.pg_database_size(d.oid) END::int8 AS bytes,
       d.datname = current_database()
  FROM pg_catalog.pg_database d
 WHERE d.datallowconn
 ORDER BY bytes DESC NULLS LAST, d.datname";

pub(super) async fn databases(ctx: &Ctx<'_>) -> CheckResult {
    let rows = ctx.query(DATABASES_SQL, &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(DatabaseSize {
            name: r.try_get(0)?,
            bytes: r.try_get(1)?,
            current: r.try_get(2)?,
        });
    }
    let total: i64 = out.iter().filter_map(|d| d.bytes).sum();
    let this = out.iter().find(|d| d.current).and_then(|d| d.bytes);
    let mut notes = Vec::new();
    let hidden: Vec<&str> = out
        .iter()
        .filter(|d| d.bytes.is_none())
        .map(|d| d.name.as_str())
        .collect();
    if !hidden.is_empty() {
        notes.push(format!(
            "no size for {} (the role may not connect to them; pg_read_all_stats would show them)",
            hidden.join(", ")
        ));
    }
    Ok(Findings {
        verdict: Verdict::Ok,
        summary: format!(
            "{} database(s), {} in total; this one {}",
            out.len(),
            pretty_bytes(total),
            this.map_or_else(|| "unknown".into(), pretty_bytes)
        ),
        notes,
        limited: Vec::new(),
        details: Details::DatabaseSizes(out),
    })
}

/// Tables and materialized views with their heap and TOAST page counts, from `pg_class`: catalog only, no relation
/// is opened, so 10,000 tables cost what reading pg_class costs. VACUUM, ANALYZE and CREATE INDEX keep these
/// counts current.
const TABLES_CTE: &str = "t AS (
    SELECT c.oid, n.nspname::text AS schema, c.relname::text AS name, c.reltoastrelid, c.reltuples,
           c.relpages::int8 + coalesce(tc.relpages, 0)::int8 AS pages
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN pg_catalog.pg_class tc ON tc.oid = c.reltoastrelid
     WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' AND {SYSTEM_SCHEMAS}
)";

pub(super) async fn schemas(ctx: &Ctx<'_>) -> CheckResult {
    // The owning packages come from Strata's history when the role may read it.
    let packages = if ctx.access.tables(STRATA_TABLES) == Tables::Readable {
        "ARRAY(SELECT p.name FROM strata.package p WHERE p.schema_name = n.nspname ORDER BY p.name)"
    } else {
        "ARRAY[]::text[]"
    };
    // An index lives in its table's schema; a table's TOAST table in pg_toast, hence the join.
    let sql = format!(
        "SELECT n.nspname::text, {packages}, count(c.oid) FILTER (WHERE c.relkind IN ('r', 'm'))::int8,
       (coalesce(sum(c.relpages::int8 + coalesce(tc.relpages, 0)::int8), 0)
          * current_setting('block_size')::int8)::int8
  FROM pg_catalog.pg_namespace n
  LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relkind IN ('r', 'm', 'i')
                                  AND c.relpersistence <> 't'
  LEFT JOIN pg_catalog.pg_class tc ON tc.oid = c.reltoastrelid
 WHERE {SYSTEM_SCHEMAS}
 GROUP BY n.oid, n.nspname
 ORDER BY 4 DESC, 1"
    );
    let rows = ctx.query(&sql, &[]).await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(SchemaSize {
            schema: r.try_get(0)?,
            packages: r.try_get(1)?,
            tables: r.try_get(2)?,
            bytes: r.try_get(3)?,
        });
    }
    let notes = vec![
        "sizes from the catalog's page counts (kept current by VACUUM, ANALYZE and CREATE INDEX; table-sizes \
         measures the largest tables exactly)"
            .into(),
    ];
    let total: i64 = out.iter().map(|s| s.bytes).sum();
    let summary = match out.first() {
        Some(s) if s.bytes > 0 => format!(
            "{} schema(s), about {} in total; largest {} ({})",
            out.len(),
            pretty_bytes(total),
            s.schema,
            pretty_bytes(s.bytes)
        ),
        _ => format!("{} schema(s), no table data", out.len()),
    };
    Ok(Findings {
        verdict: Verdict::Ok,
        summary,
        notes,
        limited: Vec::new(),
        details: Details::SchemaSizes(out),
    })
}

pub(super) async fn tables(ctx: &Ctx<'_>) -> CheckResult {
    // Candidates: the largest by heap and TOAST pages (three times as many as listed, for tables whose indexes
    // weigh more than their heap), and tables holding rows no VACUUM or ANALYZE has counted yet (page count 0
    // while the statistics count live rows: a bulk load). Only those are measured exactly.
    let sql = format!(
        "WITH {BUSY_CTE}, {tables},
candidates AS (
    (SELECT * FROM t ORDER BY pages DESC LIMIT $1::int8 * 3)
    UNION
    (SELECT * FROM t WHERE t.pages = 0 AND pg_catalog.pg_stat_get_live_tuples(t.oid) > 0
      ORDER BY pg_catalog.pg_stat_get_live_tuples(t.oid) DESC LIMIT 100)
),
measured AS (
    SELECT c.*,
           EXISTS (SELECT 1 FROM busy b
                    WHERE b.relation = c.oid OR b.relation = c.reltoastrelid
                       OR b.relation IN (SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid))
             AS locked,
           (SELECT coalesce(sum(ic.relpages), 0)::int8 FROM pg_catalog.pg_index i
              JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid WHERE i.indrelid = c.oid) AS index_pages
      FROM candidates c
),
sized AS (
    SELECT m.schema, m.name, m.reltuples, m.locked,
           CASE WHEN m.locked THEN (m.pages + m.index_pages) * current_setting('block_size')::int8
                ELSE coalesce(pg_catalog.pg_total_relation_size(m.oid), 0) END AS total,
           CASE WHEN m.locked THEN m.index_pages * current_setting('block_size')::int8
                ELSE coalesce(pg_catalog.pg_indexes_size(m.oid), 0) END AS indexes,
           CASE WHEN m.reltoastrelid = 0 THEN 0
                WHEN m.locked THEN (SELECT tc.relpages::int8 * current_setting('block_size')::int8
                                      FROM pg_catalog.pg_class tc WHERE tc.oid = m.reltoastrelid)
                ELSE coalesce(pg_catalog.pg_total_relation_size(m.reltoastrelid), 0) END AS toast
      FROM measured m
)
SELECT schema, name, total::int8, (total - indexes - toast)::int8, indexes::int8, toast::int8,
       CASE WHEN reltuples < 0 THEN NULL ELSE reltuples::int8 END, locked,
       (SELECT count(*) FROM t)::int8,
       ((coalesce((SELECT sum(pages) FROM t), 0)
         + coalesce((SELECT sum(c.relpages) FROM pg_catalog.pg_class c
                       JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.relkind = 'i' AND {SYSTEM_SCHEMAS}), 0))
        * current_setting('block_size')::int8)::int8
  FROM sized
 ORDER BY total DESC, schema, name
 LIMIT $1",
        tables = TABLES_CTE.replace("{SYSTEM_SCHEMAS}", SYSTEM_SCHEMAS)
    );
    let rows = ctx.query(&sql, &[&ctx.top()]).await?;
    let mut largest = Vec::with_capacity(rows.len());
    let (mut count, mut total): (i64, i64) = (0, 0);
    for r in rows {
        count = r.try_get(8)?;
        total = r.try_get(9)?;
        largest.push(TableSize {
            schema: r.try_get(0)?,
            table: r.try_get(1)?,
            total_bytes: r.try_get(2)?,
            table_bytes: r.try_get(3)?,
            index_bytes: r.try_get(4)?,
            toast_bytes: r.try_get(5)?,
            rows_estimate: r.try_get(6)?,
            estimated: r.try_get(7)?,
        });
    }
    let mut notes = vec![
        "the total is from the catalog's page counts; the tables listed are measured exactly"
            .to_string(),
    ];
    if largest.iter().any(|t| t.estimated) {
        notes.push(
            "some sizes are the catalog's estimate: another session holds an exclusive lock on those tables".into(),
        );
    }
    let summary = match largest.first() {
        Some(t) => format!(
            "{count} table(s), about {} in total; largest {} ({})",
            pretty_bytes(total),
            qualified(&t.schema, &t.table),
            pretty_bytes(t.total_bytes)
        ),
        None => "no tables".into(),
    };
    Ok(Findings {
        verdict: Verdict::Ok,
        summary,
        notes,
        limited: Vec::new(),
        details: Details::TableSizes(TableSizes {
            tables: count,
            total_bytes: total,
            largest,
        }),
    })
}
