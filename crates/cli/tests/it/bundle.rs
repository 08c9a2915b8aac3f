//! `strata export --to dbmate --bundle`: the committed `minipaas-sql/` files are fresh, install MiniPaaS with plain
//! psql (twice, harmlessly), produce the schema `strata up` produces, and roll back the way dbmate runs down parts —
//! and with dbmate itself when it is installed.

use std::path::{Path, PathBuf};
use std::process::Command as Process;

use pgstrata_sql::migration::{self, Direction};
use tempfile::TempDir;

use crate::support::{Db, Pkg, run, strata};

const BUNDLE_FILES: [&str; 3] = ["tables.sql", "queues.sql", "streams.sql"];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn minipaas_package() -> PathBuf {
    repo_root().join("packages/minipaas")
}

/// A fresh bundle of packages/minipaas, in a temporary folder.
fn fresh_minipaas_bundle() -> (TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("minipaas-sql");
    let pkg = minipaas_package();
    run(strata()
        .args(["export", "--to", "dbmate", "--bundle", "-p"])
        .arg(&pkg)
        .arg(&out))
    .ok();
    (tmp, out)
}

fn tool(name: &str) -> PathBuf {
    pgtest::tool(name)
}

/// `psql -X -v ON_ERROR_STOP=1` against `db` with these arguments; panics on failure; returns stderr (notices).
#[track_caller]
fn psql(db: &Db, args: &[&str], dir: &Path) -> String {
    let out = Process::new(tool("psql"))
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1"])
        .args(args)
        .current_dir(dir)
        .envs(db.env())
        .output()
        .expect("psql runs");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "psql {args:?} failed:\n{stderr}\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(!stderr.contains("ERROR"), "psql {args:?}:\n{stderr}");
    stderr
}

/// Install the three files with three separate psql runs, as the issue's instructions do.
fn install_with_psql(db: &Db, dir: &Path) {
    for f in BUNDLE_FILES {
        psql(db, &["-f", f], dir);
    }
}

/// `pg_dump --schema-only --schema=minipaas`, without pg_dump's random `\restrict` key.
fn dump_minipaas(db: &Db) -> String {
    let out = Process::new(tool("pg_dump"))
        .args([
            "--schema-only",
            "--schema=minipaas",
            "--no-owner",
            "--no-privileges",
        ])
        .envs(db.env())
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Objects left in schema minipaas (relations, routines, types), plus the schema itself.
fn minipaas_objects(db: &Db) -> Vec<String> {
    db.column(
        "SELECT 'schema ' || nspname FROM pg_namespace WHERE nspname = 'minipaas'
         UNION ALL SELECT 'relation ' || relname FROM pg_class WHERE relnamespace = to_regnamespace('minipaas')
         UNION ALL SELECT 'routine ' || proname FROM pg_proc WHERE pronamespace = to_regnamespace('minipaas')
         UNION ALL SELECT 'type ' || typname FROM pg_type WHERE typnamespace = to_regnamespace('minipaas')
         ORDER BY 1",
    )
}

/// The text dbmate runs for a rollback: the down sections only.
fn down_part(text: &str) -> String {
    migration::parse(text)
        .unwrap()
        .iter()
        .filter(|s| s.direction == Direction::Down)
        .map(|s| s.text(text))
        .collect()
}

fn routines(db: &Db, like: &str) -> i64 {
    db.value(&format!(
        "SELECT count(*) FROM pg_proc WHERE pronamespace = to_regnamespace('minipaas') AND proname LIKE '{like}'"
    ))
}

#[test]
fn committed_minipaas_sql_is_fresh() {
    let (_tmp, fresh) = fresh_minipaas_bundle();
    let committed = repo_root().join("minipaas-sql");
    let mut names: Vec<String> = std::fs::read_dir(&fresh)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["queues.sql", "streams.sql", "tables.sql"]);
    for name in &names {
        let want = std::fs::read_to_string(fresh.join(name)).unwrap();
        let have = std::fs::read_to_string(committed.join(name)).unwrap_or_default();
        assert!(
            want == have,
            "minipaas-sql/{name} is stale: regenerate with\n  \
             cargo run -p strata-cli -- export --to dbmate --bundle -p packages/minipaas minipaas-sql"
        );
    }
}

#[test]
fn psql_installs_minipaas_and_a_second_run_is_harmless() {
    let db = Db::new();
    let dir = repo_root().join("minipaas-sql");
    install_with_psql(&db, &dir);

    // The issue's five calls, unqualified, with minipaas on the search path.
    db.exec("SET search_path = public, minipaas");
    let id: i64 =
        db.value(r#"SELECT queue_enqueue('my_queue', '{"task": "process-user", "id": 42}')"#);
    let leased: Vec<i64> = db.column("SELECT id FROM queue_dequeue('my_queue')");
    assert_eq!(leased, [id]);
    assert!(db.value::<bool>(&format!("SELECT queue_ack({id})")));
    assert!(
        db.column::<i64>("SELECT id FROM queue_dequeue('my_queue')")
            .is_empty()
    );
    let first: i64 =
        db.value(r#"SELECT stream_publish('activity_log', '{"event": "signup", "user": 12}')"#);
    let second: i64 =
        db.value(r#"SELECT stream_publish('activity_log', '{"event": "login", "user": 12}')"#);
    assert!(second > first);
    let consumed: Vec<i64> = db.column(&format!(
        "SELECT event_offset FROM stream_consume('activity_log', {first})"
    ));
    assert_eq!(consumed, [second]);

    // Data written before a second run is still there after it; the second run (one psql session for all three
    // files this time) reports no error, and the down parts it reads stay inert.
    let kept: i64 = db.value(r#"SELECT queue_enqueue('my_queue', '{"kept": true}')"#);
    let notices = psql(
        &db,
        &["-f", "tables.sql", "-f", "queues.sql", "-f", "streams.sql"],
        &dir,
    );
    assert!(
        notices.contains("already holds tables or types"),
        "{notices}"
    );
    let payload: String = db.value(&format!(
        "SELECT payload::text FROM minipaas.messages WHERE id = {kept}"
    ));
    assert_eq!(payload, r#"{"kept": true}"#);
    assert_eq!(
        db.column::<i64>("SELECT id FROM queue_dequeue('my_queue')"),
        [kept]
    );
    assert_eq!(
        db.column::<i64>("SELECT event_offset FROM stream_consume('activity_log', 0)"),
        [first, second]
    );
    // The session's search_path is left as it was.
    let path: String = db.value("SHOW search_path");
    assert_eq!(path, "public, minipaas");
}

#[test]
fn psql_install_has_the_schema_strata_up_creates() {
    let by_psql = Db::new();
    install_with_psql(&by_psql, &repo_root().join("minipaas-sql"));
    let by_strata = Db::new();
    run(by_strata
        .strata_in(&repo_root())
        .args(["up", "-p", "packages/minipaas"]))
    .ok();
    let (a, b) = (dump_minipaas(&by_psql), dump_minipaas(&by_strata));
    assert!(a.contains("CREATE FUNCTION minipaas.queue_enqueue("));
    if a != b {
        let gone: Vec<&str> = b.lines().filter(|l| !a.lines().any(|x| x == *l)).collect();
        let added: Vec<&str> = a.lines().filter(|l| !b.lines().any(|x| x == *l)).collect();
        panic!(
            "psql install differs from strata up\n--- only strata up:\n{gone:#?}\n--- only psql:\n{added:#?}"
        );
    }
}

#[test]
fn down_parts_run_as_dbmate_runs_them_remove_everything_in_reverse_order() {
    let db = Db::new();
    let dir = repo_root().join("minipaas-sql");
    install_with_psql(&db, &dir);
    assert!(routines(&db, "stream%") > 0 && routines(&db, "queue%") > 0);

    let tmp = tempfile::tempdir().unwrap();
    for f in BUNDLE_FILES.iter().rev() {
        let down = down_part(&std::fs::read_to_string(dir.join(f)).unwrap());
        assert!(!down.trim().is_empty(), "{f} has a down part");
        let path = tmp.path().join(format!("down_{f}"));
        std::fs::write(&path, down).unwrap();
        // A new session, one transaction: what `dbmate rollback` does.
        psql(&db, &["-1", "-f", path.to_str().unwrap()], tmp.path());
        match *f {
            "streams.sql" => {
                assert_eq!(routines(&db, "stream%"), 0, "streams.sql's down part");
                assert!(routines(&db, "queue%") > 0, "queues stay until their turn");
                assert!(db.has("minipaas.stream_events"));
            }
            "queues.sql" => {
                assert_eq!(routines(&db, "%"), 0, "queues.sql's down part");
                assert!(db.has("minipaas.messages"));
            }
            _ => {}
        }
    }
    assert_eq!(minipaas_objects(&db), Vec::<String>::new());
}

#[test]
fn dbmate_applies_and_rolls_back_the_bundle() {
    let Some(dbmate) = crate::support::dbmate() else {
        return;
    };
    let db = Db::new();
    let env: std::collections::HashMap<String, String> = db.env().into_iter().collect();
    let host = &env["PGHOST"];
    let url = if host.starts_with('/') {
        format!(
            "postgres://{}@/{}?socket={host}&port={}&sslmode=disable",
            env["PGUSER"],
            db.name(),
            env["PGPORT"]
        )
    } else {
        let password = env
            .get("PGPASSWORD")
            .map(|p| format!(":{p}"))
            .unwrap_or_default();
        format!(
            "postgres://{}{password}@{host}:{}/{}?sslmode=disable",
            env["PGUSER"],
            env["PGPORT"],
            db.name()
        )
    };
    let folder = tempfile::tempdir().unwrap();
    for (n, f) in BUNDLE_FILES.iter().enumerate() {
        std::fs::copy(
            repo_root().join("minipaas-sql").join(f),
            folder.path().join(format!("{:03}_minipaas_{f}", n + 1)),
        )
        .unwrap();
    }
    let dbmate_run = |command: &str| {
        let out = Process::new(&dbmate)
            .args(["--url", &url, "--migrations-dir"])
            .arg(folder.path())
            .args(["--no-dump-schema", command])
            .output()
            .expect("dbmate runs");
        assert!(
            out.status.success(),
            "dbmate {command}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    dbmate_run("up");
    let applied: Vec<String> = db.column("SELECT version FROM schema_migrations ORDER BY 1");
    assert_eq!(applied, ["001", "002", "003"]);
    let id: i64 = db.value("SELECT minipaas.queue_enqueue('q', '{}')");
    assert_eq!(
        db.column::<i64>("SELECT id FROM minipaas.queue_dequeue('q')"),
        [id]
    );
    for left in [2, 1, 0] {
        dbmate_run("rollback");
        let versions: Vec<String> = db.column("SELECT version FROM schema_migrations");
        assert_eq!(versions.len(), left);
    }
    assert_eq!(minipaas_objects(&db), Vec::<String>::new());
}

/// A small package whose bundle shows every part: migrations with down parts, a view, a trigger, overloads, and a
/// code file that needs another (so it comes after it although its name sorts first).
fn example_package() -> Pkg {
    let mut pkg = Pkg::new("github.com/acme/notes", "notes");
    pkg.add(
        "001_notes.sql",
        "-- migrate:up\nCREATE TABLE notes (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, body text NOT NULL,\n    \
         updated_at timestamptz);\n\n-- migrate:down\nDROP TABLE notes;\n",
    );
    pkg.add(
        "002_tags.sql",
        "CREATE TABLE tags (note_id bigint NOT NULL, tag text NOT NULL);\n",
    );
    pkg.write("migrations/002_tags.down.sql", "DROP TABLE tags;\n");
    pkg.write(
        "api.sql",
        "-- The public API.\nCREATE OR REPLACE VIEW recent AS SELECT id, notes.short(body) AS body FROM notes;\n\n\
         -- No OR REPLACE here: the bundle adds it, as strata up does.\n\
         CREATE FUNCTION add(body text) RETURNS bigint LANGUAGE sql\n    \
         AS $$ INSERT INTO notes.notes (body) VALUES ($1) RETURNING id $$;\n",
    );
    pkg.write(
        "core.sql",
        "CREATE OR REPLACE FUNCTION short(body text) RETURNS text LANGUAGE sql IMMUTABLE RETURN left(body, 20);\n\
         CREATE OR REPLACE FUNCTION short(body text, n integer) RETURNS text LANGUAGE sql IMMUTABLE\n    \
         RETURN left(body, n);\n\
         COMMENT ON FUNCTION short(text, integer) IS 'The first n characters.';\n\n\
         CREATE OR REPLACE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS $$\n\
         BEGIN\n    NEW.updated_at := now();\n    RETURN NEW;\nEND\n$$;\n\
         CREATE OR REPLACE TRIGGER touch BEFORE UPDATE ON notes FOR EACH ROW EXECUTE FUNCTION touch();\n",
    );
    pkg
}

#[test]
fn bundle_of_a_small_package() {
    let pkg = example_package();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("bundle");
    let export = || {
        run(strata()
            .current_dir(tmp.path())
            .args(["export", "--to", "dbmate", "--bundle", "-p"])
            .arg(pkg.root())
            .arg("bundle"))
        .ok()
    };
    let r = export();
    snap!("bundle_small_stdout", r.stdout);
    let names = ["tables.sql", "core.sql", "api.sql"];
    let all: String = names
        .iter()
        .map(|f| {
            format!(
                "===== {f}\n{}",
                std::fs::read_to_string(out.join(f)).unwrap()
            )
        })
        .collect();
    snap!("bundle_small_files", all);

    // It installs with psql, then again in one transaction per run as Flyway runs files (down parts included),
    // and the trigger and view work; the down parts remove it all.
    let db = Db::new();
    psql(&db, &["-f", names[0], "-f", names[1], "-f", names[2]], &out);
    for f in names {
        psql(&db, &["-1", "-f", f], &out);
    }
    db.exec(
        "INSERT INTO notes.notes (body) VALUES ('a note that is longer than twenty characters')",
    );
    db.exec("UPDATE notes.notes SET body = body || '!'");
    let row = db.row("SELECT r.body, (n.updated_at IS NOT NULL)::text FROM notes.recent r JOIN notes.notes n USING (id)");
    assert_eq!(
        row,
        [Some("a note that is longe".into()), Some("true".into())]
    );
    for f in names.iter().rev() {
        let down = down_part(&std::fs::read_to_string(out.join(f)).unwrap());
        let path = tmp.path().join(format!("down_{f}"));
        std::fs::write(&path, down).unwrap();
        psql(&db, &["-1", "-f", path.to_str().unwrap()], &out);
    }
    let left: Vec<String> = db.column(
        "SELECT nspname FROM pg_namespace WHERE nspname = 'notes'
         UNION ALL SELECT proname FROM pg_proc WHERE pronamespace = to_regnamespace('notes')",
    );
    assert_eq!(left, Vec::<String>::new());

    // Regenerating into the same folder replaces the bundle; a file the bundle no longer has goes.
    std::fs::remove_file(pkg.path("api.sql")).unwrap();
    for f in names {
        assert!(out.join(f).exists());
    }
    let r = export();
    assert!(r.says("no longer in the bundle"), "{}", r.stdout);
    let r = run(strata()
        .current_dir(tmp.path())
        .args(["--json", "export", "--to", "dbmate", "--bundle", "-p"])
        .arg(pkg.root())
        .arg("bundle"))
    .ok();
    let json = r.json();
    assert_eq!(json["bundle"]["package"], "github.com/acme/notes");
    assert_eq!(json["bundle"]["files"][1]["name"], "core.sql");
    assert_eq!(json["report"]["files"].as_array().unwrap().len(), 2);
    assert!(!out.join("api.sql").exists());
    assert!(out.join("core.sql").exists());
}

#[test]
fn bundle_refuses_what_it_cannot_express() {
    // A view before the function it calls: psql would fail on the file.
    let pkg = Pkg::new("github.com/acme/order", "ordering");
    pkg.write(
        "code.sql",
        "CREATE VIEW v AS SELECT f() AS x;\nCREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1;\n",
    );
    let r = run(strata()
        .current_dir(pkg.root())
        .args(["export", "--to", "dbmate", "--bundle", "out"]))
    .expect_code(1);
    snap!("bundle_refuses_late_definition", r.stderr);

    // Schema public: no schema of its own to recognise or drop.
    let mut public = Pkg::new("github.com/acme/app", "public");
    // A package role would take `public` over: refused unless the manifest says so.
    public.extra = "[security]\nadopt_schema = true\n".into();
    public.add("001_t.sql", "CREATE TABLE t (id int);\n");
    let r = run(strata()
        .current_dir(public.root())
        .args(["export", "--to", "dbmate", "--bundle", "out"]))
    .expect_code(1);
    assert!(r.says("needs a schema of its own"), "{}", r.stderr);

    // Only dbmate files.
    let r = run(strata()
        .current_dir(pkg.root())
        .args(["export", "--to", "flyway", "--bundle", "out"]))
    .expect_code(2);
    assert!(r.says("--bundle writes dbmate files"), "{}", r.stderr);

    // A folder with SQL files Strata did not generate is left alone.
    let ok = example_package();
    let tmp = tempfile::tempdir().unwrap();
    let mine = tmp.path().join("keep.sql");
    std::fs::write(&mine, "SELECT 1;\n").unwrap();
    let r = run(strata()
        .args(["export", "--to", "dbmate", "--bundle", "-p"])
        .arg(ok.root())
        .arg(tmp.path()))
    .expect_code(2);
    assert!(r.says("which Strata did not generate"), "{}", r.stderr);
    assert_eq!(std::fs::read_to_string(&mine).unwrap(), "SELECT 1;\n");
    assert!(!tmp.path().join("tables.sql").exists());
}
