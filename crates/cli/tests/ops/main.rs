//! `strata inspect`, `strata backup` and `strata restore` through the real binary, against PostgreSQL (pgtest).
//! The checks themselves are tested in `crates/ops`; these tests cover what the shell adds: arguments, exit codes,
//! `[inspect]` from strata.toml, rendering, --watch.

// Helpers outside #[test] functions panic on setup failures too: that is how a test reports them.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

fn strata(db: &pgtest::TestDb) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("strata").expect("strata binary");
    cmd.env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .arg("--database-url")
        .arg(db.url());
    cmd
}

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(cmd: &mut assert_cmd::Command) -> Run {
    let out = cmd.output().expect("strata runs");
    Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}\n--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

#[tokio::test]
async fn inspect_prints_verdicts_and_exit_code_turns_a_problem_into_exit_1() {
    let db = pgtest::TestDb::new().await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE t (id int, code text); INSERT INTO t SELECT g, 'same' FROM generate_series(1, 10) g;",
    )
    .await
    .unwrap();
    let _ = c
        .batch_execute("CREATE UNIQUE INDEX CONCURRENTLY t_code ON t (code)")
        .await;

    let r = run(strata(&db).args(["inspect"]));
    assert_eq!(
        r.code, 0,
        "without --exit-code a problem is reported, not an error: {r:?}"
    );
    assert!(
        r.stdout.contains(&format!("{} on PostgreSQL", db.name())),
        "{r:?}"
    );
    assert!(r.stdout.contains("problem  invalid-indexes"), "{r:?}");
    assert!(r.stdout.contains("public.t_code"), "{r:?}");
    assert!(r.stdout.contains("skipped  queues"), "{r:?}");
    assert!(r.stdout.contains("1 problem(s)"), "{r:?}");

    let r = run(strata(&db).args(["inspect", "invalid-indexes", "--exit-code"]));
    assert_eq!(r.code, 1, "{r:?}");
    let r = run(strata(&db).args(["inspect", "connections", "cache-hit", "--exit-code"]));
    assert_eq!(r.code, 0, "{r:?}");

    let r = run(strata(&db).args(["--json", "inspect", "indexes"]));
    assert_eq!(r.code, 0, "{r:?}");
    let json: serde_json::Value = serde_json::from_str(&r.stdout).expect("one JSON document");
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 4, "the indexes group: {json}");
    let invalid = checks
        .iter()
        .find(|c| c["check"] == "invalid-indexes")
        .unwrap();
    assert_eq!(invalid["status"], "ran");
    assert_eq!(invalid["verdict"], "problem");
    assert_eq!(invalid["details"][0]["index"], "t_code");
    assert_eq!(json["database"], db.name());
}

#[tokio::test]
async fn an_unknown_check_is_a_usage_error_naming_the_valid_ones() {
    let db = pgtest::TestDb::new().await;
    let r = run(strata(&db).args(["inspect", "vacuum"]));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("unknown check `vacuum`"), "{r:?}");
    assert!(r.stderr.contains("vacuum-analyze"), "{r:?}");
}

#[tokio::test]
async fn inspect_settings_come_from_strata_toml() {
    let db = pgtest::TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    write(
        &dir.path().join("strata.toml"),
        "name = \"example.com/app\"\nschema = \"app\"\nmigrations = []\n\n[inspect]\nchecks = [\"wraparound\"]\n\
         xid_age_warning = 1\n",
    );
    let r = run(strata(&db).arg("-p").arg(dir.path()).arg("inspect"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(
        r.stdout.contains("warning  wraparound"),
        "xid_age_warning = 1 warns: {r:?}"
    );
    assert!(
        r.stdout.contains("1 check(s)"),
        "only the configured check: {r:?}"
    );

    let r = run(strata(&db)
        .arg("-p")
        .arg(dir.path())
        .args(["inspect", "--list"]));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("xid_age_warning = 1\n"), "{r:?}");
    assert!(r.stdout.contains("blocking-locks"), "{r:?}");

    write(
        &dir.path().join("strata.toml"),
        "name = \"example.com/app\"\nschema = \"app\"\nmigrations = []\n\n[inspect]\nxid_age_warnin = 1\n",
    );
    let r = run(strata(&db).arg("-p").arg(dir.path()).arg("inspect"));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("strata.toml:6:1"), "{r:?}");
    assert!(r.stderr.contains("unknown field `xid_age_warnin`"), "{r:?}");
}

#[tokio::test]
async fn backup_then_restore_verify_and_a_refused_restore() {
    let db = pgtest::TestDb::new().await;
    db.client()
        .await
        .batch_execute("CREATE TABLE items (id int PRIMARY KEY); INSERT INTO items SELECT generate_series(1, 300)")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.dump");

    let r = run(strata(&db).arg("backup").arg(&archive));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("backed up"), "{r:?}");
    assert!(r.stdout.contains("300 row(s)"), "{r:?}");
    assert!(dir.path().join("app.dump.manifest.json").is_file());

    let r = run(strata(&db).arg("restore").arg(&archive).arg("--verify"));
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("verified"), "{r:?}");
    assert!(r.stdout.contains("300 row(s)"), "{r:?}");

    let r = run(strata(&db).arg("restore").arg(&archive));
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("is not empty"), "{r:?}");
    assert!(r.stderr.contains("--clean"), "{r:?}");

    let r = run(strata(&db).arg("backup").arg(&archive));
    assert_eq!(r.code, 2, "an existing archive is not overwritten: {r:?}");

    let r = run(strata(&db)
        .args(["backup", "--jobs", "2"])
        .arg(dir.path().join("x.dump")));
    assert_eq!(r.code, 2, "{r:?}");
    assert!(r.stderr.contains("--format directory"), "{r:?}");
}

#[tokio::test]
async fn watch_redraws_until_interrupted() {
    let db = pgtest::TestDb::new().await;
    let child = Command::new(assert_cmd::cargo::cargo_bin("strata"))
        .env_remove("DATABASE_URL")
        .env("NO_COLOR", "1")
        .args([
            "--json",
            "--database-url",
            &db.url(),
            "inspect",
            "connections",
            "--watch",
            "500ms",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "Ctrl-C ends --watch normally");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let rounds: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON document per line"))
        .collect();
    assert!(rounds.len() >= 2, "{stdout}");
    assert!(
        rounds
            .iter()
            .all(|r| r["checks"][0]["check"] == "connections")
    );
}
