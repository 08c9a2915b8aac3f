//! Locating the quoted body of a `DO` block or a function/procedure.

use std::ops::Range;

use squawk_lexer::{LiteralKind, TokenKind};

use crate::lex::{self, Tok, Words};

/// The body of a `DO` block or `CREATE FUNCTION/PROCEDURE … AS $$ body $$` / `AS 'body'` within a
/// statement's text: byte range of the body *contents* (inside the quotes), relative to
/// `statement_text`.
///
/// PL/pgSQL error contexts say "line N" counting from the line where the body starts, so
/// `range.start` plus a [`LineIndex`](crate::LineIndex) maps them back to the file. Returns `None`
/// for statements of other kinds, `BEGIN ATOMIC` and `RETURN` bodies (they are plain SQL, whose
/// positions PostgreSQL reports directly) and C functions (`AS 'file', 'symbol'`).
///
/// ```
/// let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $body$\nBEGIN RETURN 1; END\n$body$;";
/// let body = pgstrata_sql::routine_body_range(sql).unwrap();
/// assert_eq!(&sql[body], "\nBEGIN RETURN 1; END\n");
/// ```
pub fn routine_body_range(statement_text: &str) -> Option<Range<usize>> {
    let tokens = lex::significant(statement_text);
    let w = Words::new(statement_text, &tokens);
    let literal = if w.is(0, "DO") {
        // DO [LANGUAGE name] 'code' | DO 'code' [LANGUAGE name]
        w.top_level()
            .into_iter()
            .find(|&i| tokens[i].is_string() && !(i > 0 && w.is(i - 1, "LANGUAGE")))?
    } else {
        let mut i = 1;
        if w.is(i, "OR") && w.is(i + 1, "REPLACE") {
            i += 2;
        }
        if !(w.is(0, "CREATE") && w.is_any(i, &["FUNCTION", "PROCEDURE"])) {
            return None;
        }
        let top = w.top_level();
        let at = top.iter().position(|&i| w.is(i, "AS"))?;
        let literal = *top.get(at + 1)?;
        let is_c_function = top
            .get(at + 2)
            .is_some_and(|&i| tokens[i].kind == TokenKind::Comma);
        if !tokens[literal].is_string() || is_c_function {
            return None;
        }
        literal
    };
    Some(contents(statement_text, &tokens[literal]))
}

/// The range inside the quotes of a string literal token.
pub(crate) fn contents(source: &str, tok: &Tok) -> Range<usize> {
    let text = tok.text(source);
    let (open, close) = match tok.kind {
        TokenKind::Literal {
            kind: LiteralKind::DollarQuotedString { terminated },
        } => {
            // `$tag$` opens; the same tag closes.
            let tag_len = text[1..].find('$').map_or(text.len(), |i| i + 2);
            (tag_len, if terminated { tag_len } else { 0 })
        }
        TokenKind::Literal { kind } => {
            let terminated = matches!(
                kind,
                LiteralKind::Str { terminated: true }
                    | LiteralKind::EscStr { terminated: true }
                    | LiteralKind::NationalStr { terminated: true }
                    | LiteralKind::UnicodeEscStr { terminated: true }
            );
            // E'…', N'…', U&'…': the body starts after the first quote.
            let open = text.find('\'').map_or(0, |i| i + 1);
            (open, usize::from(terminated))
        }
        _ => (0, 0),
    };
    let start = tok.range.start + open.min(text.len());
    let end = (tok.range.end - close).max(start);
    start..end
}
