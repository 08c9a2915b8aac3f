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

/// A loopback listener that accepts connections and never answers (a hung server, a firewall that swallows
/// packets after the handshake); accepted connections are kept open for the listener's lifetime.
fn silent_server() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a local port");
    let port = listener.local_addr().expect("its address").port();
    std::thread::spawn(move || {
        let mut open = Vec::new();
        for socket in listener.incoming() {
            open.push(socket);
        }
    });
    port
}

/// issue 19.1: `connect_timeout` and `PGCONNECT_TIMEOUT` bound the whole connection set-up; the error names the
/// server and the timeout, never the password.
#[test]
fn a_server_that_never_answers_times_out() {
    let port = silent_server();
    let pkg = Pkg::new("acme/hang", "hang");
    let url = format!("postgresql://deployer:hush-hush@127.0.0.1:{port}/app");
    let mut in_url = strata();
    in_url.args(["status", "-d", &format!("{url}?connect_timeout=2")]);
    let mut in_env = strata();
    in_env
        .env("PGCONNECT_TIMEOUT", "2")
        .env("DATABASE_URL", &url)
        .args(["--json", "status"]);
    for (name, mut cmd) in [
        ("connect_timeout in the URL", in_url),
        ("PGCONNECT_TIMEOUT", in_env),
    ] {
        let started = std::time::Instant::now();
        // The outer limit only keeps a regression from hanging the test run.
        let output = cmd
            .current_dir(pkg.root())
            .timeout(std::time::Duration::from_secs(20))
            .output()
            .expect("strata gives up by itself");
        let took = started.elapsed();
        let run = Run::of(output).expect_code(2);
        assert!(
            (std::time::Duration::from_secs(2)..std::time::Duration::from_secs(10)).contains(&took),
            "{name}: {took:?}"
        );
        assert!(
            run.says(&format!(
                "127.0.0.1:{port} did not complete the connection set-up"
            )),
            "{name}: {}{}",
            run.stdout,
            run.stderr
        );
        assert!(
            run.says("within 2s (connect_timeout"),
            "{name}: {}",
            run.stderr
        );
        assert!(
            !run.stdout.contains("hush") && !run.stderr.contains("hush"),
            "{name}: the password was printed"
        );
    }
}

/// issue 16.5: the user's `application_name` (URL, PGAPPNAME) is what the server sees; without one, Strata names
/// itself.
#[test]
fn the_users_application_name_is_kept() {
    let mut pkg = Pkg::new("acme/appname", "appname");
    pkg.add(
        "0001_seen.sql",
        "CREATE TABLE seen AS SELECT current_setting('application_name') AS name;\n",
    );
    let seen = |db: &Db| db.value::<String>("SELECT name FROM appname.seen");

    let in_url = Db::new();
    let url = in_url.url();
    let separator = if url.contains('?') { '&' } else { '?' };
    run(strata().current_dir(pkg.root()).args([
        "-d",
        &format!("{url}{separator}application_name=billing-deploy"),
        "up",
    ]))
    .ok();
    assert_eq!(seen(&in_url), "billing-deploy");

    let in_env = Db::new();
    run(strata()
        .current_dir(pkg.root())
        .env("PGAPPNAME", "nightly deploy")
        .args(["-d", &in_env.url(), "up"]))
    .ok();
    assert_eq!(seen(&in_env), "nightly deploy");

    let unnamed = Db::new();
    run(strata()
        .current_dir(pkg.root())
        .args(["-d", &unnamed.url(), "up"]))
    .ok();
    assert!(seen(&unnamed).starts_with("strata "), "{}", seen(&unnamed));
}
