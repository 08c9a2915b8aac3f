//! Test helpers: install the MiniPaaS package into a fresh database, as Strata will (migrations' up parts,
//! then the managed code), and read the package's files.

use std::path::{Path, PathBuf};

use tokio_postgres::Client;

/// The package directory, `packages/minipaas` at the repository root.
pub fn package_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../packages/minipaas")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The migrations listed in `strata.toml`, in apply order.
pub fn migrations() -> Vec<PathBuf> {
    let manifest: toml::Table = read(&package_dir().join("strata.toml"))
        .parse()
        .expect("strata.toml parses");
    assert_eq!(
        manifest["schema"].as_str(),
        Some("minipaas"),
        "the package's schema"
    );
    manifest["migrations"]
        .as_array()
        .expect("migrations is a list")
        .iter()
        .map(|m| package_dir().join(m.as_str().expect("migration paths are strings")))
        .collect()
}

/// A dbmate migration's up part: the text before `-- migrate:down`.
pub fn up_part(text: &str) -> &str {
    let up = text.split("\n-- migrate:down").next().unwrap_or(text);
    assert!(
        up.trim_start().starts_with("-- migrate:up"),
        "a migration starts with -- migrate:up"
    );
    up
}

/// A dbmate migration's down part: the text after `-- migrate:down`.
pub fn down_part(text: &str) -> &str {
    text.split_once("\n-- migrate:down")
        .map(|(_, down)| down)
        .expect("a migration has a -- migrate:down part")
}

/// The managed-code files, in install order.
pub const MANAGED: [&str; 2] = ["queues.sql", "streams.sql"];

/// Installs the package: every migration's up part, then the managed code.
pub async fn install(client: &Client) {
    for migration in migrations() {
        let text = read(&migration);
        client
            .batch_execute(up_part(&text))
            .await
            .unwrap_or_else(|e| panic!("migration {} fails: {e:?}", migration.display()));
    }
    for file in MANAGED {
        client
            .batch_execute(&read(&package_dir().join(file)))
            .await
            .unwrap_or_else(|e| panic!("{file} fails: {e:?}"));
    }
}

/// A fresh database with the package installed, and a connection to it.
pub async fn fresh_db() -> (pgtest::TestDb, Client) {
    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    install(&client).await;
    (db, client)
}

/// The `*_test.sql` files of the package, sorted.
pub fn test_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(package_dir())
        .expect("package dir")
        .map(|entry| entry.expect("dir entry").path())
        .filter(|path| {
            path.file_name()
                .and_then(|name| name.to_str())
                .is_some_and(|name| name.ends_with("_test.sql"))
        })
        .collect();
    files.sort();
    files
}

/// Names of the functions a SQL file defines in schema minipaas, in file order.
pub fn defined_functions(text: &str) -> Vec<String> {
    let marker = "FUNCTION minipaas.";
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find(marker) {
        rest = &rest[at + marker.len()..];
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// Reads the text of a package file.
pub fn package_file(name: &str) -> String {
    read(&package_dir().join(name))
}

/// Time passes for one message, without waiting for it: its lease runs out now, or (not leased) its delay or
/// backoff ends now. Time passing would also bring the session's next full rescan of the queue (the message may
/// lie behind the session's dequeue hint), so `client`'s rescan comes due too ([`rescan_due`]).
pub async fn time_passes_for(client: &Client, id: i64) {
    let changed = client
        .execute(
            "UPDATE minipaas.messages
                SET lease_until = CASE WHEN lease_until IS NOT NULL THEN clock_timestamp() END,
                    ready_at = CASE WHEN lease_until IS NULL THEN least(ready_at, clock_timestamp()) ELSE ready_at END
              WHERE id = $1",
            &[&id],
        )
        .await
        .expect("move the message's times");
    assert_eq!(changed, 1, "message {id} exists");
    rescan_due(client).await;
}

/// The session's next full rescan of every queue comes due now: its dequeue hints say so (the position they hold
/// stays, so this tests that the rescan, not a forgotten hint, finds what lies behind it).
pub async fn rescan_due(client: &Client) {
    rescan_in_seconds(client, 0.0).await;
}

/// Moves the session's next full rescan of every queue to `seconds` from now (at most 60: further out, dequeue
/// does not believe it).
pub async fn rescan_in_seconds(client: &Client, seconds: f64) {
    client
        .execute(
            "SELECT count(set_config(x.setting,
                        ROW(minipaas._epoch_us(clock_timestamp() + $1 * interval '1 second'), (x.hint).probe_at,
                            (x.hint).after_priority, (x.hint).after_ready_at, (x.hint).after_id
                           )::minipaas.dequeue_hint::text, false))
               FROM (SELECT minipaas._dequeue_hint_setting(q.queue_id) AS setting,
                            nullif(current_setting(minipaas._dequeue_hint_setting(q.queue_id), true), '')
                                ::minipaas.dequeue_hint AS hint
                       FROM minipaas.queues q) x
              WHERE (x.hint).rescan_at IS NOT NULL",
            &[&seconds],
        )
        .await
        .expect("move the rescans");
}

/// When `client`'s next full rescan of `queue` is due, in seconds from now (None: it has no dequeue hint).
pub async fn rescan_in(client: &Client, queue: &str) -> Option<f64> {
    client
        .query_one(
            "SELECT extract(epoch FROM minipaas._from_epoch_us(
                        (nullif(current_setting(minipaas._dequeue_hint_setting(q.queue_id), true), '')
                             ::minipaas.dequeue_hint).rescan_at) - clock_timestamp())::float8
               FROM minipaas.queues q WHERE q.name = $1",
            &[&queue],
        )
        .await
        .expect("read the dequeue hint")
        .get(0)
}

/// The NOTIFY throttle's window (one wake-up per queue per 50 ms) ends now for every queue.
pub async fn notify_window_ends(client: &Client) {
    client
        .batch_execute("UPDATE minipaas.queue_wakeups SET notified_at = '-infinity'")
        .await
        .expect("reset the NOTIFY throttle");
}

/// Waits until `check` holds, polling every 20 ms; panics with `what` after `limit`. For conditions that another
/// task or process brings about (a worker going idle, a lease being extended), never for time itself to pass.
pub async fn wait_until<F, Fut>(what: &str, limit: std::time::Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while !check().await {
        assert!(started.elapsed() < limit, "{what}: not after {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}
