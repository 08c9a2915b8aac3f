//! Unix sockets and password authentication over TCP, on a cluster without TLS.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use pgstrata_conn::{ConnectOptions, Error};
use tokio_postgres::error::SqlState;

use crate::support::{ALICE_PASSWORD, TcpCluster, env_of, error_text, try_connect};

const HBA: &str = "\
local all all trust
host all all 127.0.0.1/32 scram-sha-256
";

/// libpq `key=value` quoting.
fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\\', r"\\").replace('\'', r"\'"))
}

/// One cluster (starting one costs a second or more) for every check that needs no TLS.
#[tokio::test]
async fn cluster_without_tls() {
    let server = TcpCluster::start(HBA, None).await;
    unix_socket(&server).await;
    passwords_in_the_connection_string(&server).await;
    passwords_from_the_environment_and_pgpass(&server).await;
}

async fn unix_socket(server: &TcpCluster) {
    // Unix socket, as pgstrata-embedded/pgtest URLs give it; trust auth, never TLS.
    let socket = ConnectOptions::parse(&server.cluster.url("postgres")).unwrap();
    assert!(socket.is_unix_socket());
    let conn = socket.connect().await.unwrap();
    let over_socket: bool = conn
        .client
        .query_one("SELECT inet_server_addr() IS NULL", &[])
        .await
        .unwrap()
        .get(0);
    assert!(over_socket);
    // libpq skips TLS on sockets whatever the sslmode, even with no root certificate around.
    let strict = ConnectOptions::parse(&format!(
        "{}&sslmode=verify-full&sslrootcert=/nonexistent/root.crt",
        server.cluster.url("postgres")
    ))
    .unwrap();
    assert_eq!(try_connect(&strict).await, Ok(false));
    // Nor are libpq's client certificate files read then: broken ones do not matter.
    let home = tempfile::tempdir().unwrap();
    fs::create_dir(home.path().join(".postgresql")).unwrap();
    for file in ["postgresql.crt", "postgresql.key", "root.crt"] {
        fs::write(home.path().join(".postgresql").join(file), "not PEM").unwrap();
    }
    let env = env_of(&[("HOME", home.path().to_str().unwrap())]);
    let opts = ConnectOptions::resolve(Some(&server.cluster.url("postgres")), &env).unwrap();
    assert_eq!(try_connect(&opts).await, Ok(false));
    let tcp = format!(
        "host=127.0.0.1 port={} user=alice sslmode=require",
        server.port()
    );
    let error = ConnectOptions::resolve(Some(&tcp), &env)
        .unwrap()
        .connect()
        .await
        .err()
        .expect("unreadable certificates accepted");
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
}

async fn passwords_in_the_connection_string(server: &TcpCluster) {
    let port = server.port();
    // The password in a URL, percent-encoded, and in a quoted key=value string.
    let encoded: String = ALICE_PASSWORD
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect();
    let url = format!("postgresql://alice:{encoded}@127.0.0.1:{port}/postgres");
    let alice = ConnectOptions::parse(&url).unwrap();
    // sslmode=prefer (the default) falls back to plain text: this server has no TLS.
    assert_eq!(try_connect(&alice).await, Ok(false));
    let conninfo = format!(
        "host=127.0.0.1 port={port} user=alice dbname=postgres password={}",
        quoted(ALICE_PASSWORD)
    );
    let conn = ConnectOptions::parse(&conninfo)
        .unwrap()
        .connect()
        .await
        .unwrap();
    let user: String = conn
        .client
        .query_one("SELECT current_user::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(user, "alice");

    // A wrong password: a connection error with the server's code, and no password in sight.
    let wrong = alice.with_password("Wr0ng-Guess");
    let error = wrong
        .connect()
        .await
        .err()
        .expect("wrong password accepted");
    assert!(error.is_connection());
    assert_eq!(error.code(), Some(&SqlState::INVALID_PASSWORD));
    let text = format!("{} {error:?} {}", error_text(&error), wrong);
    assert!(
        text.contains(&format!("postgresql://alice@127.0.0.1:{port}/postgres")),
        "{text}"
    );
    assert!(text.contains("password authentication failed"), "{text}");
    for secret in ["Wr0ng-Guess", ALICE_PASSWORD, &encoded] {
        assert!(!text.contains(secret), "{text}");
    }

    // wait_until_ready does not wait out a rejected password.
    let start = Instant::now();
    let error = wrong
        .wait_until_ready(Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Connect { .. }), "{error:?}");
    assert!(start.elapsed() < Duration::from_secs(5));
    alice
        .wait_until_ready(Duration::from_secs(30))
        .await
        .unwrap();

    // sslmode=require and verify-full never fall back to plain text.
    for mode in ["sslmode=require", "sslrootcert=system"] {
        let strict = ConnectOptions::parse(&format!("{url}?{mode}")).unwrap();
        let error = try_connect(&strict).await.unwrap_err();
        assert!(
            error.contains("server does not support TLS"),
            "{mode}: {error}"
        );
    }
}

async fn passwords_from_the_environment_and_pgpass(server: &TcpCluster) {
    let port = server.port().to_string();
    let home = tempfile::tempdir().unwrap();
    let home_text = home.path().to_str().unwrap();
    let target = format!("postgresql://alice@127.0.0.1:{port}/postgres");

    for var in ["PGPASSWORD", "POSTGRES_PASSWORD"] {
        let opts = ConnectOptions::resolve(
            Some(&target),
            &env_of(&[(var, ALICE_PASSWORD), ("HOME", home_text)]),
        )
        .unwrap();
        assert_eq!(try_connect(&opts).await, Ok(false), "{var}");
    }

    // Seed 001's variables alone describe the whole connection.
    let seed_env = env_of(&[
        ("POSTGRES_HOST", "127.0.0.1"),
        ("POSTGRES_PORT", &port),
        ("POSTGRES_DATABASE", "postgres"),
        ("POSTGRES_USER", "alice"),
        ("POSTGRES_PASSWORD", ALICE_PASSWORD),
        ("POSTGRES_SSL", "false"),
    ]);
    let opts = ConnectOptions::resolve(None, &seed_env).unwrap();
    assert_eq!(try_connect(&opts).await, Ok(false));

    // ~/.pgpass, with `:` and `\` escaped; only used while private to its owner.
    let pgpass = home.path().join(".pgpass");
    let escaped = ALICE_PASSWORD.replace('\\', r"\\").replace(':', r"\:");
    fs::write(
        &pgpass,
        format!("127.0.0.1:{port}:other_db:alice:wrong\n127.0.0.1:*:*:alice:{escaped}\n"),
    )
    .unwrap();
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o600)).unwrap();
    let from_home =
        || ConnectOptions::resolve(Some(&target), &env_of(&[("HOME", home_text)])).unwrap();
    assert_eq!(try_connect(&from_home()).await, Ok(false));
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o644)).unwrap();
    let ignored = from_home();
    assert_eq!(ignored.password(), None);
    let error = try_connect(&ignored).await.unwrap_err();
    assert!(error.contains("password"), "{error}");
}
