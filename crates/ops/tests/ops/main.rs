//! `pgstrata-ops` against a real PostgreSQL (pgtest: one cluster per test process, a fresh database per test).
//! Every condition a check is about is created on purpose in the test that looks for it.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod support;

mod backup;
mod indexes;
mod minipaas;
mod privileges;
mod server_settings;
mod sessions;
mod strata;
mod tables;
