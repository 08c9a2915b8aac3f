//! Generated folders of a few hundred migrations in every layout: Strata applies each in place and must reach
//! the schema the tool's own order gives (the reference applies the same files with psql, in the order the tool
//! documents, computed here independently of the code under test), and real dbmate for the dbmate layout.
//!
//! The migrations keep adding columns to one table, so any ordering mistake changes the column order and shows up
//! in the schema dump; file names are chosen so that sorting them as text gives the wrong order wherever the tool
//! sorts by number (sqlx, golang-migrate, Flyway).

use std::fmt::Write as _;
use std::path::Path;

use pgstrata::{Layout, Package};

use crate::interop::support::*;

pub const COUNT: usize = 300;

/// One logical migration.
pub struct Spec {
    pub up: String,
    pub down: String,
    /// Runs outside a transaction (a single CREATE INDEX CONCURRENTLY).
    pub no_tx: bool,
}

pub fn specs(n: usize, with_no_tx: bool) -> Vec<Spec> {
    let mut out = vec![Spec {
        up: "CREATE TABLE hub (id bigint PRIMARY KEY, note text);\n".into(),
        down: "DROP TABLE hub;\n".into(),
        no_tx: false,
    }];
    let mut last_comment: Option<usize> = None;
    for i in 2..=n {
        let spec = if with_no_tx && i % 50 == 25 {
            Spec {
                up: format!("CREATE INDEX CONCURRENTLY hub_note_{i} ON hub (note);\n"),
                down: format!("DROP INDEX CONCURRENTLY hub_note_{i};\n"),
                no_tx: true,
            }
        } else {
            match i % 6 {
                0 => Spec {
                    up: format!(
                        "CREATE TABLE t{i} (id bigint PRIMARY KEY, hub_id bigint REFERENCES hub, note text);\n\
                         CREATE INDEX t{i}_note ON t{i} (note);\n"
                    ),
                    down: format!("DROP TABLE t{i};\n"),
                    no_tx: false,
                },
                1 | 3 => Spec {
                    up: format!("ALTER TABLE hub ADD COLUMN c{i} integer DEFAULT {i};\n"),
                    down: format!("ALTER TABLE hub DROP COLUMN c{i};\n"),
                    no_tx: false,
                },
                2 => Spec {
                    up: format!(
                        "CREATE FUNCTION f{i}(x integer) RETURNS integer LANGUAGE sql IMMUTABLE\n    AS $$ SELECT x + {i} $$;\n"
                    ),
                    down: format!("DROP FUNCTION f{i}(integer);\n"),
                    no_tx: false,
                },
                4 => Spec {
                    up: format!(
                        "INSERT INTO hub (id, note) VALUES ({i}, 'row {i}');\nCREATE VIEW v{i} AS SELECT id, note FROM hub WHERE id >= {i};\n"
                    ),
                    down: format!("DROP VIEW v{i};\nDELETE FROM hub WHERE id = {i};\n"),
                    no_tx: false,
                },
                _ => Spec {
                    up: format!(
                        "DO $$\nBEGIN\n    EXECUTE format('COMMENT ON TABLE hub IS %L', 'after migration {i}');\nEND\n$$;\n"
                    ),
                    // The exact inverse: the comment the previous such migration left.
                    down: match last_comment.replace(i) {
                        Some(prev) => {
                            format!("COMMENT ON TABLE hub IS 'after migration {prev}';\n")
                        }
                        None => "COMMENT ON TABLE hub IS NULL;\n".into(),
                    },
                    no_tx: false,
                },
            }
        };
        out.push(spec);
    }
    out
}

fn write(path: &Path, text: &str) {
    if let Some(p) = path.parent() {
        std::fs::create_dir_all(p).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// Write `specs` in `layout`'s format into `dir`.
pub fn write_layout(layout: Layout, dir: &Path, specs: &[Spec]) {
    for (k, s) in specs.iter().enumerate() {
        let i = k + 1;
        match layout {
            Layout::Dbmate => {
                let tx = if s.no_tx { " transaction:false" } else { "" };
                write(
                    &dir.join(format!("{}_m{i}.sql", 20240101000000u64 + i as u64)),
                    &format!(
                        "-- migrate:up{tx}\n{}\n-- migrate:down{tx}\n{}",
                        s.up, s.down
                    ),
                );
            }
            Layout::Sqlx => {
                let mark = if s.no_tx { "-- no-transaction\n" } else { "" };
                if i % 7 == 0 {
                    // A simple (up-only) migration now and then.
                    write(
                        &dir.join(format!("{i}_m{i}.sql")),
                        &format!("{mark}{}", s.up),
                    );
                } else {
                    write(
                        &dir.join(format!("{i}_m{i}.up.sql")),
                        &format!("{mark}{}", s.up),
                    );
                    write(
                        &dir.join(format!("{i}_m{i}.down.sql")),
                        &format!("{mark}{}", s.down),
                    );
                }
            }
            Layout::GolangMigrate => {
                write(&dir.join(format!("{i}_m{i}.up.sql")), &s.up);
                write(&dir.join(format!("{i}_m{i}.down.sql")), &s.down);
            }
            Layout::Diesel => {
                let d = dir.join(format!("2024-01-01-{i:06}_m{i}"));
                write(&d.join("up.sql"), &s.up);
                write(&d.join("down.sql"), &s.down);
                if s.no_tx {
                    write(&d.join("metadata.toml"), "run_in_transaction = false\n");
                }
            }
            Layout::Flyway => {
                // 1.1 … 1.11, 2.0 …: "1.10" sorts before "1.2" as text, not as a version.
                let (major, minor) = (k / 12 + 1, k % 12);
                write(&dir.join(format!("V{major}_{minor}__m{i}.sql")), &s.up);
                write(&dir.join(format!("U{major}_{minor}__m{i}.sql")), &s.down);
            }
            Layout::Refinery => {
                write(&dir.join(format!("V{i}__m{i}.sql")), &s.up);
            }
            Layout::UpDown => {
                let mark = if s.no_tx {
                    "-- strata:no-transaction\n"
                } else {
                    ""
                };
                write(
                    &dir.join(format!("migrations/{i:04}-m{i}.up.sql")),
                    &format!("{mark}{}", s.up),
                );
                write(
                    &dir.join(format!("migrations/{i:04}-m{i}.down.sql")),
                    &format!("{mark}{}", s.down),
                );
            }
            Layout::Popx => {
                // 20-digit versions; a file for another database beside each PostgreSQL one.
                let v = 20210410175418000000u128 + i as u128;
                let autocommit = if s.no_tx { ".autocommit" } else { "" };
                write(
                    &dir.join(format!("{v}_m{i}.postgres{autocommit}.up.sql")),
                    &s.up,
                );
                write(
                    &dir.join(format!("{v}_m{i}.mysql.up.sql")),
                    "not for PostgreSQL;\n",
                );
                write(&dir.join(format!("{v}_m{i}.down.sql")), &s.down);
            }
            Layout::PostgresMigrations => {
                let mark = if s.no_tx {
                    "-- postgres-migrations disable-transaction\n"
                } else {
                    ""
                };
                write(
                    &dir.join(format!("{i:04}-m{i}.sql")),
                    &format!("{mark}{}", s.up),
                );
            }
        }
    }
}

/// The reference: every up SQL in logical order, applied by psql in autocommit (as the tools do, one file after
/// the other).
fn reference_schema(specs: &[Spec]) -> (pgtest::TestDb, String) {
    let db = pgtest::TestDb::new_blocking();
    let tmp = tempfile::tempdir().expect("tmp");
    let mut all = String::new();
    for s in specs {
        let _ = writeln!(all, "{}", s.up);
    }
    let file = tmp.path().join("all.sql");
    std::fs::write(&file, all).expect("write");
    psql_file(&db, &file);
    let text = schema(&db);
    (db, text)
}

async fn check_layout(layout: Layout, detectable: bool) {
    let with_no_tx = layout != Layout::Refinery;
    let specs = specs(COUNT, with_no_tx);
    let tmp = tempfile::tempdir().expect("tmp");
    write_layout(layout, tmp.path(), &specs);
    if detectable {
        assert_eq!(Layout::detect(tmp.path()).expect("detect"), layout);
    }
    let pkg = Package::from_layout(tmp.path(), layout).expect("load");
    assert_eq!(pkg.migrations().len(), COUNT);
    let (_ref_db, expected) = tokio::task::spawn_blocking(move || reference_schema(&specs))
        .await
        .expect("reference");
    let db = pgtest::TestDb::new().await;
    let report = up(&db, &pkg).await;
    assert_eq!(
        report
            .migrations
            .iter()
            .filter(|m| m.package != "strata")
            .count(),
        COUNT
    );
    assert_eq!(
        schema(&db),
        expected,
        "{layout}: schema differs from the tool's order"
    );
    // Nothing left to do, and the stored down SQL rolls the last migrations back.
    let again = up(&db, &pkg).await;
    assert_eq!(again.outcome, pgstrata::Outcome::Noop);
}

#[tokio::test]
async fn dbmate_folder_applies_in_place() {
    check_layout(Layout::Dbmate, true).await;
}

#[tokio::test]
async fn sqlx_folder_applies_in_numeric_order() {
    check_layout(Layout::Sqlx, true).await;
}

#[tokio::test]
async fn golang_migrate_folder_applies_in_numeric_order() {
    // golang-migrate's files are also valid sqlx files: detection reports the ambiguity (tested separately).
    check_layout(Layout::GolangMigrate, false).await;
}

#[tokio::test]
async fn diesel_folder_applies_in_place() {
    check_layout(Layout::Diesel, true).await;
}

#[tokio::test]
async fn flyway_folder_applies_in_version_order() {
    check_layout(Layout::Flyway, true).await;
}

#[tokio::test]
async fn refinery_folder_applies_in_version_order() {
    check_layout(Layout::Refinery, false).await;
}

#[tokio::test]
async fn up_down_folder_applies_in_place() {
    check_layout(Layout::UpDown, true).await;
}

#[tokio::test]
async fn popx_folder_applies_in_version_order() {
    check_layout(Layout::Popx, true).await;
}

#[tokio::test]
async fn postgres_migrations_folder_applies_in_id_order() {
    check_layout(Layout::PostgresMigrations, true).await;
}

/// The same generated dbmate folder applied by real dbmate and by Strata gives the same schema.
#[tokio::test]
async fn dbmate_and_strata_give_the_same_schema() {
    let Some(bin) = dbmate() else { return };
    let specs = specs(COUNT, true);
    let tmp = tempfile::tempdir().expect("tmp");
    write_layout(Layout::Dbmate, tmp.path(), &specs);
    let by_dbmate = pgtest::TestDb::new().await;
    let out = run_dbmate(&bin, &by_dbmate, tmp.path(), &["migrate"]);
    assert!(
        out.status.success(),
        "dbmate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let by_strata = pgtest::TestDb::new().await;
    let pkg = Package::from_layout(tmp.path(), Layout::Dbmate).expect("load");
    up(&by_strata, &pkg).await;
    assert_eq!(schema(&by_strata), schema(&by_dbmate));
}
