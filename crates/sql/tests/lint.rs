//! Strata's lint rules and the squawk facade: what each rule reports (snapshots), what it leaves
//! alone, how configuration and ignore comments change it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use pgstrata_sql::LineIndex;
use pgstrata_sql::lint::{
    LintConfig, Linter, ManagedReference, MigrationContext, ObjectKind, Severity,
};
use pgstrata_sql::locks::RelationName;
use pgstrata_sql::migration;

/// Findings of a migration file, one per line: `line:col severity[rule] message`, then help and
/// the fixed text when there is a fix.
fn render(source: &str, findings: &[pgstrata_sql::lint::Finding]) -> String {
    let index = LineIndex::new(source);
    let mut out = String::new();
    for f in findings {
        let at = index.line_col(f.range.start);
        out.push_str(&format!(
            "{}:{} {}[{}] {}\n    `{}`\n",
            at.line,
            at.col,
            f.severity,
            f.rule,
            f.message,
            &source[f.range.clone()]
        ));
        if let Some(help) = &f.help {
            out.push_str(&format!("    help: {help}\n"));
        }
        if let Some(fix) = &f.fix {
            out.push_str(&format!(
                "    fix: {}\n{}",
                fix.title,
                fix.apply(source)
                    .lines()
                    .map(|l| format!("      | {l}\n"))
                    .collect::<String>()
            ));
        }
    }
    out
}

fn lint_with(source: &str, config: &LintConfig, context: &MigrationContext) -> String {
    let sections = migration::parse(source).unwrap();
    let linter = Linter::new(config).unwrap();
    render(source, &linter.migration(source, &sections, context))
}

fn lint(source: &str) -> String {
    lint_with(source, &LintConfig::default(), &MigrationContext::default())
}

fn rules_of(source: &str) -> Vec<String> {
    let sections = migration::parse(source).unwrap();
    Linter::new(&LintConfig::default())
        .unwrap()
        .migration(source, &sections, &MigrationContext::default())
        .into_iter()
        .map(|f| f.rule)
        .collect()
}

#[test]
fn no_transaction_required_in_a_plain_file() {
    let sql = "\
CREATE TABLE IF NOT EXISTS audit (id bigint);
CREATE INDEX CONCURRENTLY IF NOT EXISTS audit_id
    ON audit (id);
VACUUM audit;
ALTER SYSTEM SET work_mem = '64MB';
";
    insta::assert_snapshot!(lint(sql));
}

#[test]
fn no_transaction_required_in_a_dbmate_section() {
    let sql = "\
-- migrate:up
DROP INDEX CONCURRENTLY IF EXISTS old_idx;
-- migrate:down
CREATE INDEX CONCURRENTLY IF NOT EXISTS old_idx ON t (a);
";
    insta::assert_snapshot!(lint(sql));
}

#[test]
fn no_transaction_migrations_are_fine() {
    for sql in [
        "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\n",
        "-- no-transaction\nREINDEX INDEX CONCURRENTLY i;\n",
        "-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON t (a);\n",
    ] {
        assert_eq!(rules_of(sql), Vec::<String>::new(), "{sql}");
    }
}

#[test]
fn ignore_comments_silence_strata_rules() {
    let line = "-- squawk-ignore no-transaction-required\nVACUUM t;\nVACUUM u;\n";
    assert_eq!(
        rules_of(line),
        ["no-transaction-required"],
        "only the next line"
    );
    let file = "-- squawk-ignore-file no-transaction-required\nSELECT 1;\nVACUUM t;\n";
    assert_eq!(rules_of(file), Vec::<String>::new());
    let all = "-- squawk-ignore-file\nVACUUM t;\nALTER TABLE t ADD COLUMN c int NOT NULL;\n";
    assert_eq!(rules_of(all), Vec::<String>::new());
    // A Strata rule named in an ignore comment is not an "unknown name" for squawk.
    let named = "-- squawk-ignore no-transaction-required, syntax-error\nVACUUM t;\n";
    assert_eq!(rules_of(named), Vec::<String>::new());
}

#[test]
fn file_ignores_apply_to_dbmate_sections() {
    let sql = "-- squawk-ignore-file no-transaction-required\n-- migrate:up\nVACUUM t;\n-- migrate:down\nSELECT 1;\n";
    assert_eq!(rules_of(sql), Vec::<String>::new());
}

#[test]
fn drop_managed_dependency() {
    let sql = "\
DROP VIEW IF EXISTS billing.open_invoices;
DROP TABLE line_item, billing.invoice CASCADE;
DROP FUNCTION billing.total(bigint);
DROP TYPE money_amount;
DROP TABLE unrelated;
";
    let context = MigrationContext {
        default_schema: Some("billing".into()),
        managed_references: vec![
            ManagedReference {
                kind: ObjectKind::Relation,
                name: RelationName::new(Some("billing"), "invoice"),
                used_by: "billing.invoice_total() in functions/total.sql".into(),
            },
            ManagedReference {
                kind: ObjectKind::Relation,
                name: RelationName::new(None, "invoice"),
                used_by: "billing.overdue view in views/overdue.sql".into(),
            },
            ManagedReference {
                kind: ObjectKind::Routine,
                name: RelationName::new(None, "total"),
                used_by: "billing.invoice_view in views/invoice.sql".into(),
            },
            ManagedReference {
                kind: ObjectKind::Type,
                name: RelationName::new(Some("billing"), "money_amount"),
                used_by: "billing.pay() in functions/pay.sql".into(),
            },
            // Same name, other kind: not a match.
            ManagedReference {
                kind: ObjectKind::Routine,
                name: RelationName::new(None, "unrelated"),
                used_by: "billing.unrelated() in functions/unrelated.sql".into(),
            },
        ],
        ..MigrationContext::default()
    };
    let disable_squawk_drops = LintConfig {
        disable: vec![
            "ban-drop-table".into(),
            "ban-drop-view".into(),
            "ban-drop-function".into(),
            "ban-drop-type".into(),
        ],
        ..LintConfig::default()
    };
    insta::assert_snapshot!(lint_with(sql, &disable_squawk_drops, &context));
}

#[test]
fn security_definer_rules_in_managed_code() {
    let sql = "\
CREATE FUNCTION billing.pay(id bigint) RETURNS void
    LANGUAGE sql SECURITY DEFINER
    AS $$ UPDATE invoice SET paid = true WHERE invoice.id = pay.id $$;
CREATE FUNCTION billing.ok() RETURNS int LANGUAGE sql SECURITY DEFINER
    SET search_path = billing, pg_temp AS 'SELECT 1';
CREATE FUNCTION billing.open() RETURNS int LANGUAGE sql SECURITY DEFINER
    SET search_path = \"$user\", public AS 'SELECT 1';
CREATE OR REPLACE PROCEDURE billing.temp_first() SECURITY DEFINER
    SET search_path TO pg_temp, billing LANGUAGE sql AS 'SELECT 1';
CREATE FUNCTION billing.current() RETURNS int LANGUAGE sql SECURITY DEFINER
    SET search_path FROM CURRENT AS 'SELECT 1';
CREATE FUNCTION billing.invoker() RETURNS int LANGUAGE sql AS 'SELECT 1';
";
    let linter = Linter::new(&LintConfig::default()).unwrap();
    insta::assert_snapshot!(render(sql, &linter.managed(sql)));
}

#[test]
fn managed_code_gets_no_migration_rules() {
    let sql = "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1';\nCREATE INDEX i ON t (a);\nVACUUM t;\n";
    let linter = Linter::new(&LintConfig::default()).unwrap();
    assert_eq!(linter.managed(sql), Vec::new());
}

#[test]
fn syntax_errors_are_errors() {
    let sql = "CREATE TABLE IF NOT EXISTS t (id bigint,);\nSELECT 1;\n";
    insta::assert_snapshot!(lint(sql));
}

#[test]
fn squawk_findings_keep_help_and_fix() {
    let sql = "\
CREATE TABLE IF NOT EXISTS account (id int PRIMARY KEY, created timestamp);
ALTER TABLE invoice ADD COLUMN token uuid DEFAULT gen_random_uuid();
ALTER TABLE invoice ALTER COLUMN note TYPE text;
CREATE INDEX invoice_token ON invoice (token);
ALTER TABLE invoice ADD CONSTRAINT invoice_account FOREIGN KEY (account) REFERENCES account (id);
";
    insta::assert_snapshot!(lint(sql));
}

#[test]
fn tables_created_earlier_in_the_deploy_are_not_locked_by_anyone() {
    let sql = "\
CREATE INDEX invoice_token ON invoice (token);
ALTER TABLE invoice ALTER COLUMN note TYPE text;
ALTER TABLE other ALTER COLUMN note TYPE text;
";
    let earlier = MigrationContext {
        created_before: vec![RelationName::new(Some("billing"), "invoice")],
        ..MigrationContext::default()
    };
    let sections = migration::parse(sql).unwrap();
    let linter = Linter::new(&LintConfig::default()).unwrap();
    let with: Vec<(u32, String)> = linter
        .migration(sql, &sections, &earlier)
        .into_iter()
        .map(|f| (LineIndex::new(sql).line_col(f.range.start).line, f.rule))
        .collect();
    assert_eq!(with, [(3, "changing-column-type".to_string())]);
    let without = rules_of(sql);
    assert_eq!(
        without,
        [
            "require-concurrent-index-creation",
            "changing-column-type",
            "changing-column-type"
        ]
    );
}

#[test]
fn a_renamed_table_created_in_the_deploy_is_still_new() {
    let mut context = MigrationContext {
        default_schema: Some("app".into()),
        ..MigrationContext::default()
    };
    let linter = Linter::new(&LintConfig::default()).unwrap();
    let mut rules = Vec::new();
    for sql in [
        "CREATE TABLE a (id bigint);",
        "ALTER TABLE a RENAME TO b;",
        "CREATE INDEX b_id ON b (id);",
        "ALTER INDEX b_id RENAME TO b_id2;",
        "ALTER INDEX b_id2 SET (fillfactor = 70);",
    ] {
        let sections = migration::parse(sql).unwrap();
        rules.extend(
            linter
                .migration_in_deploy(sql, &sections, &mut context)
                .into_iter()
                .map(|f| f.rule),
        );
    }
    assert_eq!(rules, Vec::<String>::new());
    // A table that existed before is not new under its new name either.
    let sql = "ALTER TABLE old RENAME TO newer;\nCREATE INDEX n_id ON newer (id);\n";
    assert_eq!(
        rules_of(sql),
        ["renaming-table", "require-concurrent-index-creation"]
    );
}

#[test]
fn lock_hazards_are_judged_against_the_catalog() {
    use pgstrata_sql::lint::ExistingRelation;
    let sql = "\
CREATE INDEX full_id ON full_table (id);
CREATE INDEX empty_id ON empty_table (id);
CREATE INDEX made_id ON made_elsewhere (id);
ALTER TABLE empty_table RENAME COLUMN a TO b;
ALTER TABLE made_elsewhere RENAME COLUMN a TO b;
";
    let context = MigrationContext {
        existing: Some(vec![
            ExistingRelation {
                name: RelationName::new(Some("app"), "full_table"),
                empty: false,
            },
            ExistingRelation {
                name: RelationName::new(Some("app"), "empty_table"),
                empty: true,
            },
        ]),
        ..MigrationContext::default()
    };
    let sections = migration::parse(sql).unwrap();
    let linter = Linter::new(&LintConfig::default()).unwrap();
    let found: Vec<(u32, String)> = linter
        .migration(sql, &sections, &context)
        .into_iter()
        .map(|f| (LineIndex::new(sql).line_col(f.range.start).line, f.rule))
        .collect();
    // The populated table's index is a hazard; the empty table's is not, but renaming its column still breaks
    // its clients; a table the catalog did not hold (created by this deploy in a way the linter cannot follow)
    // has neither.
    assert_eq!(
        found,
        [
            (1, "require-concurrent-index-creation".to_string()),
            (4, "renaming-column".to_string())
        ]
    );
    // Offline, every one of them counts.
    assert_eq!(rules_of(sql).len(), 5);
}

#[test]
fn configuration_enables_disables_and_regrades() {
    let sql = "CREATE TABLE IF NOT EXISTS t (id int);\nALTER TABLE t ADD COLUMN c int NOT NULL;\n";
    let config = LintConfig {
        pg_version: Some("16".into()),
        enable: vec!["require-table-schema".into()],
        disable: vec!["adding-required-field".into()],
        severity: vec![("prefer-bigint-over-int".into(), Severity::Error)],
    };
    let sections = migration::parse(sql).unwrap();
    let linter = Linter::new(&config).unwrap();
    let found: Vec<(String, Severity)> = linter
        .migration(sql, &sections, &MigrationContext::default())
        .into_iter()
        .map(|f| (f.rule, f.severity))
        .collect();
    assert!(
        found.contains(&("prefer-bigint-over-int".into(), Severity::Error)),
        "{found:?}"
    );
    assert!(
        found.iter().any(|(r, _)| r == "require-table-schema"),
        "{found:?}"
    );
    assert!(
        !found.iter().any(|(r, _)| r == "adding-required-field"),
        "{found:?}"
    );

    // squawk's aliases work, and a severity turns an opt-in rule on.
    let aliases = LintConfig {
        enable: vec!["require-timeout-settings".into()],
        severity: vec![("ban-drop-index".into(), Severity::Error)],
        ..LintConfig::default()
    };
    let linter = Linter::new(&aliases).unwrap();
    assert_eq!(
        linter.severity("require-lock-timeout"),
        Some(Severity::Warning)
    );
    assert_eq!(linter.severity("ban-drop-index"), Some(Severity::Error));
    assert_eq!(
        linter.severity("prefer-timestamp-tz"),
        Some(Severity::Warning)
    );
    assert_eq!(
        pgstrata_sql::lint::rule("prefer-timestamptz").map(|r| r.name),
        Some("prefer-timestamp-tz")
    );
}

#[test]
fn configuration_errors_name_the_value() {
    let bad_rule = LintConfig {
        disable: vec!["no-such-rule".into()],
        ..LintConfig::default()
    };
    let e = Linter::new(&bad_rule).unwrap_err();
    assert_eq!(e.value, "no-such-rule");
    let bad_version = LintConfig {
        pg_version: Some("fifteen".into()),
        ..LintConfig::default()
    };
    let e = Linter::new(&bad_version).unwrap_err();
    assert!(e.message.contains("invalid PostgreSQL version"), "{e}");
}

#[test]
fn the_catalog_matches_squawk() {
    let ours = pgstrata_sql::lint::rules();
    // Every rule squawk runs by default is known, with its own name.
    for rule in squawk_linter::Linter::with_default_rules().rules {
        let name = rule.to_string();
        assert!(
            ours.iter().any(|r| r.name == name),
            "{name} missing from the catalog"
        );
    }
    for info in ours {
        assert_eq!(
            pgstrata_sql::lint::rule(info.name).map(|r| r.name),
            Some(info.name)
        );
        // squawk prints `unused-ignore` but does not parse it back.
        if info.source == pgstrata_sql::lint::RuleSource::Squawk && info.name != "unused-ignore" {
            let rule = squawk_linter::Rule::try_from(info.name).unwrap();
            assert_eq!(rule.to_string(), info.name);
        }
    }
}

/// Data statements are linted apart from the rest of the file (never one syntax tree for a data load): their own
/// findings, the findings around them and ignore comments land exactly where they would in one pass.
#[test]
fn data_statements_are_linted_apart_with_positions_and_ignores_intact() {
    let mut file = String::from("-- migrate:up\nALTER TABLE t ADD COLUMN b bigint NOT NULL;\n");
    for i in 0..600 {
        file.push_str(&format!("INSERT INTO t (a) VALUES ({i});\n"));
    }
    file.push_str("INSERT INTO t (a, a) VALUES (1, 2);\n");
    file.push_str(
        "-- squawk-ignore ban-duplicate-column-assignments\nUPDATE t SET a = 1, a = 2;\n",
    );
    file.push_str("DELETE FROM t WHERE a = ;\n");
    file.push_str("CREATE INDEX t_a ON t (a);\n-- migrate:down\nDELETE FROM t;\n");
    let out = lint(&file);
    let lines: Vec<&str> = out.lines().filter(|l| !l.starts_with(' ')).collect();
    assert_eq!(
        lines,
        [
            "2:15 error[adding-required-field] Adding a new column that is `NOT NULL` and has no default value to an existing table effectively makes it required.",
            "603:16 error[ban-duplicate-column-assignments] Multiple assignments to the same column `a`.",
            "603:19 error[ban-duplicate-column-assignments] Multiple assignments to the same column `a`.",
            "606:24 error[syntax-error] the SQL parser does not understand this: expected an expression, found SEMICOLON",
            "607:1 error[require-concurrent-index-creation] During normal index creation, table updates are blocked, but reads are still allowed.",
        ][..],
        "{out}"
    );
}

#[test]
fn a_file_level_ignore_silences_data_statements_too() {
    let mut file = String::from(
        "-- squawk-ignore-file ban-duplicate-column-assignments\nCREATE TABLE t (a bigint);\n",
    );
    for i in 0..300 {
        file.push_str(&format!("INSERT INTO t (a) VALUES ({i});\n"));
    }
    file.push_str("INSERT INTO t (a, a) VALUES (1, 2);\n");
    assert_eq!(lint(&file), "");
}
