//! A lint memo shared by deploys of one project (what a fleet does): a target in the same state reuses the lint
//! report; a target whose tables differ is linted afresh, and its own findings still stop its deploy.

use pgstrata::lint::LintMemo;
use pgstrata::{Error, TestMode, UpOptions};
use pgtest::TestDb;

use crate::library::support::{connect, package_dir, project};

#[tokio::test]
async fn same_state_reuses_the_report_other_state_is_linted_again() {
    // The index is built without CONCURRENTLY on a table the deploy does not create: an error when the table
    // holds rows, nothing when it is empty.
    let dir = package_dir(
        "example.com/memo",
        "public",
        "",
        &[(
            "0001_index.sql",
            "CREATE INDEX memo_t_a ON public.memo_t (a);\n",
        )],
    );
    // Run as the login (no package role): the migration indexes a table the test created in `public`.
    let manifest = dir.path().join("strata.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        format!("{text}\n[security]\npackage_role = false\n"),
    )
    .unwrap();
    let app = project(dir.path());
    let memo = LintMemo::new();
    let opts = UpOptions {
        tests: TestMode::Skip,
        lint_memo: memo.clone(),
        ..Default::default()
    };
    let mut dbs = Vec::new();
    for rows in [0, 0, 3] {
        let db = TestDb::new().await;
        let pg = connect(&db).await;
        pg.client()
            .batch_execute(&format!(
                "CREATE TABLE public.memo_t (a int); INSERT INTO public.memo_t SELECT generate_series(1, {rows});"
            ))
            .await
            .unwrap();
        dbs.push((db, pg, rows));
    }
    let (first, rest) = dbs.split_first_mut().unwrap();
    let report = pgstrata::up(&mut first.1, &app, &opts, &mut pgstrata::Quiet)
        .await
        .unwrap();
    assert_eq!(report.lint.errors, 0, "{:?}", report.lint);
    assert_eq!(memo.hits(), 0);

    // The same state: the report comes from the memo, and the deploy does the same.
    let second = pgstrata::up(&mut rest[0].1, &app, &opts, &mut pgstrata::Quiet)
        .await
        .unwrap();
    assert_eq!(memo.hits(), 1, "{memo:?}");
    assert_eq!(second.lint.errors, 0);
    let ran = |r: &pgstrata::UpReport| -> Vec<String> {
        r.migrations
            .iter()
            .map(|m| format!("{}:{}", m.package, m.name))
            .collect()
    };
    assert_eq!(ran(&second), ran(&report));
    assert!(ran(&second).contains(&"example.com/memo:0001_index".to_string()));

    // Rows in the table: another key, linted again, refused.
    let err = pgstrata::up(&mut rest[1].1, &app, &opts, &mut pgstrata::Quiet)
        .await
        .unwrap_err();
    assert_eq!(memo.hits(), 1);
    let Error::Lint(refused) = &err else {
        panic!("expected a lint refusal, got {err}");
    };
    assert!(
        format!("{:?}", refused.report).contains("require-concurrent-index-creation"),
        "{:?}",
        refused.report
    );
    // Nothing changed on the refused target.
    let applied = pgstrata::history::history_exists(rest[1].1.client())
        .await
        .unwrap();
    assert!(!applied);
}

/// The relations the lint reads are scoped (a tenant deploy reads one relation per name outside the schemas it can
/// name), with the same findings: an unqualified name still counts a table of that name holding rows in another
/// schema; a qualified one counts only its own schema's.
#[tokio::test]
async fn relations_outside_the_named_schemas_stand_for_each_other() {
    let db = TestDb::new().await;
    let pg = connect(&db).await;
    pg.client()
        .batch_execute(
            "CREATE SCHEMA other_1; CREATE TABLE other_1.memo_u (a int);
             CREATE SCHEMA other_2; CREATE TABLE other_2.memo_u (a int);
             INSERT INTO other_2.memo_u SELECT generate_series(1, 3);
             CREATE SCHEMA other_3; CREATE TABLE other_3.memo_u (a int);",
        )
        .await
        .unwrap();
    let version = pgstrata::lint::server_version(&pg).await.unwrap();
    let errors = |sql: &'static str| {
        let dir = package_dir(
            "example.com/scoped",
            "scoped",
            "",
            &[("0001_index.sql", sql)],
        );
        let app = project(dir.path());
        let pg = &pg;
        let version = version.clone();
        async move {
            let plan = pgstrata::plan(pg, &app, &pgstrata::PlanOptions::default())
                .await
                .unwrap();
            let report = pgstrata::lint::lint_plan_at(pg, &app, &plan, Some(&version))
                .await
                .unwrap();
            format!("{:?}", report)
                .matches("require-concurrent-index-creation")
                .count()
        }
    };
    // Unqualified: other_2's table holds rows, so the index build would lock a table in use.
    assert!(errors("CREATE INDEX memo_u_a ON memo_u (a);\n").await > 0);
    // Qualified with an empty table's schema: nothing to wait for.
    assert_eq!(
        errors("CREATE INDEX memo_u_a ON other_1.memo_u (a);\n").await,
        0
    );
    // Qualified with the schema whose table holds rows.
    assert!(errors("CREATE INDEX memo_u_a ON other_2.memo_u (a);\n").await > 0);
}
