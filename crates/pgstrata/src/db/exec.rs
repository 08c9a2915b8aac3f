//! Running SQL text on the server, and mapping failures back to the file.
//!
//! A transactional section goes to the server as one simple-query message holding all its statements: one round
//! trip per section instead of one per statement. The server answers each statement it completes with its own
//! CommandComplete, so counting them before an error names the failing statement exactly, and errors PostgreSQL
//! reports without a position (constraint violations, RAISE in a `DO` block) still point at their statement. (The
//! server parses the whole message before running it, so a `SET standard_conforming_strings` changes how later
//! sections parse, not later statements of its own section.)
//!
//! No-transaction sections are sent statement by statement, like `psql -f` does: in one message, PostgreSQL would
//! run them in an implicit transaction, which `CREATE INDEX CONCURRENTLY` and friends refuse.

use std::ops::Range;

use futures_util::StreamExt;
use pgstrata_sql::{LineIndex, migration::Section};
use tokio_postgres::error::{DbError, ErrorPosition, SqlState};
use tokio_postgres::{Client, SimpleQueryMessage};

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
/// sections), so statements that succeeded before a failure are reported as committed.
pub(crate) async fn run_section(
    client: &Client,
    script: &Script,
    section: &Section,
    autocommit: bool,
) -> Result<SectionOutcome, Box<SectionFailure>> {
    let text = &script.text()[section.range.clone()];
    let ranges: Vec<Range<usize>> = pgstrata_sql::split(text)
        .statements
        .iter()
        .map(|s| (s.range.start + section.range.start)..(s.range.end + section.range.start))
        .collect();
    run_split(client, script, &ranges, autocommit).await
}

/// Run statements already split (`ranges`: in order, into `script`'s text), as [`run_section`] does: callers that
/// split a section for their own checks pass the result instead of having it parsed again.
pub(crate) async fn run_split(
    client: &Client,
    script: &Script,
    ranges: &[Range<usize>],
    autocommit: bool,
) -> Result<SectionOutcome, Box<SectionFailure>> {
    let (Some(first), Some(last)) = (ranges.first(), ranges.last()) else {
        return Ok(SectionOutcome { statements: 0 });
    };
    if !autocommit {
        let sent = first.start..last.end;
        if let Err((completed, e)) = run_batch(client, &script.text()[sent.clone()]).await {
            let stmt = failing_statement(script.text(), &sent, ranges, completed, &e);
            return Err(Box::new(SectionFailure {
                error: map_error(script, sent, stmt, &e),
                committed: Vec::new(),
            }));
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
                error: map_error(script, range.clone(), range.clone(), &e),
                committed,
            }));
        }
        committed.push(sql.to_string());
    }
    Ok(SectionOutcome {
        statements: ranges.len(),
    })
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

/// The statement of a batch that failed: the one holding the error position when there is one (a syntax error
/// stops the whole message before anything runs), else the one after those that completed.
fn failing_statement(
    text: &str,
    sent: &Range<usize>,
    statements: &[Range<usize>],
    completed: usize,
    e: &tokio_postgres::Error,
) -> Range<usize> {
    let positioned = match e.as_db_error().and_then(DbError::position) {
        Some(ErrorPosition::Original(p)) => {
            let at =
                sent.start + pgstrata_sql::char_position_to_byte(&text[sent.clone()], *p as usize);
            statements.iter().find(|r| r.start <= at && at <= r.end)
        }
        _ => None,
    };
    positioned
        .or_else(|| statements.get(completed))
        .or(statements.last())
        .cloned()
        .unwrap_or_else(|| sent.clone())
}

/// Map a failed statement's error to a diagnostic pointing into the script. `sent` is the text the server
/// received (the statement itself, or the batch it was part of), `stmt` the failing statement.
pub(crate) fn map_error(
    script: &Script,
    sent: Range<usize>,
    stmt: Range<usize>,
    e: &tokio_postgres::Error,
) -> SqlError {
    let text = script.text();
    let stmt_text = &text[stmt.clone()];
    let (offset, sqlstate, message, detail, hint, context) = match e.as_db_error() {
        Some(db) => {
            let offset = error_offset(text, sent, stmt.clone(), db);
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

/// Byte offset of the error in the script text, from the server's position fields: the original position counts
/// characters of the text sent, the others are relative to the failing statement.
fn error_offset(text: &str, sent: Range<usize>, stmt: Range<usize>, db: &DbError) -> Option<usize> {
    if let Some(ErrorPosition::Original(p)) = db.position() {
        return Some(sent.start + pgstrata_sql::char_position_to_byte(&text[sent], *p as usize));
    }
    statement_error_offset(&text[stmt.clone()], db).map(|o| stmt.start + o)
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
