//! Tenant schemas: one package deployed into several schemas of one database (`Package::in_schema`), each with its
//! own history and role, under its own schema lock.

use pgstrata::{Error, Outcome, Package, Project, Quiet, SessionSettings, UpOptions};
use pgtest::TestDb;

use crate::library::support::{connect, package_dir};

fn tenant_project(app: &Package, schema: &str) -> Project {
    Project::new(vec![app.in_schema(schema).unwrap()]).unwrap()
}

const FILES: &[(&str, &str)] = &[
    (
        "0001_items.sql",
        "CREATE TABLE item (id int PRIMARY KEY, name text NOT NULL);\n",
    ),
    (
        "0002_seed.sql",
        "INSERT INTO item VALUES (1, current_schema());\n",
    ),
];

#[tokio::test]
async fn each_schema_gets_its_own_history_role_and_objects() {
    let db = TestDb::new().await;
    let dir = package_dir("acme/app", "app", "", FILES);
    let app = Package::load(dir.path()).unwrap();
    let opts = UpOptions::default();
    // Strata's own tables first, as `strata up --tenant-schemas` does (a tenant deploy may not create them).
    let mut conn = connect(&db).await;
    let refused = pgstrata::up(&mut conn, &tenant_project(&app, "t_1"), &opts, &mut Quiet)
        .await
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Refused { message, .. } if message.contains("strata:0001_history")),
        "{refused}"
    );
    pgstrata::up(&mut conn, &Project::new(vec![]).unwrap(), &opts, &mut Quiet)
        .await
        .unwrap();

    // Three tenants at once, each on its own connection: schema locks do not queue them behind each other.
    let deploys = ["t_1", "t_2", "t 3"].map(|schema| {
        let project = tenant_project(&app, schema);
        let db = &db;
        async move {
            let mut conn = connect(db).await;
            pgstrata::up(&mut conn, &project, &UpOptions::default(), &mut Quiet).await
        }
    });
    let reports = futures_util::future::join_all(deploys).await;
    for r in reports {
        let r = r.unwrap();
        assert_eq!(r.outcome, Outcome::Applied);
        assert_eq!(r.migrations.len(), 2);
    }
    let client = db.client().await;
    let rows = client
        .query(
            "SELECT p.name, p.schema_name, p.role_name, count(m.name)
               FROM strata.package p JOIN strata.migration m ON m.package = p.name
              WHERE p.name <> 'strata'
              GROUP BY 1, 2, 3 ORDER BY 1",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<(String, String, Option<String>, i64)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "acme/app@t 3".into(),
                "t 3".into(),
                Some("$acme/app@t 3".into()),
                2
            ),
            (
                "acme/app@t_1".into(),
                "t_1".into(),
                Some("$acme/app@t_1".into()),
                2
            ),
            (
                "acme/app@t_2".into(),
                "t_2".into(),
                Some("$acme/app@t_2".into()),
                2
            ),
        ]
    );
    // The SQL ran with the tenant schema first on the search_path, as the tenant's role.
    let seeded: String = client
        .query_one(r#"SELECT name FROM "t 3".item"#, &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(seeded, "t 3");
    let owner: String = client
        .query_one(
            "SELECT tableowner::text FROM pg_tables WHERE schemaname = 't_2' AND tablename = 'item'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owner, "$acme/app@t_2");
    // Each tenant's runs say which schema they were for.
    let runs: Vec<String> = client
        .query(
            "SELECT schema_name FROM strata.run WHERE schema_name IS NOT NULL ORDER BY schema_name",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(runs, ["t 3", "t_1", "t_2"]);
    let last = pgstrata::history::last_schema_runs(&client, &["t_1", "nope"])
        .await
        .unwrap();
    assert_eq!(last.keys().collect::<Vec<_>>(), ["t_1"]);

    // A new migration goes to one tenant; the others' history is untouched, and a re-run is a no-op.
    let mut files = FILES.to_vec();
    files.push(("0003_more.sql", "ALTER TABLE item ADD COLUMN note text;\n"));
    let dir2 = package_dir("acme/app", "app", "", &files);
    let app2 = Package::load(dir2.path()).unwrap();
    let mut conn = connect(&db).await;
    let r = pgstrata::up(&mut conn, &tenant_project(&app2, "t_1"), &opts, &mut Quiet)
        .await
        .unwrap();
    assert_eq!(r.migrations.len(), 1);
    let r = pgstrata::up(&mut conn, &tenant_project(&app2, "t_1"), &opts, &mut Quiet)
        .await
        .unwrap();
    assert_eq!(r.outcome, Outcome::Noop);
    let plan = pgstrata::plan(&conn, &tenant_project(&app2, "t_2"), &Default::default())
        .await
        .unwrap();
    assert_eq!(plan.steps.len(), 1);
    assert_eq!(plan.steps[0].package, "acme/app@t_2");
}

#[tokio::test]
async fn a_schema_lock_holds_off_only_its_own_schema_and_the_database_lock_holds_off_all() {
    let db = TestDb::new().await;
    let dir = package_dir("acme/app", "app", "", FILES);
    let app = Package::load(dir.path()).unwrap();
    let mut conn = connect(&db).await;
    pgstrata::up(
        &mut conn,
        &Project::new(vec![]).unwrap(),
        &UpOptions::default(),
        &mut Quiet,
    )
    .await
    .unwrap();
    let opts = UpOptions {
        session: SessionSettings {
            lock_wait_timeout: Some("300ms".parse().unwrap()),
            ..Default::default()
        },
        ..Default::default()
    };
    // Someone deploying into t_1 (the same locks a deploy into t_1 takes).
    let holder = db.client().await;
    holder
        .query_one(
            "SELECT pg_advisory_lock_shared($1), pg_advisory_lock($2, hashtext('t_1'))",
            &[&pgstrata::STRATA_LOCK_KEY, &0x5354_5241i32],
        )
        .await
        .unwrap();
    let err = pgstrata::up(&mut conn, &tenant_project(&app, "t_1"), &opts, &mut Quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    pgstrata::up(&mut conn, &tenant_project(&app, "t_2"), &opts, &mut Quiet)
        .await
        .unwrap();
    // A deploy of the database's packages waits for every tenant deploy.
    let err = pgstrata::up(&mut conn, &Project::new(vec![]).unwrap(), &opts, &mut Quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    holder
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    // And a tenant deploy waits for a deploy of the database's packages.
    holder
        .query_one("SELECT pg_advisory_lock($1)", &[&pgstrata::STRATA_LOCK_KEY])
        .await
        .unwrap();
    let err = pgstrata::up(&mut conn, &tenant_project(&app, "t_3"), &opts, &mut Quiet)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::LockTimeout { .. }), "{err}");
    holder
        .batch_execute("SELECT pg_advisory_unlock_all()")
        .await
        .unwrap();
    // The waiting deploys left no lock behind.
    let locks: i64 = holder
        .query_one(
            // This database's only: other tests deploy into other databases of the shared cluster meanwhile.
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(locks, 0);
}

#[test]
fn a_package_goes_into_one_tenant_schema_at_a_time() {
    let dir = package_dir("acme/app", "app", "", FILES);
    let app = Package::load(dir.path()).unwrap();
    let one = app.in_schema("t_1").unwrap();
    assert!(one.in_schema("t_2").is_err());
    assert!(app.in_schema("pg_temp").is_err());
    assert!(app.in_schema(&"x".repeat(64)).is_err());
    assert_eq!(app.instance_of(), None);
}
