//! Throwaway local PostgreSQL clusters built from the system's server binaries.
//!
//! - [`PgBinaries`] finds `initdb`, `postgres` and friends (`$PG_BINDIR`, `pg_config --bindir`,
//!   `/usr/lib/postgresql/<N>/bin`).
//! - [`DevCluster`] is a persistent cluster in a directory for `strata dev`: daemonised with `pg_ctl`, so it
//!   outlives the command that started it.
//! - [`ChildCluster`] is a cluster owned by this process for tests and benchmarks: it lives in a temporary
//!   directory and dies with the process.
//!
//! Both listen only on a unix socket in a private directory (no TCP, so no port clashes or exposure), trust
//! local connections as the superuser `postgres`, and turn durability off for speed. `initdb` refuses to run as
//! root, so when we are root the server runs as the `postgres` OS user (or `nobody`) via `setuid` in the child;
//! no sudo is needed.
//!
//! Connection URLs look like `postgresql://postgres@/mydb?host=/tmp/pgstrata-x1y2/&port=54321`, which libpq
//! (psql, `DATABASE_URL`) and tokio-postgres accept.
#![deny(missing_docs)]

mod binaries;
mod child;
mod dev;
mod error;
mod os;

pub use binaries::PgBinaries;
pub use child::{ChildCluster, ChildClusterOptions};
pub use dev::{DevCluster, DevStatus};
pub use error::Error;
