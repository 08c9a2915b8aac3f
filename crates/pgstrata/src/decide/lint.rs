//! Linting migrations before they run: squawk's rules and Strata's own (see `pgstrata_sql::lint`),
//! configured per package in `strata.toml`:
//!
//! ```toml
//! [lint]
//! pg_version = "15"                         # target version (default: the server's, else 15)
//! enable = ["require-table-schema"]         # opt-in rules
//! disable = ["prefer-robust-stmts"]         # rules to skip
//! severity = { ban-drop-column = "error" }  # "error" or "warning"
//! ```
//!
//! `strata lint` checks pending migrations (or `--all`, or given files); `plan` and `up` check what they
//! are about to apply, and `up` refuses to deploy when there are errors unless `--allow-lint-errors` is given.
//! A finding is silenced in the SQL with `-- squawk-ignore RULE` on the line above it (or
//! `-- squawk-ignore-file RULE` anywhere in the file).
//!
//! Managed code (functions, views, … re-created on every deploy) is not linted with migration rules:
//! [`lint_managed`] applies the small managed rule set instead.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgstrata_sql::lint::{ExistingRelation, Linter, ManagedReference, MigrationContext};
use pgstrata_sql::locks::RelationName;

pub use crate::decide::lint_memo::LintMemo;
pub use crate::error::LintRefused;
pub use crate::report::lint::{
    FileLint, LintDiagnostic, LintEdit, LintFinding, LintFix, LintReport, Severity,
};
pub use crate::source::lint_settings::LintSettings;

use crate::db::exec::Database;
use crate::decide::plan::Plan;
use crate::error::{Error, Result, SourceError};
use crate::report::code::CodeKind;
use crate::report::lint::file_lint;
use crate::source::STRATA_PACKAGE;
use crate::source::package::{Migration, Package};
use crate::source::project::Project;

/// The server's version as squawk expects it (`15.4`).
pub async fn server_version(db: &Database) -> Result<String> {
    let row = db
        .client()
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .map_err(Error::db("reading the server version"))?;
    let n: i32 = row.get(0);
    Ok(format!("{}.{}", n / 10_000, n % 10_000))
}

/// Lint what `plan` would apply, in order: a relation created by an earlier migration of the deploy is new,
/// so findings about locks on it, or about clients using it, do not apply; a migration that drops something the
/// project's managed code uses is reported (`drop-managed-dependency`, see [`managed_references`]).
pub fn lint_plan(
    project: &Project,
    plan: &Plan,
    server_version: Option<&str>,
) -> Result<LintReport> {
    lint_plan_with(project, plan, server_version, &[])
}

/// [`lint_plan`], with more references for `drop-managed-dependency` than the project's own managed code gives
/// (code deployed by other means, say).
pub fn lint_plan_with(
    project: &Project,
    plan: &Plan,
    server_version: Option<&str>,
    extra_references: &[ManagedReference],
) -> Result<LintReport> {
    let packages = project.with_internal()?;
    lint_steps(&packages, plan, server_version, extra_references, None)
}

/// [`lint_plan`] judged against the database `db`: lock hazards on relations that are not in the database yet
/// (created earlier in the deploy, however they are created) or that are empty do not count, so a fresh database
/// deploys a long-lived project's folder without lint errors about tables nobody uses yet.
///
/// ```no_run
/// # async fn demo(db: &pgstrata::Database) -> Result<(), pgstrata::Error> {
/// let project = pgstrata::Project::load(&["db/billing"])?;
/// let plan = pgstrata::plan(db, &project, &pgstrata::PlanOptions::default()).await?;
/// let version = pgstrata::lint::server_version(db).await?;
/// let report = pgstrata::lint::lint_plan_at(db, &project, &plan, Some(&version)).await?;
/// println!("{} error(s)", report.errors);
/// # Ok(()) }
/// ```
pub async fn lint_plan_at(
    db: &Database,
    project: &Project,
    plan: &Plan,
    server_version: Option<&str>,
) -> Result<LintReport> {
    let packages = project.with_internal()?;
    let existing = existing_relations(db.client(), &packages, plan).await?;
    lint_steps(&packages, plan, server_version, &[], existing)
}

/// The relation names the plan's migrations (Strata's own excepted) mention.
pub(crate) fn plan_mentioned_names(packages: &[Package], plan: &Plan) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for step in &plan.steps {
        let Some(pkg) = packages.get(step.package_index) else {
            continue;
        };
        if pkg.name() == STRATA_PACKAGE {
            continue;
        }
        if let Some(m) = pkg.migrations().get(step.migration_index) {
            names.extend(pgstrata_sql::locks::mentioned_names(m.up().text()));
        }
    }
    names
}

/// The relations the plan's migrations may touch that the database holds now, with whether they are empty
/// (`None` when there is nothing to lint).
pub(crate) async fn existing_relations(
    client: &tokio_postgres::Client,
    packages: &[Package],
    plan: &Plan,
) -> Result<Option<Vec<ExistingRelation>>> {
    let names = plan_mentioned_names(packages, plan);
    if names.is_empty() {
        return Ok(None);
    }
    let schemas: Vec<&str> = packages
        .iter()
        .flat_map(|p| p.schemas().iter().map(String::as_str))
        .collect();
    Ok(Some(
        crate::db::relations::existing(client, &names, &schemas).await?,
    ))
}

/// What the managed code of `packages` refers to — view queries, routine bodies (PL/pgSQL included, best
/// effort), trigger tables and functions — each name qualified with the referring package's schema when the
/// code leaves it unqualified (its `search_path` starts there). `drop-managed-dependency` reports a migration
/// that drops one of them: the managed code would fail to install after it.
///
/// ```no_run
/// let project = pgstrata::Project::load(&["db/billing"])?;
/// for r in pgstrata::lint::managed_references(project.packages()) {
///     println!("{:?} {} used by {}", r.kind, r.name, r.used_by);
/// }
/// # Ok::<(), pgstrata::Error>(())
/// ```
pub fn managed_references(packages: &[Package]) -> Vec<ManagedReference> {
    use pgstrata_sql::lint::ObjectKind;
    use pgstrata_sql::objects::ReferenceKind;

    let mut out = Vec::new();
    for pkg in packages {
        let code = pkg.code();
        let schema = pkg.schema();
        for object in code.objects.iter().filter(|o| o.kind != CodeKind::Comment) {
            let used_by = format!(
                "{} ({}:{})",
                object.label(),
                code.files[object.file].display,
                object.line
            );
            let mut push = |kind: ObjectKind, name: &pgstrata_sql::objects::QualifiedName| {
                let name = name.or_schema(schema);
                out.push(ManagedReference {
                    kind,
                    name: RelationName::new(name.schema.as_deref(), &name.name),
                    used_by: used_by.clone(),
                });
            };
            if let Some(table) = &object.table {
                push(ObjectKind::Relation, table);
            }
            for r in object.references(code) {
                match r.kind {
                    ReferenceKind::Relation => push(ObjectKind::Relation, &r.name),
                    ReferenceKind::Function => push(ObjectKind::Routine, &r.name),
                    ReferenceKind::Type => push(ObjectKind::Type, &r.name),
                    ReferenceKind::Any => {
                        push(ObjectKind::Relation, &r.name);
                        push(ObjectKind::Routine, &r.name);
                    }
                    // Operators are not among what a migration's lint checks it drops.
                    ReferenceKind::Operator => {}
                }
            }
        }
    }
    out
}

pub(crate) fn lint_steps(
    packages: &[Package],
    plan: &Plan,
    server_version: Option<&str>,
    extra_references: &[ManagedReference],
    existing: Option<Vec<ExistingRelation>>,
) -> Result<LintReport> {
    let mut report = LintReport::default();
    // Body references are parsed on demand: only a deploy with migrations to lint pays for them.
    let managed_references: Vec<ManagedReference> = if plan.steps.is_empty() {
        Vec::new()
    } else {
        let mut refs = managed_references(packages);
        refs.extend_from_slice(extra_references);
        refs
    };
    let mut linters: BTreeMap<usize, Linter> = BTreeMap::new();
    // One context for the whole deploy: each migration adds what it creates, for the ones after it.
    let mut context = MigrationContext {
        managed_references,
        existing,
        ..MigrationContext::default()
    };
    for step in &plan.steps {
        let Some(pkg) = packages.get(step.package_index) else {
            continue;
        };
        let Some(m) = pkg.migrations().get(step.migration_index) else {
            continue;
        };
        if pkg.name() == STRATA_PACKAGE {
            continue;
        }
        let linter = match linters.entry(step.package_index) {
            std::collections::btree_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(pkg.manifest().lint.linter(server_version)?)
            }
        };
        if context.default_schema.as_deref() != Some(pkg.schema()) {
            context.default_schema = Some(pkg.schema().to_string());
        }
        report.push(migration_file_lint(pkg, m, |text, sections| {
            linter.migration_in_deploy(text, sections, &mut context)
        }));
    }
    Ok(report)
}

/// Every migration of every package of the project, each on its own (as it would run on a database where
/// the ones before it are applied).
pub fn lint_all(project: &Project, server_version: Option<&str>) -> Result<LintReport> {
    let mut report = LintReport::default();
    for pkg in project.packages() {
        let linter = pkg.manifest().lint.linter(server_version)?;
        let context = MigrationContext {
            default_schema: Some(pkg.schema().to_string()),
            ..MigrationContext::default()
        };
        for m in pkg.migrations() {
            report.push(lint_migration(&linter, pkg, m, &context));
        }
    }
    Ok(report)
}

/// Lint files or directories as migrations. A directory with a manifest is a package (all its migrations); another
/// directory contributes every `.sql` file below it (`.down.sql` files excluded). A file that is a migration of a
/// package of `project` uses that package's `[lint]` settings and schema; others the defaults.
pub fn lint_paths(
    paths: &[PathBuf],
    project: Option<&Project>,
    server_version: Option<&str>,
) -> Result<LintReport> {
    let mut report = LintReport::default();
    let default_linter = LintSettings::default().linter(server_version)?;
    for path in paths {
        if path.is_dir()
            && (path.join("strata.toml").is_file() || path.join("pgpkg.toml").is_file())
        {
            let pkg = Package::load(path)?;
            let linter = pkg.manifest().lint.linter(server_version)?;
            let context = MigrationContext {
                default_schema: Some(pkg.schema().to_string()),
                ..MigrationContext::default()
            };
            for m in pkg.migrations() {
                report.push(lint_migration(&linter, &pkg, m, &context));
            }
            continue;
        }
        let files = if path.is_dir() {
            let mut files = Vec::new();
            sql_files_below(path, &mut files)?;
            files.sort();
            files
        } else if path.is_file() {
            vec![path.clone()]
        } else {
            return Err(Error::usage(
                format!("{} does not exist", path.display()),
                None,
            ));
        };
        for file in files {
            let owner = project.and_then(|p| owning_migration(p, &file));
            match owner {
                Some((pkg, m)) => {
                    let linter = pkg.manifest().lint.linter(server_version)?;
                    let context = MigrationContext {
                        default_schema: Some(pkg.schema().to_string()),
                        ..MigrationContext::default()
                    };
                    report.push(lint_migration(&linter, pkg, m, &context));
                }
                None => report.push(lint_file(&default_linter, &file)?),
            }
        }
    }
    Ok(report)
}

/// Lint managed code (`text`, shown as `origin`) with the managed rule set of `settings`.
///
/// ```
/// let report = pgstrata::lint::lint_managed(
///     "functions/pay.sql",
///     "CREATE FUNCTION billing.pay() RETURNS void SECURITY DEFINER LANGUAGE sql AS 'SELECT 1';",
///     &pgstrata::lint::LintSettings::default(),
/// )?;
/// assert_eq!(report.findings[0].rule, "security-definer-search-path");
/// # Ok::<(), pgstrata::Error>(())
/// ```
pub fn lint_managed(origin: &str, text: &str, settings: &LintSettings) -> Result<FileLint> {
    let linter = settings.linter(None)?;
    let text: Arc<str> = Arc::from(pgstrata_sql::normalize(text).as_ref());
    let findings = linter.managed(&text);
    Ok(file_lint(origin.to_string(), None, None, text, findings))
}

fn lint_migration(
    linter: &Linter,
    pkg: &Package,
    m: &Migration,
    context: &MigrationContext,
) -> FileLint {
    migration_file_lint(pkg, m, |text, sections| {
        linter.migration(text, sections, context)
    })
}

/// A migration's up script linted by `lint` (given its text and sections), as a [`FileLint`].
fn migration_file_lint(
    pkg: &Package,
    m: &Migration,
    lint: impl FnOnce(&str, &[pgstrata_sql::migration::Section]) -> Vec<pgstrata_sql::lint::Finding>,
) -> FileLint {
    let script = m.up();
    // Shared, not copied: a data load's text can be tens of megabytes.
    let text: Arc<str> = Arc::clone(&script.text);
    let findings = lint(&text, script.sections());
    file_lint(
        script.origin().to_string(),
        Some(pkg.name().to_string()),
        Some(m.name().to_string()),
        text,
        findings,
    )
}

fn lint_file(linter: &Linter, path: &Path) -> Result<FileLint> {
    let raw = std::fs::read_to_string(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let display = path.display().to_string();
    let text: Arc<str> = Arc::from(pgstrata_sql::normalize(&raw).as_ref());
    let sections = pgstrata_sql::migration::parse(&text).map_err(|e| {
        SourceError::new(
            "strata::sections",
            &display,
            text.to_string(),
            Some(e.range),
            e.message,
        )
    })?;
    let findings = linter.migration(&text, &sections, &MigrationContext::default());
    Ok(file_lint(display, None, None, text, findings))
}

fn owning_migration<'p>(project: &'p Project, file: &Path) -> Option<(&'p Package, &'p Migration)> {
    let file = file.canonicalize().ok()?;
    project.packages().iter().find_map(|pkg| {
        let root = pkg.root()?.canonicalize().ok()?;
        pkg.migrations()
            .iter()
            .find(|m| root.join(m.path()) == file)
            .map(|m| (pkg, m))
    })
}

fn sql_files_below(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if path.is_dir() {
            sql_files_below(&path, out)?;
        } else if name.ends_with(".sql") && !name.ends_with(".down.sql") {
            out.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn managed_code_gets_the_managed_rules() {
        let file = lint_managed(
            "functions/pay.sql",
            "CREATE FUNCTION billing.pay() RETURNS void LANGUAGE sql\n  SECURITY DEFINER AS 'SELECT 1';\nCREATE INDEX i ON t (a);\n",
            &LintSettings::default(),
        )
        .unwrap();
        let rules: Vec<(&str, u32)> = file
            .findings
            .iter()
            .map(|f| (f.rule.as_str(), f.line))
            .collect();
        assert_eq!(rules, [("security-definer-search-path", 2)]);
        let disabled = LintSettings {
            disable: vec!["security-definer-search-path".into()],
            ..LintSettings::default()
        };
        assert!(
            lint_managed(
                "f.sql",
                "CREATE FUNCTION f() RETURNS int SECURITY DEFINER LANGUAGE sql AS 'SELECT 1';",
                &disabled
            )
            .unwrap()
            .findings
            .is_empty()
        );
    }
}
