//! Against sqlx's own migrator (`sqlx::migrate::Migrator`, what `sqlx migrate run` runs): sqlx applies a folder,
//! `strata adopt` takes over (checking sqlx's SHA-384 checksums) and `strata up --dir` continues; and the reverse,
//! `strata export --to sqlx` applied by sqlx. The `sqlx` crate is a dev-dependency: building it costs CI about a
//! quarter of what `cargo install sqlx-cli` would.

use std::path::Path;
use std::process::Command;

use sqlx::Connection;

use super::{shop_indexes, shop_with_concurrent_indexes, stdout, strata, write};

/// sqlx's URL for the test database (a Unix socket directory goes in `host=`).
fn sqlx_url(db: &pgtest::TestDb) -> String {
    let env: std::collections::HashMap<String, String> = db.env().into_iter().collect();
    let host = env.get("PGHOST").cloned().unwrap_or_default();
    let port = env.get("PGPORT").cloned().unwrap_or_else(|| "5432".into());
    let user = env
        .get("PGUSER")
        .cloned()
        .unwrap_or_else(|| "postgres".into());
    if host.starts_with('/') {
        format!(
            "postgres://{user}@localhost/{}?host={host}&port={port}&sslmode=disable",
            db.name()
        )
    } else {
        format!(
            "postgres://{user}@{host}:{port}/{}?sslmode=disable",
            db.name()
        )
    }
}

/// `sqlx migrate run --source DIR` on the test database.
async fn run_sqlx(db: &pgtest::TestDb, dir: &Path) {
    let migrator = sqlx::migrate::Migrator::new(dir)
        .await
        .unwrap_or_else(|e| panic!("sqlx reads {}: {e}", dir.display()));
    let mut conn = sqlx::PgConnection::connect(&sqlx_url(db))
        .await
        .expect("sqlx connects");
    migrator
        .run(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("sqlx migrate run: {e}"));
    conn.close().await.expect("sqlx disconnects");
}

/// `count` sqlx migrations: a table, columns, and every fifth one a `-- no-transaction` index build.
fn sqlx_project(dir: &Path, count: usize) {
    for i in 1..=count {
        let (name, sql) = if i == 1 {
            (
                "hub",
                "CREATE TABLE hub (id bigint PRIMARY KEY);\n".to_string(),
            )
        } else if i % 5 == 0 {
            (
                "index",
                format!("-- no-transaction\nCREATE INDEX CONCURRENTLY hub_{i} ON hub (id);\n"),
            )
        } else {
            (
                "column",
                format!(
                    "ALTER TABLE hub ADD COLUMN c{i} int;\nCOMMENT ON COLUMN hub.c{i} IS 'c{i}';\n"
                ),
            )
        };
        write(
            &dir.join(format!("{}_{name}_{i}.sql", 20240101000000u64 + i as u64)),
            &sql,
        );
    }
}

/// The `public` schema's DDL, without sqlx's tracking table.
async fn public_schema(db: &pgtest::TestDb) -> String {
    let out = Command::new(pgtest::tool("pg_dump"))
        .envs(db.env())
        .args([
            "--schema-only",
            "--no-owner",
            "--schema=public",
            "--exclude-table=public._sqlx_migrations",
            db.name(),
        ])
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
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test]
async fn sqlx_then_adopt_then_strata_gives_the_schema_sqlx_gives() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("migrations");
    sqlx_project(&dir, 10);
    let db = pgtest::TestDb::new().await;
    run_sqlx(&db, &dir).await;

    sqlx_project(&dir, 15);
    let out = strata(&db)
        .args(["adopt", "--from", "sqlx", "--dir"])
        .arg(&dir)
        .output()
        .expect("adopt");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = stdout(&out);
    assert!(text.contains("Recorded 10 migration(s)"), "{text}");
    assert!(text.contains("5 migration(s) not applied yet"), "{text}");

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

    // The same 15 migrations applied by sqlx alone give the same schema.
    let reference = pgtest::TestDb::new().await;
    run_sqlx(&reference, &dir).await;
    assert_eq!(public_schema(&db).await, public_schema(&reference).await);

    // A file edited after sqlx applied it: adoption refuses (sqlx's checksum no longer matches).
    let edited = pgtest::TestDb::new().await;
    let first = tmp.path().join("first");
    sqlx_project(&first, 3);
    run_sqlx(&edited, &first).await;
    let file = first.join("20240101000002_column_2.sql");
    write(&file, "ALTER TABLE hub ADD COLUMN c2 bigint;\n");
    let out = strata(&edited)
        .args(["adopt", "--from", "sqlx", "--dir"])
        .arg(&first)
        .output()
        .expect("adopt edited");
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("20240101000002_column_2"), "{err}");
}

#[tokio::test]
async fn export_to_sqlx_then_sqlx_applies_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop_with_concurrent_indexes(tmp.path());
    let out_dir = tmp.path().join("exported");
    let db = pgtest::TestDb::new().await;
    let out = strata(&db)
        .arg("-p")
        .arg(&pkg)
        .args(["export", "--to", "sqlx"])
        .arg(&out_dir)
        .output()
        .expect("export");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    run_sqlx(&db, &out_dir).await;
    run_sqlx(&db, &out_dir).await;
    assert_eq!(
        shop_indexes(&db).await,
        ["item_id", "item_name", "item_pkey"]
    );
    let applied: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM _sqlx_migrations WHERE success", &[])
        .await
        .expect("sqlx history")
        .get(0);
    assert!(applied >= 3, "sqlx recorded {applied} migration(s)");
}
