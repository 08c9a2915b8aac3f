//! Helpers: a database with history, queues and streams; a console serving it on a free loopback port; a small
//! HTTP/1.1 client (raw, so a test can send any `Host`, `Origin` or cookie it likes).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pgstrata_console::{ActionSink, Console, ConsoleOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The MiniPaaS package of this repository.
pub fn minipaas_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packages/minipaas")
}

/// Deploy `project` (its SQL tests skipped).
pub async fn deploy(
    db: &mut pgstrata::Database,
    project: &pgstrata::Project,
) -> Result<pgstrata::UpReport, pgstrata::Error> {
    let opts = pgstrata::UpOptions {
        tests: pgstrata::TestMode::Skip,
        ..Default::default()
    };
    pgstrata::up(db, project, &opts, &mut pgstrata::Quiet).await
}

/// The test database's URL with a password in it (the server trusts local connections and ignores it), so a test
/// can check that no page shows it.
pub const PASSWORD: &str = "Hunter2-console-secret";

pub fn options_with_password(db: &pgtest::TestDb) -> pgstrata_conn::ConnectOptions {
    let url = db.url();
    let url = match url.strip_prefix("postgresql://") {
        Some(rest) => match rest.split_once('@') {
            Some((user, host)) if !user.contains(':') => {
                format!("postgresql://{user}:{PASSWORD}@{host}")
            }
            _ => url.clone(),
        },
        None => url.clone(),
    };
    pgstrata_conn::ConnectOptions::parse(&url).expect("the test URL parses")
}

/// What the fixture made.
pub struct Fixture {
    pub db: pgtest::TestDb,
    /// The app package (001 applied, 002 pending and failing).
    pub app: pgstrata::Project,
    pub _dir: tempfile::TempDir,
    /// Id of the failed run.
    pub failed_run: i64,
    /// Id of the run that applied 001_users.
    pub app_run: i64,
}

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
    std::fs::write(path, text).expect("write");
}

fn manifest(migrations: &[&str]) -> String {
    let list: Vec<String> = migrations
        .iter()
        .map(|m| format!("\"migrations/{m}\""))
        .collect();
    format!(
        "name = \"example.com/app\"\nschema = \"app\"\nmigrations = [{}]\n\n[security]\npackage_role = false\n",
        list.join(", ")
    )
}

/// A database with: MiniPaaS deployed; an app package with one applied migration and one that failed; queue
/// `mail` with 5 messages of which 2 are dead (error `smtp down`) and 1 in flight; an empty queue `quiet`; stream
/// `orders` with 10 events and groups `billing` (lag 6) and `audit` (lag 0).
pub async fn fixture() -> Fixture {
    let db = pgtest::TestDb::new().await;
    let mut pg =
        pgstrata::Database::connect(&pgstrata_conn::ConnectOptions::parse(&db.url()).expect("url"))
            .await
            .expect("connect");
    let minipaas = pgstrata::Project::load(&[minipaas_dir()]).expect("minipaas loads");
    deploy(&mut pg, &minipaas).await.expect("minipaas deploys");

    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("app");
    write(
        &root.join("migrations/001_users.sql"),
        "-- migrate:up\n-- The users.\nCREATE TABLE app.users (id bigint PRIMARY KEY, email text NOT NULL);\n\n-- migrate:down\nDROP TABLE app.users;\n",
    );
    write(&root.join("strata.toml"), &manifest(&["001_users.sql"]));
    let first = pgstrata::Project::load(&[&root]).expect("app loads");
    deploy(&mut pg, &first).await.expect("001 deploys");
    write(
        &root.join("migrations/002_broken.sql"),
        "-- migrate:up\nALTER TABLE app.users ADD COLUMN name text;\nSELECT * FROM app.no_such_table;\n",
    );
    write(
        &root.join("strata.toml"),
        &manifest(&["001_users.sql", "002_broken.sql"]),
    );
    let app = pgstrata::Project::load(&[&root]).expect("app loads");
    assert!(deploy(&mut pg, &app).await.is_err(), "002 fails");

    let c = db.client().await;
    let ids = |sql: &'static str| {
        let c = &c;
        async move {
            c.query_one(sql, &[])
                .await
                .expect("run id")
                .get::<_, i64>(0)
        }
    };
    let failed_run = ids("SELECT max(id) FROM strata.run WHERE outcome = 'failed'").await;
    let app_run = ids(
        "SELECT max(r.id) FROM strata.run r WHERE outcome = 'success' AND to_state::text LIKE '%001_users%'",
    )
    .await;

    c.batch_execute(
        "SELECT minipaas.queue_create('mail', max_attempts => 1);
         SELECT minipaas.queue_enqueue('mail', jsonb_build_object('n', g)) FROM generate_series(1, 5) g;
         SELECT minipaas.queue_create('quiet');
         SELECT minipaas.stream_create('orders', retention_age => '7 days');
         SELECT minipaas.stream_publish('orders', jsonb_build_object('n', g), key => 'k' || (g % 3)) FROM generate_series(1, 10) g;",
    )
    .await
    .expect("queues and streams");
    for _ in 0..2 {
        let row = c
            .query_one(
                "SELECT id, lease_token FROM minipaas.queue_dequeue('mail')",
                &[],
            )
            .await
            .expect("dequeue");
        let (id, token): (i64, i64) = (row.get(0), row.get(1));
        c.query(
            "SELECT * FROM minipaas.queue_nack($1, $2, 'smtp down')",
            &[&id, &token],
        )
        .await
        .expect("nack");
    }
    c.query("SELECT * FROM minipaas.queue_dequeue('mail')", &[])
        .await
        .expect("dequeue");
    let offsets: Vec<i64> = c
        .query(
            "SELECT event_offset FROM minipaas.stream_events ORDER BY event_offset",
            &[],
        )
        .await
        .expect("offsets")
        .iter()
        .map(|r| r.get(0))
        .collect();
    c.execute(
        "SELECT minipaas.stream_group_commit('orders', 'billing', $1)",
        &[&offsets[3]],
    )
    .await
    .expect("commit");
    c.execute(
        "SELECT minipaas.stream_group_commit('orders', 'audit', $1)",
        &[&offsets[9]],
    )
    .await
    .expect("commit");
    Fixture {
        db,
        app,
        _dir: dir,
        failed_run,
        app_run,
    }
}

/// A console serving in the background; stopped when dropped.
pub struct Served {
    pub addr: SocketAddr,
    pub url: String,
    pub token: Option<String>,
    /// Actions reported to the sink, as displayed.
    pub actions: Arc<Mutex<Vec<String>>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Options for tests: any free loopback port, fast sampling, small pages.
pub fn test_options() -> ConsoleOptions {
    ConsoleOptions {
        listen: "127.0.0.1:0".parse().expect("address"),
        sample_every: Duration::from_millis(200),
        page_size: 3,
        ..Default::default()
    }
}

pub async fn serve(
    conn: pgstrata_conn::ConnectOptions,
    project: Option<pgstrata::Project>,
    opts: ConsoleOptions,
) -> Served {
    let actions = Arc::new(Mutex::new(Vec::new()));
    let seen = actions.clone();
    let sink = ActionSink::new(move |a| seen.lock().expect("lock").push(a.to_string()));
    let console = Console::bind_with(conn, project, opts, sink)
        .await
        .expect("the console starts");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let served = Served {
        addr: console.local_addr(),
        url: console.url(),
        token: console.token().map(str::to_string),
        actions,
        stop: Some(stop),
    };
    tokio::spawn(console.serve(async move {
        let _ = stopped.await;
    }));
    served
}

/// An HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The page's CSRF token (from a hidden field).
    pub fn csrf(&self) -> String {
        let (_, rest) = self
            .body
            .split_once("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field on the page: {}", self.body));
        rest.split('"').next().unwrap_or("").to_string()
    }
}

/// Send one request (`Connection: close`) and read the whole response.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Response {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to the console");
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host")) {
        req += &format!("Host: {addr}\r\n");
    }
    for (n, v) in headers {
        req += &format!("{n}: {v}\r\n");
    }
    if let Some(b) = body {
        req += &format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            b.len()
        );
    }
    req += "\r\n";
    if let Some(b) = body {
        req += b;
    }
    stream.write_all(req.as_bytes()).await.expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8(raw).expect("UTF-8 response");
    let (head, body) = text.split_once("\r\n\r\n").expect("a response head");
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    assert!(
        !headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked")),
        "the console sends whole bodies"
    );
    Response {
        status,
        headers,
        body: body.to_string(),
    }
}

pub async fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, "GET", path, &[], None).await
}

pub async fn post(addr: SocketAddr, path: &str, body: &str) -> Response {
    request(addr, "POST", path, &[], Some(body)).await
}

/// Dead, ready messages of a queue, read from the database.
pub async fn counts(db: &pgtest::TestDb, queue: &str) -> (i64, i64) {
    let c = db.client().await;
    let row = c
        .query_one(
            "SELECT count(*) FILTER (WHERE m.state = 'dead'), count(*) FILTER (WHERE m.state = 'ready')
               FROM minipaas.messages m JOIN minipaas.queues q USING (queue_id) WHERE q.name = $1",
            &[&queue],
        )
        .await
        .expect("counts");
    (row.get(0), row.get(1))
}
