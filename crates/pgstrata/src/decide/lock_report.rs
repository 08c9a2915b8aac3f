//! The lock report of `strata plan`: for each statement about to run, the lock it takes and on which relation,
//! whether it rewrites or scans the table, and — when connected — the relation's current size and row estimate,
//! so "ACCESS EXCLUSIVE on a 40 GB table" is seen before deploying.
//!
//! Lock levels come from `pgstrata_sql::locks` (PostgreSQL's documented levels per command). A relation created
//! earlier in the same deploy is marked new: nobody else can be using it, so its locks block nobody, and statements
//! that only touch new relations are left out.

use pgstrata_sql::locks::{self, RelationName};
use tokio_postgres::Client;

use crate::db::exec::Database;
use crate::decide::plan::Plan;
use crate::error::{Error, Result};
use crate::source::STRATA_PACKAGE;
use crate::source::project::Project;

/// Locks of every pending migration, in the order they would run.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LockReport {
    /// Whether sizes were looked up (connected to the database).
    pub connected: bool,
    /// Migrations with at least one statement worth reporting.
    pub migrations: Vec<MigrationLocks>,
}

/// The statements of one migration that lock, rewrite or scan something.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MigrationLocks {
    /// Package.
    pub package: String,
    /// Migration name.
    pub migration: String,
    /// File.
    pub path: String,
    /// Runs (partly) outside a transaction: each statement there commits, and releases its locks, on its own.
    pub no_transaction: bool,
    /// Statements, in order.
    pub statements: Vec<StatementReport>,
}

/// One statement of the report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StatementReport {
    /// 1-based line in the file.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// e.g. `ALTER TABLE … ADD COLUMN`.
    pub command: String,
    /// Its first line, shortened.
    pub sql: String,
    /// Runs outside a transaction.
    pub no_transaction: bool,
    /// Locks on named relations, strongest first.
    pub locks: Vec<LockEntry>,
    /// Why it rewrites the whole table, if it does.
    pub rewrite: Option<String>,
    /// Why it reads the whole table under its lock, if it does.
    pub scan: Option<String>,
    /// What the analysis cannot tell.
    pub note: Option<String>,
}

/// A lock on a relation.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LockEntry {
    /// The relation as named (schema-qualified with the package's schema when the statement did not qualify it).
    pub relation: String,
    /// `ACCESS EXCLUSIVE`, `SHARE`, …
    pub mode: String,
    /// What others cannot do meanwhile.
    pub blocks: String,
    /// Plain reads wait.
    pub blocks_reads: bool,
    /// Writes wait.
    pub blocks_writes: bool,
    /// `relation` is an index and the lock is on its table.
    pub on_table_of_index: bool,
    /// Created earlier in this deploy: blocks nobody.
    pub new: bool,
    /// The locked table, as found in the database (for an index: its table).
    pub table: Option<String>,
    /// Whether the relation exists now (None when not connected, or new).
    pub exists: Option<bool>,
    /// `pg_total_relation_size` (table, indexes and TOAST), in bytes.
    pub size_bytes: Option<i64>,
    /// `pg_class.reltuples`: the planner's row estimate (None if never analyzed).
    pub rows_estimate: Option<i64>,
}

impl LockEntry {
    /// `40 GB, ~312,000,000 rows`, or what is known of it.
    pub fn size_text(&self) -> Option<String> {
        let size = self.size_bytes.map(pretty_size)?;
        Some(match self.rows_estimate {
            Some(rows) => format!("{size}, ~{} rows", thousands(rows)),
            None => format!("{size}, never analyzed"),
        })
    }
}

/// Build the lock report of `plan`. With `db`, sizes and row estimates are looked up; without, only the levels.
pub async fn lock_report(
    db: Option<&Database>,
    project: &Project,
    plan: &Plan,
) -> Result<LockReport> {
    let packages = project.with_internal()?;
    let mut report = LockReport {
        connected: db.is_some(),
        migrations: Vec::new(),
    };
    let mut created: Vec<RelationName> = Vec::new();
    // What a statement rewrites or scans can depend on the server's version.
    let server_major = match db {
        Some(db) => Some(crate::db::pg_versions::server_major(db.client()).await?),
        None => None,
    };
    for step in &plan.steps {
        let Some(pkg) = packages.get(step.package_index) else {
            continue;
        };
        let Some(m) = pkg.migrations().get(step.migration_index) else {
            continue;
        };
        let script = m.up();
        let index = pgstrata_sql::LineIndex::new(script.text());
        let mut statements = Vec::new();
        for section in script.sections() {
            // Unqualified names match qualified ones of any schema: close enough to find what this deploy created.
            let analysis = match server_major {
                Some(major) => locks::analyze_for(section.text(script.text()), &created, major),
                None => locks::analyze_with(section.text(script.text()), &created),
            };
            for s in analysis {
                created.extend(s.creates.iter().map(|c| c.qualified_or(pkg.schema())));
                // Locks, rewrites and scans of relations created earlier in this deploy block nobody: leave
                // them out, so a fresh deploy's report shows only what can hurt.
                let interesting = s.locks.iter().any(|l| !l.created_earlier) || s.note.is_some();
                if !interesting || pkg.name() == STRATA_PACKAGE {
                    continue;
                }
                let start = section.range.start + s.range.start;
                let at = index.line_col(start);
                let sql_text = &script.text()[start..section.range.start + s.range.end];
                let mut entries = Vec::new();
                for lock in &s.locks {
                    let relation = lock.relation.qualified_or(pkg.schema());
                    let mut entry = LockEntry {
                        relation: relation.to_string(),
                        mode: lock.mode.name().to_string(),
                        blocks: lock.mode.blocks().to_string(),
                        blocks_reads: lock.mode.blocks_reads(),
                        blocks_writes: lock.mode.blocks_writes(),
                        on_table_of_index: lock.on_table_of_index,
                        new: lock.created_earlier,
                        table: None,
                        exists: None,
                        size_bytes: None,
                        rows_estimate: None,
                    };
                    if let (Some(db), false) = (db, lock.created_earlier) {
                        lookup(db.client(), &relation, &lock.relation, &mut entry).await?;
                    }
                    entries.push(entry);
                }
                statements.push(StatementReport {
                    line: at.line,
                    column: at.col,
                    command: s.command,
                    sql: shorten(sql_text),
                    no_transaction: section.no_transaction,
                    locks: entries,
                    rewrite: s.rewrite,
                    scan: s.scan,
                    note: s.note,
                });
            }
        }
        if !statements.is_empty() {
            report.migrations.push(MigrationLocks {
                package: pkg.name().to_string(),
                migration: m.name().to_string(),
                path: script.origin().to_string(),
                no_transaction: m.no_transaction(),
                statements,
            });
        }
    }
    Ok(report)
}

/// Find the relation as the deploy session would (the package's schema first, then the session's search_path) and
/// read its size and row estimate.
async fn lookup(
    client: &Client,
    qualified: &RelationName,
    as_written: &RelationName,
    entry: &mut LockEntry,
) -> Result<()> {
    let row = client
        .query_opt(
            "WITH r AS (SELECT COALESCE(to_regclass($1), to_regclass($2)) AS oid),
                  t AS (SELECT CASE WHEN $3 THEN (SELECT indrelid FROM pg_index, r WHERE indexrelid = r.oid)
                                    ELSE (SELECT oid FROM r) END AS oid)
             SELECT format('%I.%I', n.nspname, c.relname), pg_total_relation_size(c.oid), c.reltuples::float8
               FROM t JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace",
            &[
                &qualified.to_string(),
                &as_written.to_string(),
                &entry.on_table_of_index,
            ],
        )
        .await
        .map_err(Error::db(format!("looking up {qualified}")))?;
    match row {
        Some(row) => {
            entry.exists = Some(true);
            entry.table = Some(row.get(0));
            entry.size_bytes = Some(row.get(1));
            let rows: f64 = row.get(2);
            // -1 (PostgreSQL 14+) means never vacuumed or analyzed.
            entry.rows_estimate = (rows >= 0.0).then_some(rows.round() as i64);
        }
        None => entry.exists = Some(false),
    }
    Ok(())
}

/// The first line of a statement, at most 80 characters.
fn shorten(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or("").trim_end();
    let mut out: String = line.chars().take(80).collect();
    if out.len() < line.len() || sql.trim_end().contains('\n') {
        out.push_str(" …");
    }
    out
}

/// Bytes as PostgreSQL's `pg_size_pretty` prints them (`8192 bytes`, `40 kB`, `3 GB`).
pub fn pretty_size(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["kB", "MB", "GB", "TB", "PB"];
    if bytes.abs() < 10 * 1024 {
        return format!("{bytes} bytes");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value.abs() >= 10.0 * 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{} {}", value.round(), UNITS[unit])
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// True for a lock that blocks traffic on a relation that exists: what the report highlights.
pub fn is_disruptive(entry: &LockEntry) -> bool {
    !entry.new && entry.exists != Some(false) && entry.blocks_writes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_pg_size_pretty() {
        assert_eq!(pretty_size(8192), "8192 bytes");
        assert_eq!(pretty_size(40 * 1024), "40 kB");
        assert_eq!(pretty_size(40 * 1024 * 1024 * 1024), "40 GB");
        assert_eq!(thousands(312_000_000), "312,000,000");
        assert_eq!(thousands(999), "999");
    }

    #[test]
    fn statements_are_shortened_to_their_first_line() {
        assert_eq!(shorten("ALTER TABLE t\n  ADD c int;"), "ALTER TABLE t …");
        assert_eq!(shorten("VACUUM t;"), "VACUUM t;");
    }
}
