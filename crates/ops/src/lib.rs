//! # pgstrata-ops — operating a Strata database
//!
//! - [`inspect`]: the weekly checks (sizes, indexes, vacuum, wraparound, sessions and locks, replication,
//!   Strata's history, MiniPaaS queues and streams, top statements), each one read-only catalog query with a
//!   verdict from configurable thresholds. Returns typed, serialisable reports; front ends render them.
//! - [`backup`]: `pg_dump` / `pg_restore` of the server's own major version, with a manifest beside the archive
//!   (database, server version, Strata history, row counts, checksum) that `restore --verify` checks against.
//! - [`minipaas`]: MiniPaaS's queues, messages, streams and events one page at a time (for `strata console`).
//!
//! The library never prints.
#![deny(missing_docs)]

pub mod backup;
mod error;
pub mod inspect;
pub mod minipaas;

pub use error::{Error, Result, SettingsError};
