//! Migration files: dbmate sections and Strata directives.
//!
//! A migration file is either plain SQL (one up section) or cut by dbmate markers:
//!
//! ```sql
//! -- strata:no-transaction        (optional file directive: every section runs without BEGIN)
//! -- migrate:up
//! CREATE TABLE t (id bigint);
//! -- migrate:down transaction:false
//! DROP TABLE t;
//! ```
//!
//! Markers are found with the SQL lexer, so a marker-looking line inside a string, a
//! dollar-quoted body or a block comment is just text.
//!
//! ```
//! use pgstrata_sql::migration::{self, Direction};
//! let file = "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down transaction:false\nDROP TABLE t;\n";
//! let sections = migration::parse(file).unwrap();
//! assert_eq!(sections.len(), 2);
//! assert_eq!(sections[0].direction, Direction::Up);
//! assert_eq!(sections[0].text(file), "CREATE TABLE t (id int);\n");
//! assert!(sections[1].no_transaction);
//! ```

use std::ops::Range;

use squawk_lexer::TokenKind;

use crate::lex::{self, Tok};

/// Which half of a migration a section belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Applied by `migrate`.
    Up,
    /// Applied by `rollback`.
    Down,
}

/// A run of SQL that executes as one unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// Whether this section migrates up or down.
    pub direction: Direction,
    /// byte range of the SQL *after* the marker line (whole text when there are no markers)
    pub range: Range<usize>,
    /// true when marked `transaction:false` (dbmate) or the file/section carries a
    /// no-transaction directive
    pub no_transaction: bool,
    /// byte range of the `-- migrate:up|down` marker comment, if any
    pub marker: Option<Range<usize>>,
}

impl Section {
    /// The section's SQL within `source` (the text it was parsed from); `""` if the range does
    /// not fit `source`.
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        source.get(self.range.clone()).unwrap_or("")
    }
}

/// A malformed migration file: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SectionError {
    /// Byte range of the offending text.
    pub range: Range<usize>,
    /// What is wrong, e.g. `unknown option "transaction:no" in migration marker`.
    pub message: String,
}

/// Cut a migration file into sections.
///
/// - No `-- migrate:` markers: one [`Direction::Up`] section over the whole text.
/// - dbmate markers: lines that are top-level line comments matching
///   `--\s*migrate:(up|down)`, optionally followed by `transaction:false` or `transaction:true`.
///   Up and down sections may alternate (dbmate itself mishandles several sections: its issue
///   #820). Only comments and whitespace may precede the first marker. Unknown `migrate:` words
///   or options are errors.
/// - Directives: `-- strata:no-transaction` or sqlx's `-- no-transaction` in the file's leading
///   comment block (before the first statement or marker) make every section no-transaction;
///   `-- strata:no-transaction` in the leading comments right after a marker makes that section
///   so.
/// - An unterminated string, quoted identifier or comment is an error: it would hide every
///   marker after it.
pub fn parse(source: &str) -> Result<Vec<Section>, SectionError> {
    parse_as(source, Direction::Up)
}

/// A separate down file (`NAME.down.sql`) or stored down SQL: same rules as [`parse`], but a text
/// without markers is one [`Direction::Down`] section and `-- migrate:up` markers are an error.
pub fn parse_down(source: &str) -> Result<Vec<Section>, SectionError> {
    parse_as(source, Direction::Down)
}

/// Re-assemble the down sections of `source` (markers included) into one text that
/// [`parse_down`] reads back to the same sections (same SQL and `no_transaction` flags). Used to
/// store a migration's down SQL in the database.
///
/// Each section gets a fresh `-- migrate:down` marker, with `transaction:false` when the section
/// is no-transaction (whatever made it so in `source`). Without down sections the result is
/// empty.
///
/// ```
/// use pgstrata_sql::migration;
/// let file = "-- no-transaction\n-- migrate:up\nCREATE INDEX CONCURRENTLY i ON t (a);\n-- migrate:down\nDROP INDEX CONCURRENTLY i;\n";
/// let sections = migration::parse(file).unwrap();
/// let down = migration::down_text(file, &sections);
/// assert_eq!(down, "-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY i;\n");
/// let again = migration::parse_down(&down).unwrap();
/// assert_eq!(again[0].text(&down), sections[1].text(file));
/// assert!(again[0].no_transaction);
/// ```
pub fn down_text(source: &str, sections: &[Section]) -> String {
    let mut out = String::new();
    for section in sections.iter().filter(|s| s.direction == Direction::Down) {
        if !out.is_empty() && !out.ends_with(['\n', '\r']) {
            out.push('\n');
        }
        out.push_str("-- migrate:down");
        if section.no_transaction {
            out.push_str(" transaction:false");
        }
        out.push('\n');
        out.push_str(section.text(source));
    }
    out
}

/// A `-- migrate:` marker line.
struct Marker {
    direction: Direction,
    transaction_false: bool,
    /// The comment token.
    comment: Range<usize>,
    /// Start of the marker's line (end of the previous section).
    line_start: usize,
    /// Just after the marker's line break (start of its section).
    body_start: usize,
}

fn parse_as(source: &str, default: Direction) -> Result<Vec<Section>, SectionError> {
    // One pass over the tokens, keeping only markers (a big file never holds all its tokens at once).
    let mut markers = Vec::new();
    let mut last: Option<Tok> = None;
    // SQL before the first marker: its first and last token.
    let mut before: Option<Range<usize>> = None;
    for tok in lex::tokens(source) {
        if tok.kind == TokenKind::LineComment
            && on_own_line(source, tok.range.start)
            && let Some(marker) = parse_marker(source, &tok)?
        {
            if default == Direction::Down && marker.direction == Direction::Up {
                return Err(SectionError {
                    range: marker.comment,
                    message: "`-- migrate:up` is not allowed in down migration SQL".to_string(),
                });
            }
            markers.push(marker);
        } else if markers.is_empty() && !tok.is_trivia() {
            let start = before.as_ref().map_or(tok.range.start, |b| b.start);
            before = Some(start..tok.range.end);
        }
        last = Some(tok);
    }
    if let Some(last) = last
        && let Some(message) = last.unterminated()
    {
        return Err(SectionError {
            range: last.range.clone(),
            message: message.to_string(),
        });
    }

    if markers.is_empty() {
        return Ok(vec![Section {
            direction: default,
            range: 0..source.len(),
            no_transaction: leading_directive(source, 0, source.len(), true),
            marker: None,
        }]);
    }
    let first_marker = &markers[0];
    if let Some(range) = before {
        return Err(SectionError {
            range,
            message: "SQL before the first `-- migrate:` marker; only comments may precede it"
                .to_string(),
        });
    }
    let file_no_transaction = leading_directive(source, 0, first_marker.comment.start, true);

    let sections = markers
        .iter()
        .enumerate()
        .map(|(k, marker)| {
            let end = markers.get(k + 1).map_or(source.len(), |m| m.line_start);
            let range = marker.body_start.min(end)..end;
            let no_transaction = marker.transaction_false
                || file_no_transaction
                || leading_directive(source, range.start, range.end, false);
            Section {
                direction: marker.direction,
                range,
                no_transaction,
                marker: Some(marker.comment.clone()),
            }
        })
        .collect();
    Ok(sections)
}

/// Whether only whitespace precedes `pos` on its line.
fn on_own_line(source: &str, pos: usize) -> bool {
    source[..pos]
        .chars()
        .rev()
        .take_while(|&c| c != '\n' && c != '\r')
        .all(char::is_whitespace)
}

/// Recognise a marker comment; `Ok(None)` for ordinary comments.
fn parse_marker(source: &str, tok: &Tok) -> Result<Option<Marker>, SectionError> {
    let text = tok.text(source);
    let body = text.get(2..).unwrap_or("");
    let items = words_with_offsets(body);
    let Some(&(head_at, head)) = items.first() else {
        return Ok(None);
    };
    let is_migrate = head
        .get(..8)
        .is_some_and(|p| p.eq_ignore_ascii_case("migrate:"));
    if !is_migrate {
        return Ok(None);
    }
    let base = tok.range.start + 2;
    let direction = match &head[8..] {
        "up" => Direction::Up,
        "down" => Direction::Down,
        other => {
            return Err(SectionError {
                range: base + head_at..base + head_at + head.len(),
                message: format!(
                    "unknown migration marker \"migrate:{other}\": expected `-- migrate:up` or `-- migrate:down`"
                ),
            });
        }
    };
    let mut transaction_false = false;
    for &(at, item) in &items[1..] {
        match item {
            "transaction:false" => transaction_false = true,
            "transaction:true" => transaction_false = false,
            _ => {
                return Err(SectionError {
                    range: base + at..base + at + item.len(),
                    message: format!(
                        "unknown option \"{item}\" in migration marker: expected transaction:false or transaction:true"
                    ),
                });
            }
        }
    }
    let line_start = source[..tok.range.start]
        .rfind(['\n', '\r'])
        .map_or(0, |i| i + 1);
    let rest = &source[tok.range.end..];
    let line_break = if rest.starts_with("\r\n") {
        2
    } else if rest.starts_with(['\n', '\r']) {
        1
    } else {
        0
    };
    Ok(Some(Marker {
        direction,
        transaction_false,
        comment: tok.range.clone(),
        line_start,
        body_start: tok.range.end + line_break,
    }))
}

/// Whitespace-separated words of `text` with their byte offsets.
fn words_with_offsets(text: &str) -> Vec<(usize, &str)> {
    let mut out = Vec::new();
    let mut start = None;
    for (i, c) in text.char_indices() {
        match (c.is_whitespace(), start) {
            (true, Some(s)) => {
                out.push((s, &text[s..i]));
                start = None;
            }
            (false, None) => start = Some(i),
            _ => {}
        }
    }
    if let Some(s) = start {
        out.push((s, &text[s..]));
    }
    out
}

/// Whether the comments that open `start..end` (before its first statement) contain a
/// no-transaction directive. `file_level` also accepts sqlx's `-- no-transaction`.
fn leading_directive(source: &str, start: usize, end: usize, file_level: bool) -> bool {
    // `start` is a token boundary (the file's start, or just after a marker's line): lex from there, only as far
    // as the comments go.
    let text = &source[start..end];
    lex::tokens(text)
        .take_while(|t| t.is_trivia())
        .filter(|t| t.kind == TokenKind::LineComment)
        .any(|t| {
            let directive = t.text(text)[2..].trim();
            directive == "strata:no-transaction" || (file_level && directive == "no-transaction")
        })
}
