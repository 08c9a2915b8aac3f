//! Running SQL text on the server, and mapping failures back to the file.
//!
//! A transactional section goes to the server as simple-query messages holding many statements (up to
//! [`MESSAGE_BYTES`] of text each): one round trip per message instead of one per statement. The server answers
//! each statement it completes with its own CommandComplete, so counting them before an error names the failing
//! statement exactly, and errors PostgreSQL reports without a position (constraint violations, RAISE in a `DO`
//! block) still point at their statement. (The server parses a whole message before running it, so a
//! `SET standard_conforming_strings` changes how later messages parse, not later statements of its own.)
//!
//! Package code is checked after every statement (`crate::db::boundary`): the message interleaves the statements
//! with the check, which raises an error, and so stops the message, as soon as a statement changed the role or
//! ended the deploy's transaction.
//!
//! No-transaction sections are sent statement by statement, like `psql -f` does: in one message, PostgreSQL would
//! run them in an implicit transaction, which `CREATE INDEX CONCURRENTLY` and friends refuse.

use std::ops::Range;

use futures_util::StreamExt;
use pgstrata_sql::{LineIndex, migration::Section};
use tokio_postgres::error::{DbError, ErrorPosition, SqlState};
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::db::boundary::Boundary;
use crate::error::{Error, SqlError};
use crate::report::Notice;
use crate::report::widen;
use crate::source::package::Script;

/// A database connection as Strata uses it: a client, plus (optionally) the stream of notices the server sends,
/// so `RAISE NOTICE` output of migrations can be shown.
pub struct Database {
    client: Client,
    notices: Option<tokio::sync::mpsc::UnboundedReceiver<DbError>>,
}

impl Database {
    /// Wrap a client you connected yourself (notices are then not reported).
    pub fn new(client: Client) -> Database {
        Database {
            client,
            notices: None,
        }
    }

    /// Connect with libpq-compatible options.
    pub async fn connect(options: &pgstrata_conn::ConnectOptions) -> Result<Database, Error> {
        let c = options
            .with_application_name(&format!("strata {}", crate::db::VERSION))
            .connect()
            .await?;
        Ok(Database {
            client: c.client,
            notices: Some(c.notices),
        })
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Give back the client.
    pub fn into_client(self) -> Client {
        self.client
    }

    /// Notices received since the last call.
    pub(crate) fn drain_notices(&mut self) -> Vec<Notice> {
        let mut out = Vec::new();
        if let Some(rx) = &mut self.notices {
            while let Ok(n) = rx.try_recv() {
                out.push(Notice {
                    severity: n.severity().to_string(),
                    message: n.message().to_string(),
                });
            }
        }
        out
    }
}

impl From<pgstrata_conn::Connected> for Database {
    fn from(c: pgstrata_conn::Connected) -> Database {
        Database {
            client: c.client,
            notices: Some(c.notices),
        }
    }
}

/// What running a section did.
#[derive(Debug, Default)]
pub(crate) struct SectionOutcome {
    pub statements: usize,
}

/// A failure while running a section: the mapped error, and (for no-transaction sections) the statements that had
/// already committed.
pub(crate) struct SectionFailure {
    pub error: SqlError,
    pub committed: Vec<String>,
}

/// Run one section's statements in order. `autocommit` means each statement commits on its own (no-transaction
/// sections), so statements that succeeded before a failure are reported as committed. `boundary`: what package
/// code must leave intact, checked after every statement of a transactional section.
pub(crate) async fn run_section(
    client: &Client,
    script: &Script,
    section: &Section,
    autocommit: bool,
    boundary: Option<&Boundary>,
) -> Result<SectionOutcome, Box<SectionFailure>> {
    let text = &script.text()[section.range.clone()];
    let ranges: Vec<Range<usize>> = pgstrata_sql::statements(text)
        .iter()
        .map(|s| (s.range.start + section.range.start)..(s.range.end + section.range.start))
        .collect();
    run_split(client, script, &ranges, autocommit, boundary).await
}

/// Statement text sent in one message at most (a statement longer than this goes alone): a big script is sent in
/// pieces, so neither side holds all of it at once, at the cost of one round trip per piece.
const MESSAGE_BYTES: usize = 1 << 20;

/// Run statements already split (`ranges`: in order, into `script`'s text), as [`run_section`] does: callers that
/// split a section for their own checks pass the result instead of having it parsed again.
pub(crate) async fn run_split(
    client: &Client,
    script: &Script,
    ranges: &[Range<usize>],
    autocommit: bool,
    boundary: Option<&Boundary>,
) -> Result<SectionOutcome, Box<SectionFailure>> {
    if ranges.is_empty() {
        return Ok(SectionOutcome { statements: 0 });
    }
    if !autocommit {
        let mut done = 0;
        while done < ranges.len() {
            let mut end = done + 1;
            let mut bytes = ranges[done].len();
            while end < ranges.len() && bytes + ranges[end].len() <= MESSAGE_BYTES {
                bytes += ranges[end].len();
                end += 1;
            }
            let last = end == ranges.len();
            run_message(client, script, &ranges[done..end], boundary, last).await?;
            done = end;
        }
        return Ok(SectionOutcome {
            statements: ranges.len(),
        });
    }
    let mut committed = Vec::new();
    for range in ranges {
        let sql = &script.text()[range.clone()];
        if let Err(e) = client.batch_execute(sql).await {
            return Err(Box::new(SectionFailure {
                error: map_error(script, range.clone(), 0, &e),
                committed,
            }));
        }
        committed.push(sql.to_string());
    }
    Ok(SectionOutcome {
        statements: ranges.len(),
    })
}

/// Send statements of a transactional section in one message. With a boundary, each is followed by the check
/// (the prepared one, and the full one after the message's last statement; `last`: the section's last).
async fn run_message(
    client: &Client,
    script: &Script,
    ranges: &[Range<usize>],
    boundary: Option<&Boundary>,
    last: bool,
) -> Result<(), Box<SectionFailure>> {
    let text = script.text();
    let failed = |error: SqlError| {
        Box::new(SectionFailure {
            error,
            committed: Vec::new(),
        })
    };
    let Some(boundary) = boundary else {
        // The file's own text, as it is: positions need no mapping.
        let sent = ranges[0].start..ranges[ranges.len() - 1].end;
        let starts: Vec<usize> = Vec::new();
        return match run_batch(client, &text[sent.clone()]).await {
            Ok(()) => Ok(()),
            Err((completed, e)) => {
                let (k, before) = failing_in_text(text, &sent, ranges, completed, &e, &starts);
                Err(failed(map_error(script, ranges[k].clone(), before, &e)))
            }
        };
    };
    let full_check = boundary.check_sql(ranges.len() - 1, last);
    let mut message = String::with_capacity(
        ranges.iter().map(Range::len).sum::<usize>() + ranges.len() * 32 + full_check.len(),
    );
    // Where each statement starts in the message, in characters (PostgreSQL's error positions count those).
    let mut starts = Vec::with_capacity(ranges.len());
    let mut chars = 0;
    for (k, range) in ranges.iter().enumerate() {
        let statement = &text[range.clone()];
        starts.push(chars);
        message.push_str(statement);
        chars += statement.chars().count();
        let check = if k + 1 == ranges.len() {
            full_check.clone()
        } else if boundary.prepared.is_none() {
            boundary.check_sql(k, false)
        } else {
            Boundary::execute_sql(k)
        };
        let separator = if statement.ends_with(';') {
            "\n"
        } else {
            ";\n"
        };
        for part in [separator, check.as_str(), ";\n"] {
            message.push_str(part);
            chars += part.chars().count();
        }
    }
    let Err((completed, e)) = run_batch(client, &message).await else {
        return Ok(());
    };
    // A failed check names the statement it followed.
    if let Some(breach) = Boundary::breach(&e) {
        let k = breach.statement.min(ranges.len() - 1);
        return Err(failed(boundary_error(
            script,
            ranges[k].clone(),
            boundary,
            &e,
        )));
    }
    if is_missing_check(&e) {
        // Package code deallocated the prepared check: the statement before the first check that could not run.
        let k = (completed / 2).min(ranges.len() - 1);
        return Err(failed(boundary_error(
            script,
            ranges[k].clone(),
            boundary,
            &e,
        )));
    }
    let sent = 0..message.len();
    let (k, before) = failing_in_text(&message, &sent, ranges, completed / 2, &e, &starts);
    Err(failed(map_error(script, ranges[k].clone(), before, &e)))
}

/// How a statement sent with the check and record that follow it failed (see [`run_with`]).
pub(crate) enum StatementFailure {
    /// The statement itself (mapped to the file).
    Statement(Box<SqlError>),
    /// The boundary check right after it.
    Check(tokio_postgres::Error),
    /// What followed the check (Strata's record).
    After(tokio_postgres::Error),
}

/// Run the statement at `range` of `script` outside any transaction, followed in the same message by `after`
/// (the boundary check, then Strata's record of the statement): PostgreSQL runs a message of several statements
/// in one implicit transaction, so the statement commits together with its record, or not at all.
pub(crate) async fn run_with(
    client: &Client,
    script: &Script,
    range: Range<usize>,
    after: &str,
) -> Result<(), StatementFailure> {
    let statement = &script.text()[range.clone()];
    let separator = if statement.ends_with(';') {
        "\n"
    } else {
        ";\n"
    };
    let message = format!("{statement}{separator}{after}");
    match run_batch(client, &message).await {
        Ok(()) => Ok(()),
        Err((_, e)) if Boundary::breach(&e).is_some() => Err(StatementFailure::Check(e)),
        // The statement (it may hold more than one for the server: a `;` psql's rules do not split at).
        Err((0 | 1, e)) => Err(StatementFailure::Statement(Box::new(map_error(
            script, range, 0, &e,
        )))),
        Err((_, e)) => Err(StatementFailure::After(e)),
    }
}

/// Send Strata's own statements (a check, a record) in one message; on failure, how many completed first.
pub(crate) async fn run_own(
    client: &Client,
    sql: &str,
) -> Result<(), (usize, tokio_postgres::Error)> {
    run_batch(client, sql).await
}

/// `prepared statement "strata_boundary" does not exist`: package code deallocated the check.
fn is_missing_check(e: &tokio_postgres::Error) -> bool {
    e.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNDEFINED_PSTATEMENT
            && db.message().contains(crate::db::boundary::PREPARED)
    })
}

/// The error of a failed boundary check after the statement at `range`: what the statement did, at its line.
pub(crate) fn boundary_error(
    script: &Script,
    range: Range<usize>,
    boundary: &Boundary,
    e: &tokio_postgres::Error,
) -> SqlError {
    let mut error = map_error(script, range.clone(), usize::MAX, e);
    let (message, rolled_back) = match Boundary::breach(e) {
        Some(breach) => breach.describe(boundary),
        None => (
            format!(
                "the check Strata runs after every statement of package code failed ({}): the statement broke the \
                 deploy's session",
                e.as_db_error()
                    .map_or_else(|| e.to_string(), |db| db.message().to_string())
            ),
            true,
        ),
    };
    error.sqlstate = SqlState::INSUFFICIENT_PRIVILEGE.code().to_string();
    error.message = message;
    error.detail = None;
    error.context = None;
    error.hint = Some(
        "package code runs as its package role, inside the deploy's transaction, and must leave both as they \
         were; Strata stopped right after this statement (see the README's security section)"
            .to_string(),
    );
    error.rolled_back = rolled_back;
    error
}

/// Send several statements in one message; on failure, also say how many statements completed before it.
async fn run_batch(client: &Client, sql: &str) -> Result<(), (usize, tokio_postgres::Error)> {
    let stream = client.simple_query_raw(sql).await.map_err(|e| (0, e))?;
    let mut stream = std::pin::pin!(stream);
    let mut completed = 0;
    while let Some(message) = stream.next().await {
        match message {
            Ok(SimpleQueryMessage::CommandComplete(_)) => completed += 1,
            Ok(_) => {}
            Err(e) => return Err((completed, e)),
        }
    }
    Ok(())
}

/// The statement of a message that failed, and the characters of the message before it: the statement holding
/// the error position when there is one (a syntax error stops the whole message before anything runs), else the
/// one after those that completed. `starts`: where each statement starts in the message, in characters (empty:
/// the message is the file's text from `sent.start`).
fn failing_in_text(
    text: &str,
    sent: &Range<usize>,
    statements: &[Range<usize>],
    completed: usize,
    e: &tokio_postgres::Error,
    starts: &[usize],
) -> (usize, usize) {
    let chars_before = |k: usize| -> usize {
        match starts.get(k) {
            Some(c) => *c,
            None => text[sent.start..statements[k].start.max(sent.start)]
                .chars()
                .count(),
        }
    };
    let by_position = match e.as_db_error().and_then(DbError::position) {
        Some(ErrorPosition::Original(p)) => {
            let p = (*p as usize).saturating_sub(1);
            if starts.is_empty() {
                let at =
                    sent.start + pgstrata_sql::char_position_to_byte(&text[sent.clone()], p + 1);
                statements.iter().rposition(|r| r.start <= at)
            } else {
                starts.iter().rposition(|c| *c <= p)
            }
        }
        _ => None,
    };
    let k = by_position
        .unwrap_or(completed)
        .min(statements.len().saturating_sub(1));
    (k, chars_before(k))
}

/// Map a failed statement's error to a diagnostic pointing into the script. `stmt` is the failing statement, and
/// `chars_before` how many characters of the message the server received came before it (usize::MAX: the error
/// is not the statement's own, so its position means nothing here).
pub(crate) fn map_error(
    script: &Script,
    stmt: Range<usize>,
    chars_before: usize,
    e: &tokio_postgres::Error,
) -> SqlError {
    let text = script.text();
    let stmt_text = &text[stmt.clone()];
    let (offset, sqlstate, message, detail, hint, context) = match e.as_db_error() {
        Some(db) => {
            let offset = if chars_before == usize::MAX {
                None
            } else {
                error_offset(stmt_text, chars_before, db).map(|o| stmt.start + o)
            };
            (
                offset,
                db.code().code().to_string(),
                db.message().to_string(),
                db.detail().map(str::to_string),
                // SQL only a newer server accepts: say which version, rather than "no such function".
                pgstrata_sql::versions::newer_server_hint(
                    stmt_text,
                    offset.and_then(|o| o.checked_sub(stmt.start)),
                    db.code().code(),
                    db.message(),
                )
                .or_else(|| db.hint().map(str::to_string))
                .or_else(|| own_hint(db)),
                db.where_().map(str::to_string),
            )
        }
        None => (
            None,
            SqlState::CONNECTION_FAILURE.code().to_string(),
            format!("connection failure: {e}"),
            None,
            None,
            None,
        ),
    };
    // Without a position, point at the statement's first line: the statement is known exactly.
    let span_range = match offset {
        Some(o) => o..o,
        None => stmt.start..(stmt.start + first_line_len(stmt_text)),
    };
    let at = span_range.start;
    let lc = LineIndex::new(text).line_col(at);
    SqlError {
        origin: script.origin().to_string(),
        line: lc.line,
        col: lc.col,
        sqlstate,
        message,
        detail,
        hint,
        context,
        migration: None,
        rolled_back: true,
        span: widen(text, span_range),
        file: miette::NamedSource::new(script.origin(), text.to_string()).with_language("SQL"),
        committed_statements: Vec::new(),
        committed_migrations: Vec::new(),
    }
}

fn first_line_len(s: &str) -> usize {
    s.find('\n').unwrap_or(s.len())
}

/// Byte offset of the error in the statement's text, from the server's position fields: the original position
/// counts characters of the message sent (`chars_before` of them came before the statement), the others are
/// relative to the statement.
fn error_offset(stmt_text: &str, chars_before: usize, db: &DbError) -> Option<usize> {
    if let Some(ErrorPosition::Original(p)) = db.position() {
        let p = (*p as usize).checked_sub(chars_before)?;
        return Some(pgstrata_sql::char_position_to_byte(stmt_text, p));
    }
    statement_error_offset(stmt_text, db)
}

/// Byte offset inside the statement text of an error in a routine body or a PL/pgSQL block.
pub(crate) fn statement_error_offset(stmt_text: &str, db: &DbError) -> Option<usize> {
    match db.position() {
        Some(ErrorPosition::Original(_)) => None,
        // An error inside a routine body that PostgreSQL compiled (PL/pgSQL syntax, SQL-function bodies): the
        // position is relative to the body text, which appears verbatim inside the statement.
        Some(ErrorPosition::Internal { position, query }) => {
            let body = pgstrata_sql::routine_body_range(stmt_text)
                .filter(|r| &stmt_text[r.clone()] == query.as_str())
                .map(|r| r.start)
                .or_else(|| stmt_text.find(query.as_str()));
            match body {
                Some(body) => {
                    Some(body + pgstrata_sql::char_position_to_byte(query, *position as usize))
                }
                // A query PL/pgSQL derived from the body (`PERFORM x` runs as `SELECT x`): the context's line.
                None => plpgsql_line_offset(stmt_text, db.where_()?),
            }
        }
        None => plpgsql_line_offset(stmt_text, db.where_()?),
    }
}

/// `PL/pgSQL function inline_code_block line 3 at RAISE` (a `DO` block) or
/// `compilation of PL/pgSQL function "f" near line 2`: PL/pgSQL counts lines from the line of the opening quote
/// of the body, so body line N is file line (line of body start) + N - 1.
///
/// The context lists frames innermost first. The statement's own `DO` block is the outermost `inline_code_block`
/// frame (inner frames are functions it called, or SQL it ran); a compile error of the function a
/// `CREATE FUNCTION` defines is the first frame.
fn plpgsql_line_offset(stmt_text: &str, where_: &str) -> Option<usize> {
    let frame = where_
        .lines()
        .rfind(|l| l.contains("PL/pgSQL function inline_code_block line "))
        .or_else(|| {
            where_
                .lines()
                .next()
                .filter(|l| l.starts_with("compilation of PL/pgSQL function"))
        })?;
    let idx = frame.find(" line ")?;
    let n: usize = frame[idx + 6..]
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()?;
    let body = pgstrata_sql::routine_body_range(stmt_text)?;
    let mut offset = body.start;
    for _ in 1..n {
        let rest = &stmt_text[offset..];
        offset += rest.find('\n')? + 1;
    }
    // Point at the first non-blank character of that line.
    let rest = &stmt_text[offset..];
    Some(offset + rest.len() - rest.trim_start_matches([' ', '\t']).len())
}

/// Hints for errors PostgreSQL leaves without one.
pub(crate) fn own_hint(db: &DbError) -> Option<String> {
    let code = db.code();
    let hint = if *code == SqlState::ACTIVE_SQL_TRANSACTION {
        "this statement cannot run inside a transaction: mark the migration with `-- strata:no-transaction` \
         (or dbmate's `-- migrate:up transaction:false`)"
    } else if [SqlState::DUPLICATE_TABLE, SqlState::DUPLICATE_OBJECT].contains(code) {
        "the object already exists: was it created outside Strata, or by another migration? \
         `strata status` shows what is applied"
    } else if [
        SqlState::UNDEFINED_TABLE,
        SqlState::UNDEFINED_FUNCTION,
        SqlState::INVALID_SCHEMA_NAME,
    ]
    .contains(code)
    {
        "migrations of a package run with search_path set to the package's schema, then public; \
         qualify the name or check that the migration creating it runs earlier"
    } else if *code == SqlState::LOCK_NOT_AVAILABLE {
        "a lock could not be taken within lock_timeout; retry when the table is less busy"
    } else if *code == SqlState::QUERY_CANCELED {
        "the statement ran longer than statement_timeout"
    } else {
        return None;
    };
    Some(hint.to_string())
}

/// Map an error of a statement sent as `sent` (the file's `range`, maybe with text inserted at `inserted`), after
/// `prefix_chars` characters of other statements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn object_error(
    display: &str,
    text: &str,
    range: std::ops::Range<usize>,
    sent: &str,
    inserted: Option<(usize, usize)>,
    prefix_chars: usize,
    e: &tokio_postgres::Error,
    what: Option<String>,
) -> SqlError {
    let stmt_text = &text[range.clone()];
    let (offset, sqlstate, message, detail, hint, context) = match e.as_db_error() {
        Some(db) => {
            let in_sent = match db.position() {
                Some(ErrorPosition::Original(p)) => (*p as usize)
                    .checked_sub(prefix_chars)
                    .filter(|p| *p > 0)
                    .map(|p| pgstrata_sql::char_position_to_byte(sent, p)),
                _ => statement_error_offset(sent, db),
            };
            let offset = in_sent.map(|o| match inserted {
                Some((at, len)) if o >= at + len => o - len,
                Some((at, _)) if o > at => at,
                _ => o,
            });
            (
                offset.map(|o| range.start + o.min(stmt_text.len())),
                db.code().code().to_string(),
                db.message().to_string(),
                db.detail().map(str::to_string),
                // SQL only a newer server accepts: say which version, rather than "no such function".
                pgstrata_sql::versions::newer_server_hint(
                    stmt_text,
                    offset.map(|o| o.min(stmt_text.len())),
                    db.code().code(),
                    db.message(),
                )
                .or_else(|| db.hint().map(str::to_string))
                .or_else(|| own_hint(db)),
                db.where_().map(str::to_string),
            )
        }
        None => (
            None,
            SqlState::CONNECTION_FAILURE.code().to_string(),
            format!("connection failure: {e}"),
            None,
            None,
            None,
        ),
    };
    let span_range = match offset {
        Some(o) => o..o,
        None => range.start..range.start + stmt_text.find('\n').unwrap_or(stmt_text.len()),
    };
    let lc = LineIndex::new(text).line_col(span_range.start);
    SqlError {
        origin: display.to_string(),
        line: lc.line,
        col: lc.col,
        sqlstate,
        message,
        detail,
        hint,
        context,
        migration: what,
        rolled_back: true,
        span: widen(text, span_range),
        file: miette::NamedSource::new(display, text.to_string()).with_language("SQL"),
        committed_statements: Vec::new(),
        committed_migrations: Vec::new(),
    }
}
