//! Version-specific SQL: what PostgreSQL 18 accepts, and what older servers say about it. The CI matrix runs this
//! against every supported version, so each side is exercised where it applies.

use crate::support::*;

#[test]
fn named_not_null_constraints_run_on_18_and_older_servers_name_the_version() {
    let db = Db::new();
    let major: i32 = db.value("SELECT current_setting('server_version_num')::int / 10000");
    let mut pkg = Pkg::new("acme/nn", "nn");
    pkg.add(
        "0001_items.sql",
        "CREATE TABLE nn.items (id int CONSTRAINT items_id_required NOT NULL, note text);\n\
         ALTER TABLE nn.items ADD CONSTRAINT items_note_required NOT NULL note NOT VALID;\n",
    );
    if major < 18 {
        let failed = pkg.run(&db, &["up"]).expect_code(1);
        assert!(
            failed.says("migrations/0001_items.sql:2:"),
            "{}",
            failed.stderr
        );
        assert!(
            failed.says("syntax error at or near \"NOT\""),
            "{}",
            failed.stderr
        );
        assert!(failed.says("SQLSTATE 42601"), "{}", failed.stderr);
        assert!(failed.says("new in PostgreSQL 18"), "{}", failed.stderr);
        // Nothing of the migration stayed.
        assert!(!db.has("nn.items"));
        return;
    }

    // PostgreSQL 18 records NOT NULL as constraints, with their names, and can add one without checking the rows.
    pkg.run(&db, &["up"]).ok();
    let constraints: Vec<String> = db.column(
        "SELECT conname || ':' || convalidated FROM pg_constraint \
         WHERE conrelid = 'nn.items'::regclass AND contype = 'n' ORDER BY conname",
    );
    assert_eq!(
        constraints,
        ["items_id_required:true", "items_note_required:false"]
    );

    // Later migrations use the names: validate one (without blocking writes), drop the other.
    pkg.add(
        "0002_names.sql",
        "ALTER TABLE nn.items VALIDATE CONSTRAINT items_note_required;\n\
         ALTER TABLE nn.items DROP CONSTRAINT items_id_required;\n",
    );
    let plan = pkg.run(&db, &["plan"]).ok();
    assert!(
        plan.says("SHARE UPDATE EXCLUSIVE"),
        "VALIDATE CONSTRAINT does not block writes:\n{}",
        plan.stdout
    );
    pkg.run(&db, &["up"]).ok();
    let not_null: Vec<String> = db.column(
        "SELECT attname || ':' || attnotnull FROM pg_attribute \
         WHERE attrelid = 'nn.items'::regclass AND attnum > 0 ORDER BY attnum",
    );
    assert_eq!(not_null, ["id:false", "note:true"]);
}
