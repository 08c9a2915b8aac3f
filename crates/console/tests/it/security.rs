//! Who may use the console: the loopback host check, the access token traded for a cookie, the headers of every
//! response.

use crate::support::{get, request, serve, test_options};

#[tokio::test]
async fn every_response_carries_a_strict_policy() {
    let db = pgtest::TestDb::new().await;
    let s = serve(
        pgstrata_conn::ConnectOptions::parse(&db.url()).expect("url"),
        None,
        test_options(),
    )
    .await;
    for path in ["/", "/runs", "/api/runs", "/nothing", "/assets/console.js"] {
        let r = get(s.addr, path).await;
        let csp = r
            .header("content-security-policy")
            .unwrap_or_else(|| panic!("{path}: no CSP"));
        assert!(
            csp.contains("default-src 'none'") && csp.contains("script-src 'self'"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("cache-control"), Some("no-store"));
    }
    // Pages carry no inline script or style (the policy would block them).
    let page = get(s.addr, "/").await.body;
    assert!(
        !page.contains("<script>") && !page.contains("style="),
        "{page}"
    );
}

#[tokio::test]
async fn without_a_token_only_the_loopback_host_is_served() {
    let db = pgtest::TestDb::new().await;
    let s = serve(
        pgstrata_conn::ConnectOptions::parse(&db.url()).expect("url"),
        None,
        test_options(),
    )
    .await;
    assert!(s.token.is_none());
    assert_eq!(s.url, format!("http://127.0.0.1:{}/", s.addr.port()));
    let port = s.addr.port();
    assert_eq!(
        request(
            s.addr,
            "GET",
            "/",
            &[("Host", &format!("localhost:{port}"))],
            None
        )
        .await
        .status,
        200
    );
    // A DNS name rebound to 127.0.0.1 by another site: refused.
    let rebound = request(
        s.addr,
        "GET",
        "/api/runs",
        &[("Host", &format!("evil.example:{port}"))],
        None,
    )
    .await;
    assert_eq!(rebound.status, 403, "{}", rebound.body);
    assert_eq!(rebound.json()["error"], "Unknown host");
}

#[tokio::test]
async fn with_a_token_the_first_visit_sets_a_cookie_and_every_other_request_needs_it() {
    let db = pgtest::TestDb::new().await;
    let token = "a-test-token-0123456789";
    let opts = pgstrata_console::ConsoleOptions {
        token: Some(token.into()),
        ..test_options()
    };
    let s = serve(
        pgstrata_conn::ConnectOptions::parse(&db.url()).expect("url"),
        None,
        opts,
    )
    .await;
    assert_eq!(
        s.url,
        format!("http://127.0.0.1:{}/?token={token}", s.addr.port())
    );
    let a = s.addr;
    let none = get(a, "/").await;
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(
        get(a, "/api/runs").await.json()["error"],
        "Access token needed"
    );
    assert_eq!(
        get(a, "/runs?token=wrong-token-0123456789").await.status,
        401
    );
    // A POST without the cookie is refused before its form is read.
    let post = request(
        a,
        "POST",
        "/queues/mail/redrive",
        &[],
        Some("csrf=x&confirm=yes"),
    )
    .await;
    assert_eq!(post.status, 401, "{}", post.body);
    let first = get(a, &format!("/runs?outcome=failed&token={token}")).await;
    assert_eq!(first.status, 303);
    assert_eq!(
        first.header("location"),
        Some("/runs?outcome=failed"),
        "the token leaves the address bar"
    );
    let cookie = first.header("set-cookie").expect("a cookie").to_string();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let pair = cookie.split(';').next().expect("name=value");
    let with = request(a, "GET", "/runs?outcome=failed", &[("Cookie", pair)], None).await;
    assert_eq!(with.status, 200, "{}", with.body);
    let forged = request(
        a,
        "GET",
        "/",
        &[("Cookie", "strata_console_token=a-test-token-0123456780")],
        None,
    )
    .await;
    assert_eq!(forged.status, 401);
    // With a token, any Host is fine (the token is what protects it).
    let other = request(
        a,
        "GET",
        "/",
        &[("Host", "console.internal:7373"), ("Cookie", pair)],
        None,
    )
    .await;
    assert_eq!(other.status, 200);
}

#[tokio::test]
async fn off_loopback_a_token_is_required_and_generated_when_not_given() {
    let db = pgtest::TestDb::new().await;
    let opts = pgstrata_console::ConsoleOptions {
        listen: "0.0.0.0:0".parse().expect("address"),
        ..test_options()
    };
    let s = serve(
        pgstrata_conn::ConnectOptions::parse(&db.url()).expect("url"),
        None,
        opts,
    )
    .await;
    let token = s.token.clone().expect("a generated token");
    assert_eq!(token.len(), 48);
    assert!(
        s.url.starts_with("http://127.0.0.1:") && s.url.ends_with(&format!("/?token={token}")),
        "{}",
        s.url
    );
    assert_eq!(get(s.addr, "/").await.status, 401);
    let bad = pgstrata_console::ConsoleOptions {
        token: Some("short".into()),
        ..test_options()
    };
    let err = pgstrata_console::Console::bind(
        pgstrata_conn::ConnectOptions::parse(&db.url()).expect("url"),
        None,
        bad,
    )
    .await
    .err()
    .expect("a short token is refused");
    assert!(
        err.is_usage() && err.to_string().contains("at least 16 characters"),
        "{err}"
    );
}

#[tokio::test]
async fn a_wrong_connection_fails_at_start_as_a_usage_error() {
    let conn = pgstrata_conn::ConnectOptions::parse(
        "postgresql://nobody@127.0.0.1:1/none?connect_timeout=2",
    )
    .expect("url");
    let err = pgstrata_console::Console::bind(conn, None, test_options())
        .await
        .err()
        .expect("no server there");
    assert!(err.is_usage(), "{err:?}");
}
