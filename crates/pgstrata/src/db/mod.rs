//! Talking to the database: the connection and running SQL text, the deploy session, Strata's history (the only
//! writer of the `strata` schema), catalog queries about managed objects, package roles.

pub(crate) mod boundary;
pub(crate) mod broken;
pub mod catalog;
pub mod exec;
pub mod history;
pub(crate) mod lock;
pub(crate) mod pg_versions;
pub(crate) mod relations;
pub(crate) mod role_privileges;
pub mod roles;
pub mod session;

/// This library's version, recorded with every applied migration.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
