//! pgpkg's own packages, reduced to what made Strata refuse them: several schemas (`Schemas`), the
//! `@migration.pgpkg` index, used packages in a `.pgpkg/` cache, quoted schema names.

use pgstrata::{Error, Package, Project};

use crate::managed::support::Db;

/// A pgpkg package in a temporary directory: `pgpkg.toml` plus files.
struct PgpkgDir {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
}

impl PgpkgDir {
    fn new(toml: &str) -> PgpkgDir {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("pkg");
        std::fs::create_dir_all(&root).unwrap();
        let p = PgpkgDir { _dir: dir, root };
        p.write("pgpkg.toml", toml);
        p
    }

    fn write(&self, rel: &str, text: &str) -> &PgpkgDir {
        let path = self.root.join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        self
    }

    fn project(&self) -> Result<Project, Error> {
        Project::load(&[&self.root])
    }
}

fn source_message(e: &Error) -> String {
    match e {
        Error::Source(s) => format!("{} [{}]", s.message, s.help.clone().unwrap_or_default()),
        other => other.to_string(),
    }
}

/// pgpkg's tests/good/cross-schema: a package with two schemas, test functions in both, calling across them.
#[tokio::test]
async fn a_package_owns_several_schemas() {
    let pkg = PgpkgDir::new(
        "Package = \"github.com/pgpkg/cross_schema\"\nSchemas = [ \"cs1\", \"cs2\" ]\n\
         Migrations = [\"tables.sql\"]\n",
    );
    // Unqualified names land in the first schema; the second one is on the search_path too.
    pkg.write(
        "tables.sql",
        "CREATE TABLE counter (n int);\nCREATE TABLE cs2.other (n int);\nINSERT INTO other VALUES (2);\n",
    );
    pkg.write(
        "funcs.sql",
        "create or replace function cs1.func1() returns integer language 'sql' as $$ select 1; $$;\n\
         create or replace function cs2.func2() returns integer language 'sql' as $$ select n from cs2.other; $$;\n\
         create view cs2.both as select cs1.func1() + cs2.func2() as total;\n",
    );
    pkg.write(
        "test1_test.sql",
        "create or replace function cs1.cs1_test() returns void language plpgsql as $$\n\
         begin perform cs1.func1(); perform cs2.func2(); end; $$;\n\
         create or replace function cs2.cs2_test() returns void language plpgsql as $$\n\
         begin if (select total from cs2.both) <> 3 then raise exception 'wrong total'; end if; end; $$;\n",
    );
    let project = pkg.project().unwrap();
    assert_eq!(project.packages()[0].schemas(), ["cs1", "cs2"]);
    let mut db = Db::new().await;
    let report = db.up(&project).await.unwrap();
    let tests = report.tests.as_ref().expect("the tests ran");
    assert_eq!((tests.passed, tests.failed), (2, 0), "{tests:?}");
    // The package role owns both schemas and everything in them.
    let owners: Vec<(String, String)> = db
        .sql
        .query(
            "SELECT nspname::text, pg_get_userbyid(nspowner)::text FROM pg_namespace
              WHERE nspname IN ('cs1', 'cs2') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let role = pgstrata::package_role("github.com/pgpkg/cross_schema");
    assert_eq!(
        owners,
        [("cs1".to_string(), role.clone()), ("cs2".to_string(), role)]
    );
    let total: i32 = db.value("SELECT total FROM cs2.both").await;
    assert_eq!(total, 3);
    // Redeploying changes nothing.
    let again = db.up(&project).await.unwrap();
    assert!(again.code.changes.is_empty(), "{:?}", again.code.changes);
}

#[tokio::test]
async fn strata_toml_lists_schemas_and_code_stays_inside_them() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("app");
    std::fs::create_dir_all(root.join("migrations")).unwrap();
    std::fs::write(
        root.join("strata.toml"),
        "name = \"acme/app\"\nschemas = [\"app\", \"app_private\"]\nmigrations = [\"migrations/0001.sql\"]\n",
    )
    .unwrap();
    std::fs::write(
        root.join("migrations/0001.sql"),
        "CREATE TABLE app_private.secret (v text);\nINSERT INTO secret VALUES ('s');\n",
    )
    .unwrap();
    std::fs::write(
        root.join("code.sql"),
        "CREATE FUNCTION reveal() RETURNS text LANGUAGE sql AS 'SELECT v FROM app_private.secret';\n",
    )
    .unwrap();
    let project = Project::load(&[&root]).unwrap();
    let mut db = Db::new().await;
    db.up(&project).await.unwrap();
    let v: String = db.value("SELECT app.reveal()").await;
    assert_eq!(v, "s");

    std::fs::write(
        root.join("code.sql"),
        "CREATE FUNCTION elsewhere.reveal() RETURNS text LANGUAGE sql AS 'SELECT 1';\n",
    )
    .unwrap();
    let e = Package::load(&root).unwrap_err();
    let m = source_message(&e);
    assert!(
        m.contains("outside the package's schemas (`app`, `app_private`)"),
        "{m}"
    );
}

/// pgpkg's own package and its tests/good/gl list migrations in `schema/@migration.pgpkg`; the folder also holds
/// operators and types that are not managed code.
#[tokio::test]
async fn the_migration_index_lists_migrations() {
    let pkg = PgpkgDir::new("Package = \"github.com/example/ops\"\nSchema = \"ops\"\n");
    pkg.write(
        "schema/@migration.pgpkg",
        "types.sql\n# operators come after their functions\n\nops/eq.sql   # trailing comment\n",
    );
    pkg.write(
        "schema/types.sql",
        "CREATE TYPE ops.mood AS ENUM ('sad', 'happy');\n\
         CREATE FUNCTION ops.int_eq(a integer, b integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT a = b';\n",
    );
    pkg.write(
        "schema/ops/eq.sql",
        "CREATE OPERATOR ops.=? (function = ops.int_eq, leftarg = integer, rightarg = integer);\n",
    );
    pkg.write(
        "mood.sql",
        "CREATE FUNCTION ops.cheer() RETURNS ops.mood LANGUAGE sql AS $$ SELECT 'happy'::ops.mood $$;\n",
    );
    let project = pkg.project().unwrap();
    let names: Vec<&str> = project.packages()[0]
        .migrations()
        .iter()
        .map(|m| m.name())
        .collect();
    assert_eq!(names, ["types", "eq"]);
    let mut db = Db::new().await;
    db.up(&project).await.unwrap();
    let same: bool = db.value("SELECT 2 OPERATOR(ops.=?) 2").await;
    assert!(same);
    let cheer: String = db.value("SELECT ops.cheer()::text").await;
    assert_eq!(cheer, "happy");

    // A file in the index's folder that the index does not list: refused, as pgpkg does.
    pkg.write("schema/forgotten.sql", "CREATE TABLE ops.x (n int);\n");
    let m = source_message(&pkg.project().unwrap_err());
    assert!(
        m.contains("forgotten.sql is in the folder of") && m.contains("but not listed in it"),
        "{m}"
    );
    std::fs::remove_file(pkg.root.join("schema/forgotten.sql")).unwrap();

    // Both an index and `Migrations`: pgpkg accepts only one.
    pkg.write(
        "pgpkg.toml",
        "Package = \"github.com/example/ops\"\nSchema = \"ops\"\nMigrations = [\"schema/types.sql\"]\n",
    );
    let m = source_message(&pkg.project().unwrap_err());
    assert!(m.contains("also has"), "{m}");
}

/// pgpkg's tests/good/dependencies: used packages sit in `.pgpkg/<name>`, and theirs in the same cache.
#[tokio::test]
async fn used_packages_are_found_in_the_pgpkg_cache() {
    let pkg = PgpkgDir::new(
        "Package = \"github.com/example/dependencies\"\nSchemas = [\"deps\"]\n\
         Uses = [\"github.com/example/dependencies/a\"]\n",
    );
    pkg.write(
        "deps.sql",
        "create function deps.total() returns integer language sql as $$ select a.one() + b.two() $$;\n",
    );
    pkg.write(
        ".pgpkg/github.com/example/dependencies/a/pgpkg.toml",
        "Package = \"github.com/example/dependencies/a\"\nSchemas = [\"a\"]\n\
         Uses = [\"github.com/example/dependencies/b\"]\n",
    );
    pkg.write(
        ".pgpkg/github.com/example/dependencies/a/a.sql",
        "create function a.one() returns integer language sql as $$ select b.two() - 1 $$;\n",
    );
    pkg.write(
        ".pgpkg/github.com/example/dependencies/b/pgpkg.toml",
        "Package = \"github.com/example/dependencies/b\"\nSchemas = [\"b\"]\n",
    );
    pkg.write(
        ".pgpkg/github.com/example/dependencies/b/b.sql",
        "create function b.two() returns integer language sql as $$ select 2 $$;\n",
    );
    let project = pkg.project().unwrap();
    let order: Vec<&str> = project.packages().iter().map(|p| p.name()).collect();
    assert_eq!(
        order,
        [
            "github.com/example/dependencies/b",
            "github.com/example/dependencies/a",
            "github.com/example/dependencies"
        ]
    );
    // The cache is not part of the using package's own code.
    assert_eq!(project.packages()[2].code().objects.len(), 1);
    let mut db = Db::new().await;
    let e = db.up(&project).await.unwrap_err();
    // `deps` uses only `a`: its role may not call `b`'s functions.
    assert!(e.to_string().contains("permission denied"), "{e}");
    pkg.write(
        "pgpkg.toml",
        "Package = \"github.com/example/dependencies\"\nSchemas = [\"deps\"]\n\
         Uses = [\"github.com/example/dependencies/a\", \"github.com/example/dependencies/b\"]\n",
    );
    db.up(&pkg.project().unwrap()).await.unwrap();
    let total: i32 = db.value("SELECT deps.total()").await;
    assert_eq!(total, 3);
}

/// pgpkg's tests/good/good-schema-name: any schema name pgpkg accepts works, quoted everywhere.
#[tokio::test]
async fn quoted_schema_names_deploy() {
    let pkg = PgpkgDir::new(
        "Package = \"github.com/pgpkg/good-schema-name\"\nSchema = \"good.Schema Name$!\"\n",
    );
    pkg.write("a/@migration.pgpkg", "a.sql\n");
    pkg.write(
        "a/a.sql",
        "create table \"good.Schema Name$!\".a (n int);\n",
    );
    pkg.write(
        "f.sql",
        "create function \"good.Schema Name$!\".f() returns bigint language sql as $$ select count(*) from \"good.Schema Name$!\".a $$;\n",
    );
    let mut db = Db::new().await;
    db.up(&pkg.project().unwrap()).await.unwrap();
    let n: i64 = db.value("SELECT \"good.Schema Name$!\".f()").await;
    assert_eq!(n, 0);
}
