//! Interop tests: other tools' folders applied in place, adoption of their databases, export to their formats
//! and to a psql script, schema dumps. They need a PostgreSQL server (pgtest starts one), `psql` and `pg_dump`;
//! the comparisons with real dbmate need the dbmate binary (`.ci/run` installs it from npm; see
//! `support::dbmate`).

// Helpers outside #[test] functions panic on setup failures too: that is how a test reports them.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod adopt;
mod edge;
mod export;
mod generated;
mod layouts;
mod postgres_json;
mod support;
