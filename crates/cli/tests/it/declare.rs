//! Declarative schema: `strata diff`, `strata generate`, `strata schema check` through the binary. Shadow databases
//! live on the test server (`--shadow-url`), never on a dev cluster.

use crate::support::{Db, Pkg, run, strata};

fn shadow_url() -> String {
    pgtest::cluster_url("postgres")
}

/// A package with one migration and a declared schema that adds to it.
fn package() -> Pkg {
    let mut pkg = Pkg::new("github.com/acme/shop", "shop");
    pkg.add(
        "0001_init.sql",
        "-- migrate:up\nCREATE TABLE customer (id bigint PRIMARY KEY, full_name text);\n\
         -- migrate:down\nDROP TABLE customer;\n",
    );
    // Declared files live in the package: the marker keeps them out of managed code.
    pkg.write(
        "schema/tables.sql",
        "-- strata:ignore (declared schema)\n\
         -- strata:renamed-from customer\n\
         CREATE TABLE client (\n\
           id bigint PRIMARY KEY,\n\
           -- strata:renamed-from full_name\n\
           name text NOT NULL DEFAULT '',\n\
           status shop.status NOT NULL DEFAULT 'new'\n\
         );\n\
         CREATE INDEX client_name ON client (name);\n",
    );
    pkg.write(
        "schema/types.sql",
        "-- strata:ignore\nCREATE TYPE status AS ENUM ('new', 'active');\n",
    );
    pkg
}

#[test]
fn generate_writes_a_proven_migration_that_deploys_and_rolls_back() {
    let db = Db::new();
    let pkg = package();
    run(pkg.strata(&db).arg("up")).ok();
    db.exec("INSERT INTO shop.customer VALUES (1, 'Ann')");

    // Out of sync: check exits 1 and prints the migration.
    let check = run(pkg
        .strata(&db)
        .args(["schema", "check", "--shadow-url", &shadow_url()]))
    .expect_code(1);
    assert!(
        check
            .stdout
            .contains("ALTER TABLE shop.customer RENAME TO client;"),
        "{}",
        check.stdout
    );

    let generated =
        run(pkg
            .strata(&db)
            .args(["generate", "adopt_declared", "--shadow-url", &shadow_url()]))
        .ok();
    assert!(
        generated.says("migrations/0002_adopt_declared.sql"),
        "{}",
        generated.stdout
    );
    assert!(
        generated.says("proven on a shadow copy"),
        "{}",
        generated.stdout
    );
    let file = std::fs::read_to_string(pkg.path("migrations/0002_adopt_declared.sql")).unwrap();
    assert!(file.contains("-- migrate:up\n"), "{file}");
    assert!(
        file.contains("ALTER TABLE shop.client RENAME COLUMN full_name TO name;"),
        "{file}"
    );
    assert!(
        file.contains("-- migrate:up transaction:false\nCREATE INDEX CONCURRENTLY client_name"),
        "{file}"
    );
    assert!(file.contains("-- migrate:down\n"), "{file}");
    let manifest = std::fs::read_to_string(pkg.path("strata.toml")).unwrap();
    assert!(
        manifest.contains("migrations/0002_adopt_declared.sql"),
        "{manifest}"
    );

    // In sync now; the migration deploys (the row survives the rename) and rolls back.
    run(pkg
        .strata(&db)
        .args(["schema", "check", "--shadow-url", &shadow_url()]))
    .ok();
    // Generated migrations are linted like hand-written ones: SET NOT NULL on an existing column is flagged.
    run(pkg.strata(&db).args(["up", "--allow-lint-errors"])).ok();
    assert_eq!(
        db.value::<String>("SELECT name FROM shop.client WHERE id = 1"),
        "Ann"
    );
    assert!(db.has_column("shop.client", "status"));
    run(pkg.strata(&db).args(["down"])).ok();
    assert!(db.has_column("shop.customer", "full_name"));
    assert!(!db.has("shop.client_name"));

    // Nothing left to generate.
    run(pkg.strata(&db).args(["up", "--allow-lint-errors"])).ok();
    let again = run(pkg
        .strata(&db)
        .args(["generate", "nothing", "--shadow-url", &shadow_url()]))
    .ok();
    assert!(again.says("nothing to generate"), "{}", again.stdout);
    assert!(!pkg.path("migrations/0003_nothing.sql").exists());
}

#[test]
fn diff_between_databases_converges_and_refuses_data_loss() {
    let (a, b) = (Db::new(), Db::new());
    a.exec(
        "CREATE TABLE public.t (id int PRIMARY KEY, gone text, n int);
         CREATE VIEW public.v AS SELECT id, n FROM public.t;
         INSERT INTO public.t VALUES (1, 'x', 2);",
    );
    b.exec(
        "CREATE TABLE public.t (id int PRIMARY KEY, n bigint, added boolean NOT NULL DEFAULT true);
         CREATE VIEW public.v AS SELECT id, n FROM public.t;
         CREATE INDEX t_n ON public.t (n);",
    );
    let refused = run(strata().args(["diff", "--from", &a.url(), "--to", &b.url()])).expect_code(1);
    assert!(
        refused.stderr.contains("would lose data"),
        "{}",
        refused.stderr
    );
    assert!(refused.stderr.contains("gone"), "{}", refused.stderr);
    assert!(refused.stdout.is_empty(), "{}", refused.stdout);

    let json = run(strata().args([
        "diff",
        "--from",
        &a.url(),
        "--to",
        &b.url(),
        "--allow-data-loss",
        "--json",
    ]))
    .ok();
    let v = json.json();
    let actions = v["up"]["actions"].as_array().unwrap();
    assert!(actions.iter().any(|a| a["verb"] == "drop"
        && a["object"]["kind"] == "column"
        && a["data_loss"].is_string()));
    assert!(v["migration"].as_str().unwrap().contains("-- migrate:down"));

    let sql = run(strata().args([
        "diff",
        "--from",
        &a.url(),
        "--to",
        &b.url(),
        "--allow-data-loss",
        "--format",
        "sql",
        "--no-concurrently",
    ]))
    .ok();
    // Every name is schema-qualified: the script runs the same under any search_path.
    a.exec(&format!("SET search_path = pg_catalog; {}", sql.stdout));
    assert_eq!(a.value::<i64>("SELECT n FROM public.t WHERE id = 1"), 2);

    let empty = run(strata().args(["diff", "--from", &a.url(), "--to", &b.url()])).ok();
    assert!(empty.stdout.is_empty(), "{}", empty.stdout);
}

#[test]
fn declared_files_that_fail_point_at_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.sql"), "CREATE TABLE t (id int);\n").unwrap();
    std::fs::write(
        dir.path().join("b.sql"),
        "-- second file\nCREATE VIEW v AS\n  SELECT id, nope FROM t;\n",
    )
    .unwrap();
    let out = run(strata().current_dir(dir.path()).args([
        "diff",
        "--from",
        "a.sql",
        "--to",
        ".",
        "--shadow-url",
        &shadow_url(),
    ]))
    .expect_code(2);
    assert!(out.stderr.contains("b.sql:3:14"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("column \"nope\" does not exist (SQLSTATE 42703)"),
        "{}",
        out.stderr
    );

    // Files that reference each other load in any order: the view's table is declared in a later file.
    std::fs::write(
        dir.path().join("b.sql"),
        "CREATE VIEW v AS SELECT id FROM z;\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("c.sql"), "CREATE TABLE z (id int);\n").unwrap();
    let ok = run(strata().current_dir(dir.path()).args([
        "diff",
        "--from",
        "a.sql",
        "--to",
        ".",
        "--shadow-url",
        &shadow_url(),
    ]))
    .ok();
    assert!(
        ok.stdout.contains("CREATE VIEW public.v AS"),
        "{}",
        ok.stdout
    );
}

#[test]
fn unreachable_servers_and_missing_binaries_exit_2() {
    let out = run(strata().args([
        "diff",
        "--from",
        "postgres://nobody@127.0.0.1:1/a?connect_timeout=2",
        "--to",
        "postgres://nobody@127.0.0.1:1/b?connect_timeout=2",
    ]))
    .expect_code(2);
    assert!(!out.stderr.is_empty());

    // No --shadow-url and no server binaries: a clear error, not a crash.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.sql"), "CREATE TABLE t (id int);\n").unwrap();
    let out = run(strata()
        .current_dir(dir.path())
        .env("PG_BINDIR", dir.path().join("no-such-bin"))
        .env("STRATA_DEV_DIR", dir.path().join("dev"))
        .args(["diff", "--from", "a.sql", "--to", "a.sql"]))
    .expect_code(2);
    assert!(out.stderr.contains("PG_BINDIR"), "{}", out.stderr);
}
