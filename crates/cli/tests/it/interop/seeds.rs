//! The seed tools' own layouts through the binary: postgres-json's `sql/` folder with `strata up --dir` and no
//! other flag, `--require-down`; a pgpkg package with several schemas and `@migration.pgpkg` with `-p`.

use super::{assert_contains, strata, write};
use crate::support::run;

#[tokio::test]
async fn postgres_json_folder_deploys_without_flags() {
    let tmp = tempfile::tempdir().expect("tmp");
    let sql = tmp.path().join("shop/src/main/resources/sql");
    write(
        &sql.join("migrations/1.up.sql"),
        "create table test (id int primary key, name text);\n",
    );
    write(&sql.join("migrations/1.down.sql"), "drop table test;\n");
    write(
        &sql.join("function/Test/function_test.sql"),
        "CREATE OR REPLACE FUNCTION test_function(name text default 'plop', out result json)\n\
         LANGUAGE plpgsql AS $$ BEGIN result = json_build_object('name', name); END; $$",
    );
    let db = pgtest::TestDb::new().await;
    run(strata(&db).args(["up", "--dir"]).arg(&sql)).ok();
    let client = db.client().await;
    let v: String = client
        .query_one("SELECT test_function()->>'name'", &[])
        .await
        .expect("managed function")
        .get(0);
    assert_eq!(v, "plop");

    // A migration without its down file: refused with --require-down (exit 1), nothing applied.
    write(
        &sql.join("migrations/2.up.sql"),
        "alter table test add column n int;\n",
    );
    let out = run(strata(&db)
        .args(["up", "--require-down", "--dir"])
        .arg(&sql))
    .expect_code(1);
    assert_contains(&out.stderr, &["migration(s) without a down file: shop:2"]);
    run(strata(&db).args(["up", "--dir"]).arg(&sql)).ok();
}

#[tokio::test]
async fn pgpkg_package_with_several_schemas_and_an_index() {
    let tmp = tempfile::tempdir().expect("tmp");
    let root = tmp.path().join("gl");
    write(
        &root.join("pgpkg.toml"),
        "Package = \"github.com/example/gl\"\nSchemas = [\"gl\", \"gl_audit\"]\n",
    );
    write(
        &root.join("schema/@migration.pgpkg"),
        "types.sql\nlog.sql\n",
    );
    write(
        &root.join("schema/types.sql"),
        "create type gl.side as enum ('debit', 'credit');\n",
    );
    write(
        &root.join("schema/log.sql"),
        "create table gl_audit.log (side gl.side, amount int);\n",
    );
    write(
        &root.join("post.sql"),
        "create function gl.post(s gl.side, n int) returns void language sql as \
         $$ insert into gl_audit.log values (s, n) $$;\n",
    );
    let db = pgtest::TestDb::new().await;
    run(strata(&db).args(["up", "-p"]).arg(&root)).ok();
    let client = db.client().await;
    client
        .batch_execute("SELECT gl.post('debit', 3)")
        .await
        .expect("post");
    let n: i64 = client
        .query_one("SELECT count(*) FROM gl_audit.log", &[])
        .await
        .expect("count")
        .get(0);
    assert_eq!(n, 1);
}
