//! Command-line arguments (clap derive). Only parsing lives here; `main.rs` turns them into library calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Strata: PostgreSQL packages and versioned migrations, recorded in the database.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, long_about = None, propagate_version = true)]
#[command(
    after_help = "Exit codes: 0 success, 1 failure (a migration failed, changed files, refused plan, \
                        pending work with --exit-code), 2 usage or connection error."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    #[command(flatten)]
    pub global: Global,
}

/// Options every command accepts.
#[derive(Debug, Args)]
pub struct Global {
    /// Package directory (repeatable). Default: the package containing the current directory.
    #[arg(short = 'p', long = "package", global = true, value_name = "PATH")]
    pub packages: Vec<PathBuf>,

    /// Database URL or libpq conninfo. Also read from DATABASE_URL; PG* and POSTGRES_* variables and ~/.pgpass
    /// fill what it leaves out.
    #[arg(
        short = 'd',
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL"
    )]
    pub database_url: Option<String>,

    /// Use the local throwaway PostgreSQL (`strata dev`), starting it if needed.
    #[arg(long, global = true, conflicts_with = "database_url")]
    pub embedded: bool,

    /// Directory of the PostgreSQL server binaries (initdb, postgres, pg_ctl) that --embedded and `strata dev`
    /// run, e.g. another major version's. Default: those the dev cluster was created with, else PG_BINDIR,
    /// `pg_config --bindir`, the newest /usr/lib/postgresql/<N>/bin.
    #[arg(long, global = true, env = "STRATA_PG_BIN", value_name = "DIR")]
    pub pg_bin: Option<PathBuf>,

    /// Machine-readable JSON on stdout.
    #[arg(long, global = true)]
    pub json: bool,

    /// More output (-v: notices and SQL; -vv: debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(flatten)]
    pub layout: crate::interop::LayoutFlags,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a package: strata.toml, migrations/, and a first migration.
    Init(InitArgs),
    /// Create a migration file and append it to the manifest's ordered list.
    New(NewArgs),
    /// Show what `up` would do, with the SQL, lint findings and the locks it takes; changes nothing.
    Plan(PlanArgs),
    /// Check migrations for statements that lock, rewrite or fail in production (squawk's rules and Strata's own).
    /// Exit codes: 0 clean (or only warnings), 1 errors (or warnings with --deny-warnings), 2 usage or connection
    /// error.
    Lint(LintArgs),
    /// Apply every pending migration, atomically.
    Up(UpArgs),
    /// Applied / pending / changed / missing migrations, and managed code (new, changed, drifted), per package.
    Status(StatusArgs),
    /// Run the packages' SQL tests against the code on disk, in a deploy that is always rolled back.
    Test(TestArgs),
    /// Roll back using the down SQL stored in the database (newest first, one transaction).
    Down(DownArgs),
    /// Recent runs recorded in the database (strata.run).
    Log(LogArgs),
    /// Manage the local throwaway PostgreSQL used by --embedded.
    #[command(subcommand)]
    Dev(DevCommand),
    /// Wait until the server accepts connections.
    Wait(WaitArgs),
    /// Create or drop the database named in the connection settings.
    #[command(subcommand)]
    Db(DbCommand),
    /// Record the migrations another tool applied (reads its tracking table; runs nothing).
    Adopt(crate::interop::AdoptArgs),
    /// Record the migrations up to NAME as applied, for a database no tool tracked (runs nothing).
    Baseline(crate::interop::BaselineArgs),
    /// Write the migrations for another tool, or as one self-contained psql script.
    Export(crate::interop::ExportArgs),
    /// Write a stable schema file (pg_dump --schema-only, normalised, with Strata's history), or --check one.
    DumpSchema(crate::interop::DumpSchemaArgs),
    /// Check the database: sizes, indexes, vacuum, wraparound, sessions and locks, replication, Strata's history,
    /// MiniPaaS queues and streams, top statements. Exit codes with --exit-code: 1 when a check finds a problem.
    Inspect(crate::ops::InspectArgs),
    /// Back up the database with the server's own pg_dump, and write a manifest beside the archive.
    Backup(crate::ops::BackupArgs),
    /// Restore an archive with pg_restore (a non-empty database needs --clean); --verify checks it.
    Restore(crate::ops::RestoreArgs),
    /// Serve a local web page of the history, the plan, drift, inspect verdicts, and MiniPaaS queues and streams.
    Console(crate::console::ConsoleArgs),
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Package name, e.g. github.com/acme/billing.
    pub name: String,
    /// Directory to create it in (default: the name's last segment).
    pub dir: Option<PathBuf>,
    /// Schema (default: derived from the name's last segment).
    #[arg(long)]
    pub schema: Option<String>,
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Migration name (letters, digits, _ and -); the file is NNNN_NAME.sql.
    pub name: String,
}

#[derive(Debug, Args, Clone)]
pub struct PlanFlags {
    /// Stop after this migration (NAME or PACKAGE:NAME).
    #[arg(long, value_name = "NAME")]
    pub target: Option<String>,
    /// Apply pending migrations listed before applied ones (refused by default).
    #[arg(long)]
    pub allow_out_of_order: bool,
    /// Proceed although applied migrations have no file any more (refused by default).
    #[arg(long)]
    pub allow_missing: bool,
    /// Accept the changed text of an applied migration: record it without running it (repeatable; `*` = all).
    #[arg(long, value_name = "NAME")]
    pub accept_changed: Vec<String>,
    /// Deploy even if the migrations about to run have lint errors (`strata lint` shows them).
    #[arg(long)]
    pub allow_lint_errors: bool,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Migration files or directories to lint (a directory with a strata.toml is a package). Default: the pending
    /// migrations of the project (which needs the database).
    pub paths: Vec<PathBuf>,
    /// Lint every migration of the project, applied or not (no database needed).
    #[arg(long, conflicts_with = "paths")]
    pub all: bool,
    /// Output: human diagnostics, JSON, or GitHub Actions annotations.
    #[arg(long, value_enum, default_value_t = LintFormat::Human)]
    pub format: LintFormat,
    /// Exit with 1 on warnings too.
    #[arg(long)]
    pub deny_warnings: bool,
    /// List every rule, its default severity and whether it is on by default, then exit.
    #[arg(long)]
    pub list_rules: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// Compiler-style diagnostics.
    Human,
    /// One JSON document.
    Json,
    /// `::error file=…,line=…::message` workflow commands for GitHub Actions.
    Github,
}

#[derive(Debug, Args)]
pub struct PlanArgs {
    #[command(flatten)]
    pub flags: PlanFlags,
    /// Do not print the SQL of pending migrations.
    #[arg(long)]
    pub no_sql: bool,
}

#[derive(Debug, Args, Clone)]
pub struct SessionFlags {
    /// lock_timeout for the deploy session (e.g. 5s; 0 = off). Default: strata.toml [deploy], else 2s for `up`
    /// (CONCURRENTLY statements run without it), the server's for `down`.
    #[arg(long, value_name = "DURATION")]
    pub lock_timeout: Option<pgstrata::PgDuration>,
    /// statement_timeout for the deploy session (e.g. 10min; 0 = off).
    #[arg(long, value_name = "DURATION")]
    pub statement_timeout: Option<pgstrata::PgDuration>,
    /// How long to wait for another deployer's lock (default: as long as it takes).
    #[arg(long, value_name = "DURATION")]
    pub lock_wait_timeout: Option<pgstrata::PgDuration>,
}

#[derive(Debug, Args)]
pub struct UpArgs {
    #[command(flatten)]
    pub flags: PlanFlags,
    #[command(flatten)]
    pub session: SessionFlags,
    /// Run everything, then roll back.
    #[arg(long)]
    pub dry_run: bool,
    /// How many times to start over after a statement gave up waiting for a lock (lock_timeout), with a pause
    /// that doubles each time. Default: strata.toml [deploy] lock_retries, else 3.
    #[arg(long, value_name = "N")]
    pub lock_retries: Option<u32>,
    /// Run a failed no-transaction migration from its first statement, instead of skipping the statements that
    /// committed before it failed.
    #[arg(long)]
    pub no_resume: bool,
    /// Do not run the packages' tests (by default they run when the deploy changes something).
    #[arg(long)]
    pub no_tests: bool,
    /// Seed of the random test order (printed by every run; replays it).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
}

#[derive(Debug, Args)]
pub struct TestArgs {
    /// Only tests whose name matches (a glob with * and ?, else a substring).
    #[arg(long, value_name = "PATTERN")]
    pub filter: Option<String>,
    /// Seed of the random test order (printed by every run; replays it).
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Output format (--json is the same as --format json).
    #[arg(long, value_enum, default_value_t = TestFormat::Human)]
    pub format: TestFormat,
    /// Also run the tests of the packages the given ones use.
    #[arg(long)]
    pub all_packages: bool,
    #[command(flatten)]
    pub session: SessionFlags,
}

/// How `strata test` prints its report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TestFormat {
    /// One line per test, failures in detail, a tally.
    Human,
    /// TAP version 13.
    Tap,
    /// JUnit XML.
    Junit,
    /// The report as JSON.
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Exit with 1 when anything is pending, changed or missing.
    #[arg(long)]
    pub exit_code: bool,
}

#[derive(Debug, Args)]
pub struct DownArgs {
    /// Revert the newest N migrations (default 1).
    #[arg(long, conflicts_with = "to")]
    pub steps: Option<usize>,
    /// Revert everything applied after NAME (NAME stays applied).
    #[arg(long, value_name = "NAME")]
    pub to: Option<String>,
    /// Consider every package in the database, not only the current project's.
    #[arg(long)]
    pub all_packages: bool,
    /// Run, then roll back.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub session: SessionFlags,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// How many runs.
    #[arg(short = 'n', long, default_value_t = 20)]
    pub limit: i64,
}

#[derive(Debug, Subcommand)]
pub enum DevCommand {
    /// Start it (create it first if needed).
    Start,
    /// Stop it (data is kept).
    Stop,
    /// Is it running, where, on which port.
    Status,
    /// Print the URL of a database on it.
    Url {
        /// Database name.
        #[arg(long, default_value = "postgres")]
        db: String,
    },
    /// Stop it and delete its directory.
    Destroy,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Give up after this long (e.g. 30s, 2min).
    #[arg(long, default_value = "60s")]
    pub timeout: String,
}

#[derive(Debug, Subcommand)]
pub enum DbCommand {
    /// CREATE DATABASE (no error if it exists).
    Create,
    /// DROP DATABASE … WITH (FORCE) (no error if it does not exist).
    Drop,
}
