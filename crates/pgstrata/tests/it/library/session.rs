//! Deploying over a connection the application owns: the session settings apply while migrations run, and the
//! connection is handed back as it was (no transaction, no lock, the original search_path and timeouts).

use pgstrata::{
    Database, DownOptions, DownTarget, Outcome, Quiet, STRATA_LOCK_KEY, SessionSettings, UpOptions,
};
use pgtest::TestDb;

use crate::library::support::{package_dir, project};

async fn session_state(db: &Database) -> (String, String, String, i64, String) {
    let row = db
        .client()
        .query_one(
            "SELECT current_setting('search_path'), current_setting('lock_timeout'),
                    current_setting('statement_timeout'),
                    (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()),
                    (SELECT state FROM pg_stat_activity WHERE pid = pg_backend_pid())",
            &[],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

#[tokio::test]
async fn the_callers_connection_is_left_as_it_was() {
    let db = TestDb::new().await;
    let dir = package_dir(
        "acme/app",
        "app",
        "",
        &[
            (
                "0001_t.sql",
                "-- migrate:up\nCREATE TABLE t (id int);\nDO $$ BEGIN ASSERT current_setting('lock_timeout') = '1500ms'; END $$;\n-- migrate:down\nDROP TABLE t;\n",
            ),
            (
                "0002_index.sql",
                "-- strata:no-transaction\n-- migrate:up\nCREATE INDEX CONCURRENTLY t_id ON t (id);\n\
                 DO $$ BEGIN ASSERT current_setting('statement_timeout') = '1min'; END $$;\n\
                 -- migrate:down\nDROP INDEX CONCURRENTLY t_id;\n",
            ),
            ("0003_after.sql", "CREATE TABLE after_index (id int);\n"),
        ],
    );
    let app = project(dir.path());
    // The application's own client, with its own settings.
    let client = db.client().await;
    client
        .batch_execute("SET search_path = public; SET lock_timeout = '7s'")
        .await
        .unwrap();
    let mut conn = Database::new(client);
    let before = session_state(&conn).await;

    let opts = UpOptions {
        session: SessionSettings {
            lock_timeout: Some("1500ms".parse().unwrap()),
            statement_timeout: Some("1min".parse().unwrap()),
            lock_wait_timeout: None,
        },
        ..UpOptions::default()
    };
    let report = pgstrata::up(&mut conn, &app, &opts, &mut Quiet)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    assert_eq!(session_state(&conn).await, before);

    let down = pgstrata::down(
        &mut conn,
        &DownOptions {
            target: DownTarget::Steps(3),
            packages: Some(vec!["acme/app".into()]),
            ..DownOptions::default()
        },
        &mut Quiet,
    )
    .await;
    // 0003 has no down SQL: refused, nothing reverted, and the connection is still as it was.
    let refused = down.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("no down SQL was recorded for: acme/app:0003_after"),
        "{refused}"
    );
    assert_eq!(session_state(&conn).await, before);

    // Failing runs hand the connection back intact too.
    let failing = package_dir(
        "acme/app",
        "app",
        "",
        &[("0001_t.sql", "CREATE TABLE t (id int);\nSELECT 1/0;\n")],
    );
    let other = TestDb::new().await;
    let mut conn2 = Database::new(other.client().await);
    let before2 = session_state(&conn2).await;
    let err = pgstrata::up(&mut conn2, &project(failing.path()), &opts, &mut Quiet)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("22012"));
    assert_eq!(session_state(&conn2).await, before2);
}

#[tokio::test]
async fn statement_and_lock_timeouts_apply_to_migrations() {
    let db = TestDb::new().await;
    let dir = package_dir(
        "acme/slow",
        "slow",
        "",
        &[(
            "0001_sleep.sql",
            "CREATE TABLE t (id int);\nSELECT pg_sleep(30);\n",
        )],
    );
    let slow = project(dir.path());
    let mut conn = crate::library::support::connect(&db).await;
    let opts = UpOptions {
        session: SessionSettings {
            statement_timeout: Some("200ms".parse().unwrap()),
            ..SessionSettings::default()
        },
        ..UpOptions::default()
    };
    let err = pgstrata::up(&mut conn, &slow, &opts, &mut Quiet)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("57014"), "{err}");

    // A table another session holds: lock_timeout gives up instead of queueing every later query behind us.
    let other = TestDb::new().await;
    let holder = other.client().await;
    holder
        .batch_execute("CREATE SCHEMA busy; CREATE TABLE busy.t (id int)")
        .await
        .unwrap();
    holder
        .batch_execute("BEGIN; LOCK TABLE busy.t")
        .await
        .unwrap();
    let dir = package_dir(
        "acme/busy",
        "busy",
        "security = { adopt_schema = true }",
        &[("0001_alter.sql", "ALTER TABLE t ADD c int;\n")],
    );
    let mut conn = crate::library::support::connect(&other).await;
    let opts = UpOptions {
        session: SessionSettings {
            lock_timeout: Some("200ms".parse().unwrap()),
            ..SessionSettings::default()
        },
        ..UpOptions::default()
    };
    let err = pgstrata::up(&mut conn, &project(dir.path()), &opts, &mut Quiet)
        .await
        .unwrap_err();
    assert_eq!(err.sqlstate(), Some("55P03"), "{err}");
    holder.batch_execute("ROLLBACK").await.unwrap();
    pgstrata::up(&mut conn, &project(dir.path()), &opts, &mut Quiet)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_lock_wait_timeout_is_a_lock_timeout_error() {
    let db = TestDb::new().await;
    let dir = package_dir(
        "acme/app",
        "app",
        "",
        &[("0001_t.sql", "CREATE TABLE t (id int);\n")],
    );
    let holder = db.client().await;
    holder
        .query_one("SELECT pg_advisory_lock($1)", &[&STRATA_LOCK_KEY])
        .await
        .unwrap();
    let mut conn = crate::library::support::connect(&db).await;
    let opts = UpOptions {
        session: SessionSettings {
            lock_wait_timeout: Some("100ms".parse().unwrap()),
            ..SessionSettings::default()
        },
        ..UpOptions::default()
    };
    let mut waited = false;
    let mut observer = |e: pgstrata::Event<'_>| {
        if matches!(e, pgstrata::Event::LockWaiting) {
            waited = true;
        }
    };
    let err = pgstrata::up(&mut conn, &project(dir.path()), &opts, &mut observer)
        .await
        .unwrap_err();
    assert!(matches!(err, pgstrata::Error::LockTimeout { .. }), "{err}");
    assert!(waited);
    assert!(!err.is_usage() && !err.is_connection());

    holder
        .query_one("SELECT pg_advisory_unlock($1)", &[&STRATA_LOCK_KEY])
        .await
        .unwrap();
    let report = pgstrata::up(&mut conn, &project(dir.path()), &opts, &mut Quiet)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
}
