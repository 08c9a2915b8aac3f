//! Migration sections: dbmate markers, directives, down text.

use pgstrata_sql::migration::{self, Direction, Section};

/// (direction, no_transaction, SQL) of each section.
fn summary<'a>(source: &'a str, sections: &[Section]) -> Vec<(Direction, bool, &'a str)> {
    sections
        .iter()
        .map(|s| (s.direction, s.no_transaction, s.text(source)))
        .collect()
}

#[test]
fn no_markers_is_one_up_section() {
    let sql = "CREATE TABLE t (id int);\nSELECT 1;\n";
    let sections = migration::parse(sql).unwrap();
    assert_eq!(
        sections,
        [Section {
            direction: Direction::Up,
            range: 0..sql.len(),
            no_transaction: false,
            marker: None,
        }]
    );
    assert_eq!(migration::parse("").unwrap()[0].range, 0..0);
}

#[test]
fn up_and_down() {
    let sql = "-- migrate:up\nCREATE TABLE t (id int);\n\n-- migrate:down\nDROP TABLE t;\n";
    let sections = migration::parse(sql).unwrap();
    assert_eq!(
        summary(sql, &sections),
        [
            (Direction::Up, false, "CREATE TABLE t (id int);\n\n"),
            (Direction::Down, false, "DROP TABLE t;\n"),
        ]
    );
    assert_eq!(sections[0].marker, Some(0..13));
    let down_marker = sections[1].marker.clone().unwrap();
    assert_eq!(&sql[down_marker], "-- migrate:down");
}

#[test]
fn alternating_sections_with_transaction_false() {
    let sql = "\
-- A header comment is fine.
-- migrate:up
CREATE TABLE a (id int);
-- migrate:down
DROP TABLE a;
--migrate:up transaction:false
CREATE INDEX CONCURRENTLY a_id ON a (id);
-- migrate:down   transaction:true
DROP INDEX a_id;";
    let sections = migration::parse(sql).unwrap();
    assert_eq!(
        summary(sql, &sections),
        [
            (Direction::Up, false, "CREATE TABLE a (id int);\n"),
            (Direction::Down, false, "DROP TABLE a;\n"),
            (
                Direction::Up,
                true,
                "CREATE INDEX CONCURRENTLY a_id ON a (id);\n"
            ),
            (Direction::Down, false, "DROP INDEX a_id;"),
        ]
    );
}

#[test]
fn crlf_markers() {
    let sql = "-- migrate:up\r\nSELECT 1;\r\n-- migrate:down\r\nSELECT 2;\r\n";
    let sections = migration::parse(sql).unwrap();
    assert_eq!(
        summary(sql, &sections),
        [
            (Direction::Up, false, "SELECT 1;\r\n"),
            (Direction::Down, false, "SELECT 2;\r\n"),
        ]
    );
}

#[test]
fn marker_at_end_of_file_gives_an_empty_section() {
    let sql = "-- migrate:up\nSELECT 1;\n-- migrate:down";
    let sections = migration::parse(sql).unwrap();
    assert_eq!(sections[1].range, sql.len()..sql.len());
}

#[test]
fn marker_inside_strings_and_comments_is_not_a_marker() {
    let sql = "\
-- migrate:up
CREATE FUNCTION f() RETURNS text LANGUAGE sql AS $$
-- migrate:down
SELECT 'x'
$$;
SELECT '
-- migrate:down
';
/*
-- migrate:down
*/
SELECT 1; -- migrate:down (not on its own line)
-- migrate:down
SELECT 2;
";
    let sections = migration::parse(sql).unwrap();
    assert_eq!(sections.len(), 2);
    assert!(sections[0].text(sql).contains("SELECT 1;"));
    assert_eq!(sections[1].text(sql), "SELECT 2;\n");
}

#[test]
fn sql_before_the_first_marker_is_an_error() {
    let sql = "-- ok\nCREATE TABLE early (id int);\n-- migrate:up\nSELECT 1;\n";
    let error = migration::parse(sql).unwrap_err();
    assert_eq!(&sql[error.range.clone()], "CREATE TABLE early (id int);");
    assert!(error.message.contains("before the first"), "{error}");
}

#[test]
fn unknown_marker_words_and_options_are_errors() {
    for (sql, bad) in [
        ("-- migrate:upgrade\nSELECT 1;", "migrate:upgrade"),
        ("-- migrate: up\nSELECT 1;", "migrate:"),
        ("-- MIGRATE:UP\nSELECT 1;", "MIGRATE:UP"),
        ("-- migrate:up transaction:no\nSELECT 1;", "transaction:no"),
        (
            "-- migrate:up\nSELECT 1;\n-- migrate:down fast\nSELECT 2;",
            "fast",
        ),
    ] {
        let error = migration::parse(sql).unwrap_err();
        assert_eq!(&sql[error.range.clone()], bad, "{sql:?}: {error}");
    }
}

#[test]
fn unterminated_text_is_an_error() {
    let sql = "-- migrate:up\nSELECT $$ oops;\n-- migrate:down\nSELECT 2;\n";
    let error = migration::parse(sql).unwrap_err();
    assert_eq!(error.range.start, sql.find("$$").unwrap());
    assert_eq!(error.range.end, sql.len());
}

#[test]
fn file_directives() {
    for directive in [
        "-- strata:no-transaction",
        "-- no-transaction",
        "--strata:no-transaction  ",
    ] {
        let plain = format!("{directive}\nCREATE INDEX CONCURRENTLY i ON t (a);\n");
        let sections = migration::parse(&plain).unwrap();
        assert!(sections[0].no_transaction, "{directive}");

        let marked = format!(
            "-- header\n{directive}\n-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n"
        );
        let sections = migration::parse(&marked).unwrap();
        assert!(sections.iter().all(|s| s.no_transaction), "{directive}");
    }
    // After the first statement a directive is just a comment.
    let late = "SELECT 1;\n-- strata:no-transaction\nSELECT 2;\n";
    assert!(!migration::parse(late).unwrap()[0].no_transaction);
    // Unrelated comments do not count.
    let other = "-- no transaction here\nSELECT 1;\n";
    assert!(!migration::parse(other).unwrap()[0].no_transaction);
}

#[test]
fn section_directive() {
    let sql = "\
-- migrate:up

-- strata:no-transaction
CREATE INDEX CONCURRENTLY i ON t (a);
-- migrate:down
-- no-transaction
DROP INDEX i;
-- strata:no-transaction
";
    // sqlx's spelling only counts at the top of the file, and a directive after a statement is
    // just a comment.
    let sections = migration::parse(sql).unwrap();
    assert!(sections[0].no_transaction);
    assert!(!sections[1].no_transaction);
}

#[test]
fn parse_down_rules() {
    let plain = "DROP TABLE t;\n";
    let sections = migration::parse_down(plain).unwrap();
    assert_eq!(summary(plain, &sections), [(Direction::Down, false, plain)]);

    let marked = "-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY i;\n";
    let sections = migration::parse_down(marked).unwrap();
    assert_eq!(
        summary(marked, &sections),
        [(Direction::Down, true, "DROP INDEX CONCURRENTLY i;\n")]
    );

    let with_up = "-- migrate:down\nSELECT 1;\n-- migrate:up\nSELECT 2;\n";
    let error = migration::parse_down(with_up).unwrap_err();
    assert_eq!(&with_up[error.range.clone()], "-- migrate:up");
}

#[test]
fn down_text_round_trip() {
    let sources = [
        "-- migrate:up\nCREATE TABLE a (id int);\n-- migrate:down\nDROP TABLE a;\n",
        "-- migrate:up\nSELECT 1;\n-- migrate:down transaction:false\nDROP INDEX CONCURRENTLY i;\n\
         -- migrate:up\nSELECT 2;\n-- migrate:down\n-- strata:no-transaction\nVACUUM;\n\
         -- migrate:down\nSELECT 'last, no newline'",
        "-- strata:no-transaction\n-- migrate:up\nSELECT 1;\n-- migrate:down\nSELECT 2;\n",
        "-- migrate:up\nSELECT 1;\n-- migrate:down\n",
        "-- migrate:up\nSELECT $$\n-- migrate:down\n$$;\n-- migrate:down\nSELECT '\n-- migrate:up\n';\n",
    ];
    for source in sources {
        let sections = migration::parse(source).unwrap();
        let down: Vec<&Section> = sections
            .iter()
            .filter(|s| s.direction == Direction::Down)
            .collect();
        let text = migration::down_text(source, &sections);
        let again = migration::parse_down(&text).unwrap();
        assert_eq!(again.len(), down.len(), "{text:?}");
        for (a, b) in down.iter().zip(&again) {
            assert_eq!(a.text(source), b.text(&text), "{text:?}");
            assert_eq!(a.no_transaction, b.no_transaction, "{text:?}");
            assert_eq!(b.direction, Direction::Down);
        }
        // Reading the stored text back and storing it again changes nothing.
        assert_eq!(migration::down_text(&text, &again), text);
    }
}

#[test]
fn down_text_without_down_sections_is_empty() {
    let source = "CREATE TABLE t (id int);";
    let sections = migration::parse(source).unwrap();
    assert_eq!(migration::down_text(source, &sections), "");
}

#[test]
fn fixture_snapshot() {
    let source = include_str!("data/dbmate_multi.sql");
    let sections = migration::parse(source).unwrap();
    let mut out = String::new();
    for s in &sections {
        let marker = s.marker.clone().map(|m| &source[m]);
        out.push_str(&format!(
            "{:?} {:?} no_transaction={} marker={:?}\n{}---\n",
            s.direction,
            s.range,
            s.no_transaction,
            marker,
            s.text(source)
        ));
    }
    out.push_str("=== down_text\n");
    out.push_str(&migration::down_text(source, &sections));
    insta::assert_snapshot!(out);
}
