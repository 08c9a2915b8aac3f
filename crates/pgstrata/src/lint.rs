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

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource};
use pgstrata_sql::LineIndex;
use pgstrata_sql::lint::{LintConfig, Linter, ManagedReference, MigrationContext};
use pgstrata_sql::locks::RelationName;
use serde::Deserialize;
use toml::Spanned;

pub use pgstrata_sql::lint::Severity;

use crate::error::{Error, Result, SourceError};
use crate::exec::Database;
use crate::package::{Migration, Package};
use crate::plan::Plan;
use crate::project::{Project, STRATA_PACKAGE};

/// The `[lint]` table of `strata.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LintSettings {
    /// Target PostgreSQL version (`"15"`, `"16.2"`); default: the server's when connected, else 15.
    pub pg_version: Option<String>,
    /// Rules to turn on.
    pub enable: Vec<String>,
    /// Rules to turn off.
    pub disable: Vec<String>,
    /// Severity overrides.
    #[serde(serialize_with = "serialize_severities")]
    pub severity: BTreeMap<String, Severity>,
}

impl LintSettings {
    fn config(&self, server_version: Option<&str>) -> LintConfig {
        LintConfig {
            pg_version: self
                .pg_version
                .clone()
                .or_else(|| server_version.map(str::to_string)),
            enable: self.enable.clone(),
            disable: self.disable.clone(),
            severity: self.severity.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    /// A linter for these settings.
    fn linter(&self, server_version: Option<&str>) -> Result<Linter> {
        Linter::new(&self.config(server_version))
            .map_err(|e| Error::usage(format!("[lint]: {}", e.message), None))
    }
}

/// `[lint]` as written, with spans for error messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLintSettings {
    #[serde(default)]
    pg_version: Option<Spanned<VersionValue>>,
    #[serde(default)]
    enable: Vec<Spanned<String>>,
    #[serde(default)]
    disable: Vec<Spanned<String>>,
    #[serde(default)]
    severity: BTreeMap<String, Spanned<String>>,
}

/// `pg_version = 15` and `pg_version = "15.4"` both work.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum VersionValue {
    Number(i64),
    Text(String),
}

/// Check `[lint]` and turn it into [`LintSettings`]; errors carry the span of the offending value.
pub(crate) fn settings_from_raw(
    raw: Option<RawLintSettings>,
) -> std::result::Result<LintSettings, (Option<Range<usize>>, String)> {
    let Some(raw) = raw else {
        return Ok(LintSettings::default());
    };
    let mut severity = BTreeMap::new();
    for (rule, value) in &raw.severity {
        let s: Severity = value.get_ref().parse().map_err(|m| {
            (
                Some(value.span()),
                format!("[lint] severity of {rule}: {m}"),
            )
        })?;
        severity.insert(rule.clone(), s);
    }
    let settings = LintSettings {
        pg_version: raw.pg_version.as_ref().map(|v| match v.get_ref() {
            VersionValue::Number(n) => n.to_string(),
            VersionValue::Text(t) => t.clone(),
        }),
        enable: raw.enable.iter().map(|s| s.get_ref().clone()).collect(),
        disable: raw.disable.iter().map(|s| s.get_ref().clone()).collect(),
        severity,
    };
    if let Err(e) = Linter::new(&settings.config(None)) {
        let span = raw
            .enable
            .iter()
            .chain(&raw.disable)
            .find(|s| *s.get_ref() == e.value)
            .map(|s| s.span())
            .or_else(|| raw.pg_version.as_ref().map(|v| v.span()))
            .filter(|_| !raw.severity.contains_key(&e.value));
        let help = if e.message.starts_with("unknown lint rule") {
            " (`strata lint --list-rules` lists them)"
        } else {
            ""
        };
        return Err((span, format!("[lint] {}{help}", e.message)));
    }
    Ok(settings)
}

fn serialize_severities<S: serde::Serializer>(
    map: &BTreeMap<String, Severity>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(map.len()))?;
    for (k, v) in map {
        m.serialize_entry(k, v.as_str())?;
    }
    m.end()
}

fn serialize_severity<S: serde::Serializer>(
    v: &Severity,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(v.as_str())
}

/// Findings of one file.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileLint {
    /// The file, as shown to the user.
    pub path: String,
    /// Its package, when it is a migration of one.
    pub package: Option<String>,
    /// Its migration name, when it is one.
    pub migration: Option<String>,
    /// What was found, in file order.
    pub findings: Vec<LintFinding>,
    #[serde(skip)]
    text: Arc<str>,
}

/// One finding, located by line and column (1-based, columns in characters).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LintFinding {
    /// Rule name.
    pub rule: String,
    /// `error` or `warning`.
    #[serde(serialize_with = "serialize_severity")]
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// Start line.
    pub line: u32,
    /// Start column.
    pub column: u32,
    /// End line.
    pub end_line: u32,
    /// End column (exclusive).
    pub end_column: u32,
    /// How to do it safely.
    pub help: Option<String>,
    /// A mechanical fix, when there is one.
    pub fix: Option<LintFix>,
    /// Byte range in the file.
    #[serde(skip)]
    pub range: Range<usize>,
}

/// A fix: what it does and the edits.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LintFix {
    /// What the fix does.
    pub title: String,
    /// Replacements, located like findings.
    pub edits: Vec<LintEdit>,
}

/// Replace the text between two positions (equal positions insert).
#[derive(Debug, Clone, serde::Serialize)]
pub struct LintEdit {
    /// Start line.
    pub line: u32,
    /// Start column.
    pub column: u32,
    /// End line.
    pub end_line: u32,
    /// End column.
    pub end_column: u32,
    /// Replacement text.
    pub text: String,
}

/// Everything a lint run found.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LintReport {
    /// Files checked.
    pub files_checked: usize,
    /// Findings with severity error.
    pub errors: usize,
    /// Findings with severity warning.
    pub warnings: usize,
    /// Files with findings.
    pub files: Vec<FileLint>,
}

impl LintReport {
    fn push(&mut self, file: FileLint) {
        self.files_checked += 1;
        if file.findings.is_empty() {
            return;
        }
        for f in &file.findings {
            match f.severity {
                Severity::Error => self.errors += 1,
                Severity::Warning => self.warnings += 1,
            }
        }
        self.files.push(file);
    }

    /// True when nothing was found.
    pub fn is_clean(&self) -> bool {
        self.errors == 0 && self.warnings == 0
    }

    /// Each finding as a compiler-style diagnostic (file, underlined span, help, fix), in file order.
    pub fn diagnostics(&self) -> Vec<LintDiagnostic> {
        self.files
            .iter()
            .flat_map(|file| {
                file.findings.iter().map(move |f| LintDiagnostic {
                    finding: f.clone(),
                    file: NamedSource::new(&file.path, file.text.to_string()).with_language("SQL"),
                })
            })
            .collect()
    }

    /// `path:line:col rule` of every error, for short messages.
    fn error_list(&self) -> Vec<String> {
        self.files
            .iter()
            .flat_map(|file| {
                file.findings
                    .iter()
                    .filter(|f| f.severity == Severity::Error)
                    .map(move |f| format!("{}:{}:{} {}", file.path, f.line, f.column, f.rule))
            })
            .collect()
    }
}

/// A finding as a `miette` diagnostic.
#[derive(Debug)]
pub struct LintDiagnostic {
    finding: LintFinding,
    file: NamedSource<String>,
}

impl fmt::Display for LintDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.finding.message)
    }
}

impl std::error::Error for LintDiagnostic {}

impl Diagnostic for LintDiagnostic {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(&self.finding.rule))
    }
    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.finding.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
        })
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        let mut lines = Vec::new();
        if let Some(h) = &self.finding.help {
            lines.push(h.clone());
        }
        if let Some(fix) = &self.finding.fix {
            lines.push(format!("fix: {}", fix.title));
        }
        lines.push(format!(
            "silence it with `-- squawk-ignore {}` on the line above",
            self.finding.rule
        ));
        Some(Box::new(lines.join("\n")))
    }
    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        Some(&self.file)
    }
    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        let span = crate::error::widen(self.file.inner(), self.finding.range.clone());
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            None, span,
        ))))
    }
}

/// `up` refused to deploy because the migrations about to run have lint errors.
#[derive(Debug, thiserror::Error)]
#[error("{} lint error(s) in the migrations about to run: nothing was applied", report.errors)]
pub struct LintRefused {
    /// The whole report (errors and warnings).
    pub report: LintReport,
}

impl Diagnostic for LintRefused {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new("strata::lint"))
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        Some(Box::new(format!(
            "{}\nmake the migrations safe (`strata lint` shows how), silence a finding with `-- squawk-ignore RULE` on \
             the line above it, or deploy anyway with --allow-lint-errors",
            self.report.error_list().join("\n")
        )))
    }
}

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
    lint_steps(&packages, plan, server_version, extra_references)
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
    use crate::managed::CodeKind;
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
    let text: Arc<str> = Arc::from(script.text());
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

fn file_lint(
    path: String,
    package: Option<String>,
    migration: Option<String>,
    text: Arc<str>,
    findings: Vec<pgstrata_sql::lint::Finding>,
) -> FileLint {
    let index = LineIndex::new(&text);
    let findings = findings
        .into_iter()
        .map(|f| {
            let (start, end) = (index.line_col(f.range.start), index.line_col(f.range.end));
            LintFinding {
                rule: f.rule,
                severity: f.severity,
                message: f.message,
                line: start.line,
                column: start.col,
                end_line: end.line,
                end_column: end.col,
                help: f.help,
                fix: f.fix.map(|fix| LintFix {
                    title: fix.title,
                    edits: fix
                        .edits
                        .into_iter()
                        .map(|e| {
                            let (s, t) =
                                (index.line_col(e.range.start), index.line_col(e.range.end));
                            LintEdit {
                                line: s.line,
                                column: s.col,
                                end_line: t.line,
                                end_column: t.col,
                                text: e.text,
                            }
                        })
                        .collect(),
                }),
                range: f.range,
            }
        })
        .collect();
    FileLint {
        path,
        package,
        migration,
        findings,
        text,
    }
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
    use crate::manifest::{Manifest, ManifestFormat};

    fn manifest(lint: &str) -> std::result::Result<Manifest, Box<SourceError>> {
        Manifest::parse(
            "strata.toml",
            &format!("name = \"acme/a\"\nschema = \"a\"\n\n[lint]\n{lint}"),
            ManifestFormat::Strata,
        )
        .map_err(Box::new)
    }

    #[test]
    fn lint_table_in_the_manifest() {
        let m = manifest(
            "pg_version = 16\nenable = [\"require-table-schema\"]\ndisable = [\"prefer-robust-stmts\"]\n\
             severity = { ban-drop-column = \"error\" }\n",
        )
        .unwrap();
        assert_eq!(m.lint.pg_version.as_deref(), Some("16"));
        assert_eq!(m.lint.enable, ["require-table-schema"]);
        assert_eq!(m.lint.severity["ban-drop-column"], Severity::Error);
        let linter = m.lint.linter(None).unwrap();
        assert_eq!(linter.severity("ban-drop-column"), Some(Severity::Error));
        assert_eq!(linter.severity("prefer-robust-stmts"), None);
    }

    #[test]
    fn unknown_rules_point_at_their_name() {
        let text = "name = \"acme/a\"\nschema = \"a\"\n\n[lint]\ndisable = [\"prefer-robust-stmts\", \"no-such-rule\"]\n";
        let e = Manifest::parse("strata.toml", text, ManifestFormat::Strata).unwrap_err();
        assert!(
            e.message.contains("unknown lint rule \"no-such-rule\""),
            "{}",
            e.message
        );
        let span = e.span.unwrap();
        assert_eq!(
            &text[span.offset()..span.offset() + span.len()],
            "\"no-such-rule\""
        );
    }

    #[test]
    fn bad_severities_and_versions_are_errors() {
        let e = manifest("severity = { ban-drop-column = \"fatal\" }\n").unwrap_err();
        assert!(
            e.message.contains("unknown severity \"fatal\""),
            "{}",
            e.message
        );
        let e = manifest("pg_version = \"fifteen\"\n").unwrap_err();
        assert!(
            e.message.contains("invalid PostgreSQL version"),
            "{}",
            e.message
        );
        let e = manifest("enabled = []\n").unwrap_err();
        assert!(
            e.message.contains("unknown field `enabled`"),
            "{}",
            e.message
        );
    }

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
