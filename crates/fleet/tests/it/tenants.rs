//! Tenant schemas: 500 schemas of one database get the package, each with its own history; then a new migration
//! goes to all of them, and to a new tenant, in one run.

use pgstrata::{Database, Package, Project};
use pgstrata_fleet::{FleetOptions, OnFailure, QuietFleet, StateStore, TargetHealth, Targets};
use pgtest::TestDb;

use crate::support::write_package;

/// 500 tenant schemas; 50 when the version matrix runs the suite again (`STRATA_TEST_SCALE_DOWN`).
fn tenant_count() -> usize {
    crate::support::scaled(500, 50)
}

#[tokio::test]
async fn five_hundred_tenant_schemas_then_a_new_migration_to_all() {
    let db = TestDb::new().await;
    let client = db.client().await;
    let count = tenant_count();
    client
        .batch_execute(&format!(
            "DO $$ BEGIN FOR i IN 1..{count} LOOP
               EXECUTE format('CREATE SCHEMA %I', 'tenant_' || lpad(i::text, 4, '0'));
             END LOOP; END $$;
             CREATE SCHEMA not_a_tenant;"
        ))
        .await
        .unwrap();
    let options = pgstrata_conn::ConnectOptions::parse(&db.url()).unwrap();
    let conn = Database::connect(&options).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = vec![
        (
            "0001_orders.sql",
            "CREATE TABLE orders (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, total numeric NOT NULL);\n",
        ),
        (
            "0002_seed.sql",
            "INSERT INTO orders (total) VALUES (1), (2);\n",
        ),
    ];
    write_package(dir.path(), "", &files);
    let load = || Project::new(vec![Package::load(dir.path()).unwrap()]).unwrap();
    let targets = Targets::tenant_schemas(&conn, &options, &load(), "tenant\\_%", &[])
        .await
        .unwrap();
    assert_eq!(targets.list().len(), tenant_count());
    let store = StateStore::Control(Box::new(options.clone()));
    let opts = FleetOptions {
        jobs: 4,
        on_failure: OnFailure::Continue,
        ..FleetOptions::default()
    };
    let report = pgstrata_fleet::up(&load(), &targets, &opts, &store, None, &mut QuietFleet)
        .await
        .unwrap();
    assert!(report.success(), "{:?}", report.counts);
    assert_eq!(report.counts.changed, tenant_count());
    assert!(report.targets.iter().all(|t| t.migrations.len() == 2));

    // A new migration, and a new tenant, in one run.
    files.push((
        "0003_status.sql",
        "ALTER TABLE orders ADD COLUMN status text NOT NULL DEFAULT 'new';\n",
    ));
    write_package(dir.path(), "", &files);
    let targets = Targets::tenant_schemas(
        &conn,
        &options,
        &load(),
        "tenant\\_%",
        &["tenant_new".into()],
    )
    .await
    .unwrap();
    assert_eq!(targets.list().len(), tenant_count() + 1);
    let before = targets
        .list()
        .iter()
        .find(|t| t.name == "tenant_new")
        .and_then(|t| t.schema.clone());
    assert_eq!(before.as_deref(), Some("tenant_new"));
    let report = pgstrata_fleet::up(&load(), &targets, &opts, &store, None, &mut QuietFleet)
        .await
        .unwrap();
    assert!(report.success(), "{:?}", report.counts);
    for t in &report.targets {
        let want: &[&str] = if t.target == "tenant_new" {
            &[
                "acme/app@tenant_new:0001_orders",
                "acme/app@tenant_new:0002_seed",
                "acme/app@tenant_new:0003_status",
            ]
        } else {
            &[]
        };
        if t.target == "tenant_new" {
            assert_eq!(t.migrations, want);
        } else {
            assert_eq!(t.migrations, [format!("acme/app@{}:0003_status", t.target)]);
        }
    }

    // Every schema has its own history and objects; the schema that did not match got nothing.
    let row = client
        .query_one(
            "SELECT count(DISTINCT package), count(*),
                    (SELECT count(*) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
                       JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE c.relname = 'orders' AND a.attname = 'status' AND n.nspname LIKE 'tenant%'),
                    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                      WHERE n.nspname = 'not_a_tenant')
               FROM strata.migration WHERE package LIKE 'acme/app@tenant%'",
            &[],
        )
        .await
        .unwrap();
    let got: (i64, i64, i64, i64) = (row.get(0), row.get(1), row.get(2), row.get(3));
    assert_eq!(
        got,
        (
            tenant_count() as i64 + 1,
            3 * (tenant_count() as i64 + 1),
            tenant_count() as i64 + 1,
            0
        )
    );
    let orders: i64 = client
        .query_one(
            "SELECT count(*) FROM tenant_0021.orders WHERE status = 'new'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orders, 2);

    // Status reads all their histories at once: everything up to date, each with its last run.
    let statuses = pgstrata_fleet::status(&load(), &targets, 4, None)
        .await
        .unwrap();
    assert_eq!(statuses.len(), tenant_count() + 1);
    assert!(
        statuses
            .iter()
            .all(|s| s.health == TargetHealth::UpToDate && s.last_run.is_some())
    );
}

/// Tenants share their database's connections: one job deploys three tenants over one connection, and what a
/// tenant's migration leaves in its session (a setting, a temporary table) is gone before the next tenant's deploy.
#[tokio::test]
async fn tenants_reuse_a_reset_connection() {
    let db = TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute("CREATE SCHEMA reuse_1; CREATE SCHEMA reuse_2; CREATE SCHEMA reuse_3;")
        .await
        .unwrap();
    let default_work_mem: String = client
        .query_one("SELECT current_setting('work_mem')", &[])
        .await
        .unwrap()
        .get(0);
    let options = pgstrata_conn::ConnectOptions::parse(&db.url()).unwrap();
    let conn = Database::connect(&options).await.unwrap();
    let (_dir, project) = crate::support::project(
        "",
        &[(
            "0001_seen.sql",
            "CREATE TEMP TABLE scratch (x int);\n\
             CREATE TABLE seen AS SELECT pg_backend_pid() AS pid, current_setting('work_mem') AS work_mem;\n\
             SET work_mem = '7MB';\n",
        )],
    );
    let targets = Targets::tenant_schemas(&conn, &options, &project, "reuse\\_%", &[])
        .await
        .unwrap();
    assert_eq!(targets.list().len(), 3);
    let opts = FleetOptions {
        jobs: 1,
        ..FleetOptions::default()
    };
    let state = tempfile::tempdir().unwrap();
    let store = StateStore::Dir(state.path().to_path_buf());
    let report = pgstrata_fleet::up(&project, &targets, &opts, &store, None, &mut QuietFleet)
        .await
        .unwrap();
    assert!(report.success(), "{:?}", report.targets);
    let rows = client
        .query(
            "SELECT pid, work_mem FROM reuse_1.seen UNION ALL SELECT pid, work_mem FROM reuse_2.seen
             UNION ALL SELECT pid, work_mem FROM reuse_3.seen",
            &[],
        )
        .await
        .unwrap();
    let pids: std::collections::BTreeSet<i32> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(pids.len(), 1, "one connection for the three tenants");
    for r in &rows {
        let work_mem: String = r.get(1);
        assert_eq!(
            work_mem, default_work_mem,
            "a setting leaked into the next tenant"
        );
    }
}
