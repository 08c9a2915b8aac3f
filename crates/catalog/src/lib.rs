//! # pgstrata-catalog — read, compare and migrate PostgreSQL schemas
//!
//! The engine of Strata's declarative schema (`strata diff`, `strata generate`, `strata schema check`), with no
//! dependency on the rest of Strata, so other front ends (an inspector, a web console) can reuse the reader.
//!
//! - [`read`]: a database's catalog into a typed [`Catalog`], in **one** `REPEATABLE READ` snapshot with one query
//!   per object class (pipelined: a handful of round trips whatever the schema's size). Definitions are the
//!   server's own (`pg_get_*def`), read under an empty `search_path`, so every name in them is schema-qualified.
//! - [`diff`]: two catalogs into a [`Plan`]: the actions that turn the source into the target, ordered with **one
//!   dependency graph** (the catalogs' `pg_depend` plus structural rules: drops in reverse dependency order,
//!   creates and alters forward; a view over a column whose type changes is dropped and re-created around it).
//! - [`Plan::sections`] / [`Plan::script`] / [`migration`]: the SQL, as sections (some statements must run outside
//!   a transaction), a plain script, or a Strata migration file with its down part.
//! - [`apply`]: run sections against a database (used to prove a plan).
//!
//! What is present but not modelled (casts, operators, aggregates, …) is reported in [`Plan::unmodeled`], never
//! silently ignored. Objects of extensions are left out; extensions themselves are created, never dropped.
//! Owners and privileges are not compared.
//!
//! ```no_run
//! # async fn demo(a: &tokio_postgres::Client, b: &tokio_postgres::Client) -> Result<(), pgstrata_catalog::Error> {
//! use pgstrata_catalog::{DiffOptions, ReadOptions};
//! let source = pgstrata_catalog::read(a, &ReadOptions::default()).await?;
//! let target = pgstrata_catalog::read(b, &ReadOptions::default()).await?;
//! let up = pgstrata_catalog::diff(&source, &target, &DiffOptions::default())?;
//! let down = pgstrata_catalog::diff(&target, &source, &DiffOptions::default())?;
//! up.check_data_loss(false)?;
//! print!("{}", pgstrata_catalog::migration(&up, &down));
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod apply;
mod diff;
mod error;
mod ident;
mod model;
mod plan;
mod read;
mod render;

pub use apply::apply;
pub use diff::Renames;
pub use error::{Error, Result, describe};
pub use ident::{QName, quote_ident, quote_literal};
pub use model::*;
pub use plan::{
    Action, DiffOptions, Hazard, HazardKind, Phase, Plan, Section, Side, UnmodeledReport, Verb,
    diff,
};
pub use read::{ReadOptions, read};

/// A Strata migration file (dbmate sections) with `up` as its up part and `down` as its down part; sections that
/// must run outside a transaction are marked `transaction:false`.
///
/// ```
/// let empty = pgstrata_catalog::Plan { actions: vec![], notes: vec![], unmodeled: vec![], defers_function_bodies: false };
/// assert_eq!(pgstrata_catalog::migration(&empty, &empty), "-- migrate:up\n\n-- migrate:down\n");
/// ```
pub fn migration(up: &Plan, down: &Plan) -> String {
    let mut out = String::new();
    for (word, plan) in [("up", up), ("down", down)] {
        let sections = plan.sections();
        if sections.is_empty() {
            out.push_str(&format!("-- migrate:{word}\n\n"));
            continue;
        }
        for s in sections {
            out.push_str(&format!(
                "-- migrate:{word}{}\n",
                if s.no_transaction {
                    " transaction:false"
                } else {
                    ""
                }
            ));
            for st in &s.statements {
                out.push_str(st);
                out.push('\n');
            }
            out.push('\n');
        }
    }
    out.trim_end().to_string() + "\n"
}
