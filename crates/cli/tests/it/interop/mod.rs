//! The interop commands through the real `strata` binary: `up --dir`, `adopt`, `baseline`, `export`,
//! `dump-schema`, against PostgreSQL (pgtest) and real dbmate (see `support::dbmate`).

use std::path::{Path, PathBuf};
use std::process::Command;

mod layouts;
mod seeds;
mod sqlx;

fn strata(db: &pgtest::TestDb) -> assert_cmd::Command {
    let mut cmd = assert_cmd::Command::cargo_bin("strata").expect("strata binary");
    cmd.env_remove("DATABASE_URL")
        .arg("--database-url")
        .arg(db.url());
    cmd
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A small dbmate project: `<root>/app/db/migrations`.
fn dbmate_project(root: &Path, count: usize) -> PathBuf {
    let dir = root.join("app/db/migrations");
    for i in 1..=count {
        let (up, down) = if i == 1 {
            (
                "CREATE TABLE hub (id bigint PRIMARY KEY);".to_string(),
                "DROP TABLE hub;".to_string(),
            )
        } else if i % 5 == 0 {
            (
                format!("CREATE INDEX CONCURRENTLY hub_{i} ON hub (id);"),
                format!("DROP INDEX CONCURRENTLY hub_{i};"),
            )
        } else {
            (
                format!("ALTER TABLE hub ADD COLUMN c{i} int;"),
                format!("ALTER TABLE hub DROP COLUMN c{i};"),
            )
        };
        let tx = if i % 5 == 0 { " transaction:false" } else { "" };
        write(
            &dir.join(format!("{:014}_m{i}.sql", 20240101000000u64 + i as u64)),
            &format!("-- migrate:up{tx}\n{up}\n\n-- migrate:down{tx}\n{down}\n"),
        );
    }
    dir
}

fn dbmate_url(db: &pgtest::TestDb) -> String {
    let env: std::collections::HashMap<String, String> = db.env().into_iter().collect();
    let host = env.get("PGHOST").cloned().unwrap_or_default();
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

fn run_dbmate(bin: &Path, db: &pgtest::TestDb, dir: &Path, cmd: &str) {
    let out = Command::new(bin)
        .args([
            "--url",
            &dbmate_url(db),
            "--no-dump-schema",
            "--migrations-dir",
        ])
        .arg(dir)
        .arg(cmd)
        .output()
        .expect("dbmate");
    assert!(
        out.status.success(),
        "dbmate {cmd}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `strata status --json` without what differs between two databases in the same state (times, target, last run).
fn status_json(db: &pgtest::TestDb, args: &[&str]) -> serde_json::Value {
    let out = strata(db)
        .args(args)
        .args(["status", "--json"])
        .output()
        .expect("status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    v["target"] = serde_json::Value::Null;
    v["last_run"] = serde_json::Value::Null;
    for p in v["packages"].as_array_mut().expect("packages") {
        for m in p["migrations"].as_array_mut().expect("migrations") {
            m["applied_at"] = serde_json::Value::Null;
        }
    }
    v
}

#[tokio::test]
async fn up_dir_detects_the_layout_and_names_the_package_after_the_project() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = dbmate_project(tmp.path(), 12);
    let db = pgtest::TestDb::new().await;
    let out = strata(&db)
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("app:20240101000012_m12"), "{text}");
    assert!(text.contains("(no transaction)"), "{text}");
    let out = strata(&db)
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("again");
    assert!(
        stdout(&out).contains("Nothing to apply"),
        "{}",
        stdout(&out)
    );

    // An ambiguous folder: exit 2, and the reason.
    let amb = tmp.path().join("amb");
    write(&amb.join("1_a.up.sql"), "CREATE TABLE a (id int);\n");
    write(&amb.join("1_a.down.sql"), "DROP TABLE a;\n");
    let out = strata(&db)
        .arg("up")
        .arg("--dir")
        .arg(&amb)
        .output()
        .expect("ambiguous");
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("fits several layouts") && err.contains("--layout"),
        "{err}"
    );
    let out = strata(&db)
        .args([
            "up",
            "--layout",
            "golang-migrate",
            "--package-name",
            "amb",
            "--dir",
        ])
        .arg(&amb)
        .output()
        .expect("explicit");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn dbmate_then_adopt_then_strata_through_the_cli() {
    let Some(bin) = crate::support::dbmate() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = dbmate_project(tmp.path(), 10);
    let db = pgtest::TestDb::new().await;
    run_dbmate(&bin, &db, &dir, "migrate");
    dbmate_project(tmp.path(), 15);
    let out = strata(&db)
        .arg("adopt")
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("adopt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(
        text.contains("Recorded 10 migration(s)") && text.contains("adopted:dbmate"),
        "{text}"
    );
    assert!(text.contains("5 migration(s) not applied yet"), "{text}");
    let out = strata(&db)
        .arg("adopt")
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("adopt again");
    assert!(
        stdout(&out).contains("Nothing new to record"),
        "{}",
        stdout(&out)
    );
    let out = strata(&db)
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("Applied 5 migration(s)"),
        "{}",
        stdout(&out)
    );
    let out = strata(&db)
        .args(["status", "--exit-code", "--dir"])
        .arg(&dir)
        .output()
        .expect("status");
    assert!(out.status.success(), "{}", stdout(&out));
}

#[tokio::test]
async fn psql_script_then_status_equals_strata_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = dbmate_project(tmp.path(), 20);
    let script = tmp.path().join("deploy.sql");
    let probe = pgtest::TestDb::new().await;
    strata(&probe)
        .arg("export")
        .arg("--dir")
        .arg(&dir)
        .args(["--to", "psql"])
        .arg(&script)
        .assert()
        .success();
    let by_psql = pgtest::TestDb::new().await;
    for _ in 0..2 {
        let out = Command::new(pgtest::tool("psql"))
            .args(["-X", "-q", "-f"])
            .arg(&script)
            .envs(by_psql.env())
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let by_up = pgtest::TestDb::new().await;
    strata(&by_up)
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .assert()
        .success();
    let dir_args = ["--dir", dir.to_str().expect("utf-8 path")];
    assert_eq!(
        status_json(&by_psql, &dir_args),
        status_json(&by_up, &dir_args)
    );
    // The schema files agree too (history included).
    let a = tmp.path().join("a.sql");
    strata(&by_up).arg("dump-schema").arg(&a).assert().success();
    strata(&by_psql)
        .arg("dump-schema")
        .arg("--check")
        .arg(&a)
        .assert()
        .success();
}

#[tokio::test]
async fn dump_schema_check_exits_1_with_a_diff() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = dbmate_project(tmp.path(), 3);
    let db = pgtest::TestDb::new().await;
    strata(&db)
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .assert()
        .success();
    let file = tmp.path().join("schema.sql");
    strata(&db).arg("dump-schema").arg(&file).assert().success();
    strata(&db)
        .arg("dump-schema")
        .arg("--check")
        .arg(&file)
        .assert()
        .success();
    db.client()
        .await
        .batch_execute("ALTER TABLE hub ADD COLUMN drift int")
        .await
        .expect("drift");
    let out = strata(&db)
        .arg("dump-schema")
        .arg("--check")
        .arg(&file)
        .output()
        .expect("check");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("+    drift integer"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn baseline_then_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = dbmate_project(tmp.path(), 8);
    let db = pgtest::TestDb::new().await;
    db.client()
        .await
        .batch_execute("CREATE TABLE hub (id bigint PRIMARY KEY); ALTER TABLE hub ADD COLUMN c2 int; ALTER TABLE hub ADD COLUMN c3 int;")
        .await
        .expect("by hand");
    let out = strata(&db)
        .args(["baseline", "--to", "20240101000003", "--dir"])
        .arg(&dir)
        .output()
        .expect("baseline");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("Recorded 3 migration(s)"),
        "{}",
        stdout(&out)
    );
    let out = strata(&db)
        .arg("up")
        .arg("--dir")
        .arg(&dir)
        .output()
        .expect("up");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout(&out).contains("Applied 5 migration(s)"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn export_to_dbmate_then_dbmate_applies_it() {
    let Some(bin) = crate::support::dbmate() else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop_with_concurrent_indexes(tmp.path());
    let out_dir = tmp.path().join("exported");
    let db = pgtest::TestDb::new().await;
    let out = strata(&db)
        .arg("-p")
        .arg(&pkg)
        .args(["export", "--to", "dbmate"])
        .arg(&out_dir)
        .output()
        .expect("export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout(&out).contains("renumbered"), "{}", stdout(&out));
    run_dbmate(&bin, &db, &out_dir, "migrate");
    assert_eq!(
        shop_indexes(&db).await,
        ["item_id", "item_name", "item_pkey"]
    );
}

/// A package whose second migration builds two indexes CONCURRENTLY (no transaction, several statements).
fn shop_with_concurrent_indexes(root: &Path) -> PathBuf {
    let pkg = root.join("shop");
    write(
        &pkg.join("strata.toml"),
        "name = \"acme/shop\"\nschema = \"shop\"\nmigrations = [\"migrations/0001_init.sql\", \"migrations/0002_idx.sql\"]\n",
    );
    write(
        &pkg.join("migrations/0001_init.sql"),
        "-- migrate:up\nCREATE TABLE item (id bigint PRIMARY KEY, name text);\n-- migrate:down\nDROP TABLE item;\n",
    );
    write(
        &pkg.join("migrations/0002_idx.sql"),
        "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY item_name ON shop.item (name);\nCREATE INDEX CONCURRENTLY item_id ON shop.item (id);\n",
    );
    pkg
}

/// The indexes of schema `shop`, by name.
async fn shop_indexes(db: &pgtest::TestDb) -> Vec<String> {
    db.client()
        .await
        .query(
            "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'shop' ORDER BY 1",
            &[],
        )
        .await
        .expect("indexes")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// A package with its own schema, migrations and managed code (functions, a view on one, a trigger on another,
/// comments), with its package role.
fn shop_with_code(root: &Path) -> PathBuf {
    let pkg = root.join("shop");
    write(
        &pkg.join("strata.toml"),
        "name = \"acme/shop\"\nschema = \"shop\"\nmigrations = [\"migrations/0001_init.sql\", \"migrations/0002_price.sql\"]\n",
    );
    write(
        &pkg.join("migrations/0001_init.sql"),
        "-- migrate:up\nCREATE TABLE item (id bigint PRIMARY KEY, name text);\n-- migrate:down\nDROP TABLE item;\n",
    );
    write(
        &pkg.join("migrations/0002_price.sql"),
        "-- migrate:up\nALTER TABLE item ADD COLUMN price numeric;\n-- migrate:down\nALTER TABLE item DROP COLUMN price;\n",
    );
    write(
        &pkg.join("code/functions.sql"),
        "CREATE FUNCTION net(i item) RETURNS numeric LANGUAGE sql IMMUTABLE AS $$ SELECT i.price / 1.2 $$;\n\
         CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\nBEGIN\n  NEW.name := coalesce(NEW.name, '?');\n  RETURN NEW;\nEND\n$$;\n\
         COMMENT ON FUNCTION net(item) IS 'price without tax';\n",
    );
    write(
        &pkg.join("code/views.sql"),
        "CREATE VIEW priced AS SELECT id, name, net(item) AS net FROM item;\nCOMMENT ON VIEW priced IS 'net prices';\n",
    );
    write(
        &pkg.join("code/triggers.sql"),
        "CREATE TRIGGER item_touch BEFORE INSERT ON item FOR EACH ROW EXECUTE FUNCTION touch();\n",
    );
    pkg
}

/// `pg_dump --schema-only` without Strata's schema, the tools' tables, owners and grants (package roles differ
/// between a Strata package and a folder read with `--dir`).
fn user_schema(db: &pgtest::TestDb) -> String {
    let out = Command::new(pgtest::tool("pg_dump"))
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--exclude-schema=strata",
        ])
        .envs(db.env())
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
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

#[tokio::test]
async fn export_managed_code_to_dbmate_then_up_dir_gives_the_same_schema() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop_with_code(tmp.path());
    let by_up = pgtest::TestDb::new().await;
    strata(&by_up)
        .arg("-p")
        .arg(&pkg)
        .arg("up")
        .assert()
        .success();
    let out_dir = tmp.path().join("exported");
    let out = strata(&by_up)
        .arg("-p")
        .arg(&pkg)
        .args(["export", "--to", "dbmate"])
        .arg(&out_dir)
        .output()
        .expect("export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("exported")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("0004_shop_managed_")),
        "{names:?}"
    );

    let by_dir = pgtest::TestDb::new().await;
    strata(&by_dir)
        .arg("up")
        .arg("--dir")
        .arg(&out_dir)
        .args(["--layout", "dbmate"])
        .assert()
        .success();
    assert_eq!(user_schema(&by_dir), user_schema(&by_up));
    assert!(user_schema(&by_dir).contains("CREATE TRIGGER item_touch"));
    // The generated migration's down part drops the managed code, dependents first.
    strata(&by_dir)
        .arg("down")
        .arg("--dir")
        .arg(&out_dir)
        .args(["--layout", "dbmate"])
        .assert()
        .success();
    let left = by_dir
        .client()
        .await
        .query(
            "SELECT count(*) FROM pg_proc WHERE pronamespace = 'shop'::regnamespace
             UNION ALL SELECT count(*) FROM pg_class WHERE relnamespace = 'shop'::regnamespace AND relkind = 'v'",
            &[],
        )
        .await
        .expect("count")
        .iter()
        .map(|r| r.get::<_, i64>(0))
        .collect::<Vec<_>>();
    assert_eq!(left, [0, 0]);
}

#[tokio::test]
async fn psql_script_with_managed_code_then_status_is_clean_and_up_has_nothing_to_do() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop_with_code(tmp.path());
    let script = tmp.path().join("deploy.sql");
    let by_psql = pgtest::TestDb::new().await;
    strata(&by_psql)
        .arg("-p")
        .arg(&pkg)
        .args(["export", "--to", "psql"])
        .arg(&script)
        .assert()
        .success();
    for _ in 0..2 {
        let out = Command::new(pgtest::tool("psql"))
            .args(["-X", "-q", "-f"])
            .arg(&script)
            .envs(by_psql.env())
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let by_up = pgtest::TestDb::new().await;
    strata(&by_up)
        .arg("-p")
        .arg(&pkg)
        .arg("up")
        .assert()
        .success();
    let pkg_args = ["-p", pkg.to_str().expect("utf-8 path")];
    strata(&by_psql)
        .args(pkg_args)
        .args(["status", "--exit-code"])
        .assert()
        .success();
    assert_eq!(
        status_json(&by_psql, &pkg_args),
        status_json(&by_up, &pkg_args)
    );
    let up = strata(&by_psql)
        .args(pkg_args)
        .args(["up", "--json"])
        .output()
        .expect("up");
    assert!(
        up.status.success(),
        "{}",
        String::from_utf8_lossy(&up.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&up.stdout).expect("json");
    assert_eq!(report["outcome"], "noop", "{report}");
    assert_eq!(user_schema(&by_psql), user_schema(&by_up));
}
