//! Repeatable scripts: Flyway's `R__*.sql`. A repeatable is re-run
//! whenever its text changes, after the versioned migrations of the run (see `crate::run::repeatable`).

use crate::source::script::{Script, checksum};

/// A script re-applied whenever its text changes.
#[derive(Debug, Clone)]
pub struct Repeatable {
    name: String,
    path: String,
    script: Script,
    checksum: String,
}

impl Repeatable {
    pub(crate) fn new(name: String, path: String, script: Script) -> Repeatable {
        let checksum = checksum(script.text());
        Repeatable {
            name,
            path,
            script,
            checksum,
        }
    }

    /// Its identity: the file's base name without `.sql` (`R__views`), or its path under `functions/`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path relative to the package root.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The script (normalised text and sections).
    pub fn script(&self) -> &Script {
        &self.script
    }

    /// `sha256:<hex>` of the normalised text.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }
}
