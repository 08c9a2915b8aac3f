//! libpq-compatible connection settings for [`tokio_postgres`], with TLS over rustls.
//!
//! - [`ConnectOptions`] reads settings the way `psql` does: libpq URLs and `key=value`
//!   strings ([`ConnectOptions::parse`]), PG* environment variables, the product's
//!   `POSTGRES_*` variables, `~/.pgpass`, and libpq's defaults ([`ConnectOptions::resolve`],
//!   [`ConnectOptions::from_env`]).
//! - [`SslMode`] follows libpq, including `verify-ca` and `verify-full`, which
//!   tokio-postgres alone does not offer.
//! - [`ConnectOptions::connect`] returns a [`Connected`]: the client plus channels
//!   for notices and `LISTEN`/`NOTIFY` notifications.
//! - [`ConnectOptions::wait_until_ready`] waits for a server to come up.
//!
//! Passwords never appear in [`Display`](std::fmt::Display) or [`Debug`] output, nor in
//! [`Error`] messages.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgstrata_conn::Error> {
//! use pgstrata_conn::ConnectOptions;
//!
//! let url = std::env::var("DATABASE_URL").ok();
//! let opts = ConnectOptions::from_env(url.as_deref())?;
//! let conn = opts.connect().await?;
//! # drop(conn);
//! # Ok(())
//! # }
//! ```

#![deny(missing_docs)]

mod connect;
mod conninfo;
mod error;
mod options;
mod pgpass;
mod tls;

pub use connect::Connected;
pub use conninfo::SslMode;
pub use error::Error;
pub use options::ConnectOptions;
