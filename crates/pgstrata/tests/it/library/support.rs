//! Packages in temporary directories, and connections to pgtest's databases.

use std::path::Path;

use pgstrata::{Database, Package, Project};
use pgstrata_conn::ConnectOptions;
use tempfile::TempDir;

/// Write a package (`strata.toml` listing `files` in order, plus the files) into a new temporary directory.
pub fn package_dir(name: &str, schema: &str, extra: &str, files: &[(&str, &str)]) -> TempDir {
    let dir = tempfile::tempdir().unwrap();
    write_package(dir.path(), name, schema, extra, files);
    dir
}

pub fn write_package(root: &Path, name: &str, schema: &str, extra: &str, files: &[(&str, &str)]) {
    std::fs::create_dir_all(root.join("migrations")).unwrap();
    let mut list = String::new();
    for (file, sql) in files {
        std::fs::write(root.join("migrations").join(file), sql).unwrap();
        if !file.ends_with(".down.sql") {
            list.push_str(&format!("    \"migrations/{file}\",\n"));
        }
    }
    std::fs::write(
        root.join("strata.toml"),
        format!("name = {name:?}\nschema = {schema:?}\n{extra}\nmigrations = [\n{list}]\n"),
    )
    .unwrap();
}

pub fn project(dir: &Path) -> Project {
    Project::new(vec![Package::load(dir).unwrap()]).unwrap()
}

/// A Strata connection to a pgtest database.
pub async fn connect(db: &pgtest::TestDb) -> Database {
    Database::connect(&ConnectOptions::parse(&db.url()).unwrap())
        .await
        .unwrap()
}
