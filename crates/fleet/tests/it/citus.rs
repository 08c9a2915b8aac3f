//! What a Citus coordinator would see of a Strata deploy, checked on plain PostgreSQL (Citus cannot be installed
//! here; README "Fleets", "Citus"): the deploy lock is an advisory lock of the session on the database Strata
//! connects to (the coordinator: Citus does not propagate advisory locks), and with `package_role = false` the
//! migrations run as the login itself, never switching role inside the deploy transaction (Citus connects to the
//! workers as the current user, which a NOLOGIN package role cannot be, and does not support changing the user
//! inside a transaction).

use pgstrata::{Package, Project, Quiet, STRATA_LOCK_KEY, UpOptions};
use pgtest::TestDb;

use crate::support::write_package;

/// A migration that records the advisory locks its own session holds, and who it runs as.
const PROBE: &str = "CREATE TABLE seen AS
  SELECT current_user::text AS run_as, session_user::text AS login,
         (SELECT array_agg(mode || ':' || classid || ':' || objid || ':' || objsubid ORDER BY mode)
            FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()) AS locks;
";

fn key_parts(key: i64) -> (i64, i64) {
    (key >> 32, key & 0xffff_ffff)
}

async fn deploy(db: &TestDb, extra: &str, schema: Option<&str>) -> (String, String, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    write_package(dir.path(), extra, &[("0001_probe.sql", PROBE)]);
    let mut app = Package::load(dir.path()).unwrap();
    if let Some(s) = schema {
        app = app.in_schema(s).unwrap();
    }
    let mut conn = crate::support::connect(db.name()).await;
    pgstrata::up(
        &mut conn,
        &Project::new(vec![]).unwrap(),
        &UpOptions::default(),
        &mut Quiet,
    )
    .await
    .unwrap();
    pgstrata::up(
        &mut conn,
        &Project::new(vec![app]).unwrap(),
        &UpOptions::default(),
        &mut Quiet,
    )
    .await
    .unwrap();
    let table = format!("\"{}\".seen", schema.unwrap_or("app"));
    let row = conn
        .client()
        .query_one(&format!("SELECT run_as, login, locks FROM {table}"), &[])
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2))
}

#[tokio::test]
async fn a_database_deploy_holds_one_advisory_lock_and_runs_as_the_login_without_package_roles() {
    let db = TestDb::new().await;
    let (role, login, locks) = deploy(&db, "[security]\npackage_role = false", None).await;
    assert_eq!(role, login, "no SET ROLE inside the deploy transaction");
    let (class, obj) = key_parts(STRATA_LOCK_KEY);
    assert_eq!(locks, [format!("ExclusiveLock:{class}:{obj}:1")]);
}

#[tokio::test]
async fn with_package_roles_migrations_run_as_a_role_that_cannot_log_in() {
    let db = TestDb::new().await;
    let (role, login, _) = deploy(&db, "", None).await;
    assert_eq!(role, "$acme/app");
    assert_ne!(role, login);
    let can_login: bool = db
        .client()
        .await
        .query_one(
            "SELECT rolcanlogin FROM pg_roles WHERE rolname = '$acme/app'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!can_login);
}

#[tokio::test]
async fn a_tenant_deploy_holds_the_database_key_shared_and_its_schema_key() {
    let db = TestDb::new().await;
    let (_, _, locks) = deploy(&db, "[security]\npackage_role = false", Some("tenant_7")).await;
    let (class, obj) = key_parts(STRATA_LOCK_KEY);
    let hash: i32 = db
        .client()
        .await
        .query_one("SELECT hashtext('tenant_7')", &[])
        .await
        .unwrap()
        .get(0);
    // pg_locks shows the two-key form's keys as unsigned oids.
    let schema_obj = u32::from_ne_bytes(hash.to_ne_bytes());
    assert_eq!(
        locks,
        [
            format!("ExclusiveLock:{}:{schema_obj}:2", 0x5354_5241),
            format!("ShareLock:{class}:{obj}:1"),
        ]
    );
}
