//! HTML views (maud: compile-time templates, every interpolation escaped). Each takes the page's data value, the
//! same one `/api/…` returns as JSON.

pub(crate) mod layout;
pub(crate) mod overview;
pub(crate) mod plan;
pub(crate) mod queues;
pub(crate) mod runs;
pub(crate) mod sql;
pub(crate) mod streams;
pub(crate) mod svg;

use chrono::{DateTime, Utc};
use maud::{Markup, html};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// What every page's frame needs.
pub(crate) struct Frame {
    /// The connection, without password.
    pub target: String,
    pub read_only: bool,
    pub csrf: String,
}

/// Characters escaped in a path segment or query value.
const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `text` as a URL path segment or query value.
pub(crate) fn encode(text: &str) -> String {
    utf8_percent_encode(text, SEGMENT).to_string()
}

/// `2026-12-06 14:03:07 UTC`.
pub(crate) fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration in milliseconds, readable.
pub(crate) fn ms(ms: f64) -> String {
    if ms < 1.0 {
        format!("{ms:.2} ms")
    } else if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else {
        pgstrata_ops::inspect::pretty_age(ms / 1000.0)
    }
}

/// An age in seconds, readable (`—` when there is none).
pub(crate) fn age(seconds: Option<f64>) -> String {
    seconds.map_or_else(|| "—".to_string(), pgstrata_ops::inspect::pretty_age)
}

/// 12,345.
pub(crate) fn num(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A badge whose colour follows its text (`ok`, `warning`, `problem`, `failed`, `success`, …).
pub(crate) fn badge(text: &str) -> Markup {
    let class = match text {
        "ok" | "success" | "applied" | "in-sync" | "apply" => "good",
        "warning" | "pending" | "noop" | "dry-run" | "running" | "new" | "changed" | "skipped" => {
            "warn"
        }
        "problem" | "failed" | "missing" | "drifted" | "out-of-order" | "error" | "revert" => "bad",
        _ => "neutral",
    };
    html! { span class={"badge " (class)} { (text) } }
}

/// Links to the previous and next pages of a listing; `base` is the path with its other query parameters.
pub(crate) fn pager(base: &str, page: i64, pages: i64) -> Markup {
    let sep = if base.contains('?') { '&' } else { '?' };
    html! {
        nav.pager aria-label="pages" {
            @if page > 1 {
                a rel="prev" href={(base) (sep) "page=" (page - 1)} { "← previous" }
            } @else { span.off { "← previous" } }
            span { "page " (page) " of " (pages) }
            @if page < pages {
                a rel="next" href={(base) (sep) "page=" (page + 1)} { "next →" }
            } @else { span.off { "next →" } }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_segments() {
        assert_eq!(num(0), "0");
        assert_eq!(num(1234567), "1,234,567");
        assert_eq!(num(-1000), "-1,000");
        assert_eq!(encode("mail/out q"), "mail%2Fout%20q");
        assert_eq!(ms(1500.0), "1.5 s");
    }
}
