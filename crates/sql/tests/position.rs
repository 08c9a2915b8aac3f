//! Line/column mapping, PostgreSQL positions, normalisation and routine bodies.

use std::borrow::Cow;

use pgstrata_sql::{
    LineCol, LineIndex, char_position_to_byte, normalize, routine_body_range, split,
};

#[test]
fn line_col_basics() {
    let text = "ab\ncd\r\nef\rgh";
    let index = LineIndex::new(text);
    let at = |line, col| LineCol { line, col };
    assert_eq!(index.line_col(0), at(1, 1));
    assert_eq!(index.line_col(2), at(1, 3)); // the '\n' itself
    assert_eq!(index.line_col(3), at(2, 1));
    assert_eq!(index.line_col(5), at(2, 3)); // '\r' of CRLF ends line 2
    assert_eq!(index.line_col(7), at(3, 1));
    assert_eq!(index.line_col(10), at(4, 1)); // after a lone '\r'
    assert_eq!(index.line_col(text.len()), at(4, 3));
    assert_eq!(index.line_col(1000), at(4, 3)); // clamped
    assert_eq!(index.line_count(), 4);
}

#[test]
fn line_col_counts_characters() {
    let text = "é€😀x\nñy";
    let index = LineIndex::new(text);
    let x = text.find('x').unwrap();
    assert_eq!(index.line_col(x), LineCol { line: 1, col: 4 });
    let y = text.find('y').unwrap();
    assert_eq!(index.line_col(y), LineCol { line: 2, col: 2 });
    // Inside a multi-byte character: that character.
    assert_eq!(index.line_col(1), LineCol { line: 1, col: 1 });
    assert_eq!(index.line_col(4), LineCol { line: 1, col: 2 });
}

#[test]
fn line_start() {
    let text = "a\nbb\n\nc";
    let index = LineIndex::new(text);
    assert_eq!(index.line_start(0), None);
    assert_eq!(index.line_start(1), Some(0));
    assert_eq!(index.line_start(2), Some(2));
    assert_eq!(index.line_start(3), Some(5));
    assert_eq!(index.line_start(4), Some(6));
    assert_eq!(index.line_start(5), None);
    assert_eq!(LineIndex::new("").line_start(1), Some(0));
}

#[test]
fn char_positions_to_bytes() {
    let text = "SELECT 'ä€😀', bad";
    // PostgreSQL counts characters: S=1 … '=8, ä=9, €=10, 😀=11, '=12, ,=13, space=14, b=15.
    assert_eq!(char_position_to_byte(text, 15), text.find("bad").unwrap());
    assert_eq!(char_position_to_byte(text, 9), text.find('ä').unwrap());
    assert_eq!(char_position_to_byte(text, 11), text.find('😀').unwrap());
    assert_eq!(char_position_to_byte(text, 1), 0);
    assert_eq!(char_position_to_byte(text, 0), 0);
    assert_eq!(char_position_to_byte(text, 999), text.len());
    assert_eq!(char_position_to_byte("", 3), 0);
}

#[test]
fn normalize_cases() {
    assert!(matches!(normalize("a\nb"), Cow::Borrowed("a\nb")));
    assert!(matches!(normalize("\u{feff}a\nb"), Cow::Borrowed("a\nb")));
    assert_eq!(normalize("a\r\nb\r\n"), "a\nb\n");
    assert_eq!(normalize("a\rb\r"), "a\nb\n");
    assert_eq!(normalize("\u{feff}a\r\r\nb"), "a\n\nb");
    // Only a leading BOM goes.
    assert_eq!(normalize("a\u{feff}"), "a\u{feff}");
    assert_eq!(normalize(""), "");
}

#[test]
fn routine_bodies() {
    let cases: &[(&str, Option<&str>)] = &[
        ("DO $$ BEGIN NULL; END $$", Some(" BEGIN NULL; END ")),
        ("DO LANGUAGE plpgsql $x$body$x$", Some("body")),
        ("DO LANGUAGE 'plpgsql' 'body'", Some("body")),
        ("DO E'it\\'s'", Some("it\\'s")),
        (
            "CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $fn$\nBEGIN RETURN 1; END\n$fn$;",
            Some("\nBEGIN RETURN 1; END\n"),
        ),
        (
            "create function f(a text default 'x') returns text as 'select a' language sql",
            Some("select a"),
        ),
        (
            "CREATE PROCEDURE p() LANGUAGE plpgsql SET search_path = app AS $$ BEGIN END $$",
            Some(" BEGIN END "),
        ),
        (
            "CREATE FUNCTION f(x int) RETURNS TABLE (a int) AS $$ SELECT 1 $$ LANGUAGE sql",
            Some(" SELECT 1 "),
        ),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1",
            None,
        ),
        (
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; END",
            None,
        ),
        (
            "CREATE FUNCTION f() RETURNS int AS 'lib', 'sym' LANGUAGE c",
            None,
        ),
        ("CREATE VIEW v AS SELECT 'x'", None),
        ("SELECT $$x$$", None),
        ("DO $$ unterminated", Some(" unterminated")),
        ("", None),
    ];
    for (sql, expected) in cases {
        let body = routine_body_range(sql).map(|r| &sql[r]);
        assert_eq!(body, *expected, "{sql}");
    }
}

#[test]
fn plpgsql_line_maps_back_to_the_file() {
    let file = "\
SELECT 1;

CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$
DECLARE
    x int;
BEGIN
    x := 1 / 0;
    RETURN x;
END
$$;
";
    let script = split(file);
    let statement = &script.statements[1];
    let body = routine_body_range(statement.text(file)).unwrap();
    // PostgreSQL: "PL/pgSQL function f() line 5 at assignment" counts from the line with `$$`.
    let index = LineIndex::new(file);
    let body_line = index.line_col(statement.range.start + body.start).line;
    let file_line = body_line + 5 - 1;
    let line_text = &file[index.line_start(file_line).unwrap()..];
    assert!(line_text.starts_with("    x := 1 / 0;"), "{line_text}");
}
