//! Strata's own rules, where squawk has none:
//!
//! - `no-transaction-required` (migrations, error): a statement PostgreSQL refuses inside a
//!   transaction block, in a section Strata runs inside one. It would fail at deploy time, after
//!   the statements before it ran.
//! - `drop-managed-dependency` (migrations, error): `DROP` of a table, view, sequence, function,
//!   procedure, type or domain that managed code still refers to.
//! - `security-definer-search-path` (both, error): a `SECURITY DEFINER` routine without a fixed
//!   `search_path`: whoever calls it can put their own objects first on the path and run them
//!   with the owner's rights.
//! - `security-definer-unsafe-search-path` (both, warning): its `search_path` lists a schema that
//!   untrusted users may write to (`public`, `"$user"`), takes the creating session's path
//!   (`FROM CURRENT`), or puts `pg_temp` anywhere but last.

use std::ops::Range;

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SourceFile, SyntaxKind, SyntaxNode};

use super::catalog::{
    DROP_MANAGED_DEPENDENCY, NO_TRANSACTION_REQUIRED, SECURITY_DEFINER_SEARCH_PATH,
    SECURITY_DEFINER_UNSAFE_SEARCH_PATH,
};
use super::{Edit, Finding, Fix, Linter, MigrationContext, ObjectKind};
use crate::locks::{RelationName, name_below, same_relation};
use crate::migration::Section;

/// Strata's migration rules over one up section. `source` is the file, `text` the same file with
/// everything outside the section blanked.
pub(super) fn migration_rules(
    linter: &Linter,
    source: &str,
    text: &str,
    section: &Section,
    context: &MigrationContext,
) -> Vec<Finding> {
    let mut out = Vec::new();
    if !section.no_transaction {
        out.extend(no_transaction_required(linter, source, section));
    }
    if !context.managed_references.is_empty() {
        out.extend(drop_managed_dependency(linter, text, context));
    }
    out.extend(security_definer(linter, text));
    out
}

/// Strata's managed-code rules.
pub(super) fn managed_rules(linter: &Linter, source: &str) -> Vec<Finding> {
    security_definer(linter, source)
}

fn no_transaction_required(linter: &Linter, source: &str, section: &Section) -> Vec<Finding> {
    let Some(severity) = linter.severity(NO_TRANSACTION_REQUIRED) else {
        return Vec::new();
    };
    let text = section.text(source);
    let offset = section.range.start;
    let fix = match &section.marker {
        // dbmate's marker takes an option; a plain file takes Strata's directive as first line.
        Some(marker) => Fix {
            title: "Add `transaction:false` to the `-- migrate:up` marker".to_string(),
            edits: vec![Edit {
                range: marker.end..marker.end,
                text: " transaction:false".to_string(),
            }],
        },
        None => Fix {
            title: "Add `-- strata:no-transaction` as the first line".to_string(),
            edits: vec![Edit {
                range: 0..0,
                text: "-- strata:no-transaction\n".to_string(),
            }],
        },
    };
    // Boundaries and kinds are enough here: syntax errors are the `syntax-error` rule's.
    crate::statements(text)
        .iter()
        .filter_map(|statement| {
            let reason = crate::non_transactional_reason(text, statement)?;
            let range = first_line(text, statement.range.clone());
            Some(Finding {
                rule: NO_TRANSACTION_REQUIRED.to_string(),
                severity,
                message: format!(
                    "{reason}, and Strata runs this migration inside one: the deploy would fail here"
                ),
                range: offset + range.start..offset + range.end,
                help: Some(
                    "mark the migration `-- strata:no-transaction` (its first line): Strata then runs it outside a \
                     transaction, one statement at a time, and records which statements committed if one fails. \
                     Keep such a migration to the statements that need it."
                        .to_string(),
                ),
                fix: Some(fix.clone()),
            })
        })
        .collect()
}

fn drop_managed_dependency(
    linter: &Linter,
    text: &str,
    context: &MigrationContext,
) -> Vec<Finding> {
    let Some(severity) = linter.severity(DROP_MANAGED_DEPENDENCY) else {
        return Vec::new();
    };
    let qualify = |n: &RelationName| match &context.default_schema {
        Some(s) => n.qualified_or(s),
        None => n.clone(),
    };
    let mut out = Vec::new();
    for stmt in SourceFile::parse(&crate::lex::shallow(text)).tree().stmts() {
        let node = stmt.syntax();
        let (kind, ref_kinds): (ObjectKind, &[SyntaxKind]) = match node.kind() {
            SyntaxKind::DROP_TABLE
            | SyntaxKind::DROP_VIEW
            | SyntaxKind::DROP_MATERIALIZED_VIEW
            | SyntaxKind::DROP_SEQUENCE
            | SyntaxKind::DROP_FOREIGN_TABLE => (
                ObjectKind::Relation,
                &[
                    SyntaxKind::TABLE_NAME_REF,
                    SyntaxKind::VIEW_REF,
                    SyntaxKind::SEQUENCE_REF,
                    SyntaxKind::PATH_REF,
                ],
            ),
            SyntaxKind::DROP_FUNCTION | SyntaxKind::DROP_PROCEDURE | SyntaxKind::DROP_ROUTINE => {
                (ObjectKind::Routine, &[SyntaxKind::FUNCTION_NAME_REF])
            }
            SyntaxKind::DROP_TYPE | SyntaxKind::DROP_DOMAIN => (
                ObjectKind::Type,
                &[SyntaxKind::TYPE_NAME_REF, SyntaxKind::DOMAIN_REF],
            ),
            _ => continue,
        };
        for target in dropped_names(node, ref_kinds) {
            let (name, range) = target;
            let dropped = qualify(&name);
            let users: Vec<&str> = context
                .managed_references
                .iter()
                .filter(|r| r.kind == kind && same_relation(&qualify(&r.name), &dropped))
                .map(|r| r.used_by.as_str())
                .collect();
            if users.is_empty() {
                continue;
            }
            out.push(Finding {
                rule: DROP_MANAGED_DEPENDENCY.to_string(),
                severity,
                message: format!(
                    "drops {dropped}, which managed code still uses: {}",
                    users.join(", ")
                ),
                range,
                help: Some(
                    "change the managed code that uses it in the same release, or keep the object until nothing \
                     uses it and drop it in a later migration"
                        .to_string(),
                ),
                fix: None,
            });
        }
    }
    out
}

/// Names dropped by a DROP statement: the direct children of the given kinds (or, for routines,
/// inside each signature), with their byte ranges.
fn dropped_names(node: &SyntaxNode, kinds: &[SyntaxKind]) -> Vec<(RelationName, Range<usize>)> {
    node.descendants()
        .filter(|n| kinds.contains(&n.kind()))
        // A PATH_REF inside a qualifier or a matched reference is not a name of its own.
        .filter(|n| {
            n.parent()
                .is_none_or(|p| !kinds.contains(&p.kind()) && p.kind() != SyntaxKind::PATH_REF)
        })
        .filter_map(|n| {
            let r = n.text_range();
            name_below(&n).map(|name| (name, usize::from(r.start())..usize::from(r.end())))
        })
        .collect()
}

fn security_definer(linter: &Linter, text: &str) -> Vec<Finding> {
    let missing = linter.severity(SECURITY_DEFINER_SEARCH_PATH);
    let unsafe_path = linter.severity(SECURITY_DEFINER_UNSAFE_SEARCH_PATH);
    if missing.is_none() && unsafe_path.is_none() {
        return Vec::new();
    }
    let mut out = Vec::new();
    for stmt in SourceFile::parse(&crate::lex::shallow(text)).tree().stmts() {
        let options = match &stmt {
            ast::Stmt::CreateFunction(f) => f.option_list(),
            ast::Stmt::CreateProcedure(p) => p.option_list(),
            _ => None,
        };
        let Some(options) = options else {
            continue;
        };
        let options = options.syntax();
        let Some(definer) = options
            .children()
            .find(|o| o.kind() == SyntaxKind::SECURITY_DEFINER_FUNC_OPTION)
        else {
            continue;
        };
        let search_path = options
            .children()
            .filter(|o| o.kind() == SyntaxKind::SET_FUNC_OPTION)
            .find(|o| {
                o.descendants()
                    .find(|n| n.kind() == SyntaxKind::CONFIG_PARAMETER_REF)
                    .is_some_and(|p| p.text().to_string().eq_ignore_ascii_case("search_path"))
            });
        match search_path {
            None => {
                if let Some(severity) = missing {
                    let r = definer.text_range();
                    out.push(Finding {
                        rule: SECURITY_DEFINER_SEARCH_PATH.to_string(),
                        severity,
                        message: "SECURITY DEFINER without `SET search_path`: a caller can put objects of their \
                                  own earlier on the search path and have them run with the owner's rights"
                            .to_string(),
                        range: usize::from(r.start())..usize::from(r.end()),
                        help: Some(
                            "add `SET search_path = <trusted schemas>, pg_temp` to the definition (pg_temp last), or \
                             qualify every name in the body and add `SET search_path = ''`"
                                .to_string(),
                        ),
                        fix: None,
                    });
                }
            }
            Some(set) => {
                if let (Some(severity), Some(problem)) = (unsafe_path, unsafe_search_path(&set)) {
                    let r = set.text_range();
                    out.push(Finding {
                        rule: SECURITY_DEFINER_UNSAFE_SEARCH_PATH.to_string(),
                        severity,
                        message: format!("SECURITY DEFINER with an unsafe search_path: {problem}"),
                        range: usize::from(r.start())..usize::from(r.end()),
                        help: Some(
                            "list only schemas that untrusted users cannot create objects in, and end with pg_temp"
                                .to_string(),
                        ),
                        fix: None,
                    });
                }
            }
        }
    }
    out
}

/// What is wrong with a `SET search_path …` function option, if anything.
fn unsafe_search_path(set: &SyntaxNode) -> Option<String> {
    if set
        .descendants()
        .any(|n| n.kind() == SyntaxKind::FROM_CURRENT)
    {
        return Some(
            "`FROM CURRENT` takes the path of the session that creates the function".to_string(),
        );
    }
    let value = set
        .descendants()
        .find(|n| n.kind() == SyntaxKind::TO_CONFIG_VALUE)?;
    let mut schemas = Vec::new();
    for item in value.children() {
        let raw = item.text().to_string();
        match item.kind() {
            SyntaxKind::LITERAL => {
                let inner = raw.trim_matches('\'');
                schemas.extend(
                    inner
                        .split(',')
                        .map(|s| unquote_ident(s.trim()))
                        .filter(|s| !s.is_empty()),
                );
            }
            _ => schemas.push(unquote_ident(raw.trim())),
        }
    }
    if let Some(open) = schemas.iter().find(|s| *s == "public" || *s == "$user") {
        let shown = if open == "$user" { "\"$user\"" } else { open };
        return Some(format!(
            "{shown} is on it, and untrusted users may be able to create objects there"
        ));
    }
    if let Some(pos) = schemas.iter().position(|s| s == "pg_temp")
        && pos + 1 != schemas.len()
    {
        return Some(
            "pg_temp is not last: temporary objects would shadow the listed schemas".into(),
        );
    }
    None
}

fn unquote_ident(s: &str) -> String {
    match s.strip_prefix('"').and_then(|s| s.strip_suffix('"')) {
        Some(inner) => inner.replace("\"\"", "\""),
        None => s.to_ascii_lowercase(),
    }
}

/// `range` cut at its first line break (a long statement is pointed at by its first line).
fn first_line(text: &str, range: Range<usize>) -> Range<usize> {
    let end = text
        .get(range.clone())
        .and_then(|t| t.find('\n'))
        .map_or(range.end, |i| range.start + i);
    range.start..end.max(range.start)
}
