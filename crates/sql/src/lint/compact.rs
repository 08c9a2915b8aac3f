//! The part of a migration file that needs whole-file linting, and the plain data statements that do not.
//!
//! Squawk's rules that look across statements (transaction nesting, timeout settings, robust statements) and
//! Strata's (no-transaction required, dropped dependencies, the lock analysis) are about schema changes and
//! transaction control; `INSERT`, `UPDATE` and `DELETE` take part in none of them. A data load of millions of such
//! statements would otherwise be parsed into one syntax tree of about a kilobyte per statement, several times
//! over. So the file is linted in two parts:
//!
//! - the **skeleton**: the file without its data statements (comments between statements stay), every cut
//!   replaced by as many line breaks as it held, up to two, so a `-- squawk-ignore` comment still applies to the
//!   line after it and to nothing else; the whole pipeline runs on it and its findings are mapped back;
//! - the **data statements**, in runs of at most [`CHUNK_STATEMENTS`] consecutive ones, each run linted on its own
//!   (squawk's statement-level rules, such as duplicate column assignments, and syntax errors) from a slice of the
//!   file, its tree dropped before the next.
//!
//! A data statement stays in the skeleton when it holds an ignore comment (the skeleton sees every one), when it
//! shares a line with another statement or an ignore comment on the line before is out of its run's sight, and
//! when it is an `UPDATE` of `alembic_version` (squawk's robust-statement rule looks for it).

use std::ops::Range;

use crate::StatementKind;
use crate::migration::{Direction, Section};

/// At most this many data statements are parsed together: big enough that parsing is not per statement, small
/// enough that the tree stays far below the size of a big file.
pub(super) const CHUNK_STATEMENTS: usize = 256;

/// A migration file split for linting (see the module docs).
pub(super) struct Compact {
    /// The skeleton's text.
    pub text: String,
    /// The file's sections, with ranges into [`Compact::text`].
    pub sections: Vec<Section>,
    /// Runs of data statements (byte ranges of the file, from the end of the statement before), and whether
    /// they run inside a transaction.
    pub chunks: Vec<(Range<usize>, bool)>,
    /// Pieces of the file kept in the skeleton: (offset in the skeleton, offset in the file, length).
    kept: Vec<(usize, usize, usize)>,
    /// The file's length: where the skeleton's end lands.
    file_len: usize,
}

impl Compact {
    /// Split `source` (cut into `sections`) for linting.
    pub fn new(source: &str, sections: &[Section]) -> Compact {
        let mut cut: Vec<Range<usize>> = Vec::new();
        let mut chunks: Vec<(Range<usize>, bool)> = Vec::new();
        for section in sections {
            if section.direction == Direction::Down {
                // Only up sections are linted.
                push_cut(&mut cut, section.range.clone());
                continue;
            }
            let mut split = SectionSplit {
                text: section.text(source),
                base: section.range.start,
                in_transaction: !section.no_transaction,
                cut: &mut cut,
                chunks: &mut chunks,
                previous_end: 0,
                pending: None,
                run: None,
            };
            crate::split::for_each_statement(split.text, |statement| split.statement(&statement));
            split.finish();
        }

        let mut text = String::new();
        let mut kept = Vec::new();
        let mut at = 0;
        for c in cut
            .iter()
            .chain(std::iter::once(&(source.len()..source.len())))
        {
            if c.start > at {
                kept.push((text.len(), at, c.start - at));
                text.push_str(&source[at..c.start]);
            }
            text.push_str(separator(&source[c.clone()]));
            at = c.end;
        }
        let mut compact = Compact {
            text,
            sections: Vec::new(),
            chunks,
            kept,
            file_len: source.len(),
        };
        compact.sections = sections
            .iter()
            .map(|s| Section {
                direction: s.direction,
                range: compact.to_skeleton(s.range.start)..compact.to_skeleton(s.range.end),
                no_transaction: s.no_transaction,
                marker: s
                    .marker
                    .as_ref()
                    .map(|m| compact.to_skeleton(m.start)..compact.to_skeleton(m.end)),
            })
            .collect();
        compact
    }

    /// Whether the whole file is its skeleton (nothing was cut).
    pub fn is_whole(&self, source: &str) -> bool {
        self.text.len() == source.len() && self.chunks.is_empty()
    }

    /// The offset in the file of offset `at` of the skeleton (the start of the cut for a position in a separator,
    /// the file's end for the skeleton's).
    pub fn to_file(&self, at: usize) -> usize {
        if at >= self.text.len() {
            return self.file_len;
        }
        let i = self
            .kept
            .partition_point(|(skeleton, _, _)| *skeleton <= at);
        match i.checked_sub(1).and_then(|i| self.kept.get(i)) {
            Some(&(skeleton, file, len)) => file + (at - skeleton).min(len),
            None => 0,
        }
    }

    /// Whether `range` of the file is cut from the skeleton (inside a data statement).
    pub fn is_cut(&self, range: &Range<usize>) -> bool {
        let i = self
            .kept
            .partition_point(|(_, file, _)| *file <= range.start);
        i.checked_sub(1)
            .and_then(|i| self.kept.get(i))
            .is_none_or(|&(_, file, len)| range.end > file + len)
    }

    /// The offset in the skeleton of offset `at` of the file (after the separator for a position inside a cut).
    fn to_skeleton(&self, at: usize) -> usize {
        let i = self.kept.partition_point(|(_, file, _)| *file <= at);
        if let Some(&(skeleton, file, len)) = i.checked_sub(1).and_then(|i| self.kept.get(i))
            && at <= file + len
        {
            return skeleton + (at - file);
        }
        match self.kept.get(i) {
            Some(&(skeleton, _, _)) => skeleton,
            None => self.text.len(),
        }
    }
}

/// The statements of one up section, sorted into the skeleton and runs of data statements.
struct SectionSplit<'a> {
    text: &'a str,
    /// The section's offset in the file.
    base: usize,
    in_transaction: bool,
    cut: &'a mut Vec<Range<usize>>,
    chunks: &'a mut Vec<(Range<usize>, bool)>,
    previous_end: usize,
    /// A data statement that starts its line, waiting to see whether it ends it: (its gap, its range).
    pending: Option<(Range<usize>, Range<usize>)>,
    run: Option<Run>,
}

/// Data statements linted together (offsets in the section).
struct Run {
    start: usize,
    /// Where its last statement ends.
    statement_end: usize,
    /// Where the line of its last statement ends (a comment after the statement belongs to the run's sight).
    end: usize,
    statements: usize,
}

impl SectionSplit<'_> {
    fn statement(&mut self, statement: &crate::Statement) {
        let gap = self.previous_end..statement.range.start;
        self.previous_end = statement.range.end;
        let gap_text = self.text.get(gap.clone()).unwrap_or("");
        // The statement before is linted apart only if it ends its line: a comment after it on that line is an
        // ignore comment for it, and must be in its run's sight.
        if let Some((pending_gap, pending)) = self.pending.take() {
            match gap_text.find('\n') {
                Some(newline) => self.accept(pending_gap, pending, gap.start + newline),
                None => self.close(),
            }
        }
        let starts_a_line = gap_text.contains('\n');
        if is_data(self.text, statement) && starts_a_line && self.line_seen(gap.start) {
            self.pending = Some((gap, statement.range.clone()));
        } else {
            self.close();
        }
    }

    fn finish(mut self) {
        if let Some((gap, statement)) = self.pending.take() {
            let tail = self.text.get(statement.end..).unwrap_or("");
            let line_end = statement.end + tail.find('\n').unwrap_or(tail.len());
            self.accept(gap, statement, line_end);
        }
        self.close();
    }

    /// Whether every ignore comment on the line where the statement before ends (`at`) is in sight of the run a
    /// statement starting after `at` would join.
    fn line_seen(&self, at: usize) -> bool {
        let line_start = self
            .text
            .get(..at)
            .and_then(|t| t.rfind('\n'))
            .map_or(0, |i| i + 1);
        let in_run = self
            .run
            .as_ref()
            .is_some_and(|r| r.statement_end == at && r.start <= line_start);
        in_run
            || !self
                .text
                .get(line_start..at)
                .is_some_and(|l| contains_ignore_case(l, "squawk-ignore"))
    }

    fn accept(&mut self, gap: Range<usize>, statement: Range<usize>, line_end: usize) {
        // Comments stay in the skeleton too: what an ignore comment before a data statement silences may be in
        // either part (see `Linter::lint_migration` for how `unused-ignore` is then judged).
        let blank_gap = self
            .text
            .get(gap.clone())
            .is_some_and(|g| g.trim().is_empty());
        let cut_from = if blank_gap {
            gap.start
        } else {
            statement.start
        };
        push_cut(self.cut, self.base + cut_from..self.base + statement.end);
        // A full run is cut where no ignore comment reaches across.
        let clean_break = !self
            .text
            .get(gap.clone())
            .is_some_and(|g| contains_ignore_case(g, "squawk-ignore"));
        match &mut self.run {
            Some(run)
                if run.statement_end == gap.start
                    && (run.statements < CHUNK_STATEMENTS || !clean_break) =>
            {
                run.statement_end = statement.end;
                run.end = line_end;
                run.statements += 1;
            }
            _ => {
                self.close();
                self.run = Some(Run {
                    start: gap.start,
                    statement_end: statement.end,
                    end: line_end,
                    statements: 1,
                });
            }
        }
    }

    fn close(&mut self) {
        if let Some(run) = self.run.take() {
            self.chunks.push((
                self.base + run.start..self.base + run.end,
                self.in_transaction,
            ));
        }
    }
}

/// Whether `statement` (of `text`) is a data statement the skeleton can do without.
fn is_data(text: &str, statement: &crate::Statement) -> bool {
    let data = match statement.kind {
        StatementKind::Insert | StatementKind::Delete => true,
        StatementKind::Update => !contains_ignore_case(statement.text(text), "alembic_version"),
        _ => false,
    };
    // The skeleton sees every ignore comment: one inside a statement keeps the statement there.
    data && !contains_ignore_case(statement.text(text), "squawk-ignore")
}

/// Whether `haystack` contains the ASCII `needle`, ignoring ASCII case.
pub(super) fn contains_ignore_case(haystack: &str, needle: &str) -> bool {
    haystack
        .as_bytes()
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

/// Add `range` to the sorted, disjoint `cut`, joining it to the last one when they touch.
fn push_cut(cut: &mut Vec<Range<usize>>, range: Range<usize>) {
    if range.is_empty() {
        return;
    }
    match cut.last_mut() {
        Some(last) if last.end == range.start => last.end = range.end,
        _ => cut.push(range),
    }
}

/// What stands in for a cut: its line breaks, up to two (enough to keep line-based ignore comments from reaching
/// across it), or a space when it held none (so the tokens around it stay apart).
fn separator(cut: &str) -> &'static str {
    match cut.bytes().filter(|b| *b == b'\n').take(2).count() {
        0 if cut.is_empty() => "",
        0 => " ",
        1 => "\n",
        _ => "\n\n",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::migration::parse;

    #[test]
    fn data_statements_are_cut_and_offsets_map_back() {
        let file = "-- migrate:up\nCREATE TABLE t (a int);\n-- rows\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);\nCREATE INDEX i ON t (a);\n-- migrate:down\nDELETE FROM t;\nDROP TABLE t;\n";
        let sections = parse(file).unwrap();
        let compact = Compact::new(file, &sections);
        assert_eq!(
            compact.text,
            "-- migrate:up\nCREATE TABLE t (a int);\n-- rows\n\n\nCREATE INDEX i ON t (a);\n-- migrate:down\n\n\n"
        );
        let index = compact.text.find("CREATE INDEX").unwrap();
        assert_eq!(compact.to_file(index), file.find("CREATE INDEX").unwrap());
        assert_eq!(compact.chunks.len(), 1);
        let (range, in_transaction) = &compact.chunks[0];
        assert!(in_transaction);
        assert_eq!(
            &file[range.clone()],
            "\n-- rows\nINSERT INTO t VALUES (1);\nINSERT INTO t VALUES (2);"
        );
        let up = &compact.sections[0];
        assert_eq!(
            up.text(&compact.text),
            "CREATE TABLE t (a int);\n-- rows\n\n\nCREATE INDEX i ON t (a);\n"
        );
    }

    #[test]
    fn runs_are_chunked_and_file_ignores_stay_in_the_skeleton() {
        let mut file = String::from("CREATE TABLE t (a int);\n");
        for i in 0..CHUNK_STATEMENTS + 1 {
            file.push_str(&format!("INSERT INTO t VALUES ({i});\n"));
        }
        file.push_str(
            "UPDATE t SET a = 1 /* squawk-ignore-file */;\nUPDATE alembic_version SET v = 2;\n",
        );
        let sections = parse(&file).unwrap();
        let compact = Compact::new(&file, &sections);
        assert_eq!(compact.chunks.len(), 2);
        assert!(
            compact
                .text
                .contains("UPDATE t SET a = 1 /* squawk-ignore-file */;")
        );
        assert!(compact.text.contains("UPDATE alembic_version"));
        assert!(!compact.text.contains("INSERT"));
    }

    #[test]
    fn a_file_without_data_statements_is_whole() {
        let file = "CREATE TABLE t (a int);\nSELECT 1;\n";
        let compact = Compact::new(file, &parse(file).unwrap());
        assert!(compact.is_whole(file));
        assert_eq!(compact.text, file);
    }
}
