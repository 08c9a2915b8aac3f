//! The crate's error type.

use std::path::PathBuf;
use std::time::Duration;

use tokio_postgres::error::{DbError, SqlState};

use crate::connect::seconds;

/// Everything that can go wrong while reading connection settings or connecting.
///
/// Messages are complete on their own: they include the underlying causes (tokio-postgres'
/// own messages leave them to [`source`](std::error::Error::source), so "db error" would
/// otherwise be all a log shows), and so no variant has a `source`.
///
/// No variant ever contains a password: connection targets are shown in their
/// [redacted](crate::ConnectOptions::redacted) form, and values taken from the
/// authority part of a URL (where a mistyped password could end up) are never echoed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A connection string or environment variable could not be understood.
    #[error("invalid connection settings: {message}")]
    InvalidConnInfo {
        /// What is wrong, naming the offending key or variable.
        message: String,
    },
    /// A file named by the settings (root certificate, client certificate or key) could not be read.
    #[error("could not read {what} \"{}\": {error}", path.display())]
    Io {
        /// Which file this is, e.g. "root certificate file".
        what: &'static str,
        /// The file's path.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// TLS could not be set up: a certificate or key file is unusable, or a verifying
    /// `sslmode` has no root certificate to verify against.
    #[error("TLS setup failed: {message}")]
    Tls {
        /// What is wrong.
        message: String,
    },
    /// The server could not be reached, refused the connection, or failed the TLS
    /// handshake or authentication.
    #[error("could not connect to {target}: {}", describe(error))]
    Connect {
        /// The redacted connection URL.
        target: String,
        /// The driver's error; [`Error::db_error`] gives the server's message if there is one.
        error: tokio_postgres::Error,
    },
    /// A connection attempt did not finish within the connect timeout: the server accepted
    /// nothing, or accepted the TCP connection and then did not complete the TLS handshake,
    /// startup or authentication in time.
    #[error(
        "could not connect to {target}: {server} did not complete the connection set-up (TCP \
         connect, TLS handshake, startup and authentication) within {} {}",
        seconds(*timeout),
        timeout_origin(*is_default)
    )]
    ConnectTimeout {
        /// The redacted connection URL.
        target: String,
        /// The address tried: `host:port`, `name (address:port)` or the socket file.
        server: String,
        /// How long the attempt was given.
        timeout: Duration,
        /// True if no timeout was set and the default applied.
        is_default: bool,
    },
    /// [`wait_until_ready`](crate::ConnectOptions::wait_until_ready) gave up.
    #[error(
        "{target} did not accept connections within {:.1}s; last error: {last_error}",
        waited.as_secs_f64()
    )]
    Timeout {
        /// The redacted connection URL.
        target: String,
        /// How long we waited.
        waited: Duration,
        /// The error from the last attempt.
        last_error: String,
    },
}

impl Error {
    /// True if the server could not be reached or refused us (as opposed to settings that
    /// could not be parsed or files that could not be read). A CLI maps these to its
    /// "connection error" exit code.
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Error::Connect { .. } | Error::ConnectTimeout { .. } | Error::Timeout { .. }
        )
    }

    /// True if the connection settings themselves are invalid.
    pub fn is_invalid_conninfo(&self) -> bool {
        matches!(self, Error::InvalidConnInfo { .. })
    }

    /// The server's error report, if the server answered with one (e.g. bad password,
    /// database does not exist).
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            Error::Connect { error, .. } => error.as_db_error(),
            _ => None,
        }
    }

    /// The SQLSTATE of the server's error report, if there is one.
    pub fn code(&self) -> Option<&SqlState> {
        self.db_error().map(DbError::code)
    }

    pub(crate) fn conninfo(message: impl Into<String>) -> Self {
        Error::InvalidConnInfo {
            message: message.into(),
        }
    }
}

fn timeout_origin(is_default: bool) -> &'static str {
    if is_default {
        "(the default connect timeout; set connect_timeout in the URL or PGCONNECT_TIMEOUT to \
         change it, 0 to wait forever)"
    } else {
        "(connect_timeout; 0 waits forever)"
    }
}

/// A driver error with its causes, e.g. "db error: FATAL: password authentication failed for
/// user "alice"" or "error connecting to server: Connection refused (os error 111)".
pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_timeout_names_the_server_and_where_the_limit_came_from() {
        let error = |timeout, is_default| {
            Error::ConnectTimeout {
                target: "postgresql://u@db.example:5432/d".to_owned(),
                server: "db.example (10.1.2.3:5432)".to_owned(),
                timeout,
                is_default,
            }
            .to_string()
        };
        assert_eq!(
            error(Duration::from_secs(30), true),
            "could not connect to postgresql://u@db.example:5432/d: db.example (10.1.2.3:5432) did \
             not complete the connection set-up (TCP connect, TLS handshake, startup and \
             authentication) within 30s (the default connect timeout; set connect_timeout in the \
             URL or PGCONNECT_TIMEOUT to change it, 0 to wait forever)"
        );
        assert!(
            error(Duration::from_millis(2500), false)
                .ends_with("within 2.5s (connect_timeout; 0 waits forever)")
        );
    }
}
