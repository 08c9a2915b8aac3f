//! Byte offsets, line/column positions and text normalisation.

use std::borrow::Cow;

/// 1-based line and column (column counted in characters) of a byte offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineCol {
    /// 1-based line number.
    pub line: u32,
    /// 1-based column, in characters (not bytes).
    pub col: u32,
}

/// Maps byte offsets of one text to [`LineCol`] and back to line starts.
///
/// Lines end at `\n`, `\r\n` or a lone `\r`, so a raw file and its [`normalize`]d form agree on
/// line numbers.
///
/// ```
/// use pgstrata_sql::{LineCol, LineIndex};
/// let text = "SELECT 1;\nSELECT 'é', x;";
/// let index = LineIndex::new(text);
/// let x = text.find('x').unwrap();
/// assert_eq!(index.line_col(x), LineCol { line: 2, col: 13 });
/// assert_eq!(index.line_start(2), Some(10));
/// ```
#[derive(Debug, Clone)]
pub struct LineIndex {
    /// Byte offset where each line starts; the first is always 0.
    line_starts: Vec<usize>,
    /// Start offset and UTF-8 length of every non-ASCII character, in order.
    wide_chars: Vec<(usize, usize)>,
    len: usize,
}

impl LineIndex {
    /// Index `source`.
    pub fn new(source: &str) -> LineIndex {
        let mut line_starts = vec![0];
        let mut wide_chars = Vec::new();
        let bytes = source.as_bytes();
        for (i, c) in source.char_indices() {
            match c {
                '\n' => line_starts.push(i + 1),
                '\r' if bytes.get(i + 1) != Some(&b'\n') => line_starts.push(i + 1),
                c if !c.is_ascii() => wide_chars.push((i, c.len_utf8())),
                _ => {}
            }
        }
        LineIndex {
            line_starts,
            wide_chars,
            len: source.len(),
        }
    }

    /// Line and column of `offset`; the offset is clamped to the text, and an offset inside a
    /// multi-byte character counts as that character.
    pub fn line_col(&self, offset: usize) -> LineCol {
        let mut offset = offset.min(self.len);
        // Snap to the start of a character the offset may point into.
        let before = self
            .wide_chars
            .partition_point(|&(start, _)| start < offset);
        if let Some(&(start, len)) = before.checked_sub(1).and_then(|i| self.wide_chars.get(i))
            && offset < start + len
        {
            offset = start;
        }
        let line = self.line_starts.partition_point(|&s| s <= offset);
        let line_start = self.line_starts[line - 1];
        let first_wide = self.wide_chars.partition_point(|&(s, _)| s < line_start);
        let last_wide = self.wide_chars.partition_point(|&(s, _)| s < offset);
        let extra_bytes: usize = self.wide_chars[first_wide..last_wide]
            .iter()
            .map(|&(_, len)| len - 1)
            .sum();
        let col = offset - line_start - extra_bytes + 1;
        LineCol {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            col: u32::try_from(col).unwrap_or(u32::MAX),
        }
    }

    /// Byte offset where the 1-based `line` starts, or `None` when there is no such line.
    pub fn line_start(&self, line: u32) -> Option<usize> {
        let index = usize::try_from(line).ok()?.checked_sub(1)?;
        self.line_starts.get(index).copied()
    }

    /// Number of lines (a text without line breaks, even an empty one, has one).
    pub fn line_count(&self) -> usize {
        self.line_starts.len()
    }
}

/// PostgreSQL reports error positions as a 1-based *character* index into the text sent. Return
/// the byte offset in `text` (clamped to `text.len()`; positions 0 and 1 both give 0).
///
/// ```
/// let text = "SELECT 'ü', nope";
/// // PostgreSQL says: position 13 (the `n`), counting `ü` as one character.
/// assert_eq!(pgstrata_sql::char_position_to_byte(text, 13), text.find("nope").unwrap());
/// ```
pub fn char_position_to_byte(text: &str, position: usize) -> usize {
    let Some(index) = position.checked_sub(1) else {
        return 0;
    };
    text.char_indices()
        .nth(index)
        .map_or(text.len(), |(byte, _)| byte)
}

/// Text normalisation used for checksums and storage: strip a leading UTF-8 BOM, turn CRLF and
/// lone CR into LF. Returns `Cow::Borrowed` when nothing but the BOM changes.
///
/// ```
/// use std::borrow::Cow;
/// assert_eq!(pgstrata_sql::normalize("\u{feff}a\r\nb\rc"), "a\nb\nc");
/// assert!(matches!(pgstrata_sql::normalize("a\nb"), Cow::Borrowed(_)));
/// ```
pub fn normalize(text: &str) -> Cow<'_, str> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if !text.contains('\r') {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('\r') {
        out.push_str(&rest[..i]);
        out.push('\n');
        rest = &rest[i + 1..];
        if let Some(after) = rest.strip_prefix('\n') {
            rest = after;
        }
    }
    out.push_str(rest);
    Cow::Owned(out)
}
