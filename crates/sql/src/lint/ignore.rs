//! `-- squawk-ignore` comments for Strata's own rules (squawk applies them to its rules itself).
//!
//! Same meaning as squawk's: `-- squawk-ignore-file [rules]` silences the rules (all rules
//! without a list) in the whole text; `-- squawk-ignore rules` silences them for findings that
//! start on the comment's line or the line after it.

use std::collections::HashSet;

use squawk_linter::ignore::{IgnoreKind, ignore_rule_info};
use squawk_syntax::{SourceFile, SyntaxKind};

use super::Finding;
use super::catalog::{RULES, RuleSource};
use crate::LineIndex;

struct Ignores {
    all: bool,
    file: HashSet<String>,
    /// (1-based line of the comment, rules)
    lines: Vec<(u32, HashSet<String>)>,
}

/// Remove findings of Strata's rules that an ignore comment in `text` silences.
pub(super) fn filter(text: &str, findings: &mut Vec<Finding>) {
    let is_strata = |rule: &str| {
        RULES
            .iter()
            .any(|r| r.source == RuleSource::Strata && r.name == rule)
    };
    if !findings.iter().any(|f| is_strata(&f.rule)) {
        return;
    }
    let ignores = collect(text);
    let index = LineIndex::new(text);
    findings.retain(|f| {
        if !is_strata(&f.rule) {
            return true;
        }
        if ignores.all || ignores.file.contains(&f.rule) {
            return false;
        }
        let line = index.line_col(f.range.start).line;
        !ignores
            .lines
            .iter()
            .any(|(l, rules)| (*l == line || *l + 1 == line) && rules.contains(&f.rule))
    });
}

/// The `-- squawk-ignore-file` comments of `text`: what they silence everywhere in the file.
pub(super) fn file_level(text: &str) -> FileIgnores {
    if !super::compact::contains_ignore_case(text, "squawk-ignore-file") {
        return FileIgnores::default();
    }
    let ignores = collect(text);
    FileIgnores {
        all: ignores.all,
        rules: ignores.file,
    }
}

/// What `-- squawk-ignore-file` comments silence.
#[derive(Default)]
pub(super) struct FileIgnores {
    all: bool,
    rules: HashSet<String>,
}

impl FileIgnores {
    /// Whether findings of `rule` are silenced.
    pub(super) fn silences(&self, rule: &str) -> bool {
        self.all || self.rules.contains(rule)
    }
}

fn collect(text: &str) -> Ignores {
    let index = LineIndex::new(text);
    let mut ignores = Ignores {
        all: false,
        file: HashSet::new(),
        lines: Vec::new(),
    };
    let parse = SourceFile::parse(&crate::lex::shallow(text));
    for token in parse
        .syntax_node()
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| t.kind() == SyntaxKind::COMMENT)
    {
        let Some((names, range, kind)) = ignore_rule_info(&token) else {
            continue;
        };
        let rules: HashSet<String> = names
            .split(',')
            .map(|n| n.trim().to_string())
            .filter(|n| !n.is_empty())
            .collect();
        match kind {
            IgnoreKind::File if rules.is_empty() => ignores.all = true,
            IgnoreKind::File => ignores.file.extend(rules),
            IgnoreKind::Line => {
                let line = index.line_col(usize::from(range.start())).line;
                ignores.lines.push((line, rules));
            }
        }
    }
    ignores
}
