//! Public projects' folders as they are: stray files, versions that do not fit, an explicit layout that matches
//! nothing, and the popx and postgres-migrations layouts (deploy and adopt). Each folder is a minimal reproduction
//! written by the test.

use std::path::Path;

use pgstrata::{AdoptOptions, Layout, Package};

use crate::interop::adopt::{FLYWAY_TABLE, SQLX_TABLE, flyway_crc, flyway_row};
use crate::interop::support::*;

fn write_all(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }
}

async fn adopt(db: &pgtest::TestDb, pkg: &Package) -> pgstrata::Result<pgstrata::AdoptReport> {
    let mut conn = connect(db).await;
    pgstrata::adopt(
        &mut conn,
        &project(pkg.clone()),
        &AdoptOptions::default(),
        &mut pgstrata::Quiet,
    )
    .await
}

#[test]
fn a_stray_top_level_file_in_a_diesel_folder_is_ignored_and_named() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("shop");
    write_all(
        &dir,
        &[
            (
                "2024-01-01-000000_users/up.sql",
                "CREATE TABLE users (id bigint);\n",
            ),
            ("2024-01-01-000000_users/down.sql", "DROP TABLE users;\n"),
            (
                "2024-01-02-000000_orders/up.sql",
                "CREATE TABLE orders (id bigint);\n",
            ),
            (
                "data_countries.sql",
                "INSERT INTO countries VALUES ('fr');\n",
            ),
        ],
    );
    assert_eq!(Layout::detect(&dir).expect("detected"), Layout::Diesel);
    let pkg = Package::from_folder(&dir, None, None, None).expect("load");
    assert_eq!(pkg.migrations().len(), 2);
    let ignored: Vec<(&str, &str)> = pkg
        .ignored_files()
        .iter()
        .map(|f| (f.path.as_str(), f.reason.as_str()))
        .collect();
    assert_eq!(ignored.len(), 1);
    assert_eq!(ignored[0].0, "data_countries.sql");
    assert!(ignored[0].1.contains("top level"), "{}", ignored[0].1);

    // A sqlx folder's notes.sql (no `_`, which sqlx skips) does not stop detection either.
    let sqlx = copy_fixture("sqlx");
    assert_eq!(Layout::detect(sqlx.path()).expect("sqlx"), Layout::Sqlx);
    let pkg = Package::from_folder(sqlx.path(), None, None, None).expect("load");
    let names: Vec<&str> = pkg
        .ignored_files()
        .iter()
        .map(|f| f.path.as_str())
        .collect();
    assert_eq!(names, ["notes.sql"]);

    // A folder where the numbered files are the minority is no tool's folder.
    let odd = tempfile::tempdir().expect("tmp");
    write_all(
        odd.path(),
        &[
            ("1_a.up.sql", "SELECT 1;\n"),
            ("schema.sql", "SELECT 1;\n"),
            ("seed.sql", "SELECT 1;\n"),
        ],
    );
    let err = Layout::detect(odd.path())
        .expect_err("minority")
        .to_string();
    assert!(err.contains("cannot tell"), "{err}");
}

#[test]
fn sequential_sqlx_folders_stay_sqlx() {
    // `0001_name.sql` fits postgres-migrations too; without its directives or its `-`, it is sqlx's folder.
    let tmp = tempfile::tempdir().expect("tmp");
    write_all(
        tmp.path(),
        &[
            ("0001_users.sql", "CREATE TABLE users (id bigint);\n"),
            ("0002_orders.sql", "CREATE TABLE orders (id bigint);\n"),
        ],
    );
    assert_eq!(Layout::detect(tmp.path()).expect("sqlx"), Layout::Sqlx);
    write_all(
        tmp.path(),
        &[(
            "0003_index.sql",
            "-- postgres-migrations disable-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS o ON orders (id);\n",
        )],
    );
    assert_eq!(
        Layout::detect(tmp.path()).expect("postgres-migrations"),
        Layout::PostgresMigrations
    );
    // NNNN-name.up.sql without down files is the up/down layout, not postgres-migrations.
    let updown = tempfile::tempdir().expect("tmp");
    write_all(
        updown.path(),
        &[
            ("0001-users.up.sql", "CREATE TABLE users (id bigint);\n"),
            ("0002-orders.up.sql", "CREATE TABLE orders (id bigint);\n"),
        ],
    );
    assert_eq!(
        Layout::detect(updown.path()).expect("up-down"),
        Layout::UpDown
    );
}

#[test]
fn the_ambiguity_message_counts_up_files_not_pairs() {
    let tmp = tempfile::tempdir().expect("tmp");
    write_all(
        tmp.path(),
        &[
            ("1_a.up.sql", "SELECT 1;\n"),
            ("2_b.up.sql", "SELECT 2;\n"),
            ("2_b.down.sql", "SELECT 2;\n"),
        ],
    );
    let err = Layout::detect(tmp.path())
        .expect_err("ambiguous")
        .to_string();
    assert!(err.contains("fits several layouts"), "{err}");
    assert!(!err.contains("pair"), "{err}");
    assert!(
        err.contains("2 <version>_<description>.up.sql file(s) (1 with a .down.sql)"),
        "{err}"
    );
}

#[test]
fn an_explicit_layout_that_matches_nothing_is_an_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    write_all(
        tmp.path(),
        &[
            ("0001-init.sql", "CREATE TABLE a (id bigint);\n"),
            ("0002-more.sql", "CREATE TABLE b (id bigint);\n"),
        ],
    );
    let err = Package::from_folder(tmp.path(), Some(Layout::GolangMigrate), Some("x"), None)
        .expect_err("nothing matches");
    let text = err.to_string();
    assert!(
        text.contains("no golang-migrate migrations")
            && text.contains("<version>_<name>.up.sql")
            && text.contains("0001-init.sql"),
        "{text}"
    );
    // An empty folder is fine: a new project has no migrations yet.
    let empty = tempfile::tempdir().expect("tmp");
    let pkg = Package::from_folder(empty.path(), Some(Layout::GolangMigrate), Some("x"), None)
        .expect("empty folder");
    assert!(pkg.migrations().is_empty());
}

#[test]
fn a_version_beyond_its_type_is_an_error_not_skipped() {
    let tmp = tempfile::tempdir().expect("tmp");
    write_all(
        tmp.path(),
        &[
            ("1_init.up.sql", "CREATE TABLE a (id bigint);\n"),
            (
                "20210410175418000000_more.up.sql",
                "CREATE TABLE b (id bigint);\n",
            ),
        ],
    );
    let err = Package::from_folder(tmp.path(), Some(Layout::GolangMigrate), Some("x"), None)
        .expect_err("20 digits");
    let text = err.to_string();
    assert!(
        text.contains("20210410175418000000") && text.contains("64-bit"),
        "{text}"
    );
}

/// An Ory-style popx folder: one version per dialect, a dialect-less fallback, an autocommit index build, legacy
/// 14-digit versions in the tracking table.
fn popx_folder(dir: &Path) {
    write_all(
        dir,
        &[
            (
                "20210410175418000000_init.postgres.up.sql",
                "CREATE TABLE p (id bigint PRIMARY KEY);\n",
            ),
            (
                "20210410175418000000_init.mysql.up.sql",
                "CREATE TABLE p (id BIGINT) ENGINE=InnoDB;\n",
            ),
            (
                "20210410175418000000_init.up.sql",
                "this file is for databases without their own file;\n",
            ),
            ("20210410175418000000_init.down.sql", "DROP TABLE p;\n"),
            (
                "20210410175419000000_idx.postgres.autocommit.up.sql",
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS p_a ON p (id);\nCREATE INDEX CONCURRENTLY IF NOT EXISTS p_b ON p (id);\n",
            ),
            ("20210410175419000000_idx.down.sql", ""),
            (
                "20210411000000000000_name.up.sql",
                "ALTER TABLE p ADD COLUMN name text;\n",
            ),
            (
                "20210411000000000000_name.sqlite3.up.sql",
                "ALTER TABLE p ADD name TEXT;\n",
            ),
            (
                "20210411000000000000_name.down.sql",
                "ALTER TABLE p DROP COLUMN name;\n",
            ),
        ],
    );
}

#[tokio::test]
async fn popx_folders_deploy_and_adopt() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("kratos");
    popx_folder(&dir);
    assert_eq!(Layout::detect(&dir).expect("popx"), Layout::Popx);
    let pkg = Package::from_folder(&dir, None, None, None).expect("load");
    let names: Vec<&str> = pkg.migrations().iter().map(|m| m.name()).collect();
    assert_eq!(
        names,
        [
            "20210410175418000000_init",
            "20210410175419000000_idx",
            "20210411000000000000_name"
        ]
    );
    assert_eq!(
        pkg.migrations()[0].path(),
        "20210410175418000000_init.postgres.up.sql"
    );
    assert!(pkg.migrations()[1].no_transaction());
    assert!(!pkg.migrations()[0].no_transaction());
    assert_eq!(
        pkg.migrations()[2].down_sql(),
        Some("ALTER TABLE p DROP COLUMN name;\n".to_string())
    );
    assert_eq!(pkg.ignored_files().len(), 3, "{:?}", pkg.ignored_files());

    // A fresh database: the postgres files run, the others never do.
    let db = pgtest::TestDb::new().await;
    let report = up(&db, &pkg).await;
    let popx: Vec<&str> = report
        .migrations
        .iter()
        .filter(|m| m.package != "strata")
        .map(|m| m.name.as_str())
        .collect();
    assert_eq!(popx.len(), 3, "Strata's own, then popx's 3: {popx:?}");
    assert_eq!(
        query_strings(
            &db,
            "SELECT string_agg(indexname, ',' ORDER BY indexname) FROM pg_indexes WHERE tablename = 'p'"
        )
        .await,
        ["p_a,p_b,p_pkey"]
    );

    // A database popx migrated: its table lists the first version by its legacy 14-digit prefix.
    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE schema_migration (version VARCHAR (48) NOT NULL, version_self INT NOT NULL DEFAULT 0);
             CREATE UNIQUE INDEX schema_migration_version_idx ON schema_migration (version);
             CREATE TABLE p (id bigint PRIMARY KEY);
             CREATE INDEX p_a ON p (id); CREATE INDEX p_b ON p (id);
             INSERT INTO schema_migration (version) VALUES ('20210410175418'), ('20210410175419000000');",
        )
        .await
        .expect("popx's state");
    let report = adopt(&db, &pkg).await.expect("adopt");
    assert_eq!(report.source, "adopted:popx");
    assert_eq!(report.recorded.len(), 2);
    assert_eq!(report.pending, ["kratos:20210411000000000000_name"]);
    let ran = up(&db, &pkg).await;
    assert_eq!(ran.migrations.len(), 1);
    assert_eq!(ran.migrations[0].name, "20210411000000000000_name");
}

#[test]
fn popx_templates_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    write_all(
        tmp.path(),
        &[(
            "1_a.up.sql",
            "{{ if .IsPostgreSQL }}CREATE TABLE a (id bigint);{{ end }}\n",
        )],
    );
    let err = Package::from_folder(tmp.path(), Some(Layout::Popx), Some("x"), None)
        .expect_err("template");
    assert!(err.to_string().contains("Go template"), "{err}");
}

const PM_FILES: [(&str, &str); 4] = [
    ("0001-init.sql", "CREATE TABLE q (id bigint);\n"),
    (
        "0002-idx.sql",
        "-- postgres-migrations disable-transaction\nCREATE INDEX CONCURRENTLY q_id ON q (id);\n",
    ),
    (
        "0003-skip.sql",
        "-- postgres-migrations ignore\nDROP TABLE q;\n",
    ),
    ("0004-more.sql", "ALTER TABLE q ADD COLUMN name text;\n"),
];

/// SHA-1 of file name + text, computed with Python's hashlib for these exact files.
const PM_HASHES: [(i32, &str, &str); 3] = [
    (1, "init", "d5df68ee26e904b3e6d790b4e7a010530e7cc313"),
    (2, "idx", "7c5c4bc15ee55313536d2daffa9739b51fd32f08"),
    (3, "skip", "59962bab5e929d19d936b8721534f7812ed5a3d6"),
];

#[tokio::test]
async fn postgres_migrations_folders_deploy_and_adopt_with_their_hash() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("storage");
    write_all(&dir, &PM_FILES);
    assert_eq!(
        Layout::detect(&dir).expect("postgres-migrations"),
        Layout::PostgresMigrations
    );
    let pkg = Package::from_folder(&dir, None, None, None).expect("load");
    assert!(pkg.migrations()[1].no_transaction());
    assert!(
        pkg.migrations()[2].up().sections().is_empty(),
        "ignored: never run"
    );

    // Fresh: 0003's DROP never runs.
    let db = pgtest::TestDb::new().await;
    up(&db, &pkg).await;
    assert_eq!(
        query_strings(&db, "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'q'::regclass AND attnum > 0").await,
        ["id,name"]
    );

    // Migrated by the tool (three files, with its own row 0), then adopted: the hashes are checked.
    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS migrations (
               id integer PRIMARY KEY,
               name varchar(100) UNIQUE NOT NULL,
               hash varchar(40) NOT NULL,
               executed_at timestamp DEFAULT current_timestamp
             );
             INSERT INTO migrations (id, name, hash) VALUES (0, 'create-migrations-table', 'e18db593bcde2aca2a408c4d1100f6abba2195df');
             CREATE TABLE q (id bigint); CREATE INDEX q_id ON q (id);",
        )
        .await
        .expect("tool state");
    for (id, name, hash) in PM_HASHES {
        let hash = if id == 2 {
            "0".repeat(40)
        } else {
            hash.to_string()
        };
        client
            .execute(
                "INSERT INTO migrations (id, name, hash) VALUES ($1, $2, $3)",
                &[&id, &name, &hash],
            )
            .await
            .expect("row");
    }
    let err = adopt(&db, &pkg).await.expect_err("hash of 0002 differs");
    assert!(err.to_string().contains("0002-idx.sql"), "{err}");
    client
        .execute(
            "UPDATE migrations SET hash = $1 WHERE id = 2",
            &[&PM_HASHES[1].2],
        )
        .await
        .expect("fix");
    let report = adopt(&db, &pkg).await.expect("adopt");
    assert_eq!(report.recorded.len(), 3);
    assert!(report.recorded.iter().all(|a| a.verified == Some("sha1")));
    assert_eq!(report.pending, ["storage:0004-more"]);
    assert_eq!(up(&db, &pkg).await.migrations.len(), 1);
}

#[test]
fn postgres_migrations_refuses_gaps_like_the_tool() {
    let tmp = tempfile::tempdir().expect("tmp");
    write_all(tmp.path(), &[PM_FILES[0], PM_FILES[3]]);
    let err = Package::from_folder(
        tmp.path(),
        Some(Layout::PostgresMigrations),
        Some("x"),
        None,
    )
    .expect_err("gap");
    assert!(err.to_string().contains("without a gap"), "{err}");
}

#[tokio::test]
async fn sqlx_ignored_chars_are_honoured_for_checksums() {
    let tmp = tempfile::tempdir().expect("tmp");
    let crate_dir = tmp.path().join("app");
    let text = "CREATE TABLE accounts (id bigint);\r\nCREATE TABLE owners (id bigint);\r\n";
    write_all(
        &crate_dir,
        &[
            ("Cargo.toml", "[package]\nname = \"app\"\n"),
            ("sqlx.toml", "[migrate]\nignored-chars = [\"\\r\"]\n"),
            ("migrations/1_accounts.sql", text),
        ],
    );
    let dir = crate_dir.join("migrations");
    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    client.batch_execute(SQLX_TABLE).await.expect("table");
    psql_file(&db, &dir.join("1_accounts.sql"));
    // sqlx hashes the file without the ignored characters (computed here by PostgreSQL).
    client
        .execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (1, 'accounts', TRUE, sha384(convert_to(replace($1, E'\\r', ''), 'UTF8')), 1)",
            &[&text],
        )
        .await
        .expect("row");
    let pkg = Package::from_folder(&dir, Some(Layout::Sqlx), Some("app"), None).expect("load");
    let report = adopt(&db, &pkg).await.expect("adopt with ignored-chars");
    assert_eq!(report.recorded.len(), 1);
    assert_eq!(report.recorded[0].verified, Some("sha384"));

    // Without the setting the same file does not match.
    std::fs::remove_file(crate_dir.join("sqlx.toml")).expect("rm");
    let db2 = pgtest::TestDb::new().await;
    let client = db2.client().await;
    client.batch_execute(SQLX_TABLE).await.expect("table");
    client
        .execute(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
             VALUES (1, 'accounts', TRUE, sha384(convert_to(replace($1, E'\\r', ''), 'UTF8')), 1)",
            &[&text],
        )
        .await
        .expect("row");
    let err = adopt(&db2, &pkg).await.expect_err("checksum differs");
    assert!(err.to_string().contains("1_accounts.sql"), "{err}");
}

#[tokio::test]
async fn flyway_java_migrations_are_recorded_as_external() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("billing");
    write_all(
        &dir,
        &[
            ("V1__init.sql", "CREATE TABLE invoice (id bigint);\n"),
            (
                "V3__total.sql",
                "ALTER TABLE invoice ADD COLUMN total bigint;\n",
            ),
            (
                "V4__note.sql",
                "ALTER TABLE invoice ADD COLUMN note text;\n",
            ),
        ],
    );
    let db = pgtest::TestDb::new().await;
    db.client()
        .await
        .batch_execute(FLYWAY_TABLE)
        .await
        .expect("table");
    psql_file(&db, &dir.join("V1__init.sql"));
    psql_file(&db, &dir.join("V3__total.sql"));
    let crc = |f: &str| flyway_crc(&std::fs::read_to_string(dir.join(f)).expect("read"));
    flyway_row(
        &db,
        1,
        Some("1"),
        "SQL",
        "V1__init.sql",
        Some(crc("V1__init.sql")),
        true,
    )
    .await;
    flyway_row(
        &db,
        2,
        Some("2"),
        "JDBC",
        "db.migration.V2__Backfill",
        None,
        true,
    )
    .await;
    flyway_row(
        &db,
        3,
        Some("3"),
        "SQL",
        "V3__total.sql",
        Some(crc("V3__total.sql")),
        true,
    )
    .await;
    let pkg = Package::from_folder(&dir, Some(Layout::Flyway), None, None).expect("load");
    let report = adopt(&db, &pkg).await.expect("adopt goes on");
    assert_eq!(report.recorded.len(), 2);
    assert_eq!(report.external.len(), 1);
    assert!(
        report.external[0].contains("V2__Backfill"),
        "{:?}",
        report.external
    );
    assert!(
        report.warnings.iter().any(|w| w.contains("external")),
        "{:?}",
        report.warnings
    );
    assert_eq!(report.pending, ["billing:V4__note"]);
    let detail = query_strings(
        &db,
        "SELECT detail->>'external' FROM strata.run WHERE command = 'adopt'",
    )
    .await;
    assert!(detail[0].contains("V2__Backfill"), "{detail:?}");
    assert_eq!(up(&db, &pkg).await.migrations.len(), 1);
}

/// A long-lived project's history: tables created, renamed, created by dynamic SQL, then indexed and constrained
/// without CONCURRENTLY / NOT VALID, as early migrations do.
fn long_lived(dir: &Path) {
    write_all(
        dir,
        &[
            (
                "001_a.sql",
                "-- migrate:up\nCREATE TABLE a (id bigint PRIMARY KEY);\n",
            ),
            (
                "002_rename.sql",
                "-- migrate:up\nALTER TABLE a RENAME TO b;\n",
            ),
            (
                "003_index.sql",
                "-- migrate:up\nCREATE INDEX b_id ON b (id);\n",
            ),
            (
                "004_dynamic.sql",
                "-- migrate:up\nDO $$ BEGIN EXECUTE 'CREATE TABLE c (id bigint, b bigint)'; END $$;\n",
            ),
            (
                "005_c.sql",
                "-- migrate:up\nCREATE INDEX c_id ON c (id);\nALTER TABLE c ADD CONSTRAINT c_b FOREIGN KEY (b) REFERENCES b (id);\n",
            ),
        ],
    );
}

async fn up_result(db: &pgtest::TestDb, pkg: &Package) -> pgstrata::Result<pgstrata::UpReport> {
    let mut conn = connect(db).await;
    pgstrata::up(
        &mut conn,
        &project(pkg.clone()),
        &pgstrata::UpOptions::default(),
        &mut pgstrata::Quiet,
    )
    .await
}

#[tokio::test]
async fn lock_hazard_lint_does_not_block_a_fresh_deploy() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("app");
    long_lived(&dir);
    let pkg = Package::from_folder(&dir, None, None, None).expect("load");

    // Offline, each migration on its own: every index and constraint looks like a hazard.
    let offline = pgstrata::lint::lint_all(&project(pkg.clone()), None).expect("lint");
    assert!(offline.errors >= 3, "{offline:?}");

    // A fresh database: nothing of it exists, so nothing is locked for anyone.
    let fresh = pgtest::TestDb::new().await;
    let report = up_result(&fresh, &pkg)
        .await
        .expect("a fresh deploy needs no flag");
    assert_eq!(report.lint.errors, 0, "{:?}", report.lint);

    // A table the deploy finds empty: no rows to scan or rewrite, nobody waits long.
    let later_dir = tmp.path().join("later");
    write_all(
        &later_dir,
        &[(
            "001_index.sql",
            "-- migrate:up\nCREATE INDEX c_id ON c (id);\n",
        )],
    );
    let later = Package::from_folder(&later_dir, None, None, None).expect("load");
    let empty = pgtest::TestDb::new().await;
    empty
        .client()
        .await
        .batch_execute("CREATE TABLE c (id bigint, b bigint);")
        .await
        .expect("empty c");
    up_result(&empty, &later)
        .await
        .expect("an empty table is no hazard");

    // A table with rows: the index on it is a lock hazard again, refused before anything runs.
    let full = pgtest::TestDb::new().await;
    full.client()
        .await
        .batch_execute("CREATE TABLE c (id bigint, b bigint); INSERT INTO c VALUES (1, NULL);")
        .await
        .expect("full c");
    let err = up_result(&full, &later).await.expect_err("refused");
    let pgstrata::Error::Lint(refused) = err else {
        panic!("expected a lint refusal, got {err:?}");
    };
    let rules: Vec<&str> = refused
        .report
        .files
        .iter()
        .flat_map(|f| f.findings.iter().map(|x| x.rule.as_str()))
        .collect();
    assert!(
        rules.contains(&"require-concurrent-index-creation"),
        "{rules:?}"
    );
    assert_eq!(
        query_strings(&full, "SELECT coalesce(to_regclass('c_id')::text, 'none')").await,
        ["none"],
        "nothing ran"
    );
}
