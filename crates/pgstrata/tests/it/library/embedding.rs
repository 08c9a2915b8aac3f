//! The embedding example (`examples/embed.rs`), as a test: a package compiled into the binary with `include_dir!`,
//! deployed at start-up with load → plan → up, returning a structured report.

use include_dir::{Dir, include_dir};
use pgstrata::{Event, MigrationState, Outcome, Package, PlanOptions, Project, Quiet, UpOptions};
use pgtest::TestDb;

use crate::library::support::connect;

/// The same package the example embeds.
static BILLING: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/billing");

#[tokio::test]
async fn an_embedded_package_deploys_at_start_up() {
    let db = TestDb::new().await;
    let project = Project::new(vec![Package::embedded(&BILLING).unwrap()]).unwrap();
    let billing = &project.packages()[0];
    assert_eq!(billing.schema(), "billing");
    assert!(
        billing.migrations()[0]
            .up()
            .origin()
            .starts_with("<embedded>/migrations/"),
        "{}",
        billing.migrations()[0].up().origin()
    );
    let mut conn = connect(&db).await;

    let plan = pgstrata::plan(&conn, &project, &PlanOptions::default())
        .await
        .unwrap();
    let pending: Vec<&str> = plan.steps.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        pending,
        [
            "0001_history",
            "0002_managed",
            "0003_repeatable",
            "0004_managed_kinds",
            "0005_interrupted",
            "0006_tenant_schemas",
            "0001_customers",
            "0002_invoices",
            "0003_invoice_status",
            "0004_invoice_indexes"
        ]
    );

    let mut events = Vec::new();
    let mut observer = |e: Event<'_>| events.push(format!("{e:?}"));
    let report = pgstrata::up(&mut conn, &project, &UpOptions::default(), &mut observer)
        .await
        .unwrap();
    assert_eq!(report.outcome, Outcome::Applied);
    assert!(report.run_id.is_some());
    let ran: Vec<(&str, bool)> = report
        .migrations
        .iter()
        .map(|m| (m.name.as_str(), m.no_transaction))
        .collect();
    assert_eq!(
        ran,
        [
            ("0001_history", false),
            ("0002_managed", false),
            ("0003_repeatable", false),
            ("0004_managed_kinds", false),
            ("0005_interrupted", false),
            ("0006_tenant_schemas", false),
            ("0001_customers", false),
            ("0002_invoices", false),
            ("0003_invoice_status", false),
            ("0004_invoice_indexes", true)
        ]
    );
    let billing_transition = report
        .packages
        .iter()
        .find(|t| t.package == billing.name())
        .unwrap();
    assert_eq!(billing_transition.from, None);
    assert_eq!(
        billing_transition.to.as_deref(),
        Some("0004_invoice_indexes")
    );
    assert_eq!(billing_transition.count, 4);
    // Planned, then started/finished per migration, with a commit at each segment boundary.
    assert!(events[0].starts_with("Planned { total: 10 }"), "{events:?}");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.starts_with("MigrationFinished"))
            .count(),
        10
    );
    assert!(
        events.last().unwrap().starts_with("Committed"),
        "{events:?}"
    );

    // The application restarts: nothing to do, and the plan agrees.
    let again = pgstrata::up(&mut conn, &project, &UpOptions::default(), &mut Quiet)
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Noop);
    let plan = pgstrata::plan(&conn, &project, &PlanOptions::default())
        .await
        .unwrap();
    assert!(plan.is_empty());
    assert!(
        plan.packages
            .iter()
            .flat_map(|p| &p.migrations)
            .all(|m| m.state == MigrationState::Applied)
    );

    let client = db.client().await;
    let indexes: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_indexes WHERE schemaname = 'billing' AND indexname LIKE 'invoice_%_idx'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(indexes, 2);
}
