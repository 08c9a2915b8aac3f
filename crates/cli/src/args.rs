//! Command-line arguments (clap derive). Only parsing lives here; `main.rs` turns them into library calls.
//!
//! The help is the user's manual: every command says what it does, its options, and shows examples
//! (`after_help`). Options every command accepts are declared once ([`Global`]) and grouped under headings;
//! [`command`] hides them from the help of commands they mean nothing to (see [`NOT_APPLICABLE`]).

use std::path::PathBuf;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

/// Help heading of the options that say which database to use.
const CONNECTION: &str = "Connection";
/// Help heading of the options that say which packages to use.
pub const PACKAGES: &str = "Packages";
/// Help heading of the output options.
const OUTPUT: &str = "Output";

/// PostgreSQL migrations and SQL packages, recorded in the database.
///
/// Strata deploys PostgreSQL packages: versioned migrations in plain SQL (with their down SQL), managed functions,
/// procedures, views and triggers, and SQL tests. Everything pending runs in one transaction, serialised against
/// other deployers, and is recorded in the database (schema `strata`) with checksums and the down SQL itself, so
/// `strata down` works even after the files are gone.
///
/// A package is a directory with a strata.toml (`strata init NAME` creates one). Commands work on the package that
/// contains the current directory, or on those given with -p.
#[derive(Debug, Parser)]
#[command(
    name = "strata",
    version,
    propagate_version = true,
    max_term_width = 110
)]
#[command(after_help = "\
Getting started:
  strata init github.com/acme/billing    create ./billing: strata.toml and migrations/
  cd billing && strata new add_invoices  add a migration
  strata up --embedded                   deploy to a throwaway local PostgreSQL that strata starts
  strata up -d postgresql://app@db/app   … or to your server (or set DATABASE_URL)

Exit codes: 0 success; 1 the command ran and failed or refused (a failed migration, a changed applied file, a \
refused plan, lint errors, failed tests, pending work with `status --exit-code`); 2 it could not start (bad \
arguments, a package that does not load, no connection); 141 the output was closed (`strata log | head`).

`strata help COMMAND` describes a command; `strata man` prints the manual page.")]
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
    #[arg(
        short = 'p',
        long = "package",
        global = true,
        value_name = "PATH",
        help_heading = PACKAGES
    )]
    pub packages: Vec<PathBuf>,

    /// Database URL or libpq conninfo. Also read from DATABASE_URL; PG* and POSTGRES_* variables and ~/.pgpass
    /// fill what it leaves out.
    #[arg(
        short = 'd',
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true,
        value_name = "URL",
        help_heading = CONNECTION
    )]
    pub database_url: Option<String>,

    /// Use the local throwaway PostgreSQL (`strata dev`), starting it if needed; each package gets its own
    /// database there, named after the package. Also STRATA_EMBEDDED=1.
    #[arg(
        long,
        global = true,
        env = "STRATA_EMBEDDED",
        value_parser = clap::builder::BoolishValueParser::new(),
        conflicts_with = "database_url",
        help_heading = CONNECTION
    )]
    pub embedded: bool,

    /// Directory of the PostgreSQL server binaries (initdb, postgres, pg_ctl) that --embedded and `strata dev`
    /// run, e.g. another major version's. Default: those the dev cluster was created with, else PG_BINDIR,
    /// `pg_config --bindir`, the newest /usr/lib/postgresql/<N>/bin.
    #[arg(
        long,
        global = true,
        env = "STRATA_PG_BIN",
        hide_env_values = true,
        value_name = "DIR",
        help_heading = CONNECTION
    )]
    pub pg_bin: Option<PathBuf>,

    /// Machine-readable JSON on stdout (errors too).
    #[arg(long, global = true, help_heading = OUTPUT)]
    pub json: bool,

    /// More output (-v: notices and SQL; -vv: debug logs).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, help_heading = OUTPUT)]
    pub verbose: u8,

    /// Only errors.
    #[arg(short, long, global = true, help_heading = OUTPUT)]
    pub quiet: bool,

    #[command(flatten)]
    pub layout: crate::interop::LayoutFlags,
}

/// The connection options.
const CONNECTION_IDS: &[&str] = &["database_url", "embedded", "pg_bin"];
/// The options that choose packages.
const PACKAGE_IDS: &[&str] = &[
    "packages",
    "dir",
    "layout",
    "package_name",
    "package_schema",
];
/// `--dir` and its companions (another tool's folder).
const FOLDER_IDS: &[&str] = &["dir", "layout", "package_name", "package_schema"];
/// The output options.
const OUTPUT_IDS: &[&str] = &["json", "verbose", "quiet"];

/// Global options left out of a command's help because they mean nothing to it (they are still accepted, so a
/// `strata -d URL init …` in a script keeps working). A command is named by its path (`dev url`); what a command
/// hides, its subcommands hide too. A command not listed shows them all.
pub const NOT_APPLICABLE: &[(&str, &[&[&str]])] = &[
    ("init", &[CONNECTION_IDS, PACKAGE_IDS]),
    ("new", &[CONNECTION_IDS, FOLDER_IDS]),
    ("export", &[CONNECTION_IDS]),
    ("dev", &[&["database_url", "embedded"], FOLDER_IDS]),
    ("dev start", &[&["packages"]]),
    ("dev stop", &[&["packages"]]),
    ("dev status", &[&["packages"]]),
    ("dev destroy", &[&["packages"]]),
    ("wait", &[PACKAGE_IDS]),
    ("completions", &[CONNECTION_IDS, PACKAGE_IDS, OUTPUT_IDS]),
    ("man", &[CONNECTION_IDS, PACKAGE_IDS, OUTPUT_IDS]),
];

/// The `strata` command, built, with each command's help showing only the options that apply to it. Completions
/// and the manual page are generated from it too.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    // Global options reach the subcommands when the command is built; hide them afterwards.
    cmd.build();
    for sub in cmd.get_subcommands_mut() {
        hide_not_applicable(sub, "", &[]);
    }
    cmd
}

fn hide_not_applicable(cmd: &mut clap::Command, parent: &str, inherited: &[&[&str]]) {
    let path = if parent.is_empty() {
        cmd.get_name().to_string()
    } else {
        format!("{parent} {}", cmd.get_name())
    };
    let mut groups = inherited.to_vec();
    for (_, g) in NOT_APPLICABLE.iter().filter(|(n, _)| *n == path) {
        groups.extend_from_slice(g);
    }
    let hide = |a: clap::Arg| {
        if groups.iter().any(|g| g.contains(&a.get_id().as_str())) {
            a.hide(true)
        } else {
            a
        }
    };
    *cmd = std::mem::take(cmd).mut_args(hide);
    for sub in cmd.get_subcommands_mut() {
        hide_not_applicable(sub, &path, &groups);
    }
}

// Parsed once per process: the size of `up`'s arguments (fleet flags included) costs nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a package: strata.toml, migrations/, and a first migration.
    ///
    /// The package's migrations are the files of migrations/, applied in the order of the timestamp their names
    /// start with, so two branches that each add a migration merge without conflicts.
    #[command(after_help = "\
Examples:
  strata init github.com/acme/billing                 ./billing, schema billing
  strata init github.com/acme/billing db/billing      in db/billing
  strata init github.com/acme/billing --schema bill   choose the schema")]
    #[command(after_long_help = "\
Examples:
  strata init github.com/acme/billing                 ./billing, schema billing
  strata init github.com/acme/billing db/billing      in db/billing
  strata init github.com/acme/billing --schema bill   choose the schema

strata.toml keys:
  name = \"github.com/acme/billing\"   unique package id
  schema = \"billing\"                 the package's schema (created if missing)
  extensions = [\"pgcrypto\"]          CREATE EXTENSION IF NOT EXISTS, by the deploying login
  uses = [\"github.com/acme/core\"]    packages deployed first; or { name = \"…\", path = \"../core\" }
  migrations_dir = \"migrations\"      the migrations: <version>_<name>.sql files, in version order
  migrations = [\"m/0001_a.sql\"]      … or an explicit list, in this order (not with migrations_dir)
  layout = \"dbmate\"                  … or another tool's folder, read in place (with migrations_dir)

  [security]
  package_role = true                a package role owns the schema, runs the SQL (needs CREATEROLE)
  allow_security_definer = false     managed code may declare SECURITY DEFINER routines

  [deploy]
  lock_timeout = \"5s\"                SET lock_timeout while migrations run (flags override)
  statement_timeout = \"0\"            SET statement_timeout (0 = off)
  lock_wait_timeout = \"60s\"          how long to wait for another deployer
  lock_retries = 3                   retries after a lock timeout (lock_retry_backoff: first pause)

  [lint]
  disable = [\"prefer-text-field\"]    rules to turn off; enable = [...] for opt-in rules
  severity = { prefer-robust-stmts = \"warning\" }

Other .sql files hold managed code (CREATE FUNCTION, PROCEDURE, VIEW, TRIGGER); *_test.sql, tests.")]
    Init(InitArgs),
    /// Create a migration file.
    ///
    /// In a package whose migrations are the files of a folder (what `strata init` creates), the file is
    /// <folder>/<UTC timestamp>_NAME.sql and strata.toml does not change. In a package that lists its migrations
    /// (`migrations = [...]`, or pgpkg.toml's `Migrations`), the file is numbered after the last one and
    /// appended to the list.
    #[command(after_help = "\
Examples:
  strata new add_invoice_status              migrations/20261206103000_add_invoice_status.sql
  strata new -p db/billing backfill_totals   in another package")]
    New(NewArgs),
    /// Show what `up` would do, with the SQL, lint findings and the locks it takes; changes nothing.
    #[command(after_help = "\
Examples:
  strata plan --embedded                     against the local throwaway PostgreSQL
  strata plan -d \"$DATABASE_URL\" --no-sql    the steps, locks and findings only
  strata plan --target 0003_invoice_status   stop after this migration")]
    Plan(PlanArgs),
    /// Check migrations for statements that lock, rewrite or fail in production (squawk's rules and Strata's own).
    ///
    /// Exit codes: 0 clean (or only warnings), 1 errors (or warnings with --deny-warnings), 2 usage or connection
    /// error.
    #[command(after_help = "\
Examples:
  strata lint --all                               every migration, no database needed
  strata lint migrations/20261206103000_index.sql one file
  strata lint --embedded --format github          pending migrations, as GitHub annotations")]
    Lint(LintArgs),
    /// Apply every pending migration, then managed code and tests, in one transaction.
    ///
    /// Pending migrations of all packages run in one transaction (split only around no-transaction
    /// migrations), serialised against other deployers; a failure rolls everything back and says where.
    #[command(after_help = "\
Examples:
  strata up --embedded                                       the local throwaway PostgreSQL
  strata up -d postgresql://deploy@db/app --lock-timeout 5s  a server
  strata up --dry-run                                        run everything, then roll back")]
    Up(UpArgs),
    /// Applied / pending / changed / missing migrations, and managed code (new, changed, drifted), per package.
    #[command(after_help = "\
Examples:
  strata status --embedded
  strata status --exit-code    exit 1 when anything is pending, changed or missing (CI)
  strata status --json")]
    Status(StatusArgs),
    /// Run the packages' SQL tests against the code on disk, in a deploy that is always rolled back.
    #[command(after_help = "\
Examples:
  strata test --embedded
  strata test --filter 'invoice_*' --seed 42   some tests, in a replayed order
  strata test --format junit > junit.xml")]
    Test(TestArgs),
    /// Roll back using the down SQL stored in the database (newest first, one transaction).
    ///
    /// Afterwards the managed code is checked again: a function or view that used what was dropped is reported.
    #[command(after_help = "\
Examples:
  strata down                      the newest migration
  strata down --steps 3 --dry-run  see the newest three roll back, then undo it
  strata down --to 0001_init       everything applied after 0001_init")]
    Down(DownArgs),
    /// Recent runs recorded in the database (strata.run).
    #[command(after_help = "\
Examples:
  strata log --embedded -n 5
  strata log --json")]
    Log(LogArgs),
    /// Manage the local throwaway PostgreSQL used by --embedded.
    ///
    /// Its data lives under /tmp/strata-dev-<uid>; it listens on a unix socket only. --embedded starts it when
    /// needed and gives each package its own database, named after the package (`strata dev url -p PATH`).
    #[command(subcommand)]
    #[command(after_help = "\
Examples:
  strata dev start
  strata dev url -p examples/billing   the URL --embedded uses for that package
  strata dev stop")]
    Dev(DevCommand),
    /// Wait until the server accepts connections.
    #[command(after_help = "\
Examples:
  strata wait --timeout 30s && strata up")]
    Wait(WaitArgs),
    /// Create or drop the database named in the connection settings.
    #[command(subcommand)]
    #[command(after_help = "\
Examples:
  strata db create -d postgresql://postgres@localhost/app
  strata db drop --embedded")]
    Db(DbCommand),
    /// Record the migrations another tool applied (reads its tracking table; runs nothing).
    #[command(after_help = "\
Examples:
  strata adopt --dir db/migrations --from dbmate
  strata adopt --dir migrations --from sqlx --dry-run")]
    Adopt(crate::interop::AdoptArgs),
    /// Record the migrations up to NAME as applied, for a database no tool tracked (runs nothing).
    #[command(after_help = "\
Examples:
  strata baseline --to 20261206103000_orders
  strata baseline --to 0007_orders --dry-run")]
    Baseline(crate::interop::BaselineArgs),
    /// Write the migrations for another tool, or as one self-contained psql script.
    #[command(after_help = "\
Examples:
  strata export --to psql deploy.sql         one script: psql -f deploy.sql
  strata export --to flyway build/flyway     Flyway's V__/R__ files
  strata export --to dbmate --bundle -p packages/minipaas minipaas-sql")]
    Export(crate::interop::ExportArgs),
    /// Write a stable schema file (pg_dump --schema-only, normalised, with Strata's history), or --check one.
    #[command(after_help = "\
Examples:
  strata dump-schema schema.sql
  strata dump-schema --check schema.sql   exit 1 with a diff when they differ")]
    DumpSchema(crate::interop::DumpSchemaArgs),
    /// Check the database: sizes, indexes, vacuum, wraparound, sessions and locks, replication, Strata's history,
    /// MiniPaaS queues and streams, top statements. Exit codes with --exit-code: 1 when a check finds a problem.
    #[command(after_help = "\
Examples:
  strata inspect                          every check, with a verdict each
  strata inspect indexes vacuum --top 5   two checks, five rows each
  strata inspect --exit-code --json       for monitoring: exit 1 when a check finds a problem
  strata inspect --watch 5s")]
    Inspect(crate::ops::InspectArgs),
    /// Back up the database with the server's own pg_dump, and write a manifest beside the archive.
    #[command(after_help = "\
Examples:
  strata backup                           DATABASE-TIMESTAMP.dump here, with its manifest
  strata backup nightly/ -j 4             directory format, four pg_dump jobs
  strata backup --schema-only schema.dump")]
    Backup(crate::ops::BackupArgs),
    /// Restore an archive with pg_restore (a non-empty database needs --clean); --verify checks it.
    #[command(after_help = "\
Examples:
  strata restore app.dump --verify --shadow   restore into a throwaway cluster and compare with the manifest
  strata restore app.dump --into postgresql://localhost/app_copy
  strata restore nightly/ -j 4 --clean")]
    Restore(crate::ops::RestoreArgs),
    /// Print the migration between two schemas: databases, declared .sql files, or the package's migrations.
    /// Exit codes: 0 (an empty diff prints nothing), 1 data loss refused, 2 bad input or unreachable server.
    #[command(after_help = "\
Examples:
  strata diff                                              what schema/ adds to the migrations
  strata diff --from postgresql://…/prod --to postgresql://…/staging
  strata diff --from migrations --to schema/ --format json")]
    Diff(crate::declare::DiffArgs),
    /// Write a migration from the declared schema (schema/): what it adds to the migrations, proven first.
    #[command(after_help = "\
Examples:
  strata generate add_invoice_status      writes and lists the migration, proven up and down first
  strata generate drop_legacy --allow-data-loss")]
    Generate(crate::declare::GenerateArgs),
    /// Declarative schema: `strata schema check`.
    #[command(subcommand)]
    #[command(after_help = "\
Examples:
  strata schema check                     in CI: exit 1 with the diff when migrations and schema/ disagree
  strata schema check --shadow-url postgresql://localhost/postgres")]
    Schema(crate::declare::SchemaCommand),
    /// Print a shell completion script.
    #[command(after_help = "\
Examples:
  strata completions bash > ~/.local/share/bash-completion/completions/strata
  strata completions zsh > ~/.zfunc/_strata         (with fpath+=~/.zfunc before compinit)
  strata completions fish > ~/.config/fish/completions/strata.fish")]
    Completions(CompletionsArgs),
    /// Print the manual page (roff), or write one page per command into a directory.
    #[command(after_help = "\
Examples:
  strata man | man -l -
  strata man --dir ~/.local/share/man/man1   strata.1, strata-up.1, …")]
    Man(ManArgs),
    /// Serve a local web page of the history, the plan, drift, inspect verdicts, and MiniPaaS queues and streams.
    #[command(after_help = "\
Examples:
  strata console                          http://127.0.0.1:7373 (printed), opens nothing by itself
  strata console --embedded --listen 127.0.0.1:0
  strata console --read-only --listen 0.0.0.0:7373 --token \"$TOKEN\"")]
    Console(crate::console::ConsoleArgs),
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write strata.1 and one page per command (strata-up.1, …) into this directory instead of printing strata.1.
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Package name, e.g. github.com/acme/billing.
    pub name: String,
    /// Directory to create it in (default: the name's last segment).
    pub dir: Option<PathBuf>,
    // Its schema is the global --schema (default: derived from the name's last segment).
}

#[derive(Debug, Args)]
pub struct NewArgs {
    /// Migration name (letters, digits, _ and -); the file is <version>_NAME.sql.
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
    /// Refuse migrations that have no down file (as postgres-json does); `require_down = true` in strata.toml asks
    /// for it too.
    #[arg(long)]
    pub require_down: bool,
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
    #[command(flatten)]
    pub fleet: crate::fleet::FleetTargets,
    #[command(flatten)]
    pub fleet_run: crate::fleet::FleetRun,
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
    #[command(flatten)]
    pub fleet: crate::fleet::FleetTargets,
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
    /// Print the URL of a database on it: by default the one --embedded uses for the package (else `postgres`).
    Url {
        /// Database name (default: the package's, as --embedded names it).
        #[arg(long)]
        db: Option<String>,
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command, with its path (`dev url`).
    fn all(cmd: &clap::Command, parent: &str, out: &mut Vec<(String, clap::Command)>) {
        for sub in cmd.get_subcommands() {
            let path = format!("{parent} {}", sub.get_name()).trim().to_string();
            out.push((path.clone(), sub.clone()));
            all(sub, &path, out);
        }
    }

    fn help(path: &str) -> String {
        let mut cmd = command();
        let mut sub = &mut cmd;
        for name in path.split_whitespace() {
            sub = sub.find_subcommand_mut(name).expect("known command");
        }
        sub.render_long_help().to_string()
    }

    #[test]
    fn the_command_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn every_command_says_what_it_does_and_the_main_ones_show_examples() {
        let mut commands = Vec::new();
        all(&command(), "", &mut commands);
        for (path, cmd) in &commands {
            let about = cmd.get_about().map(ToString::to_string).unwrap_or_default();
            assert!(!about.is_empty(), "`strata {path}` has no description");
            let top_level = !path.contains(' ');
            if top_level && path != "help" {
                let after = cmd
                    .get_after_help()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                assert!(
                    after.contains("Examples:\n  strata "),
                    "`strata {path}` shows no examples"
                );
            }
        }
    }

    #[test]
    fn commands_show_only_the_options_that_apply_to_them() {
        let init = help("init");
        assert!(!init.contains("--database-url"), "{init}");
        assert!(!init.contains("--embedded"), "{init}");
        assert!(!init.contains("--package"), "{init}");
        assert!(init.contains("--json"), "{init}");
        let new = help("new");
        assert!(new.contains("--package") && !new.contains("--dir"), "{new}");
        assert!(!new.contains("--database-url"), "{new}");
        let start = help("dev start");
        assert!(
            start.contains("--pg-bin") && !start.contains("--database-url"),
            "{start}"
        );
        assert!(!start.contains("--package"), "{start}");
        assert!(help("dev url").contains("--package"));
        let completions = help("completions");
        assert!(!completions.contains("--json"), "{completions}");
        // Commands that connect group the connection options under one heading.
        let up = help("up");
        let heading = up.find("Connection:").expect("a Connection heading");
        assert!(up[heading..].contains("--database-url") && up[heading..].contains("--embedded"));
        assert!(
            up.find("--database-url").is_some_and(|i| i > heading),
            "{up}"
        );
        assert!(up.contains("Packages:") && up.contains("Output:"), "{up}");
    }

    #[test]
    fn hidden_options_are_still_accepted() {
        let cli = Cli::try_parse_from(["strata", "init", "-d", "postgresql://x/y", "acme/a"])
            .expect("parses");
        assert_eq!(cli.global.database_url.as_deref(), Some("postgresql://x/y"));
    }

    #[test]
    fn the_top_level_help_describes_the_tool() {
        let top = command().render_long_help().to_string();
        assert!(!top.contains("thin shell"), "{top}");
        assert!(
            top.contains("PostgreSQL migrations and SQL packages"),
            "{top}"
        );
        assert!(
            top.contains("Getting started:") && top.contains("Exit codes:"),
            "{top}"
        );
    }
}
