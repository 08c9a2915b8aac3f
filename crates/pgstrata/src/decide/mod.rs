//! Deciding what to do, before anything changes: the plan, which repeatables and which managed objects must run,
//! the dependency order of managed code, the linter, guard-rails and the lock report.

pub mod assess;
pub mod code;
pub mod graph;
pub mod guard;
pub mod hazards;
pub mod lint;
pub(crate) mod lint_memo;
pub mod lock_report;
pub mod plan;
pub mod repeatable;
pub(crate) mod segments;
pub(crate) mod tenant;
