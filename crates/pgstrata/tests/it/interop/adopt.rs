//! `adopt` and `baseline`: real dbmate, and the tracking tables of sqlx, Flyway, golang-migrate, diesel and
//! refinery created exactly as those tools create them (their DDL is in the research notes; the checksums are
//! computed here independently: SHA-384 by PostgreSQL, CRC-32 by a bit-by-bit implementation).

use std::hash::{Hash, Hasher};

use pgstrata::{AdoptOptions, Layout, Package, Tool};

use crate::interop::generated::{specs, write_layout};
use crate::interop::support::*;

async fn adopt(
    db: &pgtest::TestDb,
    pkg: &Package,
    opts: &AdoptOptions,
) -> pgstrata::Result<pgstrata::AdoptReport> {
    let mut conn = connect(db).await;
    pgstrata::adopt(&mut conn, &project(pkg.clone()), opts, &mut pgstrata::Quiet).await
}

async fn sources(db: &pgtest::TestDb) -> Vec<String> {
    query_strings(
        db,
        "SELECT name || ' ' || source FROM strata.migration WHERE package <> 'strata' ORDER BY id",
    )
    .await
}

/// Apply a folder's up files with psql in the given order (what the tool itself would have run).
fn apply_files(db: &pgtest::TestDb, dir: &std::path::Path, files: &[&str]) {
    for f in files {
        psql_file(db, &dir.join(f));
    }
}

#[tokio::test]
async fn real_dbmate_then_adopt_then_strata() {
    let Some(bin) = dbmate() else { return };
    let all = specs(60, true);
    let tmp = tempfile::tempdir().expect("tmp");
    write_layout(Layout::Dbmate, tmp.path(), &all[..40]);
    let db = pgtest::TestDb::new().await;
    let out = run_dbmate(&bin, &db, tmp.path(), &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The team writes 20 more migrations, and switches to Strata.
    let tmp_all = tempfile::tempdir().expect("tmp");
    write_layout(Layout::Dbmate, tmp_all.path(), &all);
    let pkg = Package::from_layout(tmp_all.path(), Layout::Dbmate).expect("load");
    let report = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect("adopt");
    assert_eq!(report.source, "adopted:dbmate");
    assert_eq!(report.recorded.len(), 40);
    assert_eq!(report.pending.len(), 20);
    assert_eq!(report.outcome, pgstrata::Outcome::Applied);
    // Idempotent: a second adoption records nothing.
    let again = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect("adopt again");
    assert_eq!(again.outcome, pgstrata::Outcome::Noop);
    assert_eq!(again.already_recorded.len(), 40);
    let ran = up(&db, &pkg).await;
    assert_eq!(
        ran.migrations.len(),
        20,
        "nothing dbmate applied runs again"
    );
    // The same 60 migrations by dbmate alone give the same schema.
    let reference = pgtest::TestDb::new().await;
    let out = run_dbmate(&bin, &reference, tmp_all.path(), &["migrate"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(schema(&db), schema(&reference));
    // Adopted migrations roll back with the down SQL stored at adoption.
    let mut conn = connect(&db).await;
    let opts = pgstrata::DownOptions {
        target: pgstrata::DownTarget::Steps(25),
        ..Default::default()
    };
    pgstrata::down(&mut conn, &opts, &mut pgstrata::Quiet)
        .await
        .expect("down");
    let partial = pgtest::TestDb::new().await;
    let out = run_dbmate(&bin, &partial, tmp.path(), &["migrate"]);
    assert!(out.status.success());
    let out = run_dbmate(&bin, &partial, tmp.path(), &["rollback"]);
    assert!(out.status.success());
    for _ in 0..4 {
        run_dbmate(&bin, &partial, tmp.path(), &["rollback"]);
    }
    assert_eq!(schema(&db), schema(&partial));
}

pub(super) const SQLX_TABLE: &str = "CREATE TABLE IF NOT EXISTS _sqlx_migrations (
    version BIGINT PRIMARY KEY,
    description TEXT NOT NULL,
    installed_on TIMESTAMPTZ NOT NULL DEFAULT now(),
    success BOOLEAN NOT NULL,
    checksum BYTEA NOT NULL,
    execution_time BIGINT NOT NULL
)";

/// What `sqlx migrate run` leaves: the schema, and one row per migration with the SHA-384 of the file.
async fn sqlx_applied(db: &pgtest::TestDb, dir: &std::path::Path, files: &[(i64, &str, &str)]) {
    let client = db.client().await;
    client.batch_execute(SQLX_TABLE).await.expect("table");
    for (version, description, file) in files {
        psql_file(db, &dir.join(file));
        let text = std::fs::read_to_string(dir.join(file)).expect("read");
        client
            .execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
                 VALUES ($1, $2, TRUE, sha384(convert_to($3, 'UTF8')), 1000)",
                &[version, description, &text],
            )
            .await
            .expect("insert");
    }
}

#[tokio::test]
async fn sqlx_checksums_are_verified() {
    let tmp = copy_fixture("sqlx");
    let db = pgtest::TestDb::new().await;
    sqlx_applied(
        &db,
        tmp.path(),
        &[
            (1, "accounts", "1_accounts.sql"),
            (2, "owners", "2_owners.up.sql"),
            (3, "indexes", "3_indexes.sql"),
        ],
    )
    .await;
    let pkg = Package::from_layout(tmp.path(), Layout::Sqlx).expect("load");
    // A file edited after sqlx applied it: refused, nothing recorded.
    let owners = tmp.path().join("2_owners.up.sql");
    let original = std::fs::read_to_string(&owners).expect("read");
    std::fs::write(&owners, format!("{original}-- edited\n")).expect("edit");
    let edited = Package::from_layout(tmp.path(), Layout::Sqlx).expect("load");
    let err = adopt(&db, &edited, &AdoptOptions::default())
        .await
        .expect_err("changed");
    assert!(err.to_string().contains("2_owners.up.sql"), "{err}");
    assert_eq!(
        query_strings(
            &db,
            "SELECT coalesce(to_regclass('strata.migration')::text, 'none')"
        )
        .await,
        ["none"],
        "a refused adoption changes nothing"
    );
    std::fs::write(&owners, original).expect("restore");

    let report = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect("adopt");
    assert_eq!(report.recorded.len(), 3);
    assert!(report.recorded.iter().all(|a| a.verified == Some("sha384")));
    assert_eq!(report.pending, ["sqlx:10_owner_name"]);
    assert_eq!(
        sources(&db).await,
        [
            "1_accounts adopted:sqlx",
            "2_owners adopted:sqlx",
            "3_indexes adopted:sqlx"
        ]
    );
    assert_eq!(up(&db, &pkg).await.migrations.len(), 1);
}

#[tokio::test]
async fn sqlx_failed_entry_stops_adoption() {
    let tmp = copy_fixture("sqlx");
    let db = pgtest::TestDb::new().await;
    sqlx_applied(&db, tmp.path(), &[(1, "accounts", "1_accounts.sql")]).await;
    db.client()
        .await
        .batch_execute("UPDATE _sqlx_migrations SET success = false")
        .await
        .expect("dirty");
    let pkg = Package::from_layout(tmp.path(), Layout::Sqlx).expect("load");
    let err = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect_err("failed entry");
    let text = format!("{:?}", miette::Report::new(err));
    assert!(
        text.contains("success = false") && text.contains("delete its row"),
        "{text}"
    );
}

/// CRC-32 (IEEE), bit by bit, over the file without its line breaks and BOM: Flyway's checksum, independently.
pub(super) fn flyway_crc(text: &str) -> i32 {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut crc: u32 = 0xffff_ffff;
    for b in text.bytes().filter(|b| *b != b'\n' && *b != b'\r') {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    (!crc) as i32
}

pub(super) const FLYWAY_TABLE: &str = "CREATE TABLE flyway_schema_history (
    installed_rank INT NOT NULL PRIMARY KEY,
    version VARCHAR(50),
    description VARCHAR(200) NOT NULL,
    type VARCHAR(20) NOT NULL,
    script VARCHAR(1000) NOT NULL,
    checksum INTEGER,
    installed_by VARCHAR(100) NOT NULL,
    installed_on TIMESTAMP NOT NULL DEFAULT now(),
    execution_time INTEGER NOT NULL,
    success BOOLEAN NOT NULL
)";

pub(super) async fn flyway_row(
    db: &pgtest::TestDb,
    rank: i32,
    version: Option<&str>,
    kind: &str,
    script: &str,
    checksum: Option<i32>,
    success: bool,
) {
    db.client()
        .await
        .execute(
            "INSERT INTO flyway_schema_history
               (installed_rank, version, description, type, script, checksum, installed_by, execution_time, success)
             VALUES ($1, $2, $3, $4, $5, $6, 'flyway', 5, $7)",
            &[&rank, &version, &script, &kind, &script, &checksum, &success],
        )
        .await
        .expect("insert");
}

#[tokio::test]
async fn flyway_history_with_crc32_repeatables_and_undo() {
    let tmp = copy_fixture("flyway");
    let dir = tmp.path();
    let db = pgtest::TestDb::new().await;
    db.client()
        .await
        .batch_execute(FLYWAY_TABLE)
        .await
        .expect("table");
    apply_files(
        &db,
        dir,
        &[
            "V1__init.sql",
            "V1_2__email.sql",
            "V1.10__phone.sql",
            "R__person_view.sql",
        ],
    );
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
        Some("1.2"),
        "SQL",
        "V1_2__email.sql",
        Some(crc("V1_2__email.sql")),
        true,
    )
    .await;
    flyway_row(
        &db,
        3,
        Some("1.10"),
        "SQL",
        "V1.10__phone.sql",
        Some(crc("V1.10__phone.sql")),
        true,
    )
    .await;
    flyway_row(
        &db,
        4,
        None,
        "SQL",
        "R__person_view.sql",
        Some(crc("R__person_view.sql")),
        true,
    )
    .await;
    let pkg = Package::from_layout(dir, Layout::Flyway).expect("load");
    let report = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect("adopt");
    assert_eq!(report.recorded.len(), 3);
    assert!(report.recorded.iter().all(|a| a.verified == Some("crc32")));
    assert_eq!(
        report.repeatables.len(),
        1,
        "the view is recorded: its checksum matches"
    );
    assert_eq!(report.pending, ["flyway:V2__index"]);
    let ran = up(&db, &pkg).await;
    assert_eq!(ran.migrations.len(), 1);
    assert!(
        ran.repeatables.is_empty(),
        "an adopted, unchanged repeatable does not run again"
    );

    // An undone version is not applied; a failed entry stops adoption.
    let db = pgtest::TestDb::new().await;
    db.client()
        .await
        .batch_execute(FLYWAY_TABLE)
        .await
        .expect("table");
    apply_files(&db, dir, &["V1__init.sql"]);
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
        Some("1.2"),
        "SQL",
        "V1_2__email.sql",
        Some(crc("V1_2__email.sql")),
        true,
    )
    .await;
    flyway_row(
        &db,
        3,
        Some("1.2"),
        "UNDO_SQL",
        "U1_2__email.sql",
        Some(crc("U1_2__email.sql")),
        true,
    )
    .await;
    let report = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect("adopt");
    assert_eq!(report.recorded.len(), 1);
    flyway_row(
        &db,
        4,
        Some("1.10"),
        "SQL",
        "V1.10__phone.sql",
        Some(crc("V1.10__phone.sql")),
        false,
    )
    .await;
    let err = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect_err("failed");
    assert!(format!("{:?}", miette::Report::new(err)).contains("flyway repair"));

    // A CRC that does not match the file is refused.
    let db = pgtest::TestDb::new().await;
    db.client()
        .await
        .batch_execute(FLYWAY_TABLE)
        .await
        .expect("table");
    flyway_row(
        &db,
        1,
        Some("1"),
        "SQL",
        "V1__init.sql",
        Some(crc("V1__init.sql") ^ 1),
        true,
    )
    .await;
    let err = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect_err("crc");
    assert!(err.to_string().contains("V1__init.sql"), "{err}");
}

#[tokio::test]
async fn golang_migrate_current_version_and_dirty_flag() {
    let dir = fixture("golang-migrate");
    let db = pgtest::TestDb::new().await;
    apply_files(&db, &dir, &["1_init.up.sql", "2_prices.up.sql"]);
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version bigint not null primary key, dirty boolean not null);
             INSERT INTO schema_migrations VALUES (2, true);",
        )
        .await
        .expect("table");
    let pkg = Package::from_layout(&dir, Layout::GolangMigrate).expect("load");
    let err = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect_err("dirty");
    assert!(format!("{:?}", miette::Report::new(err)).contains("migrate force"));
    client
        .batch_execute("UPDATE schema_migrations SET dirty = false")
        .await
        .expect("clean");
    let report = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect("adopt");
    assert_eq!(report.source, "adopted:golang-migrate");
    assert_eq!(report.recorded.len(), 2);
    assert_eq!(report.pending, ["golang-migrate:10_index"]);
}

#[tokio::test]
async fn diesel_versions() {
    let dir = fixture("diesel");
    let db = pgtest::TestDb::new().await;
    apply_files(
        &db,
        &dir,
        &[
            "00000000000000_diesel_initial_setup/up.sql",
            "2024-01-02-000000_posts/up.sql",
        ],
    );
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS __diesel_schema_migrations (
                 version VARCHAR(50) PRIMARY KEY NOT NULL,
                 run_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP);
             INSERT INTO __diesel_schema_migrations (version) VALUES ('00000000000000'), ('20240102000000');",
        )
        .await
        .expect("table");
    let pkg = Package::from_layout(&dir, Layout::Diesel).expect("load");
    let report = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect("adopt");
    assert_eq!(report.recorded.len(), 2);
    assert_eq!(report.pending, ["diesel:2024-01-03-000000_indexes"]);
}

/// refinery's checksum, written out as refinery computes it (`SipHasher13` over name, version, SQL).
fn refinery_checksum(name: &str, version: i32, sql: &str) -> String {
    let mut h = siphasher::sip::SipHasher13::new();
    name.hash(&mut h);
    version.hash(&mut h);
    sql.hash(&mut h);
    h.finish().to_string()
}

#[tokio::test]
async fn refinery_checksums() {
    let tmp = tempfile::tempdir().expect("tmp");
    write_layout(Layout::Refinery, tmp.path(), &specs(12, false));
    let db = pgtest::TestDb::new().await;
    let client = db.client().await;
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS refinery_schema_history(
                 version INT4 PRIMARY KEY, name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255))",
        )
        .await
        .expect("table");
    for i in 1..=8 {
        let file = format!("V{i}__m{i}.sql");
        psql_file(&db, &tmp.path().join(&file));
        let sql = std::fs::read_to_string(tmp.path().join(&file)).expect("read");
        let name = format!("m{i}");
        client
            .execute(
                "INSERT INTO refinery_schema_history VALUES ($1, $2, now()::text, $3)",
                &[&i, &name, &refinery_checksum(&name, i, &sql)],
            )
            .await
            .expect("insert");
    }
    let pkg = Package::from_layout(tmp.path(), Layout::Refinery).expect("load");
    let report = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect("adopt");
    assert_eq!(report.recorded.len(), 8);
    assert!(
        report
            .recorded
            .iter()
            .all(|a| a.verified == Some("siphash13"))
    );
    assert_eq!(report.pending.len(), 4);
}

#[tokio::test]
async fn tool_detection_needs_exactly_one_table() {
    let pkg = Package::from_layout(fixture("up-down"), Layout::UpDown).expect("load");
    let db = pgtest::TestDb::new().await;
    let err = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect_err("none");
    assert!(format!("{:?}", miette::Report::new(err)).contains("strata baseline"));
    db.client()
        .await
        .batch_execute(&format!("{SQLX_TABLE}; {FLYWAY_TABLE}"))
        .await
        .expect("tables");
    let err = adopt(&db, &pkg, &AdoptOptions::default())
        .await
        .expect_err("several");
    assert!(err.to_string().contains("several"), "{err}");
    let opts = AdoptOptions {
        from: Some(Tool::Sqlx),
        ..Default::default()
    };
    let report = adopt(&db, &pkg, &opts).await.expect("explicit");
    assert_eq!(report.outcome, pgstrata::Outcome::Noop);
    assert_eq!(report.pending.len(), 2);
}

#[tokio::test]
async fn baseline_records_what_is_there() {
    let all = specs(30, false);
    let tmp = tempfile::tempdir().expect("tmp");
    write_layout(Layout::Dbmate, tmp.path(), &all);
    let by_hand = tempfile::tempdir().expect("tmp");
    let mut sql = String::new();
    for s in &all[..20] {
        sql.push_str(&s.up);
    }
    std::fs::write(by_hand.path().join("first20.sql"), sql).expect("write");
    let db = pgtest::TestDb::new().await;
    psql_file(&db, &by_hand.path().join("first20.sql"));
    let pkg = Package::from_layout(tmp.path(), Layout::Dbmate).expect("load");
    let mut conn = connect(&db).await;
    let opts = pgstrata::BaselineOptions {
        to: "20240101000020".into(),
        ..Default::default()
    };
    let report = pgstrata::baseline(
        &mut conn,
        &project(pkg.clone()),
        &opts,
        &mut pgstrata::Quiet,
    )
    .await
    .expect("baseline");
    assert_eq!(report.recorded.len(), 20);
    assert_eq!(report.source, "baseline");
    let again = pgstrata::baseline(
        &mut conn,
        &project(pkg.clone()),
        &opts,
        &mut pgstrata::Quiet,
    )
    .await
    .expect("baseline again");
    assert_eq!(again.outcome, pgstrata::Outcome::Noop);
    assert_eq!(up(&db, &pkg).await.migrations.len(), 10);
    let reference = pgtest::TestDb::new().await;
    up(&reference, &pkg).await;
    assert_eq!(schema(&db), schema(&reference));
    let bad = pgstrata::BaselineOptions {
        to: "nope".into(),
        ..Default::default()
    };
    assert!(
        pgstrata::baseline(&mut conn, &project(pkg), &bad, &mut pgstrata::Quiet)
            .await
            .is_err()
    );
}
