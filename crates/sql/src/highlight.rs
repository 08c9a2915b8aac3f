//! Classes of SQL tokens for syntax highlighting (the console shows migrations with them). The same lexer as
//! everything else here: a dollar-quoted body or an `E'…'` string is one string, a keyword inside one is not a
//! keyword.

use std::ops::Range;

use squawk_lexer::{LiteralKind, TokenKind};

use crate::lex::tokenize;

/// What a piece of SQL text is, for colouring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// A reserved or common keyword (`CREATE`, `TABLE`, `NOT`, …).
    Keyword,
    /// A name: an unquoted word that is not a keyword, or a quoted identifier.
    Name,
    /// A string literal in any form, dollar-quoted bodies included.
    String,
    /// A numeric literal.
    Number,
    /// A `--` or `/* */` comment.
    Comment,
    /// A parameter (`$1`) or a psql variable.
    Parameter,
    /// Whitespace, operators and punctuation.
    Plain,
}

impl Class {
    /// A short name (used as a CSS class).
    pub fn name(self) -> &'static str {
        match self {
            Class::Keyword => "kw",
            Class::Name => "nm",
            Class::String => "st",
            Class::Number => "nu",
            Class::Comment => "cm",
            Class::Parameter => "pa",
            Class::Plain => "pl",
        }
    }
}

/// Words shown as keywords: PostgreSQL's reserved words and the common non-reserved ones of DDL and DML.
const KEYWORDS: &[&str] = &[
    "ADD",
    "AFTER",
    "ALL",
    "ALTER",
    "ALWAYS",
    "ANALYZE",
    "AND",
    "ANY",
    "ARRAY",
    "AS",
    "ASC",
    "BEFORE",
    "BEGIN",
    "BETWEEN",
    "BY",
    "CASCADE",
    "CASE",
    "CAST",
    "CHECK",
    "COLLATE",
    "COLUMN",
    "COMMENT",
    "COMMIT",
    "CONCURRENTLY",
    "CONSTRAINT",
    "CREATE",
    "CROSS",
    "CURRENT_DATE",
    "CURRENT_TIMESTAMP",
    "CURRENT_USER",
    "DECLARE",
    "DEFAULT",
    "DEFERRABLE",
    "DELETE",
    "DESC",
    "DISTINCT",
    "DO",
    "DOMAIN",
    "DROP",
    "EACH",
    "ELSE",
    "ELSIF",
    "END",
    "ENUM",
    "EXCEPT",
    "EXECUTE",
    "EXISTS",
    "EXTENSION",
    "FALSE",
    "FETCH",
    "FILTER",
    "FOR",
    "FOREIGN",
    "FROM",
    "FULL",
    "FUNCTION",
    "GENERATED",
    "GRANT",
    "GROUP",
    "HAVING",
    "IDENTITY",
    "IF",
    "ILIKE",
    "IMMUTABLE",
    "IN",
    "INDEX",
    "INNER",
    "INSERT",
    "INTERSECT",
    "INTO",
    "IS",
    "JOIN",
    "KEY",
    "LANGUAGE",
    "LATERAL",
    "LEFT",
    "LIKE",
    "LIMIT",
    "LOOP",
    "MATERIALIZED",
    "NOT",
    "NOTHING",
    "NULL",
    "OF",
    "OFFSET",
    "ON",
    "OR",
    "ORDER",
    "OUTER",
    "OWNER",
    "PARTITION",
    "PERFORM",
    "POLICY",
    "PRIMARY",
    "PROCEDURE",
    "RAISE",
    "REFERENCES",
    "RENAME",
    "REPLACE",
    "RESTRICT",
    "RETURN",
    "RETURNING",
    "RETURNS",
    "REVOKE",
    "RIGHT",
    "ROLE",
    "ROLLBACK",
    "ROW",
    "SCHEMA",
    "SECURITY",
    "SELECT",
    "SEQUENCE",
    "SET",
    "STABLE",
    "STRICT",
    "TABLE",
    "TEMPORARY",
    "THEN",
    "TO",
    "TRIGGER",
    "TRUE",
    "TRUNCATE",
    "TYPE",
    "UNION",
    "UNIQUE",
    "UNLOGGED",
    "UPDATE",
    "USING",
    "VACUUM",
    "VALUES",
    "VIEW",
    "VOLATILE",
    "WHEN",
    "WHERE",
    "WINDOW",
    "WITH",
];

fn is_keyword(word: &str) -> bool {
    KEYWORDS
        .binary_search_by(|k| {
            k.as_bytes()
                .cmp(&word.to_ascii_uppercase().into_bytes()[..])
        })
        .is_ok()
}

/// The text cut into pieces that cover it without gaps, each with its class. Adjacent pieces of the same class
/// are merged, so plain runs of spaces and punctuation come out as one piece.
pub fn highlight(source: &str) -> Vec<(Range<usize>, Class)> {
    let mut out: Vec<(Range<usize>, Class)> = Vec::new();
    for tok in tokenize(source) {
        let class = match tok.kind {
            TokenKind::LineComment | TokenKind::BlockComment { .. } => Class::Comment,
            TokenKind::Ident if is_keyword(tok.text(source)) => Class::Keyword,
            TokenKind::Ident | TokenKind::QuotedIdent { .. } => Class::Name,
            TokenKind::PositionalParam { .. } => Class::Parameter,
            TokenKind::Literal { kind } => match kind {
                LiteralKind::Int { .. } | LiteralKind::Numeric { .. } => Class::Number,
                _ => Class::String,
            },
            _ => Class::Plain,
        };
        match out.last_mut() {
            Some((range, last)) if *last == class && range.end == tok.range.start => {
                range.end = tok.range.end;
            }
            _ => out.push((tok.range, class)),
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used, reason = "tests")]
mod tests {
    use super::*;

    fn classes(sql: &str) -> Vec<(&str, Class)> {
        highlight(sql)
            .into_iter()
            .filter(|(_, c)| *c != Class::Plain)
            .map(|(r, c)| (&sql[r], c))
            .collect()
    }

    #[test]
    fn keywords_are_sorted_for_the_binary_search() {
        let mut sorted = KEYWORDS.to_vec();
        sorted.sort_unstable();
        assert_eq!(sorted, KEYWORDS);
    }

    #[test]
    fn pieces_cover_the_text_and_strings_hide_keywords() {
        let sql = "create table t (id int8 DEFAULT 42); -- done\nSELECT $$ select 1 $$, 'from', \"Select\", $1;";
        let pieces = highlight(sql);
        let mut end = 0;
        for (range, _) in &pieces {
            assert_eq!(range.start, end);
            end = range.end;
        }
        assert_eq!(end, sql.len());
        assert_eq!(
            classes(sql),
            vec![
                ("create", Class::Keyword),
                ("table", Class::Keyword),
                ("t", Class::Name),
                ("id", Class::Name),
                ("int8", Class::Name),
                ("DEFAULT", Class::Keyword),
                ("42", Class::Number),
                ("-- done", Class::Comment),
                ("SELECT", Class::Keyword),
                ("$$ select 1 $$", Class::String),
                ("'from'", Class::String),
                ("\"Select\"", Class::Name),
                ("$1", Class::Parameter),
            ]
        );
    }
}
