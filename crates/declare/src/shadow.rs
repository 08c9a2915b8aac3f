//! Shadow databases: throwaway databases on a server where Strata may create them — the persistent `strata dev`
//! cluster (started if it is not running, as `--embedded` does) or a server given with `--shadow-url`.

use std::sync::atomic::{AtomicU32, Ordering};

use pgstrata_conn::ConnectOptions;
use postgres_protocol::escape::escape_identifier;

use crate::error::{Error, Result};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A server for shadow databases.
#[derive(Debug, Clone)]
pub struct Shadow {
    admin: ConnectOptions,
    version_num: i32,
    describe: String,
}

impl Shadow {
    /// The `strata dev` cluster, started (and created on first use) if it is not running.
    pub async fn dev() -> Result<Shadow> {
        let cluster = tokio::task::spawn_blocking(|| {
            let cluster =
                pgstrata_embedded::DevCluster::new(pgstrata_embedded::DevCluster::default_dir())?;
            cluster.start()?;
            cluster.url("postgres")
        })
        .await
        .map_err(|e| {
            Error::usage(
                format!("starting the shadow cluster was interrupted: {e}"),
                None,
            )
        })??;
        let admin = ConnectOptions::parse(&cluster)?;
        Shadow::connect(admin, "the shadow cluster (strata dev)").await
    }

    /// A server given by URL (any database on it; Strata creates and drops its own databases there).
    pub async fn url(url: &str) -> Result<Shadow> {
        let admin = ConnectOptions::from_env(Some(url))?;
        let describe = format!("the shadow server {}", admin.redacted());
        Shadow::connect(admin, &describe).await
    }

    async fn connect(admin: ConnectOptions, describe: &str) -> Result<Shadow> {
        let db = pgstrata::Database::connect(&admin).await?;
        let version_num: i32 = db
            .client()
            .query_one("SELECT current_setting('server_version_num')::int", &[])
            .await
            .map_err(Error::db("reading the shadow server's version"))?
            .get(0);
        Ok(Shadow {
            admin,
            version_num,
            describe: describe.to_string(),
        })
    }

    /// The server's `server_version_num`.
    pub fn version_num(&self) -> i32 {
        self.version_num
    }

    /// How to name the server in messages (no password).
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// A fresh, empty database (from `template0`).
    pub async fn database(&self, purpose: &str) -> Result<ShadowDb> {
        self.create(purpose, "template0").await
    }

    async fn create(&self, purpose: &str, template: &str) -> Result<ShadowDb> {
        let name = format!(
            "strata_shadow_{}_{}_{purpose}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let admin = pgstrata::Database::connect(&self.admin).await?;
        let sql = format!(
            "CREATE DATABASE {} TEMPLATE {}",
            escape_identifier(&name),
            escape_identifier(template)
        );
        admin
            .client()
            .batch_execute(&sql)
            .await
            .map_err(Error::db(format!(
                "creating shadow database {name} on {}",
                self.describe
            )))?;
        Ok(ShadowDb {
            options: self.admin.with_dbname(&name),
            admin: self.admin.clone(),
            name,
            dropped: false,
        })
    }
}

/// A throwaway database on the shadow server, dropped by [`ShadowDb::drop_now`] (or, as a fallback, when it goes
/// out of scope).
#[derive(Debug)]
pub struct ShadowDb {
    options: ConnectOptions,
    admin: ConnectOptions,
    name: String,
    dropped: bool,
}

impl ShadowDb {
    /// Connection settings of this database.
    pub fn options(&self) -> &ConnectOptions {
        &self.options
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A connection to it.
    pub async fn connect(&self) -> Result<pgstrata::Database> {
        Ok(pgstrata::Database::connect(&self.options).await?)
    }

    /// Drop it now.
    pub async fn drop_now(mut self) -> Result<()> {
        self.dropped = true;
        let admin = pgstrata::Database::connect(&self.admin).await?;
        admin
            .client()
            .batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                escape_identifier(&self.name)
            ))
            .await
            .map_err(Error::db(format!("dropping shadow database {}", self.name)))
    }
}

impl Drop for ShadowDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        let (admin, name) = (self.admin.clone(), self.name.clone());
        // A fresh runtime on a thread of its own: the caller's runtime may be gone or busy.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(db) = pgstrata::Database::connect(&admin).await {
                    let _ = db
                        .client()
                        .batch_execute(&format!(
                            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                            escape_identifier(&name)
                        ))
                        .await;
                }
            });
        })
        .join();
    }
}
