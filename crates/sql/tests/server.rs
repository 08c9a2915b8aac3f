//! Against a real PostgreSQL server: split statements run one by one, and the no-transaction
//! rules agree with the server's own `PreventInTransactionBlock`.

use pgstrata_sql::{non_transactional_reason, split};
use tokio_postgres::error::SqlState;

#[tokio::test]
async fn split_statements_run_one_by_one() {
    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    let sql = include_str!("data/valid_tricky.sql");
    let script = split(sql);
    assert!(script.errors.is_empty(), "{:?}", script.errors);
    assert_eq!(script.statements.len(), 15);
    for statement in &script.statements {
        let text = statement.text(sql);
        if let Err(e) = client.batch_execute(text).await {
            panic!("{text}\n-> {e:?}");
        }
    }
    let rows = client
        .query(
            "SELECT \"col;umn\" FROM \"odd;schema\".\"my;table\" ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let values: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    // The procedure ran before the trigger existed; the rule inserted two rows, one was deleted.
    assert_eq!(values, ["from p;", "x;", "b;;"]);
}

/// Run `statement` inside a transaction block; true when the server refuses it with 25001.
async fn refused_in_transaction(client: &tokio_postgres::Client, statement: &str) -> bool {
    if let Err(e) = client.batch_execute("BEGIN").await {
        panic!("BEGIN: {e}");
    }
    let result = client.batch_execute(statement).await;
    if let Err(e) = client.batch_execute("ROLLBACK").await {
        panic!("ROLLBACK: {e}");
    }
    match result {
        Ok(()) => false,
        Err(e) => e.code() == Some(&SqlState::ACTIVE_SQL_TRANSACTION),
    }
}

#[tokio::test]
async fn no_transaction_rules_match_the_server() {
    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE t (a int, b int);
             CREATE INDEX i ON t (a);
             CREATE TABLE p (a int) PARTITION BY RANGE (a);
             CREATE TABLE c PARTITION OF p FOR VALUES FROM (1) TO (10);
             CREATE SCHEMA app;
             CREATE TYPE mood AS ENUM ('y');
             CREATE PUBLICATION pub FOR TABLE t;",
        )
        .await
        .unwrap();
    let name = db.name();
    let statements = [
        "CREATE INDEX CONCURRENTLY i2 ON t (a)".to_string(),
        "CREATE INDEX i3 ON t (b)".to_string(),
        "DROP INDEX CONCURRENTLY i".to_string(),
        "DROP INDEX i".to_string(),
        "REINDEX TABLE CONCURRENTLY t".to_string(),
        "REINDEX (CONCURRENTLY) INDEX i".to_string(),
        "REINDEX (CONCURRENTLY false) INDEX i".to_string(),
        "REINDEX TABLE t".to_string(),
        format!("REINDEX DATABASE {name}"),
        format!("REINDEX SYSTEM {name}"),
        "REINDEX (VERBOSE) SCHEMA app".to_string(),
        "VACUUM".to_string(),
        "VACUUM (ANALYZE) t".to_string(),
        "ANALYZE t".to_string(),
        "ALTER SYSTEM SET work_mem = '1MB'".to_string(),
        "CREATE DATABASE never_created".to_string(),
        "DROP DATABASE IF EXISTS never_created".to_string(),
        "CREATE TABLESPACE never_created LOCATION '/nonexistent'".to_string(),
        "DROP TABLESPACE IF EXISTS never_created".to_string(),
        format!("ALTER DATABASE {name} SET TABLESPACE pg_default"),
        format!("ALTER DATABASE {name} SET work_mem = '1MB'"),
        "ALTER TABLE p DETACH PARTITION c CONCURRENTLY".to_string(),
        "ALTER TABLE p DETACH PARTITION c".to_string(),
        "ALTER TYPE mood ADD VALUE 'n'".to_string(),
        "CLUSTER".to_string(),
        "CLUSTER VERBOSE".to_string(),
        "CLUSTER t USING i".to_string(),
        "DISCARD ALL".to_string(),
        "DISCARD PLANS".to_string(),
        "COMMIT PREPARED 'nope'".to_string(),
        "ROLLBACK PREPARED 'nope'".to_string(),
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=none' PUBLICATION pub".to_string(),
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=none' PUBLICATION pub WITH (copy_data = false)"
            .to_string(),
        "CREATE SUBSCRIPTION s CONNECTION 'dbname=none' PUBLICATION pub \
         WITH (connect = false, create_slot = false, slot_name = NONE, enabled = false)"
            .to_string(),
    ];
    for statement in &statements {
        let script = split(statement);
        assert_eq!(script.statements.len(), 1, "{statement}");
        let ours = non_transactional_reason(statement, &script.statements[0]);
        let server = refused_in_transaction(&client, statement).await;
        assert_eq!(ours.is_some(), server, "{statement}: we say {ours:?}");
    }
}
