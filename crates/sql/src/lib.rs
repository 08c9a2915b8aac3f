//! SQL text handling for Strata: statement splitting, statement kinds, migration sections and
//! directives, source positions.
//!
//! This crate is Strata's only door to SQL text and the only user of squawk (the PostgreSQL
//! lexer and parser). It never touches a database. Nothing here fails on bad SQL: functions
//! return results plus errors with byte ranges, and everything works in **byte offsets** into
//! the original text; [`LineIndex`] turns them into lines and columns at the edge.
//!
//! - [`split`] cuts a script into [`Statement`]s (with a coarse [`StatementKind`]) and reports
//!   squawk's syntax errors; [`non_transactional_reason`] says which statements cannot run
//!   inside `BEGIN … COMMIT`.
//! - [`migration`] cuts migration files into up/down sections (dbmate markers, no-transaction
//!   directives).
//! - [`enums`] finds enum values a script adds and the string literals it uses (a new value cannot be used in
//!   the transaction that added it).
//! - [`versions`] knows SQL that only newer PostgreSQL versions accept, and names the version when an older
//!   server refuses it.
//! - [`routine_body_range`], [`LineIndex`] and [`char_position_to_byte`] map PostgreSQL error
//!   positions back to the file; [`normalize`] prepares text for checksums.
//!
//! ```
//! use pgstrata_sql::{split, LineIndex, StatementKind};
//!
//! let sql = "\
//! CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql
//!     BEGIN ATOMIC SELECT a + b; END;
//! /* a comment; not a statement */
//! CREATE INDEX CONCURRENTLY accounts_name ON accounts (name);
//! INSERT INTO log VALUES (E'it\\'s; fine')";
//!
//! let script = split(sql);
//! assert!(script.errors.is_empty());
//! let kinds: Vec<_> = script.statements.iter().map(|s| s.kind.clone()).collect();
//! assert_eq!(
//!     kinds,
//!     [
//!         StatementKind::CreateFunction,
//!         StatementKind::CreateIndex { concurrently: true },
//!         StatementKind::Insert,
//!     ]
//! );
//! let index = LineIndex::new(sql);
//! assert_eq!(index.line_col(script.statements[1].range.start).line, 4);
//! assert_eq!(script.statements[2].text(sql), "INSERT INTO log VALUES (E'it\\'s; fine')");
//! ```

#![deny(missing_docs)]

mod body;
pub mod enums;
pub mod hazards;
pub mod highlight;
mod lex;
pub mod lint;
pub mod locks;
pub mod migration;
pub mod objects;
mod position;
mod signature;
mod split;
mod transaction;
pub mod versions;

pub use std::ops::Range;

pub use body::routine_body_range;
pub use lex::MAX_NESTING;
pub use position::{LineCol, LineIndex, char_position_to_byte, normalize};
pub use split::{
    Script, Statement, StatementKind, SyntaxError, check, for_each_statement, split,
    statement_ranges, statements,
};
pub use transaction::non_transactional_reason;
