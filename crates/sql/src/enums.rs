//! Enum values added by a script, and the string literals a script uses: what a deploy needs to know to end its
//! transaction after a migration that adds an enum value a later one uses. PostgreSQL refuses a value added by
//! `ALTER TYPE … ADD VALUE` in the transaction that added it (`55P04 unsafe use of new value`).
//!
//! ```
//! use pgstrata_sql::enums;
//!
//! let adds = enums::facts("ALTER TYPE mood ADD VALUE IF NOT EXISTS 'meh' AFTER 'ok';");
//! assert_eq!(adds.added[0].type_name.name, "mood");
//! assert_eq!(adds.added[0].value, "meh");
//! let uses = enums::facts("UPDATE person SET mood = 'meh' WHERE mood = 'ok';");
//! assert!(uses.literals.contains("meh"));
//! ```

use std::collections::BTreeSet;
use std::ops::Range;

use squawk_lexer::{LiteralKind, TokenKind};

use crate::lex::{self, Tok};
use crate::locks::RelationName;

/// A value `ALTER TYPE … ADD VALUE` adds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedValue {
    /// The enum type, as written (unquoted parts folded to lower case).
    pub type_name: RelationName,
    /// The new value.
    pub value: String,
    /// Byte range of the statement's `ALTER` keyword to the value.
    pub range: Range<usize>,
}

/// What a script does with enums, and the strings it uses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EnumFacts {
    /// Values added, in order.
    pub added: Vec<AddedValue>,
    /// Every string literal's value, those inside dollar-quoted bodies (functions, `DO` blocks) included.
    pub literals: BTreeSet<String>,
}

/// The enum facts of `source`.
pub fn facts(source: &str) -> EnumFacts {
    let mut out = EnumFacts::default();
    // Statement by statement: a data load's tokens would not fit in memory all at once.
    crate::split::for_each_statement(source, |statement| {
        collect(statement.text(source), statement.range.start, 0, &mut out);
    });
    out
}

/// Collect the facts of `source`, which starts at `offset` of the script.
fn collect(source: &str, offset: usize, depth: u8, out: &mut EnumFacts) {
    let tokens = lex::significant(source);
    for (i, t) in tokens.iter().enumerate() {
        if let Some(value) = string_value(t, source) {
            out.literals.insert(value);
        }
        if let TokenKind::Literal {
            kind: LiteralKind::DollarQuotedString { terminated: true },
        } = t.kind
            && depth < 2
        {
            // A body is SQL too: a function's or a DO block's literals are parsed (and checked) when it runs or is
            // created.
            collect(dollar_body(t.text(source)), offset, depth + 1, out);
        }
        if depth > 0 {
            continue;
        }
        let word = |k: usize, w: &str| tokens.get(k).is_some_and(|t| t.is_word(source, w));
        if word(i, "ALTER") && word(i + 1, "TYPE") {
            let Some((type_name, mut k)) = name_at(&tokens, i + 2, source) else {
                continue;
            };
            if !(word(k, "ADD") && word(k + 1, "VALUE")) {
                continue;
            }
            k += 2;
            if word(k, "IF") && word(k + 1, "NOT") && word(k + 2, "EXISTS") {
                k += 3;
            }
            if let Some(value) = tokens.get(k).and_then(|v| string_value(v, source)) {
                out.added.push(AddedValue {
                    type_name,
                    value,
                    range: offset + t.range.start..offset + tokens[k].range.end,
                });
            }
        }
    }
}

/// A possibly qualified name starting at token `i`, and the index after it.
fn name_at(tokens: &[Tok], i: usize, source: &str) -> Option<(RelationName, usize)> {
    let first = ident(tokens.get(i)?, source)?;
    if tokens.get(i + 1).map(|t| t.kind) == Some(TokenKind::Dot) {
        let second = ident(tokens.get(i + 2)?, source)?;
        return Some((RelationName::new(Some(&first), &second), i + 3));
    }
    Some((RelationName::new(None, &first), i + 1))
}

fn ident(t: &Tok, source: &str) -> Option<String> {
    match t.kind {
        TokenKind::Ident => Some(t.text(source).to_ascii_lowercase()),
        TokenKind::QuotedIdent {
            terminated: true,
            uescape: false,
        } => {
            let text = t.text(source);
            Some(text[1..text.len() - 1].replace("\"\"", "\""))
        }
        _ => None,
    }
}

/// The value of a plain (`'…'`) or escape (`E'…'`) string literal.
fn string_value(t: &Tok, source: &str) -> Option<String> {
    let text = t.text(source);
    match t.kind {
        TokenKind::Literal {
            kind: LiteralKind::Str { terminated: true },
        } => Some(text[1..text.len() - 1].replace("''", "'")),
        TokenKind::Literal {
            kind: LiteralKind::EscStr { terminated: true },
        } => Some(
            text[2..text.len() - 1]
                .replace("''", "'")
                .replace("\\'", "'")
                .replace("\\\\", "\\"),
        ),
        _ => None,
    }
}

/// The text between a dollar-quoted string's tags.
fn dollar_body(text: &str) -> &str {
    let Some(open_end) = text[1..].find('$').map(|p| p + 2) else {
        return "";
    };
    let close_start = text.len().saturating_sub(open_end);
    text.get(open_end..close_start).unwrap_or("")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn additions_and_literals() {
        let f = facts(
            "CREATE TYPE app.\"Mood\" AS ENUM ('ok');\nALTER TYPE app.\"Mood\" ADD VALUE 'it''s';\nALTER TYPE x RENAME VALUE 'a' TO 'b';",
        );
        assert_eq!(f.added[0].type_name, RelationName::new(Some("app"), "Mood"));
        assert_eq!(f.added.len(), 1);
        assert_eq!(f.added[0].value, "it's");
        assert!(f.literals.contains("ok") && f.literals.contains("b"));
        let body = facts(
            "CREATE FUNCTION f() RETURNS mood LANGUAGE sql AS $fn$ SELECT 'meh'::mood $fn$;\nDO $$ BEGIN PERFORM E'x\\'y'; END $$;",
        );
        assert!(body.literals.contains("meh"), "{:?}", body.literals);
        assert!(body.literals.contains("x'y"), "{:?}", body.literals);
        assert!(
            facts("-- ALTER TYPE t ADD VALUE 'z'\nSELECT 1;")
                .added
                .is_empty()
        );
    }
}
