//! SQL that only newer PostgreSQL servers accept, and the hint that says so when an older server refuses it.
//!
//! An older server rejects such SQL with a message that does not mention versions (`syntax error at or near
//! "MERGE"`, `function uuidv7() does not exist`). [`newer_server_hint`] recognises the failure — from the
//! SQLSTATE, the message and the error position — and names the version that accepts the statement. It only
//! speaks when the server's error is exactly what an older server reports for that feature (a syntax error *at*
//! the feature's words, a missing function *with that signature*), so a real mistake is not blamed on the version.
//!
//! The catalogue [`FEATURES`] is tested against every supported server: each example must fail, with the hint,
//! on the versions before [`Feature::since`] and run on the others.
//!
//! ```
//! use pgstrata_sql::versions::newer_server_hint;
//!
//! let sql = "MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN DELETE";
//! // PostgreSQL 14: ERROR: syntax error at or near "MERGE" (position 1)
//! let hint = newer_server_hint(sql, Some(0), "42601", "syntax error at or near \"MERGE\"").unwrap();
//! assert!(hint.contains("new in PostgreSQL 15"), "{hint}");
//! // A syntax error elsewhere in the statement is not the version's fault.
//! assert_eq!(newer_server_hint(sql, Some(30), "42601", "syntax error at or near \"s\""), None);
//! ```

use std::ops::Range;

use squawk_lexer::TokenKind;

use crate::lex::{Tok, tokenize};

/// SQL syntax or a built-in function that PostgreSQL added in some major version.
#[derive(Debug)]
pub struct Feature {
    /// What it is, as the hint names it, e.g. "`MERGE`".
    pub name: &'static str,
    /// The first major version that accepts it.
    pub since: u32,
    /// A script using it that runs in an empty database on every version from [`since`](Self::since) on (the
    /// tests run it against each server).
    pub example: &'static str,
    how: Detect,
}

/// How an older server's refusal of a feature is recognised.
#[derive(Debug)]
enum Detect {
    /// Consecutive words (keywords, identifiers or punctuation, ASCII case-insensitive; `A|B` = either) in a
    /// statement, and an error with one of `states` positioned on them (or, for errors without a position, whose
    /// message contains `message`).
    Words {
        words: &'static [&'static str],
        /// A word the statement must also contain (`MERGE` for `… RETURNING`), if any.
        within: Option<&'static str>,
        states: &'static [&'static str],
        message: Option<&'static str>,
    },
    /// `function NAME(ARGS) does not exist` (42883), for a function of that name and, if given, argument types.
    Function {
        name: &'static str,
        args: Option<&'static [&'static str]>,
        arity: Option<usize>,
    },
    /// A message only older servers give.
    Message {
        state: &'static str,
        message: &'static str,
    },
    /// `GENERATED ALWAYS AS (…)` without `STORED`: virtual, and only PostgreSQL 18 knows virtual columns.
    GeneratedWithoutStored,
}

const SYNTAX: &[&str] = &["42601"];

const fn words(words: &'static [&'static str]) -> Detect {
    Detect::Words {
        words,
        within: None,
        states: SYNTAX,
        message: None,
    }
}

const fn function(name: &'static str) -> Detect {
    Detect::Function {
        name,
        args: None,
        arity: None,
    }
}

/// Every feature Strata recognises, oldest first.
pub static FEATURES: &[Feature] = &[
    Feature {
        name: "`MERGE`",
        since: 15,
        example: "CREATE TABLE t (id int); \
                  MERGE INTO t USING (VALUES (1)) AS v(id) ON t.id = v.id WHEN NOT MATCHED THEN INSERT VALUES (v.id)",
        how: words(&["MERGE", "INTO"]),
    },
    Feature {
        name: "`UNIQUE NULLS NOT DISTINCT`",
        since: 15,
        example: "CREATE TABLE t (a int, UNIQUE NULLS NOT DISTINCT (a))",
        how: words(&["NULLS", "NOT", "DISTINCT"]),
    },
    Feature {
        name: "`SET ACCESS METHOD` on a table",
        since: 15,
        example: "CREATE TABLE t (a int); ALTER TABLE t SET ACCESS METHOD heap",
        how: words(&["SET", "ACCESS", "METHOD"]),
    },
    Feature {
        name: "the view option `security_invoker`",
        since: 15,
        example: "CREATE VIEW v WITH (security_invoker = true) AS SELECT 1 AS one",
        how: Detect::Words {
            words: &["SECURITY_INVOKER"],
            within: None,
            states: &["22023"],
            message: Some("security_invoker"),
        },
    },
    Feature {
        name: "`min(xid8)` and `max(xid8)`",
        since: 15,
        example: "SELECT min(x), max(x) FROM (VALUES ('1'::xid8)) AS v(x)",
        how: Detect::Function {
            name: "min|max",
            args: Some(&["xid8"]),
            arity: None,
        },
    },
    Feature {
        name: "`regexp_count`, `regexp_instr`, `regexp_like` and `regexp_substr`",
        since: 15,
        example: "SELECT regexp_count('aa', 'a'), regexp_instr('a', 'a'), regexp_like('a', 'a'), \
                  regexp_substr('a', 'a')",
        how: function("regexp_count|regexp_instr|regexp_like|regexp_substr"),
    },
    Feature {
        name: "a subquery or VALUES in FROM without an alias",
        since: 16,
        example: "SELECT * FROM (SELECT 1) JOIN (VALUES (1)) ON true",
        how: Detect::Message {
            state: "42601",
            message: "in FROM must have an alias",
        },
    },
    Feature {
        name: "the `IS JSON` predicate",
        since: 16,
        example: "SELECT '{}' IS JSON OBJECT, '1' IS NOT JSON",
        how: words(&["IS|NOT", "JSON"]),
    },
    Feature {
        name: "role grant options (`WITH INHERIT`, `WITH SET`, `WITH ADMIN TRUE|FALSE`)",
        since: 16,
        example: "CREATE ROLE strata_example_a; CREATE ROLE strata_example_b; \
                  GRANT strata_example_a TO strata_example_b WITH INHERIT FALSE, SET TRUE, ADMIN FALSE",
        how: Detect::Words {
            words: &["WITH", "INHERIT|SET|ADMIN"],
            within: Some("GRANT"),
            states: SYNTAX,
            message: None,
        },
    },
    Feature {
        name: "`any_value`, `random_normal`, `array_sample`, `array_shuffle`, `date_add`, `date_subtract`, \
               `pg_input_is_valid` and `pg_input_error_info`",
        since: 16,
        example: "SELECT any_value(x), random_normal(), array_sample(ARRAY[1], 1), array_shuffle(ARRAY[1]), \
                  date_add(now(), interval '1 day'), date_subtract(now(), interval '1 day'), \
                  pg_input_is_valid('1', 'int'), pg_input_error_info('x', 'int') FROM (VALUES (1)) AS v(x)",
        how: function(
            "any_value|random_normal|array_sample|array_shuffle|date_add|date_subtract|pg_input_is_valid|\
             pg_input_error_info",
        ),
    },
    Feature {
        name: "`MERGE … RETURNING`",
        since: 17,
        example: "CREATE TABLE t (id int); \
                  MERGE INTO t USING (VALUES (1)) AS v(id) ON t.id = v.id \
                  WHEN NOT MATCHED THEN INSERT VALUES (v.id) RETURNING t.id",
        how: Detect::Words {
            words: &["RETURNING"],
            within: Some("MERGE"),
            states: SYNTAX,
            message: None,
        },
    },
    Feature {
        name: "`WHEN NOT MATCHED BY SOURCE|TARGET` in `MERGE`",
        since: 17,
        example: "CREATE TABLE t (id int); \
                  MERGE INTO t USING (VALUES (1)) AS v(id) ON t.id = v.id \
                  WHEN NOT MATCHED BY SOURCE THEN DELETE WHEN NOT MATCHED BY TARGET THEN INSERT VALUES (v.id)",
        how: words(&["MATCHED", "BY"]),
    },
    Feature {
        name: "`JSON_TABLE`",
        since: 17,
        example: "SELECT * FROM JSON_TABLE('[1, 2]', '$[*]' COLUMNS (a int PATH '$')) AS j",
        how: Detect::Words {
            words: &["COLUMNS"],
            within: Some("JSON_TABLE"),
            states: SYNTAX,
            message: None,
        },
    },
    Feature {
        name: "`ALTER COLUMN … SET EXPRESSION`",
        since: 17,
        example: "CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a * 2) STORED); \
                  ALTER TABLE t ALTER COLUMN b SET EXPRESSION AS (a * 3)",
        how: words(&["SET", "EXPRESSION"]),
    },
    Feature {
        name: "the `MAINTAIN` privilege",
        since: 17,
        example: "CREATE TABLE t (a int); GRANT MAINTAIN ON t TO PUBLIC",
        how: Detect::Words {
            words: &["MAINTAIN"],
            within: Some("GRANT|REVOKE"),
            states: &["42601"],
            message: Some("\"maintain\""),
        },
    },
    Feature {
        name: "`COPY … ON_ERROR`",
        since: 17,
        example: "CREATE TABLE t (a int); COPY t FROM '/dev/null' (FORMAT csv, ON_ERROR ignore)",
        how: Detect::Words {
            words: &["ON_ERROR"],
            within: Some("COPY"),
            states: &["42601"],
            message: Some("\"on_error\""),
        },
    },
    Feature {
        name: "`uuid_extract_timestamp`, `uuid_extract_version`, `to_bin` and `to_oct`",
        since: 17,
        example: "SELECT uuid_extract_timestamp(gen_random_uuid()), \
                  uuid_extract_version(gen_random_uuid()), to_bin(5), to_oct(8)",
        how: function("uuid_extract_timestamp|uuid_extract_version|to_bin|to_oct"),
    },
    Feature {
        name: "`random(min, max)`",
        since: 17,
        example: "SELECT random(1, 6), random(1.5, 2.5)",
        how: Detect::Function {
            name: "random",
            args: None,
            arity: Some(2),
        },
    },
    Feature {
        name: "virtual generated columns (`GENERATED ALWAYS AS (…)` without `STORED`, or `VIRTUAL`)",
        since: 18,
        example: "CREATE TABLE t (a int, b int GENERATED ALWAYS AS (a * 2), c int GENERATED ALWAYS AS (a + 1) VIRTUAL)",
        how: Detect::GeneratedWithoutStored,
    },
    Feature {
        name: "named `NOT NULL` table constraints (`CONSTRAINT name NOT NULL column`, `NOT VALID`)",
        since: 18,
        example: "CREATE TABLE t (a int); ALTER TABLE t ADD CONSTRAINT t_a_required NOT NULL a NOT VALID",
        how: words(&["CONSTRAINT", "*", "NOT", "NULL"]),
    },
    Feature {
        name: "`NOT ENFORCED` constraints",
        since: 18,
        example: "CREATE TABLE t (a int, CONSTRAINT positive CHECK (a > 0) NOT ENFORCED)",
        how: words(&["ENFORCED"]),
    },
    Feature {
        name: "`WITHOUT OVERLAPS` keys",
        since: 18,
        example: "CREATE EXTENSION IF NOT EXISTS btree_gist; \
                  CREATE TABLE t (id int, during tstzrange, PRIMARY KEY (id, during WITHOUT OVERLAPS))",
        how: words(&["WITHOUT", "OVERLAPS"]),
    },
    Feature {
        name: "`OLD` and `NEW` in `RETURNING`",
        since: 18,
        example: "CREATE TABLE t (a int); INSERT INTO t VALUES (1); UPDATE t SET a = 2 RETURNING old.a, new.a",
        how: Detect::Words {
            words: &["OLD|NEW", "."],
            within: Some("RETURNING"),
            states: &["42P01"],
            message: None,
        },
    },
    Feature {
        name: "`uuidv7()`, `uuidv4()`, `casefold`, `array_reverse`, `array_sort`, `crc32`, `crc32c`, `gamma` and \
               `lgamma`",
        since: 18,
        example: "SELECT uuidv7(), uuidv4(), casefold('A'), array_reverse(ARRAY[1, 2]), array_sort(ARRAY[2, 1]), \
                  crc32('a'::bytea), crc32c('a'::bytea), gamma(2), lgamma(2)",
        how: function("uuidv7|uuidv4|casefold|array_reverse|array_sort|crc32|crc32c|gamma|lgamma"),
    },
];

/// The hint for an error an older server gives for SQL that a newer version accepts, or `None`.
///
/// `statement` is the text the server ran (one statement, or a script sent at once), `error_at` the byte offset
/// of the error's position in it, if the server gave one; `sqlstate` and `message` are the server's.
pub fn newer_server_hint(
    statement: &str,
    error_at: Option<usize>,
    sqlstate: &str,
    message: &str,
) -> Option<String> {
    let feature = refused_feature(statement, error_at, sqlstate, message)?;
    Some(format!(
        "{}: new in PostgreSQL {}, and this server is older. Upgrade the server, or write the statement the way \
         older versions accept it",
        feature.name, feature.since
    ))
}

/// The feature whose refusal by an older server this error is, if any (see [`newer_server_hint`]).
pub fn refused_feature(
    statement: &str,
    error_at: Option<usize>,
    sqlstate: &str,
    message: &str,
) -> Option<&'static Feature> {
    let toks: Vec<Tok> = tokenize(statement)
        .into_iter()
        .filter(|t| !t.is_trivia())
        .collect();
    FEATURES
        .iter()
        .find(|f| refuses(&f.how, statement, &toks, error_at, sqlstate, message))
}

fn refuses(
    how: &Detect,
    src: &str,
    toks: &[Tok],
    error_at: Option<usize>,
    sqlstate: &str,
    message: &str,
) -> bool {
    match how {
        Detect::Words {
            words,
            within,
            states,
            message: needle,
        } => {
            if !states.contains(&sqlstate) || needle.is_some_and(|n| !contains_ci(message, n)) {
                return false;
            }
            uses(src, toks, words, *within).any(|range| match error_at {
                Some(at) => range.start <= at && at <= range.end,
                // Without a position, the message must have named the feature.
                None => needle.is_some(),
            })
        }
        Detect::Function { name, args, arity } => {
            if sqlstate != "42883" {
                return false;
            }
            let Some((called, called_args)) = missing_function(message) else {
                return false;
            };
            alternatives(name).any(|n| n.eq_ignore_ascii_case(called))
                && args.is_none_or(|want| {
                    want.len() == called_args.len()
                        && want
                            .iter()
                            .zip(&called_args)
                            .all(|(w, c)| w.eq_ignore_ascii_case(c))
                })
                && arity.is_none_or(|n| n == called_args.len())
        }
        Detect::Message { state, message: m } => *state == sqlstate && message.contains(m),
        Detect::GeneratedWithoutStored => {
            sqlstate == "42601"
                && generated_without_stored(src, toks)
                    .any(|range| error_at.is_none_or(|at| range.start <= at && at <= range.end))
        }
    }
}

/// `a|b` → `a`, `b`.
fn alternatives(word: &str) -> impl Iterator<Item = &str> {
    word.split('|')
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack
        .to_ascii_lowercase()
        .contains(&needle.to_ascii_lowercase())
}

/// Does token `t` match pattern word `w` (`*` matches any token)?
fn matches_word(src: &str, t: &Tok, w: &str) -> bool {
    if w == "*" {
        return true;
    }
    let text = t.text(src);
    alternatives(w).any(|alt| {
        if alt.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            t.kind == TokenKind::Ident && text.eq_ignore_ascii_case(alt)
        } else {
            text == alt
        }
    })
}

/// The byte ranges of each occurrence of `words` (in a statement that also contains `within`, when given), each
/// extended to the end of the token after it (where a parser stuck on the last word reports).
fn uses<'a>(
    src: &'a str,
    toks: &'a [Tok],
    words: &'a [&'a str],
    within: Option<&'a str>,
) -> impl Iterator<Item = Range<usize>> + 'a {
    toks.split(|t| t.kind == TokenKind::Semi)
        .filter(move |stmt| within.is_none_or(|w| stmt.iter().any(|t| matches_word(src, t, w))))
        .flat_map(move |stmt| {
            stmt.windows(words.len())
                .enumerate()
                .filter(move |(_, window)| {
                    window
                        .iter()
                        .zip(words)
                        .all(|(t, w)| matches_word(src, t, w))
                })
                .map(move |(i, window)| {
                    let end = stmt
                        .get(i + words.len())
                        .map_or(src.len(), |next| next.range.end);
                    window[0].range.start..end
                })
        })
}

/// `GENERATED ALWAYS AS ( … )` not followed by `STORED`: from `GENERATED` to the end of the token after `)`.
fn generated_without_stored<'a>(
    src: &'a str,
    toks: &'a [Tok],
) -> impl Iterator<Item = Range<usize>> + 'a {
    (0..toks.len()).filter_map(move |i| {
        let head = toks.get(i..i + 4)?;
        let expected = ["GENERATED", "ALWAYS", "AS", "("];
        if !head
            .iter()
            .zip(expected)
            .all(|(t, w)| matches_word(src, t, w))
        {
            return None;
        }
        let mut depth = 0usize;
        let mut close = None;
        for (j, t) in toks.iter().enumerate().skip(i + 3) {
            match t.kind {
                TokenKind::OpenParen => depth += 1,
                TokenKind::CloseParen => {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        close = Some(j);
                        break;
                    }
                }
                _ => {}
            }
        }
        let close = close?;
        let next = toks.get(close + 1);
        if next.is_some_and(|t| matches_word(src, t, "STORED")) {
            return None;
        }
        Some(toks[i].range.start..next.map_or(src.len(), |t| t.range.end))
    })
}

/// `function pg_catalog.uuidv7() does not exist` → (`uuidv7`, []); argument types as the server lists them.
fn missing_function(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("function ")?;
    let rest = rest.strip_suffix(" does not exist")?;
    let (name, args) = rest.split_once('(')?;
    let args = args.strip_suffix(')')?;
    let name = name.rsplit('.').next().unwrap_or(name).trim_matches('"');
    let args = if args.trim().is_empty() {
        Vec::new()
    } else {
        args.split(", ").map(str::trim).collect()
    };
    Some((name, args))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint_since(sql: &str, at: Option<usize>, state: &str, message: &str) -> Option<u32> {
        refused_feature(sql, at, state, message).map(|f| f.since)
    }

    #[test]
    fn syntax_errors_at_the_feature_name_its_version() {
        let sql = "CREATE TABLE t (a int, UNIQUE NULLS NOT DISTINCT (a))";
        let at = sql.find("NULLS");
        assert_eq!(
            hint_since(sql, at, "42601", "syntax error at or near \"NULLS\""),
            Some(15)
        );
        // Elsewhere: not the feature's fault.
        assert_eq!(
            hint_since(sql, Some(0), "42601", "syntax error at or near \"CREATE\""),
            None
        );
        // The same words in a comment or a string are not a use.
        let sql = "SELECT 'UNIQUE NULLS NOT DISTINCT' -- NULLS NOT DISTINCT\n";
        assert_eq!(hint_since(sql, Some(8), "42601", "syntax error"), None);
    }

    #[test]
    fn merge_returning_is_17_but_merge_itself_15() {
        let sql = "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE RETURNING *";
        assert_eq!(
            hint_since(sql, Some(0), "42601", "syntax error at or near \"MERGE\""),
            Some(15)
        );
        let at = sql.find("RETURNING");
        assert_eq!(
            hint_since(sql, at, "42601", "syntax error at or near \"RETURNING\""),
            Some(17)
        );
        // RETURNING in other statements is old.
        let sql = "DELETE FROM t RETURNING *";
        assert_eq!(
            hint_since(sql, sql.find("RETURNING"), "42601", "syntax error"),
            None
        );
    }

    #[test]
    fn missing_functions_by_name_and_signature() {
        assert_eq!(
            hint_since(
                "SELECT uuidv7()",
                None,
                "42883",
                "function uuidv7() does not exist"
            ),
            Some(18)
        );
        assert_eq!(
            hint_since(
                "SELECT min(x) FROM t",
                None,
                "42883",
                "function min(xid8) does not exist"
            ),
            Some(15)
        );
        // min of another type is a mistake, not a version problem.
        assert_eq!(
            hint_since(
                "SELECT min(x) FROM t",
                None,
                "42883",
                "function min(point) does not exist"
            ),
            None
        );
        assert_eq!(
            hint_since(
                "SELECT random(1, 6)",
                None,
                "42883",
                "function random(integer, integer) does not exist"
            ),
            Some(17)
        );
        assert_eq!(
            hint_since(
                "SELECT random(1)",
                None,
                "42883",
                "function random(integer) does not exist"
            ),
            None
        );
        assert_eq!(
            hint_since(
                "SELECT pg_catalog.casefold('a')",
                None,
                "42883",
                "function pg_catalog.casefold(unknown) does not exist"
            ),
            Some(18)
        );
        assert_eq!(
            hint_since(
                "SELECT nope()",
                None,
                "42883",
                "function nope() does not exist"
            ),
            None
        );
    }

    #[test]
    fn generated_columns_without_stored_are_virtual() {
        let sql = "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS ((a + 1) * 2)";
        assert_eq!(
            hint_since(
                sql,
                Some(sql.len()),
                "42601",
                "syntax error at end of input"
            ),
            Some(18)
        );
        let sql = "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS ((a + 1) * 2) STORED, ADD COLUMN h int";
        assert_eq!(
            hint_since(
                sql,
                Some(sql.len()),
                "42601",
                "syntax error at end of input"
            ),
            None
        );
    }

    #[test]
    fn the_hint_names_the_version() {
        let hint = newer_server_hint(
            "SELECT uuidv7()",
            None,
            "42883",
            "function uuidv7() does not exist",
        );
        assert_eq!(
            hint.as_deref(),
            Some(
                "`uuidv7()`, `uuidv4()`, `casefold`, `array_reverse`, `array_sort`, `crc32`, `crc32c`, `gamma` and \
                 `lgamma`: new in PostgreSQL 18, and this server is older. Upgrade the server, or write the \
                 statement the way older versions accept it"
            )
        );
    }
}
