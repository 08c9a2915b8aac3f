//! Lint results kept across the deploys of one project.
//!
//! A fleet deploy (`strata up --targets`, `--tenant-schemas`) runs the same plan against hundreds of databases.
//! Parsing and linting its migrations was the deploying process's largest cost per target (it ran on the one thread
//! that also drives every connection), although the result depends only on what the memo's key holds: the
//! packages (names, schemas, `[lint]` settings, managed code), the plan's steps (migration paths and checksums),
//! the server version and the relations the deploy finds. A deploy whose key matches an earlier one's reuses that
//! report; any difference (another server version, a table that exists or holds rows on this target only, a
//! target further behind) is linted afresh.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use pgstrata_sql::lint::ExistingRelation;
use sha2::{Digest, Sha256};

use crate::decide::lint::lint_steps;
use crate::decide::plan::Plan;
use crate::error::Result;
use crate::report::lint::LintReport;
use crate::source::package::Package;

/// How many distinct keys a memo keeps: a fleet's targets are in a handful of states; past this many, new results
/// are simply not kept (the deploy lints as if there were no memo).
const CAPACITY: usize = 256;

/// Lint results shared by the deploys that use it ([`crate::UpOptions::lint_memo`]); cloning shares the memo.
///
/// Share one only among deploys of the same project (a fleet's targets): the key covers the packages' names,
/// schemas, `[lint]` settings, managed code and the plan's migrations, not every detail of a manifest.
#[derive(Clone, Default)]
pub struct LintMemo {
    inner: Arc<Mutex<Entries>>,
}

#[derive(Default)]
struct Entries {
    /// The relation names the plan's migrations mention, per plan.
    names: HashMap<Key, Arc<BTreeSet<String>>>,
    /// The lint report, per plan, server version and relations found.
    reports: HashMap<Key, LintReport>,
    /// Lookups answered from the memo (for tests and the benchmark's curiosity).
    hits: usize,
}

/// SHA-256 of what a result depends on.
type Key = [u8; 32];

impl fmt::Debug for LintMemo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let e = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("LintMemo")
            .field("plans", &e.names.len())
            .field("reports", &e.reports.len())
            .field("hits", &e.hits)
            .finish()
    }
}

impl LintMemo {
    /// A new, empty memo.
    pub fn new() -> LintMemo {
        LintMemo::default()
    }

    /// How many lint results were reused so far.
    pub fn hits(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .hits
    }

    /// Lint what `plan` would apply, judged against the database as the deploy starts (see
    /// [`crate::lint::lint_plan_at`]): the relations it finds are read every time, the rest comes from the memo
    /// when an earlier deploy had the same key.
    pub(crate) async fn lint_deploy(
        &self,
        client: &tokio_postgres::Client,
        packages: &[Package],
        plan: &Plan,
        server_version: &str,
    ) -> Result<LintReport> {
        let names = self.mentioned_names(packages, plan);
        let existing = if names.is_empty() {
            None
        } else {
            let schemas: Vec<&str> = packages
                .iter()
                .flat_map(|p| p.schemas().iter().map(String::as_str))
                .collect();
            Some(crate::db::relations::existing(client, &names, &schemas).await?)
        };
        self.lint_steps(packages, plan, server_version, existing)
    }

    /// The relation names the plan's migrations (Strata's own excepted) mention.
    fn mentioned_names(&self, packages: &[Package], plan: &Plan) -> Arc<BTreeSet<String>> {
        let key = plan_key(packages, plan).finalize().into();
        if let Some(names) = self.entries().names.get(&key) {
            return Arc::clone(names);
        }
        let names = Arc::new(super::lint::plan_mentioned_names(packages, plan));
        let mut e = self.entries();
        if e.names.len() < CAPACITY {
            e.names.insert(key, Arc::clone(&names));
        }
        names
    }

    /// `lint_steps` for a deploy (no extra references), or the report of an earlier deploy with the same key.
    fn lint_steps(
        &self,
        packages: &[Package],
        plan: &Plan,
        server_version: &str,
        existing: Option<Vec<ExistingRelation>>,
    ) -> Result<LintReport> {
        let mut h = plan_key(packages, plan);
        h.update(server_version.as_bytes());
        h.update([0]);
        // Debug of the relations found: names and emptiness, in the order the query returns them (by name).
        h.update(format!("{existing:?}").as_bytes());
        let key: Key = h.finalize().into();
        {
            let mut e = self.entries();
            if let Some(report) = e.reports.get(&key).cloned() {
                e.hits += 1;
                return Ok(report);
            }
        }
        let report = lint_steps(packages, plan, Some(server_version), &[], existing)?;
        let mut e = self.entries();
        if e.reports.len() < CAPACITY {
            e.reports.insert(key, report.clone());
        }
        Ok(report)
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, Entries> {
        // A panic elsewhere while holding the lock leaves whole entries behind (each insert is one call).
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The hash of what the plan's lint depends on, apart from the server: every package (its name, schemas, `[lint]`
/// settings and managed code, which `drop-managed-dependency` looks at) and every step (package, path, checksum).
fn plan_key(packages: &[Package], plan: &Plan) -> Sha256 {
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(&(packages.len() as u64).to_le_bytes());
    for p in packages {
        field(p.name().as_bytes());
        field(p.schemas().join("\0").as_bytes());
        field(format!("{:?}", p.manifest().lint).as_bytes());
        let code = p.code();
        field(&(code.files.len() as u64).to_le_bytes());
        for f in &code.files {
            field(f.path.as_bytes());
            field(f.text.as_bytes());
        }
    }
    field(&(plan.steps.len() as u64).to_le_bytes());
    for step in &plan.steps {
        field(&(step.package_index as u64).to_le_bytes());
        let m = packages
            .get(step.package_index)
            .and_then(|p| p.migrations().get(step.migration_index));
        match m {
            Some(m) => {
                field(m.path().as_bytes());
                field(m.checksum().as_bytes());
            }
            None => field(b"?"),
        }
    }
    h
}
