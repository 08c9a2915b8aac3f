//! A thin layer over `squawk-lexer`: tokens with absolute byte ranges and the word tests the
//! rest of the crate needs.

use std::ops::Range;

use squawk_lexer::{LiteralKind, TokenKind};

/// One lexical token of the text, with its byte range.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Tok {
    pub(crate) kind: TokenKind,
    pub(crate) range: Range<usize>,
}

impl Tok {
    /// Whitespace and comments: never part of a statement's first or last token.
    pub(crate) fn is_trivia(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::Whitespace | TokenKind::LineComment | TokenKind::BlockComment { .. }
        )
    }

    /// The token's text in `source`.
    pub(crate) fn text<'a>(&self, source: &'a str) -> &'a str {
        &source[self.range.clone()]
    }

    /// An unquoted identifier or keyword equal to `word` (ASCII case-insensitive, as PostgreSQL
    /// folds keywords).
    pub(crate) fn is_word(&self, source: &str, word: &str) -> bool {
        self.kind == TokenKind::Ident && self.text(source).eq_ignore_ascii_case(word)
    }

    /// The upper-cased text of an unquoted identifier or keyword.
    pub(crate) fn word(&self, source: &str) -> Option<String> {
        (self.kind == TokenKind::Ident).then(|| self.text(source).to_ascii_uppercase())
    }

    /// Any string literal form (`'…'`, `E'…'`, `$tag$…$tag$`, …), terminated or not.
    pub(crate) fn is_string(&self) -> bool {
        matches!(
            self.kind,
            TokenKind::Literal {
                kind: LiteralKind::Str { .. }
                    | LiteralKind::EscStr { .. }
                    | LiteralKind::NationalStr { .. }
                    | LiteralKind::UnicodeEscStr { .. }
                    | LiteralKind::DollarQuotedString { .. }
            }
        )
    }

    /// Why this token runs to the end of the text without being closed, if it does.
    pub(crate) fn unterminated(&self) -> Option<&'static str> {
        match self.kind {
            TokenKind::BlockComment { terminated: false } => Some("unterminated /* comment"),
            TokenKind::QuotedIdent {
                terminated: false, ..
            } => Some("unterminated quoted identifier"),
            TokenKind::Literal { kind } => match kind {
                LiteralKind::DollarQuotedString { terminated: false } => {
                    Some("unterminated dollar-quoted string")
                }
                LiteralKind::Str { terminated: false }
                | LiteralKind::EscStr { terminated: false }
                | LiteralKind::NationalStr { terminated: false }
                | LiteralKind::UnicodeEscStr { terminated: false }
                | LiteralKind::BitStr { terminated: false }
                | LiteralKind::ByteStr { terminated: false } => Some("unterminated quoted string"),
                _ => None,
            },
            _ => None,
        }
    }
}

/// All tokens of `source`, trivia included, covering the text without gaps.
pub(crate) fn tokenize(source: &str) -> Vec<Tok> {
    let mut offset = 0;
    // Typical SQL has a token (word, space, punctuation) every two or three bytes: one allocation instead of a
    // dozen reallocations (loading a package tokenizes every migration file).
    let mut tokens = Vec::with_capacity(source.len() / 2 + 8);
    tokens.extend(squawk_lexer::tokenize(source).map(|token| {
        let start = offset;
        offset += token.len as usize;
        Tok {
            kind: token.kind,
            range: start..offset,
        }
    }));
    tokens
}

/// The tokens of `source`, trivia included, one at a time (a big file never holds all of them at once).
pub(crate) fn tokens(source: &str) -> impl Iterator<Item = Tok> + '_ {
    let mut offset = 0;
    squawk_lexer::tokenize(source).map(move |token| {
        let start = offset;
        offset += token.len as usize;
        Tok {
            kind: token.kind,
            range: start..offset,
        }
    })
}

/// The non-trivia tokens of `source`.
pub(crate) fn significant(source: &str) -> Vec<Tok> {
    let mut tokens = tokenize(source);
    tokens.retain(|t| !t.is_trivia());
    tokens
}

/// A cursor over significant tokens that knows about parenthesis nesting, for the keyword
/// heuristics (classification, transaction rules, routine bodies).
pub(crate) struct Words<'a> {
    pub(crate) source: &'a str,
    pub(crate) tokens: &'a [Tok],
}

impl<'a> Words<'a> {
    pub(crate) fn new(source: &'a str, tokens: &'a [Tok]) -> Self {
        Words { source, tokens }
    }

    /// Whether token `i` is the word `word`.
    pub(crate) fn is(&self, i: usize, word: &str) -> bool {
        self.tokens
            .get(i)
            .is_some_and(|t| t.is_word(self.source, word))
    }

    /// Whether token `i` is one of `words`.
    pub(crate) fn is_any(&self, i: usize, words: &[&str]) -> bool {
        words.iter().any(|w| self.is(i, w))
    }

    /// The upper-cased word at `i`, if token `i` is a word.
    pub(crate) fn word(&self, i: usize) -> Option<String> {
        self.tokens.get(i).and_then(|t| t.word(self.source))
    }

    /// Indices of the tokens outside any parentheses (the parentheses themselves included).
    pub(crate) fn top_level(&self) -> Vec<usize> {
        let mut depth = 0usize;
        let mut out = Vec::new();
        for (i, t) in self.tokens.iter().enumerate() {
            match t.kind {
                TokenKind::OpenParen => {
                    if depth == 0 {
                        out.push(i);
                    }
                    depth += 1;
                }
                TokenKind::CloseParen => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        out.push(i);
                    }
                }
                _ if depth == 0 => out.push(i),
                _ => {}
            }
        }
        out
    }

    /// Whether the top-level tokens contain `phrase` as consecutive words.
    pub(crate) fn has_top_level_phrase(&self, phrase: &[&str]) -> bool {
        let top = self.top_level();
        top.windows(phrase.len())
            .any(|w| w.iter().zip(phrase).all(|(&i, word)| self.is(i, word)))
    }

    /// Index just after the parenthesised group opening at `open` (or `open` when it is not `(`).
    pub(crate) fn skip_group(&self, open: usize) -> usize {
        if self.tokens.get(open).map(|t| t.kind) != Some(TokenKind::OpenParen) {
            return open;
        }
        let mut depth = 0usize;
        for (i, t) in self.tokens.iter().enumerate().skip(open) {
            match t.kind {
                TokenKind::OpenParen => depth += 1,
                TokenKind::CloseParen => {
                    depth -= 1;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
        }
        self.tokens.len()
    }

    /// The `name [= value]` items of the parenthesised option list opening at `open`, as
    /// (upper-cased name, value text with quotes stripped).
    pub(crate) fn options(&self, open: usize) -> Vec<(String, Option<String>)> {
        let end = self.skip_group(open);
        if end == open {
            return Vec::new();
        }
        let close = if end > open + 1 && self.tokens[end - 1].kind == TokenKind::CloseParen {
            end - 1
        } else {
            end
        };
        let inner = &self.tokens[open + 1..close];
        let mut out = Vec::new();
        let mut depth = 0usize;
        let mut item: Vec<&Tok> = Vec::new();
        let mut flush = |item: &mut Vec<&Tok>| {
            let mut parts = item.iter().filter(|t| t.kind != TokenKind::Eq);
            if let Some(name) = parts.next().and_then(|t| t.word(self.source)) {
                let value = parts.next().map(|t| unquote(t.text(self.source)));
                out.push((name, value));
            }
            item.clear();
        };
        for t in inner {
            match t.kind {
                TokenKind::OpenParen => depth += 1,
                TokenKind::CloseParen => depth = depth.saturating_sub(1),
                TokenKind::Comma if depth == 0 => {
                    flush(&mut item);
                    continue;
                }
                _ => {}
            }
            item.push(t);
        }
        flush(&mut item);
        out
    }
}

/// A simple option value without its quotes (`'false'` → `false`).
fn unquote(text: &str) -> String {
    text.trim_matches(|c| c == '\'' || c == '"').to_string()
}

/// PostgreSQL's spelling of a false boolean option value (`parse_bool` accepts unique prefixes
/// too; these are the usual ones).
pub(crate) fn is_false(value: &str) -> bool {
    ["false", "off", "no", "0", "f", "n"]
        .iter()
        .any(|f| value.eq_ignore_ascii_case(f))
}

/// Statements nested deeper than this (parentheses and brackets) are not parsed by Strata: squawk's parser
/// recurses once per level, and a few thousand levels overflow a 2 MB thread stack (PostgreSQL itself gives up
/// with "memory exhausted" somewhere below 10,000). Such a statement is left to the server, which has the last
/// word anyway: it is split and sent, but not linted, not analysed for locks, not read as managed code.
pub const MAX_NESTING: usize = 1_000;

/// How deeply the tokens nest parentheses and brackets.
pub(crate) fn nesting(tokens: &[Tok]) -> usize {
    let mut depth = 0usize;
    let mut max = 0;
    for t in tokens {
        match t.kind {
            TokenKind::OpenParen | TokenKind::OpenBracket => {
                depth += 1;
                max = max.max(depth);
            }
            TokenKind::CloseParen | TokenKind::CloseBracket => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Ranges of `text` (from a top-level `;` to the next) that nest deeper than [`MAX_NESTING`].
pub(crate) fn too_deep(text: &str) -> Vec<Range<usize>> {
    // More levels than there are opening characters is impossible: most texts never need the lexer.
    let opening = text.bytes().filter(|b| matches!(b, b'(' | b'[')).count();
    if opening <= MAX_NESTING {
        return Vec::new();
    }
    let mut out: Vec<Range<usize>> = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    let mut deep = false;
    let mut offset = 0;
    for token in squawk_lexer::tokenize(text) {
        let range = offset..offset + token.len as usize;
        offset = range.end;
        match token.kind {
            TokenKind::OpenParen | TokenKind::OpenBracket => {
                depth += 1;
                deep |= depth > MAX_NESTING;
            }
            TokenKind::CloseParen | TokenKind::CloseBracket => depth = depth.saturating_sub(1),
            TokenKind::Semi if depth == 0 => {
                if deep {
                    out.push(start..range.end);
                }
                start = range.end;
                deep = false;
            }
            _ => {}
        }
    }
    if deep {
        out.push(start..text.len());
    }
    out
}

/// `text` with the statements that nest deeper than [`MAX_NESTING`] blanked out (spaces, newlines kept, same byte
/// length, so every offset still means the same place): what may be given to squawk's parser.
pub(crate) fn shallow(text: &str) -> std::borrow::Cow<'_, str> {
    let deep = too_deep(text);
    if deep.is_empty() {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut bytes = text.as_bytes().to_vec();
    for r in deep {
        for b in &mut bytes[r] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    // Whole characters were replaced byte by byte with ASCII: still UTF-8.
    std::borrow::Cow::Owned(String::from_utf8(bytes).unwrap_or_default())
}
