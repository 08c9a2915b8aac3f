//! Every sslmode against a TLS-enabled cluster with a self-signed CA.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use pgstrata_conn::{ConnectOptions, Error};

use crate::support::{
    ALICE_PASSWORD, Certs, SelfSigned, TcpCluster, env_of, shared_tempdir, try_connect,
};

const HBA: &str = "\
local all all trust
hostssl all certuser 127.0.0.1/32 cert
host all alice 127.0.0.1/32 scram-sha-256
";

/// A home directory with the given files under `.postgresql/`.
fn home_with(files: &[(&str, &Path)]) -> tempfile::TempDir {
    let home = shared_tempdir();
    let dir = home.path().join(".postgresql");
    fs::create_dir(&dir).unwrap();
    for (name, source) in files {
        fs::copy(source, dir.join(name)).unwrap();
        fs::set_permissions(dir.join(name), fs::Permissions::from_mode(0o600)).unwrap();
    }
    home
}

enum Expect {
    /// Connected, over TLS or not.
    Tls(bool),
    /// Failed, with this in the error's text.
    Fails(&'static str),
}

#[tokio::test]
async fn sslmodes() {
    let certs = Certs::generate();
    let server = TcpCluster::start(HBA, Some(&certs)).await;
    let port = server.port();
    let (ca, other_ca) = (certs.ca.display(), certs.other_ca.display());
    let (client_cert, client_key) = (certs.client_cert.display(), certs.client_key.display());

    let empty_home = shared_tempdir();
    let home_right_ca = home_with(&[("root.crt", &certs.ca)]);
    let home_other_ca = home_with(&[("root.crt", &certs.other_ca)]);
    let home_client = home_with(&[
        ("root.crt", &certs.ca),
        ("postgresql.crt", &certs.client_cert),
        ("postgresql.key", &certs.client_key),
    ]);

    let localhost = format!("host=localhost hostaddr=127.0.0.1 port={port} dbname=postgres");
    let wrong_name = format!("host=wrong.example hostaddr=127.0.0.1 port={port} dbname=postgres");
    let by_ip = format!("host=127.0.0.1 port={port} dbname=postgres");
    use Expect::{Fails, Tls};
    let handshake = "error performing TLS handshake";
    let cases: Vec<(&str, String, &tempfile::TempDir, Expect)> = vec![
        (
            "disable",
            format!("{localhost} sslmode=disable"),
            &empty_home,
            Tls(false),
        ),
        (
            "allow",
            format!("{localhost} sslmode=allow"),
            &empty_home,
            Tls(true),
        ),
        (
            "prefer",
            format!("{localhost} sslmode=prefer"),
            &empty_home,
            Tls(true),
        ),
        (
            "require without root certificate",
            format!("{wrong_name} sslmode=require"),
            &empty_home,
            Tls(true),
        ),
        (
            "require with sslrootcert verifies the chain",
            format!("{wrong_name} sslmode=require sslrootcert={ca}"),
            &empty_home,
            Tls(true),
        ),
        (
            "require with a foreign sslrootcert",
            format!("{localhost} sslmode=require sslrootcert={other_ca}"),
            &empty_home,
            Fails(handshake),
        ),
        (
            "require with ~/.postgresql/root.crt",
            format!("{localhost} sslmode=require"),
            &home_right_ca,
            Tls(true),
        ),
        (
            "require with a foreign ~/.postgresql/root.crt",
            format!("{localhost} sslmode=require"),
            &home_other_ca,
            Fails(handshake),
        ),
        (
            "verify-ca",
            format!("{localhost} sslmode=verify-ca sslrootcert={ca}"),
            &empty_home,
            Tls(true),
        ),
        (
            "verify-ca ignores the host name",
            format!("{wrong_name} sslmode=verify-ca sslrootcert={ca}"),
            &empty_home,
            Tls(true),
        ),
        (
            "verify-ca with a foreign CA",
            format!("{localhost} sslmode=verify-ca sslrootcert={other_ca}"),
            &empty_home,
            Fails(handshake),
        ),
        (
            "verify-full",
            format!("{localhost} sslmode=verify-full sslrootcert={ca}"),
            &empty_home,
            Tls(true),
        ),
        (
            "verify-full by IP address",
            format!("{by_ip} sslmode=verify-full sslrootcert={ca}"),
            &empty_home,
            Tls(true),
        ),
        (
            "verify-full with ~/.postgresql/root.crt",
            format!("{localhost} sslmode=verify-full"),
            &home_right_ca,
            Tls(true),
        ),
        (
            "verify-full with the wrong host name",
            format!("{wrong_name} sslmode=verify-full sslrootcert={ca}"),
            &empty_home,
            Fails("not valid for name"),
        ),
        (
            "verify-full with a foreign CA",
            format!("{localhost} sslmode=verify-full sslrootcert={other_ca}"),
            &empty_home,
            Fails(handshake),
        ),
        (
            "verify-full with the system's roots",
            format!("{localhost} sslrootcert=system"),
            &empty_home,
            Fails(handshake),
        ),
        (
            "verify-full without any root certificate",
            format!("{localhost} sslmode=verify-full"),
            &empty_home,
            Fails("root.crt\" does not exist"),
        ),
        (
            "verify-ca with a missing sslrootcert",
            format!("{localhost} sslmode=verify-ca sslrootcert=/nonexistent/ca.crt"),
            &empty_home,
            Fails("\"/nonexistent/ca.crt\" does not exist"),
        ),
        (
            "channel binding over TLS",
            format!("{localhost} sslmode=verify-full sslrootcert={ca} channel_binding=require"),
            &empty_home,
            Tls(true),
        ),
        (
            "channel binding needs TLS",
            format!("{localhost} sslmode=disable channel_binding=require"),
            &empty_home,
            Fails("channel binding"),
        ),
    ];
    let alice = [("PGUSER", "alice"), ("PGPASSWORD", ALICE_PASSWORD)];
    for (name, conninfo, home, expect) in &cases {
        let mut vars = alice.to_vec();
        vars.push(("HOME", home.path().to_str().unwrap()));
        let opts = ConnectOptions::resolve(Some(conninfo), &env_of(&vars)).unwrap();
        let outcome = try_connect(&opts).await;
        match (expect, &outcome) {
            (Tls(tls), Ok(used)) if tls == used => {}
            (Fails(text), Err(error)) if error.contains(text) => {
                assert!(!error.contains(ALICE_PASSWORD), "{name}: {error}");
            }
            _ => panic!("{name} ({conninfo}): got {outcome:?}"),
        }
    }

    // Client certificates: the server's `cert` method for certuser.
    let client_cases = [
        (
            "sslcert and sslkey",
            format!(
                "{localhost} user=certuser sslmode=verify-full sslrootcert={ca} sslcert={client_cert} sslkey={client_key}"
            ),
            &empty_home,
            Tls(true),
        ),
        (
            "~/.postgresql/postgresql.crt and .key",
            format!("{localhost} user=certuser sslmode=verify-full"),
            &home_client,
            Tls(true),
        ),
        (
            "no client certificate",
            format!("{localhost} user=certuser sslmode=verify-full sslrootcert={ca}"),
            &empty_home,
            Fails("certificate"),
        ),
    ];
    for (name, conninfo, home, expect) in &client_cases {
        let env = env_of(&[("HOME", home.path().to_str().unwrap())]);
        let opts = ConnectOptions::resolve(Some(conninfo), &env).unwrap();
        let outcome = try_connect(&opts).await;
        match (expect, &outcome) {
            (Tls(tls), Ok(used)) if tls == used => {}
            (Fails(text), Err(error)) if error.contains(text) => {}
            _ => panic!("{name} ({conninfo}): got {outcome:?}"),
        }
    }

    // A private key others can read is refused before connecting, as in libpq.
    let key_copy = empty_home.path().join("client.key");
    fs::copy(&certs.client_key, &key_copy).unwrap();
    fs::set_permissions(&key_copy, fs::Permissions::from_mode(0o644)).unwrap();
    let opts = ConnectOptions::resolve(
        Some(&format!(
            "{localhost} user=certuser sslmode=require sslcert={client_cert} sslkey={}",
            key_copy.display()
        )),
        &env_of(&[]),
    )
    .unwrap();
    let error = opts
        .connect()
        .await
        .err()
        .expect("world-readable key accepted");
    assert!(matches!(error, Error::Tls { .. }), "{error:?}");
    assert!(!error.is_connection());
    assert!(
        error.to_string().contains("group or world access"),
        "{error}"
    );
}

/// issue 19.2: a server certificate that is itself the trusted root (the usual self-signed
/// certificate, `CA:TRUE`) is accepted by the verifying modes, as libpq accepts it, with
/// every other check kept.
#[tokio::test]
async fn a_self_signed_certificate_can_be_its_own_root() {
    const HBA: &str = "\
local all all trust
hostssl all alice 127.0.0.1/32 scram-sha-256
";
    let dir = shared_tempdir();
    let server = SelfSigned::generate(dir.path(), "server");
    let other = SelfSigned::generate(dir.path(), "other");
    let expired = SelfSigned::generate_expired(dir.path(), "expired");
    // A bundle: the server's certificate is one of several roots.
    let bundle = dir.path().join("bundle.crt");
    fs::write(
        &bundle,
        [
            fs::read(&other.cert).unwrap(),
            fs::read(&server.cert).unwrap(),
        ]
        .concat(),
    )
    .unwrap();
    let cluster = TcpCluster::start_with_tls(HBA, Some((&server.cert, &server.key, None))).await;
    let port = cluster.port();
    let localhost = format!("host=localhost hostaddr=127.0.0.1 port={port} dbname=postgres");
    let wrong_name = format!("host=wrong.example hostaddr=127.0.0.1 port={port} dbname=postgres");
    let by_ip = format!("host=127.0.0.1 port={port} dbname=postgres");
    let (own, foreign, bundle) = (
        server.cert.display(),
        other.cert.display(),
        bundle.display(),
    );
    let expired_root = expired.cert.display();
    use Expect::{Fails, Tls};
    let handshake = "error performing TLS handshake";
    let cases: Vec<(&str, String, Expect)> = vec![
        (
            "verify-ca",
            format!("{localhost} sslmode=verify-ca sslrootcert={own}"),
            Tls(true),
        ),
        (
            "verify-full",
            format!("{localhost} sslmode=verify-full sslrootcert={own}"),
            Tls(true),
        ),
        (
            "verify-full by IP address",
            format!("{by_ip} sslmode=verify-full sslrootcert={own}"),
            Tls(true),
        ),
        (
            "verify-full with the certificate among other roots",
            format!("{localhost} sslmode=verify-full sslrootcert={bundle}"),
            Tls(true),
        ),
        (
            "require with the root file verifies like verify-ca",
            format!("{wrong_name} sslmode=require sslrootcert={own}"),
            Tls(true),
        ),
        (
            "verify-full with the wrong host name",
            format!("{wrong_name} sslmode=verify-full sslrootcert={own}"),
            Fails("not valid for name"),
        ),
        (
            "verify-ca with another self-signed certificate",
            format!("{localhost} sslmode=verify-ca sslrootcert={foreign}"),
            Fails(handshake),
        ),
        (
            "verify-full with another self-signed certificate",
            format!("{localhost} sslmode=verify-full sslrootcert={foreign}"),
            Fails(handshake),
        ),
        (
            "require with another self-signed certificate",
            format!("{localhost} sslmode=require sslrootcert={foreign}"),
            Fails(handshake),
        ),
    ];
    let alice = [("PGUSER", "alice"), ("PGPASSWORD", ALICE_PASSWORD)];
    let empty_home = shared_tempdir();
    let mut vars = alice.to_vec();
    vars.push(("HOME", empty_home.path().to_str().unwrap()));
    let check = async |cases: &[(&str, String, Expect)]| {
        for (name, conninfo, expect) in cases {
            let opts = ConnectOptions::resolve(Some(conninfo), &env_of(&vars)).unwrap();
            let outcome = try_connect(&opts).await;
            match (expect, &outcome) {
                (Tls(tls), Ok(used)) if tls == used => {}
                (Fails(text), Err(error)) if error.contains(text) => {
                    assert!(!error.contains(ALICE_PASSWORD), "{name}: {error}");
                }
                _ => panic!("{name} ({conninfo}): got {outcome:?}"),
            }
        }
    };
    check(&cases).await;

    // A server presenting an expired certificate that is its own root: refused by every
    // mode that verifies, though it is otherwise reachable.
    drop(cluster);
    let cluster = TcpCluster::start_with_tls(HBA, Some((&expired.cert, &expired.key, None))).await;
    let localhost = format!(
        "host=localhost hostaddr=127.0.0.1 port={} dbname=postgres",
        cluster.port()
    );
    let expired_cases: Vec<(&str, String, Expect)> = vec![
        (
            "prefer does not verify",
            format!("{localhost} sslmode=prefer"),
            Tls(true),
        ),
        (
            "verify-ca, expired",
            format!("{localhost} sslmode=verify-ca sslrootcert={expired_root}"),
            Fails("Expired"),
        ),
        (
            "verify-full, expired",
            format!("{localhost} sslmode=verify-full sslrootcert={expired_root}"),
            Fails("Expired"),
        ),
        (
            "require with the root file, expired",
            format!("{localhost} sslmode=require sslrootcert={expired_root}"),
            Fails("Expired"),
        ),
    ];
    check(&expired_cases).await;
}
