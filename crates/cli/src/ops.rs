//! `inspect`, `backup`, `restore`: arguments and the calls into `pgstrata-ops`.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use pgstrata_ops::backup::{self, Format};
use pgstrata_ops::inspect::{self, InspectSettings, Verdict};

use crate::args::Global;
use crate::render::Out;
use crate::{Failure, connect, connect_options, try_load_project};

impl From<pgstrata_ops::Error> for Failure {
    fn from(e: pgstrata_ops::Error) -> Failure {
        if e.is_usage() || e.is_connection() {
            Failure::Usage(miette::Report::new(e))
        } else {
            Failure::Failed(miette::Report::new(e))
        }
    }
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Checks or groups to run (default: `[inspect] checks` of strata.toml, else all); `--list` names them.
    #[arg(value_name = "CHECK")]
    pub checks: Vec<String>,
    /// Run again every DURATION (e.g. 5s) and redraw, with changes since the last round; Ctrl-C stops.
    #[arg(long, value_name = "DURATION")]
    pub watch: Option<String>,
    /// Exit with 1 when a check finds a problem or its query fails.
    #[arg(long, conflicts_with = "watch")]
    pub exit_code: bool,
    /// With --exit-code: warnings too.
    #[arg(long, requires = "exit_code")]
    pub deny_warnings: bool,
    /// Rows each check lists (default: `[inspect] top`, else 10).
    #[arg(long, value_name = "N")]
    pub top: Option<u32>,
    /// List the checks and the `[inspect]` settings in effect, then exit.
    #[arg(long)]
    pub list: bool,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// One compressed file, dumped by one process (`pg_dump -Fc`).
    Custom,
    /// A directory of compressed files, dumped in parallel with --jobs (`pg_dump -Fd`).
    Directory,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The archive to create: a file (custom format) or a new directory (directory format). Default:
    /// DATABASE-TIMESTAMP.dump in the current directory.
    #[arg(value_name = "FILE|DIR")]
    pub target: Option<PathBuf>,
    /// Archive format (default: directory when the target ends with `/`, else custom).
    #[arg(long, value_enum)]
    pub format: Option<FormatArg>,
    /// Parallel pg_dump jobs (directory format).
    #[arg(short = 'j', long, default_value_t = 1, value_name = "N")]
    pub jobs: u32,
    /// Schema only, no data.
    #[arg(long)]
    pub schema_only: bool,
    /// The pg_dump to run (default: the server's major version, found where --embedded finds PostgreSQL).
    #[arg(long, value_name = "PATH")]
    pub pg_dump: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The archive (a file or directory written by `strata backup` or `pg_dump -Fc/-Fd`).
    #[arg(value_name = "FILE|DIR")]
    pub archive: PathBuf,
    /// Restore into this database (URL or conninfo) instead of the one the connection settings name.
    #[arg(long, value_name = "URL")]
    pub into: Option<String>,
    /// Parallel pg_restore jobs (with 1, the restore is one transaction: all or nothing).
    #[arg(short = 'j', long, default_value_t = 1, value_name = "N")]
    pub jobs: u32,
    /// Restore into a throwaway database and compare row counts and Strata's history with the manifest; with
    /// --into, restore there and compare.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: the throwaway database lives in a throwaway local cluster (local server binaries) instead
    /// of on the connection's server.
    #[arg(long, requires = "verify", conflicts_with = "into")]
    pub shadow: bool,
    /// Drop the archive's objects before restoring them (needed when the target database is not empty).
    #[arg(long)]
    pub clean: bool,
    /// Do not restore ownership and privileges (for a server without the original roles).
    #[arg(long)]
    pub no_owner: bool,
    /// The pg_restore to run (default: the target server's major version).
    #[arg(long, value_name = "PATH")]
    pub pg_restore: Option<PathBuf>,
}

/// `[inspect]` of the package's strata.toml (the `-p` one, else the one the current directory is in).
pub(crate) fn settings(g: &Global) -> Result<InspectSettings, Failure> {
    let manifest = match g.packages.last() {
        Some(dir) => Some(dir.join("strata.toml")),
        None => std::env::current_dir().ok().and_then(|cwd| {
            cwd.ancestors()
                .map(|d| d.join("strata.toml"))
                .find(|p| p.is_file())
        }),
    };
    match manifest {
        Some(path) if path.is_file() => Ok(InspectSettings::from_manifest(&path)?),
        _ => Ok(InspectSettings::default()),
    }
}

pub async fn inspect(a: InspectArgs, g: &Global, out: &Out) -> Result<(), Failure> {
    let mut settings = settings(g)?;
    if let Some(top) = a.top {
        settings.top = top.max(1);
    }
    if a.list {
        out.inspect_list(&settings);
        return Ok(());
    }
    let names = if a.checks.is_empty() {
        settings.checks.clone()
    } else {
        a.checks.clone()
    };
    let checks = inspect::select(&names)?;
    let watch = match &a.watch {
        Some(w) => {
            let ms = pgstrata::manifest::parse_duration(w)
                .map_err(|m| Failure::Usage(miette::miette!("--watch: {m}")))?;
            Some(Duration::from_millis(ms.max(500)))
        }
        None => None,
    };
    // The Strata check compares with the package files when there are some; a manifest pgstrata cannot load
    // leaves it to the database alone (its error is shown, the other checks still run).
    let project = match try_load_project(g) {
        Ok(p) => p,
        Err(Failure::Usage(r) | Failure::Failed(r)) => {
            eprintln!("warning: the strata check reads the database alone: {r}");
            None
        }
        Err(Failure::Silent) => None,
    };
    let (db, _) = connect(g, project.as_ref()).await?;
    let opts = inspect::InspectOptions { checks, settings };
    let Some(every) = watch else {
        let report = inspect::inspect(&db, &opts, project.as_ref()).await?;
        out.inspect(&report, None);
        let fail = report.any_failed()
            || report.worst() == Verdict::Problem
            || (a.deny_warnings && report.worst() == Verdict::Warning);
        if a.exit_code && fail {
            return Err(Failure::Silent);
        }
        return Ok(());
    };
    let mut previous = None;
    loop {
        let report = inspect::inspect(&db, &opts, project.as_ref()).await?;
        out.inspect_watch(&report, previous.as_ref(), every);
        previous = Some(report);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
}

pub async fn backup(a: BackupArgs, g: &Global, out: &Out) -> Result<(), Failure> {
    let options = connect_options(g, None)?;
    if g.embedded {
        pgstrata::create_database(&options).await?;
    }
    let format = match a.format {
        Some(FormatArg::Custom) => Format::Custom,
        Some(FormatArg::Directory) => Format::Directory,
        None if a
            .target
            .as_ref()
            .is_some_and(|t| t.as_os_str().to_string_lossy().ends_with('/')) =>
        {
            Format::Directory
        }
        None => Format::Custom,
    };
    let path = a.target.clone().unwrap_or_else(|| {
        backup::default_archive_name(options.dbname(), format, chrono::Utc::now())
    });
    // -p limits the backup to those packages' schemas (and Strata's history).
    let schemas = if g.packages.is_empty() {
        Vec::new()
    } else {
        let project = pgstrata::Project::load(&g.packages)?;
        project
            .packages()
            .iter()
            .map(|p| p.schema().to_string())
            .collect()
    };
    let opts = backup::BackupOptions {
        path,
        format,
        jobs: a.jobs,
        schema_only: a.schema_only,
        schemas,
        pg_dump: a.pg_dump,
    };
    let mut progress = out.backup_progress();
    let result = backup::backup(&options, &opts, &mut progress).await;
    progress.finish();
    let report = result?;
    out.backup(&report);
    Ok(())
}

pub async fn restore(a: RestoreArgs, g: &Global, out: &Out) -> Result<(), Failure> {
    let opts = backup::RestoreOptions {
        archive: a.archive.clone(),
        jobs: a.jobs,
        clean: a.clean,
        no_owner: a.no_owner,
        pg_restore: a.pg_restore.clone(),
    };
    let mut progress = out.backup_progress();
    let result = match (&a.into, a.verify) {
        (None, true) => {
            let target = if a.shadow {
                backup::VerifyTarget::Shadow
            } else {
                backup::VerifyTarget::Server(Box::new(connect_options(g, None)?))
            };
            backup::verify(&target, &opts, &mut progress).await
        }
        (into, verify) => {
            let target = match into {
                Some(url) => pgstrata_conn::ConnectOptions::from_env(Some(url))?,
                None => connect_options(g, None)?,
            };
            match backup::restore(&target, &opts, &mut progress).await {
                Ok(mut report) if verify => {
                    let verification = verify_in_place(&target, &report).await;
                    report.verification = Some(verification?);
                    Ok(report)
                }
                other => other,
            }
        }
    };
    progress.finish();
    let report = result?;
    out.restore(&report);
    Ok(())
}

/// `--into URL --verify`: compare the database just restored with the manifest.
async fn verify_in_place(
    target: &pgstrata_conn::ConnectOptions,
    report: &backup::RestoreReport,
) -> Result<backup::Verification, pgstrata_ops::Error> {
    let Some(manifest) = &report.manifest else {
        return Err(pgstrata_ops::Error::Manifest {
            path: backup::BackupManifest::path_for(&report.archive),
            message:
                "missing: --verify compares the restore with the manifest `strata backup` writes"
                    .into(),
        });
    };
    backup::compare_with_manifest(target, manifest).await
}
