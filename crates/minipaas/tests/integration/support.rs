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
