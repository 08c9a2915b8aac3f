//! The library against a real PostgreSQL (pgtest): one test binary, so every test shares one throwaway cluster
//! (each test gets a fresh database).
//!
//! - `library`: load → plan → up → down as an application uses it;
//! - `managed`: managed code, SQL tests and package roles;
//! - `interop`: other tools' folders, adoption, export, schema dumps (with `psql`, `pg_dump` and real dbmate).

mod interop;
mod library;
mod managed;
