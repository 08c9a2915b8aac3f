//! Tests of the parent module.

use super::*;

#[test]
fn layout_names_round_trip() {
    for l in Layout::ALL {
        assert_eq!(l.name().parse::<Layout>().unwrap(), l);
    }
    assert!("liquibase".parse::<Layout>().is_err());
}

#[test]
fn leading_digits_needs_one_digit() {
    assert_eq!(leading_digits("001_x"), Some(("001", "_x")));
    assert_eq!(leading_digits("x"), None);
}

#[test]
fn detection_and_loading_share_their_reads() {
    // Enough files for the threaded prefetch; the package must be the same as one loaded without detection.
    let tmp = tempfile::tempdir().unwrap();
    for i in 1..=100 {
        std::fs::write(
            tmp.path().join(format!("{i:04}_t{i}.sql")),
            format!(
                "-- migrate:up\r\nCREATE TABLE t{i} (id int);\n-- migrate:down\nDROP TABLE t{i};\n"
            ),
        )
        .unwrap();
    }
    let detected = Package::from_folder(tmp.path(), None, Some("app"), None).unwrap();
    let named = Package::from_layout_named(tmp.path(), Layout::Dbmate, Some("app"), None).unwrap();
    assert_eq!(detected.layout(), Some(Layout::Dbmate));
    assert_eq!(detected.migrations().len(), 100);
    for (a, b) in detected.migrations().iter().zip(named.migrations()) {
        assert_eq!(
            (a.name(), a.checksum(), a.up_sql()),
            (b.name(), b.checksum(), b.up_sql())
        );
        assert_eq!(a.down_sql(), b.down_sql());
    }
    assert_eq!(detected.migrations()[41].name(), "0042_t42");
    assert!(!detected.migrations()[41].up_sql().contains('\r'));
}

#[test]
fn generic_folder_names_are_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("billing").join("db").join("migrations");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(default_package_name(&dir).unwrap(), "billing");
    let odd = tmp.path().join("my app");
    std::fs::create_dir_all(&odd).unwrap();
    assert_eq!(default_package_name(&odd).unwrap(), "my-app");
}
