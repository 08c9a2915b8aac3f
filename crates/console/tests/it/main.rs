//! The console against real PostgreSQL: every route over HTTP (status, content, JSON twins), the security rules
//! (token, host, CSRF, origin, read-only, CSP, no password), the queue actions, and a real browser.

mod actions;
mod browser;
mod pages;
mod security;
mod support;
