//! Structured errors an application can act on, and projects of several packages.

use pgstrata::{Database, Error, Outcome, Package, Project, Quiet, UpOptions};
use pgstrata_conn::ConnectOptions;
use pgtest::TestDb;

use crate::library::support::{connect, package_dir, project, write_package};

#[tokio::test]
async fn a_failing_statement_is_a_located_sql_error() {
    let db = TestDb::new().await;
    let dir = package_dir(
        "acme/app",
        "app",
        "",
        &[
            ("0001_ok.sql", "CREATE TABLE ok (id int);\n"),
            (
                "0002_bad.sql",
                "-- comment\nINSERT INTO ok\n  VALUES ('one');\n",
            ),
        ],
    );
    let mut conn = connect(&db).await;
    let err = pgstrata::up(
        &mut conn,
        &project(dir.path()),
        &UpOptions::default(),
        &mut Quiet,
    )
    .await
    .unwrap_err();
    let Error::Sql(sql) = &err else {
        panic!("expected an SQL error, got {err:?}");
    };
    assert_eq!(
        sql.origin,
        format!("{}", dir.path().join("migrations/0002_bad.sql").display())
    );
    assert_eq!((sql.line, sql.col), (3, 11));
    assert_eq!(sql.sqlstate, "22P02");
    assert_eq!(sql.migration.as_deref(), Some("acme/app:0002_bad"));
    assert!(sql.rolled_back);
    assert!(sql.committed_migrations.is_empty() && sql.committed_statements.is_empty());
    assert!(!err.is_usage() && !err.is_connection());
    let exists: bool = conn
        .client()
        .query_one("SELECT to_regclass('app.ok') IS NOT NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!exists, "everything rolled back");
}

#[test]
fn package_problems_are_found_before_connecting() {
    let empty = tempfile::tempdir().unwrap();
    let err = Package::discover(empty.path()).unwrap_err();
    assert!(
        matches!(err, Error::PackageNotFound { .. }) && err.is_usage(),
        "{err}"
    );

    let dir = package_dir("acme/app", "app", "extensions = [\"\"]", &[]);
    let Err(Error::Source(source)) = Package::load(dir.path()) else {
        panic!("an empty extension name is a manifest error");
    };
    assert_eq!(source.code, "strata::manifest");

    // Two packages may not share a schema; `uses` must not form a cycle.
    let root = tempfile::tempdir().unwrap();
    write_package(
        &root.path().join("a"),
        "acme/a",
        "shared",
        "uses = [\"acme/b\"]",
        &[],
    );
    write_package(&root.path().join("b"), "acme/b", "shared", "", &[]);
    let err = Project::load(&[root.path().join("a")]).unwrap_err();
    assert!(
        err.to_string().contains("both claim schema `shared`"),
        "{err}"
    );
    write_package(
        &root.path().join("b"),
        "acme/b",
        "b",
        "uses = [\"acme/a\"]",
        &[],
    );
    let err = Project::load(&[root.path().join("a")]).unwrap_err();
    assert!(
        err.to_string().contains("cycle: acme/a → acme/b → acme/a"),
        "{err}"
    );
}

#[tokio::test]
async fn an_unreachable_server_is_a_connection_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let options =
        ConnectOptions::parse(&format!("postgresql://nobody@127.0.0.1:{port}/x")).unwrap();
    let err = Database::connect(&options).await.map(|_| ()).unwrap_err();
    assert!(err.is_connection(), "{err}");
}

#[tokio::test]
async fn used_packages_deploy_first_and_are_found_next_to_the_user() {
    let db = TestDb::new().await;
    let root = tempfile::tempdir().unwrap();
    write_package(
        &root.path().join("core"),
        "acme/core",
        "core",
        "",
        &[(
            "0001_customer.sql",
            "CREATE TABLE customer (id int PRIMARY KEY);\n",
        )],
    );
    write_package(
        &root.path().join("billing"),
        "acme/billing",
        "billing",
        "uses = [\"acme/core\"]",
        &[(
            "0001_invoice.sql",
            "CREATE TABLE invoice (id int, customer int REFERENCES core.customer);\n",
        )],
    );
    let project = Project::load(&[root.path().join("billing")]).unwrap();
    let order: Vec<&str> = project.packages().iter().map(|p| p.name()).collect();
    assert_eq!(order, ["acme/core", "acme/billing"]);

    let mut conn = connect(&db).await;
    let report = pgstrata::up(&mut conn, &project, &UpOptions::default(), &mut Quiet)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    let ran: Vec<String> = report
        .migrations
        .iter()
        .map(|m| format!("{}:{}", m.package, m.name))
        .collect();
    assert_eq!(
        ran,
        [
            "strata:0001_history",
            "strata:0002_managed",
            "strata:0003_repeatable",
            "strata:0004_managed_kinds",
            "strata:0005_interrupted",
            "strata:0006_tenant_schemas",
            "acme/core:0001_customer",
            "acme/billing:0001_invoice"
        ]
    );
    let uses: Vec<String> = conn
        .client()
        .query_one(
            "SELECT uses FROM strata.package WHERE name = 'acme/billing'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(uses, ["acme/core"]);
}

#[tokio::test]
async fn extensions_are_created_before_the_migrations() {
    let db = TestDb::new().await;
    let dir = package_dir(
        "acme/ext",
        "ext",
        "extensions = [\"citext\"]",
        &[("0001_t.sql", "CREATE TABLE t (email citext PRIMARY KEY);\n")],
    );
    let mut conn = connect(&db).await;
    pgstrata::up(
        &mut conn,
        &project(dir.path()),
        &UpOptions::default(),
        &mut Quiet,
    )
    .await
    .unwrap();
    let schema: String = conn
        .client()
        .query_one(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'citext'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        schema, "public",
        "extensions go where the session would put them"
    );
}
