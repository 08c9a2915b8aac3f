//! Installing managed objects: only what changed, in dependency order, identities from the catalog.

use pgstrata::Error;

use crate::managed::support::{Db, Pkg, actions};

const TABLES: &str = "CREATE TABLE accounts (id bigint PRIMARY KEY, balance numeric NOT NULL DEFAULT 0, \
                      touched timestamptz);\n";

fn app() -> Pkg {
    let pkg = Pkg::new("acme/app", "app", "", &["0001_tables.sql"]);
    pkg.write("migrations/0001_tables.sql", TABLES);
    pkg.write(
        "code/functions.sql",
        "-- Balance helpers.\n\
         CREATE FUNCTION app.balance_of(a_id bigint) RETURNS numeric LANGUAGE sql STABLE\n\
         AS $$ SELECT balance FROM app.accounts WHERE id = a_id $$;\n\n\
         COMMENT ON FUNCTION app.balance_of(bigint) IS 'Balance of one account';\n\n\
         CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN\n  NEW.touched := now();\n  RETURN NEW;\nEND $$;\n\n\
         CREATE TRIGGER touch BEFORE UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION app.touch();\n",
    );
    // Views on views on functions, listed before what they use: order comes from the graph.
    pkg.write(
        "code/views.sql",
        "CREATE VIEW app.very_rich AS SELECT * FROM app.rich WHERE balance > 1000;\n\
         CREATE OR REPLACE VIEW app.rich AS SELECT id, app.balance_of(id) AS balance FROM app.accounts\n\
           WHERE balance > 100;\n",
    );
    pkg
}

#[tokio::test]
async fn first_deploy_installs_in_dependency_order_and_redeploy_touches_nothing() {
    let pkg = app();
    let mut db = Db::new().await;
    let report = db.up(&pkg.project()).await.unwrap();
    assert_eq!(
        actions(&report),
        [
            "created function app.balance_of(a_id bigint)",
            "created comment function app.balance_of(a_id bigint)",
            "created function app.touch()",
            "created trigger touch ON app.accounts",
            "created view app.rich",
            "created view app.very_rich",
        ]
    );
    assert_eq!(db.recorded().await.len(), 6);
    // The objects belong to the package role.
    let owner: String = db
        .value(
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'app.rich'::regclass",
        )
        .await;
    assert_eq!(owner, "$acme/app");

    let before = db.catalog("app").await;
    let recorded_before: Vec<(String, String)> = db.recorded().await;
    let again = db.up(&pkg.project()).await.unwrap();
    assert!(again.code.changes.is_empty(), "{:?}", actions(&again));
    assert_eq!(again.code.unchanged, 6);
    assert_eq!(again.outcome, pgstrata::Outcome::Noop);
    assert_eq!(
        db.catalog("app").await,
        before,
        "oids and xmin of every catalog row unchanged"
    );
    assert_eq!(db.recorded().await, recorded_before);
}

#[tokio::test]
async fn changed_body_is_replaced_in_place_keeping_oid_and_grants() {
    let pkg = app();
    let mut db = Db::new().await;
    db.up(&pkg.project()).await.unwrap();
    db.exec("DROP ROLE IF EXISTS mgd_reader; CREATE ROLE mgd_reader; GRANT USAGE ON SCHEMA app TO mgd_reader;
             GRANT EXECUTE ON FUNCTION app.balance_of(bigint) TO mgd_reader")
        .await;
    let oid = db.oid("app.balance_of(bigint)").await;
    let view = db.oid("app.rich").await;
    pkg.edit(
        "code/functions.sql",
        "SELECT balance FROM",
        "SELECT coalesce(balance, 0) FROM",
    );

    let report = db.up(&pkg.project()).await.unwrap();
    assert_eq!(
        actions(&report),
        ["replaced function app.balance_of(a_id bigint)"]
    );
    assert_eq!(db.oid("app.balance_of(bigint)").await, oid);
    assert_eq!(db.oid("app.rich").await, view, "dependents are left alone");
    let granted: bool = db
        .value("SELECT has_function_privilege('mgd_reader', 'app.balance_of(bigint)', 'EXECUTE')")
        .await;
    assert!(granted);
    let comment: String = db
        .value("SELECT obj_description('app.balance_of(bigint)'::regprocedure, 'pg_proc')")
        .await;
    assert_eq!(comment, "Balance of one account");
}

#[tokio::test]
async fn changed_return_type_recreates_the_function_and_its_dependents() {
    let pkg = app();
    let mut db = Db::new().await;
    db.up(&pkg.project()).await.unwrap();
    let rich = db.oid("app.rich").await;
    pkg.edit(
        "code/functions.sql",
        "RETURNS numeric LANGUAGE sql STABLE\nAS $$ SELECT balance",
        "RETURNS bigint LANGUAGE sql STABLE\nAS $$ SELECT balance::bigint",
    );
    let report = db.up(&pkg.project()).await.unwrap();
    // The old version goes with its dependents (views on it, the comment), which come back in order.
    assert_eq!(
        actions(&report),
        [
            "dropped function app.balance_of(a_id bigint)",
            "recreated function app.balance_of(a_id bigint)",
            "recreated comment function app.balance_of(a_id bigint)",
            "recreated view app.rich",
            "recreated view app.very_rich",
        ]
    );
    assert_ne!(db.oid("app.rich").await, rich);
    let column_type: String = db
        .value("SELECT atttypid::regtype::text FROM pg_attribute WHERE attrelid = 'app.very_rich'::regclass AND attname = 'balance'")
        .await;
    assert_eq!(column_type, "bigint");
    let comment: String = db
        .value("SELECT obj_description('app.balance_of(bigint)'::regprocedure, 'pg_proc')")
        .await;
    assert_eq!(
        comment, "Balance of one account",
        "the comment is set again"
    );
    // And the next deploy is a no-op again.
    let again = db.up(&pkg.project()).await.unwrap();
    assert!(again.code.changes.is_empty(), "{:?}", actions(&again));
}

#[tokio::test]
async fn removed_objects_are_dropped_with_identities_pgpkg_got_wrong() {
    let pkg = Pkg::new("acme/odd", "Odd Schema", "", &[]);
    pkg.write(
        "code.sql",
        "CREATE FUNCTION \"Odd Schema\".\"Sum Of\"(VARIADIC nums int[]) RETURNS int LANGUAGE sql\n\
           AS 'SELECT sum(n)::int FROM unnest(nums) n';\n\
         CREATE FUNCTION \"Odd Schema\".series(n int) RETURNS SETOF int LANGUAGE sql AS 'SELECT generate_series(1, n)';\n\
         CREATE FUNCTION \"Odd Schema\".over(a int) RETURNS int LANGUAGE sql AS 'SELECT a';\n\
         CREATE FUNCTION \"Odd Schema\".over(a text) RETURNS text LANGUAGE sql AS 'SELECT a';\n",
    );
    let mut db = Db::new().await;
    db.up(&pkg.project()).await.unwrap();
    let recorded: Vec<String> = db.recorded().await.into_iter().map(|r| r.1).collect();
    assert_eq!(
        recorded,
        [
            "\"Odd Schema\".\"Sum Of\"(VARIADIC nums integer[])",
            "\"Odd Schema\".over(a integer)",
            "\"Odd Schema\".over(a text)",
            "\"Odd Schema\".series(n integer)",
        ]
    );
    let sum: i32 = db.value("SELECT \"Odd Schema\".\"Sum Of\"(1, 2, 3)").await;
    assert_eq!(sum, 6);
    let text_over = db.oid("\"Odd Schema\".over(text)").await;

    // Change one overload, remove the variadic and the set-returning function.
    pkg.write(
        "code.sql",
        "CREATE FUNCTION \"Odd Schema\".over(a int) RETURNS int LANGUAGE sql AS 'SELECT a + 1';\n\
         CREATE FUNCTION \"Odd Schema\".over(a text) RETURNS text LANGUAGE sql AS 'SELECT a';\n",
    );
    let report = db.up(&pkg.project()).await.unwrap();
    let mut acts = actions(&report);
    acts.sort();
    assert_eq!(
        acts,
        [
            "dropped function \"Odd Schema\".\"Sum Of\"(VARIADIC nums integer[])",
            "dropped function \"Odd Schema\".series(n integer)",
            "replaced function \"Odd Schema\".over(a integer)",
        ]
    );
    let left: i64 = db
        .value("SELECT count(*) FROM pg_proc WHERE pronamespace = '\"Odd Schema\"'::regnamespace")
        .await;
    assert_eq!(left, 2);
    assert_eq!(db.oid("\"Odd Schema\".over(text)").await, text_over);
    assert_eq!(db.recorded().await.len(), 2);
}

#[tokio::test]
async fn functions_used_by_tables_change_in_place_or_say_which_table() {
    let pkg = Pkg::new("acme/ddl", "ddl", "", &[]);
    pkg.write(
        "code.sql",
        "CREATE FUNCTION ddl.default_code() RETURNS text LANGUAGE sql IMMUTABLE AS $$ SELECT 'a' $$;\n\
         CREATE FUNCTION ddl.valid(t text) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT length(t) < 10 $$;\n",
    );
    // The migration of the second deploy uses functions installed by the first.
    let mut db = Db::new().await;
    db.up(&pkg.project()).await.unwrap();
    pkg.add_migration(
        "0001_t.sql",
        "CREATE TABLE t (code text DEFAULT ddl.default_code() CHECK (ddl.valid(code)));\n\
         CREATE INDEX t_lower ON t (ddl.valid(code));\nINSERT INTO t DEFAULT VALUES;\n",
    );
    db.up(&pkg.project()).await.unwrap();

    pkg.edit("code.sql", "SELECT 'a'", "SELECT 'b'");
    let report = db.up(&pkg.project()).await.unwrap();
    assert_eq!(actions(&report), ["replaced function ddl.default_code()"]);

    // A new signature needs the old function gone, but the table's default uses it.
    pkg.edit(
        "code.sql",
        "default_code() RETURNS text",
        "default_code(n int DEFAULT 1) RETURNS text",
    );
    let err = db.up(&pkg.project()).await.unwrap_err();
    let text = format!("{err}");
    assert!(
        text.contains("default value for column code of table ddl.t depends on it"),
        "{text}"
    );
    assert!(text.contains("function ddl.default_code()"), "{text}");
    assert!(matches!(err, Error::Refused { .. }));
    // Nothing changed: the deploy rolled back.
    let recorded: Vec<String> = db.recorded().await.into_iter().map(|r| r.1).collect();
    assert!(recorded.contains(&"ddl.default_code()".to_string()));
    let defaults: i64 = db
        .value("SELECT count(*) FROM pg_proc WHERE proname = 'default_code'")
        .await;
    assert_eq!(defaults, 1);

    // Same for a changed return type of the function an index and a check constraint use.
    pkg.edit(
        "code.sql",
        "default_code(n int DEFAULT 1) RETURNS text",
        "default_code() RETURNS text",
    );
    pkg.edit(
        "code.sql",
        "RETURNS boolean LANGUAGE sql IMMUTABLE AS $$ SELECT length(t) < 10",
        "RETURNS int LANGUAGE sql IMMUTABLE AS $$ SELECT length(t)",
    );
    let text = format!("{}", db.up(&pkg.project()).await.unwrap_err());
    assert!(
        text.contains("ddl.t") && text.contains("depends on it"),
        "{text}"
    );
}

#[tokio::test]
async fn migrations_run_before_managed_code_and_may_drop_what_is_in_their_way() {
    let pkg = app();
    let mut db = Db::new().await;
    db.up(&pkg.project()).await.unwrap();
    // A migration that changes a column a managed view reads must drop the view: it comes back from its source,
    // after the migration, on the new column type. It also calls a managed function of the previous deploy.
    pkg.add_migration(
        "0002_wider.sql",
        "DROP VIEW app.very_rich; DROP VIEW app.rich;\n\
         ALTER TABLE accounts ALTER balance TYPE numeric(20, 2);\n\
         INSERT INTO accounts VALUES (1, 2000);\n\
         DO $$ BEGIN ASSERT app.balance_of(1) = 2000; END $$;\n",
    );
    // The column type change is exactly what the linter flags (a table rewrite): this test is about ordering.
    let lenient = pgstrata::UpOptions {
        allow_lint_errors: true,
        ..Default::default()
    };
    let report = db.up_with(&pkg.project(), lenient).await.unwrap();
    assert_eq!(report.migrations.len(), 1);
    assert_eq!(
        actions(&report),
        ["restored view app.rich", "restored view app.very_rich"]
    );
    let rich: i64 = db.value("SELECT count(*) FROM app.very_rich").await;
    assert_eq!(rich, 1);
    // The trigger installed by the first deploy fired during... the next update.
    db.exec("UPDATE app.accounts SET balance = 1").await;
    let touched: bool = db
        .value("SELECT touched IS NOT NULL FROM app.accounts")
        .await;
    assert!(touched);
}

#[tokio::test]
async fn triggers_and_comments_follow_their_source() {
    let pkg = app();
    let mut db = Db::new().await;
    db.up(&pkg.project()).await.unwrap();
    let trigger: u32 = db
        .value("SELECT oid FROM pg_trigger WHERE tgname = 'touch'")
        .await;
    pkg.edit(
        "code/functions.sql",
        "BEFORE UPDATE ON accounts",
        "BEFORE INSERT OR UPDATE ON accounts",
    );
    pkg.edit(
        "code/functions.sql",
        "'Balance of one account'",
        "'Balance'",
    );
    let report = db.up(&pkg.project()).await.unwrap();
    let mut acts = actions(&report);
    acts.sort();
    assert_eq!(
        acts,
        [
            "replaced comment function app.balance_of(a_id bigint)",
            "replaced trigger touch ON app.accounts"
        ]
    );
    let same: u32 = db
        .value("SELECT oid FROM pg_trigger WHERE tgname = 'touch'")
        .await;
    assert_eq!(same, trigger, "CREATE OR REPLACE TRIGGER keeps the trigger");
    db.exec("INSERT INTO app.accounts (id) VALUES (5)").await;
    let touched: bool = db
        .value("SELECT touched IS NOT NULL FROM app.accounts WHERE id = 5")
        .await;
    assert!(touched);

    // Removing a comment clears it; removing the trigger drops it.
    pkg.edit(
        "code/functions.sql",
        "COMMENT ON FUNCTION app.balance_of(bigint) IS 'Balance';",
        "",
    );
    pkg.edit(
        "code/functions.sql",
        "CREATE TRIGGER touch BEFORE INSERT OR UPDATE ON accounts FOR EACH ROW EXECUTE FUNCTION app.touch();",
        "",
    );
    let report = db.up(&pkg.project()).await.unwrap();
    let mut acts = actions(&report);
    acts.sort();
    assert_eq!(
        acts,
        [
            "dropped comment function app.balance_of(a_id bigint)",
            "dropped trigger touch ON app.accounts"
        ]
    );
    let comment: Option<String> = db
        .value("SELECT obj_description('app.balance_of(bigint)'::regprocedure, 'pg_proc')")
        .await;
    assert_eq!(comment, None);
    let triggers: i64 = db
        .value("SELECT count(*) FROM pg_trigger WHERE tgname = 'touch'")
        .await;
    assert_eq!(triggers, 0);
}

#[tokio::test]
async fn procedures_and_pgpkg_packages() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(
        root.join("pgpkg.toml"),
        "Package = \"github.com/pgpkg/example\"\nSchema = \"example\"\nMigrations = [\"table.sql\"]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("table.sql"),
        "create table example.greeting (said text);\n",
    )
    .unwrap();
    std::fs::write(
        root.join("mob1.sql"),
        "create or replace function example.hello() returns void language plpgsql as $$\n\
         begin\n  insert into example.greeting values ('hello, world');\nend;\n$$;\n\
         create procedure example.twice() language sql begin atomic select example.hello(); select example.hello(); end;\n",
    )
    .unwrap();
    std::fs::write(
        root.join("mob1_test.sql"),
        "create or replace function example.world_test() returns void language plpgsql as $$\n\
         begin\n  call example.twice();\n  assert (select count(*) from example.greeting) = 2;\nend;\n$$;\n",
    )
    .unwrap();
    let project = pgstrata::Project::load(&[root]).unwrap();
    let mut db = Db::new().await;
    let report = db.up(&project).await.unwrap();
    assert_eq!(
        actions(&report),
        [
            "created function example.hello()",
            "created procedure example.twice()"
        ]
    );
    let tests = report.tests.unwrap();
    assert_eq!((tests.passed, tests.failed), (1, 0));
    let said: i64 = db.value("SELECT count(*) FROM example.greeting").await;
    assert_eq!(said, 0, "the test's writes were rolled back");
}

#[tokio::test]
async fn a_dependency_the_parser_cannot_see_is_ordered_by_retry_and_reported() {
    // Backslash-escaped bodies are not parsed for references: `a` looks independent of `b`.
    let pkg = Pkg::new("acme/retry", "retry", "", &[]);
    pkg.write(
        "code.sql",
        "CREATE FUNCTION retry.a() RETURNS int LANGUAGE sql AS E'SELECT retry.b() + 1';\n\
         CREATE FUNCTION retry.b() RETURNS int LANGUAGE sql AS 'SELECT 1';\n",
    );
    let mut db = Db::new().await;
    let report = db.up(&pkg.project()).await.unwrap();
    assert_eq!(report.code.changes.len(), 2);
    assert_eq!(report.code.retried.len(), 1, "{:?}", report.code.retried);
    assert!(
        report.code.retried[0].starts_with("function retry.a ("),
        "{:?}",
        report.code.retried
    );
    assert!(
        report
            .warnings
            .iter()
            .any(|w| w.contains("ordered by retry")),
        "{:?}",
        report.warnings
    );
    let two: i32 = db.value("SELECT retry.a()").await;
    assert_eq!(two, 2);
}
