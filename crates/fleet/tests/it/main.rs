//! pgstrata-fleet against a real PostgreSQL (pgtest).
