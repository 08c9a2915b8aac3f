//! What a statement of package code (a migration, a repeatable script) may do to the deploy around it: end its
//! transaction, change the role it runs as, or reach outside the database.
//!
//! This is a reading of the text, so it only sees what is written: `EXECUTE 'RE' || 'SET ROLE'` builds its
//! statement at run time and is invisible here. Strata therefore also checks the session after every statement
//! (see the deploy's package-role boundary); this scan is what refuses the plain cases before anything runs, with
//! the file and line.

use std::ops::Range;

use squawk_lexer::TokenKind;

use crate::lex::{self, Tok, Words};
use crate::split::{Statement, StatementKind};

/// What a statement does that package code must not do (or only when its manifest allows it).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Hazard {
    /// `BEGIN`, `START TRANSACTION`, `COMMIT`, `END`, `ROLLBACK`, `ABORT` (with or without `AND CHAIN`).
    TransactionControl,
    /// `SAVEPOINT name`.
    Savepoint(String),
    /// `RELEASE [SAVEPOINT] name`.
    ReleaseSavepoint(String),
    /// `ROLLBACK [WORK|TRANSACTION] TO [SAVEPOINT] name`.
    RollbackToSavepoint(String),
    /// `PREPARE TRANSACTION`, `COMMIT PREPARED`, `ROLLBACK PREPARED`.
    PreparedTransaction,
    /// `SET [LOCAL|SESSION] ROLE`, `SET SESSION AUTHORIZATION`, `RESET ROLE`, `RESET ALL`, `DISCARD ALL`,
    /// `set_config('role' | 'session_authorization', …)` or `set_config` with a computed name, a routine's or a
    /// database's `SET role = …`: anywhere, including routine bodies, `DO` blocks and strings they `EXECUTE`.
    RoleChange,
    /// `SECURITY DEFINER` on a routine.
    SecurityDefiner,
    /// `CREATE EVENT TRIGGER` or `ALTER EVENT TRIGGER`.
    EventTrigger,
    /// `COPY … FROM PROGRAM` / `TO PROGRAM` (a shell command on the database server).
    CopyProgram,
    /// `COPY … FROM STDIN` / `TO STDOUT`: data through the client connection, which a deploy does not carry.
    CopyStdio,
    /// `CREATE`/`ALTER`/`DROP ROLE|USER|GROUP`, role membership `GRANT`/`REVOKE`, `REASSIGN OWNED`.
    RoleManagement,
}

/// One hazard and where it is, relative to the statement's text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What it is.
    pub hazard: Hazard,
    /// Byte range in the statement text.
    pub range: Range<usize>,
}

/// The hazards of `statement` (split from `source`): the statement itself, and the bodies of routines and `DO`
/// blocks it contains, with the strings those bodies `EXECUTE`.
///
/// ```
/// use pgstrata_sql::hazards::{statement_hazards, Hazard};
/// let sql = "COMMIT;\nDO $$ BEGIN EXECUTE 'SET ROLE postgres'; END $$;\nCOPY t TO PROGRAM 'rm -rf /';";
/// let found: Vec<Hazard> = pgstrata_sql::split(sql)
///     .statements
///     .iter()
///     .flat_map(|s| statement_hazards(sql, s))
///     .map(|f| f.hazard)
///     .collect();
/// assert_eq!(found, [Hazard::TransactionControl, Hazard::RoleChange, Hazard::CopyProgram]);
/// ```
pub fn statement_hazards(source: &str, statement: &Statement) -> Vec<Finding> {
    let text = statement.text(source);
    let tokens = lex::significant(text);
    let mut out = Vec::new();
    top_level(text, &tokens, &statement.kind, &mut out);
    let scans_body = matches!(
        statement.kind,
        StatementKind::Do | StatementKind::CreateFunction | StatementKind::CreateProcedure
    );
    if scans_body && let Some(body) = crate::routine_body_range(text) {
        scan_code(text, body, 0, &mut out);
    }
    // `set_config('role', …)` anywhere in the statement itself (`SELECT set_config(…)`).
    set_config_calls(text, &tokens, 0, &mut out);
    out.sort_by_key(|f| (f.range.start, f.range.end));
    out.dedup();
    out
}

/// The statement's own words.
fn top_level(text: &str, tokens: &[Tok], kind: &StatementKind, out: &mut Vec<Finding>) {
    let w = Words::new(text, tokens);
    let whole = 0..tokens.last().map_or(0, |t| t.range.end);
    let span = |from: usize, len: usize| -> Range<usize> {
        let last = (from + len)
            .saturating_sub(1)
            .min(tokens.len().saturating_sub(1));
        match (tokens.get(from), tokens.get(last)) {
            (Some(a), Some(b)) => a.range.start..b.range.end,
            _ => whole.clone(),
        }
    };
    let mut push = |hazard: Hazard, range: Range<usize>| out.push(Finding { hazard, range });
    match kind {
        StatementKind::Begin | StatementKind::Commit | StatementKind::Rollback => {
            push(Hazard::TransactionControl, span(0, 1));
        }
        StatementKind::Set => {
            if let Some(len) = role_setting(&w, 0) {
                push(Hazard::RoleChange, span(0, len));
            }
        }
        StatementKind::CreateFunction | StatementKind::CreateProcedure => {
            routine_options(&w, out);
        }
        StatementKind::Other(tag) => match tag.as_str() {
            "SAVEPOINT" => push(Hazard::Savepoint(name_at(&w, 1)), span(0, 2)),
            "RELEASE SAVEPOINT" => push(Hazard::ReleaseSavepoint(name_at(&w, 2)), span(0, 3)),
            "RELEASE" => push(Hazard::ReleaseSavepoint(name_at(&w, 1)), span(0, 2)),
            "ROLLBACK TO SAVEPOINT" => {
                let mut i = 1;
                if w.is_any(i, &["WORK", "TRANSACTION"]) {
                    i += 1;
                }
                i += 1; // TO
                if w.is(i, "SAVEPOINT") {
                    i += 1;
                }
                push(Hazard::RollbackToSavepoint(name_at(&w, i)), span(0, i + 1));
            }
            "PREPARE TRANSACTION" | "COMMIT PREPARED" | "ROLLBACK PREPARED" => {
                push(Hazard::PreparedTransaction, span(0, 2));
            }
            "RESET"
                if w.is_any(1, &["ROLE", "ALL", "SESSION_AUTHORIZATION"])
                    || (w.is(1, "SESSION") && w.is(2, "AUTHORIZATION"))
                    || is_quoted_setting(&w, 1) =>
            {
                push(Hazard::RoleChange, span(0, 2));
            }
            "DISCARD ALL" => push(Hazard::RoleChange, span(0, 2)),
            "ALTER FUNCTION" | "ALTER PROCEDURE" | "ALTER ROUTINE" => routine_options(&w, out),
            "CREATE EVENT TRIGGER" | "ALTER EVENT TRIGGER" => {
                push(Hazard::EventTrigger, span(0, 3));
            }
            "COPY" => {
                for i in w.top_level() {
                    if w.is(i, "PROGRAM") {
                        push(Hazard::CopyProgram, span(i, 1));
                    } else if w.is_any(i, &["STDIN", "STDOUT"]) {
                        push(Hazard::CopyStdio, span(i, 1));
                    }
                }
            }
            "CREATE ROLE" | "CREATE USER" | "CREATE GROUP" | "ALTER ROLE" | "ALTER USER"
            | "ALTER GROUP" | "DROP ROLE" | "DROP USER" | "DROP GROUP" | "REASSIGN OWNED" => {
                push(Hazard::RoleManagement, span(0, 2));
            }
            "ALTER DATABASE" => {
                // ALTER DATABASE d SET role = …: every later session of the database starts as that role.
                let top = w.top_level();
                if let Some(k) = top.iter().position(|&i| w.is(i, "SET"))
                    && let Some(&i) = top.get(k + 1)
                    && (w.is_any(i, &["ROLE", "SESSION_AUTHORIZATION"]) || is_quoted_setting(&w, i))
                {
                    push(Hazard::RoleChange, span(top[k], 2));
                }
            }
            // Privileges name an object after ON; a role membership grant has no ON.
            "GRANT" | "REVOKE" if !w.top_level().iter().any(|&i| w.is(i, "ON")) => {
                push(Hazard::RoleManagement, span(0, 1));
            }
            _ => {}
        },
        _ => {}
    }
}

/// `SECURITY DEFINER` and `SET role = …` among a routine's options (outside parentheses and the body).
fn routine_options(w: &Words<'_>, out: &mut Vec<Finding>) {
    let top = w.top_level();
    for (k, &i) in top.iter().enumerate() {
        let Some(&next) = top.get(k + 1) else {
            continue;
        };
        let range = w.tokens[i].range.start..w.tokens[next].range.end;
        if w.is(i, "SECURITY") && w.is(next, "DEFINER") {
            out.push(Finding {
                hazard: Hazard::SecurityDefiner,
                range,
            });
        } else if w.is(i, "SET")
            && (w.is_any(next, &["ROLE", "SESSION_AUTHORIZATION"]) || is_quoted_setting(w, next))
        {
            out.push(Finding {
                hazard: Hazard::RoleChange,
                range,
            });
        }
    }
}

/// `"role"` or `"session_authorization"` written as a quoted identifier.
fn is_quoted_setting(w: &Words<'_>, i: usize) -> bool {
    w.tokens.get(i).is_some_and(|t| {
        matches!(t.kind, TokenKind::QuotedIdent { .. })
            && matches!(t.text(w.source), "\"role\"" | "\"session_authorization\"")
    })
}

/// At a `SET` (token `i`): how many tokens name a role change (`SET [LOCAL|SESSION] ROLE`, `SET [LOCAL|SESSION]
/// SESSION AUTHORIZATION`, `SET role TO …`), or None.
fn role_setting(w: &Words<'_>, i: usize) -> Option<usize> {
    let mut j = i + 1;
    if w.is_any(j, &["LOCAL", "SESSION"]) && !(w.is(j, "SESSION") && w.is(j + 1, "AUTHORIZATION")) {
        j += 1;
    }
    if w.is_any(j, &["ROLE", "SESSION_AUTHORIZATION"]) || is_quoted_setting(w, j) {
        Some(j - i + 1)
    } else if w.is(j, "SESSION") && w.is(j + 1, "AUTHORIZATION") {
        Some(j - i + 2)
    } else {
        None
    }
}

/// The (normalised) name at token `i`: a savepoint's.
fn name_at(w: &Words<'_>, i: usize) -> String {
    match w.tokens.get(i) {
        Some(t) if matches!(t.kind, TokenKind::QuotedIdent { .. }) => {
            let s = t.text(w.source);
            s.trim_matches('"').replace("\"\"", "\"")
        }
        Some(t) => t.text(w.source).to_lowercase(),
        None => String::new(),
    }
}

/// Strings nest (a body holds `EXECUTE '…'`, which may hold a `DO` block): look this many levels deep.
const MAX_STRING_DEPTH: usize = 4;

/// Scan code (a routine body, a `DO` block, an `EXECUTE`d string) at `range` of `text`: every statement start,
/// `set_config` calls, and the strings inside it.
fn scan_code(text: &str, range: Range<usize>, depth: usize, out: &mut Vec<Finding>) {
    let code = &text[range.clone()];
    let tokens = lex::significant(code);
    let before = out.len();
    statement_starts(code, &tokens, out);
    set_config_calls(code, &tokens, 0, out);
    for f in &mut out[before..] {
        f.range = (range.start + f.range.start)..(range.start + f.range.end);
    }
    if depth >= MAX_STRING_DEPTH {
        return;
    }
    // `EXECUTE 'SET ROLE …'` / `EXECUTE format('SET ROLE %I', r)`: the string is a statement. Other strings
    // (messages, data) are not code.
    for (i, _) in tokens
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_word(code, "EXECUTE"))
    {
        let mut j = i + 1;
        if tokens.get(j).is_some_and(|t| t.is_word(code, "format"))
            && tokens.get(j + 1).map(|t| t.kind) == Some(TokenKind::OpenParen)
        {
            j += 2;
        }
        let Some(t) = tokens.get(j).filter(|t| t.is_string()) else {
            continue;
        };
        let inner = crate::body::contents(code, t);
        let before = out.len();
        scan_code(code, inner, depth + 1, out);
        // Point at the whole literal: the statement inside a string is easier to read that way.
        for f in &mut out[before..] {
            f.range = (range.start + t.range.start)..(range.start + t.range.end);
        }
    }
}

/// Statements that start at the beginning of `code`, after a `;`, or after the PL/pgSQL words that open a
/// statement list.
fn statement_starts(code: &str, tokens: &[Tok], out: &mut Vec<Finding>) {
    let w = Words::new(code, tokens);
    for i in 0..tokens.len() {
        let at_start = i == 0
            || tokens[i - 1].kind == TokenKind::Semi
            || w.is_any(i - 1, &["BEGIN", "THEN", "ELSE", "LOOP", "EXCEPTION"]);
        if !at_start {
            continue;
        }
        let span = |len: usize| {
            let last = (i + len - 1).min(tokens.len() - 1);
            tokens[i].range.start..tokens[last].range.end
        };
        let found = match w.word(i).as_deref() {
            Some("SET") => role_setting(&w, i).map(|len| (Hazard::RoleChange, len)),
            Some("RESET")
                if w.is_any(i + 1, &["ROLE", "ALL", "SESSION_AUTHORIZATION"])
                    || (w.is(i + 1, "SESSION") && w.is(i + 2, "AUTHORIZATION")) =>
            {
                Some((Hazard::RoleChange, 2))
            }
            Some("DISCARD") if w.is(i + 1, "ALL") => Some((Hazard::RoleChange, 2)),
            Some("COPY") => {
                // Up to the end of this statement.
                let end = tokens[i..]
                    .iter()
                    .position(|t| t.kind == TokenKind::Semi)
                    .map_or(tokens.len(), |p| i + p);
                (i..end)
                    .any(|k| w.is(k, "PROGRAM"))
                    .then_some((Hazard::CopyProgram, 1))
            }
            Some("CREATE" | "ALTER" | "DROP") if w.is_any(i + 1, &["ROLE", "USER", "GROUP"]) => {
                (!w.is(i + 2, "MAPPING")).then_some((Hazard::RoleManagement, 2))
            }
            Some("CREATE" | "ALTER") if w.is(i + 1, "EVENT") && w.is(i + 2, "TRIGGER") => {
                Some((Hazard::EventTrigger, 3))
            }
            _ => None,
        };
        if let Some((hazard, len)) = found {
            out.push(Finding {
                hazard,
                range: span(len),
            });
        }
    }
}

/// `set_config('role' | 'session_authorization', …)`, or `set_config(expression, …)` whose setting is computed
/// (it could be either).
fn set_config_calls(code: &str, tokens: &[Tok], base: usize, out: &mut Vec<Finding>) {
    for (i, t) in tokens.iter().enumerate() {
        if !t.is_word(code, "set_config")
            || tokens.get(i + 1).map(|t| t.kind) != Some(TokenKind::OpenParen)
        {
            continue;
        }
        let Some(arg) = tokens.get(i + 2) else {
            continue;
        };
        let literal_end = tokens.get(i + 3).map(|t| t.kind);
        let dangerous = if arg.is_string() && matches!(literal_end, Some(TokenKind::Comma)) {
            let name = code[crate::body::contents(code, arg)]
                .trim()
                .to_ascii_lowercase();
            name == "role" || name == "session_authorization"
        } else {
            true
        };
        if dangerous {
            out.push(Finding {
                hazard: Hazard::RoleChange,
                range: (base + t.range.start)..(base + arg.range.end),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(sql: &str) -> Vec<(Hazard, String)> {
        crate::split(sql)
            .statements
            .iter()
            .flat_map(|s| {
                let text = s.text(sql).to_string();
                statement_hazards(sql, s)
                    .into_iter()
                    .map(move |f| (f.hazard, text[f.range].to_string()))
            })
            .collect()
    }

    #[test]
    fn transaction_control_and_savepoints() {
        let sql = "BEGIN; COMMIT AND CHAIN; end; ROLLBACK; abort; START TRANSACTION;
SAVEPOINT a; RELEASE SAVEPOINT a; RELEASE \"B\"; ROLLBACK TO SAVEPOINT a; ROLLBACK WORK TO b;
PREPARE TRANSACTION 'x'; COMMIT PREPARED 'x'; ROLLBACK PREPARED 'x';";
        let kinds: Vec<Hazard> = found(sql).into_iter().map(|(h, _)| h).collect();
        assert_eq!(
            kinds,
            [
                Hazard::TransactionControl,
                Hazard::TransactionControl,
                Hazard::TransactionControl,
                Hazard::TransactionControl,
                Hazard::TransactionControl,
                Hazard::TransactionControl,
                Hazard::Savepoint("a".into()),
                Hazard::ReleaseSavepoint("a".into()),
                Hazard::ReleaseSavepoint("B".into()),
                Hazard::RollbackToSavepoint("a".into()),
                Hazard::RollbackToSavepoint("b".into()),
                Hazard::PreparedTransaction,
                Hazard::PreparedTransaction,
                Hazard::PreparedTransaction,
            ]
        );
    }

    #[test]
    fn role_changes_written_anywhere() {
        let sql =
            "SET ROLE postgres; set local role x; SET SESSION AUTHORIZATION postgres; RESET ROLE;
RESET ALL; DISCARD ALL; SET \"role\" = 'x'; SET search_path = a;
SELECT set_config('role', 'postgres', true); SELECT set_config('search_path', 'a', true);
DO $$ BEGIN PERFORM set_config(v, 'postgres', false); END $$;
DO $$ BEGIN EXECUTE 'SET ROLE postgres'; END $$;
CREATE FUNCTION f() RETURNS void LANGUAGE sql SET role = postgres AS 'SELECT 1';
ALTER FUNCTION f() SET role TO postgres;
ALTER DATABASE d SET role = postgres;
CREATE FUNCTION g() RETURNS void LANGUAGE plpgsql AS $b$ BEGIN RESET ROLE; END $b$;
INSERT INTO notes VALUES ('SET ROLE is documented here');";
        let got = found(sql);
        let texts: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
        assert!(got.iter().all(|(h, _)| *h == Hazard::RoleChange), "{got:?}");
        assert_eq!(
            texts,
            [
                "SET ROLE",
                "set local role",
                "SET SESSION AUTHORIZATION",
                "RESET ROLE",
                "RESET ALL",
                "DISCARD ALL",
                "SET \"role\"",
                "set_config('role'",
                "set_config(v",
                "'SET ROLE postgres'",
                "SET role",
                "SET role",
                "SET role",
                "RESET ROLE",
            ]
        );
    }

    #[test]
    fn reaching_outside_the_database() {
        let sql = "CREATE FUNCTION f() RETURNS int LANGUAGE sql SECURITY DEFINER AS 'SELECT 1';
ALTER FUNCTION f() SECURITY DEFINER;
CREATE EVENT TRIGGER e ON ddl_command_start EXECUTE FUNCTION f();
COPY t TO PROGRAM 'cat'; COPY t FROM STDIN; COPY (SELECT 1) TO STDOUT; COPY t FROM '/tmp/x';
CREATE ROLE r; ALTER USER u SUPERUSER; DROP GROUP g; CREATE USER MAPPING FOR u SERVER s;
GRANT r TO u; GRANT SELECT ON t TO u; REVOKE r FROM u; REASSIGN OWNED BY a TO b;
DO $$ BEGIN EXECUTE 'ALTER ROLE x SUPERUSER'; EXECUTE format('COPY t TO PROGRAM %L', 'x'); END $$;";
        let kinds: Vec<Hazard> = found(sql).into_iter().map(|(h, _)| h).collect();
        assert_eq!(
            kinds,
            [
                Hazard::SecurityDefiner,
                Hazard::SecurityDefiner,
                Hazard::EventTrigger,
                Hazard::CopyProgram,
                Hazard::CopyStdio,
                Hazard::CopyStdio,
                Hazard::RoleManagement,
                Hazard::RoleManagement,
                Hazard::RoleManagement,
                Hazard::RoleManagement,
                Hazard::RoleManagement,
                Hazard::RoleManagement,
                Hazard::RoleManagement,
                Hazard::CopyProgram,
            ]
        );
    }

    #[test]
    fn ordinary_statements_are_fine() {
        let sql = "CREATE TABLE t (id int); INSERT INTO t VALUES (1); SET lock_timeout = '1s';
CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$ BEGIN RAISE NOTICE 'reset role later'; END $$;
COMMENT ON TABLE t IS 'COMMIT; SET ROLE x';";
        assert_eq!(found(sql), []);
    }
}
