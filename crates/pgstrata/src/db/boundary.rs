//! The package-role boundary, checked by the server after every statement of package code.
//!
//! A text scan (`crate::decide::hazards`) refuses `SET ROLE`, `COMMIT` and the like before anything runs, but it
//! cannot see SQL that is built at run time (`EXECUTE 'RE' || 'SET ROLE'`, `set_config(v, …)` in a function).
//! So every statement of package code is followed, in the same message (no extra round trip), by a check
//! statement: `current_user` must still be the package role, `session_user` the deploying login, and inside the
//! deploy's transaction that transaction must still be the one Strata opened (`pg_current_xact_id_if_assigned()`;
//! a `COMMIT` or `ROLLBACK` would have ended it). When the check fails it raises an error, so the server stops the
//! message right there: nothing after the offending statement runs, the transaction is rolled back, and Strata
//! reports the statement's file and line.
//!
//! tokio-postgres does not expose the transaction status of ReadyForQuery nor ParameterStatus messages, and a
//! multi-statement message only ends with one ReadyForQuery anyway; a check statement between the statements is
//! the one way to look after each of them. It costs about one trivial `SELECT` per statement (`bench/core`).
//!
//! What it does not catch: a statement that changes the role and changes it back before it ends (a `DO` block
//! that runs `RESET ROLE`, does something, and `SET ROLE`s back). Only the privileges of the deploying login stop
//! that: see the README's security section.

use postgres_protocol::escape::escape_literal;
use tokio_postgres::error::SqlState;

/// What the session must look like after a statement of package code.
#[derive(Debug, Clone)]
pub(crate) struct Boundary {
    /// The package role (`current_user`); None: the package runs as the login, which its code may change for a
    /// while (`SET ROLE owner`) but must restore by the end of each section.
    pub role: Option<String>,
    /// The deploying login (`session_user`).
    pub login: String,
    /// Inside the deploy's transaction: its id (`pg_current_xact_id()`); None in autocommit.
    pub xact: Option<String>,
    /// When the check is also prepared as [`PREPARED`] for this role and transaction: its `prepare_time`.
    pub prepared: Option<String>,
}

/// The name of the prepared check. `EXECUTE strata_boundary` is what follows most statements: it costs a fifth of
/// the same check sent as text (parsed and planned every time), and keeps a big script's messages small. Package
/// code could deallocate or replace it; the full check at the end of every message compares its `prepare_time`
/// with the one Strata read, so that is noticed too.
pub(crate) const PREPARED: &str = "strata_boundary";

/// The prefix of the value the check casts to `int4` when it fails, so the error names what it found.
const MARK: &str = "strata-boundary";

/// What a failed check found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Breach {
    /// The statement it followed: its index in the message.
    pub statement: usize,
    /// `current_user` after the statement.
    pub current_user: String,
    /// `session_user` after the statement.
    pub session_user: String,
    /// What became of the deploy's transaction: `committed`, `aborted`, `in progress` (inside a transaction), or
    /// `open` (a no-transaction section left a transaction block open), `none`.
    pub transaction: String,
    /// The prepared check: `replaced` (deallocated or prepared again by package code), `intact`, `-`.
    pub prepared: String,
}

impl Boundary {
    /// The check statement (without `;`) after statement number `index` of a message (its error names it: the
    /// server may see more statements in a message than Strata's splitter did, so counting them does not say
    /// which one broke the boundary). `last`: after the last statement of a section, where a package without a
    /// role must be back to the login, and a no-transaction section must not leave a transaction block open.
    pub fn check_sql(&self, index: usize, last: bool) -> String {
        self.check(&index.to_string(), last, true)
    }

    /// `PREPARE strata_boundary(int4) AS …`: the check after a statement that is not the last of its message,
    /// run as [`Boundary::execute_sql`].
    pub fn prepare_sql(&self) -> String {
        format!(
            "PREPARE {PREPARED}(pg_catalog.int4) AS {}",
            self.check("$1", false, false)
        )
    }

    /// `EXECUTE strata_boundary(index)`.
    pub fn execute_sql(index: usize) -> String {
        format!("EXECUTE {PREPARED}({index})")
    }

    fn check(&self, index: &str, last: bool, verify_prepared: bool) -> String {
        let mut conditions = Vec::new();
        let user = match (&self.role, last) {
            (Some(role), _) => Some(role.as_str()),
            (None, true) => Some(self.login.as_str()),
            (None, false) => None,
        };
        if let Some(user) = user {
            conditions.push(format!(
                "current_user OPERATOR(pg_catalog.=) {}",
                escape_literal(user)
            ));
        }
        conditions.push(format!(
            "session_user OPERATOR(pg_catalog.=) {}",
            escape_literal(&self.login)
        ));
        let transaction = match &self.xact {
            Some(x) => {
                let x = escape_literal(x);
                conditions.push(format!(
                    "pg_catalog.pg_current_xact_id_if_assigned() OPERATOR(pg_catalog.=) {x}::pg_catalog.xid8"
                ));
                format!("pg_catalog.pg_xact_status({x}::pg_catalog.xid8)")
            }
            None => {
                // In autocommit a statement's transaction starts with its message: an older transaction start
                // means a transaction block the section opened and did not close.
                if last {
                    conditions.push(
                        "pg_catalog.now() OPERATOR(pg_catalog.=) pg_catalog.statement_timestamp()"
                            .into(),
                    );
                }
                "CASE WHEN pg_catalog.now() OPERATOR(pg_catalog.=) pg_catalog.statement_timestamp() \
                 THEN 'none' ELSE 'open' END"
                    .to_string()
            }
        };
        let mut prepared = "'-'".to_string();
        if let (Some(at), true) = (&self.prepared, verify_prepared) {
            let intact = format!(
                "(SELECT p.prepare_time FROM pg_catalog.pg_prepared_statements p \
                  WHERE p.name OPERATOR(pg_catalog.=) '{PREPARED}') OPERATOR(pg_catalog.=) {}::pg_catalog.timestamptz",
                escape_literal(at)
            );
            prepared = format!("CASE WHEN {intact} THEN 'intact' ELSE 'replaced' END");
            conditions.push(format!("coalesce({intact}, false)"));
        }
        // The ELSE branch is not constant (it reads current_user), so the planner cannot fold it into an error
        // when the condition holds.
        format!(
            "SELECT WHERE CASE WHEN {} THEN false ELSE pg_catalog.format('{MARK} %s %L %L %s %s', {index}, \
             current_user, session_user, {transaction}, {prepared})::pg_catalog.int4 IS NULL END",
            conditions.join(" AND ")
        )
    }

    /// Read what a failed check found from its error, if `e` is one.
    pub fn breach(e: &tokio_postgres::Error) -> Option<Breach> {
        let db = e.as_db_error()?;
        if *db.code() != SqlState::INVALID_TEXT_REPRESENTATION {
            return None;
        }
        let at = db.message().find(MARK)? + MARK.len();
        let rest = db.message()[at..].trim_end_matches('"').trim_start();
        let (index, rest) = rest.split_once(' ')?;
        let statement = index.parse().ok()?;
        let (current_user, rest) = literal(rest.trim_start())?;
        let (session_user, rest) = literal(rest.trim_start())?;
        // The transaction status may have a space (`in progress`): the prepared state is the last word.
        let rest = rest.trim();
        let (transaction, prepared) = rest.rsplit_once(' ')?;
        Some(Breach {
            statement,
            current_user,
            session_user,
            transaction: transaction.to_string(),
            prepared: prepared.to_string(),
        })
    }
}

/// One SQL literal as `format('%L')` writes it (`'a''b'`, `E'a\\b'`), and the rest of the text.
fn literal(text: &str) -> Option<(String, &str)> {
    let (escaped, body) = match text.strip_prefix("E'") {
        Some(b) => (true, b),
        None => (false, text.strip_prefix('\'')?),
    };
    let mut out = String::new();
    let mut chars = body.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\'' if chars.peek().map(|(_, n)| *n) == Some('\'') => {
                chars.next();
                out.push('\'');
            }
            '\'' => return Some((out, &body[i + 1..])),
            '\\' if escaped => {
                if let Some((_, n)) = chars.next() {
                    out.push(n);
                }
            }
            c => out.push(c),
        }
    }
    None
}

impl Breach {
    /// What happened, in words, and whether the deploy's transaction is gone with what it did (rolled back).
    pub fn describe(&self, boundary: &Boundary) -> (String, bool) {
        match self.transaction.as_str() {
            "committed" => (
                "this statement committed the deploy's transaction: what ran before it in that transaction stays \
                 applied, but Strata did not record it; compare the database with `strata status` before \
                 deploying again"
                    .to_string(),
                false,
            ),
            "aborted" => (
                "this statement rolled back the deploy's transaction".to_string(),
                true,
            ),
            _ if self.prepared == "replaced" => (
                format!(
                    "package code deallocated or replaced Strata's prepared check `{PREPARED}`, which follows every \
                     statement; the deploy cannot vouch for the statements since the last full check"
                ),
                true,
            ),
            "open" => (
                "this no-transaction section left a transaction block open (BEGIN without COMMIT)".to_string(),
                true,
            ),
            _ if self.session_user != boundary.login => (
                format!(
                    "this statement changed the session's user to {} (SET SESSION AUTHORIZATION): package code must \
                     not leave the deploying login {}",
                    self.session_user, boundary.login
                ),
                true,
            ),
            _ if boundary.xact.is_some() && self.transaction != "in progress" => (
                "this statement ended the deploy's transaction".to_string(),
                true,
            ),
            _ => match &boundary.role {
                Some(role) => (
                    format!(
                        "this statement changed the role to {}: package code must run as the package role {role}",
                        self.current_user
                    ),
                    true,
                ),
                None => (
                    format!(
                        "this section left the role set to {}: a package without a package role must give the role \
                         back (RESET ROLE) before its section ends",
                        self.current_user
                    ),
                    true,
                ),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_as_format_writes_them() {
        assert_eq!(literal("'a''b' x"), Some(("a'b".into(), " x")));
        assert_eq!(literal("E'a\\\\b' y"), Some(("a\\b".into(), " y")));
        assert_eq!(
            literal("'$pkg/x' 'postgres' committed").map(|l| l.0),
            Some("$pkg/x".into())
        );
        assert_eq!(literal("'open"), None);
    }

    #[test]
    fn the_check_names_the_role_login_and_transaction() {
        let b = Boundary {
            role: Some("$acme".into()),
            login: "deploy".into(),
            xact: Some("731".into()),
            prepared: Some("2025-01-01 00:00:00+00".into()),
        };
        let sql = b.check_sql(3, false);
        assert!(
            sql.contains("'strata-boundary %s %L %L %s %s', 3,"),
            "{sql}"
        );
        assert!(
            b.prepare_sql().contains("%s %s', $1,"),
            "{}",
            b.prepare_sql()
        );
        assert!(
            sql.contains("current_user OPERATOR(pg_catalog.=) '$acme'"),
            "{sql}"
        );
        assert!(
            sql.contains("session_user OPERATOR(pg_catalog.=) 'deploy'"),
            "{sql}"
        );
        assert!(sql.contains("'731'::pg_catalog.xid8"), "{sql}");
        assert!(sql.contains("pg_prepared_statements"), "{sql}");
        assert!(!b.prepare_sql().contains("pg_prepared_statements"));
        let free = Boundary {
            role: None,
            xact: None,
            prepared: None,
            ..b
        };
        assert!(!free.check_sql(0, false).contains("current_user OPERATOR"));
        assert!(
            free.check_sql(0, true)
                .contains("current_user OPERATOR(pg_catalog.=) 'deploy'")
        );
        assert!(free.check_sql(0, true).contains("statement_timestamp()"));
    }
}
