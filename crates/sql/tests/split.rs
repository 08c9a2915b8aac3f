//! Statement splitting, classification and the no-transaction rules.

use pgstrata_sql::{
    LineIndex, Script, Statement, StatementKind, check, non_transactional_reason, normalize, split,
};

fn texts<'a>(sql: &'a str, script: &Script) -> Vec<&'a str> {
    script.statements.iter().map(|s| s.text(sql)).collect()
}

/// One line per statement and error, with line:col, for snapshots.
fn render(sql: &str) -> String {
    let script = split(sql);
    let index = LineIndex::new(sql);
    let mut out = String::new();
    for statement in &script.statements {
        let at = index.line_col(statement.range.start);
        let mut text: String = statement.text(sql).replace('\n', "⏎");
        if text.chars().count() > 70 {
            text = text.chars().take(67).collect::<String>() + "...";
        }
        out.push_str(&format!(
            "{}:{} {:?} {:?}\n    {}\n",
            at.line, at.col, statement.range, statement.kind, text
        ));
        if let Some(reason) = non_transactional_reason(sql, statement) {
            out.push_str(&format!("    no transaction: {reason}\n"));
        }
    }
    for error in &script.errors {
        let at = index.line_col(error.range.start);
        out.push_str(&format!(
            "error {}:{} {:?}: {}\n",
            at.line, at.col, error.range, error.message
        ));
    }
    out
}

#[test]
fn fixture_snapshot() {
    let sql = include_str!("data/tricky.sql");
    insta::assert_snapshot!(render(sql));
}

#[test]
fn tricky_splitting_table() {
    let cases: &[(&str, &[&str])] = &[
        ("SELECT 1; SELECT 2", &["SELECT 1;", "SELECT 2"]),
        ("-- a; b\nSELECT 1; -- c; d\n", &["SELECT 1;"]),
        ("/* a; /* b; */ c; */ SELECT 1;", &["SELECT 1;"]),
        (
            "SELECT E'\\';'; SELECT 2;",
            &["SELECT E'\\';';", "SELECT 2;"],
        ),
        (
            "SELECT 'a'';b'; SELECT 2;",
            &["SELECT 'a'';b';", "SELECT 2;"],
        ),
        (
            "SELECT $a$ $b$ ; $b$ ; $a$; SELECT 2;",
            &["SELECT $a$ $b$ ; $b$ ; $a$;", "SELECT 2;"],
        ),
        (
            "SELECT $$;$$, $x$;$x$; SELECT 2",
            &["SELECT $$;$$, $x$;$x$;", "SELECT 2"],
        ),
        (
            "SELECT \"a;b\", \"c\"\";\" FROM t; SELECT 2;",
            &["SELECT \"a;b\", \"c\"\";\" FROM t;", "SELECT 2;"],
        ),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END; SELECT 2;",
            &[
                "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END;",
                "SELECT 2;",
            ],
        ),
        (
            "create or replace procedure p() begin atomic select case when true then 1 end; select 2; end; select 3;",
            &[
                "create or replace procedure p() begin atomic select case when true then 1 end; select 2; end;",
                "select 3;",
            ],
        ),
        (
            // BEGIN as a transaction statement is not a block.
            "BEGIN; SELECT 1; END; SELECT 2;",
            &["BEGIN;", "SELECT 1;", "END;", "SELECT 2;"],
        ),
        (
            "CREATE INDEX CONCURRENTLY a ON t (x);\nCREATE INDEX CONCURRENTLY b ON t (y);\n",
            &[
                "CREATE INDEX CONCURRENTLY a ON t (x);",
                "CREATE INDEX CONCURRENTLY b ON t (y);",
            ],
        ),
        ("SELECT 1;\r\nSELECT 2;\r\n", &["SELECT 1;", "SELECT 2;"]),
        ("\u{feff}SELECT 1;\nSELECT 2;", &["SELECT 1;", "SELECT 2;"]),
        ("SELECT 1;;; ;SELECT 2", &["SELECT 1;", "SELECT 2"]),
        ("", &[]),
        ("  -- only a comment\n", &[]),
        ("SELECT 1 /* trailing */", &["SELECT 1"]),
        (
            "CREATE RULE r AS ON INSERT TO v DO INSTEAD (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2)); SELECT 1;",
            &[
                "CREATE RULE r AS ON INSERT TO v DO INSTEAD (INSERT INTO a VALUES (1); INSERT INTO b VALUES (2));",
                "SELECT 1;",
            ],
        ),
        // Parameters named like block keywords sit inside parentheses and do not count.
        (
            "CREATE FUNCTION f(\"begin\" int, case_ int) RETURNS int LANGUAGE sql RETURN 1; SELECT 2;",
            &[
                "CREATE FUNCTION f(\"begin\" int, case_ int) RETURNS int LANGUAGE sql RETURN 1;",
                "SELECT 2;",
            ],
        ),
    ];
    for (sql, expected) in cases {
        let script = split(sql);
        assert_eq!(texts(sql, &script), *expected, "splitting {sql:?}");
    }
}

#[test]
fn unknown_syntax_in_the_middle_keeps_ranges() {
    let sql = "CREATE TABLE a (id int);\n\
               ALTER TABLE a TELEPORT TO (somewhere = 'far; away') WITH GUSTO;\n\
               CREATE FUTURE THING x (BEGIN ATOMIC END);\n\
               CREATE TABLE b (id int);\n\
               INSERT INTO b VALUES (1);";
    let script = split(sql);
    assert_eq!(
        texts(sql, &script),
        [
            "CREATE TABLE a (id int);",
            "ALTER TABLE a TELEPORT TO (somewhere = 'far; away') WITH GUSTO;",
            "CREATE FUTURE THING x (BEGIN ATOMIC END);",
            "CREATE TABLE b (id int);",
            "INSERT INTO b VALUES (1);",
        ]
    );
    let kinds: Vec<_> = script.statements.iter().map(|s| s.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            StatementKind::CreateTable,
            StatementKind::AlterTable,
            StatementKind::Other("CREATE FUTURE".into()),
            StatementKind::CreateTable,
            StatementKind::Insert,
        ]
    );
    // Squawk complains, but only inside the two unknown statements.
    assert!(!script.errors.is_empty());
    let unknown = script.statements[1].range.start..script.statements[2].range.end;
    for error in &script.errors {
        assert!(
            unknown.contains(&error.range.start),
            "error outside the unknown statements: {error:?}"
        );
    }
}

#[test]
fn statement_without_semicolon_ends_at_last_token() {
    let sql = "SELECT 1;\nSELECT 2  -- done\n\n";
    let script = split(sql);
    let last = &script.statements[1];
    assert_eq!(last.text(sql), "SELECT 2");
    assert_eq!(last.range.end, sql.find("  --").unwrap());
}

#[test]
fn crlf_and_bom_files() {
    let crlf = "CREATE TABLE t (a text DEFAULT 'x;\r\ny');\r\n-- c\r\nSELECT 1;\r\n";
    let script = split(crlf);
    assert_eq!(
        texts(crlf, &script),
        ["CREATE TABLE t (a text DEFAULT 'x;\r\ny');", "SELECT 1;"]
    );
    let index = LineIndex::new(crlf);
    assert_eq!(index.line_col(script.statements[1].range.start).line, 4);

    let bom = "\u{feff}-- header\nSELECT 1;";
    let script = split(bom);
    assert_eq!(
        script.statements[0].range.start,
        bom.find("SELECT").unwrap()
    );
    assert!(script.errors.is_empty(), "{:?}", script.errors);
    // Normalising first gives the same statements.
    let normalized = normalize(crlf);
    let again = split(&normalized);
    assert_eq!(
        texts(&normalized, &again),
        ["CREATE TABLE t (a text DEFAULT 'x;\ny');", "SELECT 1;"]
    );
}

#[test]
fn syntax_errors_are_positioned_in_the_script() {
    let sql = "SELECT 1;\nSELECT 1 +;\nSELECT 3;";
    let script = split(sql);
    assert_eq!(script.statements.len(), 3);
    assert_eq!(script.errors.len(), 1, "{:?}", script.errors);
    let error = &script.errors[0];
    assert_eq!(error.range.start, sql.find("+;").unwrap() + 1);
    assert!(
        error.message.contains("expected an expression"),
        "{error:?}"
    );
}

#[test]
fn unterminated_literals_are_errors() {
    for (sql, fragment) in [
        ("SELECT 1; SELECT 'abc", "'abc"),
        ("SELECT 1; SELECT $$ abc", "$$ abc"),
        ("SELECT 1; SELECT \"abc", "\"abc"),
        ("SELECT 1; /* abc", "/* abc"),
        ("SELECT 1 /* abc", "/* abc"),
    ] {
        let script = split(sql);
        let at = sql.find(fragment).unwrap();
        assert!(
            script.errors.iter().any(|e| e.range.start == at),
            "{sql:?}: {:?}",
            script.errors
        );
    }
}

#[test]
fn check_adds_validation_and_sql_body_errors() {
    let sql = "SELECT 1;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELECT FROM WHERE $$;";
    assert!(split(sql).errors.is_empty());
    let errors = check(sql);
    assert!(!errors.is_empty());
    let body = sql.find("$$ SELECT").unwrap();
    assert!(errors.iter().all(|e| e.range.start > body), "{errors:?}");
    // A clean script stays clean.
    assert!(check(include_str!("data/clean.sql")).is_empty());
}

#[test]
fn classification() {
    use StatementKind::*;
    let cases: &[(&str, StatementKind)] = &[
        (
            "create or replace function f() returns int language sql return 1",
            CreateFunction,
        ),
        (
            "CREATE PROCEDURE p() LANGUAGE sql AS 'SELECT 1'",
            CreateProcedure,
        ),
        (
            "CREATE OR REPLACE TEMP RECURSIVE VIEW v(n) AS SELECT 1",
            CreateView,
        ),
        (
            "CREATE MATERIALIZED VIEW mv AS SELECT 1",
            CreateMaterializedView,
        ),
        (
            "CREATE CONSTRAINT TRIGGER t AFTER INSERT ON x FOR EACH ROW EXECUTE FUNCTION f()",
            CreateTrigger,
        ),
        (
            "CREATE OR REPLACE TRIGGER t AFTER INSERT ON x EXECUTE FUNCTION f()",
            CreateTrigger,
        ),
        (
            "CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f()",
            Other("CREATE EVENT TRIGGER".into()),
        ),
        ("COMMENT ON COLUMN t.a IS 'x'", CommentOn),
        ("CREATE UNLOGGED TABLE t (a int)", CreateTable),
        ("CREATE GLOBAL TEMPORARY TABLE t AS SELECT 1", CreateTable),
        ("ALTER TABLE IF EXISTS t ADD COLUMN b int", AlterTable),
        (
            "CREATE INDEX i ON t (a)",
            CreateIndex {
                concurrently: false,
            },
        ),
        (
            "create unique index concurrently i on t (a)",
            CreateIndex { concurrently: true },
        ),
        (
            "DROP INDEX i",
            DropIndex {
                concurrently: false,
            },
        ),
        (
            "DROP INDEX CONCURRENTLY i",
            DropIndex { concurrently: true },
        ),
        (
            "REINDEX TABLE t",
            Reindex {
                concurrently: false,
            },
        ),
        (
            "REINDEX INDEX CONCURRENTLY i",
            Reindex { concurrently: true },
        ),
        (
            "REINDEX (VERBOSE, CONCURRENTLY) TABLE t",
            Reindex { concurrently: true },
        ),
        (
            "REINDEX (CONCURRENTLY false) TABLE t",
            Reindex {
                concurrently: false,
            },
        ),
        ("VACUUM FULL t", Vacuum),
        ("ALTER SYSTEM RESET ALL", AlterSystem),
        ("CREATE DATABASE d", CreateDatabase),
        ("DROP DATABASE d WITH (FORCE)", DropDatabase),
        (
            "ALTER TYPE mood ADD VALUE 'x' BEFORE 'y'",
            AlterTypeAddValue,
        ),
        (
            "ALTER TYPE mood RENAME VALUE 'x' TO 'y'",
            Other("ALTER TYPE".into()),
        ),
        ("DO $$ BEGIN END $$", Do),
        ("BEGIN ISOLATION LEVEL SERIALIZABLE", Begin),
        ("START TRANSACTION", Begin),
        ("COMMIT AND CHAIN", Commit),
        ("END TRANSACTION", Commit),
        ("COMMIT PREPARED 'x'", Other("COMMIT PREPARED".into())),
        ("ROLLBACK", Rollback),
        ("ABORT WORK", Rollback),
        (
            "ROLLBACK WORK TO SAVEPOINT a",
            Other("ROLLBACK TO SAVEPOINT".into()),
        ),
        ("ROLLBACK PREPARED 'x'", Other("ROLLBACK PREPARED".into())),
        ("SET search_path TO app", Set),
        ("SET LOCAL statement_timeout = 0", Set),
        ("select 1", Select),
        ("TABLE t", Select),
        ("VALUES (1)", Select),
        ("((SELECT 1))", Select),
        ("WITH a AS (SELECT 1) SELECT * FROM a", Select),
        ("WITH a AS (SELECT 1) INSERT INTO t SELECT * FROM a", Insert),
        (
            "WITH a AS MATERIALIZED (INSERT INTO x VALUES (1) RETURNING *) UPDATE t SET a = 1",
            Update,
        ),
        ("WITH a AS (SELECT 1) DELETE FROM t", Delete),
        (
            "WITH a AS (SELECT 1) MERGE INTO t USING a ON true WHEN MATCHED THEN DO NOTHING",
            Other("MERGE".into()),
        ),
        ("INSERT INTO t VALUES (1)", Insert),
        ("UPDATE t SET a = 1", Update),
        ("DELETE FROM t", Delete),
        (
            "CREATE SCHEMA IF NOT EXISTS app",
            Other("CREATE SCHEMA".into()),
        ),
        ("CREATE SCHEMA data", Other("CREATE SCHEMA".into())),
        (
            "GRANT SELECT ON ALL TABLES IN SCHEMA app TO r",
            Other("GRANT".into()),
        ),
        (
            "CREATE OR REPLACE RULE r AS ON INSERT TO t DO NOTHING",
            Other("CREATE RULE".into()),
        ),
        (
            "CREATE UNLOGGED SEQUENCE s",
            Other("CREATE SEQUENCE".into()),
        ),
        (
            "CREATE FOREIGN DATA WRAPPER w",
            Other("CREATE FOREIGN DATA WRAPPER".into()),
        ),
        (
            "CREATE TEXT SEARCH DICTIONARY d (TEMPLATE = simple)",
            Other("CREATE TEXT SEARCH DICTIONARY".into()),
        ),
        (
            "ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO r",
            Other("ALTER DEFAULT PRIVILEGES".into()),
        ),
        (
            "ALTER MATERIALIZED VIEW mv RENAME TO mv2",
            Other("ALTER MATERIALIZED VIEW".into()),
        ),
        ("DROP TABLE t", Other("DROP TABLE".into())),
        ("DROP OWNED BY r", Other("DROP OWNED".into())),
        (
            "REFRESH MATERIALIZED VIEW mv",
            Other("REFRESH MATERIALIZED VIEW".into()),
        ),
        ("TRUNCATE t", Other("TRUNCATE".into())),
        ("CALL p()", Other("CALL".into())),
        ("\\set x 1", Other("\\".into())),
    ];
    for (sql, expected) in cases {
        let script = split(sql);
        assert_eq!(script.statements.len(), 1, "{sql}");
        assert_eq!(&script.statements[0].kind, expected, "{sql}");
    }
}

fn reason(sql: &str) -> Option<&'static str> {
    let script = split(sql);
    assert_eq!(script.statements.len(), 1, "{sql}");
    non_transactional_reason(sql, &script.statements[0])
}

#[test]
fn non_transactional_statements() {
    let yes = [
        (
            "CREATE INDEX CONCURRENTLY i ON t (a)",
            "CREATE INDEX CONCURRENTLY",
        ),
        ("DROP INDEX CONCURRENTLY i", "DROP INDEX CONCURRENTLY"),
        ("REINDEX TABLE CONCURRENTLY t", "REINDEX CONCURRENTLY"),
        ("REINDEX (CONCURRENTLY) INDEX i", "REINDEX CONCURRENTLY"),
        ("REINDEX DATABASE", "REINDEX DATABASE"),
        ("REINDEX (VERBOSE) SCHEMA app", "REINDEX SCHEMA"),
        ("REINDEX SYSTEM", "REINDEX SYSTEM"),
        ("VACUUM", "VACUUM"),
        ("vacuum (analyze) t", "VACUUM"),
        ("ALTER SYSTEM SET work_mem = '1MB'", "ALTER SYSTEM"),
        ("CREATE DATABASE d", "CREATE DATABASE"),
        ("DROP DATABASE d", "DROP DATABASE"),
        ("CREATE TABLESPACE s LOCATION '/x'", "CREATE TABLESPACE"),
        ("DROP TABLESPACE IF EXISTS s", "DROP TABLESPACE"),
        ("ALTER DATABASE d SET TABLESPACE s", "ALTER DATABASE"),
        (
            "ALTER TABLE p DETACH PARTITION c CONCURRENTLY",
            "DETACH PARTITION",
        ),
        (
            "ALTER TABLE IF EXISTS s.p DETACH PARTITION \"S\".c CONCURRENTLY",
            "DETACH PARTITION",
        ),
        ("CLUSTER", "CLUSTER"),
        ("CLUSTER VERBOSE", "CLUSTER"),
        ("CLUSTER (VERBOSE)", "CLUSTER"),
        ("DISCARD ALL", "DISCARD ALL"),
        ("COMMIT PREPARED 'x'", "COMMIT PREPARED"),
        ("ROLLBACK PREPARED 'x'", "ROLLBACK PREPARED"),
        (
            "CREATE SUBSCRIPTION s CONNECTION 'c' PUBLICATION p",
            "CREATE SUBSCRIPTION",
        ),
        (
            "CREATE SUBSCRIPTION s CONNECTION 'c' PUBLICATION p WITH (copy_data = false)",
            "CREATE SUBSCRIPTION",
        ),
        (
            "ALTER SUBSCRIPTION s REFRESH PUBLICATION",
            "REFRESH PUBLICATION",
        ),
        ("ALTER SUBSCRIPTION s SET PUBLICATION p", "PUBLICATION"),
    ];
    for (sql, phrase) in yes {
        let reason = reason(sql).unwrap_or_else(|| panic!("{sql} should need no transaction"));
        assert!(reason.contains(phrase), "{sql}: {reason}");
        assert!(
            reason.ends_with("cannot run inside a transaction block"),
            "{reason}"
        );
    }
    let no = [
        "CREATE INDEX i ON t (a)",
        "DROP INDEX i",
        "REINDEX TABLE t",
        "REINDEX INDEX i",
        "ALTER TYPE mood ADD VALUE 'x'",
        "ALTER DATABASE d SET work_mem = '1MB'",
        "ALTER TABLE p DETACH PARTITION c",
        "ALTER TABLE p DETACH PARTITION c FINALIZE",
        "CLUSTER t",
        "CLUSTER VERBOSE t USING i",
        "ANALYZE t",
        "DISCARD PLANS",
        "CREATE SUBSCRIPTION s CONNECTION 'c' PUBLICATION p WITH (create_slot = false, slot_name = NONE)",
        "CREATE SUBSCRIPTION s CONNECTION 'c' PUBLICATION p WITH (connect = 'off')",
        "ALTER SUBSCRIPTION s SET PUBLICATION p WITH (refresh = false)",
        "ALTER SUBSCRIPTION s DISABLE",
        "SELECT 'VACUUM'",
        "BEGIN",
        "COMMIT",
    ];
    for sql in no {
        assert_eq!(reason(sql), None, "{sql}");
    }
}

#[test]
fn statement_text_with_a_foreign_source_does_not_panic() {
    let statement = Statement {
        range: 5..50,
        kind: StatementKind::Vacuum,
    };
    assert_eq!(statement.text("short"), "");
    assert_eq!(statement.text("ab"), "");
    assert_eq!(
        non_transactional_reason("ab", &statement),
        Some("VACUUM cannot run inside a transaction block")
    );
}

#[test]
fn thousand_statements_split_quickly() {
    let mut sql = String::new();
    for i in 0..1000 {
        sql.push_str(&format!(
            "-- {i}\nCREATE TABLE t{i} (id bigint PRIMARY KEY, note text DEFAULT ';');\n"
        ));
    }
    let started = std::time::Instant::now();
    let script = split(&sql);
    let elapsed = started.elapsed();
    assert_eq!(script.statements.len(), 1000);
    assert!(script.errors.is_empty());
    // Generous even for an unoptimised build on a busy machine; catches quadratic behaviour.
    assert!(elapsed.as_secs() < 2, "{elapsed:?}");
}

#[test]
fn an_unterminated_literal_is_the_error_reported() {
    let sql = "SELECT 1;\nFROBNICATE x 'never closed;\nSELECT 2;";
    let script = split(sql);
    assert_eq!(script.statements.len(), 2);
    assert_eq!(script.errors.len(), 1, "{:?}", script.errors);
    assert_eq!(script.errors[0].range.start, sql.find('\'').unwrap());
}

/// 20,000 nested parentheses (PostgreSQL answers "memory exhausted"): every reader of SQL text gets through it on a
/// 2 MB stack, the size of a tokio worker's, without parsing the statement (it overflowed the stack before).
#[test]
fn deep_nesting_is_not_parsed() {
    let deep = format!(
        "SELECT {}1{};\nSELEC 2;\n",
        "(".repeat(20_000),
        ")".repeat(20_000)
    );
    let result = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || {
            let script = pgstrata_sql::split(&deep);
            assert_eq!(script.statements.len(), 2);
            // The shallow statement is still checked.
            assert_eq!(script.errors.len(), 1, "{:?}", script.errors);
            assert!(script.errors[0].range.start > 40_000);
            let checked = pgstrata_sql::check(&deep);
            assert!(!checked.is_empty() && checked.iter().all(|e| e.range.start > 40_000));
            let _ = pgstrata_sql::locks::analyze(&deep);
            let linter = pgstrata_sql::lint::Linter::new(&Default::default()).unwrap();
            let sections = pgstrata_sql::migration::parse(&deep).unwrap();
            let _ = linter.migration(&deep, &sections, &Default::default());
            let objects = pgstrata_sql::objects::parse_objects(&deep);
            assert!(
                objects[0]
                    .object
                    .as_ref()
                    .is_err_and(|e| e.message.contains("1000 levels")),
                "{:?}",
                objects[0].object
            );
        })
        .unwrap()
        .join();
    assert!(result.is_ok());
}
