//! Managed code: functions, procedures, views, triggers, aggregates, operators, casts (and comments on functions,
//! procedures, views and triggers) declared in SQL files and kept up to date by every deploy.
//!
//! ## Files
//!
//! Every `.sql` file of a package that is neither a listed migration (nor its `.down.sql`) is code:
//! `*_test.sql` files hold tests ([`crate::testing`]), the others managed objects. A file whose first line is
//! `-- strata:ignore` is skipped. A managed file may only contain `CREATE [OR REPLACE] FUNCTION | PROCEDURE | VIEW
//! | TRIGGER | AGGREGATE`, `CREATE OPERATOR`, `CREATE CAST` and `COMMENT ON` functions, procedures, views, triggers
//! (and view columns); anything else is an error naming file and line, reported when the package is loaded, before
//! anything runs. Types and domains stay in migrations, as in pgpkg: a managed object is dropped and re-created when
//! it changes, and a type a table column uses cannot be. Objects must be in one of the package's schemas (an
//! unqualified name means its main schema; a cast has none); transaction control, role changes and (without
//! `[security] allow_security_definer = true`) `SECURITY DEFINER` are refused.
//!
//! ## Identity and records
//!
//! What a statement created is read from the catalog right after it ran (two probes of `pg_proc`, `pg_class` or
//! `pg_trigger` around it, in the same round trip): `schema.name(identity arguments)` from
//! `pg_get_function_identity_arguments`, never from text Strata assembled. `strata.managed_object` records, per
//! object: that identity and oid, the hash of the statement's source, file and line, the `xmin` of its catalog
//! rows and the md5 of the catalog columns that define it (owner and privileges left out; for a view, its stored
//! query tree), or of the comment.
//!
//! ## What a deploy does
//!
//! 1. Every recorded object is checked against the catalog: same `xmin` means untouched; otherwise the definition
//!    hash decides between "moved but equal" (grants, dump and restore) and *drifted* (changed outside Strata);
//!    a vanished oid is looked up by identity, else the object is *missing*.
//! 2. A statement whose source hash matches an intact record is left alone: an unchanged redeploy runs no DDL at
//!    all (the catalog rows keep their oids and `xmin`).
//! 3. The others are installed in dependency order (see [`graph`](self) below), each in a savepoint, always as
//!    `CREATE OR REPLACE` (added when the file omits it; operators and casts have none, and a changed one is dropped
//!    and created like an object PostgreSQL refuses to replace): same signature and result type keeps the oid, the
//!    grants and the comments, and takes no `ACCESS EXCLUSIVE` lock. When PostgreSQL refuses the replacement
//!    (changed return type, parameter names or defaults, view columns), the old object is dropped together with
//!    every managed object that depends on it (found in `pg_depend`), and those are re-created from their source.
//!    If something *unmanaged* depends on it — a column default, a check constraint, an index, a policy, an
//!    unmanaged view — the deploy stops and says which table.
//! 4. Objects whose statement disappeared are dropped (with their managed dependents, same rule); removed
//!    comments are cleared.
//! 5. Drifted and missing objects are restored from their source.
//!
//! Order comes from a dependency graph of the parsed references: view queries, `LANGUAGE sql` and `BEGIN ATOMIC`
//! bodies, trigger → function, comment → object are *hard* (PostgreSQL checks them at creation; a cycle is an
//! error naming the chain with file:line); PL/pgSQL bodies give *soft* edges (used for order, ignored in cycles).
//! A hard reference to an object of a deployed package's schema that no statement defines must already exist in
//! the database, or the deploy stops before running anything, naming the chain. A statement that still fails on
//! an undefined name is retried after the others (at most 10 passes, each must make progress); such retries are
//! listed in [`CodeReport::retried`].
//!
//! ## When, within a deploy
//!
//! In one transaction: Strata's own migrations; every package's pending migrations (packages in `uses` order),
//! **while the managed objects of the previous deploy are still installed** — a migration can call them, and its
//! bulk updates fire their triggers; a migration may also drop a managed object that stands in its way (it is
//! then restored afterwards); then the managed code of all packages, in one dependency graph; then the tests
//! ([`crate::testing`]); then commit. A migration cannot use a managed object that this same deploy introduces.

pub use crate::report::code::{CodeAction, CodeChange, CodeKind, CodeReport};
pub use crate::source::code::{
    Code, CodeFile, CodeObject, CommentOf, IGNORE_MARKER, TestFunction, TestRole,
};

use std::collections::BTreeMap;

use crate::db::exec::Database;
use crate::error::{Error, Result};
use crate::source::STRATA_PACKAGE;
use crate::source::package::Package;
use crate::source::project::Project;

/// A managed statement in the order `strata up` installs it (see [`install_order`]).
#[derive(Debug, Clone)]
pub(crate) struct Ordered<'p> {
    /// Index of its package in the packages given.
    pub pkg: usize,
    pub obj: &'p CodeObject,
    /// Positions in the same list of the statements it depends on: hard edges (always earlier) and soft ones
    /// (PL/pgSQL bodies; later when they are part of a cycle).
    pub needs: Vec<usize>,
}

/// The managed statements of `packages` (Strata's own skipped) in the order `strata up` installs them: the
/// dependency graph's, over all packages at once. A statement's position in the list is the `seq` `strata up`
/// records for it. A cycle is an error naming its chain.
pub(crate) fn install_order(packages: &[Package]) -> Result<Vec<Ordered<'_>>> {
    let mut nodes = Vec::new();
    for (pkg, package) in packages.iter().enumerate() {
        if package.name() == STRATA_PACKAGE {
            continue;
        }
        for obj in &package.code().objects {
            nodes.push(crate::decide::assess::Node { pkg, package, obj });
        }
    }
    if nodes.is_empty() {
        return Ok(Vec::new());
    }
    let graph = crate::decide::graph::build_graph(&nodes, packages);
    let order = graph
        .order()
        .map_err(|chain| crate::decide::graph::cycle_error(&nodes, &chain))?;
    let mut position = vec![0usize; nodes.len()];
    for (at, &i) in order.iter().enumerate() {
        position[i] = at;
    }
    Ok(order
        .iter()
        .map(|&i| {
            let mut needs: Vec<usize> = graph.hard[i]
                .iter()
                .chain(&graph.soft[i])
                .map(|&d| position[d])
                .collect();
            needs.sort_unstable();
            needs.dedup();
            Ordered {
                pkg: nodes[i].pkg,
                obj: nodes[i].obj,
                needs,
            }
        })
        .collect())
}

/// Dependency order of the functions of test files (helpers a LANGUAGE sql test calls come first); file order
/// when they form a cycle (PostgreSQL then reports what is missing).
pub(crate) fn test_order(code: &Code, schema: &str, path: &[String]) -> Vec<usize> {
    let items: Vec<crate::decide::graph::Item<'_>> = code
        .tests
        .iter()
        .map(|t| crate::decide::graph::Item {
            kind: CodeKind::Function,
            name: &t.name,
            table: None,
            comment_on: None,
            schema,
            path,
            params: t.params(),
            references: t.references(code),
        })
        .collect();
    crate::decide::graph::Graph::build(&items, &[])
        .order()
        .unwrap_or_else(|_| (0..code.tests.len()).collect())
}

/// How a managed object compares between the source, Strata's records and the catalog.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ObjectState {
    /// Installed from this source, unchanged since.
    InSync,
    /// In the source, never installed.
    New,
    /// Its source changed since it was installed.
    Changed,
    /// Changed in the database outside Strata (`up` restores it).
    Drifted,
    /// Dropped in the database outside Strata (`up` restores it).
    Missing,
    /// Installed, but no longer in the source (`up` drops it).
    Removed,
    /// Installed and unchanged, but its body no longer compiles: something it uses was dropped, e.g. by `strata
    /// down` ([`crate::BrokenObject`]; `up` re-installs it, which fails the same way until code and schema agree).
    Broken,
}

/// One line of [`status`].
#[derive(Debug, Clone, serde::Serialize)]
pub struct ObjectStatus {
    /// What kind of object.
    pub kind: CodeKind,
    /// The catalog identity when installed, else the statement's label.
    pub name: String,
    /// Where its source is (as recorded for removed ones).
    pub file: String,
    /// Line.
    pub line: u32,
    /// State.
    pub state: ObjectState,
    /// Why it is [`ObjectState::Broken`]: the server's message about its body.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The managed code of one package, compared with the database.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PackageCode {
    /// Package.
    pub package: String,
    /// Every statement and recorded object.
    pub objects: Vec<ObjectStatus>,
}

impl PackageCode {
    /// How many objects are in a state.
    pub fn count(&self, state: ObjectState) -> usize {
        self.objects.iter().filter(|o| o.state == state).count()
    }
}

/// Compare each package's managed code with what is installed: new, changed, removed, and drifted or missing
/// (changed or dropped outside Strata). Changes nothing.
pub async fn status(db: &Database, project: &Project) -> Result<Vec<PackageCode>> {
    let packages = project.packages();
    let a = crate::decide::assess::assess(db.client(), packages, false).await?;
    let mut out: Vec<PackageCode> = packages
        .iter()
        .map(|p| PackageCode {
            package: p.name().to_string(),
            objects: Vec::new(),
        })
        .collect();
    let mut kept = vec![false; a.stored.len()];
    for (i, n) in a.nodes.iter().enumerate() {
        let file = n.code().files[n.obj.file].display.clone();
        let (name, state) = match a.plan[i] {
            crate::decide::assess::NodePlan::Keep(s) => {
                kept[s] = true;
                (a.stored[s].identity.clone(), ObjectState::InSync)
            }
            crate::decide::assess::NodePlan::Install(reason) => {
                // The recorded object this statement installed (same source), or the one it will replace.
                let same_source = a
                    .stored
                    .iter()
                    .position(|s| s.package == n.package.name() && s.source_hash == n.obj.hash);
                if let Some(s) = same_source {
                    kept[s] = true;
                }
                // Else the recorded object it will replace (same name), else what the statement declares.
                let name = same_source
                    .or_else(|| {
                        a.stored.iter().position(|s| {
                            s.package == n.package.name()
                                && crate::decide::assess::names_match(s, n.obj, n.schema())
                        })
                    })
                    .map(|s| a.stored[s].identity.clone())
                    .unwrap_or_else(|| n.obj.display_name());
                let state = match reason {
                    crate::decide::assess::Reason::New => ObjectState::New,
                    crate::decide::assess::Reason::Changed
                    | crate::decide::assess::Reason::Dependency => ObjectState::Changed,
                    crate::decide::assess::Reason::Drifted => ObjectState::Drifted,
                    crate::decide::assess::Reason::Missing => ObjectState::Missing,
                };
                (name, state)
            }
        };
        out[n.pkg].objects.push(ObjectStatus {
            kind: n.obj.kind,
            name,
            file,
            line: n.obj.line,
            state,
            error: None,
        });
    }
    for (s, row) in a.stored.iter().enumerate() {
        if kept[s] {
            continue;
        }
        let replaced = a.nodes.iter().enumerate().any(|(i, n)| {
            n.package.name() == row.package
                && a.plan[i]
                    == crate::decide::assess::NodePlan::Install(
                        crate::decide::assess::Reason::Changed,
                    )
                && crate::decide::assess::names_match(row, n.obj, n.schema())
        });
        if replaced {
            continue;
        }
        if let Some(p) = out.iter_mut().find(|p| p.package == row.package) {
            p.objects.push(ObjectStatus {
                kind: row.kind,
                name: row.identity.clone(),
                file: row.file.clone(),
                line: u32::try_from(row.line).unwrap_or(0),
                state: ObjectState::Removed,
                error: None,
            });
        }
    }
    // An object in sync with its source may still have lost what it uses (a `down` dropped a table it reads).
    let names: Vec<String> = packages.iter().map(|p| p.name().to_string()).collect();
    for b in crate::db::broken::broken_routines(db.client(), Some(&names)).await? {
        let object = out
            .iter_mut()
            .filter(|p| p.package == b.package)
            .flat_map(|p| p.objects.iter_mut())
            .find(|o| o.name == b.identity && o.state == ObjectState::InSync);
        if let Some(o) = object {
            o.state = ObjectState::Broken;
            o.error = Some(b.error);
        }
    }
    Ok(out)
}

/// True when some package's test files differ from those the last deploy ran.
pub(crate) async fn tests_changed(
    client: &tokio_postgres::Client,
    packages: &[Package],
) -> Result<bool> {
    let with_tests: Vec<&Package> = packages
        .iter()
        .filter(|p| p.name() != STRATA_PACKAGE && !p.code().tests.is_empty())
        .collect();
    if with_tests.is_empty() {
        return Ok(false);
    }
    let names: Vec<&str> = with_tests.iter().map(|p| p.name()).collect();
    let rows = client
        .query_typed(
            "SELECT name, tests_hash FROM strata.package WHERE name = ANY($1)",
            &[(&names, tokio_postgres::types::Type::TEXT_ARRAY)],
        )
        .await
        .map_err(Error::db("reading strata.package"))?;
    let recorded: BTreeMap<String, Option<String>> =
        rows.iter().map(|r| (r.get(0), r.get(1))).collect();
    Ok(with_tests.iter().any(|p| {
        recorded.get(p.name()).cloned().flatten().as_deref() != Some(p.code().tests_hash().as_str())
    }))
}
