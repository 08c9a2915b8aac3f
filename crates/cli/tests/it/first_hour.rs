//! What a newcomer meets in the first hour: a login without CREATEROLE, a typo in strata.toml, no database at all,
//! `strata log`, and a rollback that pulls a table from under a managed function.

use crate::support::*;

/// A database owner without CREATEROLE is refused before anything changes, told what is missing and the two ways
/// out; with `[security] package_role = false` the same login deploys.
#[test]
fn a_database_owner_without_createrole_is_told_what_is_missing_before_anything_runs() {
    let db = Db::new();
    // Roles belong to the cluster, which the tests of this process share: a name unique to this database.
    let login = format!("owner_{}", db.name());
    db.exec(&format!(
        "CREATE ROLE {login} LOGIN NOCREATEROLE; ALTER DATABASE {} OWNER TO {login};",
        db.name()
    ));
    let url = db.url().replacen("postgres@", &format!("{login}@"), 1);
    let mut pkg = Pkg::new(&format!("acme/owned-{}", db.name()), "owned");
    pkg.add("0001_t.sql", "CREATE TABLE owned.t (id int);\n");

    let refused = run(strata().current_dir(pkg.root()).args(["up", "-d", &url])).expect_code(1);
    assert!(
        refused.says(&format!(
            "the deploying login \"{login}\" lacks privileges that package roles need; nothing was changed"
        )),
        "{}",
        refused.stderr
    );
    assert!(
        refused.says("cannot create its role \"$acme/owned-")
            && refused.says("the login has no CREATEROLE"),
        "{}",
        refused.stderr
    );
    assert!(
        refused.says(&format!("ALTER ROLE \"{login}\" CREATEROLE;")),
        "{}",
        refused.stderr
    );
    assert!(
        refused.says("set `package_role = false` under [security]"),
        "{}",
        refused.stderr
    );
    // Nothing ran: not even Strata's own history was created.
    assert!(!db.has("strata.migration"));
    let schema: Option<String> = db.value("SELECT to_regnamespace('owned')::text");
    assert_eq!(schema, None);

    // The second way out.
    pkg.extra = "[security]\npackage_role = false\n".into();
    pkg.write_manifest();
    run(strata().current_dir(pkg.root()).args(["up", "-d", &url])).ok();
    let owner: String = db.value(
        "SELECT pg_get_userbyid(relowner)::text FROM pg_class WHERE oid = 'owned.t'::regclass",
    );
    assert_eq!(owner, login);
}

/// A strata.toml that does not load stops the command before it starts: exit 2 (as README's exit codes say), and
/// the JSON error says where, as for SQL errors.
#[test]
fn a_bad_manifest_exits_2_and_its_json_error_has_file_and_line() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/typo", "typo");
    pkg.add("0001_t.sql", "CREATE TABLE typo.t (id int);\n");
    pkg.extra = "[deploy]\nlock_timeout = \"5s\"\nlock_timout = \"1s\"\n".into();
    pkg.write_manifest();
    for command in ["up", "status", "plan"] {
        let r = pkg.run(&db, &[command]).expect_code(2);
        assert!(
            r.says("unknown field `lock_timout`"),
            "{command}: {}",
            r.stderr
        );
    }
    let json = pkg.run(&db, &["--json", "up"]).expect_code(2).json();
    let error = &json["error"];
    assert_eq!(error["code"], "strata::manifest");
    assert!(
        error["file"].as_str().unwrap().ends_with("strata.toml"),
        "{error}"
    );
    assert_eq!(error["line"], 8, "{error}");
    assert_eq!(error["column"], 1, "{error}");
    assert!(
        error["help"]
            .as_str()
            .unwrap()
            .contains("strata init --help"),
        "{error}"
    );
    // A SQL error still exits 1: the command ran, and the migration failed.
    pkg.extra.clear();
    pkg.write_manifest();
    pkg.add("0002_bad.sql", "SELECT 1/0;\n");
    pkg.run(&db, &["up"]).expect_code(1);
}

/// No -d, no DATABASE_URL, no --embedded, and nothing listening: the error says how to name a database.
#[test]
fn without_a_database_the_error_suggests_embedded_or_database_url() {
    let nowhere = tempfile::tempdir().unwrap();
    let mut pkg = Pkg::new("acme/nodb", "nodb");
    pkg.add("0001_t.sql", "CREATE TABLE nodb.t (id int);\n");
    let r = run(strata()
        .current_dir(pkg.root())
        .env("PGHOST", nowhere.path())
        .arg("status"))
    .expect_code(2);
    assert!(r.says("could not connect"), "{}", r.stderr);
    assert!(
        r.says("give one with -d/--database-url or DATABASE_URL") && r.says("add --embedded"),
        "{}",
        r.stderr
    );
    let json = run(strata()
        .current_dir(pkg.root())
        .env("PGHOST", nowhere.path())
        .args(["--json", "status"]))
    .expect_code(2)
    .json();
    assert!(
        json["error"]["help"]
            .as_str()
            .unwrap()
            .contains("--embedded"),
        "{json}"
    );
}

/// `strata log` reads like a log: what changed per package, no JSON, no negative durations.
#[test]
fn log_shows_what_each_run_changed() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/logged", "logged");
    pkg.add("0001_t.sql", "CREATE TABLE logged.t (id int);\n");
    pkg.run(&db, &["up"]).ok();
    // Nothing to do: a run that takes no time.
    pkg.run(&db, &["up"]).ok();
    let log = pkg.run(&db, &["log"]).ok();
    assert!(!log.stdout.contains('{'), "{}", log.stdout);
    assert!(!log.stdout.contains("-0.0"), "{}", log.stdout);
    assert!(
        log.says("acme/logged: (nothing) → 0001_t"),
        "{}",
        log.stdout
    );
    let lines: Vec<&str> = log.stdout.lines().collect();
    assert!(
        lines[0].starts_with("#2") && lines[0].contains("noop"),
        "{}",
        log.stdout
    );
    assert!(
        !lines[1].starts_with(' '),
        "a noop changes nothing:\n{}",
        log.stdout
    );
}

/// `down` that drops a table a managed SQL function reads: the function is reported broken by `down` and by
/// `status` (which no longer says "in sync"), and `up` puts things right.
#[test]
fn down_reports_managed_code_it_broke_and_status_agrees() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/broken", "broken");
    pkg.add(
        "0001_invoice.sql",
        "-- migrate:up\nCREATE TABLE invoice (id int, amount numeric);\n-- migrate:down\nDROP TABLE invoice;\n",
    );
    pkg.write(
        "code/api.sql",
        "CREATE FUNCTION total() RETURNS numeric LANGUAGE sql AS 'SELECT sum(amount) FROM invoice';\n",
    );
    pkg.run(&db, &["up"]).ok();
    let status = pkg.run(&db, &["status", "--exit-code"]).ok();
    assert!(status.says("1 in sync"), "{}", status.stdout);

    let down = pkg.run(&db, &["down"]).ok();
    assert!(
        down.says("the rollback broke 1 managed routine(s)"),
        "{}",
        down.stderr
    );
    assert!(
        down.says("function broken.total()  code/api.sql:1  (relation \"invoice\" does not exist)"),
        "{}",
        down.stderr
    );
    let json = pkg.run(&db, &["--json", "down", "--dry-run"]).ok().json();
    assert_eq!(
        json["broken"],
        serde_json::json!([]),
        "nothing to roll back"
    );

    let status = pkg.run(&db, &["status", "--exit-code"]).expect_code(1);
    assert!(status.says("0 in sync, 1 broken"), "{}", status.stdout);
    assert!(
        status.says("broken   function broken.total()"),
        "{}",
        status.stdout
    );
    let json = pkg.run(&db, &["--json", "status"]).ok().json();
    let object = &json["code"][0]["objects"][0];
    assert_eq!(object["state"], "broken", "{json}");
    assert_eq!(
        object["error"], "relation \"invoice\" does not exist",
        "{json}"
    );

    pkg.run(&db, &["up"]).ok();
    let status = pkg.run(&db, &["status", "--exit-code"]).ok();
    assert!(status.says("1 in sync"), "{}", status.stdout);
}

/// Shell completions and the manual page come from the same definition as the help.
#[test]
fn completions_and_the_manual_page() {
    for (shell, marker) in [
        ("bash", "_strata()"),
        ("zsh", "#compdef strata"),
        ("fish", "complete -c strata"),
    ] {
        let r = run(strata().args(["completions", shell])).ok();
        assert!(r.stdout.contains(marker), "{shell}:\n{}", r.stdout);
        assert!(
            r.stdout.contains("dump-schema"),
            "{shell} knows every command"
        );
    }
    run(strata().args(["completions", "tcsh"])).expect_code(2);
    let page = run(strata().arg("man")).ok();
    assert!(page.stdout.contains(".TH strata 1"), "{}", page.stdout);
    assert!(
        page.stdout
            .contains("PostgreSQL migrations and SQL packages")
    );
    let dir = tempfile::tempdir().unwrap();
    run(strata().args(["man", "--dir"]).arg(dir.path())).ok();
    for page in ["strata.1", "strata-up.1", "strata-dev-url.1"] {
        assert!(dir.path().join(page).is_file(), "{page}");
    }
}
