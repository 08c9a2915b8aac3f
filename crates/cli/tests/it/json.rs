//! `--json`: one JSON document on stdout per command, with the documented fields.

use crate::support::{Db, Pkg};

fn pkg() -> Pkg {
    let mut pkg = Pkg::new("acme/json", "json");
    pkg.add(
        "0001_a.sql",
        "-- migrate:up\nCREATE TABLE a (id int);\nDO $$ BEGIN RAISE NOTICE 'made a'; END $$;\n-- migrate:down\nDROP TABLE a;\n",
    );
    pkg.add("0002_b.sql", "CREATE TABLE b (id int);\n");
    pkg.write("migrations/0002_b.down.sql", "DROP TABLE b;\n");
    pkg
}

#[test]
fn plan_up_status_down_and_log_as_json() {
    let db = Db::new();
    let pkg = pkg();

    let plan = pkg.run(&db, &["--json", "plan"]).ok().json();
    for key in [
        "target",
        "packages",
        "steps",
        "segments",
        "changed",
        "out_of_order",
        "missing",
    ] {
        assert!(plan.get(key).is_some(), "plan has `{key}`: {plan}");
    }
    snap_json!("json_plan", plan);

    let up = pkg.run(&db, &["--json", "up"]).ok().json();
    assert_eq!(up["outcome"], "applied");
    // After Strata's own migrations.
    let own = crate::support::strata_schema_migrations();
    assert_eq!(up["migrations"][own]["notices"][0]["message"], "made a");
    snap_json!("json_up", up);

    let noop = pkg.run(&db, &["--json", "up"]).ok().json();
    assert_eq!(noop["outcome"], "noop");
    assert_eq!(noop["migrations"], serde_json::json!([]));

    let status = pkg.run(&db, &["--json", "status"]).ok().json();
    assert_eq!(status["packages"][1]["migrations"][0]["state"], "applied");
    assert_eq!(status["last_run"]["outcome"], "noop");
    snap_json!("json_status", status);

    let down = pkg
        .run(&db, &["--json", "down", "--steps", "2"])
        .ok()
        .json();
    assert_eq!(down["outcome"], "applied");
    snap_json!("json_down", down);

    let log = pkg.run(&db, &["--json", "log"]).ok().json();
    let commands: Vec<(&str, &str)> = log
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["command"].as_str().unwrap(),
                r["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        commands,
        [("down", "success"), ("up", "noop"), ("up", "success")]
    );
}

#[test]
fn refusals_are_json_errors_too() {
    let db = Db::new();
    let pkg = pkg();
    pkg.run(&db, &["up"]).ok();
    pkg.write("migrations/0002_b.sql", "CREATE TABLE b (id bigint);\n");
    let changed = pkg.run(&db, &["--json", "up"]).expect_code(1).json();
    assert_eq!(changed["error"]["code"], "strata::changed");
    assert_eq!(changed["error"]["changed"][0]["name"], "0002_b");
    snap_json!("json_changed_error", changed);
}

/// issue 19.3: `strata … | head`. A closed stdout (or stderr) ends the program quietly with 141 (128 + SIGPIPE, the
/// status a shell reports for `grep` or `cat` in the same spot), for human output and `--json` alike; before, every
/// command panicked with "failed printing to stdout: Broken pipe" and exit 101.
#[test]
fn a_closed_output_pipe_ends_quietly() {
    let db = Db::new();
    let pkg = pkg();
    crate::support::run(crate::support::strata().current_dir(pkg.root()).args([
        "-d",
        &db.url(),
        "up",
    ]))
    .ok();
    let url = db.url();
    let dead = format!(
        "postgresql://nobody@127.0.0.1:{}/x",
        crate::support::dead_port()
    );
    let commands: [&[&str]; 8] = [
        &["-d", &url, "status"],
        &["-d", &url, "--json", "status"],
        &["-d", &url, "plan"],
        &["-d", &url, "--json", "plan"],
        &["-d", &url, "log"],
        &["-d", &url, "--json", "log"],
        &["lint", "--all"],
        // The error goes to stdout as JSON.
        &["-d", &dead, "--json", "status"],
    ];
    for args in commands {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let output = crate::support::strata_process()
            .current_dir(pkg.root())
            .args(args)
            .stdout(writer)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(141), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
            "{args:?}: {stderr}"
        );
    }
    // A closed stderr, where diagnostics go: the same.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let output = crate::support::strata_process()
        .current_dir(pkg.root())
        .args(["-d", &dead, "status"])
        .stderr(writer)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(141));
}
