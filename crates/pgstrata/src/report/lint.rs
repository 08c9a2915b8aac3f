//! What the linter found: per file, per finding, with fixes; each finding also as a `miette` diagnostic.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use miette::{Diagnostic, LabeledSpan, NamedSource};
use pgstrata_sql::LineIndex;

pub use pgstrata_sql::lint::Severity;

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
    pub(crate) fn push(&mut self, file: FileLint) {
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
    pub(crate) fn error_list(&self) -> Vec<String> {
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
        let span = super::widen(self.file.inner(), self.finding.range.clone());
        Some(Box::new(std::iter::once(LabeledSpan::new_with_span(
            None, span,
        ))))
    }
}

/// A file's findings, located by line and column.
pub(crate) fn file_lint(
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
