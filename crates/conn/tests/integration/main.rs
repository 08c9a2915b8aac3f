//! Integration tests against real PostgreSQL clusters: pgtest's shared one for Unix-socket
//! behaviour, and clusters of our own for TCP, passwords and TLS.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod messages;
mod password;
mod support;
mod timeout;
mod tls;
mod wait;
