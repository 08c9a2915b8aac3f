//! Managed SQL routines whose bodies no longer compile: what a rollback or a migration broke underneath them
//! (`down` and `status` report them).

use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::error::{Error, Result};
use crate::report::code::{BrokenObject, CodeKind};

/// The installed `LANGUAGE sql` routines (string bodies) of `packages` (None: every package) whose bodies PostgreSQL's
/// validator now rejects: what a rollback or a migration broke underneath them (see [`BrokenObject`]).
///
/// Each body is validated as it was installed, with `search_path` starting at its package's schema. Runs outside a
/// transaction: every check is its own statement, sent together (pipelined), and a failing one affects no other.
pub(crate) async fn broken_routines(
    client: &Client,
    packages: Option<&[String]>,
) -> Result<Vec<BrokenObject>> {
    let exists: bool = client
        .query_one(
            "SELECT to_regclass('strata.managed_object') IS NOT NULL",
            &[],
        )
        .await
        .map_err(Error::db("looking for strata.managed_object"))?
        .get(0);
    if !exists {
        return Ok(Vec::new());
    }
    let rows = client
        .query(
            "SELECT m.object_oid, m.package, m.kind, m.identity, m.file, m.line, pk.schema_name
               FROM strata.managed_object m
               JOIN strata.package pk ON pk.name = m.package
               JOIN pg_catalog.pg_proc p ON p.oid = m.object_oid
              WHERE m.kind IN ('function', 'procedure')
                AND p.prolang = (SELECT oid FROM pg_catalog.pg_language WHERE lanname = 'sql')
                AND p.prosqlbody IS NULL
                AND ($1::text[] IS NULL OR m.package = ANY ($1))
              ORDER BY m.package, m.file, m.line",
            &[&packages],
        )
        .await
        .map_err(Error::db("listing managed SQL routines"))?;
    // The validator reads `check_function_bodies`; the path is set for this statement's transaction only.
    const VALIDATE: &str = "WITH path AS MATERIALIZED (
             SELECT pg_catalog.set_config('search_path',
                        pg_catalog.quote_ident($2::text) || ', ' || pg_catalog.current_setting('search_path'), true),
                    pg_catalog.set_config('check_function_bodies', 'on', true))
         SELECT pg_catalog.fmgr_sql_validator($1::oid) FROM path";
    let checks = rows.iter().map(|r| {
        let oid: u32 = r.get(0);
        let schema: String = r.get(6);
        async move { client.execute(VALIDATE, &[&oid, &schema]).await }
    });
    let results = futures_util::future::join_all(checks).await;
    let mut broken = Vec::new();
    for (row, result) in rows.iter().zip(results) {
        let Err(e) = result else { continue };
        let Some(db) = e.as_db_error() else {
            return Err(Error::Database {
                context: "validating managed SQL routines".into(),
                source: e,
            });
        };
        // Not allowed to run the validator (a read-only login): nothing is known about the body.
        if *db.code() == SqlState::INSUFFICIENT_PRIVILEGE {
            continue;
        }
        let line: i32 = row.get(5);
        broken.push(BrokenObject {
            package: row.get(1),
            kind: CodeKind::parse(row.get(2)).unwrap_or(CodeKind::Function),
            identity: row.get(3),
            file: row.get(4),
            line: u32::try_from(line).unwrap_or_default(),
            error: db.message().to_string(),
        });
    }
    Ok(broken)
}
