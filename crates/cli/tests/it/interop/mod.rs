//! The interop commands through the real `strata` binary: `up --dir`, `adopt`, `baseline`, `export`,
//! `dump-schema`, against PostgreSQL (pgtest) and real dbmate (see `support::dbmate`).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{Run, run};

mod layouts;
mod seeds;
mod sqlx;

/// `strata --database-url <db>`, with the same clean environment as the other CLI tests.
fn strata(db: &pgtest::TestDb) -> assert_cmd::Command {
    let mut cmd = crate::support::strata();
    cmd.arg("--database-url").arg(db.url());
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

/// The test database's URL for a tool that reads no libpq variables. A TCP host is the usual `host:port`; a Unix
/// socket directory goes in the query parameter `socket_param`, after the authority `socket_authority` (dbmate:
/// `@/db?socket=DIR`, sqlx: `@localhost/db?host=DIR`).
fn tool_url(db: &pgtest::TestDb, socket_authority: &str, socket_param: &str) -> String {
    let env: std::collections::HashMap<String, String> = db.env().into_iter().collect();
    let host = env.get("PGHOST").cloned().unwrap_or_default();
    let port = env.get("PGPORT").cloned().unwrap_or_else(|| "5432".into());
    let user = env
        .get("PGUSER")
        .cloned()
        .unwrap_or_else(|| "postgres".into());
    let name = db.name();
    if host.starts_with('/') {
        format!(
            "postgres://{user}@{socket_authority}/{name}?{socket_param}={host}&port={port}&sslmode=disable"
        )
    } else {
        format!("postgres://{user}@{host}:{port}/{name}?sslmode=disable")
    }
}

fn run_dbmate(bin: &Path, db: &pgtest::TestDb, dir: &Path, cmd: &str) {
    let out = Command::new(bin)
        .args([
            "--url",
            &tool_url(db, "", "socket"),
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

/// Run `script` with psql on `db`, twice: an exported script applies again as a no-op.
fn psql_twice(db: &pgtest::TestDb, script: &Path) {
    for _ in 0..2 {
        let out = Command::new(pgtest::tool("psql"))
            .args(["-X", "-q", "-f"])
            .arg(script)
            .envs(db.env())
            .output()
            .expect("psql");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// `pg_dump --schema-only ARGS` on `db`, without comment lines and the `\restrict`/`\unrestrict` pair (pg_dump
/// 15.14+) whose key is random.
fn schema_lines(db: &pgtest::TestDb, args: &[&str]) -> Vec<String> {
    let out = Command::new(pgtest::tool("pg_dump"))
        .envs(db.env())
        .arg("--schema-only")
        .args(args)
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
        .map(str::to_string)
        .collect()
}

/// Panics, showing `text`, unless it contains every one of `needles`.
#[track_caller]
fn assert_contains(text: &str, needles: &[&str]) {
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} missing from:\n{text}");
    }
}

/// `strata -p PKG export --to FORMAT DEST`, which must succeed.
fn export_package(db: &pgtest::TestDb, pkg: &Path, format: &str, dest: &Path) -> Run {
    run(strata(db)
        .arg("-p")
        .arg(pkg)
        .args(["export", "--to", format])
        .arg(dest))
    .ok()
}

/// `strata status --json` without what differs between two databases in the same state (times, target, last run).
fn status_json(db: &pgtest::TestDb, args: &[&str]) -> serde_json::Value {
    let mut v = run(strata(db).args(args).args(["status", "--json"]))
        .ok()
        .json();
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
    let out = run(strata(&db).args(["up", "--dir"]).arg(&dir)).ok();
    assert_contains(&out.stdout, &["app:20240101000012_m12"]);
    assert_contains(&out.stdout, &["(no transaction)"]);
    let out = run(strata(&db).args(["up", "--dir"]).arg(&dir));
    assert_contains(&out.stdout, &["Nothing to apply"]);

    // An ambiguous folder: exit 2, and the reason.
    let amb = tmp.path().join("amb");
    write(&amb.join("1_a.up.sql"), "CREATE TABLE a (id int);\n");
    write(&amb.join("1_a.down.sql"), "DROP TABLE a;\n");
    let out = run(strata(&db).args(["up", "--dir"]).arg(&amb)).expect_code(2);
    assert_contains(&out.stderr, &["fits several layouts", "--layout"]);
    run(strata(&db)
        .args([
            "up",
            "--layout",
            "golang-migrate",
            "--package-name",
            "amb",
            "--dir",
        ])
        .arg(&amb))
    .ok();
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
    let out = run(strata(&db).args(["adopt", "--dir"]).arg(&dir)).ok();
    assert_contains(&out.stdout, &["Recorded 10 migration(s)", "adopted:dbmate"]);
    assert_contains(&out.stdout, &["5 migration(s) not applied yet"]);
    let out = run(strata(&db).args(["adopt", "--dir"]).arg(&dir));
    assert_contains(&out.stdout, &["Nothing new to record"]);
    let out = run(strata(&db).args(["up", "--dir"]).arg(&dir)).ok();
    assert_contains(&out.stdout, &["Applied 5 migration(s)"]);
    run(strata(&db)
        .args(["status", "--exit-code", "--dir"])
        .arg(&dir))
    .ok();
}

#[tokio::test]
async fn psql_script_then_status_equals_strata_up() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = dbmate_project(tmp.path(), 20);
    let script = tmp.path().join("deploy.sql");
    let probe = pgtest::TestDb::new().await;
    run(strata(&probe)
        .args(["export", "--dir"])
        .arg(&dir)
        .args(["--to", "psql"])
        .arg(&script))
    .ok();
    let by_psql = pgtest::TestDb::new().await;
    psql_twice(&by_psql, &script);
    let by_up = pgtest::TestDb::new().await;
    run(strata(&by_up).args(["up", "--dir"]).arg(&dir)).ok();
    let dir_args = ["--dir", dir.to_str().expect("utf-8 path")];
    assert_eq!(
        status_json(&by_psql, &dir_args),
        status_json(&by_up, &dir_args)
    );
    // The schema files agree too (history included).
    let a = tmp.path().join("a.sql");
    run(strata(&by_up).arg("dump-schema").arg(&a)).ok();
    run(strata(&by_psql).args(["dump-schema", "--check"]).arg(&a)).ok();
}

#[tokio::test]
async fn dump_schema_check_exits_1_with_a_diff() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = dbmate_project(tmp.path(), 3);
    let db = pgtest::TestDb::new().await;
    run(strata(&db).args(["up", "--dir"]).arg(&dir)).ok();
    let file = tmp.path().join("schema.sql");
    run(strata(&db).arg("dump-schema").arg(&file)).ok();
    run(strata(&db).args(["dump-schema", "--check"]).arg(&file)).ok();
    db.client()
        .await
        .batch_execute("ALTER TABLE hub ADD COLUMN drift int")
        .await
        .expect("drift");
    let out = run(strata(&db).args(["dump-schema", "--check"]).arg(&file)).expect_code(1);
    assert_contains(&out.stdout, &["+    drift integer"]);
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
    let out = run(strata(&db)
        .args(["baseline", "--to", "20240101000003", "--dir"])
        .arg(&dir))
    .ok();
    assert_contains(&out.stdout, &["Recorded 3 migration(s)"]);
    let out = run(strata(&db).args(["up", "--dir"]).arg(&dir)).ok();
    assert_contains(&out.stdout, &["Applied 5 migration(s)"]);
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
    let out = export_package(&db, &pkg, "dbmate", &out_dir);
    assert_contains(&out.stdout, &["renumbered"]);
    run_dbmate(&bin, &db, &out_dir, "migrate");
    assert_eq!(
        shop_indexes(&db).await,
        ["item_id", "item_name", "item_pkey"]
    );
}

/// Package `acme/shop` (schema `shop`) in `<root>/shop`: a first migration that creates table `item`, then
/// `migrations/<second>` with `sql`.
fn shop(root: &Path, second: &str, sql: &str) -> PathBuf {
    let pkg = root.join("shop");
    write(
        &pkg.join("strata.toml"),
        &format!(
            "name = \"acme/shop\"\nschema = \"shop\"\nmigrations = [\"migrations/0001_init.sql\", \"migrations/{second}\"]\n"
        ),
    );
    write(
        &pkg.join("migrations/0001_init.sql"),
        "-- migrate:up\nCREATE TABLE item (id bigint PRIMARY KEY, name text);\n-- migrate:down\nDROP TABLE item;\n",
    );
    write(&pkg.join("migrations").join(second), sql);
    pkg
}

/// A package whose second migration builds two indexes CONCURRENTLY (no transaction, several statements).
fn shop_with_concurrent_indexes(root: &Path) -> PathBuf {
    shop(
        root,
        "0002_idx.sql",
        "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY item_name ON shop.item (name);\nCREATE INDEX CONCURRENTLY item_id ON shop.item (id);\n",
    )
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
    let pkg = shop(
        root,
        "0002_price.sql",
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
    schema_lines(
        db,
        &["--no-owner", "--no-privileges", "--exclude-schema=strata"],
    )
    .into_iter()
    .filter(|l| !l.trim().is_empty())
    .collect::<Vec<_>>()
    .join("\n")
}

#[tokio::test]
async fn export_managed_code_to_dbmate_then_up_dir_gives_the_same_schema() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop_with_code(tmp.path());
    let by_up = pgtest::TestDb::new().await;
    run(strata(&by_up).arg("-p").arg(&pkg).arg("up")).ok();
    let out_dir = tmp.path().join("exported");
    export_package(&by_up, &pkg, "dbmate", &out_dir);
    let names: Vec<String> = std::fs::read_dir(&out_dir)
        .expect("exported")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with("0004_shop_managed_")),
        "{names:?}"
    );

    let by_dir = pgtest::TestDb::new().await;
    run(strata(&by_dir)
        .args(["up", "--dir"])
        .arg(&out_dir)
        .args(["--layout", "dbmate"]))
    .ok();
    assert_eq!(user_schema(&by_dir), user_schema(&by_up));
    assert_contains(&user_schema(&by_dir), &["CREATE TRIGGER item_touch"]);
    // The generated migration's down part drops the managed code, dependents first.
    run(strata(&by_dir)
        .args(["down", "--dir"])
        .arg(&out_dir)
        .args(["--layout", "dbmate"]))
    .ok();
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
    export_package(&by_psql, &pkg, "psql", &script);
    psql_twice(&by_psql, &script);
    let by_up = pgtest::TestDb::new().await;
    run(strata(&by_up).arg("-p").arg(&pkg).arg("up")).ok();
    let pkg_args = ["-p", pkg.to_str().expect("utf-8 path")];
    run(strata(&by_psql)
        .args(pkg_args)
        .args(["status", "--exit-code"]))
    .ok();
    assert_eq!(
        status_json(&by_psql, &pkg_args),
        status_json(&by_up, &pkg_args)
    );
    let report = run(strata(&by_psql).args(pkg_args).args(["up", "--json"]))
        .ok()
        .json();
    assert_eq!(report["outcome"], "noop", "{report}");
    assert_eq!(user_schema(&by_psql), user_schema(&by_up));
}
