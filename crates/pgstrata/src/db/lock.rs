//! Which deploy lock a session holds: the whole database's, or one tenant schema's.
//!
//! A deploy of the database's packages holds [`STRATA_LOCK_KEY`] exclusively. A deploy into one tenant schema
//! (a package deployed under another schema, [`Package::in_schema`]) holds the same key *shared* plus an
//! exclusive lock of its own schema: deploys into different schemas run in parallel, two into the same schema
//! queue up, and none runs while the database's packages are being deployed (which may change Strata's own tables,
//! roles, or packages the tenants use). Schema locks use PostgreSQL's two-key advisory locks, a key space separate
//! from the one-key lock, with [`SCHEMA_LOCK_CLASS`] as the first key and `hashtext(schema)` as the second (two
//! schemas whose names hash alike only queue up behind each other).
//!
//! [`Package::in_schema`]: crate::Package::in_schema

use postgres_protocol::escape::escape_literal;
use tokio_postgres::types::{ToSql, Type};

use crate::db::session::STRATA_LOCK_KEY;
use crate::error::{Error, Result};
use crate::source::package::Package;

/// The first key of tenant schema locks ("STRA" in ASCII).
pub const SCHEMA_LOCK_CLASS: i32 = 0x5354_5241;

/// The deploy lock of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum LockScope {
    /// Every package of the database: [`STRATA_LOCK_KEY`], exclusive.
    Database,
    /// One tenant schema: [`STRATA_LOCK_KEY`] shared, and the schema's own lock.
    Schema(String),
}

impl LockScope {
    /// The scope of a deploy of `packages`: the schema their tenant packages are deployed into, if any.
    pub(crate) fn of(packages: &[Package]) -> Result<LockScope> {
        let mut schemas = packages
            .iter()
            .filter(|p| p.instance_of().is_some())
            .map(Package::schema);
        let Some(first) = schemas.next() else {
            return Ok(LockScope::Database);
        };
        if let Some(other) = schemas.find(|s| *s != first) {
            return Err(Error::usage(
                format!("one deploy goes into one tenant schema, not `{first}` and `{other}`"),
                None,
            ));
        }
        Ok(LockScope::Schema(first.to_string()))
    }

    /// The tenant schema, if the scope is one.
    pub(crate) fn schema(&self) -> Option<&str> {
        match self {
            LockScope::Database => None,
            LockScope::Schema(s) => Some(s),
        }
    }

    /// The parameters of the lock statements below: the database key, and the schema for a schema scope.
    pub(crate) fn params(&self) -> Vec<(&(dyn ToSql + Sync), Type)> {
        match self {
            LockScope::Database => vec![(&STRATA_LOCK_KEY, Type::INT8)],
            LockScope::Schema(s) => vec![(&STRATA_LOCK_KEY, Type::INT8), (s, Type::TEXT)],
        }
    }

    /// Try to take the lock for the transaction: one boolean (nothing is held after a rollback).
    pub(crate) fn try_transaction_sql(&self) -> String {
        match self {
            LockScope::Database => "SELECT pg_try_advisory_xact_lock($1)".to_string(),
            LockScope::Schema(_) => format!(
                "SELECT CASE WHEN pg_try_advisory_xact_lock_shared($1)
                             THEN pg_try_advisory_xact_lock({SCHEMA_LOCK_CLASS}, hashtext($2)) ELSE false END"
            ),
        }
    }

    /// Try to take the lock for the session, outside a transaction: one boolean; on false nothing is held.
    pub(crate) fn try_session_sql(&self) -> String {
        match self {
            LockScope::Database => "SELECT pg_try_advisory_lock($1)".to_string(),
            LockScope::Schema(_) => format!(
                "SELECT CASE WHEN NOT pg_try_advisory_lock_shared($1) THEN false
                             WHEN pg_try_advisory_lock({SCHEMA_LOCK_CLASS}, hashtext($2)) THEN true
                             ELSE NOT pg_advisory_unlock_shared($1) END"
            ),
        }
    }

    /// Take the lock for the session, waiting (the session already holds it for its transaction, so it never
    /// waits in practice).
    pub(crate) fn session_sql(&self) -> String {
        match self {
            LockScope::Database => "SELECT pg_advisory_lock($1)".to_string(),
            LockScope::Schema(_) => format!(
                "SELECT pg_advisory_lock_shared($1), pg_advisory_lock({SCHEMA_LOCK_CLASS}, hashtext($2))"
            ),
        }
    }

    /// Release the session lock (SQL text with the values inlined, for a batch).
    pub(crate) fn unlock_sql(&self) -> String {
        match self {
            LockScope::Database => format!("SELECT pg_advisory_unlock({STRATA_LOCK_KEY});"),
            LockScope::Schema(s) => format!(
                "SELECT pg_advisory_unlock_shared({STRATA_LOCK_KEY}), \
                 pg_advisory_unlock({SCHEMA_LOCK_CLASS}, hashtext({}));",
                escape_literal(s)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_lock_sql_names_both_keys() {
        let s = LockScope::Schema("it's".into());
        assert!(s.try_transaction_sql().contains("xact_lock_shared($1)"));
        assert!(s.unlock_sql().contains("hashtext('it''s')"));
        assert_eq!(s.params().len(), 2);
        assert_eq!(LockScope::Database.params().len(), 1);
        assert_eq!(s.schema(), Some("it's"));
        assert_eq!(LockScope::Database.schema(), None);
    }
}
