//! Interop commands and options: other tools' folders (`--dir`, `--layout`), `adopt`, `baseline`, `export`,
//! `dump-schema`.

use std::path::PathBuf;

use clap::Args;
use pgstrata::{AdoptReport, ExportReport, Layout, Package, Project, Tool};

use crate::args::{Global, SessionFlags};
use crate::render::Out;
use crate::{Failure, connect, connect_options, load_project, session_settings};

/// Options that read another tool's migration folder in place.
#[derive(Debug, Args, Clone)]
pub struct LayoutFlags {
    /// Another tool's migration folder, applied in place (dbmate, sqlx, diesel, golang-migrate, Flyway, refinery,
    /// up/down pairs, popx, postgres-migrations).
    #[arg(long, global = true, value_name = "PATH", help_heading = crate::args::PACKAGES)]
    pub dir: Option<PathBuf>,
    /// The folder's layout (detected when not given): dbmate, sqlx, diesel, golang-migrate, flyway, refinery,
    /// up-down, popx, postgres-migrations.
    #[arg(
        long,
        global = true,
        value_name = "LAYOUT",
        requires = "dir",
        help_heading = crate::args::PACKAGES
    )]
    pub layout: Option<String>,
    /// Package name for --dir (default: the folder's name, skipping generic names like db/migrations).
    #[arg(
        long,
        global = true,
        value_name = "NAME",
        requires = "dir",
        help_heading = crate::args::PACKAGES
    )]
    pub package_name: Option<String>,
    /// The package's schema: for --dir, the schema created if missing and put first on the search_path the folder's
    /// SQL runs with, for folders whose unqualified names mean another schema (default: public); for `init`, the new
    /// package's schema.
    #[arg(
        long = "schema",
        visible_alias = "package-schema",
        global = true,
        value_name = "SCHEMA",
        help_heading = crate::args::PACKAGES
    )]
    pub package_schema: Option<String>,
}

#[derive(Debug, Args)]
pub struct AdoptArgs {
    /// The tool whose tracking table to read (default: the folder's layout, else the one table found).
    #[arg(long, value_name = "TOOL")]
    pub from: Option<String>,
    /// The tracking table, if not the tool's default (SCHEMA.TABLE allowed).
    #[arg(long, value_name = "TABLE")]
    pub table: Option<String>,
    /// Proceed although the tool recorded versions that have no file.
    #[arg(long)]
    pub allow_missing: bool,
    /// Check and report, then roll back.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub session: SessionFlags,
}

#[derive(Debug, Args)]
pub struct BaselineArgs {
    /// The last migration the database already has (NAME, PACKAGE:NAME, or the tool's version).
    #[arg(long, value_name = "NAME")]
    pub to: String,
    /// Check and report, then roll back.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub session: SessionFlags,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// psql (one script), dbmate, flyway, sqlx, golang-migrate or diesel.
    #[arg(long, value_name = "FORMAT")]
    pub to: String,
    /// With --to dbmate, one package as installable SQL files: tables.sql (all migrations as one) and one file per
    /// managed-code file, each also valid for psql -f; replaces an earlier bundle in the folder.
    #[arg(long)]
    pub bundle: bool,
    /// The script file (psql; `-` for stdout) or the folder to create.
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct DumpSchemaArgs {
    /// Where to write the schema (default: stdout).
    #[arg(conflicts_with = "check")]
    pub file: Option<PathBuf>,
    /// Compare the database with FILE instead; exit 1 with a diff when they differ.
    #[arg(long, value_name = "FILE")]
    pub check: Option<PathBuf>,
    /// Leave out Strata's history comments.
    #[arg(long)]
    pub no_history: bool,
}

/// The project for `--dir` (plus any `--package`), or `None` without `--dir`.
pub fn layout_project(g: &Global) -> Result<Option<Project>, Failure> {
    let f = &g.layout;
    let Some(dir) = &f.dir else {
        if f.package_schema.is_some() {
            return Err(Failure::Usage(miette::miette!(
                help = "a Strata package's schema is `schema` in its strata.toml",
                "--schema applies to another tool's folder (--dir) and to `strata init`"
            )));
        }
        return Ok(None);
    };
    let layout = match &f.layout {
        Some(l) => Some(l.parse::<Layout>().map_err(crate::not_loaded)?),
        None => None,
    };
    // Detection and loading share their reads: each file is read once.
    let pkg = Package::from_folder(
        dir,
        layout,
        f.package_name.as_deref(),
        f.package_schema.as_deref(),
    )
    .map_err(crate::not_loaded)?;
    if !g.quiet {
        note_ignored(&pkg);
    }
    let mut packages = g
        .packages
        .iter()
        .map(Package::load)
        .collect::<Result<Vec<_>, _>>()
        .map_err(crate::not_loaded)?;
    packages.push(pkg);
    Ok(Some(Project::new(packages).map_err(crate::not_loaded)?))
}

/// Say on stderr which files of the folder its tool does not read (so neither does Strata), one line per reason.
fn note_ignored(pkg: &Package) {
    let mut by_reason: std::collections::BTreeMap<&str, Vec<&str>> = Default::default();
    for f in pkg.ignored_files() {
        by_reason.entry(&f.reason).or_default().push(&f.path);
    }
    for (reason, files) in by_reason {
        let shown: Vec<&str> = files.iter().take(5).copied().collect();
        let more = if files.len() > shown.len() {
            format!(" and {} more", files.len() - shown.len())
        } else {
            String::new()
        };
        eprintln!(
            "note: ignored {} file(s) ({reason}): {}{more}",
            files.len(),
            shown.join(", ")
        );
    }
}

pub async fn adopt(a: AdoptArgs, g: &Global, out: &Out) -> Result<(), Failure> {
    let project = load_project(g)?;
    let (mut db, target) = connect(g, Some(&project)).await?;
    let opts = pgstrata::AdoptOptions {
        from: a.from.as_deref().map(str::parse::<Tool>).transpose()?,
        table: a.table,
        allow_missing: a.allow_missing,
        dry_run: a.dry_run,
        session: session_settings(&a.session, &project),
    };
    let report = pgstrata::adopt(&mut db, &project, &opts, &mut pgstrata::Quiet).await?;
    render_adopt(out, &report, &target, "adopt");
    Ok(())
}

pub async fn baseline(a: BaselineArgs, g: &Global, out: &Out) -> Result<(), Failure> {
    let project = load_project(g)?;
    let (mut db, target) = connect(g, Some(&project)).await?;
    let opts = pgstrata::BaselineOptions {
        to: a.to,
        dry_run: a.dry_run,
        session: session_settings(&a.session, &project),
    };
    let report = pgstrata::baseline(&mut db, &project, &opts, &mut pgstrata::Quiet).await?;
    render_adopt(out, &report, &target, "baseline");
    Ok(())
}

pub fn export(a: ExportArgs, g: &Global, out: &Out) -> Result<(), Failure> {
    let project = load_project(g)?;
    let format: pgstrata::ExportFormat = a.to.parse()?;
    if a.bundle {
        return crate::bundle::export(&project, format, &a.out, out);
    }
    if format == pgstrata::ExportFormat::Psql && a.out.as_os_str() == "-" {
        let script = pgstrata::psql_script(&project)?;
        print!("{script}");
        return Ok(());
    }
    let report = pgstrata::export(&project, format, &a.out)?;
    render_export(out, &report);
    Ok(())
}

pub async fn dump_schema(a: DumpSchemaArgs, g: &Global, out: &Out) -> Result<(), Failure> {
    let project = crate::try_load_project(g)?;
    let options = connect_options(g, project.as_ref())?;
    let (db, _) = connect(g, project.as_ref()).await?;
    let pg_dump = match pgstrata_embedded::PgBinaries::find() {
        Ok(b) => b.tool("pg_dump"),
        Err(_) => PathBuf::from("pg_dump"),
    };
    let opts = pgstrata::DumpOptions {
        pg_dump,
        history: !a.no_history,
    };
    let text = pgstrata::dump_schema(&options, db.client(), &opts).await?;
    if let Some(file) = &a.check {
        let expected = std::fs::read_to_string(file).map_err(|source| {
            Failure::from(pgstrata::Error::Read {
                path: file.clone(),
                source,
            })
        })?;
        return match pgstrata::schema_diff(&expected, &text) {
            None => {
                out.line(&format!("{}: the database matches", file.display()));
                Ok(())
            }
            Some(diff) => {
                if out.is_json() {
                    out.json_value(&serde_json::json!({ "matches": false, "diff": diff }));
                } else {
                    println!("{diff}");
                    eprintln!(
                        "{} and the database differ (see the diff above: - file, + database)",
                        file.display()
                    );
                }
                Err(Failure::Silent)
            }
        };
    }
    match &a.file {
        Some(file) => {
            std::fs::write(file, &text).map_err(|source| {
                Failure::from(pgstrata::Error::Write {
                    path: file.clone(),
                    source,
                })
            })?;
            out.created(std::slice::from_ref(file));
        }
        None => print!("{text}"),
    }
    Ok(())
}

fn render_adopt(out: &Out, r: &AdoptReport, target: &str, command: &str) {
    if out.is_json() {
        out.json_value(r);
        return;
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if out.is_quiet() {
        return;
    }
    for b in &r.bootstrapped {
        println!("  + {b} (Strata's history tables)");
    }
    for a in &r.recorded {
        println!(
            "  recorded {}:{}{}{}",
            a.package,
            a.name,
            a.version
                .as_deref()
                .map(|v| format!("  (version {v})"))
                .unwrap_or_default(),
            a.verified
                .map(|v| format!("  [{v} checksum verified]"))
                .unwrap_or_default()
        );
    }
    for a in &r.repeatables {
        println!("  recorded repeatable {}:{}", a.package, a.name);
    }
    let what = match r.outcome {
        pgstrata::Outcome::DryRun => "Dry run: would record",
        pgstrata::Outcome::Noop => "Nothing new to record; already recorded",
        pgstrata::Outcome::Applied => "Recorded",
    };
    let count = if r.outcome == pgstrata::Outcome::Noop {
        r.already_recorded.len()
    } else {
        r.recorded.len()
    };
    println!(
        "{what} {count} migration(s) on {target} as {} ({command}; nothing was run).",
        r.source
    );
    if r.outcome != pgstrata::Outcome::Noop && !r.already_recorded.is_empty() {
        println!("{} were already recorded.", r.already_recorded.len());
    }
    if !r.pending.is_empty() {
        println!(
            "{} migration(s) not applied yet: `strata up` runs them ({}{}).",
            r.pending.len(),
            r.pending
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join(", "),
            if r.pending.len() > 3 { ", …" } else { "" }
        );
    }
}

fn render_export(out: &Out, r: &ExportReport) {
    if out.is_json() {
        out.json_value(r);
        return;
    }
    for w in &r.warnings {
        eprintln!("warning: {w}");
    }
    if out.is_quiet() {
        return;
    }
    println!(
        "Exported {} migration(s) as {} to {} ({} file(s){}).",
        r.migrations,
        r.format.name(),
        r.path.display(),
        r.files.len(),
        if r.renumbered { ", renumbered" } else { "" }
    );
}
