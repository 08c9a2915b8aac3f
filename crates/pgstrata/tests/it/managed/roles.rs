//! One schema and one role per package: ownership, isolation, and `uses` grants that come and go.

use pgstrata::{Database, Error, Project};
use pgstrata_conn::ConnectOptions;

use crate::managed::support::{Db, Pkg};

/// Package `core` (a table and a function) and package `shop`, which may use it.
fn packages(uses: bool) -> (Pkg, Pkg) {
    let core = Pkg::new("acme/core", "core", "", &["0001.sql"]);
    core.write("migrations/0001.sql", "CREATE TABLE prices (sku text PRIMARY KEY, cents int);\nINSERT INTO prices VALUES ('a', 100);\n");
    core.write(
        "code.sql",
        "CREATE FUNCTION core.price(s text) RETURNS int LANGUAGE sql STABLE AS 'SELECT cents FROM core.prices WHERE sku = s';\n",
    );
    let extra = if uses {
        format!(
            "uses = [{{ name = \"acme/core\", path = {:?} }}]",
            core.root.display().to_string()
        )
    } else {
        String::new()
    };
    let shop = Pkg::new("acme/shop", "shop", &extra, &["0001.sql"]);
    shop.write(
        "migrations/0001.sql",
        "CREATE TABLE orders (sku text, qty int);\n",
    );
    (core, shop)
}

fn project(core: &Pkg, shop: &Pkg) -> Project {
    Project::new(vec![core.load().unwrap(), shop.load().unwrap()]).unwrap()
}

#[tokio::test]
async fn packages_cannot_touch_each_other_without_uses() {
    let (core, shop) = packages(false);
    let mut db = Db::new().await;
    db.up(&project(&core, &shop)).await.unwrap();
    let owners: Vec<(String, String)> = db
        .sql
        .query(
            "SELECT nspname::text, pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname IN ('core', 'shop') ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        owners,
        [
            ("core".to_string(), "$acme/core".to_string()),
            ("shop".to_string(), "$acme/shop".to_string())
        ]
    );

    // A migration of shop writing into core's schema is refused by PostgreSQL.
    shop.add_migration("0002.sql", "INSERT INTO core.prices VALUES ('b', 1);\n");
    let Error::Sql(e) = db.up(&project(&core, &shop)).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(e.sqlstate, "42501", "{e:?}");
    assert_eq!(e.message, "permission denied for schema core");
    shop.write(
        "migrations/0002.sql",
        "CREATE TABLE core.sneaky (id int);\n",
    );
    let Error::Sql(e) = db.up(&project(&core, &shop)).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(e.message, "permission denied for schema core");
    // Nor can its managed code.
    shop.write("migrations/0002.sql", "SELECT 1;\n");
    shop.write(
        "code.sql",
        "CREATE VIEW shop.priced AS SELECT o.sku, core.price(o.sku) FROM shop.orders o;\n",
    );
    let Error::Sql(e) = db.up(&project(&core, &shop)).await.unwrap_err() else {
        panic!()
    };
    assert_eq!(e.message, "permission denied for schema core");
}

#[tokio::test]
async fn uses_grants_read_access_and_removing_it_revokes() {
    let (core, shop) = packages(true);
    shop.write(
        "code.sql",
        "CREATE VIEW shop.priced AS SELECT o.sku, core.price(o.sku) AS cents FROM shop.orders o;\n",
    );
    let mut db = Db::new().await;
    let report = db.up(&project(&core, &shop)).await.unwrap();
    assert!(
        report
            .roles
            .iter()
            .any(|r| r == "granted $acme/shop the use of core"),
        "{:?}",
        report.roles
    );
    let can_read: bool = db
        .value("SELECT has_table_privilege('$acme/shop', 'core.prices', 'SELECT')")
        .await;
    assert!(can_read);
    let can_write: bool = db
        .value("SELECT has_table_privilege('$acme/shop', 'core.prices', 'INSERT')")
        .await;
    assert!(!can_write);
    // Objects core creates later are covered by default privileges.
    core.add_migration("0002.sql", "CREATE TABLE discounts (sku text);\n");
    db.up(&project(&core, &shop)).await.unwrap();
    let later: bool = db
        .value("SELECT has_table_privilege('$acme/shop', 'core.discounts', 'SELECT')")
        .await;
    assert!(later);
    // An unchanged redeploy grants nothing again (and so touches no catalog row).
    let again = db.up(&project(&core, &shop)).await.unwrap();
    assert!(again.roles.is_empty(), "{:?}", again.roles);

    // Drop the use (and the view that needed it): access is revoked.
    let (_, shop2) = packages(false);
    std::fs::copy(
        shop.root.join("migrations/0001.sql"),
        shop2.root.join("migrations/0001.sql"),
    )
    .unwrap();
    let report = db.up(&project(&core, &shop2)).await.unwrap();
    assert!(
        report
            .roles
            .iter()
            .any(|r| r == "revoked the use of core from $acme/shop"),
        "{:?}",
        report.roles
    );
    let can_read: bool = db
        .value("SELECT has_table_privilege('$acme/shop', 'core.prices', 'SELECT')")
        .await;
    assert!(!can_read);
    let usage: bool = db
        .value("SELECT has_schema_privilege('$acme/shop', 'core', 'USAGE')")
        .await;
    assert!(!usage);
}

#[tokio::test]
async fn existing_schemas_are_handed_over_and_opting_out_keeps_the_login() {
    let mut db = Db::new().await;
    // A schema created before Strata managed roles, owned by the login.
    db.exec(
        "CREATE SCHEMA legacy; CREATE TABLE legacy.t (id int); CREATE FUNCTION legacy.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
         CREATE TABLE legacy.u (id int GENERATED ALWAYS AS IDENTITY); CREATE SEQUENCE legacy.s;
         CREATE VIEW legacy.v AS SELECT 1 AS one; CREATE PROCEDURE legacy.p() LANGUAGE sql AS 'SELECT 1';
         CREATE TYPE legacy.pair AS (a int, b int); CREATE TYPE legacy.mood AS ENUM ('ok');
         CREATE DOMAIN legacy.positive AS int CHECK (VALUE > 0); CREATE TYPE legacy.span AS RANGE (subtype = int);",
    )
    .await;
    let pkg = Pkg::new("acme/legacy", "legacy", "", &["0001.sql"]);
    pkg.write("migrations/0001.sql", "ALTER TABLE t ADD note text;\n");
    // Objects no deploy of the package created: taken over only when the manifest says so.
    let Error::Refused { message, .. } = db.up(&pkg.project()).await.unwrap_err() else {
        panic!()
    };
    assert!(
        // Relations and routines are counted: t, u, its identity sequence, s, v, f, p and span's constructors.
        message.contains("schema legacy already exists (owned by postgres) with"),
        "{message}"
    );
    let pkg = Pkg::new(
        "acme/legacy",
        "legacy",
        "[security]\nadopt_schema = true",
        &["0001.sql"],
    );
    pkg.write("migrations/0001.sql", "ALTER TABLE t ADD note text;\n");
    db.up(&pkg.project()).await.unwrap();
    let owner: String = db
        .value(
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'legacy.t'::regclass",
        )
        .await;
    assert_eq!(owner, "$acme/legacy");
    // Everything else in the schema changed hands too (a column's sequence with its table).
    let others: Vec<String> = db
        .value(
            "SELECT coalesce(array_agg(name), '{}') FROM (SELECT c.relname::text AS name FROM pg_class c
              WHERE c.relnamespace = 'legacy'::regnamespace AND c.relkind IN ('r', 'S', 'v')
                AND pg_get_userbyid(c.relowner) <> '$acme/legacy'
             UNION ALL
             SELECT p.proname::text FROM pg_proc p
              WHERE p.pronamespace = 'legacy'::regnamespace AND pg_get_userbyid(p.proowner) <> '$acme/legacy'
             UNION ALL
             SELECT t.typname::text FROM pg_type t
              WHERE t.typnamespace = 'legacy'::regnamespace AND pg_get_userbyid(t.typowner) <> '$acme/legacy') x",
        )
        .await;
    assert_eq!(others, Vec::<String>::new());

    let plain = Pkg::new(
        "acme/plain",
        "plain",
        "[security]\npackage_role = false",
        &["0001.sql"],
    );
    plain.write("migrations/0001.sql", "CREATE TABLE t (id int);\n");
    db.up(&plain.project()).await.unwrap();
    let owner: String = db
        .value(
            "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'plain.t'::regclass",
        )
        .await;
    assert_eq!(owner, "postgres");
}

#[tokio::test]
async fn nothing_of_a_package_role_may_land_outside_its_schema() {
    let mut db = Db::new().await;
    // A schema anyone may create in: PostgreSQL lets the package role write there, Strata does not.
    db.exec("CREATE SCHEMA open; GRANT CREATE, USAGE ON SCHEMA open TO PUBLIC")
        .await;
    let pkg = Pkg::new("acme/leaky", "leaky", "", &["0001.sql"]);
    pkg.write(
        "migrations/0001.sql",
        "CREATE TABLE open.t (id int);
         CREATE FUNCTION open.f() RETURNS int LANGUAGE sql AS 'SELECT 1';
         CREATE TYPE open.pair AS (a int, b int);
         CREATE TYPE open.mood AS ENUM ('ok');
         CREATE DOMAIN open.positive AS int CHECK (VALUE > 0);
         CREATE SEQUENCE open.s;
         CREATE VIEW open.v AS SELECT 1 AS one;\n",
    );
    let err = db.up(&pkg.project()).await.unwrap_err();
    let Error::Refused { message, .. } = &err else {
        panic!("expected a refusal, got {err:?}")
    };
    assert!(
        message.contains("table open.t (owned by $acme/leaky, whose schema is leaky)"),
        "{message}"
    );
    // Every kind of object the check knows, each named once (not the table's row type, nor any array type).
    for what in [
        "function open.f()",
        "type open.pair",
        "type open.mood",
        "type open.positive",
        "sequence open.s",
        "view open.v",
    ] {
        assert_eq!(message.matches(what).count(), 1, "{what}: {message}");
    }
    assert!(
        !message.contains("open.t[]") && !message.contains("type open.t "),
        "{message}"
    );
    let created: bool = db.value("SELECT to_regclass('open.t') IS NULL").await;
    assert!(created, "the deploy was rolled back");
}

/// A login with CREATEROLE but not SUPERUSER deploys packages whose roles exist already. PostgreSQL 16 changed what
/// such a login may do: the roles it creates come with ADMIN but neither INHERIT nor SET, and it may grant only roles
/// it holds with ADMIN. Strata asks the server for `SET` (not mere membership) and grants itself `WITH SET TRUE`.
#[tokio::test]
async fn a_createrole_login_deploys_with_existing_package_roles() {
    let db = Db::new().await;
    let version: i32 = db
        .value("SELECT current_setting('server_version_num')::int")
        .await;
    let name: String = db.value("SELECT current_database()::text").await;
    // Roles belong to the cluster, which the tests of this process share: names unique to this database.
    let login = format!("deployer_{name}");
    db.exec(&format!(
        "CREATE ROLE {login} LOGIN CREATEROLE; GRANT CREATE ON DATABASE {name} TO {login};"
    ))
    .await;
    let url = pgtest::cluster_url(&name).replacen("postgres@", &format!("{login}@"), 1);
    let mut as_login = Database::connect(&ConnectOptions::parse(&url).unwrap())
        .await
        .unwrap();
    let login_sql = |sql: String| {
        let url = url.clone();
        async move {
            let (client, connection) = url
                .parse::<tokio_postgres::Config>()
                .unwrap()
                .connect(tokio_postgres::NoTls)
                .await
                .unwrap();
            tokio::spawn(connection);
            client.batch_execute(&sql).await.unwrap();
        }
    };
    let deploy = |pkg: &Pkg| pkg.project();

    // 1. The login created the package role itself, before Strata did (from 16 on: ADMIN, no SET).
    let own = Pkg::new(&format!("acme/own-{name}"), "own", "", &["0001.sql"]);
    own.write("migrations/0001.sql", "CREATE TABLE own.t (id int);\n");
    login_sql(format!("CREATE ROLE \"$acme/own-{name}\" NOLOGIN")).await;
    pgstrata::up(
        &mut as_login,
        &deploy(&own),
        &Default::default(),
        &mut pgstrata::Quiet,
    )
    .await
    .unwrap();
    let owner: String = db
        .value("SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'own.t'::regclass")
        .await;
    assert_eq!(owner, format!("$acme/own-{name}"));

    // 2. A role a superuser created and granted to the login: on 16+ WITH ADMIN but SET FALSE.
    let granted = Pkg::new(
        &format!("acme/granted-{name}"),
        "granted",
        "",
        &["0001.sql"],
    );
    granted.write("migrations/0001.sql", "CREATE TABLE granted.t (id int);\n");
    let role = format!("\"$acme/granted-{name}\"");
    if version >= 160_000 {
        db.exec(&format!(
            "CREATE ROLE {role} NOLOGIN; GRANT {role} TO {login} WITH ADMIN TRUE, SET FALSE;"
        ))
        .await;
    } else {
        db.exec(&format!("CREATE ROLE {role} NOLOGIN")).await;
    }
    pgstrata::up(
        &mut as_login,
        &deploy(&granted),
        &Default::default(),
        &mut pgstrata::Quiet,
    )
    .await
    .unwrap();
    let can_set: bool = db
        .value(&format!(
            "SELECT pg_has_role('{login}', '$acme/granted-{name}', \
             CASE WHEN current_setting('server_version_num')::int >= 160000 THEN 'SET' ELSE 'MEMBER' END)"
        ))
        .await;
    assert!(can_set);

    // 3. A role someone else created, without granting it: CREATEROLE covers it before 16, not from 16 on.
    let foreign = Pkg::new(
        &format!("acme/foreign-{name}"),
        "foreign_pkg",
        "",
        &["0001.sql"],
    );
    foreign.write(
        "migrations/0001.sql",
        "CREATE TABLE foreign_pkg.t (id int);\n",
    );
    db.exec(&format!("CREATE ROLE \"$acme/foreign-{name}\" NOLOGIN"))
        .await;
    let result = pgstrata::up(
        &mut as_login,
        &deploy(&foreign),
        &Default::default(),
        &mut pgstrata::Quiet,
    )
    .await;
    if version >= 160_000 {
        // Refused before anything changed, saying what is missing and how to grant it.
        let Err(Error::Refused {
            message,
            help: Some(help),
        }) = result
        else {
            panic!("PostgreSQL 16+ refuses to grant a role without ADMIN: {result:?}")
        };
        assert!(message.contains("the role's ADMIN option"), "{message}");
        assert!(
            help.contains(&format!(
                "GRANT \"$acme/foreign-{name}\" TO \"{login}\" WITH SET TRUE;"
            )),
            "{help}"
        );
        assert!(help.contains("`package_role = false`"), "{help}");
        let schema: Option<String> = db
            .value("SELECT to_regnamespace('foreign_pkg')::text")
            .await;
        assert_eq!(schema, None, "a failed deploy leaves nothing behind");
    } else {
        result.unwrap();
    }
}
