//! Fixtures: a test database with a synchronous query helper, packages written into temporary directories, the
//! `strata` binary with a clean environment, and insta settings that redact what changes from run to run.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use pgtest::TestDb;
use tempfile::TempDir;
use tokio_postgres::Client;
use tokio_postgres::types::FromSqlOwned;

/// Environment variables that would point `strata` (or libpq tools) somewhere else, or change how output looks.
const FOREIGN_ENV: &[&str] = &[
    "DATABASE_URL",
    "PGHOST",
    "PGHOSTADDR",
    "PGPORT",
    "PGUSER",
    "PGPASSWORD",
    "PGDATABASE",
    "PGSSLMODE",
    "PGSSLROOTCERT",
    "PGAPPNAME",
    "PGCONNECT_TIMEOUT",
    "PGPASSFILE",
    "PGSERVICE",
    "PGOPTIONS",
    "POSTGRES_HOST",
    "POSTGRES_PORT",
    "POSTGRES_DATABASE",
    "POSTGRES_DB",
    "POSTGRES_USER",
    "POSTGRES_PASSWORD",
    "POSTGRES_SSL",
    "STRATA_PATH",
    "STRATA_LOG",
    "STRATA_PG_BIN",
    "STRATA_EMBEDDED",
    "RUST_LOG",
    "FORCE_COLOR",
    "CLICOLOR_FORCE",
    "NO_GRAPHICS",
    "COLUMNS",
];

/// The `strata` binary under test, with an environment that cannot reach anything by accident.
pub fn strata() -> Command {
    let mut cmd = Command::cargo_bin("strata").expect("the strata binary is built by cargo test");
    for var in FOREIGN_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    // Never the developer's dev cluster: --embedded is not what these tests exercise.
    cmd.env("STRATA_DEV_DIR", no_dev_cluster());
    cmd
}

/// The same, as a `std::process::Command`, for tests that start several processes at once.
pub fn strata_process() -> std::process::Command {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("strata"));
    for var in FOREIGN_ENV {
        cmd.env_remove(var);
    }
    cmd.env("NO_COLOR", "1");
    cmd.env("STRATA_DEV_DIR", no_dev_cluster());
    cmd
}

fn no_dev_cluster() -> PathBuf {
    std::env::temp_dir().join("strata-it-no-dev-cluster")
}

/// What a finished command printed, and how it exited.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn of(output: Output) -> Run {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Panics (showing both streams) unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(self, code: i32) -> Run {
        assert_eq!(
            self.code, code,
            "unexpected exit code\n--- stdout\n{}\n--- stderr\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn ok(self) -> Run {
        self.expect_code(0)
    }

    /// Does stdout or stderr say `needle`? Lines that miette wrapped (and its `│` gutter) are joined first, so the
    /// check does not depend on where the terminal width broke a message.
    pub fn says(&self, needle: &str) -> bool {
        let joined = |text: &str| -> String {
            text.lines()
                .map(|l| l.trim().trim_start_matches('│').trim())
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ")
        };
        self.stdout.contains(needle)
            || self.stderr.contains(needle)
            || joined(&self.stdout).contains(needle)
            || joined(&self.stderr).contains(needle)
    }

    /// stdout parsed as one JSON document.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e})\n--- stdout\n{}\n--- stderr\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

/// Run a prepared command to completion.
pub fn run(cmd: &mut Command) -> Run {
    Run::of(cmd.output().expect("strata starts"))
}

/// A fresh database on the shared test server, with a connection for checking what strata did.
pub struct Db {
    // Field order is drop order: the connection goes before the runtime that drives it, the database last.
    client: Client,
    runtime: tokio::runtime::Runtime,
    db: TestDb,
}

impl Db {
    pub fn new() -> Db {
        let db = TestDb::new_blocking();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        // The connection task is spawned on this runtime and progresses whenever a query blocks on it.
        let client = runtime.block_on(db.client());
        Db {
            client,
            runtime,
            db,
        }
    }

    pub fn url(&self) -> String {
        self.db.url()
    }

    pub fn name(&self) -> &str {
        self.db.name()
    }

    /// libpq variables (PGHOST, PGPORT, …) pointing at this database.
    pub fn env(&self) -> Vec<(String, String)> {
        self.db.env()
    }

    /// Run SQL (several statements allowed).
    #[track_caller]
    pub fn exec(&self, sql: &str) {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// The first column of every row.
    #[track_caller]
    pub fn column<T: FromSqlOwned>(&self, sql: &str) -> Vec<T> {
        let rows = self
            .runtime
            .block_on(self.client.query(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows.iter().map(|r| r.get(0)).collect()
    }

    /// The only value of a one-row, one-column query.
    #[track_caller]
    pub fn value<T: FromSqlOwned>(&self, sql: &str) -> T {
        let row = self
            .runtime
            .block_on(self.client.query_one(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        row.get(0)
    }

    /// The text columns of a one-row query.
    #[track_caller]
    pub fn row(&self, sql: &str) -> Vec<Option<String>> {
        let row = self
            .runtime
            .block_on(self.client.query_one(sql, &[]))
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        (0..row.len()).map(|i| row.get(i)).collect()
    }

    /// Applied migrations as `package:name`, in the order they were applied (Strata's own excluded).
    pub fn applied(&self) -> Vec<String> {
        if !self.value::<bool>("SELECT to_regclass('strata.migration') IS NOT NULL") {
            return Vec::new();
        }
        self.column("SELECT package || ':' || name FROM strata.migration WHERE package <> 'strata' ORDER BY id")
    }

    /// Does this relation (`schema.name`) exist?
    pub fn has(&self, relation: &str) -> bool {
        self.value(&format!("SELECT to_regclass('{relation}') IS NOT NULL"))
    }

    /// Does `relation` (`schema.table`) have this column?
    pub fn has_column(&self, relation: &str, column: &str) -> bool {
        self.value(&format!(
            "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = to_regclass('{relation}') \
             AND attname = '{column}' AND NOT attisdropped)"
        ))
    }

    /// The whole schema as `pg_dump --schema-only` prints it, plus the rows of Strata's history of migrations: two
    /// databases with the same text have the same objects and the same recorded migrations.
    pub fn catalog(&self) -> String {
        let out = std::process::Command::new(pgtest::tool("pg_dump"))
            .args(["--schema-only", "--no-owner", "--no-privileges"])
            .envs(self.env())
            .output()
            .expect("pg_dump runs");
        assert!(
            out.status.success(),
            "pg_dump: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // pg_dump 15.14+ brackets its output with \restrict/\unrestrict and a random key.
        let mut text: String = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
            .map(|l| format!("{l}\n"))
            .collect();
        text.push_str("\n-- applied:\n");
        text.push_str(&self.applied().join("\n"));
        text
    }

    /// Panics, showing the lines that differ, unless the catalog is `expected`.
    #[track_caller]
    pub fn assert_catalog(&self, expected: &str, why: &str) {
        let now = self.catalog();
        if now != expected {
            let old: Vec<&str> = expected.lines().collect();
            let new: Vec<&str> = now.lines().collect();
            let gone: Vec<&&str> = old.iter().filter(|l| !new.contains(l)).collect();
            let added: Vec<&&str> = new.iter().filter(|l| !old.contains(l)).collect();
            panic!("{why}: the database changed\n--- gone:\n{gone:#?}\n--- added:\n{added:#?}");
        }
    }

    /// A `strata` command with `--database-url` pointing here, run in `dir`.
    pub fn strata_in(&self, dir: &Path) -> Command {
        let mut cmd = strata();
        cmd.current_dir(dir).arg("--database-url").arg(self.url());
        cmd
    }
}

/// A package in a temporary directory: `strata.toml` is rewritten from `name`, `schema`, `migrations` and
/// `extra` whenever the list changes.
pub struct Pkg {
    dir: TempDir,
    pub name: String,
    pub schema: String,
    pub migrations: Vec<String>,
    pub extra: String,
}

impl Pkg {
    pub fn new(name: &str, schema: &str) -> Pkg {
        let pkg = Pkg {
            dir: tempfile::Builder::new()
                .prefix("strata-it-")
                .tempdir()
                .expect("a temporary directory"),
            name: name.to_string(),
            schema: schema.to_string(),
            migrations: Vec::new(),
            extra: String::new(),
        };
        pkg.write_manifest();
        pkg
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    /// Write `migrations/<file>` and append it to the manifest's list.
    pub fn add(&mut self, file: &str, sql: &str) -> &mut Pkg {
        let rel = format!("migrations/{file}");
        self.write(&rel, sql);
        self.migrations.push(rel);
        self.write_manifest();
        self
    }

    /// Write a file of the package without listing it.
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) {
        let path = self.path(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create the directory");
        }
        std::fs::write(&path, contents).expect("write the file");
    }

    /// Delete `migrations/<file>` and unlist it (the code that contained it was rolled back).
    pub fn remove(&mut self, file: &str) {
        let rel = format!("migrations/{file}");
        std::fs::remove_file(self.path(&rel)).expect("remove the file");
        self.migrations.retain(|m| *m != rel);
        self.write_manifest();
    }

    pub fn write_manifest(&self) {
        let list: String = self
            .migrations
            .iter()
            .map(|m| format!("    {m:?},\n"))
            .collect();
        self.write(
            "strata.toml",
            format!(
                "name = {:?}\nschema = {:?}\nmigrations = [\n{list}]\n{}",
                self.name, self.schema, self.extra
            ),
        );
    }

    /// `strata` run in this package's directory against `db`.
    pub fn strata(&self, db: &Db) -> Command {
        db.strata_in(self.root())
    }

    /// Shorthand: run `strata ARGS` here against `db`.
    pub fn run(&self, db: &Db, args: &[&str]) -> Run {
        run(self.strata(db).args(args))
    }
}

/// Insta settings for this crate: snapshots in `tests/snapshots`, and redactions for what differs between runs
/// (connection targets, temporary paths, database names, durations, timestamps).
pub fn settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_snapshot_path("../snapshots");
    s.set_prepend_module_to_snapshot(false);
    // A target URL, but not the punctuation after it.
    s.add_filter(r"postgresql://\S*[^\s:.,]", "[DB]");
    let tmp = std::env::temp_dir().display().to_string();
    let tmp: String = tmp
        .chars()
        .flat_map(|c| {
            let escape = !c.is_alphanumeric() && c != '/' && c != '_' && c != '-';
            escape.then_some('\\').into_iter().chain([c])
        })
        .collect();
    s.add_filter(&format!(r"{tmp}/?strata-it-[^\s/]+"), "[PKG]");
    s.add_filter(r"\bt_\d+_\d+\b", "[DBNAME]");
    s.add_filter(
        r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d(:\d\d)?)?",
        "[TIMESTAMP]",
    );
    // Migration versions made of the time `strata init`/`strata new` ran.
    s.add_filter(r"\b20\d{12}_", "[VERSION]_");
    // Durations are right-aligned in columns: the padding goes with them.
    s.add_filter(r" +\d+(\.\d+)? (ms|s)\b", " [TIME]");
    s
}

/// Snapshot `value` under `name` with [`settings`].
#[macro_export]
macro_rules! snap {
    ($name:expr, $value:expr) => {
        $crate::support::settings().bind(|| insta::assert_snapshot!($name, $value))
    };
}

/// Snapshot a JSON document with volatile fields replaced (see [`scrub`]).
#[macro_export]
macro_rules! snap_json {
    ($name:expr, $value:expr) => {{
        let scrubbed = $crate::support::scrub($value);
        $crate::support::settings().bind(|| insta::assert_json_snapshot!($name, scrubbed))
    }};
}

/// Replace values that differ from run to run (durations, timestamps, connection targets) by placeholders,
/// keeping the keys so a snapshot still shows the document's shape.
pub fn scrub(mut value: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    let volatile = k.ends_with("_ms")
                        || k.ends_with("_at")
                        || matches!(k.as_str(), "target" | "duration");
                    if volatile && !v.is_null() {
                        *v = serde_json::Value::String(format!("[{k}]"));
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut value);
    value
}

/// A port on 127.0.0.1 where nothing listens (bound, then released).
pub fn dead_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    listener.local_addr().expect("its address").port()
}

/// The real dbmate binary: `$DBMATE`, else `dbmate` on `PATH`, else the copy `.ci/run` installs from npm into
/// `${XDG_CACHE_HOME:-$HOME/.cache}/strata-bench/dbmate` (shared with the benchmarks). Tests never install it.
/// `None` (the test says it is skipped) when there is none, except under `CI=true`, where that fails the test.
pub fn dbmate() -> Option<std::path::PathBuf> {
    use std::path::PathBuf;
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

/// How many migrations Strata's own package has (a fresh deploy runs them first): counted from its folder, so a
/// new one does not break every test that counts a fresh deploy's migrations.
pub fn strata_schema_migrations() -> usize {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../pgstrata/schema");
    std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".sql")
        })
        .count()
}
