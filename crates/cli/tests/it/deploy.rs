//! `strata plan` / `strata up`: fresh deploys, no-op redeploys, and the guards on history (changed files, missing
//! files, out-of-order migrations), `--target` and `--dry-run`.

use crate::support::{Db, Pkg};

/// A package with two small migrations, each with a down section.
fn billing() -> Pkg {
    let mut pkg = Pkg::new("github.com/acme/billing", "billing");
    pkg.add(
        "0001_invoice.sql",
        "-- migrate:up\n\
         CREATE TABLE invoice (id bigint PRIMARY KEY, amount numeric NOT NULL);\n\
         INSERT INTO invoice VALUES (1, 10.5);\n\
         -- migrate:down\n\
         DROP TABLE invoice;\n",
    );
    pkg.add(
        "0002_status.sql",
        "-- migrate:up\n\
         ALTER TABLE invoice ADD COLUMN status text NOT NULL DEFAULT 'open';\n\
         -- migrate:down\n\
         ALTER TABLE invoice DROP COLUMN status;\n",
    );
    pkg
}

#[test]
fn fresh_deploy_then_noop_redeploy() {
    let db = Db::new();
    let pkg = billing();

    let plan = pkg.run(&db, &["plan"]).ok();
    snap!("plan_fresh", plan.stdout);
    assert!(
        !db.has("strata.migration"),
        "plan must not change the database"
    );

    let up = pkg.run(&db, &["up"]).ok();
    snap!("up_fresh", up.stdout);
    assert_eq!(
        db.applied(),
        [
            "github.com/acme/billing:0001_invoice",
            "github.com/acme/billing:0002_status"
        ]
    );
    assert_eq!(
        db.column::<String>("SELECT status FROM billing.invoice"),
        ["open"]
    );
    // What `down` needs later, and the audit fields, are recorded with each migration.
    let recorded = db.row(
        "SELECT up_sql, down_sql, checksum, applied_by, strata_version
           FROM strata.migration WHERE name = '0002_status'",
    );
    let [up_sql, down_sql, checksum, by, version] = recorded
        .try_into()
        .map(|r: [Option<String>; 5]| r.map(Option::unwrap_or_default))
        .unwrap();
    assert!(up_sql.contains("ADD COLUMN status"), "{up_sql}");
    assert!(
        !up_sql.contains("DROP COLUMN"),
        "the down part is not up SQL: {up_sql}"
    );
    assert!(down_sql.contains("DROP COLUMN status"), "{down_sql}");
    assert!(checksum.starts_with("sha256:"), "{checksum}");
    assert_eq!(by, "postgres");
    assert_eq!(version, env!("CARGO_PKG_VERSION"));

    let package_rows =
        "SELECT name || ' ' || xmin || ' ' || xmax FROM strata.package ORDER BY name";
    let before = db.column::<String>(package_rows);
    let again = pkg.run(&db, &["up"]).ok();
    snap!("up_noop", again.stdout);
    // Not even a row lock (`INSERT … ON CONFLICT DO UPDATE` takes one when nothing differs): nothing to flush.
    assert_eq!(db.column::<String>(package_rows), before);
    assert_eq!(db.applied().len(), 2);
    // A run with nothing to do is logged (asynchronously committed), and writes nothing else.
    assert_eq!(
        db.column::<String>("SELECT outcome FROM strata.run ORDER BY id"),
        ["success", "noop"]
    );

    let status = pkg.run(&db, &["status", "--exit-code"]).ok();
    snap!("status_clean", status.stdout);
}

#[test]
fn a_changed_applied_file_is_refused_with_a_diff_until_accepted() {
    let db = Db::new();
    let mut pkg = billing();
    pkg.run(&db, &["up"]).ok();
    let before = db.catalog();

    pkg.write(
        "migrations/0001_invoice.sql",
        "-- migrate:up\n\
         CREATE TABLE invoice (id bigint PRIMARY KEY, amount numeric NOT NULL, currency text);\n\
         INSERT INTO invoice VALUES (1, 10.5);\n\
         -- migrate:down\n\
         DROP TABLE invoice;\n",
    );
    pkg.add(
        "0003_paid.sql",
        "ALTER TABLE invoice ADD paid_at timestamptz;\n",
    );

    let refused = pkg.run(&db, &["up"]).expect_code(1);
    snap!("changed_refused", refused.stderr);
    db.assert_catalog(&before, "nothing may run when a file changed");

    let status = pkg.run(&db, &["status", "--exit-code"]).expect_code(1);
    assert!(status.says("changed  0001_invoice"), "{}", status.stdout);

    let accepted = pkg
        .run(&db, &["up", "--accept-changed", "0001_invoice"])
        .ok();
    assert!(
        accepted.says("accepted the changed text of github.com/acme/billing:0001_invoice"),
        "{}",
        accepted.stdout
    );
    // The new text is recorded, not run: the column it adds does not appear.
    assert!(
        !db.has_column("billing.invoice", "currency"),
        "an accepted change must not run"
    );
    assert!(db.has_column("billing.invoice", "paid_at"));
    assert!(
        db.value::<String>("SELECT up_sql FROM strata.migration WHERE name = '0001_invoice'")
            .contains("currency text")
    );
    assert_eq!(
        db.column::<String>(
            "SELECT action FROM strata.migration_log WHERE name = '0001_invoice' ORDER BY id"
        ),
        ["apply", "accept-change"]
    );
    pkg.run(&db, &["status", "--exit-code"]).ok();
}

#[test]
fn line_endings_and_a_bom_do_not_change_the_checksum() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/crlf", "crlf");
    let lf = "CREATE TABLE t (id int);\nINSERT INTO t VALUES (1);\n";
    pkg.add("0001_t.sql", lf);
    pkg.run(&db, &["up"]).ok();
    let recorded: String = db.value("SELECT checksum FROM strata.migration WHERE name = '0001_t'");

    let crlf_bom = format!("\u{feff}{}", lf.replace('\n', "\r\n"));
    pkg.write("migrations/0001_t.sql", crlf_bom.as_bytes());
    let noop = pkg.run(&db, &["up"]).ok();
    assert!(noop.says("Nothing to apply"), "{}", noop.stdout);
    pkg.run(&db, &["status", "--exit-code"]).ok();

    // And a file first applied with CRLF and a BOM records the same checksum as its LF twin.
    let other = Db::new();
    pkg.run(&other, &["up"]).ok();
    assert_eq!(
        other.value::<String>("SELECT checksum FROM strata.migration WHERE name = '0001_t'"),
        recorded
    );
    assert_eq!(other.value::<i64>("SELECT count(*) FROM crlf.t"), 1);
}

#[test]
fn an_applied_migration_whose_file_is_gone_is_refused_unless_allowed() {
    let db = Db::new();
    let mut pkg = billing();
    pkg.run(&db, &["up"]).ok();
    pkg.remove("0002_status.sql");
    pkg.add("0003_note.sql", "ALTER TABLE invoice ADD note text;\n");
    let before = db.catalog();

    let refused = pkg.run(&db, &["up"]).expect_code(1);
    snap!("missing_refused", refused.stderr);
    db.assert_catalog(&before, "after a refused or failed run");

    let status = pkg.run(&db, &["status"]).ok();
    snap!("status_missing", status.stdout);

    let allowed = pkg.run(&db, &["up", "--allow-missing"]).ok();
    assert!(
        allowed.says(
            "applied migrations with no file (allowed by --allow-missing): github.com/acme/billing:0002_status"
        ),
        "{}",
        allowed.stderr
    );
    assert!(db.has_column("billing.invoice", "note"));
}

#[test]
fn out_of_order_migrations_are_refused_unless_allowed() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/ooo", "ooo");
    pkg.add("0001_a.sql", "CREATE TABLE a (id int);\n");
    pkg.add("0003_c.sql", "CREATE TABLE c (id int);\n");
    pkg.run(&db, &["up"]).ok();

    // A branch merged later brings 0002, listed between two applied migrations.
    pkg.write("migrations/0002_b.sql", "CREATE TABLE b (id int);\n");
    pkg.migrations.insert(1, "migrations/0002_b.sql".into());
    pkg.write_manifest();

    let refused = pkg.run(&db, &["up"]).expect_code(1);
    snap!("out_of_order_refused", refused.stderr);
    assert!(!db.has("ooo.b"));
    let plan = pkg.run(&db, &["plan", "--no-sql"]).expect_code(1);
    assert!(
        plan.says("out of order: acme/ooo:0002_b (needs --allow-out-of-order)"),
        "{}",
        plan.stdout
    );

    pkg.run(&db, &["up", "--allow-out-of-order"]).ok();
    assert!(db.has("ooo.b"));
    assert_eq!(
        db.applied(),
        ["acme/ooo:0001_a", "acme/ooo:0003_c", "acme/ooo:0002_b"],
        "history records the order things really ran in"
    );
}

#[test]
fn target_stops_after_the_named_migration() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/target", "target");
    pkg.add("0001_a.sql", "CREATE TABLE a (id int);\n");
    pkg.add("0002_b.sql", "CREATE TABLE b (id int);\n");
    pkg.add("0003_c.sql", "CREATE TABLE c (id int);\n");

    pkg.run(&db, &["up", "--target", "0002_b"]).ok();
    assert_eq!(db.applied(), ["acme/target:0001_a", "acme/target:0002_b"]);

    // An applied target means nothing to do; PACKAGE:NAME works too.
    let noop = pkg.run(&db, &["up", "--target", "acme/target:0001_a"]).ok();
    assert!(noop.says("Nothing to apply"), "{}", noop.stdout);

    let unknown = pkg
        .run(&db, &["up", "--target", "0009_nope"])
        .expect_code(2);
    assert!(
        unknown.says("--target 0009_nope: no such migration"),
        "{}",
        unknown.stderr
    );

    pkg.run(&db, &["up"]).ok();
    assert_eq!(db.applied().len(), 3);
}

#[test]
fn dry_run_runs_everything_and_leaves_the_database_unchanged() {
    let db = Db::new();
    let mut pkg = billing();
    let empty = db.catalog();

    let dry = pkg.run(&db, &["up", "--dry-run"]).ok();
    // Strata's own migrations and the package's two.
    let own = crate::support::strata_schema_migrations();
    assert!(
        dry.says(&format!("Dry run: {} migration(s) ran", own + 2)),
        "{}",
        dry.stdout
    );
    db.assert_catalog(&empty, "a dry run on a fresh database leaves no trace");

    pkg.run(&db, &["up"]).ok();
    pkg.add(
        "0003_fail_later.sql",
        "ALTER TABLE invoice ADD due date;\nUPDATE invoice SET due = now();\n",
    );
    let before = db.catalog();
    let runs: i64 = db.value("SELECT count(*) FROM strata.run");
    pkg.run(&db, &["up", "--dry-run"]).ok();
    db.assert_catalog(&before, "a dry run leaves no trace");
    assert_eq!(db.value::<i64>("SELECT count(*) FROM strata.run"), runs);

    // A dry run finds errors a plan cannot: the statement fails on the server, then everything rolls back.
    pkg.write(
        "migrations/0003_fail_later.sql",
        "ALTER TABLE invoice ADD due date;\nUPDATE invoice SET due = 'not a date';\n",
    );
    let failed = pkg.run(&db, &["up", "--dry-run"]).expect_code(1);
    assert!(
        failed.says("migrations/0003_fail_later.sql:2:26"),
        "{}",
        failed.stderr
    );
    db.assert_catalog(&before, "after a refused or failed run");
}

#[test]
fn used_packages_deploy_first_and_down_all_packages_reverts_across_them() {
    let db = Db::new();
    let mut core = Pkg::new("acme/core", "core");
    core.add(
        "0001_customer.sql",
        "-- migrate:up\nCREATE TABLE customer (id int PRIMARY KEY);\n-- migrate:down\nDROP TABLE customer;\n",
    );
    let mut billing = Pkg::new("acme/billing", "billing");
    billing.extra = format!(
        "uses = [{{ name = \"acme/core\", path = {:?} }}]\n",
        core.root().display().to_string()
    );
    billing.add(
        "0001_invoice.sql",
        "-- migrate:up\nCREATE TABLE invoice (id int, customer int REFERENCES core.customer);\n\
         -- migrate:down\nDROP TABLE invoice;\n",
    );

    let up = billing.run(&db, &["up"]).ok();
    assert!(
        up.says("acme/core: (nothing) → 0001_customer (1 migration)"),
        "{}",
        up.stdout
    );
    assert_eq!(
        db.applied(),
        ["acme/core:0001_customer", "acme/billing:0001_invoice"]
    );
    let log = billing.run(&db, &["log"]).ok();
    assert!(log.says("up    success"), "{}", log.stdout);

    // From anywhere, every package in the database, newest first.
    let elsewhere = tempfile::tempdir().unwrap();
    crate::support::run(db.strata_in(elsewhere.path()).args([
        "down",
        "--all-packages",
        "--steps",
        "2",
    ]))
    .ok();
    assert_eq!(db.applied(), Vec::<String>::new());
    assert!(!db.has("core.customer"));
}

#[test]
fn every_migration_runs_as_its_packages_role_and_bookkeeping_as_the_login() {
    let db = Db::new();
    let mut first = Pkg::new("acme/first", "first");
    first.add(
        "0001_a.sql",
        "CREATE TABLE a AS SELECT current_user::text AS who;\n",
    );
    first.add(
        "0002_b.sql",
        "CREATE TABLE b AS SELECT current_user::text AS who;\n",
    );
    first.add(
        "0003_c.sql",
        "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY a_who ON first.a (who);\n",
    );
    first.add(
        "0004_d.sql",
        "CREATE TABLE d AS SELECT current_user::text AS who;\n",
    );
    first.run(&db, &["up"]).ok();
    let role = "$acme/first";
    for t in ["first.a", "first.b", "first.d"] {
        assert_eq!(
            db.value::<String>(&format!("SELECT who FROM {t}")),
            role,
            "{t}"
        );
        assert_eq!(
            db.value::<String>(&format!(
                "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = '{t}'::regclass"
            )),
            role
        );
    }
    assert_eq!(
        db.value::<String>(
            "SELECT pg_get_userbyid(c.relowner)::text FROM pg_class c WHERE c.oid = 'first.a_who'::regclass"
        ),
        role
    );
    // The history rows were written by the login, not by the package role (which may not touch strata.*).
    assert_eq!(
        db.value::<i64>("SELECT count(*) FROM strata.migration WHERE package = 'acme/first'"),
        4
    );
}
