//! The live view of MiniPaaS: queues (depth, in flight, delayed, dead letters, oldest ready) and streams (events,
//! retention, consumer-group lag), on the package deployed with pgstrata.

use pgstrata_ops::inspect::{Check, Details, DurationSetting, Verdict};

use crate::support::{connect, deploy, eager, minipaas_dir, ran, run};

#[tokio::test]
async fn queues_with_dead_letters_and_a_lagging_stream_group_are_found() {
    let db = pgtest::TestDb::new().await;
    let mut pg = connect(&db).await;
    let project = pgstrata::Project::load(&[minipaas_dir()]).unwrap();
    deploy(&mut pg, &project).await.unwrap();

    let c = db.client().await;
    c.batch_execute(
        "SELECT minipaas.queue_create('mail', max_attempts => 1);
         SELECT minipaas.queue_enqueue('mail', jsonb_build_object('n', g)) FROM generate_series(1, 5) g;
         SELECT minipaas.queue_enqueue('mail', '{\"later\": true}', delay => '1 hour');
         SELECT minipaas.queue_create('quiet');",
    )
    .await
    .unwrap();
    // Two deliveries fail for good (one attempt allowed): dead letters. One more stays leased: in flight.
    for _ in 0..2 {
        let row = c
            .query_one(
                "SELECT id, lease_token FROM minipaas.queue_dequeue('mail')",
                &[],
            )
            .await
            .unwrap();
        let (id, token): (i64, i64) = (row.get(0), row.get(1));
        c.query(
            "SELECT * FROM minipaas.queue_nack($1, $2, 'smtp down')",
            &[&id, &token],
        )
        .await
        .unwrap();
    }
    c.query("SELECT * FROM minipaas.queue_dequeue('mail')", &[])
        .await
        .unwrap();
    // A stream of 10 events; group "billing" processed the first 4; group "audit" all of them.
    c.batch_execute(
        "SELECT minipaas.stream_create('orders', retention_age => '7 days');
         SELECT minipaas.stream_publish('orders', jsonb_build_object('n', g)) FROM generate_series(1, 10) g;",
    )
    .await
    .unwrap();
    // The groups' positions are set with stream_group_commit, from offsets read off the table (the test is
    // about what inspect reports, not about consuming).
    let offsets: Vec<i64> = c
        .query(
            "SELECT event_offset FROM minipaas.stream_events ORDER BY event_offset",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(offsets.len(), 10);
    c.execute(
        "SELECT minipaas.stream_group_commit('orders', 'billing', $1)",
        &[&offsets[3]],
    )
    .await
    .unwrap();
    c.execute(
        "SELECT minipaas.stream_group_commit('orders', 'audit', $1)",
        &[&offsets[9]],
    )
    .await
    .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;

    let mut settings = eager();
    settings.stream_lag_warning = DurationSetting(100);
    let report = run(&pg, &[Check::Queues, Check::Streams], &settings, None).await;

    let queues = ran(&report, Check::Queues);
    let Details::Queues(rows) = &queues.details else {
        panic!()
    };
    let mail = rows.iter().find(|q| q.name == "mail").expect("queue mail");
    assert_eq!(
        (mail.ready, mail.delayed, mail.in_flight, mail.dead),
        (2, 1, 1, 2),
        "{mail:?}"
    );
    assert!(mail.oldest_ready_age_s.unwrap() >= 0.0);
    let quiet = rows
        .iter()
        .find(|q| q.name == "quiet")
        .expect("queue quiet");
    assert_eq!(
        (quiet.ready, quiet.dead, quiet.oldest_ready_age_s),
        (0, 0, None)
    );
    assert_eq!(
        queues.verdict,
        Verdict::Warning,
        "two dead letters: {queues:?}"
    );
    assert!(
        queues.summary.contains("mail: 2 dead letter(s)"),
        "{}",
        queues.summary
    );

    let streams = ran(&report, Check::Streams);
    let Details::Streams(rows) = &streams.details else {
        panic!()
    };
    let orders = rows
        .iter()
        .find(|s| s.name == "orders")
        .expect("stream orders");
    assert_eq!(orders.events, 10);
    assert_eq!(orders.retention_age.as_deref(), Some("7 days"));
    let billing = orders
        .groups
        .iter()
        .find(|g| g.group == "billing")
        .expect("group billing");
    assert_eq!(billing.pending, 6, "{billing:?}");
    assert!(billing.oldest_pending_age_s.unwrap() >= 0.1);
    let audit = orders
        .groups
        .iter()
        .find(|g| g.group == "audit")
        .expect("group audit");
    assert_eq!((audit.pending, audit.oldest_pending_age_s), (0, None));
    assert_eq!(streams.verdict, Verdict::Warning, "{streams:?}");
    assert!(
        streams
            .summary
            .contains("orders/billing: 6 event(s) behind"),
        "{}",
        streams.summary
    );
    assert!(!streams.summary.contains("audit"), "{}", streams.summary);

    // With the default thresholds a few seconds of lag is fine; dead letters still warn.
    let report = run(
        &pg,
        &[Check::Queues, Check::Streams],
        &Default::default(),
        None,
    )
    .await;
    assert_eq!(ran(&report, Check::Streams).verdict, Verdict::Ok);
    assert_eq!(ran(&report, Check::Queues).verdict, Verdict::Warning);
}

#[tokio::test]
async fn without_minipaas_the_checks_say_so() {
    let db = pgtest::TestDb::new().await;
    let pg = connect(&db).await;
    let report = run(
        &pg,
        &[Check::Queues, Check::Streams, Check::Strata],
        &eager(),
        None,
    )
    .await;
    for check in [Check::Queues, Check::Streams] {
        match &report.get(check).unwrap().outcome {
            pgstrata_ops::inspect::CheckOutcome::Skipped { reason } => {
                assert!(reason.contains("MiniPaaS is not installed"), "{reason}")
            }
            other => panic!("{check}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn queues_messages_streams_and_events_are_browsed_a_page_at_a_time() {
    use pgstrata_ops::minipaas::{self, MessageState, Page};

    let db = pgtest::TestDb::new().await;
    let mut pg = connect(&db).await;
    assert!(!minipaas::installed(pg.client()).await.unwrap());
    let project = pgstrata::Project::load(&[minipaas_dir()]).unwrap();
    deploy(&mut pg, &project).await.unwrap();
    assert!(minipaas::installed(pg.client()).await.unwrap());
    let c = db.client().await;
    c.batch_execute(
        "SELECT minipaas.queue_create(format('q%s', g)) FROM generate_series(1, 5) g;
         SELECT minipaas.queue_create('mail', max_attempts => 1);
         SELECT minipaas.queue_enqueue('mail', jsonb_build_object('text', repeat('x', 100), 'n', g)) FROM generate_series(1, 4) g;
         SELECT minipaas.stream_publish('orders', jsonb_build_object('n', g)) FROM generate_series(1, 7) g;",
    )
    .await
    .unwrap();
    let row = c
        .query_one(
            "SELECT id, lease_token FROM minipaas.queue_dequeue('mail')",
            &[],
        )
        .await
        .unwrap();
    let (dead_id, token): (i64, i64) = (row.get(0), row.get(1));
    c.query(
        "SELECT * FROM minipaas.queue_nack($1, $2, 'smtp down')",
        &[&dead_id, &token],
    )
    .await
    .unwrap();

    let (page, total) = minipaas::queues(pg.client(), "q", Page::numbered(2, 2))
        .await
        .unwrap();
    assert_eq!(total, 5, "q1..q5 match `q`");
    assert_eq!(
        page.iter().map(|q| q.name.as_str()).collect::<Vec<_>>(),
        ["q3", "q4"]
    );
    let mail = minipaas::queue(pg.client(), "mail")
        .await
        .unwrap()
        .expect("mail");
    assert_eq!((mail.ready, mail.dead), (3, 1));
    assert!(
        minipaas::queue(pg.client(), "nope")
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(minipaas::all_queues(pg.client()).await.unwrap().len(), 6);

    let dead = minipaas::messages(
        pg.client(),
        "mail",
        MessageState::Dead,
        Page::numbered(1, 10),
        20,
    )
    .await
    .unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].id, dead_id);
    assert_eq!(
        dead[0].payload_preview.chars().count(),
        20,
        "cut to the preview"
    );
    assert!(dead[0].payload_bytes > 100);
    assert!(
        dead[0]
            .errors
            .as_ref()
            .is_some_and(|e| e.to_string().contains("smtp down"))
    );
    let ready = minipaas::messages(
        pg.client(),
        "mail",
        MessageState::Ready,
        Page::numbered(2, 2),
        200,
    )
    .await
    .unwrap();
    assert_eq!(ready.len(), 1, "3 ready, page 2 of 2");

    let (streams, total) = minipaas::streams(pg.client(), "", Page::numbered(1, 10))
        .await
        .unwrap();
    assert_eq!((streams.len(), total), (1, 1));
    assert_eq!(streams[0].events, 7);
    let events = minipaas::events(pg.client(), "orders", Page::numbered(1, 5), 200)
        .await
        .unwrap();
    assert_eq!(events.len(), 5);
    assert!(events[0].offset > events[4].offset, "newest first");
    assert!(
        minipaas::messages_enqueued(pg.client())
            .await
            .unwrap()
            .is_some_and(|n| n >= 4)
    );
}
