//! pgstrata-fleet against a real PostgreSQL (pgtest: one throwaway cluster for this test binary, many databases on
//! it): hundreds of databases with one failing on its data, resume, a target that never answers, canaries and the
//! failure policy, and hundreds of tenant schemas.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod citus;
mod databases;
mod policy;
mod support;
mod tenants;
