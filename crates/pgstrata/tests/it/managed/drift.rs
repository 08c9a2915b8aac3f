//! Managed objects changed or dropped outside Strata: reported by `status`, restored by `up`.

use pgstrata::managed::ObjectState;

use crate::managed::support::{Db, Pkg, actions};

fn pkg() -> Pkg {
    let pkg = Pkg::new("acme/drift", "drift", "", &["0001.sql"]);
    pkg.write("migrations/0001.sql", "CREATE TABLE t (n int);\n");
    pkg.write(
        "code.sql",
        "CREATE FUNCTION drift.double(n int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT n * 2';\n\
         CREATE VIEW drift.doubled AS SELECT drift.double(n) AS d FROM drift.t;\n\
         COMMENT ON VIEW drift.doubled IS 'twice n';\n",
    );
    pkg
}

async fn states(db: &Db, pkg: &Pkg) -> Vec<(String, ObjectState)> {
    let status = pgstrata::managed::status(&db.db, &pkg.project())
        .await
        .unwrap();
    status[0]
        .objects
        .iter()
        .map(|o| (o.name.clone(), o.state))
        .collect()
}

#[tokio::test]
async fn status_reports_drift_and_up_restores() {
    let pkg = pkg();
    let mut db = Db::new().await;
    let fresh = states(&db, &pkg).await;
    assert!(
        fresh.iter().all(|(_, s)| *s == ObjectState::New),
        "{fresh:?}"
    );
    db.up(&pkg.project()).await.unwrap();
    assert!(
        states(&db, &pkg)
            .await
            .iter()
            .all(|(_, s)| *s == ObjectState::InSync)
    );

    // Grants move the catalog row but change no definition: still in sync, and the next deploy does nothing.
    db.exec("GRANT EXECUTE ON FUNCTION drift.double(int) TO PUBLIC")
        .await;
    assert!(
        states(&db, &pkg)
            .await
            .iter()
            .all(|(_, s)| *s == ObjectState::InSync)
    );
    assert!(db.up(&pkg.project()).await.unwrap().code.changes.is_empty());

    // Changed by hand, a comment changed, a view dropped by hand.
    db.exec(
        "CREATE OR REPLACE FUNCTION drift.double(n int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT n * 3';
         COMMENT ON VIEW drift.doubled IS 'thrice';",
    )
    .await;
    let s = states(&db, &pkg).await;
    assert_eq!(
        s,
        [
            ("drift.double(n integer)".to_string(), ObjectState::Drifted),
            ("drift.doubled".to_string(), ObjectState::InSync),
            ("view drift.doubled".to_string(), ObjectState::Drifted),
        ]
    );
    let report = db.up(&pkg.project()).await.unwrap();
    let mut acts = actions(&report);
    acts.sort();
    assert_eq!(
        acts,
        [
            "restored comment view drift.doubled",
            "restored function drift.double(n integer)"
        ]
    );
    let six: i32 = db.value("SELECT drift.double(3)").await;
    assert_eq!(six, 6);

    db.exec("DROP VIEW drift.doubled").await;
    let s = states(&db, &pkg).await;
    assert_eq!(s[1], ("drift.doubled".to_string(), ObjectState::Missing));
    let report = db.up(&pkg.project()).await.unwrap();
    let mut acts = actions(&report);
    acts.sort();
    assert_eq!(
        acts,
        [
            "restored comment view drift.doubled",
            "restored view drift.doubled"
        ]
    );
    assert!(
        states(&db, &pkg)
            .await
            .iter()
            .all(|(_, s)| *s == ObjectState::InSync)
    );
}

#[tokio::test]
async fn status_shows_pending_source_changes() {
    let pkg = pkg();
    let mut db = Db::new().await;
    db.up(&pkg.project()).await.unwrap();
    pkg.edit("code.sql", "'SELECT n * 2'", "'SELECT n + n'");
    pkg.edit(
        "code.sql",
        "COMMENT ON VIEW drift.doubled IS 'twice n';",
        "",
    );
    pkg.write(
        "more.sql",
        "CREATE FUNCTION drift.half(n int) RETURNS int LANGUAGE sql AS 'SELECT n / 2';\n",
    );
    let s = states(&db, &pkg).await;
    assert_eq!(
        s,
        [
            ("drift.double(n integer)".to_string(), ObjectState::Changed),
            ("drift.doubled".to_string(), ObjectState::InSync),
            ("drift.half".to_string(), ObjectState::New),
            ("view drift.doubled".to_string(), ObjectState::Removed),
        ]
    );
}
