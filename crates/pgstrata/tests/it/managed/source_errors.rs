//! Problems found before anything runs: what is not managed code, objects outside the schema, cycles, references
//! to nothing, unsafe code.

use pgstrata::Error;

use crate::managed::support::{Db, Pkg};

fn source_error(err: Error) -> (String, String) {
    match err {
        Error::Source(e) => {
            let span = e.span.expect("a span");
            let text = e.file.inner();
            let line = text[..span.offset()].matches('\n').count() + 1;
            (
                format!("{}:{line}", e.file.name()),
                e.message.clone() + " | " + &e.help.clone().unwrap_or_default(),
            )
        }
        other => panic!("expected a source error, got {other:?}"),
    }
}

fn pkg() -> Pkg {
    Pkg::new("acme/err", "err", "", &[])
}

#[test]
fn anything_but_managed_objects_is_an_error_with_its_line() {
    let p = pkg();
    p.write(
        "code.sql",
        "CREATE FUNCTION err.f() RETURNS int LANGUAGE sql AS 'SELECT 1';\n\n-- oops\nCREATE TABLE err.t (id int);\n",
    );
    let (at, message) = source_error(p.load().unwrap_err());
    assert!(at.ends_with("code.sql:4"), "{at}");
    assert!(
        message.starts_with("CREATE TABLE is not managed code"),
        "{message}"
    );

    p.write(
        "code.sql",
        "-- strata:ignore\nCREATE TABLE err.t (id int);\n",
    );
    assert!(p.load().is_ok(), "ignored files are skipped");

    p.write("x_test.sql", "CREATE FUNCTION err.a_test() RETURNS void LANGUAGE sql AS '';\nCREATE VIEW err.v AS SELECT 1;\n");
    let (at, message) = source_error(p.load().unwrap_err());
    assert!(at.ends_with("x_test.sql:2"), "{at}");
    assert!(
        message.contains("only CREATE FUNCTION is allowed in a test file"),
        "{message}"
    );
}

#[test]
fn objects_live_in_the_package_schema() {
    let p = pkg();
    p.write("code.sql", "\nCREATE VIEW public.v AS SELECT 1;\n");
    let (at, message) = source_error(p.load().unwrap_err());
    assert!(at.ends_with("code.sql:2"), "{at}");
    assert!(
        message.starts_with("public.v is outside the package's schema `err`"),
        "{message}"
    );
    p.write(
        "code.sql",
        "CREATE TRIGGER t BEFORE INSERT ON other.t FOR EACH ROW EXECUTE FUNCTION err.f();\n",
    );
    let (_, message) = source_error(p.load().unwrap_err());
    assert!(
        message.contains("its table must live in `err`"),
        "{message}"
    );
    p.write("code.sql", "COMMENT ON VIEW err.nothing IS 'x';\n");
    let (_, message) = source_error(p.load().unwrap_err());
    assert!(
        message.contains("which is not defined in this package's managed code"),
        "{message}"
    );
}

#[test]
fn unsafe_code_is_refused_unless_opted_in() {
    let p = pkg();
    p.write(
        "code.sql",
        "CREATE PROCEDURE err.p() LANGUAGE plpgsql AS $$\nBEGIN\n  UPDATE err.t SET n = 1;\n  COMMIT;\nEND $$;\n",
    );
    let (at, message) = source_error(p.load().unwrap_err());
    assert!(at.ends_with("code.sql:4"), "{at}");
    assert!(
        message.starts_with("managed code must not control transactions"),
        "{message}"
    );

    p.write(
        "code.sql",
        "CREATE FUNCTION err.f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n  EXECUTE 'RESET ROLE';\nEND $$;\n",
    );
    let (at, message) = source_error(p.load().unwrap_err());
    assert!(at.ends_with("code.sql:3"), "{at}");
    assert!(
        message.starts_with("managed code must not change roles"),
        "{message}"
    );

    p.write(
        "code.sql",
        "CREATE FUNCTION err.f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';\n",
    );
    let (_, message) = source_error(p.load().unwrap_err());
    assert!(
        message.starts_with("SECURITY DEFINER needs an explicit opt-in"),
        "{message}"
    );
    let opted = Pkg::new(
        "acme/err",
        "err",
        "[security]\nallow_security_definer = true",
        &[],
    );
    opted.write(
        "code.sql",
        "CREATE FUNCTION err.f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';\n",
    );
    assert!(opted.load().is_ok());
}

#[tokio::test]
async fn cycles_and_missing_references_name_the_chain() {
    let p = pkg();
    p.write(
        "views.sql",
        "CREATE VIEW err.a AS SELECT * FROM err.b;\nCREATE VIEW err.b AS SELECT * FROM err.c;\n\
         CREATE VIEW err.c AS SELECT * FROM err.a;\n",
    );
    let mut db = Db::new().await;
    let (at, message) = source_error(db.up(&p.project()).await.unwrap_err());
    assert!(at.ends_with("views.sql:1"), "{at}");
    assert!(
        message.contains("managed objects depend on each other in a cycle: view err.a (")
            && message.contains("views.sql:1) → view err.b (")
            && message.contains("views.sql:2) → view err.c (")
            && message.contains("views.sql:3) → view err.a ("),
        "{message}"
    );
    let applied: bool = db
        .value("SELECT to_regclass('strata.migration') IS NULL")
        .await;
    assert!(applied, "nothing ran");

    p.write(
        "views.sql",
        "CREATE VIEW err.report AS SELECT * FROM err.totals;\n\
         CREATE VIEW err.totals AS SELECT err.nope(1) AS x;\n",
    );
    let (at, message) = source_error(db.up(&p.project()).await.unwrap_err());
    assert!(at.ends_with("views.sql:2"), "{at}");
    assert!(
        message.starts_with("function err.nope does not exist"),
        "{message}"
    );
    assert!(
        message.contains("view err.report (")
            && message.contains("→ view err.totals (")
            && message.contains("→ function err.nope"),
        "{message}"
    );
}

#[tokio::test]
async fn server_errors_point_into_the_file() {
    let p = pkg();
    p.write(
        "code.sql",
        "CREATE FUNCTION err.f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1\nEND $$;\n\n\
         CREATE VIEW err.v AS SELECT no_such_column FROM pg_class;\n",
    );
    let mut db = Db::new().await;
    let err = db.up(&p.project()).await.unwrap_err();
    let Error::Sql(sql) = err else {
        panic!("expected an SQL error, got {err:?}")
    };
    assert!(sql.origin.ends_with("code.sql"), "{}", sql.origin);
    // The PL/pgSQL syntax error is in the body, on line 4 (`END` after the missing semicolon).
    assert_eq!(sql.line, 4, "{sql:?}");
    assert!(
        sql.migration
            .as_deref()
            .unwrap_or("")
            .contains("function err.f"),
        "{:?}",
        sql.migration
    );

    p.write(
        "code.sql",
        "-- OR REPLACE is added by Strata; positions still point at the file.\n\
         CREATE VIEW err.v AS SELECT no_such_column FROM pg_class;\n",
    );
    let Error::Sql(sql) = db.up(&p.project()).await.unwrap_err() else {
        panic!()
    };
    assert_eq!((sql.line, sql.col), (2, 29), "{sql:?}");
    assert_eq!(sql.sqlstate, "42703");
}
