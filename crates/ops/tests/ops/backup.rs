//! Backups with the server's pg_dump, restores with pg_restore, verification against the manifest.

use pgstrata_ops::Error;
use pgstrata_ops::backup::{
    BackupManifest, BackupOptions, Format, NoProgress, RestoreOptions, VerifyTarget, backup,
    restore, verify,
};

use crate::support::{connect, deploy, minipaas_dir, options};

/// 50 tables of 2,000 rows (100,000 in all), and Strata's history (MiniPaaS deployed).
async fn populate(db: &pgtest::TestDb) {
    let mut pg = connect(db).await;
    deploy(
        &mut pg,
        &pgstrata::Project::load(&[minipaas_dir()]).unwrap(),
    )
    .await
    .unwrap();
    db.client()
        .await
        .batch_execute(
            "CREATE SCHEMA data;
             DO $$ BEGIN
               FOR i IN 1..50 LOOP
                 EXECUTE format('CREATE TABLE data.t%s (id int PRIMARY KEY, note text)', i);
                 EXECUTE format('INSERT INTO data.t%s SELECT g, md5(g::text) FROM generate_series(1, 2000) g', i);
               END LOOP;
             END $$;
             SELECT minipaas.queue_enqueue('q', '{}') FROM generate_series(1, 7);",
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_backup_of_100000_rows_in_50_tables_restores_and_verifies() {
    let db = pgtest::TestDb::new().await;
    populate(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.dump");
    let report = backup(
        &options(&db),
        &BackupOptions::new(&archive, Format::Custom),
        &mut NoProgress,
    )
    .await
    .unwrap();
    let m = &report.manifest;
    assert_eq!(
        report.manifest_path,
        dir.path().join("app.dump.manifest.json")
    );
    assert_eq!(m.database, db.name());
    let data_rows: i64 = m
        .tables
        .iter()
        .filter(|t| t.schema == "data")
        .map(|t| t.rows)
        .sum();
    assert_eq!(data_rows, 100_000);
    assert_eq!(m.tables.iter().filter(|t| t.schema == "data").count(), 50);
    assert_eq!(
        m.tables
            .iter()
            .find(|t| t.schema == "minipaas" && t.table == "messages")
            .map(|t| t.rows),
        Some(7)
    );
    assert!(
        m.history
            .iter()
            .any(|h| h.package == "github.com/strata-pg/minipaas"),
        "{:?}",
        m.history
    );
    assert!(m.last_run.is_some());
    assert_eq!(
        BackupManifest::read_for(&archive).unwrap().as_ref(),
        Some(m)
    );

    // Verify: restore into a throwaway database on the same server, compare, drop it.
    let verified = verify(
        &VerifyTarget::Server(Box::new(options(&db))),
        &RestoreOptions::new(&archive),
        &mut NoProgress,
    )
    .await
    .unwrap();
    let v = verified.verification.unwrap();
    assert_eq!(v.tables, m.tables.len());
    assert!(v.rows >= 100_007, "{v:?}");
    assert_eq!(v.history, m.history.len());
    let gone: bool = db
        .client()
        .await
        .query_one(
            "SELECT NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&verified.database],
        )
        .await
        .unwrap()
        .get(0);
    assert!(gone, "the throwaway database is dropped");
}

#[tokio::test]
async fn a_directory_backup_with_two_jobs_restores_into_an_empty_database_and_refuses_a_full_one() {
    let db = pgtest::TestDb::new().await;
    populate(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.dir");
    let mut opts = BackupOptions::new(&archive, Format::Directory);
    opts.jobs = 2;
    let report = backup(&options(&db), &opts, &mut NoProgress).await.unwrap();
    assert!(archive.join("toc.dat").is_file());
    assert_eq!(report.manifest.format, Format::Directory);

    // Into a fresh empty database, with two jobs; then it holds what the manifest says.
    let target = pgtest::TestDb::new().await;
    let mut ropts = RestoreOptions::new(&archive);
    ropts.jobs = 2;
    let restored = restore(&options(&target), &ropts, &mut NoProgress)
        .await
        .unwrap();
    assert!(restored.tables >= 50, "{restored:?}");
    let v = pgstrata_ops::backup::compare_with_manifest(&options(&target), &report.manifest)
        .await
        .unwrap();
    assert_eq!(v.tables, report.manifest.tables.len());

    // The same database again: it is not empty now.
    let err = restore(
        &options(&target),
        &RestoreOptions::new(&archive),
        &mut NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::TargetNotEmpty { .. }), "{err:?}");
    assert!(err.to_string().contains("is not empty"), "{err}");
    // With --clean it is replaced.
    let mut clean = RestoreOptions::new(&archive);
    clean.clean = true;
    restore(&options(&target), &clean, &mut NoProgress)
        .await
        .unwrap();
    pgstrata_ops::backup::compare_with_manifest(&options(&target), &report.manifest)
        .await
        .unwrap();

    // A verification that finds a difference says which.
    target
        .client()
        .await
        .batch_execute("DELETE FROM data.t7 WHERE id <= 10")
        .await
        .unwrap();
    let err = pgstrata_ops::backup::compare_with_manifest(&options(&target), &report.manifest)
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("data.t7 has 1990 row(s), the backup had 2000"),
        "{err}"
    );
}

#[tokio::test]
async fn a_truncated_archive_fails_clearly_with_and_without_its_manifest() {
    let db = pgtest::TestDb::new().await;
    populate(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("app.dump");
    backup(
        &options(&db),
        &BackupOptions::new(&archive, Format::Custom),
        &mut NoProgress,
    )
    .await
    .unwrap();
    let bytes = std::fs::read(&archive).unwrap();
    std::fs::write(&archive, &bytes[..bytes.len() * 2 / 3]).unwrap();

    let target = pgtest::TestDb::new().await;
    let err = restore(
        &options(&target),
        &RestoreOptions::new(&archive),
        &mut NoProgress,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::Checksum { .. }), "{err:?}");
    assert!(
        err.to_string().contains("does not match its manifest"),
        "{err}"
    );

    // Without the manifest, pg_restore finds the archive cut short; the one-transaction restore leaves nothing.
    std::fs::remove_file(BackupManifest::path_for(&archive)).unwrap();
    let err = restore(
        &options(&target),
        &RestoreOptions::new(&archive),
        &mut NoProgress,
    )
    .await
    .unwrap_err();
    let text = format!("{err:?}");
    assert!(matches!(err, Error::ToolFailed { .. }), "{text}");
    assert!(text.contains("truncated or damaged"), "{text}");
    let tables: i64 = target
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'data'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 0, "rolled back");
}

#[tokio::test]
async fn a_pg_dump_of_another_major_version_is_refused_before_anything_runs() {
    let db = pgtest::TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    // A program that reports itself as pg_dump 9.6.
    let fake = dir.path().join("pg_dump");
    std::fs::write(&fake, "#!/bin/sh\necho 'pg_dump (PostgreSQL) 9.6.24'\n").unwrap();
    let mut perms = std::fs::metadata(&fake).unwrap().permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
    std::fs::set_permissions(&fake, perms).unwrap();
    let major: i32 = db
        .client()
        .await
        .query_one(
            "SELECT current_setting('server_version_num')::int4 / 10000",
            &[],
        )
        .await
        .unwrap()
        .get(0);

    let archive = dir.path().join("x.dump");
    let mut opts = BackupOptions::new(&archive, Format::Custom);
    opts.pg_dump = Some(fake.clone());
    let err = backup(&options(&db), &opts, &mut NoProgress)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tool { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("is pg_dump 9.6.24"), "{text}");
    assert!(
        text.contains(&format!("the server is PostgreSQL {major}")),
        "{text}"
    );
    assert!(!archive.exists(), "nothing was written");
}

#[tokio::test]
async fn a_table_the_role_may_not_read_fails_the_backup() {
    let db = pgtest::TestDb::new().await;
    let admin = db.client().await;
    let role = format!("b_{}", db.name());
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN;
             CREATE TABLE open (id int); INSERT INTO open VALUES (1);
             CREATE TABLE secret (id int); INSERT INTO secret VALUES (1);
             GRANT SELECT ON open TO {role};"
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("x.dump");
    let err = backup(
        &options(&db).with_user(&role),
        &BackupOptions::new(&archive, Format::Custom),
        &mut NoProgress,
    )
    .await
    .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(&format!(
            "role {role} may not read 1 table(s): public.secret"
        )),
        "the table is named: {text}"
    );
    assert!(
        !BackupManifest::path_for(&archive).exists(),
        "no manifest for a failed backup"
    );
    assert!(!archive.exists(), "the partial archive is removed");
    admin
        .batch_execute(&format!("DROP TABLE open, secret; DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_schema_only_backup_of_some_schemas_verifies_their_tables_and_strata_comes_along() {
    let db = pgtest::TestDb::new().await;
    populate(&db).await;
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("data.dump");
    let mut opts = BackupOptions::new(&archive, Format::Custom);
    opts.schema_only = true;
    opts.schemas = vec!["data".into()];
    let report = backup(&options(&db), &opts, &mut NoProgress).await.unwrap();
    let m = &report.manifest;
    assert_eq!(m.schemas, vec!["data".to_string(), "strata".to_string()]);
    assert!(
        m.tables
            .iter()
            .all(|t| t.rows == 0 && (t.schema == "data" || t.schema == "strata"))
    );
    assert_eq!(m.tables.iter().filter(|t| t.schema == "data").count(), 50);
    let v = verify(
        &VerifyTarget::Server(Box::new(options(&db))),
        &RestoreOptions::new(&archive),
        &mut NoProgress,
    )
    .await
    .unwrap()
    .verification
    .unwrap();
    assert_eq!((v.tables, v.rows), (m.tables.len(), 0));

    // A schema that does not exist is named.
    let mut opts = BackupOptions::new(dir.path().join("x.dump"), Format::Custom);
    opts.schemas = vec!["nope".into()];
    let err = backup(&options(&db), &opts, &mut NoProgress)
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("schema(s) nope do not exist"),
        "{err}"
    );
}

#[tokio::test]
async fn verify_in_a_shadow_cluster_needs_no_database_on_the_server() {
    let db = pgtest::TestDb::new().await;
    db.client()
        .await
        .batch_execute(
            "CREATE TABLE notes (id int PRIMARY KEY, body text);
             INSERT INTO notes SELECT g, 'note ' || g FROM generate_series(1, 1234) g;",
        )
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("notes.dump");
    backup(
        &options(&db),
        &BackupOptions::new(&archive, Format::Custom),
        &mut NoProgress,
    )
    .await
    .unwrap();
    let report = verify(
        &VerifyTarget::Shadow,
        &RestoreOptions::new(&archive),
        &mut NoProgress,
    )
    .await
    .unwrap();
    let v = report.verification.unwrap();
    assert_eq!((v.tables, v.rows, v.history), (1, 1234, 0));
}
