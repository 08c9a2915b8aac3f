//! What a deploy into one tenant schema may change: only its tenant packages (`NAME@SCHEMA`).
//!
//! Such a deploy holds the database's deploy lock shared (`crate::db::lock`), so deploys into other schemas run at
//! the same time: it must leave alone what they share (Strata's own tables, the packages the tenant package uses),
//! which only a deploy of the database's packages, holding that lock alone, may change.

use crate::decide::plan::Plan;
use crate::decide::repeatable::RepeatableState;
use crate::error::{Error, Result};
use crate::report::MigrationId;
use crate::source::package::Package;

/// Refuse a plan that would change a package other than the tenant packages of `schema`.
pub(crate) fn check_plan(schema: &str, packages: &[Package], plan: &Plan) -> Result<()> {
    let shared = |name: &str| {
        packages
            .iter()
            .find(|p| p.name() == name)
            .is_none_or(|p| p.instance_of().is_none())
    };
    let mut changes: Vec<String> = plan
        .steps
        .iter()
        .filter(|s| shared(&s.package))
        .map(|s| MigrationId::new(&s.package, &s.name).to_string())
        .collect();
    changes.extend(
        plan.repeatables
            .iter()
            .filter(|r| r.state != RepeatableState::Applied && shared(&r.package))
            .map(|r| format!("{}:{} (repeatable)", r.package, r.name)),
    );
    changes.extend(
        plan.accepted_changes
            .iter()
            .filter(|(p, _)| shared(p))
            .map(|(p, n)| format!("{} (accepted change)", MigrationId::new(p, n))),
    );
    if changes.is_empty() {
        return Ok(());
    }
    Err(Error::refused(
        format!(
            "a deploy into tenant schema `{schema}` may only change its own package, but the database's packages \
             have pending changes: {}",
            changes.join(", ")
        ),
        "deploy the database's packages first (`strata up` without --tenant-schemas); `strata up \
         --tenant-schemas` does so before deploying into the tenant schemas",
    ))
}
