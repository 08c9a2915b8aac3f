//! Overloaded functions: references are resolved by name and arguments, so an overload calling another one is an
//! order, not a missing object or a cycle.

use pgstrata::Error;

use crate::managed::support::{Db, Pkg};

#[tokio::test]
async fn a_sql_overload_calling_another_deploys() {
    let pkg = Pkg::new("acme/over", "over", "", &[]);
    // The caller comes first in the file: it needs the overload defined after it.
    pkg.write(
        "code.sql",
        "CREATE FUNCTION over.f(x integer) RETURNS text LANGUAGE sql AS $$ SELECT over.f(x::text) $$;\n\
         CREATE FUNCTION over.f(x text) RETURNS text LANGUAGE sql AS $$ SELECT 'got ' || x $$;\n\
         CREATE FUNCTION over.g(n integer) RETURNS text LANGUAGE sql BEGIN ATOMIC SELECT over.f(n, 'b'); END;\n\
         CREATE FUNCTION over.f(a integer, b text) RETURNS text LANGUAGE sql AS $$ SELECT over.f(a) || b $$;\n",
    );
    let mut db = Db::new().await;
    let report = db.up(&pkg.project()).await.unwrap();
    // No statement needed a retry: the order was right from the start.
    assert!(report.code.retried.is_empty(), "{:?}", report.code.retried);
    let v: String = db.value("SELECT over.g(1)").await;
    assert_eq!(v, "got 1b");
    let again = db.up(&pkg.project()).await.unwrap();
    assert!(again.code.changes.is_empty());
}

#[tokio::test]
async fn a_real_cycle_between_overloads_is_still_reported() {
    let pkg = Pkg::new("acme/cyc", "cyc", "", &[]);
    pkg.write(
        "code.sql",
        "CREATE FUNCTION cyc.f(x integer) RETURNS text LANGUAGE sql AS $$ SELECT cyc.f(x::text) $$;\n\
         CREATE FUNCTION cyc.f(x text) RETURNS text LANGUAGE sql AS $$ SELECT cyc.f(length(x)::integer) $$;\n",
    );
    let mut db = Db::new().await;
    let e = db.up(&pkg.project()).await.unwrap_err();
    let Error::Source(s) = &e else {
        panic!("expected the cycle, got {e:?}")
    };
    assert!(s.message.contains("in a cycle"), "{}", s.message);
    assert!(
        s.message.contains("function cyc.f (") && s.message.matches("function cyc.f").count() == 3,
        "{}",
        s.message
    );
}

#[tokio::test]
async fn a_missing_overload_is_left_to_the_catalog() {
    let pkg = Pkg::new("acme/miss", "miss", "", &["0001.sql"]);
    // f(text) exists only in the database (created by a migration): the source's f(integer) calls it.
    pkg.write(
        "migrations/0001.sql",
        "CREATE FUNCTION f(x text) RETURNS text LANGUAGE sql AS $$ SELECT upper(x) $$;\n",
    );
    pkg.write(
        "code.sql",
        "CREATE FUNCTION miss.f(x integer) RETURNS text LANGUAGE sql AS $$ SELECT miss.f(x::text) $$;\n",
    );
    let mut db = Db::new().await;
    db.up(&pkg.project()).await.unwrap();
    let v: String = db.value("SELECT miss.f(7)").await;
    assert_eq!(v, "7");
}
