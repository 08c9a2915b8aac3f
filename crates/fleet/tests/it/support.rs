//! Many databases on the test cluster, packages in temporary directories, targets files.

use std::path::Path;

use pgstrata::{Database, Package, Project};
use pgstrata_conn::ConnectOptions;
use tempfile::TempDir;

/// A connection to database `name` of the test cluster.
pub async fn connect(name: &str) -> Database {
    Database::connect(&ConnectOptions::parse(&pgtest::cluster_url(name)).unwrap())
        .await
        .unwrap()
}

/// Databases created for one test (copies of a template database), dropped by [`Databases::drop_all`].
pub struct Databases {
    pub names: Vec<String>,
}

impl Databases {
    /// `n` databases named `PREFIX_<pid>_<i>`, copies of `template` (whose connections must be closed), created a
    /// few at a time.
    pub async fn create(prefix: &str, n: usize, template: &str) -> Databases {
        let names: Vec<String> = (1..=n)
            .map(|i| format!("{prefix}_{}_{i:04}", std::process::id()))
            .collect();
        let chunks: Vec<Vec<String>> = names
            .chunks(n.div_ceil(4))
            .map(<[String]>::to_vec)
            .collect();
        let work = chunks.into_iter().map(|chunk| async move {
            let admin = connect("postgres").await;
            for name in chunk {
                // The template's last connection may still be closing: the server refuses to copy it meanwhile.
                for attempt in 0.. {
                    let sql = format!("CREATE DATABASE \"{name}\" TEMPLATE \"{template}\"");
                    match admin.client().batch_execute(&sql).await {
                        Ok(()) => break,
                        Err(e)
                            if attempt < 50
                                && e.code()
                                    == Some(&tokio_postgres::error::SqlState::OBJECT_IN_USE) =>
                        {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        }
                        Err(e) => panic!("{sql}: {e}"),
                    }
                }
            }
        });
        futures_util::future::join_all(work).await;
        Databases { names }
    }

    /// Drop them all (a few at a time) on a shared server (`PGTEST_URL`); pgtest's own throwaway cluster is deleted
    /// with this process anyway, and dropping hundreds of databases waits for checkpoints that write every other
    /// database's dirty pages.
    pub async fn drop_all(self) {
        if std::env::var_os("PGTEST_URL").is_none_or(|u| u.is_empty()) {
            return;
        }
        let chunks: Vec<Vec<String>> = self
            .names
            .chunks(self.names.len().div_ceil(4).max(1))
            .map(<[String]>::to_vec)
            .collect();
        let work = chunks.into_iter().map(|chunk| async move {
            let admin = connect("postgres").await;
            for name in chunk {
                admin
                    .client()
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .unwrap();
            }
        });
        futures_util::future::join_all(work).await;
    }

    /// A targets file listing them (target `db-0001` is the first database, …), with `extra` lines per target.
    pub fn targets_file(&self, dir: &Path, extra: impl Fn(usize) -> String) -> std::path::PathBuf {
        let mut text = String::new();
        for (i, name) in self.names.iter().enumerate() {
            text.push_str(&format!(
                "[[target]]\nname = \"db-{:04}\"\nurl = \"{}\"\n{}\n",
                i + 1,
                pgtest::cluster_url(name),
                extra(i)
            ));
        }
        let path = dir.join("targets.toml");
        std::fs::write(&path, text).unwrap();
        path
    }
}

/// A package (`strata.toml` listing `files` in order, plus the files) written into `root`.
pub fn write_package(root: &Path, extra: &str, files: &[(&str, &str)]) {
    std::fs::create_dir_all(root.join("migrations")).unwrap();
    let mut list = String::new();
    for (file, sql) in files {
        std::fs::write(root.join("migrations").join(file), sql).unwrap();
        list.push_str(&format!("    \"migrations/{file}\",\n"));
    }
    std::fs::write(
        root.join("strata.toml"),
        format!("name = \"acme/app\"\nschema = \"app\"\nmigrations = [\n{list}]\n{extra}\n"),
    )
    .unwrap();
}

/// The project of a package written with [`write_package`] into a new temporary directory.
pub fn project(extra: &str, files: &[(&str, &str)]) -> (TempDir, Project) {
    let dir = tempfile::tempdir().unwrap();
    write_package(dir.path(), extra, files);
    let project = Project::new(vec![Package::load(dir.path()).unwrap()]).unwrap();
    (dir, project)
}

/// `full`, or `small` when `STRATA_TEST_SCALE_DOWN` is set (`.ci/pg-matrix` sets it: the other PostgreSQL versions
/// check behaviour, and the scale tests run at full size once, on the distribution's server).
pub fn scaled(full: usize, small: usize) -> usize {
    if std::env::var_os("STRATA_TEST_SCALE_DOWN").is_some() {
        small
    } else {
        full
    }
}
