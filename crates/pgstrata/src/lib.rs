//! # pgstrata — PostgreSQL packages and versioned migrations, recorded in the database
//!
//! Strata deploys **packages**: a directory with a `strata.toml` manifest (name, schema, extensions, uses, and an
//! ordered list of migrations). Every pending migration of every package runs in **one transaction**, under an
//! advisory lock that serialises concurrent deployers; each applied migration is recorded in the `strata` schema
//! with its checksum and its up and down SQL, so `down` works from the database alone.
//!
//! The principal types:
//! - [`Package`]: a manifest and its migration files, loaded and checked (valid by construction);
//! - [`Project`]: the packages deployed together, in `uses` order;
//! - [`Plan`]: what is applied, pending, changed or missing (pure comparison of files and history);
//! - [`up`] / [`down`]: apply or revert, returning an [`UpReport`] / [`DownReport`];
//! - [`Database`]: a connection (plus the notices the server sends);
//! - [`managed`]: functions, procedures, views and triggers declared in SQL files, installed when they change;
//! - [`testing`]: `*_test.sql` functions run in every deploy (and by `strata test`), with TAP/JUnit/JSON reports;
//! - [`package_role`]: each package's schema is owned by its own role, which its SQL runs as.
//!
//! ## Deploying at application start-up
//!
//! An application can embed its package with `include_dir!` and deploy it before serving:
//!
//! ```no_run
//! use include_dir::{include_dir, Dir};
//!
//! static SCHEMA: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../examples/billing");
//!
//! # async fn start() -> Result<(), pgstrata::Error> {
//! let project = pgstrata::Project::new(vec![pgstrata::Package::embedded(&SCHEMA)?])?;
//! let options = pgstrata_conn::ConnectOptions::from_env(None)?; // DATABASE_URL-style, PG*, POSTGRES_*
//! let mut db = pgstrata::Database::connect(&options).await?;
//! let report = pgstrata::up(&mut db, &project, &pgstrata::UpOptions::default(), &mut pgstrata::Quiet).await?;
//! for t in &report.packages {
//!     println!("{}: {:?} → {:?}", t.package, t.from, t.to);
//! }
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

// The layers, lowest first. A module may use the layers below its own, never one above (a test reads the `use
// crate::…` lines and enforces it; see ARCHITECTURE.md): report/error/observe/order ← source ← db ← decide ← run,
// and export may use anything but run.
mod db;
mod decide;
mod error;
mod export;
#[cfg(test)]
mod layering;
mod observe;
mod order;
mod report;
mod run;
mod source;

// Public modules, at the paths the CLI and applications use.
pub use db::history;
pub use decide::code as managed;
pub use decide::{guard, lint, lock_report};
pub use run::test as testing;
pub use source::{layout, manifest, scaffold};

pub use db::VERSION;
pub use db::exec::Database;
pub use db::roles::{dev_database_name, package_role};
pub use db::session::{STRATA_LOCK_KEY, SessionSettings};
pub use decide::guard::{InvalidIndex, LockRetry, invalid_indexes};
pub use decide::lock_report::{LockReport, lock_report};
pub use decide::plan::{
    MigrationState, MigrationStatus, PackagePlan, Plan, PlanOptions, Segment, Step,
};
pub use decide::repeatable::{RepeatableState, RepeatableStatus};
pub use error::{ChangedError, ChangedMigration, Error, Result, SourceError, SqlError};
pub use observe::{Event, Observer, Quiet};
pub use report::code::{BrokenObject, CodeAction, CodeChange, CodeKind, CodeReport};
pub use report::{
    MigrationId, Notice, Outcome, RanMigration, ResumedMigration, RunOutcome, Transition,
};
pub use run::down::{DownOptions, DownReport, DownTarget, down};
pub use run::test::{TestMode, TestOptions, TestReport};
pub use run::up::{UpOptions, UpReport, plan, up};
pub use source::duration::PgDuration;
pub use source::files::PackageSource;
pub use source::manifest::{DeploySettings, Manifest, ManifestFormat, SecuritySettings, Use};
pub use source::package::{Migration, Package, Script, checksum, migration_name};
pub use source::project::{Project, strata_package};
// interop: other tools' folders, adoption, export, schema dumps.
pub use export::bundle::{
    BUNDLE_APPLIED_SETTING, BUNDLE_MARKER, Bundle, BundleFile, BundleReport, TABLES_FILE, bundle,
    bundle_project, write_bundle,
};
pub use export::dump::{DumpOptions, dump_schema, schema_diff};
pub use export::{ExportFormat, ExportReport, export, psql_script};
pub use run::adopt::{AdoptOptions, AdoptReport, Adopted, BaselineOptions, Tool, adopt, baseline};
pub use source::layout::{IgnoredFile, Layout, default_package_name};
pub use source::repeatable::Repeatable;

/// Create a database (connecting to the `postgres` maintenance database of the same server).
pub async fn create_database(options: &pgstrata_conn::ConnectOptions) -> Result<bool> {
    let name = options.dbname().to_string();
    let admin = Database::connect(&options.with_dbname("postgres")).await?;
    let exists: bool = admin
        .client()
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .await
        .map_err(Error::db("checking whether the database exists"))?
        .get(0);
    if exists {
        return Ok(false);
    }
    admin
        .client()
        .batch_execute(&format!(
            "CREATE DATABASE {}",
            postgres_protocol::escape::escape_identifier(&name)
        ))
        .await
        .map_err(Error::db(format!("creating database {name}")))?;
    Ok(true)
}

/// Drop a database if it exists (connections to it are terminated: `WITH (FORCE)`).
pub async fn drop_database(options: &pgstrata_conn::ConnectOptions) -> Result<bool> {
    let name = options.dbname().to_string();
    let admin = Database::connect(&options.with_dbname("postgres")).await?;
    let exists: bool = admin
        .client()
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)",
            &[&name],
        )
        .await
        .map_err(Error::db("checking whether the database exists"))?
        .get(0);
    if !exists {
        return Ok(false);
    }
    admin
        .client()
        .batch_execute(&format!(
            "DROP DATABASE {} WITH (FORCE)",
            postgres_protocol::escape::escape_identifier(&name)
        ))
        .await
        .map_err(Error::db(format!("dropping database {name}")))?;
    Ok(true)
}
