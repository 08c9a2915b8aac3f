//! Notices, notifications and per-connection settings, on pgtest's cluster.

use std::time::Duration;

use pgstrata_conn::ConnectOptions;
use tokio::time::timeout;

const PATIENCE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn notices_and_notifications_are_forwarded() {
    let db = pgtest::TestDb::new().await;
    let opts = ConnectOptions::parse(&db.url()).unwrap();
    let mut conn = opts.connect().await.unwrap();
    conn.client
        .batch_execute(
            "DO $$ BEGIN RAISE NOTICE 'first %', 1; RAISE WARNING 'second' USING HINT = 'h'; END $$",
        )
        .await
        .unwrap();
    let first = timeout(PATIENCE, conn.notices.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.severity(), first.message()), ("NOTICE", "first 1"));
    let second = timeout(PATIENCE, conn.notices.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((second.severity(), second.message()), ("WARNING", "second"));
    assert_eq!(second.hint(), Some("h"));

    conn.client.batch_execute("LISTEN jobs").await.unwrap();
    let other = opts.connect().await.unwrap();
    other
        .client
        .batch_execute("NOTIFY jobs, 'payload 1'; NOTIFY jobs, 'payload 2'")
        .await
        .unwrap();
    for expected in ["payload 1", "payload 2"] {
        let notification = timeout(PATIENCE, conn.notifications.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (notification.channel(), notification.payload()),
            ("jobs", expected)
        );
    }
}

#[tokio::test]
async fn dropped_receivers_do_not_break_the_connection() {
    let db = pgtest::TestDb::new().await;
    let conn = ConnectOptions::parse(&db.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = conn.client;
    drop((conn.notices, conn.notifications));
    client
        .batch_execute("DO $$ BEGIN RAISE NOTICE 'nobody listens'; END $$")
        .await
        .unwrap();
    let one: i32 = client.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(one, 1);
}

#[tokio::test]
async fn with_dbname_and_application_name() {
    let db = pgtest::TestDb::new().await;
    let opts = ConnectOptions::parse(&db.url())
        .unwrap()
        .with_application_name("strata-conn-test");
    let conn = opts.connect().await.unwrap();
    let row = conn
        .client
        .query_one(
            "SELECT current_database(), application_name FROM pg_stat_activity WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), db.name());
    assert_eq!(row.get::<_, String>(1), "strata-conn-test");

    let admin = opts.with_dbname("postgres").connect().await.unwrap();
    let name: String = admin
        .client
        .query_one("SELECT current_database()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "postgres");
}

/// issue 16.5: the program's name never overrides the user's `application_name`.
#[tokio::test]
async fn the_users_application_name_reaches_the_server() {
    let db = pgtest::TestDb::new().await;
    let url = db.url();
    let separator = if url.contains('?') { '&' } else { '?' };
    let seen = async |opts: ConnectOptions| -> (String, String) {
        let conn = opts
            .with_application_name("strata-conn-test")
            .connect()
            .await
            .unwrap();
        let row = conn
            .client
            .query_one(
                "SELECT application_name, current_setting('application_name') \
                 FROM pg_stat_activity WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    let in_url = format!("{url}{separator}application_name=billing%20deploy");
    let from_url = ConnectOptions::resolve(Some(&in_url), &crate::support::env_of(&[])).unwrap();
    let from_env = ConnectOptions::resolve(
        Some(&url),
        &crate::support::env_of(&[("PGAPPNAME", "billing deploy")]),
    )
    .unwrap();
    for opts in [from_url, from_env] {
        let expected = "billing deploy".to_owned();
        assert_eq!(seen(opts).await, (expected.clone(), expected));
    }
    let none = ConnectOptions::resolve(Some(&url), &crate::support::env_of(&[])).unwrap();
    let program = "strata-conn-test".to_owned();
    assert_eq!(seen(none).await, (program.clone(), program));
}
