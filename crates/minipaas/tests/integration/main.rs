//! Integration tests of the MiniPaaS package and its Rust client, against a real PostgreSQL (pgtest).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod crash;
mod queue;
mod server_crash;
mod sql_package;
mod stream;
mod support;
mod worker;
