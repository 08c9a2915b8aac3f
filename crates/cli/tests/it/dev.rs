//! `strata dev` and `--embedded` with chosen server binaries (`--pg-bin`, `STRATA_PG_BIN`).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use assert_cmd::Command;
use pgstrata_embedded::PgBinaries;

use crate::support::*;

/// `strata` with its dev cluster in `dir`.
fn strata_dev(dir: &Path) -> Command {
    let mut cmd = strata();
    cmd.env("STRATA_DEV_DIR", dir);
    cmd
}

#[test]
fn dev_cluster_runs_the_chosen_binaries_and_embedded_reuses_them() {
    // The binaries the tests run (PGTEST_BINDIR's, so another major version than the system's in the CI matrix).
    let bins = PgBinaries::from_env_or_find(pgtest::BINDIR_VAR).unwrap();
    let bindir = bins.bindir().to_str().unwrap();
    // The server runs as the `postgres` OS user when we are root: every parent must be traversable.
    let parent = tempfile::Builder::new()
        .prefix("strata-it-dev-")
        .permissions(std::fs::Permissions::from_mode(0o755))
        .tempdir()
        .unwrap();
    let dir = parent.path().join("dev");

    // A directory without a server, by flag or by variable: a clear error, and nothing created.
    let bogus = parent.path().join("no-server-here");
    let expected = format!(
        "--pg-bin/STRATA_PG_BIN={} (no initdb/postgres there)",
        bogus.display()
    );
    let r = run(strata_dev(&dir)
        .args(["dev", "start", "--pg-bin"])
        .arg(&bogus))
    .expect_code(2);
    assert!(r.says(&expected), "{}", r.stderr);
    let r = run(strata_dev(&dir)
        .env("STRATA_PG_BIN", &bogus)
        .args(["dev", "start"]))
    .expect_code(2);
    assert!(r.says(&expected), "{}", r.stderr);
    assert!(!dir.exists());

    let r = run(strata_dev(&dir).args(["dev", "start", "--pg-bin", bindir])).ok();
    let version = bins.version().unwrap();
    assert!(
        r.says(&format!(
            "running: PostgreSQL {version} in {}",
            dir.display()
        )),
        "{}",
        r.stdout
    );

    // Later commands use the binaries the cluster was created with, without being told again.
    let status = run(strata_dev(&dir).args(["dev", "status", "--json"]))
        .ok()
        .json();
    assert_eq!(status["bindir"], bindir);
    assert_eq!(status["version"], version.as_str());
    let mut pkg = Pkg::new("acme/devpkg", "devpkg");
    pkg.add("0001_t.sql", "CREATE TABLE devpkg.t (id int);");
    run(strata_dev(&dir)
        .current_dir(pkg.root())
        .args(["--embedded", "up"]))
    .ok();
    let r = run(strata_dev(&dir)
        .current_dir(pkg.root())
        .args(["--embedded", "status"]))
    .ok();
    assert!(r.says("0001_t"), "{}", r.stdout);

    // Each package gets its own database, named after it, and `dev url` names the one --embedded uses: a second
    // package with the same schema (README's example, then the tour's `billing`) deploys without a clash.
    let url = run(strata_dev(&dir).args(["dev", "url", "-p"]).arg(pkg.root())).ok();
    assert!(url.stdout.contains("/acme%2Fdevpkg?"), "{}", url.stdout);
    let mut twin = Pkg::new("acme/devpkg-tour", "devpkg");
    twin.add("0001_t.sql", "CREATE TABLE devpkg.t (id int);");
    run(strata_dev(&dir)
        .current_dir(twin.root())
        .args(["--embedded", "up"]))
    .ok();
    let twin_url = run(strata_dev(&dir)
        .current_dir(twin.root())
        .args(["dev", "url"]))
    .ok();
    assert!(
        twin_url.stdout.contains("/acme%2Fdevpkg-tour?"),
        "{}",
        twin_url.stdout
    );
    let outside = run(strata_dev(&dir)
        .current_dir(parent.path())
        .args(["dev", "url"]))
    .ok();
    assert!(outside.stdout.contains("/postgres?"), "{}", outside.stdout);

    // `dev status` answers in its exit code too, as `pg_ctl status` does.
    run(strata_dev(&dir).args(["dev", "status"])).ok();
    run(strata_dev(&dir).args(["dev", "stop"])).ok();
    let stopped = run(strata_dev(&dir).args(["dev", "status"])).expect_code(1);
    assert!(stopped.says("stopped"), "{}", stopped.stdout);

    run(strata_dev(&dir).args(["dev", "destroy"])).ok();
    assert!(!dir.exists());
}
