//! No-transaction migrations: several statements in one file, split by a real parser and run one by one; the run
//! splits into segments, and `plan` says so.

use crate::support::{Db, Pkg};

fn indexed() -> Pkg {
    let mut pkg = Pkg::new("acme/search", "search");
    pkg.add(
        "0001_tables.sql",
        "CREATE TABLE doc (id int, title text, body text);\n\
         INSERT INTO doc SELECT g, 'title ' || g, 'body; with a semicolon' FROM generate_series(1, 100) g;\n",
    );
    pkg.add(
        "0002_indexes.sql",
        "-- strata:no-transaction\n\
         -- Two statements that cannot run in a transaction block, in one file.\n\
         CREATE INDEX CONCURRENTLY doc_title ON doc (title);\n\
         CREATE INDEX CONCURRENTLY doc_body ON doc (body) WHERE body <> ';';\n",
    );
    pkg.add(
        "0003_dbmate_style.sql",
        "-- migrate:up transaction:false\n\
         CREATE INDEX CONCURRENTLY doc_id ON doc (id);\n\
         CREATE UNIQUE INDEX CONCURRENTLY doc_title_id ON doc (title, id);\n\
         -- migrate:down transaction:false\n\
         DROP INDEX CONCURRENTLY doc_title_id;\n\
         DROP INDEX CONCURRENTLY doc_id;\n",
    );
    pkg.add(
        "0004_after.sql",
        "ALTER TABLE doc ADD COLUMN published boolean;\n",
    );
    pkg.write(
        "migrations/0004_after.down.sql",
        "ALTER TABLE doc DROP COLUMN published;\n",
    );
    pkg
}

fn valid_indexes(db: &Db) -> Vec<String> {
    db.column(
        "SELECT c.relname::text FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
          WHERE c.relnamespace = 'search'::regnamespace AND i.indisvalid ORDER BY 1",
    )
}

#[test]
fn plan_shows_the_segments() {
    let db = Db::new();
    let pkg = indexed();
    let plan = pkg.run(&db, &["plan", "--no-sql"]).ok();
    snap!("plan_segments", plan.stdout);

    let json = pkg.run(&db, &["--json", "plan"]).ok().json();
    let segments: Vec<(bool, usize)> = json["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["transactional"].as_bool().unwrap(),
                s["migrations"].as_array().unwrap().len(),
            )
        })
        .collect();
    // Strata's own migrations join the first segment.
    let own = crate::support::strata_schema_migrations();
    assert_eq!(
        segments,
        [(true, own + 1), (false, 1), (false, 1), (true, 1)]
    );
}

#[test]
fn a_dry_run_stops_before_the_first_no_transaction_migration() {
    let db = Db::new();
    let pkg = indexed();
    let empty = db.catalog();
    let dry = pkg.run(&db, &["up", "--dry-run"]).ok();
    let ran = format!(
        "Dry run: {} migration(s) ran",
        crate::support::strata_schema_migrations() + 1
    );
    assert!(dry.says(&ran), "{}", dry.stdout);
    assert!(
        dry.says("dry run stopped before acme/search:0002_indexes: a no-transaction migration cannot be rolled back"),
        "{}",
        dry.stderr
    );
    db.assert_catalog(&empty, "a dry run leaves no trace");
}

#[test]
fn several_concurrent_index_builds_in_one_file_all_run() {
    let db = Db::new();
    let pkg = indexed();
    let up = pkg.run(&db, &["up"]).ok();
    snap!("up_segments", up.stdout);
    assert_eq!(
        valid_indexes(&db),
        ["doc_body", "doc_id", "doc_title", "doc_title_id"]
    );
    assert!(db.has_column("search.doc", "published"));
    assert_eq!(
        db.column::<String>(
            "SELECT name FROM strata.migration WHERE no_transaction AND package = 'acme/search' ORDER BY id"
        ),
        ["0002_indexes", "0003_dbmate_style"]
    );
    // The session lock taken for the segments is released at the end.
    assert_eq!(
        // (In this database: the other tests' deploys run at the same time on the same server.)
        db.value::<i64>(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' \
             AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        ),
        0
    );

    // A dry run cannot roll back statements that commit on their own: it stops before them, and says so.
    let before = db.catalog();
    let dry = pkg.run(&db, &["down", "--steps", "2", "--dry-run"]).ok();
    assert!(
        dry.says("Dry run: reverted and rolled back 1 migration(s)"),
        "{}",
        dry.stdout
    );
    assert!(
        dry.says("dry run stopped before acme/search:0003_dbmate_style"),
        "{}",
        dry.stderr
    );
    db.assert_catalog(&before, "a dry run leaves no trace");

    // Rolling back a dbmate `transaction:false` down section also runs statement by statement.
    pkg.run(&db, &["down", "--steps", "2"]).ok();
    assert_eq!(valid_indexes(&db), ["doc_body", "doc_title"]);
    assert!(!db.has_column("search.doc", "published"));
}

#[test]
fn a_concurrent_index_in_a_transactional_migration_fails_with_a_hint() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/search", "search");
    pkg.add("0001_tables.sql", "CREATE TABLE doc (id int);\n");
    pkg.add(
        "0002_index.sql",
        "CREATE INDEX CONCURRENTLY doc_id ON doc (id);\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    snap!("concurrently_in_transaction", failed.stderr);
    assert!(!db.has("search.doc"), "the whole deploy rolled back");
}

#[test]
fn a_failure_in_a_no_transaction_file_reports_what_stays_committed() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/search", "search");
    pkg.add(
        "0001_tables.sql",
        "CREATE TABLE doc (id int, title text);\n",
    );
    pkg.add(
        "0002_indexes.sql",
        "-- strata:no-transaction\n\
         CREATE INDEX CONCURRENTLY doc_id ON doc (id);\n\
         CREATE INDEX CONCURRENTLY doc_nope ON doc (nope);\n",
    );
    let failed = pkg.run(&db, &["up"]).expect_code(1);
    snap!("no_transaction_partial_failure", failed.stderr);
    // What ran before the failing statement committed on its own, and the error says so; the migration itself
    // is not recorded as applied, so the next `up` runs it again.
    assert_eq!(db.applied(), ["acme/search:0001_tables"]);
    assert_eq!(valid_indexes(&db), ["doc_id"]);
    let detail: serde_json::Value =
        db.value("SELECT detail FROM strata.run WHERE outcome = 'failed' ORDER BY id DESC LIMIT 1");
    assert_eq!(
        detail["committed_statements"],
        serde_json::json!(["CREATE INDEX CONCURRENTLY doc_id ON doc (id);"])
    );

    pkg.write(
        "migrations/0002_indexes.sql",
        "-- strata:no-transaction\n\
         CREATE INDEX CONCURRENTLY IF NOT EXISTS doc_id ON doc (id);\n\
         CREATE INDEX CONCURRENTLY doc_title ON doc (title);\n",
    );
    pkg.run(&db, &["up"]).ok();
    assert_eq!(valid_indexes(&db), ["doc_id", "doc_title"]);
}

#[test]
fn an_enum_value_added_then_used_in_one_deploy_gets_a_commit_between() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/moods", "moods");
    pkg.add(
        "0001_person.sql",
        "CREATE TYPE mood AS ENUM ('ok', 'sad');\nCREATE TABLE person (id bigint PRIMARY KEY, mood mood);\n",
    );
    pkg.add("0002_meh.sql", "ALTER TYPE mood ADD VALUE 'meh';\n");
    pkg.add(
        "0003_other.sql",
        "CREATE TABLE IF NOT EXISTS note (id bigint);\n",
    );
    pkg.add("0004_use.sql", "INSERT INTO person VALUES (1, 'meh');\n");
    let plan = pkg.run(&db, &["plan", "--no-sql"]).ok();
    assert!(plan.says("in 2 segments"), "{}", plan.stdout);
    assert!(
        plan.says("commits here: acme/moods:0002_meh adds the value 'meh' to enum moods.mood and acme/moods:0004_use uses it"),
        "{}",
        plan.stdout
    );
    let json = pkg.run(&db, &["--json", "plan"]).ok().json();
    let reasons: Vec<bool> = json["segments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.get("commit_reason").is_some())
        .collect();
    assert_eq!(reasons, [true, false]);

    // A dry run stops where the run commits; the run itself goes through (55P04 without the commit).
    let dry = pkg.run(&db, &["up", "--dry-run"]).ok();
    assert!(
        dry.says("dry run stopped before acme/moods:0003_other"),
        "{}",
        dry.stderr
    );
    pkg.run(&db, &["up"]).ok();
    assert_eq!(
        db.column::<String>("SELECT mood::text FROM moods.person"),
        ["meh"]
    );

    // The psql export commits at the same place.
    let script = pkg.run(&db, &["export", "--to", "psql", "-"]).ok();
    assert!(
        script.says("-- commit here: acme/moods:0002_meh"),
        "{}",
        script.stdout
    );
}

#[test]
fn the_plan_header_names_a_lone_no_transaction_segment_a_segment() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/lone", "lone");
    pkg.add(
        "0001_doc.sql",
        "CREATE TABLE doc (id bigint, title text);\n",
    );
    pkg.run(&db, &["up"]).ok();
    pkg.add(
        "0002_index.sql",
        "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS doc_title ON doc (title);\n",
    );
    let plan = pkg.run(&db, &["plan", "--no-sql"]).ok();
    assert!(plan.says("1 migration(s) to apply"), "{}", plan.stdout);
    assert!(!plan.says("in 1 transaction"), "{}", plan.stdout);
    assert!(plan.says("in 1 segment:"), "{}", plan.stdout);
    assert!(plan.says("segment 1 (no transaction"), "{}", plan.stdout);
}
