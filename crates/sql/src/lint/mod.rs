//! Linting SQL: squawk's rules plus Strata's own, on the same parser as the rest of Strata.
//!
//! Two rule sets:
//! - **migrations** ([`Linter::migration`]): squawk's migration rules and Strata's
//!   `no-transaction-required` and `drop-managed-dependency`. Each up section is linted on its
//!   own, knowing whether Strata runs it inside a transaction.
//! - **managed code** ([`Linter::managed`]): only Strata's small managed set (SECURITY DEFINER
//!   hygiene); migration rules are noise on code that is re-created on every deploy.
//!
//! Rules are enabled, disabled and re-graded with a [`LintConfig`]; `-- squawk-ignore rule` and
//! `-- squawk-ignore-file` comments silence Strata's rules as they silence squawk's. Findings are
//! byte ranges into the text, with squawk's help and fix when it offers one.
//!
//! ```
//! use pgstrata_sql::lint::{LintConfig, Linter, MigrationContext, Severity};
//! use pgstrata_sql::migration;
//!
//! let file = "ALTER TABLE invoice ADD COLUMN total bigint NOT NULL;\nCREATE INDEX CONCURRENTLY IF NOT EXISTS i ON invoice (total);\n";
//! let sections = migration::parse(file).unwrap();
//! let linter = Linter::new(&LintConfig::default()).unwrap();
//! let findings = linter.migration(file, &sections, &MigrationContext::default());
//! let rules: Vec<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
//! assert_eq!(rules, ["adding-required-field", "no-transaction-required"]);
//! assert!(findings.iter().all(|f| f.severity == Severity::Error));
//! ```

mod catalog;
mod compact;
mod ignore;
mod rules;

use std::collections::HashMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use squawk_syntax::SourceFile;

use crate::locks::{self, RelationName};
use crate::migration::{Direction, Section};

pub use catalog::{Applies, RuleInfo, RuleSource};

/// How serious a finding is. `strata lint` fails on errors (and on warnings with
/// `--deny-warnings`); `strata up` refuses to deploy on errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// Worth knowing; does not stop anything.
    Warning,
    /// Stops `strata lint` and `strata up`.
    Error,
}

impl Severity {
    /// `warning` or `error`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Severity {
    type Err = String;
    fn from_str(s: &str) -> Result<Severity, String> {
        match s {
            "warning" | "warn" => Ok(Severity::Warning),
            "error" => Ok(Severity::Error),
            other => Err(format!(
                "unknown severity \"{other}\": expected \"error\" or \"warning\""
            )),
        }
    }
}

/// Every rule Strata knows, squawk's first.
pub fn rules() -> &'static [RuleInfo] {
    catalog::RULES
}

/// Look a rule up by name; squawk's aliases (`prefer-timestamptz`) resolve to the rule.
/// `require-timeout-settings`, an alias for two rules, is not one rule: see [`LintConfig`].
pub fn rule(name: &str) -> Option<&'static RuleInfo> {
    let canonical = canonical_names(name)?;
    match canonical.as_slice() {
        [one] => catalog::RULES.iter().find(|r| r.name == one),
        _ => None,
    }
}

/// The rule names `name` stands for (one, or several for squawk's alias rules).
fn canonical_names(name: &str) -> Option<Vec<String>> {
    // Catalog names first: squawk does not parse every name it prints (`unused-ignore`).
    if catalog::RULES.iter().any(|r| r.name == name) {
        return Some(vec![name.to_string()]);
    }
    let rule = squawk_linter::Rule::try_from(name).ok()?;
    let expanded = rule.expands_to();
    if expanded.is_empty() {
        Some(vec![rule.to_string()])
    } else {
        Some(expanded.iter().map(ToString::to_string).collect())
    }
}

/// Which rules run and how serious they are (`[lint]` in `strata.toml`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LintConfig {
    /// Target PostgreSQL version, e.g. `"15"` or `"16.2"` (some rules depend on it; default 15).
    pub pg_version: Option<String>,
    /// Rules to turn on (opt-in rules, or rules disabled by default).
    pub enable: Vec<String>,
    /// Rules to turn off. Wins over `enable`.
    pub disable: Vec<String>,
    /// Severity overrides, by rule name.
    pub severity: Vec<(String, Severity)>,
}

/// A configuration that names an unknown rule or an invalid version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ConfigError {
    /// The offending value (a rule name or the version).
    pub value: String,
    /// What is wrong.
    pub message: String,
}

/// Objects managed code refers to, for `drop-managed-dependency`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedReference {
    /// What is referenced.
    pub kind: ObjectKind,
    /// Its name (schema-qualified when known).
    pub name: RelationName,
    /// Who refers to it, for the message (e.g. `billing.invoice_total() in functions/total.sql`).
    pub used_by: String,
}

/// Kinds of objects `drop-managed-dependency` follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// Table, view, materialized view, sequence or foreign table.
    Relation,
    /// Function or procedure (matched by name, whatever the signature).
    Routine,
    /// Type or domain.
    Type,
}

/// A relation in the database when the deploy starts (see [`MigrationContext::existing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingRelation {
    /// Its schema-qualified name.
    pub name: RelationName,
    /// It holds no rows (for an index: its table holds none), so a lock on it blocks nobody for long.
    pub empty: bool,
}

/// What the linter should know about the deploy a migration is part of.
#[derive(Debug, Clone, Default)]
pub struct MigrationContext {
    /// Relations created by migrations that run earlier in the same deploy: findings about locks
    /// on them, or about clients that use them, do not apply.
    pub created_before: Vec<RelationName>,
    /// When connected: the relations the database held when the deploy started. A relation that was not there
    /// (created earlier in the deploy, however the linter missed it) has no clients, and an empty one has no rows
    /// to rewrite, scan or wait for: lock-hazard findings (`require-concurrent-index-creation`,
    /// `constraint-missing-not-valid`, `changing-column-type`, …) on them do not apply, nor do client findings on
    /// a relation that was not there. `None` (offline): only what the deploy creates is known to be new.
    pub existing: Option<Vec<ExistingRelation>>,
    /// What managed code refers to.
    pub managed_references: Vec<ManagedReference>,
    /// Schema that unqualified names resolve to (the package's).
    pub default_schema: Option<String>,
}

/// One problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Rule name.
    pub rule: String,
    /// How serious.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
    /// Byte range in the linted text.
    pub range: Range<usize>,
    /// How to do it safely.
    pub help: Option<String>,
    /// A mechanical fix, when one exists.
    pub fix: Option<Fix>,
}

/// Text edits that fix a finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fix {
    /// What the fix does, e.g. ``Insert `if not exists` ``.
    pub title: String,
    /// Edits to the linted text (non-overlapping).
    pub edits: Vec<Edit>,
}

/// Replace `range` by `text` (an empty range inserts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edit {
    /// Byte range in the linted text.
    pub range: Range<usize>,
    /// Replacement.
    pub text: String,
}

impl Fix {
    /// `source` with the edits applied (edits that do not fit `source` are skipped).
    pub fn apply(&self, source: &str) -> String {
        let mut edits = self.edits.clone();
        edits.sort_by_key(|e| std::cmp::Reverse(e.range.start));
        let mut out = source.to_string();
        for e in edits {
            if e.range.end <= out.len()
                && out.is_char_boundary(e.range.start)
                && out.is_char_boundary(e.range.end)
            {
                out.replace_range(e.range, &e.text);
            }
        }
        out
    }
}

/// A configured linter (see the module docs).
#[derive(Debug, Clone)]
pub struct Linter {
    /// Enabled rules and their severity.
    enabled: HashMap<String, Severity>,
    squawk_rules: Vec<squawk_linter::Rule>,
    pg_version: squawk_linter::Version,
}

impl Linter {
    /// A linter for `config`; unknown rule names and bad versions are errors.
    pub fn new(config: &LintConfig) -> Result<Linter, ConfigError> {
        let unknown = |name: &str| ConfigError {
            value: name.to_string(),
            message: format!("unknown lint rule \"{name}\""),
        };
        let mut enabled: HashMap<String, Severity> = catalog::RULES
            .iter()
            .filter(|r| r.on_by_default)
            .map(|r| (r.name.to_string(), r.severity))
            .collect();
        let severity_of = |name: &str| {
            catalog::RULES
                .iter()
                .find(|r| r.name == name)
                .map_or(Severity::Warning, |r| r.severity)
        };
        for name in &config.enable {
            for n in canonical_names(name).ok_or_else(|| unknown(name))? {
                let s = severity_of(&n);
                enabled.insert(n, s);
            }
        }
        for (name, severity) in &config.severity {
            for n in canonical_names(name).ok_or_else(|| unknown(name))? {
                if let Some(s) = enabled.get_mut(&n) {
                    *s = *severity;
                } else if !config.disable.iter().any(|d| d == name) {
                    // Giving a severity to a rule that is off turns it on.
                    enabled.insert(n, *severity);
                }
            }
        }
        for name in &config.disable {
            for n in canonical_names(name).ok_or_else(|| unknown(name))? {
                enabled.remove(&n);
            }
        }
        let pg_version = match &config.pg_version {
            Some(v) => v.parse().map_err(|e| ConfigError {
                value: v.clone(),
                message: format!("invalid PostgreSQL version \"{v}\": {e}"),
            })?,
            None => squawk_linter::Version::default(),
        };
        let squawk_rules = enabled
            .keys()
            .filter_map(|n| squawk_linter::Rule::try_from(n.as_str()).ok())
            .collect();
        Ok(Linter {
            enabled,
            squawk_rules,
            pg_version,
        })
    }

    /// Whether `rule` runs, and at which severity.
    pub fn severity(&self, rule: &str) -> Option<Severity> {
        self.enabled.get(rule).copied()
    }

    /// Lint a migration file: `source` is the whole (normalised) file, `sections` what
    /// [`crate::migration::parse`] returned for it. Only up sections are linted; each knows
    /// whether it runs inside a transaction. Findings are ordered by position.
    pub fn migration(
        &self,
        source: &str,
        sections: &[Section],
        context: &MigrationContext,
    ) -> Vec<Finding> {
        self.lint_migration(source, sections, context).0
    }

    /// Lint one migration of a deploy, like [`Linter::migration`], then add the relations it creates to
    /// `context.created_before` (qualified with `context.default_schema` when they are not), ready for the
    /// migration after it. A deploy linted this way parses each migration once.
    ///
    /// ```
    /// use pgstrata_sql::lint::{LintConfig, Linter, MigrationContext};
    /// use pgstrata_sql::migration::parse;
    /// let linter = Linter::new(&LintConfig::default()).unwrap();
    /// let mut context = MigrationContext { default_schema: Some("app".into()), ..MigrationContext::default() };
    /// let first = "CREATE TABLE t (id int);";
    /// linter.migration_in_deploy(first, &parse(first).unwrap(), &mut context);
    /// // The index is built on a table the same deploy created: nobody can be blocked.
    /// let second = "CREATE INDEX t_id ON t (id);";
    /// assert!(linter.migration_in_deploy(second, &parse(second).unwrap(), &mut context).is_empty());
    /// // What the deploy has created so far: the table and the index.
    /// assert_eq!(context.created_before.len(), 2);
    /// ```
    pub fn migration_in_deploy(
        &self,
        source: &str,
        sections: &[Section],
        context: &mut MigrationContext,
    ) -> Vec<Finding> {
        let (findings, created) = self.lint_migration(source, sections, context);
        let qualified = created.into_iter().map(|r| match &context.default_schema {
            Some(schema) => r.qualified_or(schema),
            None => r,
        });
        context.created_before.extend(qualified);
        findings
    }

    /// The findings, and the relations the file's up sections create (as written). The file's data statements are
    /// linted apart from the rest (see [`compact`]): a data load of millions of rows is never one syntax tree.
    fn lint_migration(
        &self,
        source: &str,
        sections: &[Section],
        context: &MigrationContext,
    ) -> (Vec<Finding>, Vec<RelationName>) {
        let compact = compact::Compact::new(source, sections);
        if compact.is_whole(source) {
            return self.lint_sections(source, sections, context);
        }
        let (mut findings, created) = self.lint_sections(&compact.text, &compact.sections, context);
        let to_file = |r: &Range<usize>| compact.to_file(r.start)..compact.to_file(r.end);
        for f in &mut findings {
            f.range = to_file(&f.range);
            for edit in f.fix.iter_mut().flat_map(|fix| fix.edits.iter_mut()) {
                edit.range = to_file(&edit.range);
            }
        }
        let file_ignores = ignore::file_level(&compact.text);
        let mut data = Vec::new();
        for (range, in_transaction) in &compact.chunks {
            let mut chunk = self.lint_data(source, range.clone(), *in_transaction);
            chunk.retain(|f| !file_ignores.silences(&f.rule));
            data.extend(chunk);
        }
        // An ignore comment between statements is seen by both parts: it is unused only when neither part used
        // it. One inside a data statement is seen by its run alone, one anywhere else by the skeleton alone.
        let unused = |f: &Finding| f.rule == UNUSED_IGNORE;
        let unused_in_data: Vec<Range<usize>> = data
            .iter()
            .filter(|f| unused(f))
            .map(|f| f.range.clone())
            .collect();
        let in_a_run = |r: &Range<usize>| {
            compact
                .chunks
                .iter()
                .any(|(c, _)| c.start <= r.start && r.end <= c.end)
        };
        findings.retain(|f| !unused(f) || !in_a_run(&f.range) || unused_in_data.contains(&f.range));
        data.retain(|f| !unused(f) || compact.is_cut(&f.range));
        findings.extend(data);
        sort(&mut findings);
        (findings, created)
    }

    /// Lint a run of data statements (`range` of `source`, see [`compact`]): squawk's rules, whose findings on such
    /// statements are about the statement alone, and syntax errors, from one parse.
    fn lint_data(&self, source: &str, range: Range<usize>, in_transaction: bool) -> Vec<Finding> {
        let Some(text) = source.get(range.clone()) else {
            return Vec::new();
        };
        let shallow = crate::lex::shallow(text);
        let parse = SourceFile::parse(&shallow);
        let mut findings = self.squawk_parsed(&parse, &shallow, in_transaction);
        if !parse.errors().is_empty() {
            findings.extend(self.syntax_errors(text, 0..text.len()));
        }
        drop(parse);
        ignore::filter(text, &mut findings);
        for f in &mut findings {
            f.range = range.start + f.range.start..range.start + f.range.end;
            for edit in f.fix.iter_mut().flat_map(|fix| fix.edits.iter_mut()) {
                edit.range = range.start + edit.range.start..range.start + edit.range.end;
            }
        }
        findings
    }

    /// [`Linter::lint_migration`] on a text that is linted whole.
    fn lint_sections(
        &self,
        source: &str,
        sections: &[Section],
        context: &MigrationContext,
    ) -> (Vec<Finding>, Vec<RelationName>) {
        let preamble_end = sections
            .iter()
            .filter_map(|s| s.marker.as_ref().map(|m| m.start))
            .min()
            .unwrap_or(0);
        let mut created: Vec<RelationName> = Vec::new();
        let mut out = Vec::new();
        for section in sections.iter().filter(|s| s.direction == Direction::Up) {
            // Lint the section with everything but the file's preamble (its leading comments,
            // where `-- squawk-ignore-file` lives) and the section itself blanked out, so
            // offsets stay those of the file.
            let keep = [
                0..preamble_end,
                section.marker.clone().unwrap_or(0..0),
                section.range.clone(),
            ];
            let text = blank_except(source, &keep);
            let mut findings = self.squawk(&text, !section.no_transaction);
            findings.extend(rules::migration_rules(
                self, source, &text, section, context,
            ));
            findings.extend(self.syntax_errors(source, section.range.clone()));

            let analysis = locks::analyze_after(
                section.text(source),
                &[&context.created_before, &created],
                None,
            );
            drop_findings_on_new_relations(
                &mut findings,
                &analysis,
                section.range.start,
                context.existing.as_deref(),
            );
            created.extend(analysis.iter().flat_map(|s| s.creates.iter().cloned()));

            ignore::filter(&text, &mut findings);
            out.extend(findings);
        }
        sort(&mut out);
        (out, created)
    }

    /// Lint managed code (functions, views, … re-created on every deploy) with the managed rule
    /// set.
    ///
    /// ```
    /// use pgstrata_sql::lint::{LintConfig, Linter};
    /// let sql = "CREATE FUNCTION billing.pay() RETURNS void SECURITY DEFINER LANGUAGE sql AS 'SELECT 1';";
    /// let findings = Linter::new(&LintConfig::default()).unwrap().managed(sql);
    /// assert_eq!(findings[0].rule, "security-definer-search-path");
    /// ```
    pub fn managed(&self, source: &str) -> Vec<Finding> {
        let mut findings = rules::managed_rules(self, source);
        findings.extend(self.syntax_errors(source, 0..source.len()));
        ignore::filter(source, &mut findings);
        sort(&mut findings);
        findings
    }

    /// Run squawk over `text` (one section, others blanked).
    fn squawk(&self, text: &str, in_transaction: bool) -> Vec<Finding> {
        if self.squawk_rules.is_empty() {
            return Vec::new();
        }
        let text = &*crate::lex::shallow(text);
        self.squawk_parsed(&SourceFile::parse(text), text, in_transaction)
    }

    /// Run squawk over `parse`, the tree of `text`.
    fn squawk_parsed(
        &self,
        parse: &squawk_syntax::Parse<SourceFile>,
        text: &str,
        in_transaction: bool,
    ) -> Vec<Finding> {
        if self.squawk_rules.is_empty() {
            return Vec::new();
        }
        let mut linter = squawk_linter::Linter::from(self.squawk_rules.iter().copied());
        linter.settings = squawk_linter::LinterSettings {
            pg_version: self.pg_version,
            assume_in_transaction: in_transaction,
        };
        linter
            .lint(parse, text)
            .into_iter()
            .filter(|v| !is_strata_rule_in_ignore(v))
            .filter_map(|v| {
                let rule = v.code.to_string();
                let severity = self.severity(&rule)?;
                Some(Finding {
                    rule,
                    severity,
                    message: v.message,
                    range: usize::from(v.text_range.start())..usize::from(v.text_range.end()),
                    help: v.help,
                    fix: v.fix.map(|f| Fix {
                        title: f.title,
                        edits: f
                            .edits
                            .into_iter()
                            .map(|e| Edit {
                                range: usize::from(e.text_range.start())
                                    ..usize::from(e.text_range.end()),
                                text: e.text.unwrap_or_default(),
                            })
                            .collect(),
                    }),
                })
            })
            .collect()
    }

    /// The parser's complaints about `range` of `source`, as `syntax-error` findings.
    fn syntax_errors(&self, source: &str, range: Range<usize>) -> Vec<Finding> {
        let Some(severity) = self.severity(catalog::SYNTAX_ERROR) else {
            return Vec::new();
        };
        let Some(text) = source.get(range.clone()) else {
            return Vec::new();
        };
        crate::split(text)
            .errors
            .into_iter()
            .map(|e| Finding {
                rule: catalog::SYNTAX_ERROR.to_string(),
                severity,
                message: format!("the SQL parser does not understand this: {}", e.message),
                range: range.start + e.range.start..range.start + e.range.end,
                help: Some(
                    "the other rules may miss this statement. PostgreSQL has the last word: if it accepts the \
                     statement, the parser lags behind (silence this with `-- squawk-ignore syntax-error`)"
                        .to_string(),
                ),
                fix: None,
            })
            .collect()
    }
}

/// squawk's rule for ignore comments that silence nothing.
const UNUSED_IGNORE: &str = "unused-ignore";

/// squawk reports names it does not know in `-- squawk-ignore` comments; Strata's rule names
/// are known here.
fn is_strata_rule_in_ignore(v: &squawk_linter::Violation) -> bool {
    v.code == squawk_linter::Rule::UnusedIgnore
        && v.message.strip_prefix("unknown name ").is_some_and(|name| {
            catalog::RULES
                .iter()
                .any(|r| r.source == RuleSource::Strata && r.name == name)
        })
}

/// Drop findings about existing relations when the statement only touches relations created earlier in the
/// deploy, or (when the catalog at the start of the deploy is known) relations that were not there then, or, for
/// lock hazards, that were empty.
fn drop_findings_on_new_relations(
    findings: &mut Vec<Finding>,
    analysis: &[locks::StatementLocks],
    offset: usize,
    existing: Option<&[ExistingRelation]>,
) {
    findings.retain(|f| {
        if !catalog::ABOUT_EXISTING_RELATIONS.contains(&f.rule.as_str()) {
            return true;
        }
        let Some(statement) = analysis.iter().find(|s| {
            offset + s.range.start <= f.range.start && f.range.start < offset + s.range.end.max(1)
        }) else {
            return true;
        };
        let lock_hazard = catalog::LOCK_HAZARDS.contains(&f.rule.as_str());
        // An unqualified name matches the relation of that name in any schema: when in doubt, keep the finding.
        let counts = |l: &locks::Lock| match existing {
            None => true,
            Some(list) => list
                .iter()
                .any(|e| locks::same_relation(&e.name, &l.relation) && !(lock_hazard && e.empty)),
        };
        statement.locks.is_empty()
            || statement
                .locks
                .iter()
                .any(|l| !l.created_earlier && counts(l))
    });
}

fn sort(findings: &mut [Finding]) {
    findings.sort_by(|a, b| {
        (a.range.start, a.range.end, &a.rule).cmp(&(b.range.start, b.range.end, &b.rule))
    });
}

/// `source` with every byte outside `keep` replaced by a space (line breaks kept), so the result
/// has the same length and line structure.
fn blank_except(source: &str, keep: &[Range<usize>]) -> String {
    let mut out = String::with_capacity(source.len());
    for (i, c) in source.char_indices() {
        if c == '\n' || c == '\r' || keep.iter().any(|r| r.contains(&i)) {
            out.push(c);
        } else {
            out.extend(std::iter::repeat_n(' ', c.len_utf8()));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::parse;

    /// Linting data statements apart (see [`compact`]) finds what one pass over the whole file finds.
    #[test]
    fn linting_apart_finds_what_one_pass_finds() {
        let data = [
            "INSERT INTO t (a) VALUES (1);",
            "INSERT INTO t (a, a) VALUES (1, 2);",
            "UPDATE t SET a = 1, a = 2 WHERE a > 0;",
            "-- squawk-ignore ban-duplicate-column-assignments\nUPDATE t SET a = 1, a = 2;",
            "DELETE FROM t WHERE a = ;",
            "-- a comment\nINSERT INTO t VALUES ('x;y'), ($$z$$);",
            "UPDATE alembic_version SET version_num = '2';",
            "UPDATE t\n   SET a = 1, -- squawk-ignore ban-duplicate-column-assignments\n       a = 2;",
            "INSERT INTO t (a) VALUES (1) /* squawk-ignore ban-duplicate-column-assignments */;",
            "INSERT INTO t (a) -- squawk-ignore-file\n VALUES (1);",
        ];
        let other = [
            "ALTER TABLE t ADD COLUMN b bigint NOT NULL;",
            "CREATE INDEX t_a ON t (a);",
            "-- squawk-ignore require-concurrent-index-creation\nCREATE INDEX t_b ON t (b);",
            "CREATE TABLE u (id int);",
            "BEGIN;",
            "COMMIT;",
            "SET lock_timeout = '1s';",
            "CREATE INDEX CONCURRENTLY t_c ON t (c);",
            "ALTER TABLE t ALTER COLUMN a TYPE bigint;",
            "-- squawk-ignore ban-duplicate-column-assignments",
            "SELECT 1 /* squawk-ignore require-concurrent-index-creation */;",
        ];
        let linter = Linter::new(&LintConfig::default()).unwrap();
        // A fixed pseudo-random walk over the statements: reproducible, and many mixtures.
        let mut seed: u64 = 0x5eed;
        let mut next = |n: usize| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as usize % n
        };
        for case in 0..1000 {
            let mut file = String::new();
            if case % 3 == 0 {
                file.push_str("-- migrate:up\n");
            }
            if case % 7 == 0 {
                file.insert_str(
                    0,
                    "-- squawk-ignore-file ban-duplicate-column-assignments\n",
                );
            }
            for _ in 0..next(16) + 1 {
                let statement = if next(3) == 0 {
                    other[next(other.len())]
                } else {
                    data[next(data.len())]
                };
                file.push_str(statement);
                file.push_str(if next(4) == 0 { " " } else { "\n" });
            }
            if case % 3 == 0 {
                file.push_str("-- migrate:down\nDELETE FROM t;\n");
            }
            let Ok(sections) = parse(&file) else { continue };
            let context = MigrationContext::default();
            let (mut whole, _) = linter.lint_sections(&file, &sections, &context);
            sort(&mut whole);
            let (apart, _) = linter.lint_migration(&file, &sections, &context);
            assert_eq!(apart, whole, "{file}");
        }
    }
}
