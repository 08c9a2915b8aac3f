//! `Plan::compute` is pure: files and history in, states and steps out. No server needed.

use chrono::Utc;
use pgstrata::history::AppliedMigration;
use pgstrata::{Error, MigrationState, Package, Plan, PlanOptions, strata_package};

use crate::library::support::package_dir;

fn applied(pkg: &Package, name: &str, seq: i64) -> AppliedMigration {
    let checksum = pkg
        .migrations()
        .iter()
        .find(|m| m.name() == name)
        .map_or_else(|| "sha256:gone".to_string(), |m| m.checksum().to_string());
    AppliedMigration {
        package: pkg.name().to_string(),
        name: name.to_string(),
        path: format!("migrations/{name}.sql"),
        checksum,
        has_down: true,
        no_transaction: false,
        applied_at: Utc::now(),
        applied_by: "postgres".into(),
        duration_ms: 1.0,
        seq,
        source: "strata".into(),
    }
}

fn states(plan: &Plan) -> Vec<(String, MigrationState)> {
    plan.packages[1]
        .migrations
        .iter()
        .map(|m| (m.name.clone(), m.state))
        .collect()
}

#[test]
fn states_steps_and_refusals() {
    let dir = package_dir(
        "acme/p",
        "p",
        "",
        &[
            ("0001_a.sql", "CREATE TABLE a (id int);\n"),
            ("0002_b.sql", "CREATE TABLE b (id int);\n"),
            ("0003_c.sql", "CREATE TABLE c (id int);\n"),
            (
                "0004_d.sql",
                "-- strata:no-transaction\nCREATE INDEX CONCURRENTLY ON c (id);\n",
            ),
            ("0005_e.sql", "CREATE TABLE e (id int);\n"),
        ],
    );
    let pkg = Package::load(dir.path()).unwrap();
    let internal = strata_package().unwrap();
    let packages = vec![internal.clone(), pkg.clone()];
    let mut history = vec![
        applied(&internal, "0001_history", 1),
        applied(&pkg, "0001_a", 2),
        applied(&pkg, "0003_c", 3),
        applied(&pkg, "0000_removed", 4),
    ];
    history[2].checksum = "sha256:edited-since".into();

    let plan = Plan::compute(&packages, &history, &PlanOptions::default());
    assert_eq!(
        states(&plan),
        [
            ("0001_a".into(), MigrationState::Applied),
            ("0002_b".into(), MigrationState::OutOfOrder),
            ("0003_c".into(), MigrationState::Changed),
            ("0004_d".into(), MigrationState::Pending),
            ("0005_e".into(), MigrationState::Pending),
            ("0000_removed".into(), MigrationState::Missing),
        ]
    );
    let steps: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        steps,
        [
            "0002_managed",
            "0003_repeatable",
            "0004_managed_kinds",
            "0005_interrupted",
            "0006_tenant_schemas",
            "0002_b",
            "0004_d",
            "0005_e"
        ]
    );
    assert_eq!(plan.packages[1].from.as_deref(), Some("0000_removed"));
    assert_eq!(plan.packages[1].to.as_deref(), Some("0005_e"));
    let segments: Vec<(bool, usize)> = plan
        .segments()
        .iter()
        .map(|s| (s.transactional, s.migrations.len()))
        .collect();
    assert_eq!(segments, [(true, 6), (false, 1), (true, 1)]);

    // Refusals come one kind at a time, the changed file first.
    let Err(Error::Changed(changed)) = plan.check(&PlanOptions::default()) else {
        panic!("a changed file is refused");
    };
    assert_eq!(changed.changes[0].name, "0003_c");

    let accept = PlanOptions {
        accept_changed: vec!["acme/p:0003_c".into()],
        ..PlanOptions::default()
    };
    let plan = Plan::compute(&packages, &history, &accept);
    assert_eq!(plan.accepted_changes, [("acme/p".into(), "0003_c".into())]);
    let Err(Error::Refused { message, .. }) = plan.check(&accept) else {
        panic!("out of order is refused");
    };
    assert!(message.contains("acme/p:0002_b"), "{message}");

    let allow = PlanOptions {
        allow_out_of_order: true,
        ..accept.clone()
    };
    let Err(Error::Refused { message, .. }) = plan.check(&allow) else {
        panic!("missing is refused");
    };
    assert!(message.contains("acme/p:0000_removed"), "{message}");

    let all = PlanOptions {
        allow_missing: true,
        ..allow
    };
    assert!(plan.check(&all).is_ok());
}

#[test]
fn target_cuts_the_steps() {
    let dir = package_dir(
        "acme/p",
        "p",
        "",
        &[
            ("0001_a.sql", "SELECT 1;\n"),
            ("0002_b.sql", "SELECT 2;\n"),
            ("0003_c.sql", "SELECT 3;\n"),
        ],
    );
    let pkg = Package::load(dir.path()).unwrap();
    let packages = vec![strata_package().unwrap(), pkg.clone()];
    let opts = |t: &str| PlanOptions {
        target: Some(t.into()),
        ..PlanOptions::default()
    };

    let plan = Plan::compute(&packages, &[], &opts("0002_b"));
    let steps: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        steps,
        [
            "0001_history",
            "0002_managed",
            "0003_repeatable",
            "0004_managed_kinds",
            "0005_interrupted",
            "0006_tenant_schemas",
            "0001_a",
            "0002_b"
        ]
    );
    assert_eq!(plan.packages[1].to.as_deref(), Some("0002_b"));

    let plan = Plan::compute(&packages, &[], &opts("acme/p:0003_c.sql"));
    assert_eq!(plan.steps.len(), 9);

    let history = [applied(&pkg, "0001_a", 1)];
    let plan = Plan::compute(&packages, &history, &opts("0001_a"));
    assert!(
        plan.steps.is_empty(),
        "an applied target means nothing to do"
    );

    let plan = Plan::compute(&packages, &[], &opts("0009_nope"));
    let err = plan.check(&opts("0009_nope")).unwrap_err();
    assert!(err.is_usage(), "{err}");
}
