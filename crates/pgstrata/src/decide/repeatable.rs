//! Which repeatable scripts run again: each package's repeatables compared with `strata.repeatable`.

use crate::error::{Error, Result};
use crate::source::package::Package;

/// Whether a repeatable is up to date in the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RepeatableState {
    /// Applied with the current text.
    Applied,
    /// Never applied.
    Pending,
    /// Applied, but the text changed since: it runs again.
    Changed,
}

/// One repeatable's line in a plan or status.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RepeatableStatus {
    /// Package.
    pub package: String,
    /// Repeatable name.
    pub name: String,
    /// Path relative to the package root.
    pub path: String,
    /// State.
    pub state: RepeatableState,
    /// Checksum of the file.
    pub checksum: String,
    /// Checksum recorded when last applied.
    pub applied_checksum: Option<String>,
    /// Runs outside a transaction.
    pub no_transaction: bool,
}

/// Compare every package's repeatables with `strata.repeatable` (all pending when the table does not exist yet).
pub(crate) async fn statuses(
    client: &tokio_postgres::Client,
    packages: &[Package],
) -> Result<Vec<RepeatableStatus>> {
    if packages.iter().all(|p| p.repeatables().is_empty()) {
        return Ok(Vec::new());
    }
    let exists: bool = client
        .query_one("SELECT to_regclass('strata.repeatable') IS NOT NULL", &[])
        .await
        .map_err(Error::db("checking for strata.repeatable"))?
        .get(0);
    let applied: std::collections::HashMap<(String, String), String> = if exists {
        client
            .query("SELECT package, name, checksum FROM strata.repeatable", &[])
            .await
            .map_err(Error::db("reading strata.repeatable"))?
            .iter()
            .map(|r| ((r.get(0), r.get(1)), r.get(2)))
            .collect()
    } else {
        Default::default()
    };
    let mut out = Vec::new();
    for p in packages {
        for r in p.repeatables() {
            let applied_checksum = applied
                .get(&(p.name().to_string(), r.name().to_string()))
                .cloned();
            let state = match &applied_checksum {
                Some(c) if c == r.checksum() => RepeatableState::Applied,
                Some(_) => RepeatableState::Changed,
                None => RepeatableState::Pending,
            };
            out.push(RepeatableStatus {
                package: p.name().to_string(),
                name: r.name().to_string(),
                path: r.path().to_string(),
                state,
                checksum: r.checksum().to_string(),
                applied_checksum,
                no_transaction: r.script().has_no_transaction_section(),
            });
        }
    }
    Ok(out)
}
