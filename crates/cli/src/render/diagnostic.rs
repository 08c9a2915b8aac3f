//! Printing a diagnostic without crashing on what it points at.
//!
//! miette pads the underline of a label to its column with a formatting width, and Rust refuses widths above
//! 65,535 with a panic ("Formatting argument out of range"): an error at column 70,000 of a one-line file (a
//! minified dump) crashed the CLI. Such a diagnostic is printed without its source snippet; its message still
//! names the file, line and column.

use std::fmt;

use miette::{Diagnostic, LabeledSpan, SourceCode};

/// Columns (bytes, an upper bound of characters) beyond which a snippet is not drawn: below miette's limit, with
/// room for the gutter.
const MAX_COLUMN: usize = 60_000;

/// The report as miette draws it, or without snippets when one of them would point too far to the right.
pub fn render(report: &miette::Report) -> String {
    let diagnostic: &dyn Diagnostic = report.as_ref();
    if drawable(diagnostic) {
        format!("{report:?}")
    } else {
        let mut out = String::new();
        let handler = miette::GraphicalReportHandler::new();
        match handler.render_report(&mut out, &WithoutSnippets(diagnostic)) {
            Ok(()) => out,
            Err(_) => format!("× {report}"),
        }
    }
}

/// Whether every label of `d` (and of its related diagnostics) sits at a column miette can draw.
fn drawable(d: &dyn Diagnostic) -> bool {
    let labels_fit = match (d.source_code(), d.labels()) {
        (Some(source), Some(labels)) => labels.into_iter().all(|l| fits(source, &l)),
        _ => true,
    };
    labels_fit && d.related().is_none_or(|mut r| r.all(drawable))
}

fn fits(source: &dyn SourceCode, label: &LabeledSpan) -> bool {
    // The span's own text, and the line around it: from the line's start to the span's end.
    match source.read_span(label.inner(), 0, 0) {
        Ok(contents) => contents.column() + label.len() < MAX_COLUMN,
        Err(_) => true,
    }
}

/// A diagnostic shown without its source code and labels.
struct WithoutSnippets<'a>(&'a dyn Diagnostic);

impl fmt::Debug for WithoutSnippets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.0, f)
    }
}

impl fmt::Display for WithoutSnippets<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.0, f)
    }
}

impl std::error::Error for WithoutSnippets<'_> {}

impl Diagnostic for WithoutSnippets<'_> {
    fn code<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.code()
    }
    fn severity(&self) -> Option<miette::Severity> {
        self.0.severity()
    }
    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.help()
    }
    fn url<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.0.url()
    }
}
