//! Reading the history one page at a time (what `strata console` shows): runs filtered by package and outcome, a
//! run with where it came from, and the migrations it applied with their stored SQL.

use pgstrata::history::{self, RunFilter};
use pgstrata::{RunOutcome, TestMode, UpOptions};

use crate::library::support::{connect, project, write_package};

/// `strata up` of the package in `dir`, without its tests.
async fn deploy(
    pg: &mut pgstrata::Database,
    dir: &std::path::Path,
) -> pgstrata::Result<pgstrata::UpReport> {
    let options = UpOptions {
        tests: TestMode::Skip,
        ..Default::default()
    };
    pgstrata::up(pg, &project(dir), &options, &mut pgstrata::Quiet).await
}

/// The one value of a one-row query.
async fn value<T: for<'a> tokio_postgres::types::FromSql<'a>>(
    pg: &pgstrata::Database,
    sql: &str,
) -> T {
    pg.client().query_one(sql, &[]).await.unwrap().get(0)
}

#[tokio::test]
async fn runs_page_filter_and_show_their_migrations() {
    let db = pgtest::TestDb::new().await;
    let mut pg = connect(&db).await;
    // Nothing recorded yet: empty pages, not errors.
    let empty = history::run_page(
        pg.client(),
        &RunFilter {
            limit: 10,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!((empty.runs.len(), empty.total), (0, 0));
    assert!(history::run(pg.client(), 1).await.unwrap().is_none());

    let dir = tempfile::tempdir().unwrap();
    let one = [(
        "001_a.sql",
        "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
    )];
    write_package(dir.path(), "example.com/hist", "hist", "", &one);
    deploy(&mut pg, dir.path()).await.unwrap();
    let two = [
        one[0],
        ("002_b.sql", "-- migrate:up\nSELECT * FROM nowhere;\n"),
    ];
    write_package(dir.path(), "example.com/hist", "hist", "", &two);
    assert!(deploy(&mut pg, dir.path()).await.is_err());

    let all = history::run_page(
        pg.client(),
        &RunFilter {
            limit: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(all.runs.len(), 1, "one per page");
    assert!(all.total >= 2);
    assert_eq!(all.runs[0].outcome, RunOutcome::Failed, "newest first");
    let second = history::run_page(
        pg.client(),
        &RunFilter {
            limit: 1,
            offset: 1,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(second.runs[0].id < all.runs[0].id);

    let failed = RunFilter {
        outcome: Some(RunOutcome::Failed),
        limit: 10,
        ..Default::default()
    };
    let failed = history::run_page(pg.client(), &failed).await.unwrap();
    assert_eq!(failed.total, 1);
    assert!(
        failed.runs[0]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("002_b.sql")),
        "{:?}",
        failed.runs[0].error
    );
    let by_pkg = RunFilter {
        package: Some("example.com/hist".into()),
        outcome: Some(RunOutcome::Success),
        limit: 10,
        ..Default::default()
    };
    let by_pkg = history::run_page(pg.client(), &by_pkg).await.unwrap();
    assert_eq!(by_pkg.total, 1);
    let other = RunFilter {
        package: Some("example.com/none".into()),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        history::run_page(pg.client(), &other).await.unwrap().total,
        0
    );

    let id = by_pkg.runs[0].id;
    let run = history::run(pg.client(), id)
        .await
        .unwrap()
        .expect("the run");
    assert_eq!(run.run.id, id);
    assert!(!run.strata_version.is_empty());
    let migrations = history::run_migrations(pg.client(), id).await.unwrap();
    let ours: Vec<_> = migrations
        .iter()
        .filter(|m| m.package == "example.com/hist")
        .collect();
    assert_eq!(ours.len(), 1, "{migrations:?}");
    assert_eq!(
        (ours[0].name.as_str(), ours[0].action.as_str()),
        ("001_a", "apply")
    );
    assert!(
        ours[0]
            .up_sql
            .as_deref()
            .is_some_and(|s| s.contains("CREATE TABLE a"))
    );
    assert!(
        ours[0]
            .down_sql
            .as_deref()
            .is_some_and(|s| s.contains("DROP TABLE a"))
    );
    assert!(
        history::run_packages(pg.client())
            .await
            .unwrap()
            .contains(&"example.com/hist".to_string())
    );
}

/// An up text too big to send as a parameter is staged in pieces with COPY and recorded exactly: backslashes, tabs
/// and characters cut across pieces included, next to a small migration of the same deploy, and a down that then
/// works from what was stored.
#[tokio::test]
async fn a_big_up_text_is_recorded_exactly() {
    let db = pgtest::TestDb::new().await;
    let mut pg = connect(&db).await;
    let dir = tempfile::tempdir().unwrap();
    // 6 MB of comment (cheap for the server) with the characters COPY's text format escapes, and a multi-byte one
    // at every offset modulo 3, so that some piece boundary falls inside it.
    let mut big = String::from("CREATE TABLE big (v text);\n");
    let mut i = 0;
    while big.len() < 6 << 20 {
        let pad = "x".repeat(i % 3);
        big.push_str(&format!(
            "--{pad} \\ back\tslash é ünïcödé \\n not a newline\n"
        ));
        i += 1;
    }
    big.push_str("\nINSERT INTO big VALUES (E'a\\tb');\n");
    let files = [
        ("001_small.sql", "CREATE TABLE small (id int);\n"),
        ("002_big.sql", big.as_str()),
    ];
    write_package(dir.path(), "example.com/big", "bigtext", "", &files);
    deploy(&mut pg, dir.path()).await.unwrap();
    let stored: String = value(
        &pg,
        "SELECT up_sql FROM strata.migration WHERE name = '002_big'",
    )
    .await;
    assert_eq!(stored.len(), big.len());
    assert!(stored == big, "the stored up text differs from the file");
    let small: String = value(
        &pg,
        "SELECT up_sql FROM strata.migration WHERE name = '001_small'",
    )
    .await;
    assert_eq!(small, "CREATE TABLE small (id int);\n");
    // The staging table is left empty for the next record of the session.
    let left: i64 = value(&pg, "SELECT count(*) FROM pg_temp.strata_staged_text").await;
    assert_eq!(left, 0);
}
