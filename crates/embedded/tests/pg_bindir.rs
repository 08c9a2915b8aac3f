//! `PG_BINDIR` handling. Alone in its test binary because it changes the process environment.
#![allow(clippy::unwrap_used, reason = "tests")]

use pgstrata_embedded::{ChildCluster, ChildClusterOptions, DevCluster, Error, PgBinaries};

#[test]
fn pg_bindir_is_honoured_and_a_bogus_one_is_a_clear_error() {
    let real = PgBinaries::find().unwrap();
    let bogus = tempfile::tempdir().unwrap();

    // SAFETY: the only test in this binary, so no other thread reads the environment meanwhile.
    unsafe { std::env::set_var("PG_BINDIR", bogus.path()) };
    let err = PgBinaries::find().unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, Error::BinariesNotFound { .. }), "{message}");
    assert!(
        message.contains(&format!("PG_BINDIR={}", bogus.path().display())),
        "{message}"
    );
    assert!(message.contains("apt-get install postgresql"), "{message}");
    // Everything that needs binaries reports the same.
    assert!(matches!(
        ChildCluster::start(&ChildClusterOptions::default()),
        Err(Error::BinariesNotFound { .. })
    ));
    assert!(matches!(
        DevCluster::new(bogus.path()),
        Err(Error::BinariesNotFound { .. })
    ));

    // SAFETY: as above.
    unsafe { std::env::set_var("PG_BINDIR", real.bindir()) };
    assert_eq!(PgBinaries::find().unwrap(), real);
    assert!(real.tool("psql").is_file());
    assert!(
        real.version()
            .unwrap()
            .chars()
            .next()
            .unwrap()
            .is_ascii_digit()
    );
    // SAFETY: as above.
    unsafe { std::env::remove_var("PG_BINDIR") };
}
