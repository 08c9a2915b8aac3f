//! A role that is not a superuser: with pg_monitor it runs every catalog check; the checks it may not run say why,
//! and the ones that see less say what they could not see.

use pgstrata_ops::inspect::{Check, CheckOutcome, Verdict};

use crate::support::{connect, deploy, eager, minipaas_dir, options, run};

/// A login role for this test (roles are cluster-wide: named after the database, dropped at the end).
async fn role(admin: &tokio_postgres::Client, name: &str, monitor: bool) {
    admin
        .batch_execute(&format!("CREATE ROLE {name} LOGIN"))
        .await
        .unwrap();
    if monitor {
        admin
            .batch_execute(&format!("GRANT pg_monitor TO {name}"))
            .await
            .unwrap();
    }
}

async fn connect_as(db: &pgtest::TestDb, user: &str) -> pgstrata::Database {
    let opts = options(db).with_user(user);
    pgstrata::Database::connect(&opts)
        .await
        .expect("connect as the role")
}

#[tokio::test]
async fn a_monitoring_role_runs_the_catalog_checks_and_is_told_what_it_may_not_read() {
    let db = pgtest::TestDb::new().await;
    let admin = db.client().await;
    let mut pg = connect(&db).await;
    deploy(
        &mut pg,
        &pgstrata::Project::load(&[minipaas_dir()]).unwrap(),
    )
    .await
    .unwrap();
    admin
        .batch_execute(
            "CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t SELECT generate_series(1, 100)",
        )
        .await
        .unwrap();
    let watcher = format!("w_{}", db.name());
    role(&admin, &watcher, true).await;

    let as_watcher = connect_as(&db, &watcher).await;
    let report = run(&as_watcher, &[], &eager(), None).await;
    assert!(!report.access.superuser && report.access.pg_monitor && report.access.read_all_stats);
    for c in &report.checks {
        match (&c.outcome, c.check) {
            (CheckOutcome::Skipped { reason }, Check::Strata) => {
                assert!(
                    reason.contains(&format!("role {watcher} may not read strata.")),
                    "{reason}"
                );
                assert!(reason.contains("GRANT USAGE ON SCHEMA strata"), "{reason}");
            }
            (CheckOutcome::Skipped { reason }, Check::Queues | Check::Streams) => {
                assert!(
                    reason.contains("GRANT SELECT ON ALL TABLES IN SCHEMA minipaas"),
                    "{reason}"
                );
            }
            (CheckOutcome::Skipped { reason }, Check::Statements) => {
                assert!(reason.contains("pg_stat_statements"), "{reason}");
            }
            (CheckOutcome::Ran(f), check) => {
                assert!(
                    f.limited.is_empty() || matches!(check, Check::TableBloat | Check::IndexBloat),
                    "{check}: pg_monitor sees everything: {f:?}"
                );
            }
            (other, check) => panic!("{check} should have run for a pg_monitor role: {other:?}"),
        }
    }

    // Granting read access to Strata's and MiniPaaS's tables lets those checks run too.
    admin
        .batch_execute(&format!(
            "GRANT USAGE ON SCHEMA strata, minipaas TO {watcher};
             GRANT SELECT ON ALL TABLES IN SCHEMA strata, minipaas TO {watcher};"
        ))
        .await
        .unwrap();
    let report = run(
        &as_watcher,
        &[Check::Strata, Check::Queues, Check::Streams],
        &eager(),
        None,
    )
    .await;
    for c in &report.checks {
        assert!(matches!(c.outcome, CheckOutcome::Ran(_)), "{:?}", c);
    }

    drop(as_watcher);
    admin
        .batch_execute(&format!(
            "REVOKE ALL ON ALL TABLES IN SCHEMA strata, minipaas FROM {watcher};
             REVOKE ALL ON SCHEMA strata, minipaas FROM {watcher}; DROP ROLE {watcher}"
        ))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_plain_role_gets_what_it_may_see_and_a_note_for_the_rest() {
    let db = pgtest::TestDb::new().await;
    let admin = db.client().await;
    let plain = format!("p_{}", db.name());
    role(&admin, &plain, false).await;
    // Someone else's long transaction, which a plain role cannot see the details of.
    let other = db.client().await;
    other
        .batch_execute("BEGIN; SELECT txid_current()")
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let as_plain = connect_as(&db, &plain).await;
    let mut settings = eager();
    settings.long_transaction_warning = pgstrata_ops::inspect::DurationSetting(100);
    let report = run(&as_plain, &[], &settings, None).await;
    assert!(!report.access.pg_monitor && !report.access.read_all_stats);
    let long = report.get(Check::LongTransactions).unwrap();
    let CheckOutcome::Ran(f) = &long.outcome else {
        panic!("{long:?}")
    };
    assert!(
        f.limited
            .iter()
            .any(|l| l.contains(&format!("role {plain} lacks pg_read_all_stats"))),
        "{f:?}"
    );
    // Every catalog check still ran; none failed.
    for c in &report.checks {
        assert!(
            !matches!(c.outcome, CheckOutcome::Failed { .. }),
            "{} failed for a plain role: {:?}",
            c.check,
            c.outcome
        );
    }
    let sizes = report.get(Check::DatabaseSizes).unwrap();
    assert!(
        matches!(&sizes.outcome, CheckOutcome::Ran(f) if f.verdict == Verdict::Ok),
        "{sizes:?}"
    );

    other.batch_execute("ROLLBACK").await.unwrap();
    drop(as_plain);
    admin
        .batch_execute(&format!("DROP ROLE {plain}"))
        .await
        .unwrap();
}
