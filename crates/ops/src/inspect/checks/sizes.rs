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

/// Per table (and materialized view): its pages, its indexes' and its TOAST's (table and index), from `pg_class`.
/// Catalog only — no relation is opened, so 10,000 tables cost what reading pg_class costs. VACUUM, ANALYZE and
/// CREATE INDEX keep these counts current.
const PAGES_CTE: &str = "ix AS (
    SELECT i.indrelid, sum(ic.relpages)::int8 AS pages
      FROM pg_catalog.pg_index i
      JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
     GROUP BY i.indrelid
),
t AS (
    SELECT c.oid, c.relnamespace, n.nspname::text AS schema, c.relname::text AS name, c.reltoastrelid, c.reltuples,
           c.relpages::int8 AS heap_pages, coalesce(ix.pages, 0) AS index_pages,
           coalesce(tc.relpages, 0)::int8 + coalesce(tx.pages, 0) AS toast_pages
      FROM pg_catalog.pg_class c
      JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
      LEFT JOIN ix ON ix.indrelid = c.oid
      LEFT JOIN pg_catalog.pg_class tc ON tc.oid = c.reltoastrelid
      LEFT JOIN ix tx ON tx.indrelid = c.reltoastrelid
     WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't' AND {SYSTEM_SCHEMAS}
)";

fn pages_cte() -> String {
    PAGES_CTE.replace("{SYSTEM_SCHEMAS}", SYSTEM_SCHEMAS)
}

pub(super) async fn schemas(ctx: &Ctx<'_>) -> CheckResult {
    // The owning packages come from Strata's history when the role may read it.
    let packages = if ctx.access.tables(STRATA_TABLES) == Tables::Readable {
        "ARRAY(SELECT p.name FROM strata.package p WHERE p.schema_name = n.nspname ORDER BY p.name)"
    } else {
        "ARRAY[]::text[]"
    };
    let sql = format!(
        "WITH {cte}
SELECT n.nspname::text, {packages}, count(t.oid)::int8,
       (coalesce(sum(t.heap_pages + t.index_pages + t.toast_pages), 0) * current_setting('block_size')::int8)::int8
  FROM pg_catalog.pg_namespace n
  LEFT JOIN t ON t.relnamespace = n.oid
 WHERE {SYSTEM_SCHEMAS}
 GROUP BY n.oid, n.nspname
 ORDER BY 4 DESC, 1",
        cte = pages_cte()
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
    // Candidates: the largest by page counts, and tables holding rows that VACUUM or ANALYZE has not counted yet
    // (page count 0 while the statistics count live rows: a bulk load). Only those are measured exactly.
    let sql = format!(
        "WITH {BUSY_CTE}, {cte},
est AS (
    SELECT t.*, (heap_pages + index_pages + toast_pages) * current_setting('block_size')::int8 AS est_bytes
      FROM t
),
candidates AS (
    (SELECT * FROM est ORDER BY est_bytes DESC LIMIT $1)
    UNION
    (SELECT e.* FROM est e JOIN pg_catalog.pg_stat_all_tables s ON s.relid = e.oid
      WHERE e.heap_pages = 0 AND s.n_live_tup > 0 ORDER BY s.n_live_tup DESC LIMIT 100)
),
measured AS (
    SELECT c.*,
           EXISTS (SELECT 1 FROM busy b
                    WHERE b.relation = c.oid OR b.relation = c.reltoastrelid
                       OR b.relation IN (SELECT i.indexrelid FROM pg_catalog.pg_index i WHERE i.indrelid = c.oid))
             AS locked
      FROM candidates c
),
sized AS (
    SELECT m.schema, m.name, m.reltuples, m.locked,
           CASE WHEN m.locked THEN m.est_bytes
                ELSE coalesce(pg_catalog.pg_total_relation_size(m.oid), 0) END AS total,
           CASE WHEN m.locked THEN m.index_pages * current_setting('block_size')::int8
                ELSE coalesce(pg_catalog.pg_indexes_size(m.oid), 0) END AS indexes,
           CASE WHEN m.reltoastrelid = 0 THEN 0
                WHEN m.locked THEN m.toast_pages * current_setting('block_size')::int8
                ELSE coalesce(pg_catalog.pg_total_relation_size(m.reltoastrelid), 0) END AS toast
      FROM measured m
)
SELECT schema, name, total::int8, (total - indexes - toast)::int8, indexes::int8, toast::int8,
       CASE WHEN reltuples < 0 THEN NULL ELSE reltuples::int8 END, locked,
       (SELECT count(*) FROM est)::int8, (SELECT sum(est_bytes) FROM est)::int8
  FROM sized
 ORDER BY total DESC, schema, name
 LIMIT $1",
        cte = pages_cte()
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
