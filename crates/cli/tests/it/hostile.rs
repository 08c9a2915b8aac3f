//! Hostile input (issue 16, sections 2, 5 and 6): schema takeovers, symbolic links out of the package, NUL bytes,
//! control characters in file names, errors far to the right, deep nesting. Each gets a clear error naming the
//! file, and leaves the database as it was.

use crate::support::{Db, Pkg};

#[test]
fn two_packages_claiming_one_schema_are_refused_before_connecting() {
    let a = Pkg::new("acme/a", "shared");
    let mut b = Pkg::new("acme/b", "shared");
    b.extra = format!(
        "uses = [{{ name = \"acme/a\", path = {:?} }}]\n",
        a.root().display().to_string()
    );
    b.write_manifest();
    // Nothing listens on port 1: a connection attempt would be the error.
    let run = crate::support::run(crate::support::strata().current_dir(b.root()).args([
        "--database-url",
        "postgresql://nobody@127.0.0.1:1/none",
        "up",
    ]))
    .expect_code(2);
    assert!(
        run.says("packages `acme/a` and `acme/b` both claim schema `shared`"),
        "{}",
        run.stderr
    );
    assert!(!run.says("connect"), "{}", run.stderr);
}

#[test]
fn a_schema_recorded_for_another_package_is_refused() {
    let db = Db::new();
    let mut a = Pkg::new("acme/a", "shared");
    a.add("0001.sql", "CREATE TABLE secrets (v text);\n");
    a.run(&db, &["up"]).ok();
    let mut b = Pkg::new("acme/b", "shared");
    b.add("0001.sql", "CREATE TABLE mine (v text);\n");
    let run = b.run(&db, &["up"]).expect_code(1);
    assert!(
        run.says("schema shared belongs to package acme/a (recorded in strata.package)"),
        "{}",
        run.stderr
    );
    assert!(run.says("Nothing was run."), "{}", run.stderr);
    assert_eq!(
        db.row("SELECT pg_get_userbyid(nspowner)::text FROM pg_namespace WHERE nspname = 'shared'"),
        [Some("$acme/a".to_string())]
    );
    assert_eq!(
        db.value::<String>("SELECT tableowner::text FROM pg_tables WHERE tablename = 'secrets'"),
        "$acme/a"
    );
    assert!(!db.has("shared.mine"));
    b.run(&db, &["plan"]).expect_code(1);
}

#[test]
fn an_existing_schema_with_objects_of_others_needs_adopt_schema() {
    let db = Db::new();
    db.exec("CREATE SCHEMA legacy; CREATE TABLE legacy.old (id int)");
    let mut pkg = Pkg::new("acme/legacy", "legacy");
    pkg.add("0001.sql", "CREATE TABLE new (id bigint);\n");
    let run = pkg.run(&db, &["up"]).expect_code(1);
    assert!(
        run.says("schema legacy already exists (owned by postgres) with 1 object(s) that no deploy of package acme/legacy created"),
        "{}",
        run.stderr
    );
    assert!(!db.has("legacy.new"));
    assert_eq!(
        db.value::<String>("SELECT tableowner::text FROM pg_tables WHERE tablename = 'old'"),
        "postgres"
    );
    pkg.extra = "[security]\nadopt_schema = true\n".into();
    pkg.write_manifest();
    let plan = pkg.run(&db, &["plan"]).ok();
    assert!(
        plan.says("adopt schema legacy (owned by postgres, 1 object(s)) for acme/legacy"),
        "{}",
        plan.stdout
    );
    pkg.run(&db, &["up"]).ok();
    assert_eq!(
        db.value::<String>("SELECT tableowner::text FROM pg_tables WHERE tablename = 'old'"),
        "$acme/legacy"
    );
    // An empty schema someone created for the package is simply taken.
    let db = Db::new();
    db.exec("CREATE SCHEMA empty");
    let mut pkg = Pkg::new("acme/empty", "empty");
    pkg.add("0001.sql", "CREATE TABLE t (id bigint);\n");
    pkg.run(&db, &["up"]).ok();
}

#[test]
fn system_schemas_and_public_are_refused() {
    for (schema, message) in [
        ("pg_catalog", "reserved by PostgreSQL"),
        ("pg_toast", "reserved by PostgreSQL"),
        ("information_schema", "belongs to PostgreSQL"),
        ("strata", "reserved for Strata's own tables"),
        (
            "public",
            "schema `public` is shared by every role of the database",
        ),
    ] {
        let db = Db::new();
        let mut pkg = Pkg::new("acme/sys", schema);
        pkg.add("0001.sql", "CREATE TABLE t (id bigint);\n");
        let run = pkg.run(&db, &["up"]);
        assert_ne!(run.code, 0, "{schema}");
        assert!(run.says(message), "{schema}: {}", run.stderr);
        assert!(!db.has(&format!("{schema}.t")), "{schema}");
    }
    // `public` without a package role runs as the login, the way other tools do.
    let db = Db::new();
    let mut pkg = Pkg::new("acme/sys", "public");
    pkg.extra = "[security]\npackage_role = false\n".into();
    pkg.add("0001.sql", "CREATE TABLE t (id bigint);\n");
    pkg.run(&db, &["up"]).ok();
    assert!(db.has("public.t"));
}

#[cfg(unix)]
#[test]
fn symbolic_links_out_of_the_package_are_refused_before_reading() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(
        outside.path().join("secret.sql"),
        "SELECT 'root:x:0:0:the secret';\n",
    )
    .unwrap();
    std::fs::create_dir(outside.path().join("dir")).unwrap();
    std::fs::write(
        outside.path().join("dir/0001.sql"),
        "SELECT 'root:x:0:0:the secret';\n",
    )
    .unwrap();
    let link = |pkg: &Pkg, target: &std::path::Path, rel: &str| {
        let path = pkg.path(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(target, path).unwrap();
    };

    // A migration file.
    let db = Db::new();
    let mut pkg = Pkg::new("acme/links", "links");
    pkg.add("0001.sql", "CREATE TABLE t (id bigint);\n");
    pkg.migrations.push("migrations/0002.sql".into());
    pkg.write_manifest();
    link(
        &pkg,
        &outside.path().join("secret.sql"),
        "migrations/0002.sql",
    );
    let run = pkg.run(&db, &["up"]).expect_code(2);
    assert!(run.says("leads outside the package"), "{}", run.stderr);
    assert!(!run.says("the secret"), "{}", run.stderr);
    assert!(!db.has("links.t"));

    // The migrations directory.
    let mut pkg = Pkg::new("acme/links", "links");
    pkg.migrations.push("migrations/0001.sql".into());
    pkg.write_manifest();
    link(&pkg, &outside.path().join("dir"), "migrations");
    let run = pkg.run(&db, &["up"]).expect_code(2);
    assert!(run.says("leads outside the package"), "{}", run.stderr);
    assert!(!run.says("the secret"), "{}", run.stderr);

    // A managed-code file.
    let mut pkg = Pkg::new("acme/links", "links");
    pkg.add("0001.sql", "CREATE TABLE t (id bigint);\n");
    link(&pkg, &outside.path().join("secret.sql"), "code/secret.sql");
    let run = pkg.run(&db, &["up"]).expect_code(2);
    assert!(run.says("leads outside the package"), "{}", run.stderr);
    assert!(!db.has("links.t"));

    // A link that stays inside is fine.
    let mut pkg = Pkg::new("acme/links", "links");
    pkg.write("shared/0001.sql.txt", "CREATE TABLE t (id bigint);\n");
    pkg.migrations.push("migrations/0001.sql".into());
    pkg.write_manifest();
    link(
        &pkg,
        &pkg.path("shared/0001.sql.txt"),
        "migrations/0001.sql",
    );
    pkg.run(&db, &["up"]).ok();
    assert!(db.has("links.t"));
}

#[test]
fn a_nul_byte_is_an_error_naming_the_file() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/nul", "nul");
    pkg.add("0001.sql", "CREATE TABLE t (id bigint);\nSELECT 'a\0b';\n");
    let run = pkg.run(&db, &["up"]);
    assert_ne!(run.code, 0);
    assert!(
        run.says("0001.sql contains a NUL byte at line 2, column 10"),
        "{}",
        run.stderr
    );
    assert!(!db.has("nul.t"));
}

#[test]
fn control_characters_in_file_names_are_refused_and_printed_escaped() {
    let db = Db::new();
    // Listed in the manifest.
    let mut pkg = Pkg::new("acme/names", "names");
    pkg.migrations.push("migrations/a\nb.sql".into());
    pkg.write_manifest();
    let run = pkg.run(&db, &["up"]);
    assert_ne!(run.code, 0);
    assert!(run.says(r#""migrations/a\nb.sql""#), "{}", run.stderr);
    assert!(run.says("contains control characters"), "{}", run.stderr);

    // Found in the package's directory (managed code).
    let mut pkg = Pkg::new("acme/names", "names");
    pkg.add("0001.sql", "CREATE TABLE t (id bigint);\n");
    pkg.write("evil\u{1b}[31mred.sql", "SELECT 1;\n");
    let run = pkg.run(&db, &["up"]);
    assert_ne!(run.code, 0);
    assert!(run.says(r#"evil\u{1b}[31mred.sql"#), "{}", run.stderr);
    assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
    assert!(!db.has("names.t"));
}

#[test]
fn an_error_past_column_65535_is_printed_without_crashing() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/wide", "wide");
    pkg.add(
        "0001.sql",
        &format!("SELECT {}nope_column;\n", "1, ".repeat(25_000)),
    );
    let run = pkg.run(&db, &["up"]).expect_code(1);
    assert!(run.says("0001.sql:1:75008"), "{}", run.stderr);
    assert!(
        run.says("column \"nope_column\" does not exist"),
        "{}",
        run.stderr
    );
}

#[test]
fn twenty_thousand_nested_parentheses_are_the_servers_to_refuse() {
    let db = Db::new();
    let mut pkg = Pkg::new("acme/deep", "deep");
    pkg.add(
        "0001.sql",
        &format!("SELECT {}1{};\n", "(".repeat(20_000), ")".repeat(20_000)),
    );
    pkg.run(&db, &["lint"]).ok();
    let run = pkg.run(&db, &["up"]).expect_code(1);
    assert!(run.says("memory exhausted"), "{}", run.stderr);
    assert!(run.says("SQLSTATE 42601"), "{}", run.stderr);
}
