//! # pgstrata-fleet — one deploy to many PostgreSQL databases or tenant schemas
//!
//! Built on the `pgstrata` library's public API: every target gets an ordinary [`pgstrata::up`] over its own
//! connection (the same TLS, timeouts, deploy lock and guard-rails as a single deploy), and this crate decides
//! which targets, in what order, how many at once, and what a failure does to the rest:
//!
//! - [`Targets`]: a targets file (`[[target]]` tables), a query against a control database, or the tenant schemas
//!   of one database; narrowed with [`Targets::select`] (`--only`, `--exclude`);
//! - [`up`]: canaries first, then the rest `jobs` at a time; `--on-failure stop|continue`, `--max-failures`,
//!   `--target-timeout`; each outcome recorded ([`StateStore`]: a control database or a local file) so a run can be
//!   resumed ([`up`] with `resume`), retrying only what did not succeed;
//! - [`status`]: where each target stands (pending, diverged, last run and its error).
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgstrata_fleet::Error> {
//! let project = pgstrata::Project::load(&["db/app"])?;
//! let targets = pgstrata_fleet::Targets::load("targets.toml".as_ref())?.select(&[], &["staging".into()])?;
//! let store = pgstrata_fleet::StateStore::Dir(".strata/fleet".into());
//! let opts = pgstrata_fleet::FleetOptions {
//!     on_failure: pgstrata_fleet::OnFailure::Continue,
//!     ..Default::default()
//! };
//! let report = pgstrata_fleet::up(&project, &targets, &opts, &store, None, &mut pgstrata_fleet::QuietFleet).await?;
//! for t in report.targets.iter().filter(|t| t.state.is_failure()) {
//!     eprintln!("{}: {}", t.target, t.error.as_ref().map_or("", |e| e.summary.as_str()));
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod deploy;
mod error;
mod report;
mod state;
mod status;
mod targets;

pub use deploy::{Canary, FleetOptions, OnFailure, default_jobs, up};
pub use error::{Error, Result};
pub use report::{
    Counts, FleetEvent, FleetObserver, FleetReport, QuietFleet, TargetError, TargetOutcome,
    TargetState,
};
pub use state::{StateStore, new_run_id};
pub use status::{LastRun, TargetHealth, TargetStatus, status};
pub use targets::{Source, Target, Targets};
