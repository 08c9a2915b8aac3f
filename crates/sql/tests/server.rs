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

/// The server's major version (`server_version_num` / 10000).
#[allow(clippy::unwrap_used, reason = "test helper")]
async fn server_major(client: &tokio_postgres::Client) -> u32 {
    let num: i32 = client
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    (num / 10_000) as u32
}

/// Every feature of the catalogue runs from its version on; before, the server refuses it and the hint names a
/// version that accepts it. Run against each supported server (the CI matrix), this checks every `since`.
#[tokio::test]
async fn newer_sql_runs_from_its_version_on_and_older_servers_get_the_hint() {
    use pgstrata_sql::versions::{FEATURES, newer_server_hint, refused_feature};
    use tokio_postgres::error::ErrorPosition;

    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    let major = server_major(&client).await;
    for feature in FEATURES {
        client.batch_execute("BEGIN").await.unwrap();
        let result = client.batch_execute(feature.example).await;
        client.batch_execute("ROLLBACK").await.unwrap();
        match result {
            Ok(()) => assert!(
                major >= feature.since,
                "{}: PostgreSQL {major} ran it, but the catalogue says {}",
                feature.name,
                feature.since
            ),
            Err(e) => {
                let db_error = e
                    .as_db_error()
                    .unwrap_or_else(|| panic!("{}: {e}", feature.name));
                assert!(
                    major < feature.since,
                    "{}: PostgreSQL {major} refused it: {db_error:?}",
                    feature.name
                );
                let at = match db_error.position() {
                    Some(ErrorPosition::Original(p)) => Some(pgstrata_sql::char_position_to_byte(
                        feature.example,
                        *p as usize,
                    )),
                    _ => None,
                };
                let (code, message) = (db_error.code().code(), db_error.message());
                let refused =
                    refused_feature(feature.example, at, code, message).unwrap_or_else(|| {
                        panic!("{}: no hint for {code} {message} at {at:?}", feature.name)
                    });
                // An earlier feature of the same example may be what the server stumbled on first.
                assert!(
                    major < refused.since && refused.since <= feature.since,
                    "{}: the hint names {} ({})",
                    feature.name,
                    refused.name,
                    refused.since
                );
                let hint = newer_server_hint(feature.example, at, code, message).unwrap();
                assert!(
                    hint.contains(&format!("new in PostgreSQL {}", refused.since)),
                    "{hint}"
                );
            }
        }
    }
}

/// The lock levels, rewrites and scans the analysis reports are what the server does, on each version: the lock
/// the statement holds on each relation (from `pg_locks`, inside the transaction) and whether the table got a
/// new file (a rewrite). Statements a version refuses must be ones the version catalogue knows.
#[tokio::test]
async fn lock_analysis_matches_the_server() {
    use pgstrata_sql::locks;
    use pgstrata_sql::versions::refused_feature;

    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    let major = server_major(&client).await;
    let statements = [
        "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (a * 2) STORED",
        "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (a * 2) VIRTUAL",
        "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (a * 2)",
        "ALTER TABLE t ADD COLUMN x int DEFAULT 0",
        "ALTER TABLE t ADD COLUMN x uuid DEFAULT gen_random_uuid()",
        "ALTER TABLE t ADD COLUMN id bigint GENERATED ALWAYS AS IDENTITY",
        "ALTER TABLE t ADD COLUMN y int REFERENCES r (id)",
        "ALTER TABLE t ALTER COLUMN c SET COMPRESSION pglz",
        "ALTER TABLE t ALTER COLUMN c SET STORAGE EXTERNAL",
        "ALTER TABLE t ADD CONSTRAINT nn NOT NULL a NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT nn NOT NULL a",
        "ALTER TABLE t ALTER COLUMN a SET NOT NULL",
        "ALTER TABLE t ALTER COLUMN a DROP NOT NULL",
        "ALTER TABLE t ALTER COLUMN a SET STATISTICS 100",
        "ALTER TABLE t ALTER COLUMN a SET (n_distinct = 1)",
        "ALTER TABLE t ALTER COLUMN a SET DEFAULT 1",
        "ALTER TABLE t ALTER COLUMN d TYPE bigint",
        "ALTER TABLE t ALTER COLUMN g2 SET EXPRESSION AS (a * 3)",
        "ALTER TABLE t ALTER COLUMN g2 DROP EXPRESSION",
        "ALTER TABLE t SET (fillfactor = 70)",
        "ALTER TABLE t SET (autovacuum_enabled = false)",
        "ALTER TABLE t CLUSTER ON t_a",
        "ALTER TABLE t REPLICA IDENTITY FULL",
        "ALTER TABLE t ENABLE ROW LEVEL SECURITY",
        "ALTER TABLE t ADD CONSTRAINT fk FOREIGN KEY (a) REFERENCES r (id) NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT ck2 CHECK (a > 0) NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT ck3 CHECK (a > 0) NOT ENFORCED",
        "ALTER TABLE t ADD CONSTRAINT uq UNIQUE NULLS NOT DISTINCT (a)",
        "ALTER TABLE t ADD PRIMARY KEY USING INDEX t_a_u",
        "ALTER TABLE t VALIDATE CONSTRAINT ck",
        "ALTER TABLE t SET UNLOGGED",
        "ALTER TABLE t DISABLE TRIGGER ALL",
        "ALTER TABLE t INHERIT parent",
        "ALTER TABLE t RENAME COLUMN b TO bb",
        "ALTER TABLE t RENAME TO t2",
        "ALTER TABLE p ATTACH PARTITION c2 FOR VALUES FROM (10) TO (20)",
        "ALTER INDEX t_a SET (fillfactor = 70)",
        "ALTER INDEX t_a RENAME TO t_a2",
        "CREATE INDEX t_b ON t (b)",
        "CREATE STATISTICS st ON a, b FROM t",
        "CREATE TRIGGER tr BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()",
        "COMMENT ON TABLE t IS 'x'",
        "MERGE INTO t USING r ON t.a = r.id WHEN MATCHED THEN DELETE",
        "REINDEX TABLE t",
        "ANALYZE t",
        "CLUSTER t USING t_a",
        "REFRESH MATERIALIZED VIEW mv",
    ];
    let mode_name = |pg: &str| -> String {
        // pg_locks says "ShareUpdateExclusiveLock"; the analysis "SHARE UPDATE EXCLUSIVE".
        let words: Vec<String> = pg
            .trim_end_matches("Lock")
            .split_inclusive(|c: char| c.is_ascii_lowercase())
            .collect::<String>()
            .chars()
            .fold(Vec::new(), |mut words: Vec<String>, c| {
                if c.is_ascii_uppercase() || words.is_empty() {
                    words.push(String::new());
                }
                if let Some(last) = words.last_mut() {
                    last.push(c.to_ascii_uppercase());
                }
                words
            });
        words.join(" ")
    };
    let mut mismatches = Vec::new();
    for (i, statement) in statements.iter().enumerate() {
        let schema = format!("lock_{i}");
        client
            .batch_execute(&format!(
                "CREATE SCHEMA {schema}; SET search_path = {schema};
                 CREATE TABLE r (id int PRIMARY KEY);
                 CREATE TABLE parent (a int, b int, c text);
                 CREATE TABLE t (a int, b int CHECK (b > 0), c text, d int, g2 int GENERATED ALWAYS AS (a * 2) STORED,
                                 CONSTRAINT ck CHECK (b > 0));
                 INSERT INTO t (a, b, c) VALUES (1, 1, 'x');
                 CREATE INDEX t_a ON t (a);
                 CREATE UNIQUE INDEX t_a_u ON t (a);
                 CREATE TABLE p (a int) PARTITION BY RANGE (a);
                 CREATE TABLE c2 (a int);
                 CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
                 CREATE MATERIALIZED VIEW mv AS SELECT a FROM t;"
            ))
            .await
            .unwrap();
        let ours = locks::analyze_for(statement, &[], major);
        let ours = &ours[0];
        let mut oids = Vec::new();
        for lock in &ours.locks {
            let oid: u32 = client
                .query_one(&format!("SELECT '{}'::regclass::oid", lock.relation), &[])
                .await
                .unwrap()
                .get(0);
            oids.push(oid);
        }
        let file_before: u32 = client
            .query_one(
                "SELECT relfilenode::int4::oid FROM pg_class WHERE oid = 't'::regclass",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        client.batch_execute("BEGIN").await.unwrap();
        match client.batch_execute(statement).await {
            Ok(()) => {
                for (lock, oid) in ours.locks.iter().zip(&oids) {
                    let held: Vec<String> = client
                        .query(
                            "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND locktype = 'relation' \
                             AND relation = $1",
                            &[oid],
                        )
                        .await
                        .unwrap()
                        .iter()
                        .map(|r| mode_name(r.get(0)))
                        .collect();
                    if !held.iter().any(|m| m == lock.mode.name()) {
                        mismatches.push(format!(
                            "{statement}: we say {} on {}, the server holds {held:?}",
                            lock.mode.name(),
                            lock.relation
                        ));
                    }
                }
                let file_after: Option<u32> = client
                    .query_opt(
                        "SELECT relfilenode::int4::oid FROM pg_class WHERE oid = $1",
                        &[&oids.first().copied().unwrap_or_default()],
                    )
                    .await
                    .unwrap()
                    .map(|r| r.get(0));
                let table_is_t = ours
                    .locks
                    .first()
                    .is_some_and(|l| l.relation.to_string() == "t");
                if table_is_t && (file_after != Some(file_before)) != ours.rewrite.is_some() {
                    mismatches.push(format!(
                        "{statement}: we say rewrite {:?}, the table's file {} changed",
                        ours.rewrite,
                        if file_after == Some(file_before) {
                            "has not"
                        } else {
                            "has"
                        }
                    ));
                }
            }
            Err(e) => {
                let db_error = e.as_db_error().unwrap();
                let at = match db_error.position() {
                    Some(tokio_postgres::error::ErrorPosition::Original(p)) => {
                        Some(pgstrata_sql::char_position_to_byte(statement, *p as usize))
                    }
                    _ => None,
                };
                let refused =
                    refused_feature(statement, at, db_error.code().code(), db_error.message());
                if refused.is_none_or(|f| f.since <= major) {
                    mismatches.push(format!("{statement}: refused ({db_error}), not by version"));
                }
            }
        }
        client
            .batch_execute("ROLLBACK; RESET search_path")
            .await
            .unwrap();
    }
    assert!(
        mismatches.is_empty(),
        "PostgreSQL {major}:\n{}",
        mismatches.join("\n")
    );
}
