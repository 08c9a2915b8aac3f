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
    /// Keep replayed migrations as template databases ([`Shadow::with_cache`]).
    caches: bool,
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
        // The dev cluster is Strata's own: it keeps the replayed migrations for the next run.
        Ok(Shadow::connect(admin, "the shadow cluster (strata dev)")
            .await?
            .with_cache(true))
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
            caches: false,
        })
    }

    /// Whether replayed migrations are kept on this server as template databases, one per package, named
    /// `strata_shadow_cache_…` (default: on the `strata dev` cluster, which is Strata's own; off on a server given
    /// with `--shadow-url`, where Strata leaves nothing behind).
    pub fn with_cache(mut self, caches: bool) -> Shadow {
        self.caches = caches;
        self
    }

    /// Whether replayed migrations are kept on this server (see [`Shadow::with_cache`]).
    pub fn caches(&self) -> bool {
        self.caches
    }

    /// A copy of the cached replay `key` (see [`Shadow::store`]), if there is one. Nothing connects to a cache
    /// but `CREATE DATABASE … TEMPLATE`, so a copy is exactly what the replay built.
    pub async fn from_cache(&self, key: &CacheKey, purpose: &str) -> Result<Option<ShadowDb>> {
        let admin = pgstrata::Database::connect(&self.admin).await?;
        let name = key.database();
        let exists: bool = admin
            .client()
            .query_one(
                "SELECT EXISTS (SELECT FROM pg_catalog.pg_database WHERE datname = $1)",
                &[&name],
            )
            .await
            .map_err(Error::db(
                "looking for cached migrations on the shadow server",
            ))?
            .get(0);
        drop(admin);
        if !exists {
            return Ok(None);
        }
        match self.create(purpose, &name).await {
            Ok(db) => Ok(Some(db)),
            Err(e) => {
                // Being stored or dropped by another run at this moment: replay instead.
                tracing::warn!("cannot copy the cached migrations {name}: {e}");
                Ok(None)
            }
        }
    }

    /// Keep a copy of `db` (the migrations just replayed, nothing else done to it; no open connection) as the cache
    /// for `key`, and drop the package's older caches. A failure only costs the next run its shortcut: it is
    /// logged, not returned.
    pub async fn store(&self, db: &ShadowDb, key: &CacheKey) {
        let result = async {
            let admin = pgstrata::Database::connect(&self.admin).await?;
            let name = key.database();
            // Built under a temporary name and renamed: a cache that exists is complete.
            let building = format!("strata_shadow_build_{}_{}", key.package, std::process::id());
            // A template may have no connections: ours are closed, but the server may still be ending them (it
            // would then wait 100 ms before it looks again).
            admin
                .client()
                .execute(
                    "SELECT pg_catalog.pg_terminate_backend(pid, 5000) FROM pg_catalog.pg_stat_activity \
                     WHERE datname = $1 AND pid <> pg_catalog.pg_backend_pid()",
                    &[&db.name],
                )
                .await
                .map_err(Error::db("closing connections to the replayed migrations"))?;
            // Two messages: CREATE DATABASE cannot run in the implicit transaction of a multi-statement string.
            admin
                .client()
                .batch_execute(&format!(
                    "CREATE DATABASE {} TEMPLATE {}{}",
                    escape_identifier(&building),
                    escape_identifier(&db.name),
                    self.file_copy(),
                ))
                .await
                .map_err(Error::db("keeping the replayed migrations"))?;
            if let Err(e) = admin
                .client()
                .batch_execute(&format!(
                    "ALTER DATABASE {} RENAME TO {}",
                    escape_identifier(&building),
                    escape_identifier(&name),
                ))
                .await
            {
                // Another run kept the same migrations first.
                let _ = admin
                    .client()
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {}", escape_identifier(&building)))
                    .await;
                return Err(Error::db("keeping the replayed migrations")(e));
            }
            let old: Vec<String> = admin
                .client()
                .query(
                    "SELECT datname::text FROM pg_catalog.pg_database WHERE starts_with(datname, $1) AND datname <> $2",
                    &[&key.prefix(), &name],
                )
                .await
                .map_err(Error::db("listing older cached migrations"))?
                .iter()
                .map(|r| r.get(0))
                .collect();
            for o in old {
                admin
                    .client()
                    .batch_execute(&format!(
                        "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                        escape_identifier(&o)
                    ))
                    .await
                    .map_err(Error::db(format!("dropping the older cached migrations {o}")))?;
            }
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = result {
            tracing::warn!("the replayed migrations are not kept: {e}");
        }
    }

    /// How to copy a big template: file by file (PostgreSQL 15 made WAL-logged copies the default; they write
    /// every page to the WAL, slower for a schema of thousands of relations).
    fn file_copy(&self) -> &'static str {
        if self.version_num >= 150_000 {
            " STRATEGY FILE_COPY"
        } else {
            ""
        }
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
            "CREATE DATABASE {} TEMPLATE {}{}",
            escape_identifier(&name),
            escape_identifier(template),
            if template == "template0" {
                ""
            } else {
                self.file_copy()
            }
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

/// What a replay of migrations depends on, hashed: a cached replay is used only when all of it is the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    package: String,
    content: String,
}

impl CacheKey {
    /// The key of replaying `project` with this Strata (its version and its own schema's migrations) on a server of
    /// `version_num`: every package's manifest, migrations (names and checksums, in order), repeatable scripts and
    /// managed code.
    pub fn of(project: &pgstrata::Project, version_num: i32) -> CacheKey {
        CacheKey::with_strata(project, pgstrata::VERSION, version_num)
    }

    fn with_strata(project: &pgstrata::Project, strata: &str, version_num: i32) -> CacheKey {
        use sha2::{Digest, Sha256};
        let mut content = Sha256::new();
        let field = |h: &mut Sha256, bytes: &[u8]| {
            // Length-prefixed, so that moving bytes from one field to the next changes the key.
            h.update((bytes.len() as u64).to_le_bytes());
            h.update(bytes);
        };
        field(&mut content, strata.as_bytes());
        field(&mut content, &version_num.to_le_bytes());
        // Strata's own schema, which `up` installs first (its migrations can change before the version does).
        if let Ok(own) = pgstrata::strata_package() {
            for m in own.migrations() {
                field(&mut content, m.name().as_bytes());
                field(&mut content, m.checksum().as_bytes());
            }
        }
        let mut package = Sha256::new();
        for p in project.packages() {
            field(&mut package, p.name().as_bytes());
            field(&mut content, p.name().as_bytes());
            field(
                &mut content,
                &std::fs::read(p.manifest_path()).unwrap_or_default(),
            );
            field(&mut content, p.schema().as_bytes());
            for e in p.extensions() {
                field(&mut content, e.as_bytes());
            }
            for m in p.migrations() {
                field(&mut content, m.name().as_bytes());
                field(&mut content, m.checksum().as_bytes());
            }
            for r in p.repeatables() {
                field(&mut content, r.name().as_bytes());
                field(&mut content, r.checksum().as_bytes());
            }
            for o in &p.code().objects {
                field(&mut content, o.hash.as_bytes());
            }
            for f in &p.code().files {
                field(&mut content, f.text.as_bytes());
            }
        }
        CacheKey {
            package: hex::encode(&package.finalize()[..6]),
            content: hex::encode(&content.finalize()[..12]),
        }
    }

    /// The names of all caches of this project start with it.
    fn prefix(&self) -> String {
        format!("strata_shadow_cache_{}_", self.package)
    }

    /// The cache database's name (at most 63 bytes: 20 + 12 + 1 + 24).
    pub fn database(&self) -> String {
        format!("{}{}", self.prefix(), self.content)
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::CacheKey;

    fn project(manifest: &str, files: &[(&str, &str)]) -> (tempfile::TempDir, pgstrata::Project) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("migrations")).unwrap();
        std::fs::write(dir.path().join("strata.toml"), manifest).unwrap();
        for (name, text) in files {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let project = pgstrata::Project::load(&[dir.path()]).unwrap();
        (dir, project)
    }

    const A: (&str, &str) = (
        "migrations/0001_a.sql",
        "-- migrate:up\nCREATE TABLE a (id int);\n",
    );
    const B: (&str, &str) = (
        "migrations/0002_b.sql",
        "-- migrate:up\nCREATE TABLE b (id int);\n",
    );
    const AB: &str = "name = \"cache\"\nschema = \"c\"\nmigrations = [\"migrations/0001_a.sql\", \"migrations/0002_b.sql\"]\n";

    #[test]
    fn any_change_to_what_a_replay_depends_on_changes_the_key() {
        let (_d, base) = project(AB, &[A, B]);
        let key = CacheKey::with_strata(&base, "1.0.0", 170_000);
        // The same inputs: the same key (a second run uses the cache).
        let (_d2, same) = project(AB, &[A, B]);
        assert_eq!(CacheKey::with_strata(&same, "1.0.0", 170_000), key);
        // Another Strata, another server version.
        assert_ne!(CacheKey::with_strata(&base, "1.0.1", 170_000), key);
        assert_ne!(CacheKey::with_strata(&base, "1.0.0", 170_001), key);
        // A migration's content.
        let (_d3, edited) = project(
            AB,
            &[
                A,
                (
                    "migrations/0002_b.sql",
                    "-- migrate:up\nCREATE TABLE b (id bigint);\n",
                ),
            ],
        );
        let edited = CacheKey::with_strata(&edited, "1.0.0", 170_000);
        assert_ne!(edited, key);
        // The same package, so the new cache replaces the old one.
        assert_eq!(edited.prefix(), key.prefix());
        // The order of the migrations.
        let (_d4, reordered) = project(
            "name = \"cache\"\nschema = \"c\"\nmigrations = [\"migrations/0002_b.sql\", \"migrations/0001_a.sql\"]\n",
            &[A, B],
        );
        assert_ne!(CacheKey::with_strata(&reordered, "1.0.0", 170_000), key);
        // A migration more.
        let (_d5, fewer) = project(
            "name = \"cache\"\nschema = \"c\"\nmigrations = [\"migrations/0001_a.sql\"]\n",
            &[A],
        );
        assert_ne!(CacheKey::with_strata(&fewer, "1.0.0", 170_000), key);
        // Another package: another prefix, so their caches do not replace each other.
        let (_d6, other) = project(&AB.replace("\"cache\"", "\"other\""), &[A, B]);
        assert_ne!(
            CacheKey::with_strata(&other, "1.0.0", 170_000).prefix(),
            key.prefix()
        );
        assert!(key.database().len() <= 63, "{}", key.database());
    }
}
