//! The crate's error type.

use tokio_postgres::error::SqlState;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The database refused a call or the connection failed. [`Error::sqlstate`] tells which.
    #[error("{}", describe(.0))]
    Db(#[from] tokio_postgres::Error),

    /// A payload did not serialise to JSON.
    #[error("cannot encode the payload as JSON: {0}")]
    Encode(#[source] serde_json::Error),

    /// A stored payload does not deserialise into the payload type.
    #[error("the payload of {what} does not decode as {type_name}: {source}")]
    Decode {
        /// Which message or event, e.g. `message 42` or `event at offset 17`.
        what: String,
        /// The Rust type it was meant to decode into.
        type_name: &'static str,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// A queue, stream or consumer-group name the server would refuse.
    #[error(
        "invalid {kind} name {name:?}: use 1 to 48 characters: letters, digits, '_', '.', ':' or '-', \
         starting with a letter or digit"
    )]
    InvalidName {
        /// `queue`, `stream` or `consumer group`.
        kind: &'static str,
        /// The name as given.
        name: String,
    },

    /// An argument out of range, caught before it reached the database.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// A keyed publish found a different current version than the expected one (SQLSTATE `MP409`).
    #[error("wrong expected version: {0}")]
    WrongExpectedVersion(String),
}

/// The server's message (with its SQLSTATE, detail and hint) rather than tokio-postgres' bare "db error".
fn describe(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => {
            let mut text = format!("database error {}: {}", db.code().code(), db.message());
            if let Some(detail) = db.detail() {
                text.push_str(&format!(" ({detail})"));
            }
            if let Some(hint) = db.hint() {
                text.push_str(&format!(" Hint: {hint}"));
            }
            text
        }
        None => format!("database error: {e}"),
    }
}

/// Shorthand for `Result<T, minipaas::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// SQLSTATE the package raises when an expected version does not match.
pub(crate) const WRONG_EXPECTED_VERSION: &str = "MP409";

impl Error {
    /// The server's SQLSTATE code, if the database raised this error.
    pub fn sqlstate(&self) -> Option<&SqlState> {
        match self {
            Error::Db(e) => e.code(),
            _ => None,
        }
    }

    /// Whether retrying the whole transaction may succeed: a serialization failure or a deadlock, e.g. a
    /// keyed publish from a transaction older than the key's latest writer.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.sqlstate(),
            Some(code) if *code == SqlState::T_R_SERIALIZATION_FAILURE || *code == SqlState::T_R_DEADLOCK_DETECTED
        )
    }

    /// Whether the connection this call used is gone (it will not come back; reconnect).
    pub fn is_closed(&self) -> bool {
        matches!(self, Error::Db(e) if e.is_closed())
    }

    /// Turns database errors that have a meaning of their own into their variant.
    pub(crate) fn from_db(e: tokio_postgres::Error) -> Error {
        match e.as_db_error() {
            Some(db) if db.code().code() == WRONG_EXPECTED_VERSION => {
                Error::WrongExpectedVersion(db.message().to_owned())
            }
            _ => Error::Db(e),
        }
    }
}
