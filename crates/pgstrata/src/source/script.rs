//! SQL text cut into sections (a migration's up or down part, a repeatable script), and the names and checksums
//! derived from files.

use std::sync::Arc;

use pgstrata_sql::migration::{self, Section};
use sha2::{Digest, Sha256};

use crate::error::{Result, SourceError};

/// SQL text cut into sections, each run as a unit (one transaction, or statement by statement for
/// no-transaction sections).
#[derive(Debug, Clone)]
pub struct Script {
    pub(crate) origin: String,
    pub(crate) text: Arc<str>,
    pub(crate) sections: Vec<Section>,
}

impl Script {
    /// A script from a text and its sections (ranges must point into `text`).
    pub(crate) fn new(origin: String, text: Arc<str>, sections: Vec<Section>) -> Script {
        Script {
            origin,
            text,
            sections,
        }
    }

    /// A stored down script read back from the database.
    pub(crate) fn stored_down(origin: String, text: &str) -> Result<Script> {
        let text: Arc<str> = Arc::from(text);
        let sections = migration::parse_down(&text).map_err(|e| {
            SourceError::new(
                "strata::stored_down",
                &origin,
                text.to_string(),
                Some(e.range),
                e.message,
            )
        })?;
        Ok(Script::new(origin, text, sections))
    }

    /// Where the text came from (a file path, or a description of stored SQL), for messages.
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The whole text the section ranges point into.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The sections to run, in order.
    pub fn sections(&self) -> &[Section] {
        &self.sections
    }

    /// True if any section must run outside a transaction.
    pub fn has_no_transaction_section(&self) -> bool {
        self.sections.iter().any(|s| s.no_transaction)
    }
}

/// The identity of a migration file: base name without `.sql`, and without a trailing `.up`.
pub fn migration_name(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let stem = base.strip_suffix(".sql").unwrap_or(base);
    stem.strip_suffix(".up").unwrap_or(stem).to_string()
}

/// `sha256:<hex>` of a text after normalisation.
pub fn checksum(text: &str) -> String {
    let normal = pgstrata_sql::normalize(text);
    format!("sha256:{}", hex::encode(Sha256::digest(normal.as_bytes())))
}

/// The down file of a migration file: `dir/x.sql` → `dir/x.down.sql`; `dir/x.up.sql` → `dir/x.down.sql`.
pub(crate) fn down_sibling(rel: &str) -> String {
    let stem = rel.strip_suffix(".sql").unwrap_or(rel);
    let stem = stem.strip_suffix(".up").unwrap_or(stem);
    format!("{stem}.down.sql")
}
