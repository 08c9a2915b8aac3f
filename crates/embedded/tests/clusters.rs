//! Dev and child clusters against the real server binaries.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::env;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pgstrata_embedded::{ChildCluster, ChildClusterOptions, DevCluster, Error, PgBinaries};

/// Runs one query with psql against `url` and returns its trimmed output.
fn psql(url: &str, sql: &str) -> String {
    let psql = PgBinaries::find().unwrap().tool("psql");
    let out = Command::new(psql)
        .arg(url)
        .args([
            "--no-psqlrc",
            "--no-align",
            "--tuples-only",
            "--command",
            sql,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "psql {url} -c {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A parent directory the unprivileged server user can traverse (tempdir's default 0700 would block it).
fn reachable_tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pgstrata-test-")
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir()
        .unwrap()
}

fn wait_until_gone(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        {
            return; // a zombie nobody reaps: dead enough
        }
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn dev_cluster_lifecycle() {
    let parent = reachable_tempdir();
    let dir = parent.path().join("dev");
    let cluster = DevCluster::new(&dir).unwrap();
    assert!(matches!(
        cluster.status(),
        Err(Error::NotInitialized { .. })
    ));
    assert!(matches!(
        cluster.url("postgres"),
        Err(Error::NotInitialized { .. })
    ));

    // Two concurrent first starts: one creates the cluster, both see it running.
    let starts: Vec<_> = (0..2)
        .map(|_| {
            let cluster = cluster.clone();
            thread::spawn(move || cluster.start())
        })
        .collect();
    let statuses: Vec<_> = starts
        .into_iter()
        .map(|start| start.join().unwrap().unwrap())
        .collect();
    let status = &statuses[0];
    assert!(status.running);
    assert_eq!(status.pid, statuses[1].pid);
    assert!(status.pid.is_some());
    assert_eq!(status.dir, dir);
    assert_eq!(status.url, cluster.url("postgres").unwrap());
    assert_eq!(
        status.url,
        format!(
            "postgresql://postgres@/postgres?host={}/socket&port={}",
            dir.display(),
            status.port
        )
    );
    assert_eq!(
        status.version,
        PgBinaries::find().unwrap().version().unwrap()
    );

    assert_eq!(
        psql(&cluster.url("postgres").unwrap(), "SELECT current_user"),
        "postgres"
    );
    assert_eq!(psql(&status.url, "SHOW listen_addresses"), "");
    assert_eq!(psql(&status.url, "SHOW fsync"), "off");
    assert_eq!(psql(&status.url, "SHOW server_encoding"), "UTF8");
    // Not `SHOW lc_collate`: PostgreSQL 16 removed that setting; the catalog column is in every version.
    assert_eq!(
        psql(
            &status.url,
            "SELECT datcollate FROM pg_database WHERE datname = current_database()"
        ),
        "C"
    );
    psql(&status.url, "CREATE DATABASE app");
    assert_eq!(
        psql(&cluster.url("app").unwrap(), "SELECT current_database()"),
        "app"
    );

    let again = cluster.start().unwrap();
    assert_eq!(
        again.pid, status.pid,
        "a second start must reuse the running server"
    );
    assert_eq!(again.port, status.port);
    assert!(cluster.status().unwrap().running);

    // A crash leaves postmaster.pid (and the socket lock) behind; start recovers, keeping port and data.
    let pid = status.pid.unwrap();
    // SAFETY: plain kill(2) of the server we started.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) }, 0);
    wait_until_gone(pid);
    assert!(dir.join("data/postmaster.pid").exists());
    assert!(!cluster.status().unwrap().running);
    let restarted = cluster.start().unwrap();
    assert!(restarted.running);
    assert_ne!(restarted.pid, status.pid);
    assert_eq!(restarted.port, status.port);
    assert_eq!(psql(&cluster.url("app").unwrap(), "SELECT 1"), "1");

    cluster.stop().unwrap();
    let stopped = cluster.status().unwrap();
    assert!(!stopped.running);
    assert_eq!(stopped.pid, None);
    cluster.stop().unwrap(); // stopping a stopped cluster is fine

    cluster.destroy().unwrap();
    assert!(!dir.exists());
    cluster.destroy().unwrap(); // and so is destroying a destroyed one
}

#[test]
fn dev_cluster_remembers_its_binaries_and_refuses_another_major_version() {
    // Binaries in a directory of their own (symlinks to the real ones), so that "the recorded ones" and "the ones
    // found" differ.
    let real = PgBinaries::find().unwrap();
    let parent = reachable_tempdir();
    let bindir = parent.path().join("bin");
    std::fs::create_dir(&bindir).unwrap();
    for tool in ["initdb", "postgres", "pg_ctl"] {
        std::os::unix::fs::symlink(real.tool(tool), bindir.join(tool)).unwrap();
    }
    let chosen = PgBinaries::from_dir(&bindir).unwrap();
    let dir = parent.path().join("dev");

    let cluster = DevCluster::with_binaries(&dir, chosen.clone()).unwrap();
    let status = cluster.start().unwrap();
    assert_eq!(status.bindir, bindir);
    assert_eq!(status.version, real.version().unwrap());
    assert_eq!(psql(&status.url, "SELECT 1"), "1");

    // Later commands use the binaries that created the cluster without being told.
    assert_eq!(DevCluster::new(&dir).unwrap().binaries(), &chosen);

    // A data directory of another major version: a clear error before the server is even tried.
    cluster.stop().unwrap();
    let pg_version = dir.join("data/PG_VERSION");
    let major = std::fs::read_to_string(&pg_version).unwrap();
    assert_eq!(major.trim(), real.major_version().unwrap());
    std::fs::write(&pg_version, "9.6\n").unwrap();
    let err = cluster.start().unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::VersionMismatch { .. }), "{message}");
    assert!(
        message.contains(&format!(
            "created by PostgreSQL 9.6, but the server binaries in {} are PostgreSQL {}",
            bindir.display(),
            major.trim()
        )),
        "{message}"
    );
    assert!(message.contains("strata dev destroy"), "{message}");
    std::fs::write(&pg_version, &major).unwrap();
    assert!(cluster.start().unwrap().running);

    // Recorded binaries that are gone: say so, and how to choose others.
    cluster.stop().unwrap();
    std::fs::remove_dir_all(&bindir).unwrap();
    let err = DevCluster::new(&dir).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::BinariesNotFound { .. }), "{message}");
    assert!(message.contains("strata-dev.json"), "{message}");
    assert!(message.contains("--pg-bin"), "{message}");
    DevCluster::with_binaries(&dir, real)
        .unwrap()
        .destroy()
        .unwrap();
    assert!(!dir.exists());
}

#[test]
fn dev_cluster_leaves_foreign_directories_alone() {
    let parent = reachable_tempdir();
    std::fs::write(parent.path().join("precious.txt"), "keep me").unwrap();
    let cluster = DevCluster::new(parent.path()).unwrap();
    let err = cluster.start().unwrap_err();
    assert!(matches!(err, Error::NotACluster { .. }), "{err}");
    let err = cluster.destroy().unwrap_err();
    assert!(matches!(err, Error::NotACluster { .. }), "{err}");
    assert!(parent.path().join("precious.txt").exists());
}

#[test]
fn child_cluster_serves_and_shutdown_removes_its_directory() {
    let opts = ChildClusterOptions {
        max_connections: 20,
        extra_settings: vec![("work_mem".into(), "7MB".into())],
        listen_tcp: true,
        binaries: Some(PgBinaries::find().unwrap()),
    };
    let cluster = ChildCluster::start(&opts).unwrap();
    let dir = cluster.socket_dir().to_path_buf();
    assert!(dir.join("data/PG_VERSION").exists());
    let url = cluster.url("postgres");
    assert_eq!(
        url,
        format!(
            "postgresql://postgres@/postgres?host={}&port={}",
            dir.display(),
            cluster.port()
        )
    );
    assert_eq!(psql(&url, "SHOW max_connections"), "20");
    assert_eq!(psql(&url, "SHOW work_mem"), "7MB");
    assert_eq!(
        psql(&url, "SHOW fsync") + &psql(&url, "SHOW full_page_writes"),
        "offoff"
    );
    assert_eq!(psql(&cluster.tcp_url("postgres").unwrap(), "SELECT 1"), "1");

    let pid_file = std::fs::read_to_string(dir.join("data/postmaster.pid")).unwrap();
    let pid: u32 = pid_file.lines().next().unwrap().parse().unwrap();
    cluster.shutdown().unwrap();
    assert!(!dir.exists(), "{} survived shutdown", dir.display());
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "postmaster {pid} survived shutdown"
    );
}

#[test]
fn child_cluster_listens_on_the_socket_only_by_default_and_drop_cleans_up() {
    let cluster = ChildCluster::start(&ChildClusterOptions::default()).unwrap();
    let dir = cluster.socket_dir().to_path_buf();
    assert_eq!(psql(&cluster.url("postgres"), "SHOW listen_addresses"), "");
    assert_eq!(
        psql(&cluster.url("postgres"), "SHOW max_connections"),
        "200"
    );
    assert_eq!(cluster.tcp_url("postgres"), None);
    drop(cluster);
    assert!(!dir.exists());
}

/// In helper mode (run by the test below): start a cluster, report it, and wait to be killed.
const HELPER_ENV: &str = "PGSTRATA_EMBEDDED_TEST_HELPER";

#[test]
fn child_cluster_dies_with_a_killed_parent() {
    if env::var_os(HELPER_ENV).is_some() {
        let cluster = ChildCluster::start(&ChildClusterOptions::default()).unwrap();
        println!("cluster dir: {}", cluster.socket_dir().display());
        std::io::stdout().flush().unwrap();
        thread::sleep(Duration::from_secs(120));
        return;
    }
    let mut helper = Command::new(env::current_exe().unwrap())
        .args([
            "--exact",
            "child_cluster_dies_with_a_killed_parent",
            "--nocapture",
        ])
        .env(HELPER_ENV, "1")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut dir = None;
    for line in BufReader::new(helper.stdout.take().unwrap()).lines() {
        if let Some((_, path)) = line.unwrap().split_once("cluster dir: ") {
            dir = Some(PathBuf::from(path));
            break;
        }
    }
    let dir = dir.expect("the helper did not start a cluster");
    let pid_file = std::fs::read_to_string(dir.join("data/postmaster.pid")).unwrap();
    let postmaster: u32 = pid_file.lines().next().unwrap().parse().unwrap();

    helper.kill().unwrap(); // SIGKILL: no destructors, no atexit
    helper.wait().unwrap();
    wait_until_gone(postmaster);
    let stat = std::fs::read_to_string(format!("/proc/{postmaster}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty()
            || stat
                .rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        "postmaster {postmaster} survived its parent: {stat}"
    );
    // Only the directory is left behind, as documented.
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn child_cluster_start_failure_shows_command_and_log() {
    let opts = ChildClusterOptions {
        extra_settings: vec![("no_such_setting".into(), "1".into())],
        ..Default::default()
    };
    let err = ChildCluster::start(&opts).unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::Start { .. }), "{message}");
    assert!(
        message.contains("-c no_such_setting=1"),
        "no command line in: {message}"
    );
    assert!(
        message.contains("unrecognized configuration parameter"),
        "no log tail in: {message}"
    );
}
