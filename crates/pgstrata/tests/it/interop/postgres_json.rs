//! postgres-json's layout (seed 002), as its own repository lays it out: `migrations/1.up.sql` + `1.down.sql`, and a
//! `function/` folder whose function files are managed code.

use std::path::Path;

use pgstrata::managed::ObjectState;
use pgstrata::{CodeAction, Error, Layout, Package, PlanOptions, UpOptions};

use crate::interop::support::{connect, project, query_strings, up};

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

/// A postgres-json `sql/` folder: migrations, functions (one in a sub-folder), and queries the application runs.
fn folder() -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("tmp");
    let sql = tmp.path().join("sql");
    write(
        &sql,
        "migrations/1.up.sql",
        "create table test (id int primary key, name text);\n",
    );
    write(&sql, "migrations/1.down.sql", "drop table test;\n");
    write(
        &sql,
        "migrations/2.up.sql",
        "insert into test values (1, 'one'), (2, 'two');\n",
    );
    write(&sql, "migrations/2.down.sql", "delete from test;\n");
    write(
        &sql,
        "function/Test/find_test.sql",
        "CREATE OR REPLACE FUNCTION find_test(in _id int, out result json)\nLANGUAGE plpgsql AS\n$$\nBEGIN\n    \
         select to_json(t) into result from test t where t.id = _id;\nEND;\n$$",
    );
    write(
        &sql,
        "function/Test/test_names.sql",
        "create or replace function test_names() returns setof text language sql begin atomic \
         select find_test(id)->>'name' from test order by id; end;\n",
    );
    write(
        &sql,
        "function/Test/selectOne.sql",
        "select * from test where id = :id;\n",
    );
    write(&sql, "query/Test/selectAll.sql", "select * from test;\n");
    tmp
}

fn load(tmp: &tempfile::TempDir) -> Package {
    Package::from_folder(tmp.path().join("sql"), None, Some("pj"), None).expect("load")
}

#[tokio::test]
async fn its_own_layout_is_read_without_flags() {
    let tmp = folder();
    assert_eq!(
        Layout::detect(tmp.path().join("sql")).expect("detected"),
        Layout::UpDown
    );
    let pkg = load(&tmp);
    let names: Vec<&str> = pkg.migrations().iter().map(|m| m.name()).collect();
    assert_eq!(names, ["1", "2"]);
    assert!(pkg.migrations().iter().all(|m| m.down().is_some()));
    let code: Vec<String> = pkg
        .code()
        .objects
        .iter()
        .map(|o| o.name.to_string())
        .collect();
    assert_eq!(code, ["public.find_test", "public.test_names"]);
    // A file of the function folder that defines no function is a query: ignored, and said so.
    assert_eq!(pkg.code().ignored, ["function/Test/selectOne.sql"]);
    let db = pgtest::TestDb::new().await;
    up(&db, &pkg).await;
    assert_eq!(
        query_strings(&db, "SELECT test_names()").await,
        ["one", "two"]
    );
}

#[tokio::test]
async fn a_changed_return_type_drops_and_recreates_with_dependents() {
    let tmp = folder();
    let db = pgtest::TestDb::new().await;
    up(&db, &load(&tmp)).await;
    // json → jsonb: CREATE OR REPLACE refuses (42P13); test_names() calls it.
    write(
        &tmp.path().join("sql"),
        "function/Test/find_test.sql",
        "CREATE OR REPLACE FUNCTION find_test(in _id int, out result jsonb)\nLANGUAGE sql AS\n$$\n    \
         select to_jsonb(t) from test t where t.id = _id;\n$$",
    );
    let report = up(&db, &load(&tmp)).await;
    let actions: Vec<(CodeAction, String)> = report
        .code
        .changes
        .iter()
        .map(|c| (c.action, c.identity.clone()))
        .collect();
    // test_names() depends on it (a BEGIN ATOMIC body): dropped with it, re-created after it.
    assert_eq!(
        actions,
        [
            (
                CodeAction::Dropped,
                "public.find_test(_id integer, OUT result json)".into()
            ),
            (
                CodeAction::Recreated,
                "public.find_test(_id integer, OUT result jsonb)".into()
            ),
            (CodeAction::Recreated, "public.test_names()".into()),
        ]
    );
    assert_eq!(
        query_strings(
            &db,
            "SELECT pg_get_function_result('find_test(int)'::regprocedure)"
        )
        .await,
        ["jsonb"]
    );
    assert_eq!(
        query_strings(&db, "SELECT test_names()").await,
        ["one", "two"]
    );
}

#[tokio::test]
async fn a_removed_function_file_drops_the_function() {
    let tmp = folder();
    let db = pgtest::TestDb::new().await;
    up(&db, &load(&tmp)).await;
    std::fs::remove_file(tmp.path().join("sql/function/Test/test_names.sql")).expect("rm");
    let pkg = load(&tmp);
    let conn = connect(&db).await;
    let status = pgstrata::managed::status(&conn, &project(pkg.clone()))
        .await
        .expect("status");
    let removed: Vec<&str> = status[0]
        .objects
        .iter()
        .filter(|o| o.state == ObjectState::Removed)
        .map(|o| o.name.as_str())
        .collect();
    assert_eq!(removed, ["public.test_names()"]);
    up(&db, &pkg).await;
    assert_eq!(
        query_strings(
            &db,
            "SELECT count(*)::text FROM pg_proc WHERE proname = 'test_names'"
        )
        .await,
        ["0"]
    );
}

#[tokio::test]
async fn migrations_without_a_down_file_can_be_refused() {
    let tmp = folder();
    let sql = tmp.path().join("sql");
    write(
        &sql,
        "migrations/3.up.sql",
        "alter table test add column n int;\n",
    );
    let db = pgtest::TestDb::new().await;
    let mut conn = connect(&db).await;
    let opts = UpOptions {
        plan: PlanOptions {
            require_down: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let e = pgstrata::up(&mut conn, &project(load(&tmp)), &opts, &mut pgstrata::Quiet)
        .await
        .expect_err("refused");
    let Error::Refused { message, .. } = &e else {
        panic!("expected a refusal, got {e:?}")
    };
    assert_eq!(message, "migration(s) without a down file: pj:3");
    assert_eq!(
        query_strings(&db, "SELECT coalesce(to_regclass('public.test')::text, '')").await,
        [""],
        "nothing ran"
    );
    write(
        &sql,
        "migrations/3.down.sql",
        "alter table test drop column n;\n",
    );
    pgstrata::up(&mut conn, &project(load(&tmp)), &opts, &mut pgstrata::Quiet)
        .await
        .expect("with its down file");
}
