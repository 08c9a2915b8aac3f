//! `wait_until_ready`.

use std::net::TcpListener;
use std::time::{Duration, Instant};

use pgstrata_conn::{ConnectOptions, Error};

#[tokio::test]
async fn nothing_listening_times_out_with_a_clear_error() {
    // A port that was free a moment ago; nothing listens on it now.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let opts = ConnectOptions::parse(&format!(
        "postgresql://nobody:hush@127.0.0.1:{port}/nothing"
    ))
    .unwrap();
    let start = Instant::now();
    let error = opts
        .wait_until_ready(Duration::from_secs(1))
        .await
        .unwrap_err();
    let waited = start.elapsed();
    assert!(
        (Duration::from_secs(1)..Duration::from_secs(3)).contains(&waited),
        "{waited:?}"
    );
    assert!(error.is_connection());
    assert!(matches!(error, Error::Timeout { .. }), "{error:?}");
    let message = error.to_string();
    assert!(
        message.starts_with(&format!(
            "postgresql://nobody@127.0.0.1:{port}/nothing did not accept connections within 1."
        )),
        "{message}"
    );
    assert!(message.contains("Connection refused"), "{message}");
    assert!(!message.contains("hush") && !format!("{error:?}").contains("hush"));
}

#[tokio::test]
async fn a_missing_database_counts_as_up() {
    let opts = ConnectOptions::parse(&pgtest::cluster_url("no_such_database_here")).unwrap();
    let error = opts
        .connect()
        .await
        .err()
        .expect("the database must not exist");
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::INVALID_CATALOG_NAME)
    );
    let took = opts
        .wait_until_ready(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[tokio::test]
async fn a_running_server_is_ready_at_once() {
    let db = pgtest::TestDb::new().await;
    let opts = ConnectOptions::parse(&db.url()).unwrap();
    let took = opts
        .wait_until_ready(Duration::from_secs(30))
        .await
        .unwrap();
    assert!(took < Duration::from_secs(5), "{took:?}");
}
