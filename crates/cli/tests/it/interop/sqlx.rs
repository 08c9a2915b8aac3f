//! Against sqlx's own migrator (`sqlx::migrate::Migrator`, what `sqlx migrate run` runs): sqlx applies a folder,
//! `strata adopt` takes over (checking sqlx's SHA-384 checksums) and `strata up --dir` continues; and the reverse,
//! `strata export --to sqlx` applied by sqlx. The `sqlx` crate is a dev-dependency: building it costs CI about a
//! quarter of what `cargo install sqlx-cli` would.

use std::path::Path;

use sqlx::Connection;

use super::{
    assert_contains, export_package, schema_lines, shop_indexes, shop_with_concurrent_indexes,
    strata, tool_url, write,
};
use crate::support::run;

/// `sqlx migrate run --source DIR` on the test database.
async fn run_sqlx(db: &pgtest::TestDb, dir: &Path) {
    let migrator = sqlx::migrate::Migrator::new(dir)
        .await
        .unwrap_or_else(|e| panic!("sqlx reads {}: {e}", dir.display()));
    // sqlx takes a Unix socket directory in `host=`.
    let mut conn = sqlx::PgConnection::connect(&tool_url(db, "localhost", "host"))
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
fn public_schema(db: &pgtest::TestDb) -> String {
    schema_lines(
        db,
        &[
            "--no-owner",
            "--schema=public",
            "--exclude-table=public._sqlx_migrations",
            db.name(),
        ],
    )
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
    let out = run(strata(&db)
        .args(["adopt", "--from", "sqlx", "--dir"])
        .arg(&dir))
    .ok();
    assert_contains(&out.stdout, &["Recorded 10 migration(s)"]);
    assert_contains(&out.stdout, &["5 migration(s) not applied yet"]);

    let out = run(strata(&db).args(["up", "--dir"]).arg(&dir)).ok();
    assert_contains(&out.stdout, &["Applied 5 migration(s)"]);

    // The same 15 migrations applied by sqlx alone give the same schema.
    let reference = pgtest::TestDb::new().await;
    run_sqlx(&reference, &dir).await;
    assert_eq!(public_schema(&db), public_schema(&reference));

    // A file edited after sqlx applied it: adoption refuses (sqlx's checksum no longer matches).
    let edited = pgtest::TestDb::new().await;
    let first = tmp.path().join("first");
    sqlx_project(&first, 3);
    run_sqlx(&edited, &first).await;
    let file = first.join("20240101000002_column_2.sql");
    write(&file, "ALTER TABLE hub ADD COLUMN c2 bigint;\n");
    let out = run(strata(&edited)
        .args(["adopt", "--from", "sqlx", "--dir"])
        .arg(&first));
    assert_ne!(out.code, 0, "{}", out.stdout);
    assert_contains(&out.stderr, &["20240101000002_column_2"]);
}

#[tokio::test]
async fn export_to_sqlx_then_sqlx_applies_it() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop_with_concurrent_indexes(tmp.path());
    let out_dir = tmp.path().join("exported");
    let db = pgtest::TestDb::new().await;
    export_package(&db, &pkg, "sqlx", &out_dir);
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
