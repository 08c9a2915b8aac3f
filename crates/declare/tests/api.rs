//! The library API: declared files, live databases and a package's migrations compared, against PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use pgstrata_declare::{Context, Options, Source};

fn context(project: Option<pgstrata::Project>) -> Context {
    Context {
        project,
        schema_dir: None,
        shadow_url: Some(pgtest::cluster_url("postgres")),
        template_cache: None,
    }
}

/// A package `name` in schema `schema` whose one migration creates table `item (id int PRIMARY KEY)`, with an
/// empty `schema/` folder for the declared files.
fn package_with_item_table(name: &str, schema: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("migrations")).unwrap();
    std::fs::create_dir_all(root.join("schema")).unwrap();
    std::fs::write(
        root.join("strata.toml"),
        format!("name = \"{name}\"\nschema = \"{schema}\"\nmigrations = [\"migrations/0001_init.sql\"]\n"),
    )
    .unwrap();
    std::fs::write(
        root.join("migrations/0001_init.sql"),
        "-- migrate:up\nCREATE TABLE item (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE item;\n",
    )
    .unwrap();
    dir
}

#[tokio::test]
async fn declared_files_against_a_live_database() {
    let db = pgtest::TestDb::new().await;
    db.client()
        .await
        .batch_execute("CREATE TABLE public.t (id int PRIMARY KEY)")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("t.sql"),
        "CREATE TABLE t (id int PRIMARY KEY, label text NOT NULL DEFAULT 'x');\nCOMMENT ON TABLE t IS 'declared';\n",
    )
    .unwrap();
    let c = pgstrata_declare::compare(
        &Source::Database(db.url()),
        &Source::Files(dir.path().to_path_buf()),
        &context(None),
        &Options::default(),
    )
    .await
    .unwrap();
    let script = c.up.script();
    assert!(
        script.contains("ALTER TABLE public.t ADD COLUMN label text DEFAULT 'x'::text NOT NULL;"),
        "{script}"
    );
    assert!(
        script.contains("COMMENT ON TABLE public.t IS 'declared';"),
        "{script}"
    );
    assert!(
        c.down
            .script()
            .contains("ALTER TABLE public.t DROP COLUMN label;")
    );
    // The reverse loses data, and says so.
    let refused = pgstrata_declare::compare(
        &Source::Files(dir.path().to_path_buf()),
        &Source::Database(db.url()),
        &context(None),
        &Options::default(),
    )
    .await
    .unwrap_err();
    assert!(refused.to_string().contains("lose data"), "{refused}");
    assert!(!refused.is_usage());
}

#[tokio::test]
async fn check_and_generate_in_a_package() {
    let dir = package_with_item_table("github.com/acme/api", "api");
    let root = dir.path();
    // Managed code (a view) stays managed code: neither side's copy shows up in the diff.
    std::fs::write(
        root.join("views.sql"),
        "CREATE VIEW api.item_ids AS SELECT id FROM api.item;\n",
    )
    .unwrap();
    std::fs::write(
        root.join("schema/item.sql"),
        "-- strata:ignore\nCREATE TABLE item (id int PRIMARY KEY, price numeric(10,2) CHECK (price >= 0));\n",
    )
    .unwrap();
    let project = pgstrata::Project::load(&[root]).unwrap();
    let ctx = context(Some(project));
    let drift = pgstrata_declare::check(&ctx, &Options::default())
        .await
        .unwrap();
    assert_eq!(drift.up.actions.len(), 2, "{}", drift.up.script());
    assert!(
        !drift.up.script().contains("item_ids"),
        "{}",
        drift.up.script()
    );

    let g = pgstrata_declare::generate("price", &ctx, &Options::default())
        .await
        .unwrap();
    assert!(g.proven);
    let path = g.path.unwrap();
    assert!(path.ends_with("migrations/0002_price.sql"));
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains("ALTER TABLE api.item ADD COLUMN price numeric(10,2);"),
        "{text}"
    );
    assert!(
        text.contains("-- migrate:down\nALTER TABLE api.item DROP CONSTRAINT item_price_check;"),
        "{text}"
    );

    let project = pgstrata::Project::load(&[root]).unwrap();
    let ctx = context(Some(project));
    let in_sync = pgstrata_declare::check(&ctx, &Options::default())
        .await
        .unwrap();
    assert!(in_sync.up.is_empty(), "{}", in_sync.up.script());
}

/// The replayed migrations kept as a template: used while the migrations stay the same, replaced when one changes.
#[tokio::test]
async fn the_template_cache_follows_the_migrations() {
    // A package name of its own: caches are per package, and other tests share the cluster.
    let dir = package_with_item_table("github.com/acme/template-cache", "tc");
    let root = dir.path();
    let migration = root.join("migrations/0001_init.sql");
    std::fs::write(
        root.join("schema/item.sql"),
        "-- strata:ignore\nCREATE TABLE item (id int PRIMARY KEY, price numeric);\n",
    )
    .unwrap();
    let shadow = pgstrata_declare::Shadow::url(&pgtest::cluster_url("postgres"))
        .await
        .unwrap();
    let admin = pgtest::TestDb::new().await;
    let caches = || async {
        admin
            .client()
            .await
            .query(
                "SELECT datname::text FROM pg_database WHERE datname LIKE 'strata_shadow_cache_%' ORDER BY 1",
                &[],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, String>(0))
            .collect::<Vec<_>>()
    };
    let check = || async {
        let project = pgstrata::Project::load(&[root]).unwrap();
        let key = pgstrata_declare::CacheKey::of(&project, shadow.version_num()).database();
        let mut ctx = context(Some(project));
        ctx.template_cache = Some(true);
        let drift = pgstrata_declare::check(&ctx, &Options::default())
            .await
            .unwrap();
        (drift.up.script(), key)
    };

    // Cold: replayed, then kept.
    let (first, key) = check().await;
    assert!(first.contains("ADD COLUMN price numeric"), "{first}");
    assert!(caches().await.contains(&key), "{:?}", caches().await);
    // Warm: a copy of the cache. (A table slipped into the cache shows that the copy, not a replay, was read.)
    let options = pgstrata_conn::ConnectOptions::parse(&pgtest::cluster_url(&key)).unwrap();
    let cache = pgstrata::Database::connect(&options).await.unwrap();
    cache
        .client()
        .batch_execute("CREATE TABLE tc.marker (id int)")
        .await
        .unwrap();
    drop(cache);
    let (second, same) = check().await;
    assert_eq!(same, key);
    assert!(second.contains("DROP TABLE tc.marker;"), "{second}");
    assert!(second.contains("ADD COLUMN price numeric"), "{second}");
    // The migration changes (as an edited file would): the cache is not used, and it is replaced.
    std::fs::write(
        &migration,
        "-- migrate:up\nCREATE TABLE item (id int PRIMARY KEY, price numeric);\n-- migrate:down\nDROP TABLE item;\n",
    )
    .unwrap();
    let (third, new_key) = check().await;
    assert!(third.is_empty(), "the stale cache was used:\n{third}");
    assert_ne!(new_key, key);
    let now = caches().await;
    assert!(now.contains(&new_key) && !now.contains(&key), "{now:?}");
    // Without the cache (a --shadow-url server by default), nothing is left behind.
    let project = pgstrata::Project::load(&[root]).unwrap();
    pgstrata_declare::check(&context(Some(project)), &Options::default())
        .await
        .unwrap();
    assert_eq!(caches().await, now);
    admin
        .client()
        .await
        .batch_execute(&format!("DROP DATABASE \"{new_key}\" WITH (FORCE)"))
        .await
        .unwrap();
}

#[test]
fn sources_parse() {
    assert_eq!(Source::parse("migrations"), Source::Migrations);
    assert_eq!(
        Source::parse("postgres://u@h/db"),
        Source::Database("postgres://u@h/db".into())
    );
    assert_eq!(
        Source::parse("host=h dbname=d"),
        Source::Database("host=h dbname=d".into())
    );
    assert_eq!(Source::parse("schema/"), Source::Files("schema/".into()));
}
