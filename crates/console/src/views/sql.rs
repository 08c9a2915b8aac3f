//! SQL with its tokens coloured (classes from `pgstrata_sql::highlight`, colours in the style sheet).

use maud::{Markup, html};
use pgstrata_sql::highlight::{Class, highlight};

/// A `<pre>` block of highlighted SQL with line numbers in the margin.
pub(crate) fn block(sql: &str) -> Markup {
    // Files end with blank lines; the gutter should not count them.
    let sql = sql.trim_end();
    let lines = sql.lines().count().max(1);
    html! {
        div.sql {
            pre.gutter aria-hidden="true" {
                @for n in 1..=lines { (n) "\n" }
            }
            pre.code { code {
                @for (range, class) in highlight(sql) {
                    @if class == Class::Plain { (&sql[range]) }
                    @else { span class=(class.name()) { (&sql[range]) } }
                }
            } }
        }
    }
}
