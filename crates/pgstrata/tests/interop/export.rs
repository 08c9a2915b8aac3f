//! `export`: the psql script against `strata up`, and the other tools' folders (real dbmate; the others read back
//! with Strata's readers of those layouts, which follow each tool's documented rules).

use std::path::Path;

use pgstrata::{ExportFormat, Layout, Package};

use crate::support::*;

/// A Strata package with everything an export must carry: its own schema, a separate down file, a multi-section
/// dbmate file, a no-transaction migration with two statements, dollar quotes that collide with the script's own.
pub fn shop(dir: &Path, migrations: usize) -> Package {
    let files: [(&str, &str); 5] = [
        (
            "0001_init.sql",
            "CREATE TABLE item (id bigint PRIMARY KEY, name text);\n",
        ),
        (
            "0002_multi.sql",
            "-- migrate:up\nCREATE TABLE tag (id bigint PRIMARY KEY);\n-- migrate:down\nDROP TABLE tag;\n\
             -- migrate:up\nCREATE TABLE item_tag (item_id bigint REFERENCES item, tag_id bigint);\n\
             -- migrate:down\nDROP TABLE item_tag;\n",
        ),
        (
            "0003_indexes.sql",
            "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY item_name ON shop.item (name);\n\
             CREATE INDEX CONCURRENTLY tag_id ON shop.tag (id);\n\
             -- migrate:down transaction:false\nDROP INDEX CONCURRENTLY shop.tag_id;\nDROP INDEX CONCURRENTLY shop.item_name;\n",
        ),
        (
            "0004_quotes.sql",
            "-- migrate:up\n\
             CREATE FUNCTION label() RETURNS text LANGUAGE sql AS $$ SELECT '$q$ and $strata$ and $q1$'::text $$;\n\
             COMMENT ON FUNCTION label() IS 'it''s -- not a comment';\n\
             -- migrate:down\nDROP FUNCTION label();\n",
        ),
        (
            "0005_more.sql",
            "-- migrate:up\nALTER TABLE item ADD COLUMN price numeric(10, 2);\nINSERT INTO item VALUES (1, 'x', 2.5);\n\
             -- migrate:down\nDELETE FROM item WHERE id = 1;\nALTER TABLE item DROP COLUMN price;\n",
        ),
    ];
    std::fs::create_dir_all(dir.join("migrations")).expect("mkdir");
    let mut list = String::new();
    for (name, text) in files.iter().take(migrations) {
        std::fs::write(dir.join("migrations").join(name), text).expect("write");
        list.push_str(&format!("    \"migrations/{name}\",\n"));
    }
    std::fs::write(
        dir.join("migrations/0001_init.down.sql"),
        "DROP TABLE item;\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("strata.toml"),
        // The psql script does not set up package roles (yet): compare with `up` without them.
        format!("name = \"acme/shop\"\nschema = \"shop\"\nmigrations = [\n{list}]\n\n[security]\npackage_role = false\n"),
    )
    .expect("manifest");
    Package::load(dir).expect("load shop")
}

fn history_rows_sql() -> &'static str {
    "SELECT concat_ws(' | ', package, name, path, checksum, md5(up_sql), md5(coalesce(down_sql, '')), no_transaction)
       FROM strata.migration ORDER BY id"
}

async fn statuses(db: &pgtest::TestDb, pkg: &Package) -> Vec<String> {
    let plan = pgstrata::plan(
        &connect(db).await,
        &project(pkg.clone()),
        &Default::default(),
    )
    .await
    .expect("plan");
    plan.packages
        .iter()
        .flat_map(|p| {
            p.migrations.iter().map(move |m| {
                format!(
                    "{}:{} {:?} {:?} {:?} {} {}",
                    p.name,
                    m.name,
                    m.state,
                    m.checksum,
                    m.applied_checksum,
                    m.has_down,
                    m.no_transaction
                )
            })
        })
        .collect()
}

async fn dump(db: &pgtest::TestDb) -> String {
    let options = pgstrata_conn::ConnectOptions::parse(&db.url()).expect("url");
    let conn = connect(db).await;
    pgstrata::dump_schema(&options, conn.client(), &pgstrata::DumpOptions::default())
        .await
        .expect("dump")
}

fn psql_output(db: &pgtest::TestDb, file: &Path) -> (bool, String) {
    let out = std::process::Command::new("psql")
        .args(["-X", "-f"])
        .arg(file)
        .envs(db.env())
        .output()
        .expect("psql");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[tokio::test]
async fn psql_script_leaves_what_strata_up_leaves() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop(tmp.path(), 5);
    let script = tmp.path().join("deploy.sql");
    let report =
        pgstrata::export(&project(pkg.clone()), ExportFormat::Psql, &script).expect("export");
    assert_eq!(report.migrations, 5);

    let by_up = pgtest::TestDb::new().await;
    up(&by_up, &pkg).await;
    let by_psql = pgtest::TestDb::new().await;
    let (ok, out) = psql_output(&by_psql, &script);
    assert!(ok, "{out}");
    assert!(
        out.contains("acme/shop (nothing) -> 0005_more (5 migration(s))"),
        "{out}"
    );

    assert_eq!(schema(&by_psql), schema(&by_up));
    assert_eq!(
        query_strings(&by_psql, history_rows_sql()).await,
        query_strings(&by_up, history_rows_sql()).await
    );
    assert_eq!(statuses(&by_psql, &pkg).await, statuses(&by_up, &pkg).await);
    let (a, b) = (dump(&by_psql).await, dump(&by_up).await);
    assert_eq!(pgstrata::schema_diff(&a, &b), None);
    assert!(a.contains("-- acme/shop | 0005_more | sha256:"), "{a}");

    // Twice: nothing changes, not even a run row.
    let runs = query_strings(&by_psql, "SELECT count(*)::text FROM strata.run").await;
    let (ok, out) = psql_output(&by_psql, &script);
    assert!(ok, "{out}");
    assert!(out.contains("nothing to apply"), "{out}");
    assert_eq!(
        query_strings(&by_psql, "SELECT count(*)::text FROM strata.run").await,
        runs
    );
    // And `strata up` agrees there is nothing to do; `down` works from the stored SQL.
    assert_eq!(up(&by_psql, &pkg).await.outcome, pgstrata::Outcome::Noop);
    let mut conn = connect(&by_psql).await;
    let all = pgstrata::DownOptions {
        target: pgstrata::DownTarget::Steps(5),
        ..Default::default()
    };
    pgstrata::down(&mut conn, &all, &mut pgstrata::Quiet)
        .await
        .expect("down");
    assert!(
        query_strings(
            &by_psql,
            "SELECT relname::text FROM pg_class WHERE relnamespace = 'shop'::regnamespace"
        )
        .await
        .is_empty()
    );
}

#[tokio::test]
async fn psql_script_applies_only_what_the_history_lacks() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop(tmp.path(), 5);
    let script = tmp.path().join("deploy.sql");
    pgstrata::export(&project(pkg.clone()), ExportFormat::Psql, &script).expect("export");
    let db = pgtest::TestDb::new().await;
    let mut conn = connect(&db).await;
    let opts = pgstrata::UpOptions {
        plan: pgstrata::PlanOptions {
            target: Some("0002_multi".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    pgstrata::up(
        &mut conn,
        &project(pkg.clone()),
        &opts,
        &mut pgstrata::Quiet,
    )
    .await
    .expect("first two");
    let (ok, out) = psql_output(&db, &script);
    assert!(ok, "{out}");
    assert!(
        out.contains("acme/shop 0002_multi -> 0005_more (3 migration(s))"),
        "{out}"
    );
    assert_eq!(
        query_strings(&db, "SELECT name || ' ' || source FROM strata.migration WHERE package = 'acme/shop' ORDER BY id")
            .await,
        [
            "0001_init strata",
            "0002_multi strata",
            "0003_indexes psql",
            "0004_quotes psql",
            "0005_more psql"
        ]
    );
}

#[tokio::test]
async fn psql_script_failure_leaves_nothing() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::create_dir_all(dir.join("m")).expect("mkdir");
    std::fs::write(dir.join("m/0001_a.sql"), "CREATE TABLE a (id int);\n").expect("write");
    std::fs::write(
        dir.join("m/0002_b.sql"),
        "INSERT INTO missing VALUES (1);\n",
    )
    .expect("write");
    std::fs::write(
        dir.join("strata.toml"),
        "name = \"x\"\nschema = \"x\"\nmigrations = [\"m/0001_a.sql\", \"m/0002_b.sql\"]\n",
    )
    .expect("manifest");
    let pkg = Package::load(dir).expect("load");
    let script = dir.join("deploy.sql");
    pgstrata::export(&project(pkg), ExportFormat::Psql, &script).expect("export");
    let db = pgtest::TestDb::new().await;
    let (ok, out) = psql_output(&db, &script);
    assert!(
        !ok && out.contains("relation \"missing\" does not exist"),
        "{out}"
    );
    assert_eq!(
        query_strings(
            &db,
            "SELECT count(*)::text FROM pg_namespace WHERE nspname IN ('strata', 'x')"
        )
        .await,
        ["0"]
    );
}

#[tokio::test]
async fn export_to_dbmate_then_real_dbmate() {
    let Some(bin) = dbmate() else { return };
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop(tmp.path(), 5);
    let out_dir = tmp.path().join("dbmate");
    let report =
        pgstrata::export(&project(pkg.clone()), ExportFormat::Dbmate, &out_dir).expect("export");
    assert!(
        report.renumbered,
        "the no-transaction migration is split in two"
    );
    assert_eq!(report.migrations, 7, "setup + 4 + 2 pieces");
    let by_dbmate = pgtest::TestDb::new().await;
    let out = run_dbmate(&bin, &by_dbmate, &out_dir, &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_up = pgtest::TestDb::new().await;
    up(&by_up, &pkg).await;
    assert_eq!(schema(&by_dbmate), schema(&by_up));
    // dbmate rolls back with the exported down parts.
    for _ in 0..7 {
        let out = run_dbmate(&bin, &by_dbmate, &out_dir, &["rollback"]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(
        query_strings(
            &by_dbmate,
            "SELECT relname::text FROM pg_class WHERE relnamespace = 'shop'::regnamespace"
        )
        .await
        .is_empty()
    );
}

#[tokio::test]
async fn export_to_other_formats_reads_back_to_the_same_schema() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop(tmp.path(), 5);
    let by_up = pgtest::TestDb::new().await;
    up(&by_up, &pkg).await;
    let expected = schema(&by_up);
    for (format, layout) in [
        (ExportFormat::Dbmate, Layout::Dbmate),
        (ExportFormat::Sqlx, Layout::Sqlx),
        (ExportFormat::GolangMigrate, Layout::GolangMigrate),
        (ExportFormat::Diesel, Layout::Diesel),
        (ExportFormat::Flyway, Layout::Flyway),
    ] {
        let out_dir = tmp.path().join(format.name());
        pgstrata::export(&project(pkg.clone()), format, &out_dir).expect("export");
        if layout != Layout::GolangMigrate {
            assert_eq!(
                Layout::detect(&out_dir).expect("detect"),
                layout,
                "{}",
                format.name()
            );
        }
        let back = Package::from_layout(&out_dir, layout).expect("read back");
        let db = pgtest::TestDb::new().await;
        up(&db, &back).await;
        assert_eq!(schema(&db), expected, "{}", format.name());
    }
    let flyway = std::fs::read_dir(tmp.path().join("flyway"))
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect::<std::collections::BTreeSet<_>>();
    assert!(flyway.contains("V4__indexes.sql.conf"), "{flyway:?}");
    assert!(flyway.contains("U2__init.sql"), "{flyway:?}");
    let diesel_meta = tmp.path().join("diesel/0005_indexes_2/metadata.toml");
    assert!(diesel_meta.exists());
}

#[tokio::test]
async fn export_keeps_names_that_fit_the_tool() {
    let tmp = tempfile::tempdir().expect("tmp");
    crate::generated::write_layout(Layout::Sqlx, tmp.path(), &crate::generated::specs(30, true));
    let pkg = Package::from_layout(tmp.path(), Layout::Sqlx).expect("load");
    let same = pgstrata::export(
        &project(pkg.clone()),
        ExportFormat::Sqlx,
        &tmp.path().join("out-sqlx"),
    )
    .expect("export");
    assert!(!same.renumbered);
    assert!(tmp.path().join("out-sqlx/25_m25.up.sql").exists());
    // "10_m10.sql" sorts before "1_m1.sql" for dbmate: renumbered.
    let other = pgstrata::export(
        &project(pkg),
        ExportFormat::Dbmate,
        &tmp.path().join("out-dbmate"),
    )
    .expect("export");
    assert!(other.renumbered);
    assert!(tmp.path().join("out-dbmate/0010_m10.sql").exists());
    let err = pgstrata::export(
        &project(Package::from_layout(tmp.path().join("out-sqlx"), Layout::Sqlx).expect("load")),
        ExportFormat::Sqlx,
        &tmp.path().join("out-sqlx"),
    )
    .expect_err("not empty");
    assert!(err.to_string().contains("not empty"), "{err}");
}

#[tokio::test]
async fn dump_schema_check_finds_drift() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pkg = shop(tmp.path(), 2);
    let db = pgtest::TestDb::new().await;
    up(&db, &pkg).await;
    let options = pgstrata_conn::ConnectOptions::parse(&db.url()).expect("url");
    let conn = connect(&db).await;
    let opts = pgstrata::DumpOptions::default();
    let first = pgstrata::dump_schema(&options, conn.client(), &opts)
        .await
        .expect("dump");
    let second = pgstrata::dump_schema(&options, conn.client(), &opts)
        .await
        .expect("dump");
    assert_eq!(first, second, "stable");
    assert!(!first.contains("Dumped by"), "volatile lines are removed");
    conn.client()
        .batch_execute("ALTER TABLE shop.item ADD COLUMN sneaky int")
        .await
        .expect("drift");
    let third = pgstrata::dump_schema(&options, conn.client(), &opts)
        .await
        .expect("dump");
    let diff = pgstrata::schema_diff(&first, &third).expect("differs");
    assert!(diff.contains("+    sneaky integer"), "{diff}");
}
