//! Integration tests: the real `strata` binary against a real PostgreSQL (pgtest's throwaway cluster, or
//! `PGTEST_URL`), each test in a fresh database, packages written into temporary directories.
//!
//! Snapshots (insta) live in `tests/snapshots`; review changes with `cargo insta review`, or run once with
//! `INSTA_UPDATE=always` and read the diff.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[macro_use]
mod support;

mod boundary;
mod bundle;
mod concurrency;
mod connection;
mod console;
mod declare;
mod deploy;
mod dev;
mod failures;
mod first_hour;
mod fleet;
mod hostile;
mod interop;
mod interrupted;
mod json;
mod lint;
mod managed;
mod rollback;
mod scaffold;
mod sections;
mod source_errors;
mod versions;
