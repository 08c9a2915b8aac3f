//! Statements that PostgreSQL refuses to run inside a transaction block.

use crate::lex::{self, Words};
use crate::split::{Statement, StatementKind};

/// Why this statement cannot run inside a transaction block, or `None` when it can.
///
/// The rules mirror PostgreSQL's `PreventInTransactionBlock` calls that can be decided from the
/// text alone:
/// `CREATE INDEX CONCURRENTLY`, `DROP INDEX CONCURRENTLY`, `REINDEX … CONCURRENTLY`,
/// `REINDEX SCHEMA|DATABASE|SYSTEM`, `VACUUM`, `ALTER SYSTEM`, `CREATE|DROP DATABASE`,
/// `CREATE|DROP TABLESPACE`, `ALTER DATABASE … SET TABLESPACE`,
/// `ALTER TABLE … DETACH PARTITION … CONCURRENTLY`, `CLUSTER` without a table, `DISCARD ALL`,
/// `COMMIT|ROLLBACK PREPARED`, `CREATE SUBSCRIPTION` (unless `create_slot` or `connect` is false)
/// and `ALTER SUBSCRIPTION … REFRESH PUBLICATION` or `… SET|ADD|DROP PUBLICATION` (unless
/// `refresh` is false). `ALTER TYPE … ADD VALUE` is allowed in a transaction since PostgreSQL 12.
/// `DROP SUBSCRIPTION` depends on whether the subscription has a slot, which the text does not
/// say, so it is not reported.
///
/// `source` is the text `statement` was split from.
///
/// ```
/// let sql = "CREATE INDEX CONCURRENTLY i ON t (a); CREATE INDEX j ON t (b);";
/// let script = pgstrata_sql::split(sql);
/// let reasons: Vec<_> = script
///     .statements
///     .iter()
///     .map(|s| pgstrata_sql::non_transactional_reason(sql, s))
///     .collect();
/// assert_eq!(
///     reasons,
///     [Some("CREATE INDEX CONCURRENTLY cannot run inside a transaction block"), None]
/// );
/// ```
pub fn non_transactional_reason(source: &str, statement: &Statement) -> Option<&'static str> {
    match &statement.kind {
        StatementKind::CreateIndex { concurrently: true } => {
            Some("CREATE INDEX CONCURRENTLY cannot run inside a transaction block")
        }
        StatementKind::DropIndex { concurrently: true } => {
            Some("DROP INDEX CONCURRENTLY cannot run inside a transaction block")
        }
        StatementKind::Vacuum => Some("VACUUM cannot run inside a transaction block"),
        StatementKind::AlterSystem => Some("ALTER SYSTEM cannot run inside a transaction block"),
        StatementKind::CreateDatabase => {
            Some("CREATE DATABASE cannot run inside a transaction block")
        }
        StatementKind::DropDatabase => Some("DROP DATABASE cannot run inside a transaction block"),
        StatementKind::Reindex { concurrently } => reindex(source, statement, *concurrently),
        StatementKind::AlterTable => {
            let tokens = lex::significant(statement.text(source));
            let w = Words::new(statement.text(source), &tokens);
            let detach = w.top_level().into_iter().any(|i| {
                w.is(i, "DETACH") && w.is(i + 1, "PARTITION") && {
                    // ALTER TABLE t DETACH PARTITION p CONCURRENTLY: the word after the name.
                    let name_end = qualified_name_end(&w, i + 2);
                    w.is(name_end, "CONCURRENTLY")
                }
            });
            detach.then_some(
                "ALTER TABLE ... DETACH PARTITION ... CONCURRENTLY cannot run inside a transaction block",
            )
        }
        StatementKind::Other(tag) => other(source, statement, tag),
        _ => None,
    }
}

fn reindex(source: &str, statement: &Statement, concurrently: bool) -> Option<&'static str> {
    if concurrently {
        return Some("REINDEX CONCURRENTLY cannot run inside a transaction block");
    }
    let text = statement.text(source);
    let tokens = lex::significant(text);
    let w = Words::new(text, &tokens);
    let object = w.skip_group(1);
    match w.word(object).as_deref() {
        Some("SCHEMA") => Some("REINDEX SCHEMA cannot run inside a transaction block"),
        Some("DATABASE") => Some("REINDEX DATABASE cannot run inside a transaction block"),
        Some("SYSTEM") => Some("REINDEX SYSTEM cannot run inside a transaction block"),
        _ => None,
    }
}

fn other(source: &str, statement: &Statement, tag: &str) -> Option<&'static str> {
    let text = statement.text(source);
    let tokens = lex::significant(text);
    let w = Words::new(text, &tokens);
    match tag {
        "CREATE TABLESPACE" => Some("CREATE TABLESPACE cannot run inside a transaction block"),
        "DROP TABLESPACE" => Some("DROP TABLESPACE cannot run inside a transaction block"),
        "ALTER DATABASE" if w.has_top_level_phrase(&["SET", "TABLESPACE"]) => {
            Some("ALTER DATABASE ... SET TABLESPACE cannot run inside a transaction block")
        }
        "CLUSTER" => {
            // CLUSTER [VERBOSE] | CLUSTER (options): without a table it reclusters every
            // table, one transaction each.
            let mut i = w.skip_group(1);
            if w.is(i, "VERBOSE") {
                i += 1;
            }
            (i >= tokens.len() || tokens[i].kind == squawk_lexer::TokenKind::Semi)
                .then_some("CLUSTER without a table cannot run inside a transaction block")
        }
        "DISCARD ALL" => Some("DISCARD ALL cannot run inside a transaction block"),
        "COMMIT PREPARED" => Some("COMMIT PREPARED cannot run inside a transaction block"),
        "ROLLBACK PREPARED" => Some("ROLLBACK PREPARED cannot run inside a transaction block"),
        "CREATE SUBSCRIPTION" => {
            let opts = with_options(&w);
            let off = |name: &str| {
                opts.iter().any(|(n, v)| {
                    n.eq_ignore_ascii_case(name) && v.as_deref().is_some_and(lex::is_false)
                })
            };
            (!off("CREATE_SLOT") && !off("CONNECT")).then_some(
                "CREATE SUBSCRIPTION with create_slot = true cannot run inside a transaction block",
            )
        }
        "ALTER SUBSCRIPTION" => {
            if w.has_top_level_phrase(&["REFRESH", "PUBLICATION"]) {
                return Some(
                    "ALTER SUBSCRIPTION ... REFRESH PUBLICATION cannot run inside a transaction block",
                );
            }
            let changes_publications = ["SET", "ADD", "DROP"]
                .iter()
                .any(|verb| w.has_top_level_phrase(&[verb, "PUBLICATION"]));
            let no_refresh = with_options(&w).iter().any(|(n, v)| {
                n.eq_ignore_ascii_case("REFRESH") && v.as_deref().is_some_and(lex::is_false)
            });
            (changes_publications && !no_refresh).then_some(
                "ALTER SUBSCRIPTION ... PUBLICATION with refresh = true cannot run inside a transaction block",
            )
        }
        _ => None,
    }
}

/// The options of the last top-level `WITH ( … )`.
fn with_options(w: &Words<'_>) -> Vec<(String, Option<String>)> {
    let top = w.top_level();
    top.iter()
        .rev()
        .find(|&&i| w.is(i, "WITH"))
        .map(|&i| w.options(i + 1))
        .unwrap_or_default()
}

/// Index just after a possibly qualified name (`a`, `"A"."b"`, `db.s.t`) starting at `i`.
fn qualified_name_end(w: &Words<'_>, mut i: usize) -> usize {
    use squawk_lexer::TokenKind;
    let is_name = |t: Option<&crate::lex::Tok>| {
        t.is_some_and(|t| matches!(t.kind, TokenKind::Ident | TokenKind::QuotedIdent { .. }))
    };
    if !is_name(w.tokens.get(i)) {
        return i;
    }
    i += 1;
    while w.tokens.get(i).map(|t| t.kind) == Some(TokenKind::Dot) && is_name(w.tokens.get(i + 1)) {
        i += 2;
    }
    i
}
