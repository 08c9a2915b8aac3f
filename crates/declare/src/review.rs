//! What `strata plan` would say about a generated migration: lint findings (squawk's rules and Strata's, with the
//! package's `[lint]` settings) and the locks its statements take on existing relations.

use pgstrata::Package;
use pgstrata_sql::lint::{LintConfig, Linter, MigrationContext};
use pgstrata_sql::locks::RelationName;
use pgstrata_sql::migration::{self, Direction};
use serde::Serialize;

/// Findings and locks of a migration's up part.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Review {
    /// Lint findings.
    pub lint: Vec<LintNote>,
    /// Statements that lock, rewrite or scan an existing relation.
    pub locks: Vec<LockNote>,
}

/// A lint finding.
#[derive(Debug, Clone, Serialize)]
pub struct LintNote {
    /// The rule.
    pub rule: String,
    /// `warning` or `error`.
    pub severity: String,
    /// What it says.
    pub message: String,
    /// 1-based line in the migration.
    pub line: u32,
    /// How to do it safely.
    pub help: Option<String>,
}

/// A statement's locks.
#[derive(Debug, Clone, Serialize)]
pub struct LockNote {
    /// 1-based line in the migration.
    pub line: u32,
    /// What the statement does (`ALTER TABLE … ALTER COLUMN … SET TYPE`).
    pub command: String,
    /// `ACCESS EXCLUSIVE on app.t`, strongest first.
    pub locks: Vec<String>,
    /// Why it rewrites the table, if it does.
    pub rewrite: Option<String>,
    /// Why it reads the whole table under its lock, if it does.
    pub scan: Option<String>,
}

/// Lint and lock-analyse the up sections of a migration `text`; `pkg` gives the `[lint]` settings and the schema
/// unqualified names are in; `server_version` (e.g. `"15"`) the rules' target.
pub fn review(text: &str, pkg: &Package, server_version: Option<&str>) -> Review {
    let mut out = Review::default();
    let Ok(sections) = migration::parse(text) else {
        return out;
    };
    let settings = &pkg.manifest().lint;
    let config = LintConfig {
        pg_version: settings
            .pg_version
            .clone()
            .or_else(|| server_version.map(str::to_string)),
        enable: settings.enable.clone(),
        disable: settings.disable.clone(),
        severity: settings
            .severity
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect(),
    };
    let index = pgstrata_sql::LineIndex::new(text);
    if let Ok(linter) = Linter::new(&config).or_else(|_| Linter::new(&LintConfig::default())) {
        let context = MigrationContext {
            default_schema: Some(pkg.schema().to_string()),
            ..MigrationContext::default()
        };
        for f in linter.migration(text, &sections, &context) {
            out.lint.push(LintNote {
                rule: f.rule,
                severity: f.severity.as_str().to_string(),
                message: f.message,
                line: index.line_col(f.range.start).line,
                help: f.help,
            });
        }
    }
    let mut created: Vec<RelationName> = Vec::new();
    for s in sections.iter().filter(|s| s.direction == Direction::Up) {
        let body = s.text(text);
        for st in pgstrata_sql::locks::analyze_with(body, &created) {
            created.extend(st.creates.iter().cloned());
            let locks: Vec<String> = st
                .locks
                .iter()
                .filter(|l| !l.created_earlier)
                .map(|l| format!("{} on {}", l.mode.name(), l.relation))
                .collect();
            if locks.is_empty() && st.rewrite.is_none() && st.scan.is_none() {
                continue;
            }
            out.locks.push(LockNote {
                line: index.line_col(s.range.start + st.range.start).line,
                command: st.command,
                locks,
                rewrite: st.rewrite,
                scan: st.scan,
            });
        }
    }
    out
}
