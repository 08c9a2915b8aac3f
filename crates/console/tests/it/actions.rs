//! Redrive and delete: refused without the CSRF token or from another origin, a confirmation step first, then done
//! through MiniPaaS's functions, reported, and listed on the queue's page.

use crate::support::{counts, fixture, get, post, request, serve, test_options};

#[tokio::test]
async fn redrive_and_delete_need_the_csrf_token_and_a_confirmation() {
    let f = fixture().await;
    let s = serve(
        pgstrata_conn::ConnectOptions::parse(&f.db.url()).expect("url"),
        None,
        test_options(),
    )
    .await;
    let a = s.addr;
    assert_eq!(counts(&f.db, "mail").await.0, 2);

    // Without the token, with a wrong one, or from another origin: refused, nothing changed.
    let r = post(a, "/queues/mail/redrive", "").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("CSRF"), "{}", r.body);
    assert_eq!(
        post(a, "/queues/mail/redrive", "csrf=0123456789&confirm=yes")
            .await
            .status,
        403
    );
    let page = get(a, "/queues/mail").await;
    let csrf = page.csrf();
    let evil = request(
        a,
        "POST",
        "/queues/mail/redrive",
        &[("Origin", "http://evil.example")],
        Some(&format!("csrf={csrf}&confirm=yes")),
    )
    .await;
    assert_eq!(evil.status, 403, "{}", evil.body);
    assert_eq!(counts(&f.db, "mail").await.0, 2, "nothing was redriven");

    // The first POST asks; nothing changes until it is confirmed.
    let dead: Vec<i64> = get(a, "/api/queues/mail?state=dead").await.json()["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter_map(|m| m["id"].as_i64())
        .collect();
    assert_eq!(dead.len(), 2);
    let ask = post(
        a,
        &format!("/queues/mail/messages/{}/delete", dead[0]),
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(ask.status, 200, "{}", ask.body);
    assert!(
        ask.body
            .contains(&format!("Delete dead message {} of queue `mail`?", dead[0])),
        "{}",
        ask.body
    );
    assert!(
        ask.body.contains("name=\"confirm\" value=\"yes\""),
        "{}",
        ask.body
    );
    assert_eq!(counts(&f.db, "mail").await.0, 2, "not yet");

    // Confirmed: deleted, redirected to the queue with the outcome, reported.
    let done = post(
        a,
        &format!("/queues/mail/messages/{}/delete", dead[0]),
        &format!("csrf={csrf}&confirm=yes"),
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let to = done.header("location").expect("a redirect").to_string();
    assert!(to.starts_with("/queues/mail?state=dead&action="), "{to}");
    assert_eq!(counts(&f.db, "mail").await.0, 1);
    let after = get(a, &to).await;
    assert!(
        after
            .body
            .contains("Done: delete-dead, 1 message(s) changed."),
        "{}",
        after.body
    );
    assert!(
        after.body.contains("Done from this console"),
        "{}",
        after.body
    );

    // Redrive all: the last dead message becomes ready again.
    let (_, ready_before) = counts(&f.db, "mail").await;
    let redrive = post(
        a,
        "/queues/mail/redrive",
        &format!("csrf={csrf}&confirm=yes"),
    )
    .await;
    assert_eq!(redrive.status, 303, "{}", redrive.body);
    assert_eq!(counts(&f.db, "mail").await, (0, ready_before + 1));
    let api = get(a, "/api/queues/mail").await.json();
    assert_eq!(api["queue"]["dead"], 0);
    assert_eq!(api["actions"].as_array().map(Vec::len), Some(2), "{api}");

    let log = s.actions.lock().expect("lock").clone();
    assert_eq!(log.len(), 2, "{log:?}");
    assert!(
        log[0].contains("delete-dead queue=\"mail\"") && log[0].contains("1 message(s) changed"),
        "{log:?}"
    );
    assert!(
        log[1].contains("redrive queue=\"mail\" messages=all dead"),
        "{log:?}"
    );

    // A redrive of a queue that does not exist, a message id that is not a number.
    assert_eq!(
        post(
            a,
            "/queues/nope/redrive",
            &format!("csrf={csrf}&confirm=yes")
        )
        .await
        .status,
        404
    );
    assert_eq!(
        post(
            a,
            "/queues/mail/messages/x/delete",
            &format!("csrf={csrf}&confirm=yes")
        )
        .await
        .status,
        400
    );
}

#[tokio::test]
async fn read_only_hides_the_buttons_and_refuses_every_post() {
    let f = fixture().await;
    let opts = pgstrata_console::ConsoleOptions {
        read_only: true,
        ..test_options()
    };
    let s = serve(
        pgstrata_conn::ConnectOptions::parse(&f.db.url()).expect("url"),
        None,
        opts,
    )
    .await;
    let page = get(s.addr, "/queues/mail?state=dead").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("read-only"), "{}", page.body);
    assert!(
        !page.body.contains("<form method=\"post\""),
        "no form: {}",
        page.body
    );
    assert!(!page.body.contains("Redrive"), "no button: {}", page.body);
    let r = post(s.addr, "/queues/mail/redrive", "csrf=whatever&confirm=yes").await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("read-only"), "{}", r.body);
    assert_eq!(counts(&f.db, "mail").await.0, 2);
}
