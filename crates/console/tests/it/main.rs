//! The console against real PostgreSQL: every route over HTTP (status, content, JSON twins), the security rules
//! (token, host, CSRF, origin, read-only, CSP, no password), the queue actions, and a real browser.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

mod actions;
mod browser;
mod pages;
mod security;
mod support;
