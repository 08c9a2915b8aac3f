//! An independent judge of "same schema": catalog queries of its own (not the engine's model), column order
//! ignored, plus a normalised `pg_dump --schema-only` when the installed pg_dump can dump the server.

use std::collections::BTreeSet;
use std::process::Command;

use pgstrata_catalog::Renames;
use tokio_postgres::Client;

const FINGERPRINT: &str = r#"
WITH ns AS (
  SELECT oid, nspname FROM pg_namespace
   WHERE nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
     AND nspname NOT LIKE 'pg\_temp\_%' AND nspname NOT LIKE 'pg\_toast\_temp\_%'
), ext AS (
  SELECT classid, objid FROM pg_depend WHERE deptype = 'e'
), rel AS (
  SELECT c.* FROM pg_class c JOIN ns ON ns.oid = c.relnamespace
   WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_class'::regclass AND ext.objid = c.oid)
), idseq AS (
  SELECT d.objid AS seq, d.refobjid AS rel, d.refobjsubid AS att FROM pg_depend d
   WHERE d.classid = 'pg_class'::regclass AND d.refclassid = 'pg_class'::regclass AND d.deptype = 'i'
)
SELECT 'schema ' || quote_ident(nspname) FROM ns
 WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_namespace'::regclass AND ext.objid = ns.oid)
UNION ALL SELECT 'extension ' || extname FROM pg_extension
UNION ALL
SELECT format('relation %s kind=%s persistence=%s rls=%s/%s options=%s replident=%s partkey=%s bound=%s',
              c.oid::regclass, c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity,
              (SELECT array_agg(o ORDER BY o) FROM unnest(c.reloptions) o), c.relreplident,
              CASE WHEN c.relkind = 'p' THEN pg_get_partkeydef(c.oid) END, pg_get_expr(c.relpartbound, c.oid))
  FROM rel c WHERE c.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
     OR (c.relkind = 'S' AND NOT EXISTS (SELECT 1 FROM idseq WHERE idseq.seq = c.oid))
UNION ALL
SELECT format('column %s.%I type=%s notnull=%s default=%s identity=%s generated=%s collation=%s inherited=%s idseq=%s',
              c.oid::regclass, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
              pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated,
              CASE WHEN a.attcollation <> 0 THEN a.attcollation::regcollation::text END, a.attinhcount,
              (SELECT format('%s/%s/%s/%s/%s/%s', s.seqincrement, s.seqstart, s.seqmin, s.seqmax, s.seqcache, s.seqcycle)
                 FROM idseq JOIN pg_sequence s ON s.seqrelid = idseq.seq
                WHERE idseq.rel = c.oid AND idseq.att = a.attnum))
  FROM rel c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'c', 'f')
UNION ALL
SELECT format('sequence %s type=%s %s/%s/%s/%s/%s/%s owner=%s', c.oid::regclass, s.seqtypid::regtype, s.seqincrement,
              s.seqstart, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
              (SELECT format('%s.%s', d.refobjid::regclass, d.refobjsubid) FROM pg_depend d
                WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
                  AND d.deptype = 'a'))
  FROM rel c JOIN pg_sequence s ON s.seqrelid = c.oid
 WHERE NOT EXISTS (SELECT 1 FROM idseq WHERE idseq.seq = c.oid)
UNION ALL
SELECT format('constraint %I on %s: %s valid=%s', k.conname, COALESCE(k.conrelid::regclass::text, k.contypid::regtype::text),
              pg_get_constraintdef(k.oid), k.convalidated)
  FROM pg_constraint k
 WHERE k.contype <> 'n' AND (k.conrelid IN (SELECT oid FROM rel)
        OR k.contypid IN (SELECT t.oid FROM pg_type t JOIN ns ON ns.oid = t.typnamespace))
UNION ALL
SELECT format('index %s on %s: %s', i.indexrelid::regclass, i.indrelid::regclass, pg_get_indexdef(i.indexrelid))
  FROM pg_index i WHERE i.indrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT format('viewdef %s: %s', c.oid::regclass, pg_get_viewdef(c.oid)) FROM rel c WHERE c.relkind IN ('v', 'm')
UNION ALL
SELECT format('inherits %s from %s', i.inhrelid::regclass, i.inhparent::regclass)
  FROM pg_inherits i WHERE i.inhrelid IN (SELECT oid FROM rel WHERE relkind IN ('r', 'p'))
UNION ALL
SELECT format('routine %s kind=%s: %s', p.oid::regprocedure, p.prokind,
              CASE WHEN p.prokind <> 'a' THEN pg_get_functiondef(p.oid) END)
  FROM pg_proc p JOIN ns ON ns.oid = p.pronamespace
 WHERE NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_proc'::regclass AND ext.objid = p.oid)
UNION ALL
SELECT format('trigger %I on %s: %s enabled=%s', t.tgname, t.tgrelid::regclass, pg_get_triggerdef(t.oid), t.tgenabled)
  FROM pg_trigger t WHERE NOT t.tgisinternal AND t.tgrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT format('policy %I on %s: %s %s %s using=%s check=%s', p.polname, p.polrelid::regclass, p.polcmd, p.polpermissive,
              p.polroles::regrole[], pg_get_expr(p.polqual, p.polrelid), pg_get_expr(p.polwithcheck, p.polrelid))
  FROM pg_policy p WHERE p.polrelid IN (SELECT oid FROM rel)
UNION ALL
SELECT format('type %s kind=%s base=%s notnull=%s default=%s labels=%s', t.oid::regtype, t.typtype,
              CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END, t.typnotnull,
              t.typdefault,
              (SELECT array_agg(e.enumlabel ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid))
  FROM pg_type t JOIN ns ON ns.oid = t.typnamespace
 WHERE t.typtype IN ('e', 'd', 'r', 'm', 'c')
   AND (t.typtype <> 'c' OR (SELECT relkind FROM pg_class WHERE oid = t.typrelid) = 'c')
   AND NOT EXISTS (SELECT 1 FROM ext WHERE ext.classid = 'pg_type'::regclass AND ext.objid = t.oid)
UNION ALL
SELECT format('range %s subtype=%s', r.rngtypid::regtype, r.rngsubtype::regtype)
  FROM pg_range r WHERE r.rngtypid >= 16384
UNION ALL
SELECT format('comment on %s: %s', pg_describe_object(d.classoid, d.objoid, d.objsubid), d.description)
  FROM pg_description d WHERE d.objoid >= 16384
"#;

/// The schema of the database `client` is connected to, as a set of lines.
pub async fn fingerprint(client: &Client) -> BTreeSet<String> {
    client
        .batch_execute("SET search_path = ''")
        .await
        .unwrap_or_else(|e| panic!("fingerprint: {e}"));
    let rows = client
        .query(FINGERPRINT, &[])
        .await
        .unwrap_or_else(|e| panic!("fingerprint query: {}", pgstrata_catalog::describe(&e)));
    client
        .batch_execute("RESET search_path")
        .await
        .unwrap_or_else(|e| panic!("fingerprint: {e}"));
    rows.iter()
        .filter_map(|r| r.get::<_, Option<String>>(0))
        .collect()
}

/// The fingerprint without extensions (created, never dropped: a diff leaves the source's alone) and without lines
/// naming unmodelled objects.
pub fn without(fp: BTreeSet<String>, unmodeled: &[String]) -> BTreeSet<String> {
    fp.into_iter()
        .filter(|l| !l.starts_with("extension ") && !l.starts_with("comment on extension "))
        .filter(|l| !unmodeled.iter().any(|u| l.contains(u.as_str())))
        .collect()
}

/// `None` when equal, else the lines only on one side.
pub fn difference(have: &BTreeSet<String>, want: &BTreeSet<String>) -> Option<String> {
    if have == want {
        return None;
    }
    let mut out = String::new();
    for l in have.difference(want) {
        out.push_str(&format!("  - {l}\n"));
    }
    for l in want.difference(have) {
        out.push_str(&format!("  + {l}\n"));
    }
    Some(out)
}

/// Tables and columns (of tables) the source has and the target lacks: dropping them loses data.
pub fn lost_relations(
    before: &BTreeSet<String>,
    target: &BTreeSet<String>,
    renames: &Renames,
) -> Vec<String> {
    let tables = |fp: &BTreeSet<String>| -> BTreeSet<String> {
        fp.iter()
            .filter_map(|l| l.strip_prefix("relation "))
            .filter(|l| l.contains(" kind=r ") || l.contains(" kind=p "))
            .filter_map(|l| l.split(' ').next().map(str::to_string))
            .collect()
    };
    let (src_tables, dst_tables) = (tables(before), tables(target));
    let renamed_tables: BTreeSet<String> =
        renames.tables.iter().map(|(old, _)| old.sql()).collect();
    let mut lost: Vec<String> = src_tables
        .difference(&dst_tables)
        .filter(|t| !renamed_tables.contains(*t))
        .cloned()
        .collect();
    let columns = |fp: &BTreeSet<String>, tables: &BTreeSet<String>| -> BTreeSet<String> {
        fp.iter()
            .filter_map(|l| l.strip_prefix("column "))
            .filter(|l| l.contains(" generated= "))
            .filter_map(|l| l.split(" type=").next().map(str::to_string))
            .filter(|c| tables.iter().any(|t| c.starts_with(&format!("{t}."))))
            .collect()
    };
    let common: BTreeSet<String> = src_tables.intersection(&dst_tables).cloned().collect();
    let renamed_columns: BTreeSet<String> = renames
        .columns
        .iter()
        .map(|(t, old, _)| format!("{}.{}", t.sql(), pgstrata_catalog::quote_ident(old)))
        .collect();
    lost.extend(
        columns(before, &common)
            .difference(&columns(target, &common))
            .filter(|c| !renamed_columns.contains(*c))
            .cloned(),
    );
    lost
}

fn server_major(env: &[(String, String)]) -> Option<u32> {
    let out = Command::new("psql")
        .args(["-XAtc", "SHOW server_version_num"])
        .envs(env.iter().cloned())
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse::<u32>()
        .ok()
        .map(|n| n / 10_000)
}

fn pg_dump_major() -> Option<u32> {
    let out = Command::new("pg_dump").arg("--version").output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    // "pg_dump (PostgreSQL) 15.18 (Debian …)"
    text.split(')')
        .nth(1)?
        .split_whitespace()
        .next()?
        .split('.')
        .next()?
        .parse()
        .ok()
}

fn normalised_dump(env: &[(String, String)], unmodeled: &[String]) -> Option<BTreeSet<String>> {
    let out = Command::new("pg_dump")
        .args(["--schema-only", "--no-owner", "--no-privileges"])
        .envs(env.iter().cloned())
        .output()
        .ok()?;
    if !out.status.success() {
        panic!("pg_dump failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut statements = BTreeSet::new();
    let mut current: Vec<String> = Vec::new();
    for line in text.lines() {
        if line.starts_with("--") || line.trim().is_empty() || line.starts_with("\\") {
            continue;
        }
        current.push(line.to_string());
        if line.ends_with(';') {
            let mut stmt = current.clone();
            current.clear();
            if stmt[0].starts_with("SET ")
                || stmt[0].starts_with("SELECT pg_catalog.set_config")
                || stmt[0].starts_with("CREATE EXTENSION")
                || stmt[0].starts_with("COMMENT ON EXTENSION")
                || unmodeled
                    .iter()
                    .any(|u| stmt.iter().any(|l| l.contains(u.as_str())))
            {
                continue;
            }
            // Storage parameters are a set.
            for line in stmt.iter_mut() {
                if let Some(inner) = line
                    .strip_prefix("WITH (")
                    .and_then(|r| r.strip_suffix(");"))
                {
                    let mut opts: Vec<&str> = inner.split(", ").collect();
                    opts.sort_unstable();
                    *line = format!("WITH ({});", opts.join(", "));
                }
            }
            // Column order does not count: sort the element lines of CREATE TABLE / CREATE TYPE.
            if stmt[0].starts_with("CREATE TABLE")
                || stmt[0].starts_with("CREATE UNLOGGED TABLE")
                || stmt[0].starts_with("CREATE TYPE")
            {
                let n = stmt.len();
                if n > 2 {
                    let mut inner: Vec<String> = stmt[1..n - 1]
                        .iter()
                        .map(|l| l.trim_end_matches(',').to_string())
                        .collect();
                    inner.sort();
                    stmt.splice(1..n - 1, inner);
                }
            }
            let mut joined = stmt.join("\n");
            // An identity's sequence name is chosen by PostgreSQL.
            if let Some(pos) = joined.find("SEQUENCE NAME ") {
                let rest = &joined[pos + 14..];
                let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
                joined = format!("{}SEQUENCE NAME _{}", &joined[..pos], &rest[end..]);
            }
            statements.insert(joined);
        }
    }
    Some(statements)
}

/// Compare normalised `pg_dump --schema-only` of two databases, when the installed pg_dump can dump the server.
pub fn dump_difference(
    a: &pgtest::TestDb,
    b: &pgtest::TestDb,
    unmodeled: &[String],
) -> Option<String> {
    let (ea, eb) = (a.env(), b.env());
    let server = server_major(&ea)?;
    if pg_dump_major()? < server {
        return None;
    }
    let (da, db) = (
        normalised_dump(&ea, unmodeled)?,
        normalised_dump(&eb, unmodeled)?,
    );
    difference(&da, &db)
}
