//! `strata`: a thin shell over the `pgstrata` library. Parse arguments, resolve the connection and packages, call
//! the library, render the result. Exit codes: 0 success; 1 the command ran and failed or refused; 2 it could not
//! start (bad arguments, a package that does not load, no connection); 141 stdout or stderr closed.

mod args;
mod bundle;
mod console;
mod declare;
mod fleet;
mod interop;
mod ops;
mod render;
mod safety;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::FromArgMatches;
use pgstrata::{Database, Error, Project};
use pgstrata_conn::ConnectOptions;

use crate::args::{Cli, Command, DbCommand, DevCommand, Global, PlanFlags, SessionFlags, TestArgs};
use crate::render::Out;

/// A failure, already classified for the exit code.
enum Failure {
    /// Exit 1.
    Failed(miette::Report),
    /// Exit 2.
    Usage(miette::Report),
    /// Exit 1 with nothing more to print (e.g. `status --exit-code`).
    Silent,
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        if e.is_usage() || e.is_connection() {
            Failure::Usage(miette::Report::new(e))
        } else {
            Failure::Failed(miette::Report::new(e))
        }
    }
}

impl From<pgstrata_conn::Error> for Failure {
    fn from(e: pgstrata_conn::Error) -> Failure {
        Failure::Usage(miette::Report::new(Error::from(e)))
    }
}

impl From<pgstrata_embedded::Error> for Failure {
    fn from(e: pgstrata_embedded::Error) -> Failure {
        Failure::Usage(miette::miette!("{e}"))
    }
}

fn main() -> ExitCode {
    exit_quietly_when_output_is_closed();
    let cli = match Cli::from_arg_matches(&args::command().get_matches()) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    init_tracing(&cli.global);
    // Diagnostics carry diffs, paths and checksums: re-wrapping them at the terminal width would split a diff line
    // into what looks like two, and names where they cannot be copied. The terminal wraps long lines itself.
    let _ = miette::set_hook(Box::new(|_| {
        Box::new(miette::MietteHandlerOpts::new().wrap_lines(false).build())
    }));
    let out = Out::new(&cli.global);
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("strata: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli, &out)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Silent) => ExitCode::from(1),
        Err(Failure::Failed(report)) => {
            out.error(&report);
            ExitCode::from(1)
        }
        Err(Failure::Usage(report)) => {
            out.error(&report);
            ExitCode::from(2)
        }
    }
}

/// The exit status when stdout or stderr is closed under us: 128 + SIGPIPE, what the shell reports for `grep`, `cat`
/// or `psql` when the reader of their pipe goes away first.
const CLOSED_OUTPUT: i32 = 141;

/// `strata … | head`: a closed stdout (or stderr) ends Strata quietly with [`CLOSED_OUTPUT`], not a panic. Not 0: the
/// output was cut short, and so was whatever the command was doing (a deploy stops where it was, as if interrupted),
/// so it must not look like success. Rust ignores SIGPIPE, so `println!` panics with "failed printing to stdout:
/// Broken pipe" instead of the process dying of the signal; this hook turns exactly that panic into the quiet exit and
/// hands every other panic to the default hook. A hook rather than a writer wrapper because every command's output
/// path (human text, `--json`, diagnostics) prints with `println!`/`eprintln!` from many modules.
fn exit_quietly_when_output_is_closed() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload_as_str().unwrap_or_default();
        let closed = message.starts_with("failed printing to stdout")
            || message.starts_with("failed printing to stderr");
        if closed && message.contains("Broken pipe") {
            std::process::exit(CLOSED_OUTPUT);
        }
        default(info);
    }));
}

fn init_tracing(g: &Global) {
    let default = match g.verbose {
        0 | 1 => "warn",
        2 => "info,pgstrata=debug",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("STRATA_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

async fn run(cli: Cli, out: &Out) -> Result<(), Failure> {
    let g = &cli.global;
    match cli.command {
        Command::Init(a) => {
            let dir = a
                .dir
                .unwrap_or_else(|| PathBuf::from(a.name.rsplit('/').next().unwrap_or(&a.name)));
            let files =
                pgstrata::scaffold::init(&dir, &a.name, g.layout.package_schema.as_deref())?;
            out.created(&files);
            Ok(())
        }
        Command::New(a) => {
            let root = package_root(g)?;
            let file = pgstrata::scaffold::new_migration(&root, &a.name)?;
            // Shown relative to the current directory, as `init` shows its files.
            let shown = std::env::current_dir()
                .ok()
                .and_then(|cwd| file.strip_prefix(cwd).ok().map(PathBuf::from))
                .unwrap_or(file);
            out.created(&[shown]);
            Ok(())
        }
        Command::Plan(a) => {
            let project = load_project(g)?;
            let (db, target) = connect(g, Some(&project)).await?;
            let plan = pgstrata::plan(&db, &project, &plan_options(&a.flags)).await?;
            let safety = safety::PlanSafety::compute(&db, &project, &plan).await?;
            // What `up` would do to managed code, as `status` shows it.
            let code = pgstrata::managed::status(&db, &project).await?;
            out.plan(&project, &plan, &target, !a.no_sql, &safety, &code);
            plan.check(&plan_options(&a.flags))?;
            safety.check(a.flags.allow_lint_errors)
        }
        Command::Lint(a) => safety::lint(g, a, out).await,
        Command::Up(a) if a.fleet.is_fleet() => fleet::up(g, a, out).await,
        Command::Up(a) => {
            let project = load_project(g)?;
            let (mut db, target) = connect(g, Some(&project)).await?;
            let opts = up_options(&a, &project)?;
            let mut progress = out.progress();
            let result = pgstrata::up(&mut db, &project, &opts, &mut progress).await;
            progress.finish();
            let report = result?;
            out.up(&report, &target);
            Ok(())
        }
        Command::Status(a) if a.fleet.is_fleet() => fleet::status(g, a, out).await,
        Command::Status(a) => {
            let project = load_project(g)?;
            let (db, target) = connect(g, Some(&project)).await?;
            let plan = pgstrata::plan(&db, &project, &pgstrata::PlanOptions::default()).await?;
            let runs = pgstrata::history::runs(db.client(), 1).await?;
            let schemas: Vec<String> = plan.packages.iter().map(|p| p.schema.clone()).collect();
            let invalid = pgstrata::invalid_indexes(&db, &schemas).await?;
            let code = pgstrata::managed::status(&db, &project).await?;
            out.status(&plan, runs.first(), &target, &invalid, &code);
            let dirty = plan
                .packages
                .iter()
                .flat_map(|p| &p.migrations)
                .any(|m| m.state != pgstrata::MigrationState::Applied)
                || code
                    .iter()
                    .flat_map(|p| &p.objects)
                    .any(|o| o.state != pgstrata::managed::ObjectState::InSync);
            if a.exit_code && dirty {
                return Err(Failure::Silent);
            }
            Ok(())
        }
        Command::Test(a) => test(g, a, out).await,
        Command::Down(a) => {
            let project = if a.all_packages {
                None
            } else {
                try_load_project(g)?
            };
            let (mut db, target) = connect(g, project.as_ref()).await?;
            let opts = pgstrata::DownOptions {
                target: match (a.steps, a.to) {
                    (_, Some(to)) => pgstrata::DownTarget::To(to),
                    (Some(n), None) => pgstrata::DownTarget::Steps(n),
                    (None, None) => pgstrata::DownTarget::Steps(1),
                },
                packages: project
                    .as_ref()
                    .map(|p| p.packages().iter().map(|p| p.name().to_string()).collect()),
                dry_run: a.dry_run,
                session: match &project {
                    Some(p) => session_settings(&a.session, p),
                    None => flags_settings(&a.session),
                },
            };
            let mut progress = out.progress();
            let result = pgstrata::down(&mut db, &opts, &mut progress).await;
            progress.finish();
            out.down(&result?, &target);
            Ok(())
        }
        Command::Log(a) => {
            let project = try_load_project(g)?;
            let (db, _) = connect(g, project.as_ref()).await?;
            let runs = pgstrata::history::runs(db.client(), a.limit).await?;
            out.runs(&runs);
            Ok(())
        }
        Command::Dev(cmd) => dev(cmd, g, out),
        Command::Completions(a) => {
            let mut cmd = args::command();
            // Into a buffer, then printed: a closed stdout then ends Strata quietly, as for any other output.
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "strata", &mut script);
            print!("{}", String::from_utf8_lossy(&script));
            Ok(())
        }
        Command::Man(a) => man(a, out),
        Command::Adopt(a) => interop::adopt(a, g, out).await,
        Command::Baseline(a) => interop::baseline(a, g, out).await,
        Command::Export(a) => interop::export(a, g, out),
        Command::DumpSchema(a) => interop::dump_schema(a, g, out).await,
        Command::Inspect(a) => ops::inspect(a, g, out).await,
        Command::Backup(a) => ops::backup(a, g, out).await,
        Command::Restore(a) => ops::restore(a, g, out).await,
        Command::Diff(a) => declare::diff(a, g, out).await,
        Command::Generate(a) => declare::generate(a, g, out).await,
        Command::Schema(cmd) => declare::schema(cmd, g, out).await,
        Command::Console(a) => console::console(a, g).await,
        Command::Wait(a) => {
            let timeout = pgstrata::manifest::parse_duration(&a.timeout)
                .map_err(|m| Failure::Usage(miette::miette!("--timeout: {m}")))?;
            let options = connect_options(g, None)?;
            let waited = options
                .wait_until_ready(Duration::from_millis(timeout))
                .await?;
            out.waited(&options.redacted(), waited);
            Ok(())
        }
        Command::Db(cmd) => {
            let project = try_load_project(g)?;
            let options = connect_options(g, project.as_ref())?;
            match cmd {
                DbCommand::Create => {
                    let created = pgstrata::create_database(&options).await?;
                    out.db_changed("created", options.dbname(), created);
                }
                DbCommand::Drop => {
                    let dropped = pgstrata::drop_database(&options).await?;
                    out.db_changed("dropped", options.dbname(), dropped);
                }
            }
            Ok(())
        }
    }
}

/// `strata test`: deploy the code on disk in a transaction that is always rolled back, running the tests.
async fn test(g: &Global, a: TestArgs, out: &Out) -> Result<(), Failure> {
    let (project, roots) = load_project_with_roots(g)?;
    let (mut db, _target) = connect(g, Some(&project)).await?;
    let opts = pgstrata::UpOptions {
        plan: pgstrata::PlanOptions::default(),
        dry_run: true,
        session: session_settings(&a.session, &project),
        tests: pgstrata::TestMode::Always,
        test_options: pgstrata::TestOptions {
            seed: a.seed,
            filter: a.filter.clone(),
            packages: if a.all_packages { None } else { Some(roots) },
        },
        // Tests judge the code; lint findings are for deploys.
        allow_lint_errors: true,
        ..Default::default()
    };
    let format = if g.json {
        args::TestFormat::Json
    } else {
        a.format
    };
    let mut quiet = pgstrata::Quiet;
    match pgstrata::up(&mut db, &project, &opts, &mut quiet).await {
        Ok(report) => {
            for w in &report.warnings {
                eprintln!("warning: {w}");
            }
            match &report.tests {
                Some(t) => out.test_report(t, format),
                None => out.line("no tests ran"),
            }
            Ok(())
        }
        Err(Error::TestsFailed(failed)) => {
            out.test_report(&failed.report, format);
            Err(Failure::Silent)
        }
        Err(e) => Err(e.into()),
    }
}

fn dev(cmd: DevCommand, g: &Global, out: &Out) -> Result<(), Failure> {
    let cluster = dev_cluster(g)?;
    match cmd {
        DevCommand::Start => out.dev_status(&cluster.start()?),
        DevCommand::Stop => {
            cluster.stop()?;
            out.line("stopped");
        }
        DevCommand::Status => {
            let status = cluster.status()?;
            out.dev_status(&status);
            // Like `pg_ctl status`: scripts can ask `strata dev status` whether the server runs.
            if !status.running {
                return Err(Failure::Silent);
            }
        }
        DevCommand::Url { db } => {
            let db = match db {
                Some(db) => db,
                None => embedded_database(try_load_project(g)?.as_ref()),
            };
            out.plain(&cluster.url(&db)?)
        }
        DevCommand::Destroy => {
            cluster.destroy()?;
            out.line("destroyed");
        }
    }
    Ok(())
}

/// The dev cluster, run by the server binaries of `--pg-bin`/`STRATA_PG_BIN` when given.
fn dev_cluster(g: &Global) -> Result<pgstrata_embedded::DevCluster, Failure> {
    use pgstrata_embedded::{DevCluster, PgBinaries};
    let dir = DevCluster::default_dir();
    Ok(match &g.pg_bin {
        Some(bin) => DevCluster::with_binaries(
            dir,
            PgBinaries::from_dir_named(bin, "--pg-bin/STRATA_PG_BIN")?,
        )?,
        None => DevCluster::new(dir)?,
    })
}

/// The options of `up`, for one database or for each target of a fleet.
fn up_options(a: &args::UpArgs, project: &Project) -> Result<pgstrata::UpOptions, Failure> {
    Ok(pgstrata::UpOptions {
        plan: plan_options(&a.flags),
        dry_run: a.dry_run,
        session: session_settings(&a.session, project),
        allow_lint_errors: a.flags.allow_lint_errors,
        lock_retry: lock_retry(a.lock_retries, project)?,
        no_resume: a.no_resume,
        tests: if a.no_tests {
            pgstrata::TestMode::Skip
        } else {
            pgstrata::TestMode::Auto
        },
        test_options: pgstrata::TestOptions {
            seed: a.seed,
            ..Default::default()
        },
        // A fleet's targets share it: the same plan on targets in the same state is linted once.
        lint_memo: pgstrata::lint::LintMemo::new(),
    })
}

fn plan_options(f: &PlanFlags) -> pgstrata::PlanOptions {
    pgstrata::PlanOptions {
        target: f.target.clone(),
        allow_out_of_order: f.allow_out_of_order,
        allow_missing: f.allow_missing,
        accept_changed: f.accept_changed.clone(),
        require_down: f.require_down,
    }
}

fn flags_settings(f: &SessionFlags) -> pgstrata::SessionSettings {
    pgstrata::SessionSettings {
        lock_timeout: f.lock_timeout.clone(),
        statement_timeout: f.statement_timeout.clone(),
        lock_wait_timeout: f.lock_wait_timeout.clone(),
    }
}

/// `--lock-retries` wins over `[deploy]` of the last package in deploy order.
fn lock_retry(flag: Option<u32>, project: &Project) -> Result<pgstrata::LockRetry, Failure> {
    let mut retry = match project.packages().last() {
        Some(p) => pgstrata::LockRetry::from_manifest(p.deploy_settings()),
        None => pgstrata::LockRetry::default(),
    };
    if let Some(n) = flag {
        retry.retries = n;
    }
    Ok(retry)
}

/// Flags win over the manifest of the last package in deploy order (the one that uses the others).
fn session_settings(f: &SessionFlags, project: &Project) -> pgstrata::SessionSettings {
    let manifest = project
        .packages()
        .last()
        .map(|p| pgstrata::SessionSettings::from_manifest(p.deploy_settings()))
        .unwrap_or_default();
    flags_settings(f).or(&manifest)
}

fn package_root(g: &Global) -> Result<PathBuf, Failure> {
    match g.packages.as_slice() {
        [] => {
            let cwd = std::env::current_dir().map_err(|e| {
                Failure::Usage(miette::miette!("cannot read the current directory: {e}"))
            })?;
            for dir in cwd.ancestors() {
                if dir.join("strata.toml").is_file() || dir.join("pgpkg.toml").is_file() {
                    return Ok(dir.to_path_buf());
                }
            }
            Err(Error::PackageNotFound { start: cwd }.into())
        }
        [one] => Ok(one.clone()),
        _ => Err(Failure::Usage(miette::miette!(
            "give exactly one --package for this command"
        ))),
    }
}

fn load_project(g: &Global) -> Result<Project, Failure> {
    if let Some(project) = interop::layout_project(g)? {
        return Ok(project);
    }
    if g.packages.is_empty() {
        let cwd = std::env::current_dir().map_err(|e| {
            Failure::Usage(miette::miette!("cannot read the current directory: {e}"))
        })?;
        let package = pgstrata::Package::discover(&cwd).map_err(not_loaded)?;
        return Project::new(vec![package]).map_err(not_loaded);
    }
    Project::load(&g.packages).map_err(not_loaded)
}

/// The project, and the names of the packages asked for (not those found through `uses`).
fn load_project_with_roots(g: &Global) -> Result<(Project, Vec<String>), Failure> {
    let packages = if g.packages.is_empty() {
        let cwd = std::env::current_dir().map_err(|e| {
            Failure::Usage(miette::miette!("cannot read the current directory: {e}"))
        })?;
        vec![pgstrata::Package::discover(&cwd).map_err(not_loaded)?]
    } else {
        g.packages
            .iter()
            .map(pgstrata::Package::load)
            .collect::<Result<Vec<_>, _>>()
            .map_err(not_loaded)?
    };
    let roots = packages.iter().map(|p| p.name().to_string()).collect();
    Ok((Project::new(packages).map_err(not_loaded)?, roots))
}

/// The project if there is one here; `None` (not an error) when no manifest is found.
fn try_load_project(g: &Global) -> Result<Option<Project>, Failure> {
    match load_project(g) {
        Ok(p) => Ok(Some(p)),
        Err(Failure::Usage(r))
            if r.downcast_ref::<Error>()
                .is_some_and(|e| matches!(e, Error::PackageNotFound { .. })) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

fn connect_options(g: &Global, project: Option<&Project>) -> Result<ConnectOptions, Failure> {
    if g.embedded {
        let cluster = dev_cluster(g)?;
        cluster.start()?;
        let options = ConnectOptions::parse(&cluster.url(&embedded_database(project))?)?;
        return Ok(options);
    }
    Ok(ConnectOptions::from_env(g.database_url.as_deref())?)
}

/// The database `--embedded` uses on the shared dev cluster: one per project, named after its main package (the last
/// in deploy order), so two packages with the same schema name never share one; `postgres` outside a package.
fn embedded_database(project: Option<&Project>) -> String {
    project.and_then(|p| p.packages().last()).map_or_else(
        || "postgres".to_string(),
        |p| pgstrata::dev_database_name(p.name()),
    )
}

/// `strata man`: the manual page on stdout, or one page per command in a directory.
fn man(a: args::ManArgs, out: &Out) -> Result<(), Failure> {
    let cmd = args::command();
    let failed = |what: String| {
        move |e: std::io::Error| Failure::Failed(miette::miette!("cannot write {what}: {e}"))
    };
    match a.dir {
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut page)
                .map_err(failed("the manual page".into()))?;
            print!("{}", String::from_utf8_lossy(&page));
            Ok(())
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir).map_err(failed(dir.display().to_string()))?;
            clap_mangen::generate_to(cmd, &dir).map_err(failed(dir.display().to_string()))?;
            let mut pages: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map_err(failed(dir.display().to_string()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "1"))
                .collect();
            pages.sort();
            out.created(&pages);
            Ok(())
        }
    }
}

async fn connect(g: &Global, project: Option<&Project>) -> Result<(Database, String), Failure> {
    let options = connect_options(g, project)?;
    if g.embedded {
        pgstrata::create_database(&options).await?;
    }
    let target = options.redacted();
    let db = Database::connect(&options)
        .await
        .map_err(|e| without_a_database(g, e))?;
    Ok((db, target))
}

/// A connection that failed when no database was named (no -d, DATABASE_URL or --embedded): most likely a first run
/// that expected a server on the default socket. Say how to give one, instead of only the driver's message.
fn without_a_database(g: &Global, e: Error) -> Failure {
    if !e.is_connection() || g.database_url.is_some() || g.embedded {
        return e.into();
    }
    let message = std::iter::successors(Some(&e as &dyn std::error::Error), |e| e.source())
        .map(ToString::to_string)
        .fold(String::new(), |mut acc, m| {
            if !acc.contains(&m) {
                if !acc.is_empty() {
                    acc.push_str(": ");
                }
                acc.push_str(&m);
            }
            acc
        });
    Failure::Usage(miette::Report::new(
        miette::MietteDiagnostic::new(message)
            .with_code("strata::connect")
            .with_help(
                "no database was named: give one with -d/--database-url or DATABASE_URL (PG* variables and \
                 ~/.pgpass fill in the rest), or add --embedded to use a local throwaway PostgreSQL that strata \
                 starts itself",
            ),
    ))
}

/// A package that does not load (its strata.toml or files are invalid, or there is none) stops the command before
/// it starts: exit code 2, like a usage error.
fn not_loaded(e: Error) -> Failure {
    Failure::Usage(miette::Report::new(e))
}
