//! `strata up` and `strata status` over fleets: the summary names what failed and how to resume, `--json` has one
//! record per target, exit codes; `strata` killed in the middle of a fleet, then resumed; tenant schemas; mistakes
//! in the targets file.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{Db, Pkg, run, strata, strata_process};

/// `n` databases and a targets file naming them `db-1` … `db-n`, in `dir`.
fn fleet(n: usize, dir: &Path) -> Vec<Db> {
    let dbs: Vec<Db> = (0..n).map(|_| Db::new()).collect();
    let mut text = String::new();
    for (i, db) in dbs.iter().enumerate() {
        text.push_str(&format!(
            "[[target]]\nname = \"db-{}\"\nurl = \"{}\"\n{}\n",
            i + 1,
            db.url(),
            if i == 0 { "tags = [\"first\"]" } else { "" }
        ));
    }
    std::fs::write(dir.join("targets.toml"), text).unwrap();
    dbs
}

fn package() -> Pkg {
    let mut pkg = Pkg::new("acme/app", "app");
    pkg.add("0001_t.sql", "CREATE TABLE t (id int);\n");
    pkg.add(
        "0002_copy.sql",
        "-- every database's settings row becomes the package's\nINSERT INTO t SELECT id FROM public.settings;\nALTER TABLE t ALTER COLUMN id SET NOT NULL;\n",
    );
    pkg.extra = "[security]\npackage_role = false\n".into();
    pkg.write_manifest();
    pkg
}

#[test]
fn the_summary_names_the_failing_target_and_how_to_resume() {
    let pkg = package();
    let dbs = fleet(4, pkg.root());
    for db in &dbs {
        db.exec("CREATE TABLE public.settings (id int); INSERT INTO public.settings VALUES (1);");
    }
    dbs[2].exec("INSERT INTO public.settings VALUES (NULL)");
    let up = |extra: &[&str]| {
        let mut cmd = strata();
        cmd.current_dir(pkg.root())
            .args(["up", "--targets", "targets.toml", "--jobs", "2"])
            .args(extra);
        run(&mut cmd)
    };
    let r = up(&["--on-failure", "continue"]).expect_code(1);
    assert!(r.says("db-3"), "{}", r.stdout);
    assert!(r.says("failed"));
    assert!(
        r.says("acme/app:0002_copy (migrations/0002_copy.sql:3:1)"),
        "{}",
        r.stdout
    );
    assert!(r.says("[23502]"));
    assert!(r.says("3 succeeded (3 changed), 1 failed"), "{}", r.stdout);
    assert!(
        r.says("strata up --targets targets.toml --resume "),
        "{}",
        r.stdout
    );
    assert_eq!(dbs[0].applied().len(), 2);
    assert!(dbs[2].applied().is_empty());

    // Status: the failing one is pending; --exit-code says something is.
    let r = run(strata().current_dir(pkg.root()).args([
        "status",
        "--targets",
        "targets.toml",
        "--exit-code",
    ]))
    .expect_code(1);
    assert!(r.says("db-3"));
    assert!(r.says("pending"));
    assert!(r.says("3 up-to-date"), "{}", r.stdout);

    // --json: one record per target; --only narrows the targets to a tag.
    dbs[2].exec("DELETE FROM public.settings WHERE id IS NULL");
    let r = up(&["--json", "--only", "first", "--exclude", "db-2"]).ok();
    let json = r.json();
    let targets = json["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0]["target"], "db-1");
    assert_eq!(targets[0]["state"], "succeeded");
    assert_eq!(targets[0]["migrations"].as_array().unwrap().len(), 0);
    let r = up(&["--json"]).ok();
    let json = r.json();
    let states: Vec<(&str, &str, usize)> = json["targets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["target"].as_str().unwrap(),
                t["state"].as_str().unwrap(),
                t["migrations"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("db-1", "succeeded", 0),
            ("db-2", "succeeded", 0),
            // Strata's own tables and the package's two migrations.
            (
                "db-3",
                "succeeded",
                crate::support::strata_schema_migrations() + 2
            ),
            ("db-4", "succeeded", 0),
        ]
    );
    assert_eq!(json["counts"]["changed"], 1);
}

#[test]
fn killed_in_the_middle_of_a_fleet_then_resumed() {
    let mut pkg = Pkg::new("acme/slow", "slow");
    pkg.add("0001_a.sql", "CREATE TABLE a (id int);\n");
    pkg.add(
        "0002_slow.sql",
        "INSERT INTO a SELECT g FROM generate_series(1, 100) g;\nSELECT pg_sleep(0.3);\n",
    );
    pkg.add("0003_b.sql", "CREATE TABLE b (id int);\n");
    let dbs = fleet(24, pkg.root());
    let state = pkg.root().join("state");
    let mut child = strata_process()
        .current_dir(pkg.root())
        .args(["up", "--targets", "targets.toml", "--jobs", "3"])
        .arg("--state-dir")
        .arg(&state)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once a few targets are done (others are in the middle of their deploys).
    let started = Instant::now();
    let file = loop {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "the fleet never got going"
        );
        std::thread::sleep(Duration::from_millis(50));
        let Some(file) = std::fs::read_dir(&state)
            .ok()
            .and_then(|mut d| d.next())
            .and_then(Result::ok)
            .map(|e| e.path())
        else {
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap_or_default();
        if text.matches("\"state\":\"succeeded\"").count() >= 4 {
            break file;
        }
    };
    child.kill().unwrap();
    child.wait().unwrap();
    let run_id = file.file_stem().unwrap().to_string_lossy().to_string();
    let done = dbs.iter().filter(|d| d.applied().len() == 3).count();
    assert!(done < dbs.len(), "the fleet finished before it was killed");
    // What was killed in the middle left nothing half-applied.
    for d in &dbs {
        assert!(matches!(d.applied().len(), 0 | 3), "{:?}", d.applied());
    }

    let r = run(strata()
        .current_dir(pkg.root())
        .args([
            "up",
            "--targets",
            "targets.toml",
            "--jobs",
            "4",
            "--resume",
            &run_id,
        ])
        .arg("--state-dir")
        .arg(&state))
    .ok();
    assert!(r.says("succeeded in earlier attempts"), "{}", r.stdout);
    for d in &dbs {
        assert_eq!(
            d.applied(),
            [
                "acme/slow:0001_a",
                "acme/slow:0002_slow",
                "acme/slow:0003_b"
            ]
        );
        assert_eq!(d.value::<i64>("SELECT count(*) FROM slow.a"), 100);
    }
    // The record agrees: resuming again has nothing left to do.
    let r = run(strata()
        .current_dir(pkg.root())
        .args([
            "--json",
            "up",
            "--targets",
            "targets.toml",
            "--resume",
            &run_id,
        ])
        .arg("--state-dir")
        .arg(&state))
    .ok();
    let json = r.json();
    assert_eq!(json["counts"]["earlier"], 24);
    assert_eq!(json["targets"].as_array().unwrap().len(), 0);
    assert_eq!(json["attempt"], 3);
}

#[test]
fn tenant_schemas_from_the_cli() {
    let db = Db::new();
    db.exec("CREATE SCHEMA tenant_a; CREATE SCHEMA tenant_b; CREATE SCHEMA unrelated;");
    let mut pkg = Pkg::new("acme/shop", "shop");
    pkg.add("0001_orders.sql", "CREATE TABLE orders (id int);\n");
    let r = pkg
        .run(
            &db,
            &[
                "up",
                "--tenant-schemas",
                "tenant_%",
                "--new-tenant",
                "tenant_c",
            ],
        )
        .ok();
    assert!(r.says("tenant_c"), "{}", r.stdout);
    assert!(r.says("3 succeeded (3 changed)"), "{}", r.stdout);
    assert!(db.has("tenant_c.orders") && db.has("tenant_a.orders") && !db.has("unrelated.orders"));
    pkg.add(
        "0002_total.sql",
        "ALTER TABLE orders ADD COLUMN total int;\n",
    );
    let r = pkg
        .run(&db, &["status", "--tenant-schemas", "tenant_%"])
        .ok();
    assert!(r.says("3 pending"), "{}", r.stdout);
    pkg.run(
        &db,
        &[
            "up",
            "--tenant-schemas",
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant%'",
        ],
    )
    .ok();
    assert!(db.has_column("tenant_b.orders", "total"));
    assert_eq!(
        db.column::<String>("SELECT schema_name FROM strata.run WHERE schema_name IS NOT NULL ORDER BY id DESC LIMIT 3")
            .len(),
        3
    );
}

#[test]
fn mistakes_in_the_targets_are_usage_errors() {
    let pkg = Pkg::new("acme/app", "app");
    pkg.write(
        "targets.toml",
        "[[target]]\nname = \"a\"\nurl = \"postgresql:///a\"\npassword = \"hunter2\"\n",
    );
    let r = run(strata()
        .current_dir(pkg.root())
        .args(["up", "--targets", "targets.toml"]))
    .expect_code(2);
    assert!(
        r.says("passwords do not belong in the targets file"),
        "{}",
        r.stderr
    );
    assert!(r.says("targets.toml:4:1"), "{}", r.stderr);
    assert!(!r.stderr.contains("hunter2"), "{}", r.stderr);
    pkg.write(
        "targets.toml",
        "[[target]]\nname = \"a\"\nurl = \"postgresql:///a\"\n",
    );
    let r = run(strata().current_dir(pkg.root()).args([
        "up",
        "--targets",
        "targets.toml",
        "--only",
        "nope",
    ]))
    .expect_code(2);
    assert!(
        r.says("--only nope: no target has that name, group or tag"),
        "{}",
        r.stderr
    );
    let r = run(strata().current_dir(pkg.root()).args(["up", "--only", "x"])).expect_code(2);
    assert!(r.says("--targets"), "{}", r.stderr);
}
