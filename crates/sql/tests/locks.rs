//! The lock report of a representative set of migrations: the lock each statement takes, on
//! which relation, and whether it rewrites or scans the table.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use pgstrata_sql::LineIndex;
use pgstrata_sql::locks::{self, LockMode, RelationName};

fn report(source: &str, created_before: &[RelationName]) -> String {
    let index = LineIndex::new(source);
    let mut out = String::new();
    for s in locks::analyze_with(source, created_before) {
        let at = index.line_col(s.range.start);
        out.push_str(&format!("{}: {}\n", at.line, s.command));
        for l in &s.locks {
            out.push_str(&format!(
                "    {} on {}{}{}\n",
                l.mode,
                if l.on_table_of_index {
                    "the table of index "
                } else {
                    ""
                },
                l.relation,
                if l.created_earlier {
                    " (created earlier)"
                } else {
                    ""
                }
            ));
        }
        if let Some(r) = &s.rewrite {
            out.push_str(&format!("    rewrite: {r}\n"));
        }
        if let Some(r) = &s.scan {
            out.push_str(&format!("    scan: {r}\n"));
        }
        for c in &s.creates {
            out.push_str(&format!("    creates {c}\n"));
        }
        if let Some(n) = &s.note {
            out.push_str(&format!("    note: {n}\n"));
        }
    }
    out
}

const TABLES: &str = "\
CREATE TABLE billing.customer (id bigint PRIMARY KEY, name text NOT NULL);
CREATE TABLE billing.invoice (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer bigint NOT NULL REFERENCES billing.customer (id),
    total numeric NOT NULL DEFAULT 0
);
CREATE INDEX invoice_customer ON billing.invoice (customer);
CREATE TABLE billing.invoice_2024 PARTITION OF billing.invoice_by_year FOR VALUES FROM (2024) TO (2025);
CREATE VIEW billing.open_invoice AS SELECT * FROM billing.invoice WHERE total > 0;
CREATE OR REPLACE VIEW billing.customer_names AS SELECT name FROM billing.customer;
";

const ALTERS: &str = r#"
ALTER TABLE billing.invoice ADD COLUMN note text;
ALTER TABLE billing.invoice ADD COLUMN created timestamptz NOT NULL DEFAULT now();
ALTER TABLE billing.invoice ADD COLUMN token uuid DEFAULT gen_random_uuid();
ALTER TABLE billing.invoice ADD COLUMN code text DEFAULT billing.next_code();
ALTER TABLE billing.invoice ADD COLUMN seq bigserial;
ALTER TABLE billing.invoice ALTER COLUMN note TYPE varchar(200), ALTER COLUMN total SET NOT NULL;
ALTER TABLE billing.invoice ALTER COLUMN note SET STATISTICS 500;
ALTER TABLE billing.invoice ADD CONSTRAINT total_positive CHECK (total >= 0);
ALTER TABLE billing.invoice ADD CONSTRAINT total_positive_nv CHECK (total >= 0) NOT VALID;
ALTER TABLE billing.invoice VALIDATE CONSTRAINT total_positive_nv;
ALTER TABLE billing.payment ADD CONSTRAINT payment_invoice FOREIGN KEY (invoice) REFERENCES billing.invoice (id) NOT VALID;
ALTER TABLE billing.invoice ADD CONSTRAINT invoice_code UNIQUE (code);
ALTER TABLE billing.invoice ADD CONSTRAINT invoice_code_u UNIQUE USING INDEX invoice_code_idx;
ALTER TABLE billing.invoice SET (fillfactor = 80);
ALTER TABLE billing.invoice DISABLE TRIGGER ALL;
ALTER TABLE billing.invoice SET TABLESPACE fast;
ALTER TABLE billing."Audit Log" RENAME TO audit_log;
ALTER TABLE billing.invoice_by_year DETACH PARTITION billing.invoice_2019 CONCURRENTLY;
ALTER TABLE billing.invoice_by_year ATTACH PARTITION billing.invoice_2025 FOR VALUES FROM (2025) TO (2026);
"#;

const OTHERS: &str = "
CREATE INDEX CONCURRENTLY invoice_token ON billing.invoice (token);
CREATE UNIQUE INDEX invoice_code_idx ON billing.invoice (code);
DROP INDEX billing.invoice_customer;
DROP INDEX CONCURRENTLY billing.invoice_token;
REINDEX INDEX billing.invoice_code_idx;
REINDEX TABLE CONCURRENTLY billing.invoice;
CREATE TRIGGER invoice_touch BEFORE UPDATE ON billing.invoice FOR EACH ROW EXECUTE FUNCTION billing.touch();
DROP TRIGGER invoice_touch ON billing.invoice;
CREATE POLICY own_invoices ON billing.invoice USING (customer = current_setting('app.customer')::bigint);
COMMENT ON TABLE billing.invoice IS 'Invoices';
COMMENT ON FUNCTION billing.touch() IS 'Touches';
TRUNCATE billing.staging, billing.staging_2;
DROP TABLE billing.legacy, billing.legacy_2;
DROP VIEW billing.open_invoice;
REFRESH MATERIALIZED VIEW billing.totals;
REFRESH MATERIALIZED VIEW CONCURRENTLY billing.totals;
VACUUM FULL billing.invoice;
VACUUM (ANALYZE) billing.invoice;
ANALYZE billing.invoice;
CLUSTER billing.invoice USING invoice_pkey;
LOCK TABLE billing.invoice IN SHARE ROW EXCLUSIVE MODE;
LOCK billing.customer;
UPDATE billing.invoice SET total = 0;
UPDATE billing.invoice SET total = 0 WHERE id = 1;
DELETE FROM billing.staging;
INSERT INTO billing.customer (id, name) VALUES (1, 'Acme');
CREATE FUNCTION billing.touch() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
DO $$ BEGIN PERFORM 1; END $$;
ALTER INDEX billing.invoice_code_idx RENAME TO invoice_code_key;
ALTER INDEX billing.invoice_code_key SET TABLESPACE fast;
CREATE MATERIALIZED VIEW billing.totals_2 AS SELECT sum(total) FROM billing.invoice;
";

#[test]
fn lock_report_new_tables() {
    insta::assert_snapshot!(report(TABLES, &[]));
}

#[test]
fn lock_report_alter_table() {
    insta::assert_snapshot!(report(ALTERS, &[]));
}

#[test]
fn lock_report_other_statements() {
    insta::assert_snapshot!(report(OTHERS, &[]));
}

#[test]
fn relations_created_by_earlier_migrations_block_nobody() {
    let sql = "CREATE INDEX i ON invoice (customer);\nALTER TABLE billing.invoice ADD COLUMN x int DEFAULT random();\nALTER TABLE customer ADD COLUMN y int;\n";
    let earlier = [RelationName::new(Some("billing"), "invoice")];
    let analysis = locks::analyze_with(sql, &earlier);
    assert!(analysis[0].locks[0].created_earlier);
    assert!(analysis[1].locks[0].created_earlier);
    assert!(analysis[1].strongest_on_existing().is_none());
    assert!(!analysis[2].locks[0].created_earlier);
    assert_eq!(
        analysis[2].strongest_on_existing().map(|l| l.mode),
        Some(LockMode::AccessExclusive)
    );
}

#[test]
fn names_are_folded_like_postgresql_folds_them() {
    let analysis = locks::analyze(
        "ALTER TABLE Billing.\"Invoice\" ADD COLUMN a int;\nALTER TABLE mydb.billing.invoice ADD COLUMN b int;",
    );
    assert_eq!(
        analysis[0].locks[0].relation,
        RelationName::new(Some("billing"), "Invoice")
    );
    assert_eq!(
        analysis[0].locks[0].relation.to_string(),
        "billing.\"Invoice\""
    );
    assert_eq!(
        analysis[1].locks[0].relation,
        RelationName::new(Some("billing"), "invoice")
    );
}

#[test]
fn lock_modes_order_by_strength() {
    assert!(LockMode::AccessExclusive > LockMode::Share);
    assert!(LockMode::Share.blocks_writes());
    assert!(!LockMode::ShareUpdateExclusive.blocks_writes());
    assert!(LockMode::AccessExclusive.blocks_reads());
    assert!(!LockMode::Exclusive.blocks_reads());
}

#[test]
fn what_a_statement_costs_can_depend_on_the_server_version() {
    let virtual_column = "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (a * 2)";
    // PostgreSQL 18 makes it virtual: nothing is written.
    let on_18 = &locks::analyze_for(virtual_column, &[], 18)[0];
    assert_eq!(on_18.rewrite, None);
    assert_eq!(on_18.note, None);
    // PostgreSQL 17 refuses it, and the report says so.
    let on_17 = &locks::analyze_for(virtual_column, &[], 17)[0];
    assert_eq!(on_17.rewrite, None);
    assert!(
        on_17
            .note
            .as_deref()
            .unwrap()
            .contains("new in PostgreSQL 18")
    );

    // SET NOT NULL: PostgreSQL 18 has a way to check the rows without blocking writes.
    let set_not_null = "ALTER TABLE t ALTER COLUMN a SET NOT NULL";
    assert!(
        locks::analyze_for(set_not_null, &[], 18)[0]
            .scan
            .as_deref()
            .unwrap()
            .contains("NOT VALID, then VALIDATE CONSTRAINT")
    );
    assert!(
        !locks::analyze_for(set_not_null, &[], 17)[0]
            .scan
            .as_deref()
            .unwrap()
            .contains("PostgreSQL 18")
    );

    // Constraints that are never checked against the rows: NOT VALID, NOT ENFORCED (PostgreSQL 18).
    for sql in [
        "ALTER TABLE t ADD CONSTRAINT nn NOT NULL a NOT VALID",
        "ALTER TABLE t ADD CONSTRAINT ck CHECK (a > 0) NOT ENFORCED",
    ] {
        let s = &locks::analyze_for(sql, &[], 18)[0];
        assert_eq!(s.scan, None, "{sql}");
        assert_eq!(s.locks[0].mode, LockMode::AccessExclusive, "{sql}");
    }
    let checked = &locks::analyze_for("ALTER TABLE t ADD CONSTRAINT nn NOT NULL a", &[], 18)[0];
    assert!(checked.scan.is_some());
}
