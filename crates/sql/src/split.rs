//! Cutting a script into statements.

use std::ops::Range;

use squawk_lexer::TokenKind;

use crate::lex::{self, Tok, Words};

/// One statement of a script: byte range from its first token to just after its `;` (or end of
/// text).
///
/// Leading comments belong to the gap before the statement, comments inside it are part of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    /// Byte range in the script, from the first token to just after the `;` (or the last token).
    pub range: Range<usize>,
    /// What kind of statement this is, judged from its leading keywords.
    pub kind: StatementKind,
}

impl Statement {
    /// The statement's text within `source` (the text it was split from).
    ///
    /// Returns `""` when the range does not fit `source`, so a mismatched source cannot panic.
    pub fn text<'a>(&self, source: &'a str) -> &'a str {
        source.get(self.range.clone()).unwrap_or("")
    }
}

/// Coarse classification (enough for Strata's managed code, no-transaction detection and lock
/// reports), decided from the leading keywords only, so it works for syntax the parser does not
/// know.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StatementKind {
    /// `CREATE [OR REPLACE] FUNCTION`
    CreateFunction,
    /// `CREATE [OR REPLACE] PROCEDURE`
    CreateProcedure,
    /// `CREATE [OR REPLACE] [TEMP] [RECURSIVE] VIEW`
    CreateView,
    /// `CREATE MATERIALIZED VIEW`
    CreateMaterializedView,
    /// `CREATE [OR REPLACE] [CONSTRAINT] TRIGGER` (not `EVENT TRIGGER`)
    CreateTrigger,
    /// `COMMENT ON`
    CommentOn,
    /// `CREATE [TEMP|UNLOGGED] TABLE`, including `CREATE TABLE … AS` and `PARTITION OF`
    CreateTable,
    /// `ALTER TABLE`
    AlterTable,
    /// `CREATE [UNIQUE] INDEX [CONCURRENTLY]`
    CreateIndex {
        /// `CONCURRENTLY` was given.
        concurrently: bool,
    },
    /// `DROP INDEX [CONCURRENTLY]`
    DropIndex {
        /// `CONCURRENTLY` was given.
        concurrently: bool,
    },
    /// `REINDEX`
    Reindex {
        /// `CONCURRENTLY` was given, as a keyword or as an option (`REINDEX (CONCURRENTLY) …`).
        concurrently: bool,
    },
    /// `VACUUM`
    Vacuum,
    /// `ALTER SYSTEM`
    AlterSystem,
    /// `CREATE DATABASE`
    CreateDatabase,
    /// `DROP DATABASE`
    DropDatabase,
    /// `ALTER TYPE … ADD VALUE`
    AlterTypeAddValue,
    /// `DO`
    Do,
    /// `BEGIN`, `START TRANSACTION`
    Begin,
    /// `COMMIT`, `END`
    Commit,
    /// `ROLLBACK`, `ABORT` (not `ROLLBACK TO SAVEPOINT` nor `ROLLBACK PREPARED`)
    Rollback,
    /// `SET` (any form: `SET LOCAL`, `SET ROLE`, `SET TRANSACTION`, …)
    Set,
    /// `SELECT`, `VALUES`, `TABLE`, or `WITH … SELECT`
    Select,
    /// `INSERT` or `WITH … INSERT`
    Insert,
    /// `UPDATE` or `WITH … UPDATE`
    Update,
    /// `DELETE` or `WITH … DELETE`
    Delete,
    /// Anything else: the leading keywords, upper-cased, e.g. `"CREATE SCHEMA"`, `"GRANT"`.
    ///
    /// Modifiers such as `OR REPLACE`, `TEMP` or `UNIQUE` are left out, as in PostgreSQL's
    /// command tags (`CREATE OR REPLACE RULE` gives `"CREATE RULE"`).
    Other(String),
}

/// A syntax error found by the parser (squawk), or an unterminated comment between statements.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SyntaxError {
    /// Byte range in the script (often empty: the position where something was expected).
    pub range: Range<usize>,
    /// The parser's message, e.g. `expected an expression, found SEMICOLON`.
    pub message: String,
}

/// A script cut into statements. Comments and whitespace between statements are not part of any
/// statement.
#[derive(Debug, Clone)]
pub struct Script {
    /// The statements, in order, with ordered and non-overlapping ranges.
    pub statements: Vec<Statement>,
    /// Syntax errors, ordered by position: at most one per statement, plus an unterminated
    /// comment after the last one. They never change the statement boundaries.
    pub errors: Vec<SyntaxError>,
}

/// Split a script into statements and report its syntax errors.
///
/// Boundaries follow PostgreSQL's lexical rules exactly as `psql` applies them: a `;` ends a
/// statement unless it is inside `'…'`, `E'…'`, `$tag$…$tag$`, a quoted identifier, a comment
/// (nested `/* */` included), parentheses (`CREATE RULE … DO ( …; … )`), or the
/// `BEGIN ATOMIC … END` body of `CREATE FUNCTION/PROCEDURE`. Because boundaries never depend on
/// the grammar, a statement the parser does not understand (newer PostgreSQL syntax, a typo)
/// still gets the right range, and the statements after it are unaffected.
///
/// Each statement is then parsed with squawk's PostgreSQL grammar; one error per statement at
/// most (an unterminated literal, else the parser's first complaint, as PostgreSQL stops at the
/// first) goes to [`Script::errors`] with its position in the script. [`check`] runs squawk's
/// deeper checks. A lone `;` is not a statement. Backslash meta-commands are not SQL: psql-only
/// files (`\set`, `\i`) come out as syntax errors.
///
/// ```
/// let sql = "CREATE TABLE t (note text DEFAULT ';');\n-- a ; comment\nSELECT 1";
/// let script = pgstrata_sql::split(sql);
/// let texts: Vec<&str> = script.statements.iter().map(|s| s.text(sql)).collect();
/// assert_eq!(texts, ["CREATE TABLE t (note text DEFAULT ';');", "SELECT 1"]);
/// assert_eq!(script.statements[0].kind, pgstrata_sql::StatementKind::CreateTable);
/// assert!(script.errors.is_empty());
/// ```
pub fn split(source: &str) -> Script {
    split_as(source, true)
}

/// The statements of a script, as [`split`] cuts and classifies them, without parsing them: no syntax errors, and
/// several times faster (what running a script needs; [`split`] is for checking one).
///
/// ```
/// let sql = "CREATE TABLE t (id int);\nSELEC 1;";
/// let statements = pgstrata_sql::statements(sql);
/// assert_eq!(statements.len(), 2);
/// assert_eq!(statements[1].text(sql), "SELEC 1;");
/// ```
pub fn statements(source: &str) -> Vec<Statement> {
    split_as(source, false).statements
}

fn split_as(source: &str, grammar: bool) -> Script {
    let mut statements = Vec::new();
    let errors = scan(source, grammar, &mut |s| statements.push(s));
    Script { statements, errors }
}

/// The byte ranges of the statements of `source`, as [`statements`] cuts them: a sixth of the memory of the
/// statements, for texts of millions of statements (a data load) that only need to be run.
///
/// ```
/// let sql = "INSERT INTO t VALUES (1);\nINSERT INTO t VALUES (';');";
/// assert_eq!(pgstrata_sql::statement_ranges(sql), [0..25, 26..53]);
/// ```
pub fn statement_ranges(source: &str) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    scan(source, false, &mut |s| ranges.push(s.range));
    ranges
}

/// Each statement of `source`, as [`statements`] cuts and classifies them, handed to `f` one at a time: for texts
/// too big to hold a list of their statements (a data load of millions of `INSERT`s).
///
/// ```
/// let mut kinds = Vec::new();
/// pgstrata_sql::for_each_statement("CREATE TABLE t (a int);\nINSERT INTO t VALUES (1);", |s| kinds.push(s.kind));
/// assert_eq!(kinds, [pgstrata_sql::StatementKind::CreateTable, pgstrata_sql::StatementKind::Insert]);
/// ```
pub fn for_each_statement(source: &str, mut f: impl FnMut(Statement)) {
    scan(source, false, &mut f);
}

/// Cut `source` into statements for `sink`; the syntax errors (only when `grammar`).
fn scan(source: &str, grammar: bool, sink: &mut dyn FnMut(Statement)) -> Vec<SyntaxError> {
    let mut errors = Vec::new();
    let mut last_end: Option<usize> = None;

    let mut state = PsqlState::default();
    let mut current: Vec<Tok> = Vec::new();
    let mut last: Option<Tok> = None;
    let mut emit = |current: &mut Vec<Tok>, errors: &mut Vec<SyntaxError>| {
        if let Some(statement) = finish(source, current, errors, grammar) {
            last_end = Some(statement.range.end);
            sink(statement);
        }
    };
    for tok in lex::tokens(source) {
        if tok.is_trivia() {
            last = Some(tok);
            continue;
        }
        let ends = state.feed(source, &tok);
        last = Some(tok.clone());
        if ends && current.is_empty() {
            continue;
        }
        current.push(tok);
        if ends {
            emit(&mut current, &mut errors);
        }
    }
    if !current.is_empty() {
        emit(&mut current, &mut errors);
    }

    // An unterminated token swallows the rest of the text, so only the last token can be one.
    // Inside a statement squawk reports it; a trailing comment after the last statement is ours.
    if let Some(last) = last
        && let Some(message) = last.unterminated()
        && last_end.is_none_or(|end| end <= last.range.start)
    {
        errors.push(SyntaxError {
            range: last.range.clone(),
            message: message.to_string(),
        });
    }
    errors.sort_by_key(|e| (e.range.start, e.range.end));
    errors
}

/// Close the statement made of `current` (significant tokens): classify it and, with `grammar`, parse it.
fn finish(
    source: &str,
    current: &mut Vec<Tok>,
    errors: &mut Vec<SyntaxError>,
    grammar: bool,
) -> Option<Statement> {
    let (Some(first), Some(last)) = (current.first(), current.last()) else {
        return None;
    };
    let range = first.range.start..last.range.end;
    let kind = classify(source, current);
    // Deeper than the parser can go on a small stack: the server has the last word (see `lex::MAX_NESTING`).
    if grammar && lex::nesting(current) <= lex::MAX_NESTING {
        errors.extend(first_grammar_error(&source[range.clone()], range.start));
    }
    current.clear();
    Some(Statement { range, kind })
}

/// Run squawk's parser (no syntax tree, no validation pass: that is [`check`]) over one
/// statement and keep one error, shifted by `offset`: a lexer error (an unterminated literal,
/// which swallowed the rest of the text and explains everything else), or else the parser's
/// first. Like PostgreSQL, stop at the first: after it the parser is guessing, and its
/// follow-up complaints are noise.
fn first_grammar_error(text: &str, offset: usize) -> Option<SyntaxError> {
    let lexed = squawk_parser::LexedStr::new(text);
    let mut first: Option<(Range<usize>, String)> = lexed
        .errors()
        .map(|(range, msg)| (range.start as usize..range.end as usize, msg.to_string()))
        .min_by_key(|(range, _)| range.start);
    if first.is_none() {
        let output = squawk_parser::EntryPoint::SourceFile.parse(&lexed.to_input());
        lexed.intersperse_trivia(&output, &mut |step| {
            if let squawk_parser::StrStep::Error { msg, pos } = step
                && first.is_none()
            {
                first = Some((pos..pos, msg.to_string()));
            }
        });
    }
    first.map(|(range, message)| SyntaxError {
        range: offset + range.start..offset + range.end,
        message,
    })
}

/// Everything squawk can say about a script: all its parser errors (not only the first of each
/// statement, as [`split`] reports), squawk's validation pass
/// (literals, parameter lists, `BEGIN ATOMIC` bodies, …) and the errors inside
/// `LANGUAGE sql` function bodies. Several times slower than [`split`]; meant for checks and
/// linting, not for every run.
///
/// Squawk does not know every PostgreSQL construct (the newest syntax, psql meta-commands), so
/// treat these as warnings: the server has the last word.
///
/// ```
/// let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$ SELEC 1 $$;";
/// assert!(pgstrata_sql::split(sql).errors.is_empty());
/// assert!(!pgstrata_sql::check(sql).is_empty());
/// ```
pub fn check(source: &str) -> Vec<SyntaxError> {
    let script = split(source);
    let mut errors: Vec<SyntaxError> = script
        .errors
        .iter()
        .filter(|e| {
            !script
                .statements
                .iter()
                .any(|s| s.range.start <= e.range.start && e.range.end <= s.range.end)
        })
        .cloned()
        .collect();
    for statement in &script.statements {
        let start = statement.range.start;
        if lex::nesting(&lex::significant(statement.text(source))) > lex::MAX_NESTING {
            continue;
        }
        let parse = squawk_syntax::SourceFile::parse(statement.text(source));
        errors.extend(parse.errors().into_iter().map(|e| {
            let r = e.range();
            SyntaxError {
                range: start + usize::from(r.start())..start + usize::from(r.end()),
                message: e.message().to_string(),
            }
        }));
    }
    errors.sort_by_key(|e| (e.range.start, e.range.end));
    errors
}

/// psql's statement-end rules (`psqlscan.l`): parentheses and, for
/// `CREATE [OR REPLACE] FUNCTION|PROCEDURE`, a `BEGIN … END` depth that counts `CASE` too.
#[derive(Default)]
struct PsqlState {
    paren_depth: usize,
    begin_depth: usize,
    identifier_count: usize,
    /// First letters of the leading identifiers when they are one of create, or, replace,
    /// function, procedure (0 otherwise), exactly as psql records them.
    identifiers: [u8; 4],
}

impl PsqlState {
    /// Feed one significant token; true when it is the `;` that ends the statement.
    fn feed(&mut self, source: &str, tok: &Tok) -> bool {
        match tok.kind {
            TokenKind::OpenParen => self.paren_depth += 1,
            TokenKind::CloseParen => self.paren_depth = self.paren_depth.saturating_sub(1),
            TokenKind::Semi if self.paren_depth == 0 && self.begin_depth == 0 => {
                self.identifier_count = 0;
                return true;
            }
            TokenKind::Ident => self.identifier(tok.text(source)),
            _ => {}
        }
        false
    }

    fn identifier(&mut self, word: &str) {
        if self.identifier_count == 0 {
            self.identifiers = [0; 4];
        }
        let tracked = ["create", "function", "procedure", "or", "replace"]
            .iter()
            .any(|w| word.eq_ignore_ascii_case(w));
        if tracked && self.identifier_count < self.identifiers.len() {
            self.identifiers[self.identifier_count] = word.as_bytes()[0].to_ascii_lowercase();
        }
        self.identifier_count += 1;

        let ids = self.identifiers;
        let routine = ids[0] == b'c'
            && (ids[1] == b'f'
                || ids[1] == b'p'
                || (ids[1] == b'o' && ids[2] == b'r' && (ids[3] == b'f' || ids[3] == b'p')));
        if routine && self.paren_depth == 0 {
            if word.eq_ignore_ascii_case("begin") {
                self.begin_depth += 1;
            } else if word.eq_ignore_ascii_case("case") {
                // CASE also closes with END; it only matters inside a BEGIN block.
                if self.begin_depth >= 1 {
                    self.begin_depth += 1;
                }
            } else if word.eq_ignore_ascii_case("end") && self.begin_depth > 0 {
                self.begin_depth -= 1;
            }
        }
    }
}

/// Object types spelled with several words, after CREATE/ALTER/DROP.
const OBJECT_PHRASES: &[&[&str]] = &[
    &["MATERIALIZED", "VIEW"],
    &["FOREIGN", "DATA", "WRAPPER"],
    &["FOREIGN", "TABLE"],
    &["EVENT", "TRIGGER"],
    &["TEXT", "SEARCH", "CONFIGURATION"],
    &["TEXT", "SEARCH", "DICTIONARY"],
    &["TEXT", "SEARCH", "PARSER"],
    &["TEXT", "SEARCH", "TEMPLATE"],
    &["OPERATOR", "CLASS"],
    &["OPERATOR", "FAMILY"],
    &["USER", "MAPPING"],
    &["ACCESS", "METHOD"],
    &["DEFAULT", "PRIVILEGES"],
    &["LARGE", "OBJECT"],
];

/// Statements other than CREATE/ALTER/DROP whose tag has several words.
const COMMAND_PHRASES: &[&[&str]] = &[
    &["REFRESH", "MATERIALIZED", "VIEW"],
    &["IMPORT", "FOREIGN", "SCHEMA"],
    &["SECURITY", "LABEL"],
    &["PREPARE", "TRANSACTION"],
    &["COMMIT", "PREPARED"],
    &["ROLLBACK", "PREPARED"],
    &["REASSIGN", "OWNED"],
    &["DISCARD", "ALL"],
    &["DISCARD", "PLANS"],
    &["DISCARD", "SEQUENCES"],
    &["DISCARD", "TEMP"],
    &["DISCARD", "TEMPORARY"],
    &["RELEASE", "SAVEPOINT"],
];

/// Words between CREATE and the object type that do not change what is created.
const CREATE_MODIFIERS: &[&str] = &[
    "TEMP",
    "TEMPORARY",
    "UNLOGGED",
    "GLOBAL",
    "LOCAL",
    "UNIQUE",
    "RECURSIVE",
    "TRUSTED",
    "PROCEDURAL",
    "CONSTRAINT",
    "DEFAULT",
];

/// Classify a statement from its significant tokens.
pub(crate) fn classify(source: &str, tokens: &[Tok]) -> StatementKind {
    // `(SELECT …) UNION (SELECT …)` starts with parentheses.
    let lead = tokens
        .iter()
        .take_while(|t| t.kind == TokenKind::OpenParen)
        .count();
    let w = Words::new(source, &tokens[lead..]);
    let Some(verb) = w.word(0) else {
        let first = tokens.first().map(|t| t.text(source)).unwrap_or_default();
        return StatementKind::Other(first.chars().take(32).collect::<String>().to_uppercase());
    };
    match verb.as_str() {
        "CREATE" => classify_create(&w),
        "ALTER" => {
            if w.is(1, "TABLE") {
                StatementKind::AlterTable
            } else if w.is(1, "SYSTEM") {
                StatementKind::AlterSystem
            } else if w.is(1, "TYPE") && w.has_top_level_phrase(&["ADD", "VALUE"]) {
                StatementKind::AlterTypeAddValue
            } else {
                StatementKind::Other(object_tag(&w, "ALTER", 1))
            }
        }
        "DROP" => {
            if w.is(1, "INDEX") {
                StatementKind::DropIndex {
                    concurrently: w.is(2, "CONCURRENTLY"),
                }
            } else if w.is(1, "DATABASE") {
                StatementKind::DropDatabase
            } else {
                StatementKind::Other(object_tag(&w, "DROP", 1))
            }
        }
        "REINDEX" => StatementKind::Reindex {
            concurrently: reindex_concurrently(&w),
        },
        "VACUUM" => StatementKind::Vacuum,
        "COMMENT" if w.is(1, "ON") => StatementKind::CommentOn,
        "DO" => StatementKind::Do,
        "BEGIN" => StatementKind::Begin,
        "START" if w.is(1, "TRANSACTION") => StatementKind::Begin,
        "COMMIT" | "END" if !w.is(1, "PREPARED") => StatementKind::Commit,
        "ROLLBACK" | "ABORT" if !w.is(1, "PREPARED") => {
            let to = if w.is_any(1, &["WORK", "TRANSACTION"]) {
                2
            } else {
                1
            };
            if w.is(to, "TO") {
                StatementKind::Other("ROLLBACK TO SAVEPOINT".to_string())
            } else {
                StatementKind::Rollback
            }
        }
        "SET" => StatementKind::Set,
        "SELECT" | "VALUES" | "TABLE" => StatementKind::Select,
        "INSERT" => StatementKind::Insert,
        "UPDATE" => StatementKind::Update,
        "DELETE" => StatementKind::Delete,
        "WITH" => classify_with(&w),
        _ => StatementKind::Other(command_tag(&w, verb)),
    }
}

fn classify_create(w: &Words<'_>) -> StatementKind {
    let mut i = 1;
    if w.is(i, "OR") && w.is(i + 1, "REPLACE") {
        i += 2;
    }
    while w.is_any(i, CREATE_MODIFIERS) && !starts_phrase(w, i) {
        i += 1;
    }
    let Some(object) = w.word(i) else {
        return StatementKind::Other("CREATE".to_string());
    };
    if starts_phrase(w, i) {
        if w.is(i, "MATERIALIZED") && w.is(i + 1, "VIEW") {
            return StatementKind::CreateMaterializedView;
        }
        return StatementKind::Other(object_tag(w, "CREATE", i));
    }
    match object.as_str() {
        "FUNCTION" => StatementKind::CreateFunction,
        "PROCEDURE" => StatementKind::CreateProcedure,
        "VIEW" => StatementKind::CreateView,
        "TRIGGER" => StatementKind::CreateTrigger,
        "TABLE" => StatementKind::CreateTable,
        "DATABASE" => StatementKind::CreateDatabase,
        "INDEX" => StatementKind::CreateIndex {
            concurrently: w.is(i + 1, "CONCURRENTLY"),
        },
        _ => StatementKind::Other(object_tag(w, "CREATE", i)),
    }
}

/// Whether a multi-word object type starts at token `i`.
fn starts_phrase(w: &Words<'_>, i: usize) -> bool {
    OBJECT_PHRASES.iter().any(|p| phrase_at(w, i, p))
}

fn phrase_at(w: &Words<'_>, i: usize, phrase: &[&str]) -> bool {
    phrase.iter().enumerate().all(|(k, word)| w.is(i + k, word))
}

/// `VERB OBJECT` where OBJECT is the (possibly multi-word) object type at token `i`.
fn object_tag(w: &Words<'_>, verb: &str, i: usize) -> String {
    if let Some(phrase) = OBJECT_PHRASES.iter().find(|p| phrase_at(w, i, p)) {
        return format!("{verb} {}", phrase.join(" "));
    }
    match w.word(i) {
        Some(object) => format!("{verb} {object}"),
        None => verb.to_string(),
    }
}

fn command_tag(w: &Words<'_>, verb: String) -> String {
    match COMMAND_PHRASES.iter().find(|p| phrase_at(w, 0, p)) {
        Some(phrase) => phrase.join(" "),
        None => verb,
    }
}

/// `WITH … SELECT|INSERT|UPDATE|DELETE`: the CTE bodies are parenthesised, so the first of those
/// words outside parentheses is the main statement.
fn classify_with(w: &Words<'_>) -> StatementKind {
    for i in w.top_level() {
        match w.word(i).as_deref() {
            Some("SELECT" | "VALUES" | "TABLE") => return StatementKind::Select,
            Some("INSERT") => return StatementKind::Insert,
            Some("UPDATE") => return StatementKind::Update,
            Some("DELETE") => return StatementKind::Delete,
            Some("MERGE") => return StatementKind::Other("MERGE".to_string()),
            _ => {}
        }
    }
    StatementKind::Other("WITH".to_string())
}

/// `REINDEX [(options)] {INDEX|TABLE|SCHEMA|DATABASE|SYSTEM} [CONCURRENTLY] name`, where the
/// options may also say `CONCURRENTLY [boolean]` (PostgreSQL 14+).
fn reindex_concurrently(w: &Words<'_>) -> bool {
    let options = w.options(1);
    let by_option = options.iter().any(|(name, value)| {
        name == "CONCURRENTLY" && value.as_deref().is_none_or(|v| !lex::is_false(v))
    });
    let after = w.skip_group(1);
    by_option || w.is(after + 1, "CONCURRENTLY")
}
