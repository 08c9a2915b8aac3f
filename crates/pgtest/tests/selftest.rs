//! The harness tested against a real server: the child cluster, or PGTEST_URL's.
#![allow(clippy::unwrap_used, reason = "tests")]

use std::env;
use std::path::Path;
use std::process::Command;

use pgstrata_embedded::{ChildCluster, ChildClusterOptions, PgBinaries};
use pgtest::{TestDb, cluster_url};
use tokio_postgres::{Config, NoTls};

async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, connection) = url.parse::<Config>().unwrap().connect(NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

fn psql() -> Command {
    let mut cmd = Command::new(pgtest::tool("psql"));
    // Keep the developer's own settings out of the way.
    for var in [
        "PGHOST",
        "PGPORT",
        "PGUSER",
        "PGDATABASE",
        "PGPASSWORD",
        "PGSERVICE",
        "DATABASE_URL",
    ] {
        cmd.env_remove(var);
    }
    cmd.args(["--no-psqlrc", "--no-align", "--tuples-only"]);
    cmd
}

#[tokio::test]
async fn databases_are_isolated() {
    let (a, b) = (TestDb::new().await, TestDb::new().await);
    assert_ne!(a.name(), b.name());
    let (client_a, client_b) = (a.client().await, b.client().await);
    client_a
        .batch_execute("CREATE TABLE only_in_a (x int)")
        .await
        .unwrap();

    let current: String = client_a
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(current, a.name());
    let in_b: i64 = client_b
        .query_one(
            "SELECT count(*) FROM pg_class WHERE relname = 'only_in_a'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_b, 0);
}

#[tokio::test]
async fn drop_removes_the_database_even_with_open_connections() {
    let db = TestDb::new().await;
    let name = db.name().to_owned();
    let open = db.client().await;
    open.batch_execute("SELECT 1").await.unwrap();
    drop(db);

    let admin = connect(&cluster_url("postgres")).await;
    let exists: bool = admin
        .query_one(
            "SELECT EXISTS (SELECT FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "{name} still exists");
    assert!(
        open.batch_execute("SELECT 1").await.is_err(),
        "the connection to the dropped database survived"
    );
}

#[test]
fn psql_reaches_the_database_via_env_and_via_url() {
    let db = TestDb::new_blocking();

    let out = psql()
        .args(["--command", "SELECT current_database()"])
        .envs(db.env())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql via env: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), db.name());

    let out = psql()
        .arg(db.url())
        .args(["--command", "SELECT current_database()"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {}: {}",
        db.url(),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), db.name());

    let database_url = db
        .env()
        .into_iter()
        .find(|(name, _)| name == "DATABASE_URL")
        .map(|(_, url)| url);
    assert_eq!(database_url, Some(db.url()));
}

#[tokio::test]
async fn new_blocking_works_inside_a_runtime() {
    let db = TestDb::new_blocking();
    let one: i32 = db
        .client()
        .await
        .query_one("SELECT 1", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(one, 1);
}

/// Runs one test of this binary in a child process with `env`, returning its stdout.
fn run_this_test_alone(name: &str, env: &[(&str, &str)]) -> String {
    let mut cmd = Command::new(env::current_exe().unwrap());
    cmd.args(["--exact", name, "--nocapture", "--test-threads=1"])
        .env_remove("PGTEST_URL")
        .envs(env.iter().copied());
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name} failed in a child process:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("1 passed"), "{name} did not run:\n{stdout}");
    stdout
}

#[test]
fn honours_pgtest_url() {
    if let Ok(url) = env::var("PGTEST_URL") {
        let expected: Config = url.parse().unwrap();
        let db = TestDb::new_blocking();
        let got: Config = db.url().parse().unwrap();
        assert_eq!(got.get_hosts(), expected.get_hosts());
        assert_eq!(got.get_ports(), expected.get_ports());
        assert_eq!(got.get_dbname(), Some(db.name()));
        return;
    }
    let server = ChildCluster::start(&ChildClusterOptions::default()).unwrap();
    run_this_test_alone(
        "honours_pgtest_url",
        &[("PGTEST_URL", &server.url("postgres"))],
    );

    // The child created and dropped its database on `server`.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let left: i64 = runtime.block_on(async {
        let client = connect(&server.url("postgres")).await;
        client
            .query_one(
                "SELECT count(*) FROM pg_database WHERE datname LIKE 't\\_%'",
                &[],
            )
            .await
            .unwrap()
            .get(0)
    });
    assert_eq!(left, 0);
    server.shutdown().unwrap();
}

#[test]
fn child_cluster_is_removed_at_exit() {
    if env::var_os("PGTEST_SELFTEST_PRINT_URL").is_some() {
        println!("cluster url: {}", cluster_url("postgres"));
        return;
    }
    let stdout = run_this_test_alone(
        "child_cluster_is_removed_at_exit",
        &[("PGTEST_SELFTEST_PRINT_URL", "1")],
    );
    let url = stdout
        .lines()
        .find_map(|line| line.split_once("cluster url: "))
        .map(|(_, url)| url)
        .unwrap();
    let config: Config = url.parse().unwrap();
    let tokio_postgres::config::Host::Unix(socket_dir) = &config.get_hosts()[0] else {
        panic!("expected a unix socket in {url}")
    };
    assert!(socket_dir.is_absolute());
    assert!(
        !Path::new(socket_dir).exists(),
        "{} survived the test process",
        socket_dir.display()
    );
}

#[tokio::test]
async fn the_server_runs_the_binaries_of_pgtest_bindir() {
    if env::var_os("PGTEST_URL").is_some() {
        return; // not our server: nothing to compare
    }
    let db = TestDb::new().await;
    let running: String = db
        .client()
        .await
        .query_one("SELECT current_setting('server_version')", &[])
        .await
        .unwrap()
        .get(0);
    let chosen = PgBinaries::from_env_or_find(pgtest::BINDIR_VAR)
        .unwrap()
        .version()
        .unwrap();
    // "18.4" and, from Debian's build, "15.18 (Debian 15.18-0+deb12u1)".
    assert_eq!(running.split_whitespace().next(), Some(chosen.as_str()));
}

#[test]
fn a_pgtest_bindir_without_a_server_is_a_clear_error() {
    if let Some(bogus) = env::var_os("PGTEST_SELFTEST_BOGUS_BINDIR") {
        let panic = std::panic::catch_unwind(TestDb::new_blocking).unwrap_err();
        let message = panic.downcast_ref::<String>().cloned().unwrap_or_default();
        let expected = format!(
            "PGTEST_BINDIR={} (no initdb/postgres there)",
            Path::new(&bogus).display()
        );
        assert!(message.contains(&expected), "{message}");
        return;
    }
    let bogus = env::temp_dir().join(format!("pgtest-no-server-here-{}", std::process::id()));
    let bogus = bogus.to_str().unwrap();
    run_this_test_alone(
        "a_pgtest_bindir_without_a_server_is_a_clear_error",
        &[
            ("PGTEST_BINDIR", bogus),
            ("PGTEST_SELFTEST_BOGUS_BINDIR", bogus),
        ],
    );
}
