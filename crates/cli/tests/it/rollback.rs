//! `strata down`: rollbacks run the down SQL stored in the database, so they work after the files are gone.

use crate::support::{Db, Pkg};

/// Three migrations; the down parts come as a dbmate section, a sibling `.down.sql` file, and a section again.
fn shop() -> Pkg {
    let mut pkg = Pkg::new("acme/shop", "shop");
    pkg.add(
        "0001_product.sql",
        "-- migrate:up\nCREATE TABLE product (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE product;\n",
    );
    pkg.add("0002_price.sql", "ALTER TABLE product ADD price numeric;\n");
    pkg.write(
        "migrations/0002_price.down.sql",
        "ALTER TABLE product DROP COLUMN price;\n",
    );
    pkg.add(
        "0003_order.sql",
        "-- migrate:up\nCREATE TABLE \"order\" (id int, product int REFERENCES product);\n\
         -- migrate:down\nDROP TABLE \"order\";\n",
    );
    pkg
}

#[test]
fn down_steps_uses_the_stored_sql_after_the_files_are_deleted() {
    let db = Db::new();
    let mut pkg = shop();
    pkg.run(&db, &["up"]).ok();
    let after_first = {
        let other = Db::new();
        let mut first_only = Pkg::new("acme/shop", "shop");
        first_only.add(
            "0001_product.sql",
            "-- migrate:up\nCREATE TABLE product (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE product;\n",
        );
        first_only.run(&other, &["up"]).ok();
        other.catalog()
    };

    // The code is rolled back: the two newest migrations and the down file disappear from the package.
    pkg.remove("0003_order.sql");
    pkg.remove("0002_price.sql");
    std::fs::remove_file(pkg.path("migrations/0002_price.down.sql")).unwrap();

    let down = pkg.run(&db, &["down", "--steps", "2"]).ok();
    snap!("down_steps_2", down.stdout);
    assert_eq!(db.applied(), ["acme/shop:0001_product"]);
    assert!(!db.has("shop.order"));
    assert!(!db.has_column("shop.product", "price"));
    db.assert_catalog(
        &after_first,
        "two steps down is the same database as one step up",
    );
    assert_eq!(
        db.column::<String>(
            "SELECT name || ' ' || action FROM strata.migration_log WHERE action = 'revert' ORDER BY id"
        ),
        ["0003_order revert", "0002_price revert"],
        "newest first"
    );
    assert_eq!(
        db.value::<String>(
            "SELECT command || ' ' || outcome FROM strata.run ORDER BY id DESC LIMIT 1"
        ),
        "down success"
    );
    pkg.run(&db, &["status", "--exit-code"]).ok();

    let nothing = pkg.run(&db, &["down", "--steps", "5"]).ok();
    assert_eq!(db.applied(), Vec::<String>::new());
    assert!(
        nothing.says("Reverted 1 migration(s)"),
        "{}",
        nothing.stdout
    );
    let noop = pkg.run(&db, &["down"]).ok();
    assert!(noop.says("Nothing to roll back"), "{}", noop.stdout);
}

#[test]
fn down_to_keeps_the_named_migration() {
    let db = Db::new();
    let pkg = shop();
    pkg.run(&db, &["up"]).ok();

    pkg.run(&db, &["down", "--to", "0001_product"]).ok();
    assert_eq!(db.applied(), ["acme/shop:0001_product"]);
    assert!(db.has("shop.product"));
    assert!(!db.has("shop.order"));

    let unknown = pkg.run(&db, &["down", "--to", "0002_price"]).expect_code(2);
    assert!(
        unknown.says("--to 0002_price: no such applied migration"),
        "{}",
        unknown.stderr
    );

    // Back up again from the files: the round trip is lossless.
    pkg.run(&db, &["up"]).ok();
    assert_eq!(db.applied().len(), 3);
}

#[test]
fn down_refuses_migrations_without_down_sql_and_reverts_nothing() {
    let db = Db::new();
    let mut pkg = shop();
    pkg.add("0004_no_down.sql", "CREATE TABLE audit (id int);\n");
    pkg.run(&db, &["up"]).ok();
    let before = db.catalog();

    let refused = pkg.run(&db, &["down", "--steps", "2"]).expect_code(1);
    snap!("down_without_down_sql", refused.stderr);
    db.assert_catalog(&before, "after a refused or failed run");
}

#[test]
fn a_failing_down_rolls_back_every_revert() {
    let db = Db::new();
    let mut pkg = shop();
    pkg.add(
        "0004_bad_down.sql",
        "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\nDROP TABLE no_such_table;\n",
    );
    pkg.run(&db, &["up"]).ok();
    let before = db.catalog();

    let failed = pkg.run(&db, &["down", "--steps", "2"]).expect_code(1);
    // The stored script is the error's source: line 3 of the stored down SQL (after its marker line).
    snap!("down_failure", failed.stderr);
    db.assert_catalog(&before, "after a refused or failed run");
    assert_eq!(
        db.value::<String>(
            "SELECT command || ' ' || outcome FROM strata.run ORDER BY id DESC LIMIT 1"
        ),
        "down failed"
    );
}

#[test]
fn dbmate_files_with_several_sections_apply_and_revert_every_section() {
    // dbmate's issue #820: with two up and two down sections, dbmate runs only part of them.
    let db = Db::new();
    let mut pkg = Pkg::new("acme/multi", "multi");
    pkg.add(
        "0001_two_sections.sql",
        "-- migrate:up\n\
         CREATE TABLE a (id int);\n\
         -- migrate:down\n\
         DROP TABLE a;\n\
         -- migrate:up\n\
         CREATE TABLE b (id int);\n\
         INSERT INTO b VALUES (1);\n\
         -- migrate:down\n\
         DROP TABLE b;\n",
    );
    let plan = pkg.run(&db, &["plan"]).ok();
    snap!("plan_two_sections", plan.stdout);

    pkg.run(&db, &["up"]).ok();
    assert!(
        db.has("multi.a") && db.has("multi.b"),
        "both up sections ran"
    );
    assert_eq!(db.value::<i64>("SELECT count(*) FROM multi.b"), 1);
    let stored: String =
        db.value("SELECT down_sql FROM strata.migration WHERE name = '0001_two_sections'");
    assert!(
        stored.contains("DROP TABLE a;") && stored.contains("DROP TABLE b;"),
        "{stored}"
    );

    pkg.run(&db, &["down"]).ok();
    assert!(
        !db.has("multi.a") && !db.has("multi.b"),
        "both down sections ran"
    );
}
