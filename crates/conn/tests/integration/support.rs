//! Test fixtures: certificates made with `openssl`, and clusters with TCP, TLS and
//! password authentication (pgtest's shared cluster only has a trusted Unix socket).

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use pgstrata_conn::{ConnectOptions, Connected, Error};
use pgstrata_embedded::{ChildCluster, ChildClusterOptions};
use tempfile::TempDir;

/// alice's password: every character that needs care in a URL or a conninfo string.
pub const ALICE_PASSWORD: &str = "pa:ss@w/rd?#%& 'q'\\";

/// A temporary directory the server's OS user can read (tempdir's default 0700 would block it).
pub fn shared_tempdir() -> TempDir {
    tempfile::Builder::new()
        .prefix("pgstrata-conn-test-")
        .permissions(fs::Permissions::from_mode(0o755))
        .tempdir()
        .unwrap()
}

/// The uid/gid the server runs as when we are root (pgstrata-embedded's rule: `postgres`,
/// else `nobody`); `None` when the server runs as ourselves.
fn server_owner() -> Option<(u32, u32)> {
    if fs::metadata("/proc/self").unwrap().uid() != 0 {
        return None;
    }
    let passwd = fs::read_to_string("/etc/passwd").unwrap();
    ["postgres", "nobody"].iter().find_map(|name| {
        passwd.lines().find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(name))
                .then(|| (fields[2].parse().unwrap(), fields[3].parse().unwrap()))
        })
    })
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl must be installed");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A test PKI: a CA that signed the server certificate (for `localhost` and 127.0.0.1) and
/// a client certificate for `certuser`, plus an unrelated CA.
pub struct Certs {
    /// Keeps the files alive.
    _dir: TempDir,
    pub ca: PathBuf,
    pub other_ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
}

impl Certs {
    pub fn generate() -> Certs {
        let dir = shared_tempdir();
        let d = dir.path();
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];
        for (name, subject) in [
            ("ca", "/CN=strata test CA"),
            ("other_ca", "/CN=unrelated CA"),
        ] {
            let (key, crt) = (format!("{name}.key"), format!("{name}.crt"));
            let mut args = vec!["req", "-x509", "-days", "2", "-subj", subject];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &crt]);
            args.extend(["-addext", "basicConstraints=critical,CA:TRUE"]);
            args.extend(["-addext", "keyUsage=critical,keyCertSign,cRLSign"]);
            openssl(d, &args);
        }
        let leaves = [
            (
                "server",
                "/CN=localhost",
                "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "/CN=certuser", "extendedKeyUsage=clientAuth\n"),
        ];
        for (name, subject, extensions) in leaves {
            let (key, csr, crt, ext) = (
                format!("{name}.key"),
                format!("{name}.csr"),
                format!("{name}.crt"),
                format!("{name}.ext"),
            );
            fs::write(
                d.join(&ext),
                format!("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\n{extensions}"),
            )
            .unwrap();
            let mut args = vec!["req", "-subj", subject, "-keyout", &key, "-out", &csr];
            args.extend(ec);
            openssl(d, &args);
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-days",
                    "2",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-set_serial",
                    "2",
                    "-extfile",
                    &ext,
                    "-out",
                    &crt,
                ],
            );
            fs::set_permissions(d.join(&key), fs::Permissions::from_mode(0o600)).unwrap();
        }
        // The server refuses a key that is not its own or that others can read.
        if let Some((uid, gid)) = server_owner() {
            std::os::unix::fs::chown(d.join("server.key"), Some(uid), Some(gid)).unwrap();
        }
        for file in ["ca.crt", "other_ca.crt", "server.crt"] {
            fs::set_permissions(d.join(file), fs::Permissions::from_mode(0o644)).unwrap();
        }
        Certs {
            ca: d.join("ca.crt"),
            other_ca: d.join("other_ca.crt"),
            server_cert: d.join("server.crt"),
            server_key: d.join("server.key"),
            client_cert: d.join("client.crt"),
            client_key: d.join("client.key"),
            _dir: dir,
        }
    }
}

/// A self-signed server certificate made the usual way, `openssl req -x509` (which marks it
/// `CA:TRUE`), for `localhost` and 127.0.0.1, with its key; the certificate is its own root.
pub struct SelfSigned {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl SelfSigned {
    /// Valid from now for two days.
    pub fn generate(dir: &Path, name: &str) -> SelfSigned {
        let (cert, key) = (format!("{name}.crt"), format!("{name}.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-days",
                "2",
                "-subj",
                "/CN=localhost",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &cert,
                "-addext",
                "subjectAltName=DNS:localhost,IP:127.0.0.1",
            ],
        );
        Self::finish(dir, &cert, &key)
    }

    /// The same kind of certificate, expired since yesterday (`-days -1` puts its end a day
    /// before its start, now).
    pub fn generate_expired(dir: &Path, name: &str) -> SelfSigned {
        let (cert, key, csr, ext) = (
            format!("{name}.crt"),
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
        );
        fs::write(
            dir.join(&ext),
            "basicConstraints=critical,CA:TRUE
subjectAltName=DNS:localhost,IP:127.0.0.1
",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-subj",
                "/CN=localhost",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        openssl(
            dir,
            &[
                "x509", "-req", "-in", &csr, "-signkey", &key, "-days", "-1", "-extfile", &ext,
                "-out", &cert,
            ],
        );
        Self::finish(dir, &cert, &key)
    }

    fn finish(dir: &Path, cert: &str, key: &str) -> SelfSigned {
        fs::set_permissions(dir.join(key), fs::Permissions::from_mode(0o600)).unwrap();
        if let Some((uid, gid)) = server_owner() {
            std::os::unix::fs::chown(dir.join(key), Some(uid), Some(gid)).unwrap();
        }
        fs::set_permissions(dir.join(cert), fs::Permissions::from_mode(0o644)).unwrap();
        SelfSigned {
            cert: dir.join(cert),
            key: dir.join(key),
        }
    }
}

/// A cluster listening on 127.0.0.1 with the given `pg_hba.conf` lines, and TLS if `certs`
/// is given. The roles `alice` (password [`ALICE_PASSWORD`]) and `certuser` exist.
pub struct TcpCluster {
    pub cluster: ChildCluster,
    /// Holds pg_hba.conf.
    _config_dir: TempDir,
}

impl TcpCluster {
    pub async fn start(hba: &str, certs: Option<&Certs>) -> TcpCluster {
        let tls = certs.map(|c| {
            (
                c.server_cert.as_path(),
                c.server_key.as_path(),
                Some(c.ca.as_path()),
            )
        });
        Self::start_with_tls(hba, tls).await
    }

    /// The same with the server's certificate, key and (for client certificates) CA file.
    pub async fn start_with_tls(
        hba: &str,
        tls: Option<(&Path, &Path, Option<&Path>)>,
    ) -> TcpCluster {
        let config_dir = shared_tempdir();
        let hba_file = config_dir.path().join("pg_hba.conf");
        fs::write(&hba_file, hba).unwrap();
        fs::set_permissions(&hba_file, fs::Permissions::from_mode(0o644)).unwrap();
        let path = |p: &Path| p.to_str().unwrap().to_owned();
        let mut settings = vec![("hba_file".to_owned(), path(&hba_file))];
        if let Some((cert, key, ca)) = tls {
            settings.extend([
                ("ssl".to_owned(), "on".to_owned()),
                ("ssl_cert_file".to_owned(), path(cert)),
                ("ssl_key_file".to_owned(), path(key)),
            ]);
            if let Some(ca) = ca {
                settings.push(("ssl_ca_file".to_owned(), path(ca)));
            }
        }
        let opts = ChildClusterOptions {
            listen_tcp: true,
            extra_settings: settings,
            ..Default::default()
        };
        let cluster = tokio::task::spawn_blocking(move || ChildCluster::start(&opts))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("cannot start the test cluster: {e}"));
        let admin = ConnectOptions::parse(&cluster.url("postgres")).unwrap();
        let conn = admin.connect().await.unwrap();
        let password = ALICE_PASSWORD.replace('\'', "''");
        conn.client
            .batch_execute(&format!(
                "CREATE ROLE alice LOGIN PASSWORD '{password}'; CREATE ROLE certuser LOGIN;"
            ))
            .await
            .unwrap();
        TcpCluster {
            cluster,
            _config_dir: config_dir,
        }
    }

    pub fn port(&self) -> u16 {
        self.cluster.port()
    }
}

/// An environment with only the given variables (so the developer's PG* settings and
/// `~/.postgresql` cannot leak into a test).
pub fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |key| vars.get(key).cloned()
}

/// Whether this connection uses TLS, according to the server.
pub async fn uses_tls(conn: &Connected) -> bool {
    conn.client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// Connects and reports TLS use, or the error's text.
pub async fn try_connect(opts: &ConnectOptions) -> Result<bool, String> {
    match opts.connect().await {
        Ok(conn) => Ok(uses_tls(&conn).await),
        Err(e) => Err(error_text(&e)),
    }
}

/// The error with its whole source chain.
pub fn error_text(error: &Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(e) = source {
        text.push_str(" | ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
