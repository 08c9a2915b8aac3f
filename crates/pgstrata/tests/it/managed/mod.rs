//! Managed code, SQL tests and package roles against a real PostgreSQL (pgtest).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod drift;
mod kinds;
mod objects;
mod overloads;
mod pgpkg;
mod roles;
mod source_errors;
mod sql_tests;
mod support;
