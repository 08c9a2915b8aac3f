//! Running SQL text on the server, one statement at a time, and mapping failures back to the file.
//!
//! Statements are sent one by one (simple query protocol), like `psql -f` does: it costs one round trip per
//! statement, and buys an exact file:line:col for every error, including errors PostgreSQL reports without a
//! position (constraint violations, RAISE in a `DO` block).

use std::ops::Range;

use pgstrata_sql::{LineIndex, migration::Section};
use tokio_postgres::Client;
use tokio_postgres::error::{DbError, ErrorPosition};

use crate::error::{Error, SqlError, widen};
use crate::package::Script;

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
            .with_application_name(&format!("strata {}", crate::VERSION))
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

/// A notice (`RAISE NOTICE`, `WARNING`, …) sent by the server while a migration ran.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Notice {
    /// `NOTICE`, `WARNING`, `INFO`, …
    pub severity: String,
    /// The text.
    pub message: String,
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
    let split = pgstrata_sql::split(text);
    let mut committed = Vec::new();
    let mut count = 0;
    for stmt in &split.statements {
        let range =
            (stmt.range.start + section.range.start)..(stmt.range.end + section.range.start);
        let sql = &script.text()[range.clone()];
        if let Err(e) = client.batch_execute(sql).await {
            return Err(Box::new(SectionFailure {
                error: map_error(script, range, &e),
                committed,
            }));
        }
        count += 1;
        if autocommit {
            committed.push(sql.to_string());
        }
    }
    Ok(SectionOutcome { statements: count })
}

/// Map a failed statement's error to a diagnostic pointing into the script.
pub(crate) fn map_error(
    script: &Script,
    stmt: Range<usize>,
    e: &tokio_postgres::Error,
) -> SqlError {
    let text = script.text();
    let stmt_text = &text[stmt.clone()];
    let (offset, sqlstate, message, detail, hint, context) = match e.as_db_error() {
        Some(db) => {
            let offset = error_offset(stmt_text, db).map(|o| stmt.start + o);
            (
                offset,
                db.code().code().to_string(),
                db.message().to_string(),
                db.detail().map(str::to_string),
                db.hint().map(str::to_string).or_else(|| own_hint(db)),
                db.where_().map(str::to_string),
            )
        }
        None => (
            None,
            String::from("08006"),
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

/// Byte offset of the error inside the statement text, from the server's position fields.
pub(crate) fn error_offset(stmt_text: &str, db: &DbError) -> Option<usize> {
    match db.position() {
        Some(ErrorPosition::Original(p)) => {
            Some(pgstrata_sql::char_position_to_byte(stmt_text, *p as usize))
        }
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
    match db.code().code() {
        "25001" => Some(
            "this statement cannot run inside a transaction: mark the migration with `-- strata:no-transaction` \
             (or dbmate's `-- migrate:up transaction:false`)"
                .into(),
        ),
        "42P07" | "42710" => Some(
            "the object already exists: was it created outside Strata, or by another migration? \
             `strata status` shows what is applied"
                .into(),
        ),
        "42P01" | "42883" | "3F000" => Some(
            "migrations of a package run with search_path set to the package's schema, then public; \
             qualify the name or check that the migration creating it runs earlier"
                .into(),
        ),
        "55P03" => Some("a lock could not be taken within lock_timeout; retry when the table is less busy".into()),
        "57014" => Some("the statement ran longer than statement_timeout".into()),
        _ => None,
    }
}
