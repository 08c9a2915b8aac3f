//! Connecting: `--database-url`, libpq's PG* variables, `strata wait`, `strata db create|drop`, and passwords that
//! never reach the output.

use crate::support::{Db, Pkg, Run, dead_port, run, strata};

#[test]
fn pg_variables_are_enough_to_connect() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/env", "env");
    pkg.add("0001_a.sql", "CREATE TABLE a (id int);\n");
    let vars: Vec<(String, String)> = db
        .env()
        .into_iter()
        .filter(|(k, _)| k != "DATABASE_URL")
        .collect();
    run(strata()
        .current_dir(pkg.root())
        .envs(vars.clone())
        .arg("up"))
    .ok();
    assert_eq!(db.applied(), ["acme/env:0001_a"]);

    // DATABASE_URL alone works too, and an explicit --database-url wins over the PG* variables.
    let status = run(strata()
        .current_dir(pkg.root())
        .env("DATABASE_URL", db.url())
        .args(["status", "--exit-code"]))
    .ok();
    assert!(status.says("1 applied, 0 pending"), "{}", status.stdout);
    let other = Db::new();
    run(strata()
        .current_dir(pkg.root())
        .envs(vars)
        .args(["--database-url", &other.url(), "up"]))
    .ok();
    assert_eq!(other.applied(), ["acme/env:0001_a"]);
}

#[test]
fn wait_returns_at_once_for_a_live_server_and_times_out_on_a_dead_port() {
    let db = Db::new();
    let live = run(strata().args(["--database-url", &db.url(), "wait", "--timeout", "30s"])).ok();
    assert!(live.says("accepts connections"), "{}", live.stdout);

    let url = format!("postgresql://nobody@127.0.0.1:{}/x", dead_port());
    let dead =
        run(strata().args(["--database-url", &url, "wait", "--timeout", "1s"])).expect_code(2);
    assert!(!dead.stderr.is_empty());
    let bad =
        run(strata().args(["--database-url", &url, "wait", "--timeout", "soon"])).expect_code(2);
    assert!(bad.says("--timeout"), "{}", bad.stderr);
}

#[test]
fn db_create_and_drop_are_idempotent() {
    let db = Db::new();
    let name = format!("{}_created", db.name());
    let url = pgtest::cluster_url(&name);
    let exists = || {
        db.value::<bool>(&format!(
            "SELECT EXISTS (SELECT FROM pg_database WHERE datname = '{name}')"
        ))
    };

    let created = run(strata().args(["--database-url", &url, "db", "create"])).ok();
    assert_eq!(created.stdout, format!("created database {name}\n"));
    assert!(exists());
    let again = run(strata().args(["--database-url", &url, "db", "create"])).ok();
    assert!(again.says("nothing to do"), "{}", again.stdout);

    // Connections to it do not stop the drop.
    let mut pkg = Pkg::new("acme/created", "created");
    pkg.add("0001_a.sql", "CREATE TABLE a (id int);\n");
    run(strata()
        .current_dir(pkg.root())
        .args(["--database-url", &url, "up"]))
    .ok();

    let dropped = run(strata().args(["--json", "--database-url", &url, "db", "drop"])).ok();
    assert_eq!(
        dropped.json(),
        serde_json::json!({ "database": name, "dropped": true })
    );
    assert!(!exists());
    let again = run(strata().args(["--database-url", &url, "db", "drop"])).ok();
    assert!(again.says("nothing to do"), "{}", again.stdout);
}

/// Every output of every run, for searching.
fn all_output(runs: &[Run]) -> String {
    runs.iter()
        .map(|r| format!("{}\n{}\n", r.stdout, r.stderr))
        .collect()
}

#[test]
fn the_password_never_appears_in_any_output() {
    let db = Db::new();
    // The test server trusts local connections, so any password is accepted: what matters is that it is in the
    // URL strata is given, and must not come back out.
    let password = "s3cret-Pa55word-never-printed";
    let role = format!("{}_deployer", db.name());
    db.exec(&format!(
        "CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'"
    ));
    let url = db.url().replacen(
        "postgresql://postgres@",
        &format!("postgresql://{role}:{password}@"),
        1,
    );
    assert!(
        url.contains(password),
        "the URL carries the password: {url}"
    );
    let missing_db = url.replacen(db.name(), "no_such_database", 1);
    let dead = format!("postgresql://{role}:{password}@127.0.0.1:{}/x", dead_port());

    let mut pkg = Pkg::new("acme/secret", "secret");
    pkg.add("0001_ok.sql", "CREATE TABLE a (id int);\n");
    pkg.add("0002_fails.sql", "SELECT 1/0;\n");
    let strata_in = |args: &[&str]| run(strata().current_dir(pkg.root()).args(args));

    let runs = vec![
        strata_in(&["--database-url", &url, "up", "--target", "0001_ok"]).ok(),
        strata_in(&["--database-url", &url, "up"]).expect_code(1),
        strata_in(&["-vv", "--database-url", &url, "up"]).expect_code(1),
        strata_in(&["--json", "--database-url", &url, "up"]).expect_code(1),
        strata_in(&["--database-url", &url, "plan"]).ok(),
        strata_in(&["--database-url", &url, "status"]).ok(),
        strata_in(&["--database-url", &url, "log"]).ok(),
        strata_in(&["--database-url", &missing_db, "up"]).expect_code(2),
        strata_in(&["-vv", "--database-url", &missing_db, "status"]).expect_code(2),
        strata_in(&["--database-url", &dead, "wait", "--timeout", "1s"]).expect_code(2),
        strata_in(&["--json", "--database-url", &dead, "up"]).expect_code(2),
        run(strata()
            .current_dir(pkg.root())
            .env("DATABASE_URL", &missing_db)
            .args(["-vv", "up"]))
        .expect_code(2),
        run(strata()
            .current_dir(pkg.root())
            .envs(db.env().into_iter().filter(|(k, _)| k != "DATABASE_URL"))
            .env("PGUSER", &role)
            .env("PGPASSWORD", password)
            .env("PGDATABASE", "no_such_database")
            .arg("up"))
        .expect_code(2),
    ];
    let text = all_output(&runs);
    assert!(
        text.contains(&role),
        "the runs did reach the server as {role}:\n{text}"
    );
    assert!(
        !text.contains(password),
        "the password was printed:\n{text}"
    );
    // The failed runs are recorded with the user, never with the password.
    let recorded: Vec<String> =
        db.column("SELECT concat_ws(' ', outcome, error, db_user) FROM strata.run ORDER BY id");
    assert!(recorded.len() >= 4, "{recorded:?}");
    assert!(
        recorded.iter().all(|r| !r.contains(password)),
        "{recorded:?}"
    );
}
