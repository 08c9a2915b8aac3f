//! Quoting SQL text for generated scripts.

use postgres_protocol::escape::escape_literal;

/// A dollar-quote tag `$<base><n>$` that does not occur in `text`, nor straddles its end (`x$q` + `$q$`).
pub(crate) fn dollar_tag(base: &str, text: &str) -> String {
    let mut n = 0usize;
    loop {
        let tag = if n == 0 {
            format!("${base}$")
        } else {
            format!("${base}{n}$")
        };
        let closed = format!("{text}{tag}");
        if closed.find(&tag) == Some(text.len()) {
            return tag;
        }
        n += 1;
    }
}

/// `text` as a dollar-quoted literal.
pub(super) fn dollar_quote(text: &str) -> String {
    let tag = dollar_tag("q", text);
    format!("{tag}{text}{tag}")
}

/// `ARRAY[…]::text[]` of literals (`'{}'::text[]` when empty).
pub(super) fn text_array(items: &[String]) -> String {
    if items.is_empty() {
        return "'{}'::text[]".to_string();
    }
    format!(
        "ARRAY[{}]::text[]",
        items
            .iter()
            .map(|s| escape_literal(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_quotes_avoid_the_text() {
        assert_eq!(dollar_quote("SELECT 1"), "$q$SELECT 1$q$");
        assert_eq!(dollar_quote("SELECT '$q$'"), "$q1$SELECT '$q$'$q1$");
        assert_eq!(dollar_quote("x$"), "$q$x$$q$");
        assert_eq!(dollar_quote("x$q"), "$q1$x$q$q1$");
    }

    #[test]
    fn dollar_tags_avoid_the_text() {
        assert_eq!(dollar_tag("m", "SELECT 1;\n"), "$m$");
        assert_eq!(dollar_tag("m", "SELECT $m$x$m$;\n"), "$m1$");
        assert_eq!(dollar_tag("m", "$m$ $m1$\n"), "$m2$");
    }
}
