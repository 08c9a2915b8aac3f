//! Every read route, as HTML and as its JSON twin, on a database with history, queues and streams.

use std::time::Duration;

use crate::support::{PASSWORD, fixture, get, options_with_password, serve, test_options};

#[tokio::test]
async fn every_read_page_renders_from_the_database_and_has_a_json_twin() {
    let f = fixture().await;
    let s = serve(
        options_with_password(&f.db),
        Some(f.app.clone()),
        test_options(),
    )
    .await;
    let a = s.addr;

    // Overview: the server, the last runs, and (once the first inspection is done) the packages and verdicts.
    let mut page = get(a, "/").await;
    for _ in 0..100 {
        if page.body.contains("Inspected at") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = get(a, "/").await;
    }
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("PostgreSQL "), "{}", page.body);
    assert!(
        page.body
            .contains(&format!("href=\"/runs/{}\"", f.failed_run)),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Inspected at"),
        "the inspection shows up: {}",
        page.body
    );
    assert!(
        page.body.contains("example.com/app"),
        "the packages table: {}",
        page.body
    );
    assert!(
        page.body.contains("<code>queues</code>"),
        "the verdict of each check: {}",
        page.body
    );
    let api = get(a, "/api/overview").await.json();
    assert_eq!(api["database"], f.db.name());
    assert!(api["runs"].as_array().is_some_and(|r| !r.is_empty()));
    assert!(
        api["inspection"]["checks"]
            .as_array()
            .is_some_and(|c| !c.is_empty())
    );

    // The history: every run, filters, pages of 3.
    let runs = get(a, "/api/runs").await.json();
    let total = runs["total"].as_i64().expect("total");
    assert!(total >= 3, "minipaas, 001 and the failed run: {runs}");
    assert_eq!(runs["runs"].as_array().map(Vec::len), Some(3), "pages of 3");
    assert_eq!(runs["pages"].as_i64(), Some((total + 2) / 3));
    let failed = get(a, "/api/runs?outcome=failed").await.json();
    assert_eq!(failed["total"], 1);
    assert_eq!(failed["runs"][0]["id"], f.failed_run);
    let by_pkg = get(a, "/api/runs?package=example.com%2Fapp").await.json();
    assert!(
        by_pkg["runs"]
            .as_array()
            .is_some_and(|r| r.iter().any(|r| r["id"] == f.app_run)),
        "{by_pkg}"
    );
    assert!(
        by_pkg["runs"]
            .as_array()
            .is_some_and(|r| r.len() as i64 == by_pkg["total"].as_i64().unwrap_or(-1)),
        "only the app's runs (fewer than a page): {by_pkg}"
    );
    let html = get(a, "/runs?outcome=failed").await;
    assert_eq!(html.status, 200);
    assert!(
        html.body.contains("<option value=\"failed\" selected>"),
        "{}",
        html.body
    );
    assert!(
        html.body.contains("no_such_table"),
        "the error, first line: {}",
        html.body
    );
    let second = get(a, "/runs?page=2").await;
    assert!(second.body.contains("page 2 of"), "{}", second.body);
    assert!(
        second.body.contains("rel=\"prev\" href=\"/runs?page=1\""),
        "{}",
        second.body
    );
    assert_eq!(get(a, "/runs?page=0").await.status, 400);
    assert_eq!(get(a, "/api/runs?outcome=maybe").await.status, 400);

    // A run: its migrations with highlighted up and down SQL; the failed one with its error.
    let run = get(a, &format!("/runs/{}", f.app_run)).await;
    assert_eq!(run.status, 200, "{}", run.body);
    assert!(run.body.contains("001_users"), "{}", run.body);
    assert!(
        run.body.contains("<span class=\"kw\">CREATE</span>"),
        "highlighted up SQL: {}",
        run.body
    );
    assert!(
        run.body.contains("<span class=\"kw\">DROP</span>"),
        "the down SQL: {}",
        run.body
    );
    assert!(
        run.body.contains("<span class=\"cm\">-- The users.</span>"),
        "comments: {}",
        run.body
    );
    let run_api = get(a, &format!("/api/runs/{}", f.app_run)).await.json();
    assert_eq!(run_api["migrations"][0]["name"], "001_users");
    assert!(run_api["strata_version"].is_string());
    let failed = get(a, &format!("/runs/{}", f.failed_run)).await;
    assert!(
        failed.body.contains("<pre class=\"error\">"),
        "{}",
        failed.body
    );
    assert!(
        failed.body.contains("002_broken.sql"),
        "the file of the error: {}",
        failed.body
    );
    assert_eq!(get(a, "/runs/123456789").await.status, 404);
    assert_eq!(get(a, "/runs/abc").await.status, 400);
    assert_eq!(get(a, "/api/runs/abc").await.json()["error"], "Bad request");

    // The plan: 002 is pending, with its lock report and lint; read only.
    let plan = get(a, "/plan").await;
    assert_eq!(plan.status, 200, "{}", plan.body);
    assert!(
        plan.body.contains("Pending migrations (1)"),
        "{}",
        plan.body
    );
    assert!(plan.body.contains("002_broken"), "{}", plan.body);
    assert!(
        plan.body.contains("ACCESS EXCLUSIVE"),
        "the lock report: {}",
        plan.body
    );
    let plan_api = get(a, "/api/plan").await.json();
    assert_eq!(plan_api["plan"]["steps"][0]["name"], "002_broken");
    assert!(plan_api["lint"]["files_checked"].as_u64().is_some());

    // Queues: figures, charts from the samples, a queue's messages by state with the error history.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let queues = get(a, "/queues").await;
    assert_eq!(queues.status, 200);
    assert!(
        queues.body.contains("href=\"/queues/mail\""),
        "{}",
        queues.body
    );
    assert!(queues.body.contains("<svg"), "charts: {}", queues.body);
    assert!(
        queues.body.contains("<polyline class=\"s1\""),
        "sampled: {}",
        queues.body
    );
    let q_api = get(a, "/api/queues?q=mai").await.json();
    assert_eq!(q_api["total"], 1, "{q_api}");
    assert_eq!(q_api["queues"][0]["dead"], 2);
    assert_eq!(q_api["queues"][0]["in_flight"], 1);
    assert!(
        q_api["depth"].as_array().is_some_and(|d| d.len() >= 2),
        "samples: {q_api}"
    );
    let mail = get(a, "/queues/mail").await;
    assert_eq!(mail.status, 200, "{}", mail.body);
    assert!(
        mail.body.contains("dead (2)"),
        "dead letters first: {}",
        mail.body
    );
    assert!(
        mail.body.contains("smtp down"),
        "the error history: {}",
        mail.body
    );
    assert!(mail.body.contains("Redrive all 2 dead"), "{}", mail.body);
    let ready = get(a, "/api/queues/mail?state=ready").await.json();
    assert_eq!(ready["state"], "ready");
    assert!(
        ready["messages"].as_array().is_some_and(|m| m.len() == 2),
        "{ready}"
    );
    assert!(
        ready["messages"][0]["payload_preview"]
            .as_str()
            .is_some_and(|p| p.contains("\"n\""))
    );
    assert_eq!(get(a, "/queues/mail?state=lost").await.status, 400);
    assert_eq!(get(a, "/queues/nope").await.status, 404);
    assert_eq!(
        get(a, "/api/queues/quiet").await.json()["queue"]["ready"],
        0
    );

    // Streams: groups and their lag, recent events.
    let streams = get(a, "/streams").await;
    assert_eq!(streams.status, 200);
    assert!(
        streams.body.contains("href=\"/streams/orders\""),
        "{}",
        streams.body
    );
    assert!(
        streams.body.contains("<code>billing</code>: lag 6"),
        "{}",
        streams.body
    );
    let orders = get(a, "/api/streams/orders").await.json();
    assert_eq!(orders["stream"]["events"], 10);
    assert_eq!(
        orders["events"].as_array().map(Vec::len),
        Some(3),
        "a page of 3: {orders}"
    );
    assert_eq!(orders["pages"], 4);
    let page4 = get(a, "/streams/orders?page=4").await;
    assert!(page4.body.contains("page 4 of 4"), "{}", page4.body);
    assert_eq!(get(a, "/streams/nope").await.status, 404);
    assert_eq!(get(a, "/api/streams?q=zzz").await.json()["total"], 0);

    // Assets, unknown pages; no page shows the password.
    assert!(
        get(a, "/assets/style.css")
            .await
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/css"))
    );
    assert_eq!(get(a, "/nothing/here").await.status, 404);
    for path in [
        "/",
        "/runs",
        "/plan",
        "/queues",
        "/queues/mail",
        "/streams",
        "/api/overview",
    ] {
        let r = get(a, path).await;
        assert!(!r.body.contains(PASSWORD), "{path} shows the password");
    }
}

#[tokio::test]
async fn without_minipaas_or_a_project_the_pages_say_so() {
    let db = pgtest::TestDb::new().await;
    let s = serve(options_with_password(&db), None, test_options()).await;
    let a = s.addr;
    let page = get(a, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("No run is recorded."), "{}", page.body);
    let plan = get(a, "/plan").await;
    assert!(plan.body.contains("No package was given"), "{}", plan.body);
    assert_eq!(get(a, "/api/plan").await.json()["packages_given"], false);
    let queues = get(a, "/queues").await;
    assert!(
        queues.body.contains("MiniPaaS is not installed"),
        "{}",
        queues.body
    );
    assert_eq!(get(a, "/api/streams").await.json()["installed"], false);
    assert_eq!(get(a, "/queues/mail").await.status, 404);
    assert_eq!(get(a, "/api/runs").await.json()["total"], 0);
}
