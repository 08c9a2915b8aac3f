//! Test harness: a throwaway PostgreSQL cluster per test process and a fresh database per test.
//!
//! ```no_run
//! # async fn example() {
//! let db = pgtest::TestDb::new().await; // CREATE DATABASE t_<pid>_<n>; dropped again on Drop
//! let client = db.client().await;
//! client.batch_execute("CREATE TABLE t (id int)").await.unwrap();
//! // For spawned programs: `psql "$DATABASE_URL"`, or PGHOST/PGPORT/PGUSER/PGDATABASE from `db.env()`.
//! println!("{}", db.url());
//! # }
//! ```
//!
//! **Which server.** If `PGTEST_URL` is set (a libpq URL of any database on a server where we may
//! `CREATE DATABASE`, without TLS), tests use that server. Otherwise the first test starts a
//! [`ChildCluster`] from the server binaries in `PGTEST_BINDIR` or, when that is not set, the local ones
//! (`PG_BINDIR`, `pg_config`, `/usr/lib/postgresql/<N>/bin`), shared by every test in the process and stopped
//! when it exits. If neither works, tests panic: they never skip.
//!
//! **Which version.** `PGTEST_BINDIR=/path/to/postgresql-17/bin cargo test` runs the tests against
//! PostgreSQL 17. Tests that run client tools (`psql`, `pg_dump`) find them with [`tool`], which looks in the
//! same directory first, so the tools match the server when that directory has them.
//!
//! One test binary per crate (`cargo test` runs its tests as threads of one process) shares one cluster. Runners
//! that start a process per test (nextest) pay a cluster start (~1 s) per test; point them at one server with
//! `PGTEST_URL` instead.
#![deny(missing_docs)]

use std::env;
use std::fmt;
use std::future::Future;
use std::panic::resume_unwind;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock, TryLockError};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use pgstrata_embedded::{ChildCluster, ChildClusterOptions, PgBinaries};
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

/// The server, resolved once per process; a failure is kept so that every test reports it, not only the first.
static SERVER: OnceLock<Result<Server, String>> = OnceLock::new();
/// Our child cluster, if we started one; taken and shut down by the atexit handler.
static CHILD: Mutex<Option<ChildCluster>> = Mutex::new(None);
/// Numbers databases within this process.
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// How to reach the server: its connection settings, with the database to run CREATE/DROP DATABASE from.
struct Server {
    admin: Config,
}

fn server() -> &'static Server {
    match SERVER.get_or_init(resolve_server) {
        Ok(server) => server,
        Err(message) => panic!("{message}"),
    }
}

fn resolve_server() -> Result<Server, String> {
    if let Some(url) = env::var("PGTEST_URL").ok().filter(|url| !url.is_empty()) {
        // Never echo the URL: it may hold a password.
        let admin = url.parse::<Config>().map_err(|e| {
            format!("pgtest: PGTEST_URL is not a connection string tokio-postgres accepts ({e}); expected e.g. postgresql://user@host:5432/postgres")
        })?;
        return Ok(Server { admin });
    }

    let binaries = PgBinaries::from_env_or_find(BINDIR_VAR).map_err(|e| {
        format!(
            "pgtest: {e}\n\
             Either install the PostgreSQL server binaries (or set PGTEST_BINDIR or PG_BINDIR), or set PGTEST_URL \
             to a server where we may CREATE DATABASE, e.g. PGTEST_URL=postgresql://postgres@localhost:5432/postgres"
        )
    })?;
    let options = ChildClusterOptions {
        binaries: Some(binaries),
        ..ChildClusterOptions::default()
    };
    let cluster = ChildCluster::start(&options).map_err(|e| {
        format!(
            "pgtest: cannot start a throwaway PostgreSQL cluster: {e}\n\
             Either install the PostgreSQL server binaries (or set PGTEST_BINDIR or PG_BINDIR), or set PGTEST_URL \
             to a server where we may CREATE DATABASE, e.g. PGTEST_URL=postgresql://postgres@localhost:5432/postgres"
        )
    })?;
    let admin = cluster
        .url("postgres")
        .parse::<Config>()
        .map_err(|e| format!("pgtest: the child cluster's URL does not parse: {e}"))?;
    *CHILD
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(cluster);
    // libtest ends with process::exit, which runs atexit handlers but never static destructors.
    // SAFETY: registers a plain function that takes no arguments and does not unwind.
    if unsafe { libc::atexit(stop_child_cluster) } != 0 {
        return Err(
            "pgtest: cannot register the atexit handler that stops the child cluster".to_owned(),
        );
    }
    Ok(Server { admin })
}

extern "C" fn stop_child_cluster() {
    let cluster = match CHILD.try_lock() {
        Ok(mut guard) => guard.take(),
        Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner().take(),
        // Someone holds it while the process exits; the kernel's PDEATHSIG still kills the server.
        Err(TryLockError::WouldBlock) => None,
    };
    if let Some(cluster) = cluster
        && let Err(e) = cluster.shutdown()
    {
        eprintln!("pgtest: {e}");
    }
}

/// The environment variable naming the directory of the server binaries the test cluster runs.
pub const BINDIR_VAR: &str = "PGTEST_BINDIR";

/// The path of client tool `name` (`psql`, `pg_dump`, …) for talking to the test server: from `PGTEST_BINDIR`
/// when that directory has it (so that, e.g., `pg_dump` is as new as the server, which it must be), else from
/// the local binaries ([`PgBinaries::find`]), else just `name` (looked up on `PATH` when run).
pub fn tool(name: &str) -> std::path::PathBuf {
    let from_test_bindir = env::var_os(BINDIR_VAR)
        .filter(|dir| !dir.is_empty())
        .map(|dir| std::path::PathBuf::from(dir).join(name))
        .filter(|path| path.is_file());
    from_test_bindir
        .or_else(|| {
            PgBinaries::find()
                .ok()
                .map(|bins| bins.tool(name))
                .filter(|path| path.is_file())
        })
        .unwrap_or_else(|| name.into())
}

/// libpq URL of database `dbname` on the shared test server (starting it if needed), e.g.
/// `postgresql://postgres@/mydb?host=/tmp/pgstrata-x1y2&port=54321`.
pub fn cluster_url(dbname: &str) -> String {
    url_for(&server().admin, dbname)
}

/// A fresh, empty database on the shared test server, dropped (`WITH (FORCE)`) when this guard is dropped.
///
/// Databases are named `t_<pid>_<n>` and created from `template0`.
pub struct TestDb {
    name: String,
    config: Config,
    admin: Config,
}

impl TestDb {
    /// Creates a fresh database. Panics, with what to do about it, if no server is available.
    pub async fn new() -> TestDb {
        // Starting the cluster blocks for about a second: keep that off the async runtime.
        let server = match tokio::task::spawn_blocking(server).await {
            Ok(server) => server,
            Err(e) if e.is_panic() => resume_unwind(e.into_panic()),
            Err(e) => panic!("pgtest: starting the test server was cancelled: {e}"),
        };
        create_database(&server.admin).await
    }

    /// [`new`](Self::new) for synchronous tests; works inside or outside a tokio runtime.
    pub fn new_blocking() -> TestDb {
        on_fresh_runtime(|| async { create_database(&server().admin).await })
    }

    /// The database name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// libpq URL of this database, for `DATABASE_URL`, psql and tokio-postgres.
    pub fn url(&self) -> String {
        url_for(&self.admin, &self.name)
    }

    /// A connection to this database; its connection task is spawned on the current tokio runtime.
    pub async fn client(&self) -> Client {
        connect(&self.config)
            .await
            .unwrap_or_else(|e| panic!("pgtest: cannot connect to {}: {e}", self.name))
    }

    /// Environment variables that point libpq (psql, pg_dump) and strata at this database: `PGHOST`, `PGPORT`,
    /// `PGUSER`, `PGDATABASE`, `DATABASE_URL`, plus `PGPASSWORD`/`PGSSLMODE` when the server needs them.
    ///
    /// ```no_run
    /// let db = pgtest::TestDb::new_blocking();
    /// let status = std::process::Command::new("psql").args(["-c", "SELECT 1"]).envs(db.env()).status();
    /// ```
    pub fn env(&self) -> Vec<(String, String)> {
        let config = &self.config;
        let hosts: Vec<String> = config.get_hosts().iter().map(host_text).collect();
        let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
        let mut vars = vec![("PGHOST".to_owned(), hosts.join(","))];
        if !ports.is_empty() {
            vars.push(("PGPORT".to_owned(), ports.join(",")));
        }
        if let Some(user) = config.get_user() {
            vars.push(("PGUSER".to_owned(), user.to_owned()));
        }
        if let Some(password) = config.get_password() {
            vars.push((
                "PGPASSWORD".to_owned(),
                String::from_utf8_lossy(password).into_owned(),
            ));
        }
        if let Some(mode) = ssl_mode_text(config.get_ssl_mode()) {
            vars.push(("PGSSLMODE".to_owned(), mode.to_owned()));
        }
        vars.push(("PGDATABASE".to_owned(), self.name.clone()));
        vars.push(("DATABASE_URL".to_owned(), self.url()));
        vars
    }
}

impl fmt::Debug for TestDb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Not the URL: it may carry PGTEST_URL's password.
        f.debug_struct("TestDb")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // A fresh connection on a fresh runtime: the test's runtime may be gone, busy, or absent.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let client = connect(&admin).await.map_err(|e| e.to_string())?;
                client
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        quote_ident(&name)
                    ))
                    .await
                    .map_err(|e| e.to_string())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(e)) => eprintln!("pgtest: cannot drop test database {}: {e}", self.name),
            Err(_) => eprintln!("pgtest: dropping test database {} panicked", self.name),
        }
    }
}

async fn create_database(admin: &Config) -> TestDb {
    let name = format!(
        "t_{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let client = connect(admin).await.unwrap_or_else(|e| {
        panic!(
            "pgtest: cannot connect to the test server {}: {e}",
            describe(admin)
        )
    });
    let create = format!("CREATE DATABASE {} TEMPLATE template0", quote_ident(&name));
    if let Err(e) = client.batch_execute(&create).await {
        // Left by an earlier run whose process had the same pid, and crashed before dropping it.
        if e.code() != Some(&SqlState::DUPLICATE_DATABASE) {
            panic!(
                "pgtest: cannot create test database {name} on {}: {e}",
                describe(admin)
            );
        }
        let recreate = format!(
            "DROP DATABASE {0} WITH (FORCE); {create}",
            quote_ident(&name)
        );
        if let Err(e) = client.batch_execute(&recreate).await {
            panic!(
                "pgtest: cannot recreate stale test database {name} on {}: {e}",
                describe(admin)
            );
        }
    }
    let mut config = admin.clone();
    config.dbname(&name);
    TestDb {
        name,
        config,
        admin: admin.clone(),
    }
}

async fn connect(config: &Config) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    // The connection ends with an error when its database is dropped WITH (FORCE); the client reports errors.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

fn on_fresh_runtime<F, Fut, T>(make: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    // A separate thread, because building a runtime inside another one's thread panics.
    let joined = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("pgtest: cannot build a tokio runtime: {e}"));
        runtime.block_on(make())
    })
    .join();
    joined.unwrap_or_else(|panic| resume_unwind(panic))
}

const URL_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const URL_HOST: &AsciiSet = &URL_COMPONENT.remove(b'/').remove(b',');

/// `postgresql://user[:password]@/<db>?host=<hosts>&port=<ports>[&sslmode=…]`: hosts go in the query so that
/// socket directories and host lists need no special casing.
fn url_for(config: &Config, dbname: &str) -> String {
    let mut url = "postgresql://".to_owned();
    if let Some(user) = config.get_user() {
        url += &utf8_percent_encode(user, URL_COMPONENT).to_string();
        if let Some(password) = config.get_password() {
            url += ":";
            url += &percent_encoding::percent_encode(password, URL_COMPONENT).to_string();
        }
        url += "@";
    }
    url += "/";
    url += &utf8_percent_encode(dbname, URL_COMPONENT).to_string();
    let hosts: Vec<String> = config.get_hosts().iter().map(host_text).collect();
    let mut params = vec![format!(
        "host={}",
        utf8_percent_encode(&hosts.join(","), URL_HOST)
    )];
    if !config.get_ports().is_empty() {
        let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
        params.push(format!("port={}", ports.join(",")));
    }
    if let Some(mode) = ssl_mode_text(config.get_ssl_mode()) {
        params.push(format!("sslmode={mode}"));
    }
    url + "?" + &params.join("&")
}

fn host_text(host: &Host) -> String {
    match host {
        Host::Tcp(name) => name.clone(),
        Host::Unix(path) => path.to_string_lossy().into_owned(),
    }
}

/// `None` for tokio-postgres's default `prefer`, which libpq shares.
fn ssl_mode_text(mode: SslMode) -> Option<&'static str> {
    match mode {
        SslMode::Disable => Some("disable"),
        SslMode::Require => Some("require"),
        _ => None,
    }
}

/// Where the server is, without the password, for messages.
fn describe(config: &Config) -> String {
    let hosts: Vec<String> = config.get_hosts().iter().map(host_text).collect();
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    format!(
        "host={} port={} user={}",
        hosts.join(","),
        ports.join(","),
        config.get_user().unwrap_or("?")
    )
}

fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    #[test]
    fn url_round_trips_through_tokio_postgres() {
        let config: Config = "postgresql://al%20ice:p%40ss@/ignored?host=/tmp/a%20b,db.example&port=5433,5434&sslmode=disable"
            .parse()
            .unwrap();
        let url = url_for(&config, "my db");
        assert_eq!(
            url,
            "postgresql://al%20ice:p%40ss@/my%20db?host=/tmp/a%20b,db.example&port=5433,5434&sslmode=disable"
        );
        let reparsed: Config = url.parse().unwrap();
        assert_eq!(reparsed.get_dbname(), Some("my db"));
        assert_eq!(reparsed.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(reparsed.get_hosts(), config.get_hosts());
    }
}
