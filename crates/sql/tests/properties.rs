//! Property tests: splitting never loses text, never overlaps, and finds exactly the statements a
//! script was built from.

use pgstrata_sql::{LineIndex, char_position_to_byte, migration, normalize, split};
use proptest::prelude::*;

/// Statements full of the things that must not split: `;` in strings, quoted identifiers,
/// dollar quotes, comments, `BEGIN ATOMIC` bodies and parentheses.
fn statement() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("SELECT 1".to_string()),
        Just("SELECT 'a;b', E'\\';', $$;$$, $t$ $$ ; $t$ FROM \"x;y\"".to_string()),
        Just("INSERT INTO t /* ; /* ; */ ; */ VALUES (';')".to_string()),
        Just("CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true THEN 2 END; END".to_string()),
        Just("CREATE RULE r AS ON INSERT TO v DO INSTEAD (INSERT INTO a VALUES (1); DELETE FROM b)".to_string()),
        Just("CREATE INDEX CONCURRENTLY i ON t (a)".to_string()),
        Just("ALTER TABLE t FROBNICATE WITH (x = ';')".to_string()),
        Just("SELECT 'é€😀' -- comment ; here\n  + 1".to_string()),
        "[a-z]{1,8}( [a-z0-9]{1,8}){0,4}",
    ]
}

/// What may sit between statements.
fn gap() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("".to_string()),
        Just(" ".to_string()),
        Just("\n".to_string()),
        Just("\r\n".to_string()),
        Just("\n-- a ; comment\n".to_string()),
        Just(" /* ; */ ".to_string()),
        Just("\n\n;\n".to_string()),
    ]
}

fn check_layout(sql: &str) {
    let script = split(sql);
    let mut end = 0;
    for s in &script.statements {
        assert!(
            s.range.start >= end,
            "overlap or disorder: {:?}",
            script.statements
        );
        assert!(s.range.start < s.range.end && s.range.end <= sql.len());
        assert!(sql.is_char_boundary(s.range.start) && sql.is_char_boundary(s.range.end));
        let text = s.text(sql);
        assert_eq!(text.trim_start(), text, "statements start at a token");
        // Only an unterminated literal (reported as an error) can end in whitespace.
        assert!(
            text.trim_end() == text || !script.errors.is_empty(),
            "{text:?}"
        );
        assert!(!text.starts_with("--") && !text.starts_with("/*"));
        end = s.range.end;
    }
    // Statements plus the gaps between them reproduce the input.
    let mut rebuilt = String::new();
    let mut at = 0;
    for s in &script.statements {
        rebuilt.push_str(&sql[at..s.range.start]);
        rebuilt.push_str(s.text(sql));
        at = s.range.end;
    }
    rebuilt.push_str(&sql[at..]);
    assert_eq!(rebuilt, sql);
    for e in &script.errors {
        assert!(
            e.range.start <= e.range.end && e.range.end <= sql.len(),
            "{e:?}"
        );
    }
}

proptest! {
    #[test]
    fn built_scripts_split_back_into_their_statements(
        parts in prop::collection::vec((gap(), statement()), 0..12),
        tail in gap(),
        final_semicolon in any::<bool>(),
    ) {
        let mut sql = String::new();
        let mut expected = Vec::new();
        for (k, (gap, statement)) in parts.iter().enumerate() {
            sql.push_str(gap);
            let text = if k + 1 < parts.len() || final_semicolon {
                format!("{statement};")
            } else {
                statement.clone()
            };
            sql.push_str(&text);
            expected.push(text);
        }
        // A lone `;` after an unterminated last statement would end it.
        let tail = if final_semicolon { tail } else { tail.replace(';', "") };
        sql.push_str(&tail);
        check_layout(&sql);
        let script = split(&sql);
        let got: Vec<&str> = script.statements.iter().map(|s| s.text(&sql)).collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn arbitrary_text_keeps_the_layout_invariants(sql in "(?s)[ -~\\n\\r\\téλ😀]{0,200}") {
        check_layout(&sql);
        // Nothing else panics on arbitrary text either.
        let _ = migration::parse(&sql);
        let _ = migration::parse_down(&sql);
        let _ = pgstrata_sql::routine_body_range(&sql);
        let _ = pgstrata_sql::check(&sql);
        let index = LineIndex::new(&sql);
        for offset in 0..=sql.len() + 1 {
            let at = index.line_col(offset);
            prop_assert!(at.line >= 1 && at.col >= 1);
        }
        for s in split(&sql).statements {
            let _ = pgstrata_sql::non_transactional_reason(&sql, &s);
        }
    }

    #[test]
    fn sql_like_fragments_keep_the_layout_invariants(
        pieces in prop::collection::vec(prop_oneof![
            Just("'"), Just("\""), Just("$$"), Just("$a$"), Just("--"), Just("/*"), Just("*/"),
            Just(";"), Just("("), Just(")"), Just("BEGIN"), Just("END"), Just("CASE"),
            Just("CREATE"), Just("FUNCTION"), Just("ATOMIC"), Just("E'"), Just("\\"), Just("\n"),
            Just(" "), Just("x"), Just("é"),
        ], 0..40)
    ) {
        let sql: String = pieces.concat();
        check_layout(&sql);
        let _ = migration::parse(&sql);
    }

    #[test]
    fn line_col_agrees_with_a_naive_count(sql in "(?s)[a\\né€😀\\r]{0,60}", offset in 0usize..80) {
        let index = LineIndex::new(&sql);
        let at = index.line_col(offset);
        let mut clamped = offset.min(sql.len());
        while !sql.is_char_boundary(clamped) {
            clamped -= 1;
        }
        let normalized = normalize(&sql[..clamped]);
        let line = normalized.matches('\n').count() + 1;
        let col = normalized.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        // A CR right before the offset whose LF is after it is a line break only once the LF
        // comes: the index sees the whole text, the naive count only the prefix.
        let cr_split = sql[..clamped].ends_with('\r') && sql[clamped..].starts_with('\n');
        if !cr_split {
            prop_assert_eq!((at.line as usize, at.col as usize), (line, col));
        }
    }

    #[test]
    fn char_positions_round_trip(sql in "[aé€😀]{0,30}", position in 1usize..40) {
        let byte = char_position_to_byte(&sql, position);
        prop_assert!(sql.is_char_boundary(byte));
        prop_assert_eq!(sql[..byte].chars().count(), (position - 1).min(sql.chars().count()));
    }
}
