//! Aggregates, operators and casts as managed code (pgpkg allows casts in its managed files; its assertion
//! operators live in migrations only because it cannot manage them). Types stay in migrations, as in pgpkg.

use pgstrata::managed::ObjectState;
use pgstrata::{CodeKind, Error};

use crate::managed::support::{Db, Pkg, actions};

const CODE: &str = "\
-- Each statement comes before what it needs: the install order comes from the references.
CREATE VIEW k.checks AS SELECT 1 OPERATOR(k.=?) 1 AS same, k.total(n) AS total FROM (VALUES (1), (2)) AS x(n);
CREATE OPERATOR k.=? (function = k.int_eq, leftarg = integer, rightarg = integer);
CREATE FUNCTION k.int_eq(a integer, b integer) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT a = b';
CREATE AGGREGATE k.total(integer) (sfunc = k.add_step, stype = integer, initcond = '0');
CREATE FUNCTION k.add_step(s integer, v integer) RETURNS integer LANGUAGE sql IMMUTABLE AS 'SELECT s + v';
CREATE CAST (text AS k.amount) WITH FUNCTION k.amount_of(text);
CREATE FUNCTION k.amount_of(t text) RETURNS k.amount LANGUAGE sql IMMUTABLE AS $$ SELECT ROW(t::numeric)::k.amount $$;
";

fn pkg() -> Pkg {
    let pkg = Pkg::new("acme/kinds", "k", "", &["0001.sql"]);
    pkg.write(
        "migrations/0001.sql",
        "CREATE TYPE amount AS (value numeric);\n",
    );
    pkg.write("code.sql", CODE);
    pkg
}

#[tokio::test]
async fn aggregates_operators_and_casts_are_managed() {
    let pkg = pkg();
    let mut db = Db::new().await;
    let report = db.up(&pkg.project()).await.unwrap();
    assert!(report.code.retried.is_empty(), "{:?}", report.code.retried);
    let (same, total): (bool, i32) = {
        let row = db
            .sql
            .query_one("SELECT same, total FROM k.checks", &[])
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((same, total), (true, 3));
    let amount: String = db.value("SELECT ('5'::text)::k.amount::text").await;
    assert_eq!(amount, "(5)");
    let recorded = db.recorded().await;
    for expected in [
        ("aggregate", "k.total(integer)"),
        ("cast", "(text AS k.amount)"),
        ("operator", "k.=?(integer, integer)"),
    ] {
        assert!(
            recorded.contains(&(expected.0.to_string(), expected.1.to_string())),
            "{recorded:?}"
        );
    }
    // Nothing changed: nothing runs.
    let before = db.catalog("k").await;
    assert!(db.up(&pkg.project()).await.unwrap().code.changes.is_empty());
    assert_eq!(db.catalog("k").await, before);

    // An operator has no OR REPLACE: a changed one is dropped (with the view using it) and created again; an
    // aggregate is replaced in place.
    pkg.edit(
        "code.sql",
        "rightarg = integer)",
        "rightarg = integer, commutator = OPERATOR(k.=?))",
    );
    pkg.edit("code.sql", "initcond = '0'", "initcond = '10'");
    let aggregate_oid = db.oid("k.total(integer)").await;
    let report = db.up(&pkg.project()).await.unwrap();
    let acts = actions(&report);
    assert!(
        acts.contains(&"dropped operator k.=?(integer, integer)".to_string())
            && acts.contains(&"recreated operator k.=?(integer, integer)".to_string())
            && acts.contains(&"recreated view k.checks".to_string())
            && acts.contains(&"replaced aggregate k.total(integer)".to_string()),
        "{acts:?}"
    );
    assert_eq!(db.oid("k.total(integer)").await, aggregate_oid);
    let total: i32 = db.value("SELECT total FROM k.checks").await;
    assert_eq!(total, 13);
    let commutator: bool = db
        .value("SELECT oprcom <> 0 FROM pg_operator WHERE oprname = '=?'")
        .await;
    assert!(commutator);

    // A cast removed from the source is dropped; `status` shows it first.
    pkg.edit(
        "code.sql",
        "CREATE CAST (text AS k.amount) WITH FUNCTION k.amount_of(text);\n",
        "",
    );
    let status = pgstrata::managed::status(&db.db, &pkg.project())
        .await
        .unwrap();
    let removed: Vec<(CodeKind, &str)> = status[0]
        .objects
        .iter()
        .filter(|o| o.state == ObjectState::Removed)
        .map(|o| (o.kind, o.name.as_str()))
        .collect();
    assert_eq!(removed, [(CodeKind::Cast, "(text AS k.amount)")]);
    db.up(&pkg.project()).await.unwrap();
    let casts: i64 = db
        .value("SELECT count(*) FROM pg_cast WHERE casttarget = 'k.amount'::regtype")
        .await;
    assert_eq!(casts, 0);
}

#[tokio::test]
async fn types_stay_in_migrations() {
    let pkg = Pkg::new("acme/types", "ty", "", &[]);
    pkg.write(
        "types.sql",
        "CREATE TYPE ty.mood AS ENUM ('sad', 'happy');\n",
    );
    let Err(Error::Source(e)) = pkg.load() else {
        panic!("CREATE TYPE is refused in managed code");
    };
    assert_eq!(e.message, "CREATE TYPE is not managed code");
    let help = e.help.clone().unwrap_or_default();
    assert!(
        help.contains("a type used by a table column cannot be dropped and re-created"),
        "{help}"
    );
}

/// The psql script of `strata export` installs and records them as `strata up` does; `up` afterwards has nothing to
/// do.
#[tokio::test]
async fn the_psql_script_installs_them_too() {
    let pkg = pkg();
    let db = Db::new().await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("deploy.sql");
    std::fs::write(&script, pgstrata::psql_script(&pkg.project()).unwrap()).unwrap();
    let env: Vec<(String, String)> = db.env();
    let out = std::process::Command::new(pgtest::tool("psql"))
        .args(["-X", "-v", "ON_ERROR_STOP=1", "-f"])
        .arg(&script)
        .envs(env)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let same: bool = db.value("SELECT same FROM k.checks").await;
    assert!(same);
    let mut recorded: Vec<String> = db.recorded().await.into_iter().map(|(k, _)| k).collect();
    recorded.sort();
    recorded.dedup();
    assert_eq!(
        recorded,
        ["aggregate", "cast", "function", "operator", "view"]
    );
    let mut db = db;
    let report = db.up(&pkg.project()).await.unwrap();
    assert!(report.code.changes.is_empty(), "{:?}", report.code.changes);
}
