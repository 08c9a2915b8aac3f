//! Hand-written folders with the edge cases of each layout: multi-section dbmate files, no-transaction files with
//! several statements, CRLF and BOM files, versions that sort differently as text, missing down files,
//! repeatables, detection errors.

use pgstrata::{Layout, MigrationState, Package};

use crate::interop::support::*;

fn names(pkg: &Package) -> Vec<&str> {
    pkg.migrations().iter().map(|m| m.name()).collect()
}

#[tokio::test]
async fn dbmate_multi_section_and_multi_statement_no_transaction() {
    let pkg = Package::from_layout(fixture("dbmate"), Layout::Dbmate).expect("load");
    assert_eq!(
        names(&pkg),
        [
            "20240101000001_multi",
            "20240101000002_indexes",
            "20240101000003_text"
        ]
    );
    assert!(pkg.migrations()[1].no_transaction());
    assert_eq!(pkg.migrations()[0].tool_version(), Some("20240101000001"));
    let db = pgtest::TestDb::new().await;
    up(&db, &pkg).await;
    let indexes = query_strings(
        &db,
        "SELECT indexname::text FROM pg_indexes WHERE schemaname = 'public' AND indexname IN ('a_id', 'b_a_id') ORDER BY 1",
    )
    .await;
    assert_eq!(indexes, ["a_id", "b_a_id"]);
    let comment = query_strings(&db, "SELECT obj_description('a'::regclass)").await;
    assert_eq!(comment, ["\n-- migrate:down\nnot a marker"]);
    // Both down sections of the multi-section file are stored and run.
    let mut conn = connect(&db).await;
    let opts = pgstrata::DownOptions {
        target: pgstrata::DownTarget::Steps(3),
        ..Default::default()
    };
    pgstrata::down(&mut conn, &opts, &mut pgstrata::Quiet)
        .await
        .expect("down");
    let left = query_strings(
        &db,
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1",
    )
    .await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn crlf_and_bom_files_keep_their_checksums() {
    let tmp = copy_fixture("dbmate");
    let lf = Package::from_layout(tmp.path(), Layout::Dbmate).expect("load");
    for entry in std::fs::read_dir(tmp.path()).expect("dir") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        std::fs::write(&path, format!("\u{feff}{}", text.replace('\n', "\r\n"))).expect("write");
    }
    let crlf = Package::from_layout(tmp.path(), Layout::Dbmate).expect("load CRLF");
    for (a, b) in lf.migrations().iter().zip(crlf.migrations()) {
        assert_eq!(a.checksum(), b.checksum(), "{}", a.name());
        assert_eq!(a.no_transaction(), b.no_transaction(), "{}", a.name());
    }
    let db = pgtest::TestDb::new().await;
    up(&db, &crlf).await;
    // Applied from CRLF files, then read as LF files: nothing changed.
    let conn = connect(&db).await;
    let plan = pgstrata::plan(&conn, &project(lf), &Default::default())
        .await
        .expect("plan");
    assert!(plan.is_empty());
}

#[tokio::test]
async fn sqlx_orders_by_number_and_ignores_other_files() {
    let pkg = Package::from_layout(fixture("sqlx"), Layout::Sqlx).expect("load");
    assert_eq!(
        names(&pkg),
        ["1_accounts", "2_owners", "3_indexes", "10_owner_name"]
    );
    assert!(pkg.migrations()[2].no_transaction());
    assert!(pkg.migrations()[1].down().is_some());
    assert!(pkg.migrations()[0].down().is_none());
    assert!(!pkg.is_migration_file("notes.sql"));
    assert!(pkg.is_migration_file("2_owners.down.sql"));
    let db = pgtest::TestDb::new().await;
    up(&db, &pkg).await;
    let cols = query_strings(
        &db,
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'owners'::regclass AND attnum > 0 ORDER BY attnum",
    )
    .await;
    assert_eq!(cols, ["id", "account_id", "name"]);
}

#[tokio::test]
async fn golang_migrate_missing_down_file_blocks_only_its_own_rollback() {
    let pkg = Package::from_layout(fixture("golang-migrate"), Layout::GolangMigrate).expect("load");
    assert_eq!(names(&pkg), ["1_init", "2_prices", "10_index"]);
    assert!(
        pkg.migrations()[2].no_transaction(),
        "CREATE INDEX CONCURRENTLY is detected"
    );
    assert!(pkg.migrations()[1].down().is_none());
    let db = pgtest::TestDb::new().await;
    up(&db, &pkg).await;
    let mut conn = connect(&db).await;
    let one = pgstrata::DownOptions::default();
    pgstrata::down(&mut conn, &one, &mut pgstrata::Quiet)
        .await
        .expect("10_index has a down file");
    let err = pgstrata::down(&mut conn, &one, &mut pgstrata::Quiet)
        .await
        .expect_err("2_prices has none");
    assert!(err.to_string().contains("2_prices"), "{err}");
}

#[tokio::test]
async fn flyway_versions_undo_and_repeatables() {
    let tmp = copy_fixture("flyway");
    let pkg = Package::from_layout(tmp.path(), Layout::Flyway).expect("load");
    assert_eq!(
        names(&pkg),
        ["V1__init", "V1_2__email", "V1.10__phone", "V2__index"]
    );
    assert_eq!(pkg.migrations()[1].tool_version(), Some("1.2"));
    assert!(
        pkg.migrations()[1].down().is_some(),
        "U1_2 is V1_2's down part"
    );
    assert!(pkg.migrations()[3].no_transaction());
    assert_eq!(pkg.repeatables().len(), 1);
    let db = pgtest::TestDb::new().await;
    let report = up(&db, &pkg).await;
    assert_eq!(report.repeatables.len(), 1);
    let cols = query_strings(
        &db,
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'person_contact'::regclass AND attnum > 0 ORDER BY attnum",
    )
    .await;
    assert_eq!(cols, ["id", "name", "email", "phone"]);
    // Unchanged: nothing runs. Changed: it runs again, after the versioned migrations.
    assert_eq!(up(&db, &pkg).await.outcome, pgstrata::Outcome::Noop);
    std::fs::write(
        tmp.path().join("R__person_view.sql"),
        "CREATE OR REPLACE VIEW person_contact AS SELECT id, name, email, phone, upper(name) AS shout FROM person;\n",
    )
    .expect("write");
    let pkg = Package::from_layout(tmp.path(), Layout::Flyway).expect("reload");
    let conn = connect(&db).await;
    let plan = pgstrata::plan(&conn, &project(pkg.clone()), &Default::default())
        .await
        .expect("plan");
    assert_eq!(
        plan.repeatables[0].state,
        pgstrata::RepeatableState::Changed
    );
    let report = up(&db, &pkg).await;
    assert_eq!(report.migrations.len(), 0);
    assert_eq!(report.repeatables.len(), 1);
    // Re-applying a repeatable changed the database: not a no-op, and the run log says so.
    assert_eq!(report.outcome, pgstrata::Outcome::Applied);
    assert_eq!(
        query_strings(
            &db,
            "SELECT outcome::text FROM strata.run ORDER BY id DESC LIMIT 1"
        )
        .await,
        ["success"]
    );
    let cols = query_strings(
        &db,
        "SELECT attname::text FROM pg_attribute WHERE attrelid = 'person_contact'::regclass AND attnum > 0 ORDER BY attnum",
    )
    .await;
    assert_eq!(cols.last().map(String::as_str), Some("shout"));
}

#[tokio::test]
async fn diesel_folders_metadata_and_initial_setup() {
    let pkg = Package::from_layout(fixture("diesel"), Layout::Diesel).expect("load");
    assert_eq!(
        names(&pkg),
        [
            "00000000000000_diesel_initial_setup",
            "2024-01-02-000000_posts",
            "2024-01-03-000000_indexes"
        ]
    );
    assert_eq!(pkg.migrations()[1].tool_version(), Some("20240102000000"));
    assert!(pkg.migrations()[2].no_transaction());
    assert!(!pkg.migrations()[1].no_transaction());
    let db = pgtest::TestDb::new().await;
    up(&db, &pkg).await;
    let triggers = query_strings(
        &db,
        "SELECT tgname::text FROM pg_trigger WHERE tgrelid = 'posts'::regclass AND NOT tgisinternal",
    )
    .await;
    assert_eq!(triggers, ["set_updated_at"]);
}

#[tokio::test]
async fn up_down_pairs_with_a_functions_folder() {
    let pkg = Package::from_layout(fixture("up-down"), Layout::UpDown).expect("load");
    assert_eq!(names(&pkg), ["0000-init_schema", "0001-blocked"]);
    assert!(pkg.migrations()[1].down().is_none());
    // The functions folder is managed code.
    assert!(pkg.repeatables().is_empty());
    let code: Vec<String> = pkg
        .code()
        .objects
        .iter()
        .map(|o| o.name.to_string())
        .collect();
    assert_eq!(code, ["public.find_user_by_id", "public.insert_user"]);
    let db = pgtest::TestDb::new().await;
    up(&db, &pkg).await;
    let got = query_strings(
        &db,
        "SELECT insert_user('{\"username\": \"bob\", \"roles\": [\"admin\"]}'::json)->>'username'",
    )
    .await;
    assert_eq!(got, ["bob"]);
}

#[test]
fn detection_finds_each_layout_or_says_why() {
    for (dir, layout) in [
        ("dbmate", Layout::Dbmate),
        ("diesel", Layout::Diesel),
        ("flyway", Layout::Flyway),
        ("up-down", Layout::UpDown),
    ] {
        assert_eq!(Layout::detect(fixture(dir)).expect(dir), layout, "{dir}");
    }
    let ambiguous = Layout::detect(fixture("ambiguous"))
        .expect_err("ambiguous")
        .to_string();
    assert!(
        ambiguous.contains("fits several layouts")
            && ambiguous.contains("sqlx")
            && ambiguous.contains("golang-migrate"),
        "{ambiguous}"
    );
    let mixed = Layout::detect(fixture("mixed"))
        .expect_err("mixed")
        .to_string();
    assert!(mixed.contains("cannot tell"), "{mixed}");
    assert!(mixed.contains("not dbmate: 2_z.sql"), "{mixed}");
    assert!(mixed.contains("not sqlx: 1_y.sql"), "{mixed}");
    // sqlx ignores notes.sql, and so does detection (by the folder's majority shape; see interop::layouts).
    assert_eq!(Layout::detect(fixture("sqlx")).expect("sqlx"), Layout::Sqlx);
}

#[test]
fn duplicate_versions_are_refused() {
    let tmp = tempfile::tempdir().expect("tmp");
    for f in ["001_a.sql", "001_b.sql"] {
        std::fs::write(tmp.path().join(f), "-- migrate:up\nSELECT 1;\n").expect("write");
    }
    let err = Package::from_layout(tmp.path(), Layout::Dbmate).expect_err("duplicate");
    assert!(err.to_string().contains("same version 001"), "{err}");
    let tmp = tempfile::tempdir().expect("tmp");
    for f in ["V1__a.sql", "V1.0__b.sql"] {
        std::fs::write(tmp.path().join(f), "SELECT 1;\n").expect("write");
    }
    let err = Package::from_layout(tmp.path(), Layout::Flyway).expect_err("1 = 1.0");
    assert!(err.to_string().contains("same version"), "{err}");
}

#[test]
fn dbmate_files_need_their_up_marker() {
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::write(tmp.path().join("001_a.sql"), "SELECT 1;\n").expect("write");
    let err = Package::from_layout(tmp.path(), Layout::Dbmate).expect_err("no marker");
    assert!(
        err.to_string().contains("no `-- migrate:up` marker"),
        "{err}"
    );
}

#[tokio::test]
async fn out_of_order_files_are_refused_unless_allowed() {
    let tmp = copy_fixture("dbmate");
    let late = tmp.path().join("20240101000002_indexes.sql");
    let text = std::fs::read_to_string(&late).expect("read");
    std::fs::remove_file(&late).expect("rm");
    let db = pgtest::TestDb::new().await;
    up(
        &db,
        &Package::from_layout(tmp.path(), Layout::Dbmate).expect("load"),
    )
    .await;
    std::fs::write(&late, text).expect("write back");
    let pkg = Package::from_layout(tmp.path(), Layout::Dbmate).expect("load");
    let mut conn = connect(&db).await;
    let err = pgstrata::up(
        &mut conn,
        &project(pkg.clone()),
        &Default::default(),
        &mut pgstrata::Quiet,
    )
    .await
    .expect_err("out of order");
    assert!(err.to_string().contains("20240101000002_indexes"), "{err}");
    let opts = pgstrata::UpOptions {
        plan: pgstrata::PlanOptions {
            allow_out_of_order: true,
            ..Default::default()
        },
        ..Default::default()
    };
    let report = pgstrata::up(&mut conn, &project(pkg), &opts, &mut pgstrata::Quiet)
        .await
        .expect("allowed");
    assert_eq!(report.migrations.len(), 1);
}

#[tokio::test]
async fn strata_toml_can_point_at_another_tools_folder() {
    let tmp = tempfile::tempdir().expect("tmp");
    copy_dir(&fixture("dbmate"), &tmp.path().join("db/migrations"));
    std::fs::write(
        tmp.path().join("strata.toml"),
        "name = \"acme/app\"\nschema = \"app\"\nlayout = \"dbmate\"\nmigrations_dir = \"db/migrations\"\n",
    )
    .expect("manifest");
    let pkg = Package::load(tmp.path()).expect("load");
    assert_eq!(pkg.layout(), Some(Layout::Dbmate));
    assert_eq!(pkg.migrations().len(), 3);
    assert_eq!(
        pkg.migrations()[0].path(),
        "db/migrations/20240101000001_multi.sql"
    );
    let db = pgtest::TestDb::new().await;
    up(&db, &pkg).await;
    let tables = query_strings(
        &db,
        "SELECT relname::text FROM pg_class WHERE relnamespace = 'app'::regnamespace AND relkind = 'r' ORDER BY 1",
    )
    .await;
    assert_eq!(tables, ["a", "b"]);
    let status = pgstrata::plan(&connect(&db).await, &project(pkg), &Default::default())
        .await
        .expect("plan");
    assert!(
        status.packages[1]
            .migrations
            .iter()
            .all(|m| m.state == MigrationState::Applied)
    );

    std::fs::write(
        tmp.path().join("strata.toml"),
        "name = \"acme/app\"\nschema = \"app\"\nlayout = \"dbmate\"\nmigrations = [\"x.sql\"]\n",
    )
    .expect("manifest");
    let err = Package::load(tmp.path()).expect_err("both");
    assert!(err.to_string().contains("cannot both be set"), "{err}");
    std::fs::write(
        tmp.path().join("strata.toml"),
        "name = \"acme/app\"\nschema = \"app\"\nlayout = \"liquibase\"\n",
    )
    .expect("manifest");
    assert!(Package::load(tmp.path()).is_err());
}
