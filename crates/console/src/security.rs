//! Who may use the console, and the headers every response carries.
//!
//! - On a loopback address without a token, only requests whose `Host` is that address (or `localhost`) are
//!   served: a web page elsewhere cannot rebind a DNS name to 127.0.0.1 and read the console.
//! - With a token (required off loopback), `/?token=…` trades it for an `HttpOnly`, `SameSite=Strict` cookie and
//!   redirects to the same address without it; every other request needs the cookie.
//! - POSTs are refused in read-only mode, from another origin, and without the page's CSRF token (checked by the
//!   handlers, which parse the form).
//! - Every response: a Content-Security-Policy that allows only the console's own script and style sheet, no
//!   framing, no caching, no referrer to other sites (`same-origin`: with `no-referrer` browsers send `Origin: null`
//!   on the console's own forms, which the origin check must refuse).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use rand::RngCore;

use crate::error::{Error, Result};
use crate::routes::AppState;
use crate::{ConsoleOptions, views};

/// The cookie that carries the access token.
pub(crate) const COOKIE: &str = "strata_console_token";

/// The policy: nothing from elsewhere, no inline script or style, forms only to the console itself.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) struct Access {
    token: Option<String>,
    generated: bool,
    csrf: String,
    /// Without a token: the `Host` values accepted.
    hosts: Vec<String>,
}

fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal without an early exit (the time taken does not tell how much of a guess was right).
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

impl Access {
    pub(crate) fn new(opts: &ConsoleOptions) -> Result<Access> {
        if let Some(t) = &opts.token
            && (t.len() < 16
                || !t
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
        {
            return Err(Error::Usage {
                message:
                    "the console token must be at least 16 characters of letters, digits, - and _"
                        .into(),
                help: Some("leave --token out to have one generated".into()),
            });
        }
        let loopback = opts.listen.ip().is_loopback();
        let (token, generated) = match (&opts.token, loopback) {
            (Some(t), _) => (Some(t.clone()), false),
            (None, true) => (None, false),
            (None, false) => (Some(random_hex(24)), true),
        };
        Ok(Access {
            token,
            generated,
            csrf: random_hex(24),
            hosts: Vec::new(),
        })
    }

    /// Once the port is known: the `Host` values a tokenless loopback console accepts.
    pub(crate) fn bound(mut self, addr: SocketAddr) -> Access {
        let port = addr.port();
        self.hosts = vec![
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
            addr.to_string(),
        ];
        self
    }

    pub(crate) fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    pub(crate) fn generated(&self) -> bool {
        self.generated
    }

    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }
}

fn cookie_token(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_string())
}

fn query_token(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "token")
        .map(|(_, value)| value)
}

/// The query without its `token` parameter.
fn query_without_token(query: &str) -> String {
    query
        .split('&')
        .filter(|pair| !pair.starts_with("token=") && !pair.is_empty())
        .collect::<Vec<_>>()
        .join("&")
}

fn refuse(status: StatusCode, title: &str, text: &str, api: bool) -> Response {
    if api {
        let body = serde_json::json!({ "error": title, "detail": text });
        (status, axum::Json(body)).into_response()
    } else {
        (status, views::layout::message_page(title, text)).into_response()
    }
}

/// The middleware in front of every route.
pub(crate) async fn guard(
    State(state): State<Arc<AppState>>,
    req: Request,
    next: Next,
) -> Response {
    let access = &state.access;
    let api = req.uri().path().starts_with("/api/");
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let mut response = match &access.token {
        None if !access.hosts.iter().any(|h| h.eq_ignore_ascii_case(&host)) => refuse(
            StatusCode::FORBIDDEN,
            "Unknown host",
            "This console answers only at the loopback address it printed.",
            api,
        ),
        Some(token) if query_token(req.uri().query()).is_some_and(|q| same(q, token)) => {
            let rest = query_without_token(req.uri().query().unwrap_or(""));
            let to = if rest.is_empty() {
                req.uri().path().to_string()
            } else {
                format!("{}?{rest}", req.uri().path())
            };
            let mut r = Redirect::to(&to).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!(
                "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"
            )) {
                r.headers_mut().insert(header::SET_COOKIE, v);
            }
            r
        }
        Some(token) if !cookie_token(req.headers()).is_some_and(|c| same(&c, token)) => refuse(
            StatusCode::UNAUTHORIZED,
            "Access token needed",
            "Open the address `strata console` printed (it carries the token) once in this browser.",
            api,
        ),
        _ if req.method() == Method::POST && state.opts.read_only => refuse(
            StatusCode::FORBIDDEN,
            "Read-only console",
            "This console was started with --read-only: it changes nothing.",
            api,
        ),
        _ if req.method() == Method::POST
            && req
                .headers()
                .get(header::ORIGIN)
                .and_then(|o| o.to_str().ok())
                .is_some_and(|o| !o.eq_ignore_ascii_case(&format!("http://{host}"))) =>
        {
            refuse(
                StatusCode::FORBIDDEN,
                "Cross-origin request",
                "A form of another site tried to change something here; nothing was changed.",
                api,
            )
        }
        _ => next.run(req).await,
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_compare_and_strip() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
        assert_eq!(query_token(Some("a=1&token=xyz&b=2")), Some("xyz"));
        assert_eq!(query_token(Some("a=1")), None);
        assert_eq!(query_without_token("a=1&token=xyz&b=2"), "a=1&b=2");
        assert_eq!(query_without_token("token=xyz"), "");
    }

    #[test]
    fn off_loopback_a_token_is_generated_and_a_bad_one_refused() {
        let mut opts = ConsoleOptions {
            listen: "0.0.0.0:0".parse().unwrap_or(crate::DEFAULT_LISTEN),
            ..Default::default()
        };
        let a = Access::new(&opts).ok();
        assert!(
            a.as_ref()
                .is_some_and(|a| a.generated() && a.token().is_some_and(|t| t.len() == 48))
        );
        opts.token = Some("short".into());
        assert!(Access::new(&opts).is_err());
        opts.token = Some("a-long-enough_token-1234".into());
        assert!(Access::new(&opts).ok().is_some_and(|a| !a.generated()));
        opts.listen = crate::DEFAULT_LISTEN;
        opts.token = None;
        assert!(Access::new(&opts).ok().is_some_and(|a| a.token().is_none()));
    }
}
