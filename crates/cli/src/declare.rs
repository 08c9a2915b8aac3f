//! Declarative schema commands: `diff`, `generate`, `schema check` (arguments, calls into `pgstrata-declare`,
//! rendering).

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use pgstrata_declare::{Comparison, Context, Options, Source};

use crate::args::Global;
use crate::render::Out;
use crate::{Failure, try_load_project};

/// Where shadow databases live and where the declared schema is.
#[derive(Debug, Args, Clone)]
pub struct ShadowFlags {
    /// A server for shadow databases (Strata creates and drops its own databases there). Default: the `strata dev`
    /// cluster, started if needed.
    #[arg(
        long,
        value_name = "URL",
        env = "STRATA_SHADOW_URL",
        hide_env_values = true
    )]
    pub shadow_url: Option<String>,
    /// The declared schema directory (default: schema/ in the package).
    #[arg(long, value_name = "DIR")]
    pub schema_dir: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// What to migrate from: a database URL, a directory or .sql file (loaded into a shadow database), or
    /// `migrations` (the package's, replayed into a shadow database). Default: migrations.
    #[arg(long, value_name = "SOURCE")]
    pub from: Option<String>,
    /// What to migrate to (same kinds). Default: the package's declared schema directory.
    #[arg(long, value_name = "SOURCE")]
    pub to: Option<String>,
    /// Output: a Strata migration (up and down), a plain script for `psql -f`, or the actions as JSON.
    #[arg(long, value_enum, default_value_t = DiffFormat::Migration)]
    pub format: DiffFormat,
    /// Accept actions that lose data (dropped tables and columns, removed enum values, narrowing type changes).
    #[arg(long)]
    pub allow_data_loss: bool,
    /// Build new indexes of existing tables in the transaction instead of CONCURRENTLY after it.
    #[arg(long)]
    pub no_concurrently: bool,
    #[command(flatten)]
    pub shadow: ShadowFlags,
}

/// How `strata diff` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DiffFormat {
    /// `-- migrate:up` / `-- migrate:down`, no-transaction sections marked.
    Migration,
    /// The up statements as a plain script.
    Sql,
    /// The plans (actions, hazards, data loss, unmodelled objects) as JSON.
    Json,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Migration name (letters, digits, _ and -); the file is NNNN_NAME.sql, listed in the manifest.
    pub name: String,
    /// Accept actions that lose data.
    #[arg(long)]
    pub allow_data_loss: bool,
    /// Write the migration without proving it on a shadow copy first.
    #[arg(long)]
    pub no_verify: bool,
    /// Build new indexes of existing tables in the transaction instead of CONCURRENTLY after it.
    #[arg(long)]
    pub no_concurrently: bool,
    #[command(flatten)]
    pub shadow: ShadowFlags,
}

#[derive(Debug, Subcommand)]
pub enum SchemaCommand {
    /// CI gate: replay the migrations and load the declared schema into shadow databases; exit 1 with the diff
    /// when they disagree.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub shadow: ShadowFlags,
}

impl From<pgstrata_declare::Error> for Failure {
    fn from(e: pgstrata_declare::Error) -> Failure {
        if e.is_usage() {
            Failure::Usage(e.into_report())
        } else {
            Failure::Failed(e.into_report())
        }
    }
}

fn context(g: &Global, flags: &ShadowFlags, needs_package: bool) -> Result<Context, Failure> {
    let project = if needs_package || !g.packages.is_empty() {
        try_load_project(g)?
    } else {
        None
    };
    Ok(Context {
        project,
        schema_dir: flags.schema_dir.clone(),
        shadow_url: flags.shadow_url.clone(),
        template_cache: None,
    })
}

fn notes(c: &Comparison) {
    for n in c.up.notes.iter() {
        eprintln!("note: {n}");
    }
    let mut both = 0;
    for u in &c.up.unmodeled {
        let side = match u.side {
            pgstrata_catalog::Side::Source => "source only",
            pgstrata_catalog::Side::Target => "target only",
            pgstrata_catalog::Side::Both => {
                both += 1;
                continue;
            }
        };
        eprintln!("unmodeled: {} ({side})", u.identity);
    }
    if both > 0 {
        eprintln!(
            "unmodeled: {both} objects present on both sides are not compared (--json lists them)"
        );
    }
    for l in c.up.data_loss() {
        eprintln!("data loss: {l}");
    }
}

/// `strata diff`.
pub async fn diff(a: DiffArgs, g: &Global, out: &Out) -> Result<(), Failure> {
    let from = a.from.as_deref().map_or(Source::Migrations, Source::parse);
    let needs_package = a.from.is_none()
        || a.to.is_none()
        || from == Source::Migrations
        || a.to.as_deref() == Some("migrations");
    let ctx = context(g, &a.shadow, needs_package)?;
    let to = match a.to.as_deref() {
        Some(t) => Source::parse(t),
        None => Source::Files(ctx.schema_dir()?),
    };
    let opts = Options {
        allow_data_loss: a.allow_data_loss,
        verify: false,
        concurrent_indexes: !a.no_concurrently,
    };
    let c = pgstrata_declare::compare(&from, &to, &ctx, &opts).await?;
    let format = if g.json { DiffFormat::Json } else { a.format };
    match format {
        DiffFormat::Json => out.json_value(&serde_json::json!({
            "from": c.from,
            "to": c.to,
            "up": c.up,
            "down": c.down,
            "migration": if c.up.is_empty() { String::new() } else { c.migration() },
        })),
        _ if c.up.is_empty() => {
            if !g.quiet {
                notes(&c);
            }
        }
        DiffFormat::Migration => {
            if !g.quiet {
                notes(&c);
            }
            print!("{}", c.migration());
        }
        DiffFormat::Sql => {
            if !g.quiet {
                notes(&c);
            }
            print!("{}", c.up.script());
        }
    }
    Ok(())
}

/// `strata generate NAME`.
pub async fn generate(a: GenerateArgs, g: &Global, out: &Out) -> Result<(), Failure> {
    let ctx = context(g, &a.shadow, true)?;
    let opts = Options {
        allow_data_loss: a.allow_data_loss,
        verify: !a.no_verify,
        concurrent_indexes: !a.no_concurrently,
    };
    let r = pgstrata_declare::generate(&a.name, &ctx, &opts).await?;
    if out.is_json() {
        out.json_value(&serde_json::json!({
            "path": r.path,
            "proven": r.proven,
            "up": r.comparison.up,
            "down": r.comparison.down,
            "review": r.review,
        }));
        return Ok(());
    }
    let Some(path) = &r.path else {
        out.line("nothing to generate: the migrations already build the declared schema");
        return Ok(());
    };
    if !g.quiet {
        notes(&r.comparison);
    }
    out.line(&format!(
        "created {} ({} actions{})",
        path.display(),
        r.comparison.up.actions.len(),
        if r.proven {
            ", proven on a shadow copy: up converges, down restores"
        } else {
            ", not proven (--no-verify)"
        }
    ));
    for l in &r.review.locks {
        let mut what = l.locks.join(", ");
        if let Some(w) = &l.rewrite {
            what.push_str(&format!("; rewrites: {w}"));
        }
        if let Some(s) = &l.scan {
            what.push_str(&format!("; scans: {s}"));
        }
        out.line(&format!("  line {}: {}: {what}", l.line, l.command));
    }
    for f in &r.review.lint {
        out.line(&format!(
            "  line {}: {} [{}]: {}",
            f.line, f.severity, f.rule, f.message
        ));
    }
    Ok(())
}

/// `strata schema …`.
pub async fn schema(cmd: SchemaCommand, g: &Global, out: &Out) -> Result<(), Failure> {
    match cmd {
        SchemaCommand::Check(a) => {
            let ctx = context(g, &a.shadow, true)?;
            let c = pgstrata_declare::check(&ctx, &Options::default()).await?;
            if out.is_json() {
                out.json_value(&serde_json::json!({
                    "in_sync": c.up.is_empty(),
                    "up": c.up,
                    "migration": if c.up.is_empty() { String::new() } else { c.migration() },
                }));
            } else if c.up.is_empty() {
                out.line("in sync: the migrations build the declared schema");
            } else {
                eprintln!(
                    "the migrations and the declared schema disagree ({} actions); `strata generate NAME` writes this migration:",
                    c.up.actions.len()
                );
                notes(&c);
                print!("{}", c.migration());
            }
            if c.up.is_empty() {
                Ok(())
            } else {
                Err(Failure::Silent)
            }
        }
    }
}
