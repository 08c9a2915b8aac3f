//! Backups and restores with the server's own `pg_dump` / `pg_restore`.
//!
//! [`backup`] opens a repeatable-read transaction, exports its snapshot and hands it to `pg_dump --snapshot`, so
//! what the manifest records — Strata's history, the exact row count of every table — is what the archive holds.
//! The counts run in that transaction while `pg_dump` writes. Afterwards the archive's table of contents is read
//! back (`pg_restore --list`): a table whose data is not in it fails the backup ([`Error::MissingData`]).
//!
//! [`restore`] checks the archive against its manifest's checksum, refuses a database that holds objects unless
//! told to clean, and runs `pg_restore` (one transaction with one job). [`verify`] restores into a throwaway
//! database — on the same server, or a throwaway local cluster — and compares row counts and history with the
//! manifest.
//!
//! Connection settings, password included, reach the child programs through `PG*` environment variables only.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgstrata_ops::Error> {
//! use pgstrata_ops::backup::{BackupOptions, Format, NoProgress, backup};
//! let options = pgstrata_conn::ConnectOptions::from_env(None)?;
//! let opts = BackupOptions::new("app.dump", Format::Custom);
//! let report = backup(&options, &opts, &mut NoProgress).await?;
//! println!("{} bytes, manifest {}", report.manifest.bytes, report.manifest_path.display());
//! # Ok(()) }
//! ```

pub mod manifest;
mod process;
mod restore;
pub mod tools;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::{DateTime, Utc};
use postgres_protocol::escape::escape_identifier;
use serde::{Deserialize, Serialize};
use tokio_postgres::Client;
use tokio_postgres::types::Type;

pub use manifest::{BackupManifest, Checksum, HistoryEntry, TableRows};
pub use restore::{
    RestoreOptions, RestoreReport, Verification, VerifyTarget, compare_with_manifest, restore,
    throwaway_name, verify,
};
pub use tools::Tool;

use crate::error::{Error, Result};

/// Archive format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// One compressed file (`pg_dump -Fc`); dumped by one process, restorable in parallel.
    Custom,
    /// A directory of compressed files (`pg_dump -Fd`); dumped and restored in parallel.
    Directory,
}

impl Format {
    fn flag(self) -> &'static str {
        match self {
            Format::Custom => "--format=custom",
            Format::Directory => "--format=directory",
        }
    }
}

/// What a long step reports as it goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A step starts, with `total` tables to go through.
    Start {
        /// "dumping", "restoring", "counting rows", …
        step: &'static str,
        /// Tables expected.
        total: u64,
    },
    /// A table was reached.
    Table {
        /// How many so far.
        done: u64,
        /// Which (`schema.name`).
        name: String,
    },
    /// Bytes written to the archive so far.
    Bytes(u64),
    /// The step ended.
    Finish,
}

/// Receives [`Event`]s (a progress bar, a log).
pub trait Progress {
    /// One event.
    fn event(&mut self, event: Event);
}

/// Ignores events.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl Progress for NoProgress {
    fn event(&mut self, _: Event) {}
}

/// What to dump and how.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    /// The archive: a file (custom format) or a directory that must not exist yet (directory format).
    pub path: PathBuf,
    /// Archive format.
    pub format: Format,
    /// Parallel `pg_dump` jobs (directory format only).
    pub jobs: u32,
    /// Schema only: no table data.
    pub schema_only: bool,
    /// Only these schemas (plus `strata`, Strata's history); empty: the whole database.
    pub schemas: Vec<String>,
    /// The `pg_dump` to run (its major version must be the server's); default: found (see [`tools`]).
    pub pg_dump: Option<PathBuf>,
}

impl BackupOptions {
    /// A whole-database backup to `path`, one job.
    pub fn new(path: impl Into<PathBuf>, format: Format) -> BackupOptions {
        BackupOptions {
            path: path.into(),
            format,
            jobs: 1,
            schema_only: false,
            schemas: Vec::new(),
            pg_dump: None,
        }
    }
}

/// What [`backup`] did.
#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    /// The archive.
    pub archive: PathBuf,
    /// The manifest beside it.
    pub manifest_path: PathBuf,
    /// Its content.
    pub manifest: BackupManifest,
    /// The `pg_dump` that ran.
    pub pg_dump: Tool,
    /// `pg_dump`'s warnings (none of them meant missing data: that fails the backup).
    pub warnings: Vec<String>,
    /// Wall time.
    pub duration_ms: f64,
}

/// A default archive name: `<database>-<UTC time>.dump` (custom) or without extension (directory).
pub fn default_archive_name(database: &str, format: Format, now: DateTime<Utc>) -> PathBuf {
    let stamp = now.format("%Y%m%dT%H%M%SZ");
    let safe: String = database
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    match format {
        Format::Custom => PathBuf::from(format!("{safe}-{stamp}.dump")),
        Format::Directory => PathBuf::from(format!("{safe}-{stamp}")),
    }
}

/// Tables whose data `pg_dump` writes: ordinary tables and partitions (not temporary, not an extension's) in the
/// dumped schemas. `$1`: the schemas, or NULL for all but the system ones.
const DATA_TABLES_SQL: &str = "
SELECT c.oid, n.nspname::text, c.relname::text, pg_catalog.has_table_privilege(c.oid, 'SELECT')
  FROM pg_catalog.pg_class c
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind = 'r' AND c.relpersistence <> 't'
   AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast' AND n.nspname !~ '^pg_temp_'
   AND ($1::text[] IS NULL OR n.nspname = ANY ($1))
   AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                    WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
 ORDER BY 2, 3";

/// One table whose data the archive should hold.
#[derive(Debug, Clone)]
struct DataTable {
    oid: u32,
    schema: String,
    name: String,
    readable: bool,
}

/// Dump the database `options` points at (see the module docs).
pub async fn backup(
    options: &pgstrata_conn::ConnectOptions,
    opts: &BackupOptions,
    progress: &mut dyn Progress,
) -> Result<BackupReport> {
    let start = Instant::now();
    if opts.jobs == 0 {
        return Err(Error::usage("--jobs must be at least 1", None));
    }
    if opts.jobs > 1 && opts.format == Format::Custom {
        return Err(Error::usage(
            "--jobs needs --format directory: pg_dump writes a custom-format archive with one process",
            Some("use --format directory, or leave --jobs out".into()),
        ));
    }
    if opts.path.exists() {
        return Err(Error::usage(
            format!("{} exists already", opts.path.display()),
            Some("choose another name, or remove it first".into()),
        ));
    }

    let db = pgstrata::Database::connect(options).await?;
    let client = db.client();
    // The snapshot pg_dump will use, kept open (and used for the counts) until it is done.
    client
        .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(Error::db("starting the backup's snapshot transaction"))?;
    let row = client
        .query_one(
            "SELECT pg_catalog.pg_export_snapshot(), current_setting('server_version_num')::int4,
                    current_setting('server_version'), current_database()::text, now()",
            &[],
        )
        .await
        .map_err(Error::db("exporting a snapshot for pg_dump"))?;
    let snapshot: String = row.get(0);
    let version_num: i32 = row.get(1);
    let server_version: String = row.get(2);
    let database: String = row.get(3);
    let created_at: DateTime<Utc> = row.get(4);
    let pg_dump = tools::find(
        "pg_dump",
        tools::major_of(version_num),
        opts.pg_dump.as_deref(),
    )
    .await?;

    let schemas = dumped_schemas(client, &opts.schemas).await?;
    let tables = data_tables(client, schemas.as_deref()).await?;
    let unreadable: Vec<String> = tables
        .iter()
        .filter(|t| !t.readable)
        .map(|t| format!("{}.{}", t.schema, t.name))
        .collect();
    if !unreadable.is_empty() && !opts.schema_only {
        return Err(Error::usage(
            format!(
                "role {} may not read {} table(s): {}",
                options.user(),
                unreadable.len(),
                unreadable.join(", ")
            ),
            Some(
                "pg_dump needs SELECT on every table it dumps: back up as the owner or a superuser"
                    .into(),
            ),
        ));
    }
    let (history, last_run) = history(client).await?;

    let mut cmd = process::command(&pg_dump.path, options);
    cmd.arg(opts.format.flag())
        .arg("--verbose")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--file")
        .arg(&opts.path);
    if opts.format == Format::Directory {
        cmd.arg(format!("--jobs={}", opts.jobs));
    }
    if opts.schema_only {
        cmd.arg("--schema-only");
    }
    if let Some(schemas) = &schemas {
        cmd.arg("--strict-names");
        for s in schemas {
            cmd.arg(format!("--schema={}", escape_identifier(s)));
        }
    }

    let total = if opts.schema_only {
        0
    } else {
        tables.len() as u64
    };
    progress.event(Event::Start {
        step: "dumping",
        total,
    });
    let mut done = 0u64;
    let dump = process::run(cmd, "pg_dump", Some(&opts.path), progress, |line, p| {
        // "pg_dump: dumping contents of table "public.t"" (with -j, also from the workers).
        if let Some(rest) = line.split_once("dumping contents of table ") {
            done += 1;
            p.event(Event::Table {
                done,
                name: rest.1.trim_matches('"').to_string(),
            });
        }
    });
    let counts = async {
        if opts.schema_only {
            // No rows in the archive: the tables are recorded (with 0) so that a verification finds them.
            Ok(tables
                .iter()
                .map(|t| TableRows {
                    schema: t.schema.clone(),
                    table: t.name.clone(),
                    rows: 0,
                })
                .collect())
        } else {
            count_rows(client, &tables).await
        }
    };
    let (dump, counts) = tokio::join!(dump, counts);
    // The path did not exist before: whatever is there after a failure is this dump's partial output.
    let discard = || {
        let _ = if opts.path.is_dir() {
            std::fs::remove_dir_all(&opts.path)
        } else {
            std::fs::remove_file(&opts.path)
        };
    };
    let dump = dump.inspect_err(|_| discard())?;
    if !dump.status.success() {
        discard();
        // Our transaction failing first makes pg_dump fail to import its snapshot: the cause is ours.
        counts?;
        return Err(Error::ToolFailed {
            tool: "pg_dump".into(),
            status: dump.status.to_string(),
            stderr: process::error_lines("pg_dump", &dump.stderr),
            help: Some("nothing was kept: the partial archive has been removed".into()),
        });
    }
    let counts = counts.inspect_err(|_| discard())?;
    client
        .batch_execute("COMMIT")
        .await
        .map_err(Error::db("ending the snapshot transaction"))?;
    progress.event(Event::Bytes(manifest::size_so_far(&opts.path)));
    progress.event(Event::Finish);
    let warnings: Vec<String> = dump
        .stderr
        .iter()
        .filter(|l| l.contains("warning:"))
        .map(|l| l.trim_start_matches("pg_dump: ").to_string())
        .collect();

    if !opts.schema_only {
        let pg_restore = restore_tool_beside(&pg_dump).await?;
        let listed = archive_data_oids(&pg_restore, &opts.path).await?;
        let missing: Vec<String> = tables
            .iter()
            .filter(|t| !listed.contains(&t.oid))
            .map(|t| format!("{}.{}", t.schema, t.name))
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingData { tables: missing });
        }
    }

    let (checksum, bytes) = manifest::checksum(&opts.path)?;
    let manifest = BackupManifest {
        manifest_version: manifest::MANIFEST_VERSION,
        strata_version: pgstrata::VERSION.to_string(),
        created_at,
        database,
        server_version,
        server_version_num: version_num,
        pg_dump_version: pg_dump.version.clone(),
        format: opts.format,
        schema_only: opts.schema_only,
        schemas: schemas.unwrap_or_default(),
        archive: opts
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        bytes,
        checksum,
        history,
        last_run,
        tables: counts,
    };
    let manifest_path = manifest.write_for(&opts.path)?;
    Ok(BackupReport {
        archive: opts.path.clone(),
        manifest_path,
        manifest,
        pg_dump,
        warnings,
        duration_ms: start.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The schemas to dump: none given → `None` (everything); else those plus `strata` when it exists. A schema that
/// does not exist is an error (pg_dump's `--strict-names` would say so less clearly).
async fn dumped_schemas(client: &Client, wanted: &[String]) -> Result<Option<Vec<String>>> {
    if wanted.is_empty() {
        return Ok(None);
    }
    let existing: Vec<String> = client
        .query(
            "SELECT nspname::text FROM pg_catalog.pg_namespace WHERE nspname = ANY ($1) OR nspname = 'strata'",
            &[&wanted],
        )
        .await
        .map_err(Error::db("reading the schemas to dump"))?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|w| !existing.contains(w))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(Error::usage(
            format!(
                "schema(s) {} do not exist in this database",
                missing.join(", ")
            ),
            Some(
                "deploy the package first (strata up), or leave -p out to dump the whole database"
                    .into(),
            ),
        ));
    }
    let mut out: Vec<String> = wanted.to_vec();
    if existing.iter().any(|s| s == "strata") && !out.iter().any(|s| s == "strata") {
        out.push("strata".into());
    }
    Ok(Some(out))
}

async fn data_tables(client: &Client, schemas: Option<&[String]>) -> Result<Vec<DataTable>> {
    let schemas: Option<Vec<&str>> = schemas.map(|s| s.iter().map(String::as_str).collect());
    let rows = client
        .query_typed(DATA_TABLES_SQL, &[(&schemas, Type::TEXT_ARRAY)])
        .await
        .map_err(Error::db("listing the tables to dump"))?;
    Ok(rows
        .iter()
        .map(|r| DataTable {
            oid: r.get(0),
            schema: r.get(1),
            name: r.get(2),
            readable: r.get(3),
        })
        .collect())
}

/// Strata's history in application order, and the last run id (nothing when Strata never ran here).
pub(crate) async fn history(client: &Client) -> Result<(Vec<HistoryEntry>, Option<i64>)> {
    if !pgstrata::history::history_exists(client).await? {
        return Ok((Vec::new(), None));
    }
    let rows = client
        .query(
            "SELECT package, name, checksum FROM strata.migration ORDER BY id",
            &[],
        )
        .await
        .map_err(Error::db("reading Strata's history"))?;
    let history = rows
        .iter()
        .map(|r| HistoryEntry {
            package: r.get(0),
            name: r.get(1),
            checksum: r.get(2),
        })
        .collect();
    let last_run: Option<i64> = client
        .query_one("SELECT max(id) FROM strata.run", &[])
        .await
        .map_err(Error::db("reading Strata's runs"))?
        .get(0);
    Ok((history, last_run))
}

/// `count(*)` of each table, in chunks of one `UNION ALL` query each (one round trip per 200 tables).
pub(crate) async fn count_tables(
    client: &Client,
    tables: &[(String, String)],
) -> Result<Vec<TableRows>> {
    let mut out = Vec::with_capacity(tables.len());
    for chunk in tables.chunks(200) {
        let sql = chunk
            .iter()
            .enumerate()
            .map(|(i, (schema, name))| {
                format!(
                    "SELECT {i}, count(*)::int8 FROM {}.{}",
                    escape_identifier(schema),
                    escape_identifier(name)
                )
            })
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        let rows = client
            .query(&sql, &[])
            .await
            .map_err(Error::db("counting rows"))?;
        let mut counts = vec![0i64; chunk.len()];
        for r in rows {
            let i: i32 = r.get(0);
            if let Some(slot) = usize::try_from(i).ok().and_then(|i| counts.get_mut(i)) {
                *slot = r.get(1);
            }
        }
        for ((schema, table), rows) in chunk.iter().zip(counts) {
            out.push(TableRows {
                schema: schema.clone(),
                table: table.clone(),
                rows,
            });
        }
    }
    Ok(out)
}

async fn count_rows(client: &Client, tables: &[DataTable]) -> Result<Vec<TableRows>> {
    let names: Vec<(String, String)> = tables
        .iter()
        .map(|t| (t.schema.clone(), t.name.clone()))
        .collect();
    count_tables(client, &names).await
}

/// The `pg_restore` next to `pg_dump` (same installation), else one of the same major version.
async fn restore_tool_beside(pg_dump: &Tool) -> Result<Tool> {
    let beside = pg_dump.path.with_file_name("pg_restore");
    if beside.is_file()
        && let Ok((version, major)) = tools::version_of(&beside).await
        && major == pg_dump.major
    {
        return Ok(Tool {
            path: beside,
            version,
            major,
        });
    }
    tools::find("pg_restore", pg_dump.major, None).await
}

/// The oids of the tables whose data an archive holds (`TABLE DATA` entries of `pg_restore --list`:
/// `<id>; <catalog oid> <table oid> TABLE DATA <schema> <name> <owner>`).
async fn archive_data_oids(pg_restore: &Tool, archive: &Path) -> Result<HashSet<u32>> {
    let out = tokio::process::Command::new(&pg_restore.path)
        .arg("--list")
        .arg(archive)
        .env("LC_ALL", "C")
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .map_err(|e| Error::Tool {
            message: format!("cannot run {}: {e}", pg_restore.path.display()),
            help: None,
        })?;
    if !out.status.success() {
        let stderr: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::to_string)
            .collect();
        return Err(Error::ToolFailed {
            tool: "pg_restore --list".into(),
            status: out.status.to_string(),
            stderr: process::error_lines("pg_restore", &stderr),
            help: Some("the archive cannot be read back: it is damaged or incomplete".into()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';') && l.contains(" TABLE DATA "))
        .filter_map(|l| l.split_whitespace().nth(2)?.parse().ok())
        .collect())
}
