//! Shared helpers: databases, psql, pg_dump, the real dbmate.

use std::path::{Path, PathBuf};
use std::process::Command;

use pgstrata::{Database, Package, Project};

pub async fn connect(db: &pgtest::TestDb) -> Database {
    let options = pgstrata_conn::ConnectOptions::parse(&db.url()).expect("pgtest URL parses");
    Database::connect(&options).await.expect("connect")
}

pub fn project(pkg: Package) -> Project {
    Project::new(vec![pkg]).expect("project")
}

pub async fn up(db: &pgtest::TestDb, pkg: &Package) -> pgstrata::UpReport {
    let mut conn = connect(db).await;
    pgstrata::up(
        &mut conn,
        &project(pkg.clone()),
        &pgstrata::UpOptions::default(),
        &mut pgstrata::Quiet,
    )
    .await
    .unwrap_or_else(|e| panic!("strata up failed: {:?}", miette::Report::new(e)))
}

/// Run a SQL file with psql (autocommit, stop on the first error).
pub fn psql_file(db: &pgtest::TestDb, file: &Path) -> std::process::Output {
    let out = Command::new(pgtest::tool("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(file)
        .envs(db.env())
        .output()
        .expect("psql runs");
    assert!(
        out.status.success(),
        "psql -f {} failed: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `pg_dump --schema-only` of the user's objects: without Strata's schema and the tools' tracking tables, comments
/// and volatile lines removed.
pub fn schema(db: &pgtest::TestDb) -> String {
    let out = Command::new(pgtest::tool("pg_dump"))
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-schema=strata",
            "--exclude-table=*.schema_migrations",
            "--exclude-table=*._sqlx_migrations",
            "--exclude-table=*.__diesel_schema_migrations",
            "--exclude-table=*.flyway_schema_history",
            "--exclude-table=*.refinery_schema_history",
        ])
        .envs(db.env())
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

pub async fn query_strings(db: &pgtest::TestDb, sql: &str) -> Vec<String> {
    let client = db.client().await;
    client
        .query(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/interop")
        .join(name)
}

/// Copy a fixture folder into a temporary directory, keeping its name (so the package name is the same), for
/// tests that add or change files.
pub struct FixtureCopy {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl FixtureCopy {
    pub fn path(&self) -> &Path {
        &self.dir
    }
}

pub fn copy_fixture(name: &str) -> FixtureCopy {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join(name);
    copy_dir(&fixture(name), &dir);
    FixtureCopy { _tmp: tmp, dir }
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read fixture dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

/// The real dbmate binary: `$DBMATE`, else `dbmate` on `PATH`, else the copy `.ci/run` installs from npm into
/// `${XDG_CACHE_HOME:-$HOME/.cache}/strata-bench/dbmate` (shared with the benchmarks). Tests never install it.
/// `None` (the test says it is skipped) when there is none, except under `CI=true`, where that fails the test.
pub fn dbmate() -> Option<PathBuf> {
    let found = std::env::var_os("DBMATE")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("PATH").and_then(|path| {
                std::env::split_paths(&path)
                    .map(|dir| dir.join("dbmate"))
                    .find(|p| p.is_file())
            })
        })
        .or_else(|| {
            let cache = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
            let bin = cache.join("strata-bench/dbmate/node_modules/@dbmate/linux-x64/bin/dbmate");
            bin.is_file().then_some(bin)
        });
    if found.is_none() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "dbmate not found ($DBMATE, PATH, ~/.cache/strata-bench/dbmate) and CI=true: .ci/run installs it"
        );
        eprintln!("dbmate not found ($DBMATE, PATH, ~/.cache/strata-bench/dbmate): skipped");
    }
    found
}

/// Run dbmate against the test database.
pub fn run_dbmate(
    bin: &Path,
    db: &pgtest::TestDb,
    dir: &Path,
    args: &[&str],
) -> std::process::Output {
    let url = dbmate_url(db);
    Command::new(bin)
        .arg("--url")
        .arg(url)
        .arg("--migrations-dir")
        .arg(dir)
        .arg("--no-dump-schema")
        .args(args)
        .output()
        .expect("dbmate runs")
}

/// A lib/pq URL for dbmate (it does not take libpq's `host=/socket` query form with an empty host).
pub fn dbmate_url(db: &pgtest::TestDb) -> String {
    let env: std::collections::HashMap<String, String> = db.env().into_iter().collect();
    let host = env
        .get("PGHOST")
        .cloned()
        .unwrap_or_else(|| "localhost".into());
    let port = env.get("PGPORT").cloned().unwrap_or_else(|| "5432".into());
    let user = env
        .get("PGUSER")
        .cloned()
        .unwrap_or_else(|| "postgres".into());
    if host.starts_with('/') {
        format!(
            "postgres://{user}@/{}?socket={host}&port={port}&sslmode=disable",
            db.name()
        )
    } else {
        format!(
            "postgres://{user}@{host}:{port}/{}?sslmode=disable",
            db.name()
        )
    }
}
