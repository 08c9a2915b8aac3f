//! `restore` and `verify`.

use std::path::{Path, PathBuf};
use std::time::Instant;

use postgres_protocol::escape::escape_identifier;
use serde::Serialize;
use tokio_postgres::Client;

use super::manifest::{self, BackupManifest};
use super::{Event, Progress, Tool, count_tables, history, process, tools};
use crate::error::{Error, Result};

/// How to restore.
#[derive(Debug, Clone)]
pub struct RestoreOptions {
    /// The archive (file or directory).
    pub archive: PathBuf,
    /// Parallel `pg_restore` jobs. With one job the restore is a single transaction: all or nothing.
    pub jobs: u32,
    /// Drop the archive's objects before creating them (`--clean --if-exists`); without it a database that holds
    /// objects is refused.
    pub clean: bool,
    /// Do not restore ownership (objects belong to the restoring role): for a server without the original roles.
    pub no_owner: bool,
    /// The `pg_restore` to run (its major version must be the target server's); default: found (see
    /// [`tools`](super::tools)).
    pub pg_restore: Option<PathBuf>,
}

impl RestoreOptions {
    /// Restore `archive` with one job, refusing a non-empty target.
    pub fn new(archive: impl Into<PathBuf>) -> RestoreOptions {
        RestoreOptions {
            archive: archive.into(),
            jobs: 1,
            clean: false,
            no_owner: false,
            pg_restore: None,
        }
    }
}

/// What a verification compared.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    /// Tables whose row counts matched the manifest.
    pub tables: usize,
    /// Rows in them.
    pub rows: i64,
    /// Applied migrations that matched the manifest's history.
    pub history: usize,
}

/// What [`restore`] or [`verify`] did.
#[derive(Debug, Clone, Serialize)]
pub struct RestoreReport {
    /// The archive.
    pub archive: PathBuf,
    /// The database restored into (for [`verify`]: the throwaway one, dropped since).
    pub database: String,
    /// The archive's manifest, when it has one.
    pub manifest: Option<BackupManifest>,
    /// The `pg_restore` that ran.
    pub pg_restore: Tool,
    /// Tables whose data was restored.
    pub tables: u64,
    /// The comparison with the manifest (verify only).
    pub verification: Option<Verification>,
    /// Wall time.
    pub duration_ms: f64,
}

/// Where [`verify`] restores.
#[derive(Debug, Clone)]
pub enum VerifyTarget {
    /// A throwaway database created on this server (the role needs CREATEDB), dropped afterwards.
    Server(Box<pgstrata_conn::ConnectOptions>),
    /// A throwaway local cluster started from the local PostgreSQL server binaries (see `pgstrata-embedded`),
    /// stopped afterwards. Ownership and privileges are not restored there (its only role is `postgres`).
    Shadow,
}

/// A name for a throwaway database: `strata_verify_<pid>_<random>`.
pub fn throwaway_name() -> String {
    format!(
        "strata_verify_{}_{:08x}",
        std::process::id(),
        rand::random::<u32>()
    )
}

/// Check the archive against its manifest (when it has one) and restore it into the database `target` points
/// at (see the module docs of [`backup`](super)).
pub async fn restore(
    target: &pgstrata_conn::ConnectOptions,
    opts: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<RestoreReport> {
    let start = Instant::now();
    let manifest = checked_manifest(&opts.archive)?;
    let db = pgstrata::Database::connect(target).await?;
    if !opts.clean {
        refuse_non_empty(db.client(), target.dbname()).await?;
    }
    let (pg_restore, tables) = run_pg_restore(db.client(), target, opts, progress).await?;
    Ok(RestoreReport {
        archive: opts.archive.clone(),
        database: target.dbname().to_string(),
        manifest,
        pg_restore,
        tables,
        verification: None,
        duration_ms: start.elapsed().as_secs_f64() * 1000.0,
    })
}

/// Restore into a throwaway database and compare its row counts and Strata history with the manifest (which the
/// archive must have). Fails with [`Error::Verify`] listing every difference. The throwaway database (or cluster)
/// is removed whatever happens.
pub async fn verify(
    target: &VerifyTarget,
    opts: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<RestoreReport> {
    let start = Instant::now();
    let Some(manifest) = checked_manifest(&opts.archive)? else {
        return Err(Error::Manifest {
            path: BackupManifest::path_for(&opts.archive),
            message:
                "missing: --verify compares the restore with the manifest `strata backup` writes"
                    .into(),
        });
    };
    let name = throwaway_name();
    // The shadow cluster lives as long as this function.
    let (server, _cluster, mut opts) = match target {
        VerifyTarget::Server(o) => ((**o).clone(), None, opts.clone()),
        VerifyTarget::Shadow => {
            let cluster = tokio::task::spawn_blocking(|| {
                pgstrata_embedded::ChildCluster::start(
                    &pgstrata_embedded::ChildClusterOptions::default(),
                )
            })
            .await
            .map_err(|e| Error::usage(format!("starting the shadow cluster: {e}"), None))?
            .map_err(|e| {
                Error::usage(
                    format!("cannot start a shadow cluster: {e}"),
                    Some("verify on a server instead (leave out --shadow)".into()),
                )
            })?;
            let options = pgstrata_conn::ConnectOptions::parse(&cluster.url("postgres"))?;
            let mut o = opts.clone();
            o.no_owner = true;
            (options, Some(cluster), o)
        }
    };
    opts.clean = false;
    let options = server.with_dbname(&name);
    let admin = pgstrata::Database::connect(&server.with_dbname("postgres")).await?;
    admin
        .client()
        .batch_execute(&format!(
            "CREATE DATABASE {} TEMPLATE template0",
            escape_identifier(&name)
        ))
        .await
        .map_err(Error::db(format!("creating the throwaway database {name}")))?;
    let result = async {
        let db = pgstrata::Database::connect(&options).await?;
        let (pg_restore, tables) = run_pg_restore(db.client(), &options, &opts, progress).await?;
        let verification = compare(db.client(), &manifest).await?;
        Ok::<_, Error>((pg_restore, tables, verification))
    }
    .await;
    let dropped = admin
        .client()
        .batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            escape_identifier(&name)
        ))
        .await
        .map_err(Error::db(format!("dropping the throwaway database {name}")));
    let (pg_restore, tables, verification) = result?;
    dropped?;
    Ok(RestoreReport {
        archive: opts.archive.clone(),
        database: name,
        manifest: Some(manifest),
        pg_restore,
        tables,
        verification: Some(verification),
        duration_ms: start.elapsed().as_secs_f64() * 1000.0,
    })
}

/// The archive's manifest, after checking the archive against its checksum.
fn checked_manifest(archive: &Path) -> Result<Option<BackupManifest>> {
    if !archive.exists() {
        return Err(Error::usage(
            format!("{} does not exist", archive.display()),
            None,
        ));
    }
    let Some(manifest) = BackupManifest::read_for(archive)? else {
        return Ok(None);
    };
    let (actual, _) = manifest::checksum(archive)?;
    if actual.value != manifest.checksum.value {
        return Err(Error::Checksum {
            path: archive.to_path_buf(),
            expected: manifest.checksum.value,
            actual: actual.value,
        });
    }
    Ok(Some(manifest))
}

/// User objects (not the system's, not an extension's) that a restore would collide with.
const OBJECTS_SQL: &str = "
SELECT (SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
           AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_toast'
           AND n.nspname !~ '^pg_temp_'
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid
                              AND d.deptype = 'e'))::int8,
       (SELECT count(*) FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_proc'::regclass AND d.objid = p.oid
                              AND d.deptype = 'e'))::int8,
       (SELECT count(*) FROM pg_catalog.pg_namespace n
         WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'public') AND n.nspname !~ '^pg_'
           AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                            WHERE d.classid = 'pg_catalog.pg_namespace'::regclass AND d.objid = n.oid
                              AND d.deptype = 'e'))::int8";

async fn refuse_non_empty(client: &Client, database: &str) -> Result<()> {
    let row = client
        .query_one(OBJECTS_SQL, &[])
        .await
        .map_err(Error::db("checking that the target database is empty"))?;
    let (relations, routines, schemas): (i64, i64, i64) = (row.get(0), row.get(1), row.get(2));
    if relations + routines + schemas == 0 {
        return Ok(());
    }
    Err(Error::TargetNotEmpty {
        database: database.to_string(),
        objects: format!("{relations} relation(s), {routines} routine(s), {schemas} schema(s)"),
    })
}

/// Run `pg_restore` into the database `client` is connected to; returns the tool and the tables restored.
async fn run_pg_restore(
    client: &Client,
    target: &pgstrata_conn::ConnectOptions,
    opts: &RestoreOptions,
    progress: &mut dyn Progress,
) -> Result<(Tool, u64)> {
    if opts.jobs == 0 {
        return Err(Error::usage("--jobs must be at least 1", None));
    }
    let version: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int4", &[])
        .await
        .map_err(Error::db("reading the server version"))?
        .get(0);
    let pg_restore = tools::find(
        "pg_restore",
        tools::major_of(version),
        opts.pg_restore.as_deref(),
    )
    .await?;
    let total = list_data_entries(&pg_restore, &opts.archive).await?;
    let mut cmd = process::command(&pg_restore.path, target);
    // The database goes as a conninfo string (`dbname='…'`): a bare name containing `=` would be parsed as one.
    cmd.arg("--verbose").arg("--exit-on-error").arg(format!(
        "--dbname=dbname={}",
        conninfo_quote(target.dbname())
    ));
    if opts.jobs > 1 {
        cmd.arg(format!("--jobs={}", opts.jobs));
    } else {
        cmd.arg("--single-transaction");
    }
    if opts.clean {
        cmd.arg("--clean").arg("--if-exists");
    }
    if opts.no_owner {
        cmd.arg("--no-owner").arg("--no-privileges");
    }
    cmd.arg(&opts.archive);
    progress.event(Event::Start {
        step: "restoring",
        total,
    });
    let mut done = 0u64;
    let finished = process::run(cmd, "pg_restore", None, progress, |line, p| {
        // "pg_restore: processing data for table "public.t""
        if let Some((_, rest)) = line.split_once("processing data for table ") {
            done += 1;
            p.event(Event::Table {
                done,
                name: rest.trim_matches('"').to_string(),
            });
        }
    })
    .await?;
    progress.event(Event::Finish);
    if !finished.status.success() {
        let stderr = process::error_lines("pg_restore", &finished.stderr);
        let damaged = stderr.contains("could not read")
            || stderr.contains("unexpected end")
            || stderr.contains("end of file")
            || stderr.contains("corrupt");
        return Err(Error::ToolFailed {
            tool: "pg_restore".into(),
            status: finished.status.to_string(),
            stderr,
            help: Some(if damaged {
                "the archive is truncated or damaged: restore from another copy".into()
            } else if opts.jobs > 1 {
                "with --jobs the restore is not one transaction: what was restored before the error stays; \
                 restore again with --clean"
                    .into()
            } else {
                "the restore ran in one transaction and was rolled back: the database is unchanged"
                    .into()
            }),
        });
    }
    Ok((pg_restore, done))
}

/// `'…'` with `\` and `'` escaped, as libpq's conninfo parser wants.
fn conninfo_quote(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// How many `TABLE DATA` entries the archive lists; reading its table of contents also catches archives that are
/// not archives.
async fn list_data_entries(pg_restore: &Tool, archive: &Path) -> Result<u64> {
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
        let lines: Vec<String> = String::from_utf8_lossy(&out.stderr)
            .lines()
            .map(str::to_string)
            .collect();
        let stderr = process::error_lines("pg_restore", &lines);
        let newer = stderr.contains("unsupported version");
        return Err(Error::ToolFailed {
            tool: "pg_restore --list".into(),
            status: out.status.to_string(),
            stderr,
            help: Some(if newer {
                "the archive was written by a newer pg_dump than this server's pg_restore reads: restore into a \
                 server of that version"
                    .into()
            } else {
                "this is not an archive pg_restore can read, or it is truncated or damaged".into()
            }),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with(';') && l.contains(" TABLE DATA "))
        .count() as u64)
}

/// Compare the restored database with the manifest: every table's row count, and Strata's history.
async fn compare(client: &Client, manifest: &BackupManifest) -> Result<Verification> {
    let mut mismatches = Vec::new();
    let wanted: Vec<(String, String)> = manifest
        .tables
        .iter()
        .map(|t| (t.schema.clone(), t.table.clone()))
        .collect();
    let schemas: Vec<&str> = wanted.iter().map(|t| t.0.as_str()).collect();
    let names: Vec<&str> = wanted.iter().map(|t| t.1.as_str()).collect();
    let present: Vec<(String, String)> = client
        .query(
            "SELECT w.s, w.t FROM unnest($1::text[], $2::text[]) AS w(s, t)
              WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c
                              JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                             WHERE n.nspname = w.s AND c.relname = w.t AND c.relkind = 'r')",
            &[&schemas, &names],
        )
        .await
        .map_err(Error::db("finding the restored tables"))?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    for (s, t) in &wanted {
        if !present.iter().any(|p| &p.0 == s && &p.1 == t) {
            mismatches.push(format!("table {s}.{t} is missing"));
        }
    }
    // A schema-only archive holds no rows and no history: its tables existing is all there is to compare.
    if manifest.schema_only {
        if !mismatches.is_empty() {
            return Err(Error::Verify { mismatches });
        }
        return Ok(Verification {
            tables: present.len(),
            rows: 0,
            history: 0,
        });
    }
    let counts = count_tables(client, &present).await?;
    let (mut tables, mut rows) = (0, 0);
    for c in &counts {
        let expected = manifest
            .tables
            .iter()
            .find(|t| t.schema == c.schema && t.table == c.table)
            .map_or(0, |t| t.rows);
        if c.rows == expected {
            tables += 1;
            rows += c.rows;
        } else {
            mismatches.push(format!(
                "{}.{} has {} row(s), the backup had {expected}",
                c.schema, c.table, c.rows
            ));
        }
    }
    let (restored_history, _) = history(client).await?;
    if restored_history != manifest.history {
        let first = manifest
            .history
            .iter()
            .zip(&restored_history)
            .position(|(a, b)| a != b)
            .unwrap_or(restored_history.len().min(manifest.history.len()));
        mismatches.push(format!(
            "Strata's history differs: {} applied migration(s) restored, the backup had {} (first difference at \
             entry {})",
            restored_history.len(),
            manifest.history.len(),
            first + 1
        ));
    }
    if !mismatches.is_empty() {
        return Err(Error::Verify { mismatches });
    }
    Ok(Verification {
        tables,
        rows,
        history: restored_history.len(),
    })
}

/// Compare the database `target` points at (just restored) with a backup's manifest: row counts and Strata's
/// history (`restore --into URL --verify`).
pub async fn compare_with_manifest(
    target: &pgstrata_conn::ConnectOptions,
    manifest: &BackupManifest,
) -> Result<Verification> {
    let db = pgstrata::Database::connect(target).await?;
    compare(db.client(), manifest).await
}
