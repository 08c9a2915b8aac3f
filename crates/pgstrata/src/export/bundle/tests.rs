//! Tests of the parent module.

use super::*;

/// A package in a temporary folder: a manifest, one migration, and `files` (path, text) of managed code.
fn package(files: &[(&str, &str)]) -> (tempfile::TempDir, Package) {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    };
    write(
        "strata.toml",
        "name = \"github.com/acme/kit\"\nschema = \"kit\"\nmigrations = [\"migrations/001_t.sql\"]\n",
    );
    write(
        "migrations/001_t.sql",
        "-- migrate:up\nCREATE TABLE t (id int);\n-- migrate:down\nDROP TABLE t;\n",
    );
    for (rel, text) in files {
        write(rel, text);
    }
    let pkg = Package::load(dir.path()).unwrap();
    (dir, pkg)
}

fn names(b: &Bundle) -> Vec<&str> {
    b.files.iter().map(|f| f.name.as_str()).collect()
}

#[test]
fn files_come_after_the_files_they_need() {
    let (_dir, pkg) = package(&[
        ("a.sql", "CREATE VIEW v AS SELECT kit.f() AS x;\n"),
        (
            "b.sql",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1;\n",
        ),
        (
            "sub/c.sql",
            "CREATE FUNCTION g() RETURNS int LANGUAGE sql RETURN 2;\n",
        ),
        (
            "c_test.sql",
            "CREATE FUNCTION c_test() RETURNS void LANGUAGE sql RETURN NULL;\n",
        ),
    ]);
    let b = bundle(&pkg).unwrap();
    assert_eq!(names(&b), ["tables.sql", "b.sql", "a.sql", "sub_c.sql"]);
    assert!(b.files.iter().all(|f| f.text.starts_with(BUNDLE_MARKER)));
    let a = &b.files[2].text;
    assert!(
        a.contains("CREATE OR REPLACE VIEW v AS SELECT kit.f() AS x;\n"),
        "{a}"
    );
    assert!(a.contains("DROP VIEW IF EXISTS \"kit\".\"v\";"), "{a}");
    // Deterministic: the same sources give the same bytes.
    let again = bundle(&pkg).unwrap();
    assert!(
        b.files
            .iter()
            .zip(&again.files)
            .all(|(x, y)| x.text == y.text)
    );
}

#[test]
fn files_that_need_each_other_are_refused() {
    let (_dir, pkg) = package(&[
        (
            "a.sql",
            "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1;\nCREATE VIEW va AS SELECT kit.g() AS x;\n",
        ),
        (
            "b.sql",
            "CREATE FUNCTION g() RETURNS int LANGUAGE sql RETURN 2;\nCREATE VIEW vb AS SELECT kit.f() AS x;\n",
        ),
    ]);
    let err = bundle(&pkg).unwrap_err().to_string();
    assert!(err.contains("need each other: "), "{err}");
    assert!(err.contains("a.sql, ") && err.ends_with("b.sql"), "{err}");
}

#[test]
fn overloads_split_across_files_are_refused() {
    let (_dir, pkg) = package(&[
        (
            "a.sql",
            "CREATE FUNCTION f(int) RETURNS int LANGUAGE sql RETURN 1;\n",
        ),
        (
            "b.sql",
            "CREATE FUNCTION f(text) RETURNS int LANGUAGE sql RETURN 2;\n",
        ),
    ]);
    let err = bundle(&pkg).unwrap_err().to_string();
    assert!(err.contains("has overloads in two files"), "{err}");
}

#[test]
fn a_dbmate_marker_in_managed_code_is_refused() {
    let (_dir, pkg) = package(&[(
        "a.sql",
        "--   migrate:down\nCREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1;\n",
    )]);
    let err = bundle(&pkg).unwrap_err().to_string();
    assert!(err.contains("a.sql:1"), "{err}");
}

#[test]
fn a_statement_without_semicolon_is_terminated() {
    let (_dir, pkg) = package(&[(
        "a.sql",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1\n-- trailing comment\n",
    )]);
    let b = bundle(&pkg).unwrap();
    let text = &b.files[1].text;
    assert!(
        text.contains("CREATE OR REPLACE FUNCTION f() RETURNS int LANGUAGE sql RETURN 1;\n-- trailing comment\n"),
        "{text}"
    );
}

#[test]
fn kahn_reports_the_files_left_in_a_cycle() {
    let needs: BTreeMap<usize, BTreeSet<usize>> = [
        (0, BTreeSet::from([2])),
        (1, BTreeSet::from([2])),
        (2, BTreeSet::new()),
        (3, BTreeSet::from([4])),
        (4, BTreeSet::from([3])),
    ]
    .into();
    assert_eq!(topological(&needs), Err(vec![3, 4]));
    let needs: BTreeMap<usize, BTreeSet<usize>> =
        [(0, BTreeSet::from([1])), (1, BTreeSet::new())].into();
    assert_eq!(topological(&needs), Ok(vec![1, 0]));
}
