//! The library as an application uses it, against a real PostgreSQL (pgtest): load → plan → up → down, with
//! connections the application owns, progress events, structured errors, and plans computed without a server.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod embedding;
mod errors;
mod history;
mod lint_memo;
mod planning;
mod session;
mod support;
mod tenants;
