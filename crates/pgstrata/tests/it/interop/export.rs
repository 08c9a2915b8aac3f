//! `export`: the psql script against `strata up`, and the other tools' folders (real dbmate; the others read back
//! with Strata's readers of those layouts, which follow each tool's documented rules).

use std::path::Path;

use pgstrata::{ExportFormat, Layout, Package, Project};

use crate::interop::support::*;

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
    write_code(dir, &CODE);
    std::fs::write(
        dir.join("strata.toml"),
        format!("name = \"acme/shop\"\nschema = \"shop\"\nmigrations = [\n{list}]\n"),
    )
    .expect("manifest");
    Package::load(dir).expect("load shop")
}

/// The shop's managed code: functions (one used by a view, one by a trigger), a view, a trigger and comments, in
/// files whose order is not the dependency order.
const CODE: [(&str, &str); 3] = [
    (
        "code/functions.sql",
        "CREATE FUNCTION item_label(i item) RETURNS text LANGUAGE sql STABLE AS $$ SELECT i.name || ' #' || i.id $$;\n\
         CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN\n  NEW.name := coalesce(NEW.name, 'unnamed');\n  RETURN NEW;\nEND\n$$;\n\
         COMMENT ON FUNCTION touch() IS 'fills in names';\n",
    ),
    (
        "code/triggers.sql",
        "CREATE TRIGGER item_touch BEFORE INSERT ON item FOR EACH ROW EXECUTE FUNCTION touch();\n",
    ),
    (
        "code/views.sql",
        "CREATE VIEW item_labels AS SELECT id, item_label(item) AS label FROM item;\n\
         COMMENT ON VIEW item_labels IS 'labels of items';\n",
    ),
];

/// Write (or with an empty text, remove) managed code files.
fn write_code(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let path = dir.join(name);
        if text.is_empty() {
            std::fs::remove_file(&path).expect("remove code file");
            continue;
        }
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, text).expect("write code");
    }
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
    pgstrata::dump_schema(&options, conn.client(), &dump_options())
        .await
        .expect("dump")
}

fn psql_output(db: &pgtest::TestDb, file: &Path) -> (bool, String) {
    let out = std::process::Command::new(pgtest::tool("psql"))
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
    // And `strata up` agrees there is nothing to do; `down` works from the stored SQL (as far as the managed code,
    // which uses the table of 0001, lets it).
    assert_eq!(up(&by_psql, &pkg).await.outcome, pgstrata::Outcome::Noop);
    let mut conn = connect(&by_psql).await;
    let three = pgstrata::DownOptions {
        target: pgstrata::DownTarget::Steps(3),
        ..Default::default()
    };
    pgstrata::down(&mut conn, &three, &mut pgstrata::Quiet)
        .await
        .expect("down");
    assert_eq!(
        query_strings(
            &by_psql,
            "SELECT string_agg(relname::text, ' ' ORDER BY relname) FROM pg_class
              WHERE relnamespace = 'shop'::regnamespace AND relkind IN ('r', 'i')"
        )
        .await,
        ["item item_pkey item_tag tag tag_pkey"]
    );
    assert_eq!(
        query_strings(
            &by_psql,
            "SELECT (to_regprocedure('shop.label()') IS NULL)::text"
        )
        .await,
        ["true"]
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
    assert_eq!(
        report.migrations, 8,
        "setup + 4 + 2 pieces + the managed code"
    );
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
    // dbmate rolls back with the exported down parts, the managed code's first.
    for _ in 0..8 {
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
    crate::interop::generated::write_layout(
        Layout::Sqlx,
        tmp.path(),
        &crate::interop::generated::specs(30, true),
    );
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
    let opts = dump_options();
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

/// Every row of `strata.managed_object` that does not depend on the database (oids and row versions do).
fn managed_rows_sql() -> &'static str {
    "SELECT concat_ws(' | ', package, kind, identity, source_hash, file, line, seq)
       FROM strata.managed_object ORDER BY package, seq, kind, identity"
}

/// Oid and row version of every routine, view and trigger of the shop's schema: any DDL on them changes these.
fn catalog_rows_sql() -> &'static str {
    "SELECT 'proc ' || p.oid::regprocedure::text || ' ' || p.oid::text || ' ' || p.xmin::text
       FROM pg_proc p WHERE p.pronamespace = 'shop'::regnamespace
     UNION ALL
     SELECT 'class ' || c.relname || ' ' || c.oid::text || ' ' || c.xmin::text
       FROM pg_class c WHERE c.relnamespace = 'shop'::regnamespace
     UNION ALL
     SELECT 'trigger ' || t.tgname || ' ' || t.oid::text || ' ' || t.xmin::text
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE c.relnamespace = 'shop'::regnamespace
     ORDER BY 1"
}

/// Who owns what in the shop's schema (the package role, as `strata up` leaves it).
fn owners_sql() -> &'static str {
    "SELECT 'schema ' || pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'shop'
     UNION ALL
     SELECT 'class ' || relname || ' ' || pg_get_userbyid(relowner) FROM pg_class
      WHERE relnamespace = 'shop'::regnamespace
     UNION ALL
     SELECT 'proc ' || proname || ' ' || pg_get_userbyid(proowner) FROM pg_proc
      WHERE pronamespace = 'shop'::regnamespace
     ORDER BY 1"
}

/// The managed code's status lines that are not in sync.
async fn code_out_of_sync(db: &pgtest::TestDb, pkg: &Package) -> Vec<String> {
    let conn = connect(db).await;
    pgstrata::managed::status(&conn, &project(pkg.clone()))
        .await
        .expect("status")
        .iter()
        .flat_map(|p| p.objects.iter())
        .filter(|o| o.state != pgstrata::managed::ObjectState::InSync)
        .map(|o| format!("{:?} {} {}", o.state, o.kind, o.name))
        .collect()
}

/// `strata up` after the script: nothing to do, and no DDL at all (oids and row versions unchanged).
async fn up_is_a_noop(db: &pgtest::TestDb, pkg: &Package) {
    let before = query_strings(db, catalog_rows_sql()).await;
    let report = up(db, pkg).await;
    assert_eq!(report.outcome, pgstrata::Outcome::Noop);
    assert!(report.code.is_noop(), "{:?}", report.code.changes);
    assert_eq!(query_strings(db, catalog_rows_sql()).await, before);
}

fn export_psql(pkg_dir: &Path, script: &Path) -> Package {
    let pkg = Package::load(pkg_dir).expect("load shop");
    if script.exists() {
        std::fs::remove_file(script).expect("remove old script");
    }
    pgstrata::export(&project(pkg.clone()), ExportFormat::Psql, script).expect("export");
    pkg
}

/// The shop (five migrations, managed code, a package role) deployed into one database by its psql script and into
/// another by `strata up`.
struct Deployed {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    script: std::path::PathBuf,
    pkg: Package,
    by_up: pgtest::TestDb,
    by_psql: pgtest::TestDb,
}

impl Deployed {
    async fn new() -> Deployed {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("shop");
        let pkg = shop(&dir, 5);
        let script = tmp.path().join("deploy.sql");
        export_psql(&dir, &script);
        let by_up = pgtest::TestDb::new().await;
        up(&by_up, &pkg).await;
        let by_psql = pgtest::TestDb::new().await;
        let (ok, out) = psql_output(&by_psql, &script);
        assert!(ok, "{out}");
        assert!(
            out.contains("strata: created view shop.item_labels"),
            "{out}"
        );
        Deployed {
            _tmp: tmp,
            dir,
            script,
            pkg,
            by_up,
            by_psql,
        }
    }

    /// Change managed-code files, export the script again and run it on the psql database.
    fn change_code(&mut self, files: &[(&str, &str)]) -> (bool, String) {
        write_code(&self.dir, files);
        self.pkg = export_psql(&self.dir, &self.script);
        psql_output(&self.by_psql, &self.script)
    }
}

#[tokio::test]
async fn psql_script_installs_managed_code_and_roles_as_strata_up_does() {
    let d = Deployed::new().await;
    let (by_psql, by_up, pkg) = (&d.by_psql, &d.by_up, &d.pkg);
    assert_eq!(schema(by_psql), schema(by_up));
    assert_eq!(full_schema(by_psql), full_schema(by_up));
    let (a, b) = (dump(by_psql).await, dump(by_up).await);
    assert_eq!(pgstrata::schema_diff(&a, &b), None);
    assert_eq!(
        query_strings(by_psql, owners_sql()).await,
        query_strings(by_up, owners_sql()).await
    );
    assert!(
        query_strings(by_psql, owners_sql())
            .await
            .contains(&"schema $acme/shop".to_string())
    );
    assert_eq!(
        query_strings(by_psql, managed_rows_sql()).await,
        query_strings(by_up, managed_rows_sql()).await
    );
    let packages =
        "SELECT concat_ws(' ', name, role_name, granted_uses::text) FROM strata.package ORDER BY 1";
    assert_eq!(
        query_strings(by_psql, packages).await,
        query_strings(by_up, packages).await
    );
    assert_eq!(code_out_of_sync(by_psql, pkg).await, Vec::<String>::new());
    assert_eq!(statuses(by_psql, pkg).await, statuses(by_up, pkg).await);
}

#[tokio::test]
async fn psql_script_run_twice_changes_nothing() {
    let d = Deployed::new().await;
    let by_psql = &d.by_psql;
    // Not even a run row or a catalog row.
    let runs = query_strings(by_psql, "SELECT count(*)::text FROM strata.run").await;
    let catalog = query_strings(by_psql, catalog_rows_sql()).await;
    let records_sql = "SELECT m::text FROM strata.managed_object m ORDER BY seq";
    let records = query_strings(by_psql, records_sql).await;
    let (ok, out) = psql_output(by_psql, &d.script);
    assert!(ok, "{out}");
    assert!(out.contains("nothing to apply"), "{out}");
    assert_eq!(
        query_strings(by_psql, "SELECT count(*)::text FROM strata.run").await,
        runs
    );
    assert_eq!(query_strings(by_psql, catalog_rows_sql()).await, catalog);
    assert_eq!(query_strings(by_psql, records_sql).await, records);
    up_is_a_noop(by_psql, &d.pkg).await;
}

#[tokio::test]
async fn psql_script_records_the_definition_hashes_strata_up_computes() {
    let d = Deployed::new().await;
    let by_psql = &d.by_psql;
    // A grant moves the function's catalog row: status still finds it intact (not drifted).
    by_psql
        .client()
        .await
        .batch_execute("GRANT EXECUTE ON FUNCTION shop.touch() TO PUBLIC")
        .await
        .expect("grant");
    assert_eq!(
        code_out_of_sync(by_psql, &d.pkg).await,
        Vec::<String>::new()
    );
    let catalog = query_strings(by_psql, catalog_rows_sql()).await;
    let (ok, out) = psql_output(by_psql, &d.script);
    assert!(ok, "{out}");
    assert_eq!(query_strings(by_psql, catalog_rows_sql()).await, catalog);
}

#[tokio::test]
async fn psql_script_replaces_changed_code_in_place() {
    let mut d = Deployed::new().await;
    // A function body and a view change: replaced in place (same oids), status clean, `up` has nothing to do.
    let oids = "SELECT to_regprocedure('shop.touch()')::oid::text || ' ' || to_regclass('shop.item_labels')::oid::text";
    let before = query_strings(&d.by_psql, oids).await;
    let (ok, out) = d.change_code(&[
        (
            "code/functions.sql",
            "CREATE FUNCTION item_label(i item) RETURNS text LANGUAGE sql STABLE AS $$ SELECT i.name || ' #' || i.id $$;\n\
             CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\n\
             BEGIN\n  NEW.name := coalesce(NEW.name, 'anonymous');\n  RETURN NEW;\nEND\n$$;\n\
             COMMENT ON FUNCTION touch() IS 'fills in names';\n",
        ),
        (
            "code/views.sql",
            "CREATE VIEW item_labels AS SELECT id, item_label(item) AS label, upper(name) AS shout FROM item;\n\
             COMMENT ON VIEW item_labels IS 'labels of items, loud';\n",
        ),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("strata: replaced function shop.touch()"),
        "{out}"
    );
    assert!(
        out.contains("strata: replaced view shop.item_labels"),
        "{out}"
    );
    assert!(
        !out.contains("item_label(i"),
        "unchanged objects are left alone: {out}"
    );
    assert_eq!(query_strings(&d.by_psql, oids).await, before);
    assert_eq!(
        code_out_of_sync(&d.by_psql, &d.pkg).await,
        Vec::<String>::new()
    );
    up_is_a_noop(&d.by_psql, &d.pkg).await;
    up(&d.by_up, &d.pkg).await;
    assert_eq!(schema(&d.by_psql), schema(&d.by_up));
    assert_eq!(
        query_strings(&d.by_psql, managed_rows_sql()).await,
        query_strings(&d.by_up, managed_rows_sql()).await
    );
}

#[tokio::test]
async fn psql_script_drops_code_that_left_the_source() {
    let mut d = Deployed::new().await;
    // The trigger and the comment on the view leave the source.
    let (ok, out) = d.change_code(&[
        ("code/triggers.sql", ""),
        (
            "code/views.sql",
            "CREATE VIEW item_labels AS SELECT id, item_label(item) AS label FROM item;\n",
        ),
    ]);
    assert!(ok, "{out}");
    assert!(
        out.contains("strata: dropped trigger item_touch ON shop.item"),
        "{out}"
    );
    assert_eq!(
        query_strings(
            &d.by_psql,
            "SELECT count(*)::text FROM pg_trigger WHERE tgname = 'item_touch'"
        )
        .await,
        ["0"]
    );
    assert_eq!(
        query_strings(
            &d.by_psql,
            "SELECT coalesce(obj_description('shop.item_labels'::regclass, 'pg_class'), '-')"
        )
        .await,
        ["-"]
    );
    assert_eq!(
        code_out_of_sync(&d.by_psql, &d.pkg).await,
        Vec::<String>::new()
    );
    up_is_a_noop(&d.by_psql, &d.pkg).await;
    up(&d.by_up, &d.pkg).await;
    assert_eq!(schema(&d.by_psql), schema(&d.by_up));
}

#[tokio::test]
async fn psql_script_stops_on_a_change_it_cannot_make_in_place() {
    let mut d = Deployed::new().await;
    let catalog = query_strings(&d.by_psql, catalog_rows_sql()).await;
    // A view's columns change: PostgreSQL cannot replace it in place, the script applies nothing.
    let (ok, out) = d.change_code(&[(
        "code/views.sql",
        "CREATE VIEW item_labels AS SELECT id, upper(name) AS shout FROM item;\n",
    )]);
    assert!(!ok, "{out}");
    assert!(out.contains("cannot be replaced in place"), "{out}");
    assert!(out.contains("strata up"), "{out}");
    assert_eq!(query_strings(&d.by_psql, catalog_rows_sql()).await, catalog);
    // `strata up` makes that change.
    up(&d.by_psql, &d.pkg).await;
    assert_eq!(
        code_out_of_sync(&d.by_psql, &d.pkg).await,
        Vec::<String>::new()
    );
}

/// `pg_dump --schema-only` of everything but Strata's schema, owners and privileges included (package roles are
/// shared by the databases of the cluster, so they compare across databases).
fn full_schema(db: &pgtest::TestDb) -> String {
    let out = std::process::Command::new(pgtest::tool("pg_dump"))
        .args(["--schema-only", "--exclude-schema=strata"])
        .envs(db.env())
        .output()
        .expect("pg_dump");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            !l.starts_with("--") && !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict")
        })
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Package `acme/core` (a table, a function) and `acme/orders`, whose view calls core's function when it uses core.
fn core_and_orders(root: &Path, uses: bool) -> Project {
    let core = root.join("core");
    std::fs::create_dir_all(core.join("migrations")).expect("mkdir");
    std::fs::write(
        core.join("strata.toml"),
        "name = \"acme/core\"\nschema = \"core\"\nmigrations = [\"migrations/0001.sql\"]\n",
    )
    .expect("write");
    std::fs::write(
        core.join("migrations/0001.sql"),
        "CREATE TABLE prices (sku text PRIMARY KEY, cents int);\n",
    )
    .expect("write");
    std::fs::write(
        core.join("code.sql"),
        "CREATE FUNCTION price(s text) RETURNS int LANGUAGE sql STABLE AS $$ SELECT cents FROM core.prices WHERE sku = s $$;\n",
    )
    .expect("write");
    let orders = root.join("orders");
    std::fs::create_dir_all(orders.join("migrations")).expect("mkdir");
    let extra = if uses {
        format!(
            "uses = [{{ name = \"acme/core\", path = {:?} }}]\n",
            core.display().to_string()
        )
    } else {
        String::new()
    };
    std::fs::write(
        orders.join("strata.toml"),
        format!("name = \"acme/orders\"\nschema = \"orders\"\nmigrations = [\"migrations/0001.sql\"]\n{extra}"),
    )
    .expect("write");
    std::fs::write(
        orders.join("migrations/0001.sql"),
        "CREATE TABLE line (sku text, qty int);\n",
    )
    .expect("write");
    let view = if uses {
        "CREATE VIEW priced AS SELECT sku, qty, core.price(sku) * qty AS cents FROM line;\n"
    } else {
        "CREATE VIEW priced AS SELECT sku, qty, qty * 100 AS cents FROM line;\n"
    };
    std::fs::write(orders.join("views.sql"), view).expect("write");
    Project::new(vec![
        Package::load(&core).expect("core"),
        Package::load(&orders).expect("orders"),
    ])
    .expect("project")
}

async fn up_project(db: &pgtest::TestDb, project: &Project) -> pgstrata::UpReport {
    let mut conn = connect(db).await;
    pgstrata::up(
        &mut conn,
        project,
        &pgstrata::UpOptions::default(),
        &mut pgstrata::Quiet,
    )
    .await
    .unwrap_or_else(|e| panic!("strata up failed: {:?}", miette::Report::new(e)))
}

#[tokio::test]
async fn psql_script_grants_and_revokes_uses_as_strata_up_does() {
    let tmp = tempfile::tempdir().expect("tmp");
    let pkgs = tmp.path().join("pkgs");
    let script = tmp.path().join("deploy.sql");
    let packages_sql = "SELECT concat_ws(' ', name, schema_name, role_name, granted_uses::text) FROM strata.package ORDER BY 1";
    let usage = "SELECT has_schema_privilege('$acme/orders', 'core', 'USAGE')::text";

    let with_uses = core_and_orders(&pkgs, true);
    std::fs::write(&script, pgstrata::psql_script(&with_uses).expect("script")).expect("write");
    let by_up = pgtest::TestDb::new().await;
    up_project(&by_up, &with_uses).await;
    let by_psql = pgtest::TestDb::new().await;
    let (ok, out) = psql_output(&by_psql, &script);
    assert!(ok, "{out}");
    assert_eq!(full_schema(&by_psql), full_schema(&by_up));
    assert_eq!(
        query_strings(&by_psql, packages_sql).await,
        query_strings(&by_up, packages_sql).await
    );
    assert_eq!(
        query_strings(&by_psql, managed_rows_sql()).await,
        query_strings(&by_up, managed_rows_sql()).await
    );
    assert_eq!(query_strings(&by_psql, usage).await, ["true"]);
    let report = up_project(&by_psql, &with_uses).await;
    assert_eq!(report.outcome, pgstrata::Outcome::Noop);
    assert!(report.roles.is_empty(), "{:?}", report.roles);

    // The use is dropped (and the view no longer needs it): the script revokes, as `up` does.
    let without = core_and_orders(&pkgs, false);
    std::fs::write(&script, pgstrata::psql_script(&without).expect("script")).expect("write");
    let (ok, out) = psql_output(&by_psql, &script);
    assert!(ok, "{out}");
    up_project(&by_up, &without).await;
    assert_eq!(query_strings(&by_psql, usage).await, ["false"]);
    assert_eq!(full_schema(&by_psql), full_schema(&by_up));
    assert_eq!(
        query_strings(&by_psql, packages_sql).await,
        query_strings(&by_up, packages_sql).await
    );
    let report = up_project(&by_psql, &without).await;
    assert_eq!(report.outcome, pgstrata::Outcome::Noop);
    assert!(report.roles.is_empty(), "{:?}", report.roles);
}

#[tokio::test]
async fn psql_script_refuses_objects_of_a_package_role_outside_its_schema() {
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path().join("leaky");
    std::fs::create_dir_all(dir.join("m")).expect("mkdir");
    std::fs::write(dir.join("m/0001.sql"), "CREATE TABLE open.t (id int);\n").expect("write");
    std::fs::write(
        dir.join("strata.toml"),
        "name = \"acme/leaky\"\nschema = \"leaky\"\nmigrations = [\"m/0001.sql\"]\n",
    )
    .expect("manifest");
    let script = tmp.path().join("deploy.sql");
    let pkg = export_psql(&dir, &script);
    assert_eq!(pkg.name(), "acme/leaky");
    let db = pgtest::TestDb::new().await;
    // A schema anyone may create in: PostgreSQL lets the package role write there, Strata does not.
    db.client()
        .await
        .batch_execute("CREATE SCHEMA open; GRANT CREATE, USAGE ON SCHEMA open TO PUBLIC")
        .await
        .expect("open schema");
    let (ok, out) = psql_output(&db, &script);
    assert!(!ok, "{out}");
    assert!(
        out.contains("table open.t (owned by $acme/leaky, whose schema is leaky)"),
        "{out}"
    );
    assert_eq!(
        query_strings(&db, "SELECT (to_regclass('open.t') IS NULL)::text").await,
        ["true"]
    );
}

/// `dump_schema`'s options with the pg_dump that matches the test server (pg_dump refuses newer servers).
fn dump_options() -> pgstrata::DumpOptions {
    pgstrata::DumpOptions {
        pg_dump: pgtest::tool("pg_dump"),
        ..pgstrata::DumpOptions::default()
    }
}
