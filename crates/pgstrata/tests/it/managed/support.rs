//! A package in a temporary directory, and a pgtest database to deploy it to.

use std::path::PathBuf;

use pgstrata::{Database, Error, Package, Project, TestMode, TestOptions, UpOptions, UpReport};
use pgstrata_conn::ConnectOptions;
use tempfile::TempDir;

/// A package directory: `strata.toml` plus files, editable between deploys.
pub struct Pkg {
    _dir: TempDir,
    pub root: PathBuf,
}

impl Pkg {
    /// A package named `name` owning `schema`, with `extra` manifest lines and the listed migrations (under
    /// `migrations/`).
    pub fn new(name: &str, schema: &str, extra: &str, migrations: &[&str]) -> Pkg {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join(schema);
        std::fs::create_dir_all(root.join("migrations")).unwrap();
        let list: String = migrations
            .iter()
            .map(|m| format!("    \"migrations/{m}\",\n"))
            .collect();
        std::fs::write(
            root.join("strata.toml"),
            format!("name = {name:?}\nschema = {schema:?}\nmigrations = [\n{list}]\n{extra}\n"),
        )
        .unwrap();
        Pkg { _dir: dir, root }
    }

    /// Write (or overwrite) a file relative to the package root.
    pub fn write(&self, rel: &str, text: &str) -> &Pkg {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    /// Write a migration under `migrations/` and append it to the manifest's list.
    pub fn add_migration(&self, file: &str, text: &str) {
        self.write(&format!("migrations/{file}"), text);
        let manifest = self.root.join("strata.toml");
        let m = std::fs::read_to_string(&manifest).unwrap();
        let at = m.find("\n]").expect("a migrations list");
        let updated = format!("{}\n    \"migrations/{file}\",{}", &m[..at], &m[at..]);
        std::fs::write(manifest, updated).unwrap();
    }

    /// Replace `from` by `to` in a file (which must contain it).
    pub fn edit(&self, rel: &str, from: &str, to: &str) {
        let path = self.root.join(rel);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{rel} does not contain {from:?}");
        std::fs::write(path, text.replacen(from, to, 1)).unwrap();
    }

    pub fn load(&self) -> Result<Package, Error> {
        Package::load(&self.root)
    }

    pub fn project(&self) -> Project {
        Project::new(vec![self.load().unwrap()]).unwrap()
    }
}

/// A fresh database with a Strata connection and a plain client for assertions.
pub struct Db {
    /// Keeps the database alive (dropped with it).
    _test: pgtest::TestDb,
    pub db: Database,
    pub sql: tokio_postgres::Client,
}

impl Db {
    pub async fn new() -> Db {
        let test = pgtest::TestDb::new().await;
        let db = Database::connect(&ConnectOptions::parse(&test.url()).unwrap())
            .await
            .unwrap();
        let sql = test.client().await;
        Db {
            _test: test,
            db,
            sql,
        }
    }

    /// `up` with tests run only when something changed (the default).
    pub async fn up(&mut self, project: &Project) -> Result<UpReport, Error> {
        self.up_with(project, UpOptions::default()).await
    }

    pub async fn up_with(&mut self, project: &Project, opts: UpOptions) -> Result<UpReport, Error> {
        pgstrata::up(&mut self.db, project, &opts, &mut pgstrata::Quiet).await
    }

    /// `strata test`: a rolled-back deploy that always runs the tests.
    pub async fn test(
        &mut self,
        project: &Project,
        options: TestOptions,
    ) -> Result<UpReport, Error> {
        self.up_with(
            project,
            UpOptions {
                dry_run: true,
                tests: TestMode::Always,
                test_options: options,
                ..Default::default()
            },
        )
        .await
    }

    /// `PG*` variables that reach the database (for `psql`).
    pub fn env(&self) -> Vec<(String, String)> {
        self._test.env()
    }

    pub async fn value<T: for<'a> tokio_postgres::types::FromSql<'a>>(&self, query: &str) -> T {
        self.sql.query_one(query, &[]).await.unwrap().get(0)
    }

    pub async fn exec(&self, sql: &str) {
        self.sql.batch_execute(sql).await.unwrap();
    }

    /// Every function, view and trigger of `schema`, with the oid and xmin of its catalog row(s): equal snapshots
    /// mean nothing was touched.
    pub async fn catalog(&self, schema: &str) -> Vec<(String, u32, String)> {
        self.sql
            .query(
                "SELECT p.oid::regprocedure::text, p.oid, p.xmin::text FROM pg_proc p
                  WHERE p.pronamespace = $1::text::regnamespace
                 UNION ALL
                 SELECT c.oid::regclass::text, c.oid, c.xmin::text || '/' || r.xmin::text
                   FROM pg_class c JOIN pg_rewrite r ON r.ev_class = c.oid
                  WHERE c.relnamespace = $1::text::regnamespace AND c.relkind = 'v'
                 UNION ALL
                 SELECT t.tgname::text, t.oid, t.xmin::text FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                  WHERE c.relnamespace = $1::text::regnamespace AND NOT t.tgisinternal
                 ORDER BY 1",
                &[&schema],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    }

    /// Oid of a function given as `schema.name(types)`, or of a view.
    pub async fn oid(&self, object: &str) -> Option<u32> {
        let sql = if object.contains('(') {
            "SELECT to_regprocedure($1)::oid"
        } else {
            "SELECT to_regclass($1)::oid"
        };
        self.sql.query_one(sql, &[&object]).await.unwrap().get(0)
    }

    /// Recorded managed objects: (kind, identity).
    pub async fn recorded(&self) -> Vec<(String, String)> {
        self.sql
            .query(
                "SELECT kind, identity FROM strata.managed_object ORDER BY kind, identity",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect()
    }
}

/// The actions of a report, as `action kind identity` strings.
pub fn actions(report: &UpReport) -> Vec<String> {
    report
        .code
        .changes
        .iter()
        .map(|c| {
            format!(
                "{} {} {}",
                serde_json::to_value(c.action).unwrap().as_str().unwrap(),
                c.kind,
                c.identity
            )
        })
        .collect()
}
