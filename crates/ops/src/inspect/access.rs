//! What the inspecting role may see, probed once in one query: server version, superuser, `pg_monitor` /
//! `pg_read_all_stats`, and which of the tables the Strata and MiniPaaS checks read exist and are readable.

use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::types::Type;

use crate::error::{Error, Result};

/// Tables the `strata` check reads.
pub(crate) const STRATA_TABLES: &[&str] = &[
    "strata.package",
    "strata.migration",
    "strata.run",
    "strata.managed_object",
];

/// The role's standing, and what is installed.
#[derive(Debug, Clone, Serialize)]
pub struct Access {
    /// `current_database()`.
    pub database: String,
    /// `current_user`.
    pub user: String,
    /// `server_version`.
    pub server_version: String,
    /// `server_version_num` (e.g. 150018).
    pub server_version_num: i32,
    /// The role is a superuser.
    pub superuser: bool,
    /// Member of `pg_monitor`.
    pub pg_monitor: bool,
    /// Member of `pg_read_all_stats` (part of `pg_monitor`): sees every session's query and statistics.
    pub read_all_stats: bool,
    /// The server is a standby.
    pub in_recovery: bool,
    /// Schema of the `pg_stat_statements` extension, when it is installed in this database.
    pub pg_stat_statements_schema: Option<String>,
    /// `pg_stat_statements` is loaded (`shared_preload_libraries`), so its view can be read.
    pub pg_stat_statements_loaded: bool,
    /// Of the tables the checks read (schema.name): those that exist.
    #[serde(skip)]
    pub(crate) existing: Vec<String>,
    /// … and those the role may read.
    #[serde(skip)]
    pub(crate) readable: Vec<String>,
}

/// Whether a set of tables can be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tables {
    /// None of them exists.
    Absent,
    /// Some exist but are not readable, or some are missing (listed).
    Unreadable(Vec<String>),
    /// All exist and are readable.
    Readable,
}

impl Access {
    /// The major version (14, 15, …).
    pub fn major(&self) -> i32 {
        self.server_version_num / 10_000
    }

    pub(crate) fn tables(&self, names: &[&str]) -> Tables {
        if !names.iter().any(|n| self.existing.iter().any(|e| e == n)) {
            return Tables::Absent;
        }
        let blocked: Vec<String> = names
            .iter()
            .filter(|n| !self.readable.iter().any(|r| r == *n))
            .map(|n| n.to_string())
            .collect();
        if blocked.is_empty() {
            Tables::Readable
        } else {
            Tables::Unreadable(blocked)
        }
    }
}

const PROBE_SQL: &str = "
WITH wanted(name) AS (SELECT unnest($1::text[])),
rel AS (
    SELECT w.name, c.oid, n.oid AS nsp
      FROM wanted w
      LEFT JOIN pg_catalog.pg_namespace n ON n.nspname = split_part(w.name, '.', 1)
      LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid AND c.relname = split_part(w.name, '.', 2)
)
SELECT current_setting('server_version_num')::int4,
       current_setting('server_version'),
       current_database()::text,
       current_user::text,
       coalesce((SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname = current_user), false),
       pg_catalog.pg_has_role('pg_monitor', 'MEMBER'),
       pg_catalog.pg_has_role('pg_read_all_stats', 'MEMBER'),
       pg_catalog.pg_is_in_recovery(),
       ARRAY(SELECT name FROM rel WHERE oid IS NOT NULL)::text[],
       ARRAY(SELECT name FROM rel
              WHERE oid IS NOT NULL
                AND pg_catalog.has_schema_privilege(nsp, 'USAGE')
                AND pg_catalog.has_table_privilege(oid, 'SELECT'))::text[],
       (SELECT n.nspname::text FROM pg_catalog.pg_extension e
          JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace
         WHERE e.extname = 'pg_stat_statements'),
       EXISTS (SELECT 1 FROM pg_catalog.pg_settings WHERE name = 'pg_stat_statements.max')";

pub(crate) async fn probe(client: &Client) -> Result<Access> {
    let wanted: Vec<&str> = STRATA_TABLES
        .iter()
        .chain(super::checks::minipaas::TABLES)
        .copied()
        .collect();
    let row = client
        .query_typed(PROBE_SQL, &[(&wanted, Type::TEXT_ARRAY)])
        .await
        .map_err(Error::db(
            "reading the server version and the role's privileges",
        ))?
        .into_iter()
        .next()
        .ok_or_else(|| Error::usage("the privilege probe returned no row", None))?;
    let get = |e: tokio_postgres::Error| Error::Database {
        context: "reading the privilege probe".into(),
        source: e,
    };
    Ok(Access {
        server_version_num: row.try_get(0).map_err(get)?,
        server_version: row.try_get(1).map_err(get)?,
        database: row.try_get(2).map_err(get)?,
        user: row.try_get(3).map_err(get)?,
        superuser: row.try_get(4).map_err(get)?,
        pg_monitor: row.try_get(5).map_err(get)?,
        read_all_stats: row.try_get(6).map_err(get)?,
        in_recovery: row.try_get(7).map_err(get)?,
        existing: row.try_get(8).map_err(get)?,
        readable: row.try_get(9).map_err(get)?,
        pg_stat_statements_schema: row.try_get(10).map_err(get)?,
        pg_stat_statements_loaded: row.try_get(11).map_err(get)?,
    })
}
