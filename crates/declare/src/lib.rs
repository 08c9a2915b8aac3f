//! # pgstrata-declare — declarative schema for Strata
//!
//! Keep tables, types and indexes in SQL files; let Strata write the migration. This crate puts
//! [`pgstrata_catalog`] (read, compare, order, render: no dependency on the rest of Strata) together with Strata's
//! packages, migrations and shadow databases:
//!
//! - a [`Source`] is a database URL, a directory or `.sql` file of declared schema (loaded into a **shadow
//!   database**), or a package's migrations (replayed into a shadow database with [`pgstrata::up`]);
//! - [`compare`] reads both sides into catalogs (same major version, or [`Error::VersionMismatch`]) and plans up
//!   and down;
//! - [`generate`] writes the migration into the package, after **proving** it: applied to the source's shadow
//!   database (what the migrations build, thrown away afterwards) it must converge to the target (a second diff is
//!   empty), and its down part must bring that database back;
//! - [`check`] is the CI gate: the migrations and the declared files must agree.
//!
//! Shadow databases live on the `strata dev` cluster (started if needed, as `--embedded` does) or on a server
//! given with `--shadow-url` ([`Shadow`]). In a package, Strata's own schema, the schemas of the packages it uses
//! and the package's **managed code** (functions, views and triggers deployed by `strata up` from code files) are
//! left out of the comparison: managed code is dropped by a migration only when a change beneath it requires it,
//! and `up` restores it afterwards.
//!
//! ```no_run
//! # async fn demo() -> Result<(), pgstrata_declare::Error> {
//! use pgstrata_declare::{Context, Options, Source};
//! let project = pgstrata::Project::load(&["db/billing"])?;
//! let ctx = Context::for_project(project, None);
//! let report = pgstrata_declare::check(&ctx, &Options::default()).await?;
//! if !report.up.is_empty() {
//!     eprintln!("the migrations and schema/ disagree:\n{}", report.up.script());
//! }
//! # let _ = Source::Migrations;
//! # Ok(()) }
//! ```
#![deny(missing_docs)]

mod error;
mod load;
mod review;
mod shadow;

use std::path::{Path, PathBuf};

use pgstrata::{Package, Project};
use pgstrata_catalog::{Catalog, DiffOptions, ObjectId, Plan, QName, ReadOptions, Renames};

pub use error::{Error, LoadError, Result};
pub use load::{DeclaredFile, RENAMED_FROM, collect, renames};
pub use review::{LintNote, LockNote, Review, review};
pub use shadow::{CacheKey, Shadow, ShadowDb};

/// One side of a comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A live database (URL or conninfo; PG* variables and ~/.pgpass fill the rest).
    Database(String),
    /// A directory of `.sql` files, or one file, loaded into a shadow database.
    Files(PathBuf),
    /// The package's migrations, replayed into a shadow database.
    Migrations,
}

impl Source {
    /// `migrations`, a URL or conninfo (`postgres://…`, `host=… dbname=…`), else a path.
    pub fn parse(text: &str) -> Source {
        if text == "migrations" {
            Source::Migrations
        } else if text.starts_with("postgres://")
            || text.starts_with("postgresql://")
            || (text.contains('=') && !Path::new(text).exists())
        {
            Source::Database(text.to_string())
        } else {
            Source::Files(PathBuf::from(text))
        }
    }

    fn describe(&self) -> String {
        match self {
            Source::Database(url) => pgstrata_conn::ConnectOptions::from_env(Some(url))
                .map_or_else(|_| "the database".to_string(), |o| o.redacted()),
            Source::Files(p) => p.display().to_string(),
            Source::Migrations => "the migrations".to_string(),
        }
    }
}

/// Where a comparison happens: the package (if any) and the shadow server.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// The project whose last package is compared (its migrations, its declared schema); `None` for two plain
    /// sources.
    pub project: Option<Project>,
    /// The declared schema directory (default: `schema/` in the package).
    pub schema_dir: Option<PathBuf>,
    /// A server for shadow databases (default: the `strata dev` cluster).
    pub shadow_url: Option<String>,
    /// Keep the replayed migrations on the shadow server as a template database, copied instead of replayed while
    /// nothing they depend on changes ([`Shadow::with_cache`]). `None`: on the `strata dev` cluster only.
    pub template_cache: Option<bool>,
}

impl Context {
    /// The context of a project's last package.
    pub fn for_project(project: Project, shadow_url: Option<String>) -> Context {
        Context {
            project: Some(project),
            schema_dir: None,
            shadow_url,
            template_cache: None,
        }
    }

    /// The package compared: the project's last (the one that uses the others).
    pub fn package(&self) -> Option<&Package> {
        self.project.as_ref().and_then(|p| p.packages().last())
    }

    /// The declared schema directory: the one given, else `schema/` in the package.
    pub fn schema_dir(&self) -> Result<PathBuf> {
        if let Some(d) = &self.schema_dir {
            return Ok(d.clone());
        }
        let root = self.package().and_then(|p| p.root()).ok_or_else(|| {
            Error::usage(
                "no package here to find the declared schema in",
                Some("run in a package directory (or pass --package), or give --to DIR / --schema-dir DIR"),
            )
        })?;
        Ok(root.join("schema"))
    }

    fn default_schema(&self) -> String {
        self.package()
            .map_or_else(|| "public".to_string(), |p| p.schema().to_string())
    }

    fn read_options(&self) -> ReadOptions {
        let mut exclude = vec!["strata".to_string()];
        if let Some(project) = &self.project {
            let main = self.package().map(|p| p.name().to_string());
            for p in project.packages() {
                if Some(p.name()) != main.as_deref() && p.schema() != self.default_schema() {
                    exclude.push(p.schema().to_string());
                }
            }
        }
        ReadOptions {
            exclude_schemas: exclude,
        }
    }

    /// Mark the package's managed code as left to managed code.
    fn mark_managed(&self, catalog: &mut Catalog) {
        let Some(pkg) = self.package() else {
            return;
        };
        let schema = pkg.schema().to_string();
        let mut functions = Vec::new();
        let mut views = Vec::new();
        let mut triggers = Vec::new();
        for o in &pkg.code().objects {
            let name = QName::new(
                o.name.schema.clone().unwrap_or_else(|| schema.clone()),
                o.name.name.clone(),
            );
            match o.kind {
                pgstrata::CodeKind::Function | pgstrata::CodeKind::Procedure => {
                    functions.push(name)
                }
                pgstrata::CodeKind::View => views.push(name),
                pgstrata::CodeKind::Trigger => {
                    if let Some(t) = &o.table {
                        triggers.push((
                            QName::new(
                                t.schema.clone().unwrap_or_else(|| schema.clone()),
                                t.name.clone(),
                            ),
                            o.name.name.clone(),
                        ));
                    }
                }
                // Aggregates, operators and casts are not modelled by the catalog (they are listed as unmodelled
                // objects, never diffed), so there is nothing to leave to managed code.
                pgstrata::CodeKind::Comment
                | pgstrata::CodeKind::Aggregate
                | pgstrata::CodeKind::Operator
                | pgstrata::CodeKind::Cast => {}
            }
        }
        catalog.mark_external(|id| match id {
            ObjectId::Function { name, .. } => functions.contains(name),
            ObjectId::View { name } => views.contains(name),
            ObjectId::Trigger { table, name } => {
                triggers.iter().any(|(t, n)| t == table && n == name)
            }
            _ => false,
        });
    }
}

/// Options of [`compare`], [`generate`] and [`check`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Accept actions that lose data (dropped tables and columns, removed enum values, narrowing type changes).
    pub allow_data_loss: bool,
    /// Prove a generated migration before writing it (default on).
    pub verify: bool,
    /// Build new indexes of existing tables concurrently, after the transaction (default on).
    pub concurrent_indexes: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            allow_data_loss: false,
            verify: true,
            concurrent_indexes: true,
        }
    }
}

/// A side, read.
struct Side {
    catalog: Catalog,
    renames: Renames,
    db: Option<ShadowDb>,
    label: String,
}

/// The result of a comparison.
#[derive(Debug, Clone)]
pub struct Comparison {
    /// What turns the source into the target.
    pub up: Plan,
    /// What turns it back.
    pub down: Plan,
    /// The source, as shown in messages.
    pub from: String,
    /// The target, as shown in messages.
    pub to: String,
    /// Renames declared in the target's files.
    pub renames: Renames,
}

impl Comparison {
    /// The Strata migration (`-- migrate:up` / `-- migrate:down`).
    pub fn migration(&self) -> String {
        pgstrata_catalog::migration(&self.up, &self.down)
    }
}

/// The shadow server of `ctx`, opened once and shared by both sides.
async fn open_shadow(ctx: &Context) -> Result<Shadow> {
    let shadow = match &ctx.shadow_url {
        Some(url) => Shadow::url(url).await?,
        None => Shadow::dev().await?,
    };
    Ok(match ctx.template_cache {
        Some(cache) => shadow.with_cache(cache),
        None => shadow,
    })
}

/// Both sides, read at once: two connections (and, for shadow sides, two databases) that the server works on in
/// parallel, so a replay of the migrations and a load of the declared files take the longer of the two, not the
/// sum.
async fn read_both(from: &Source, to: &Source, ctx: &Context) -> Result<(Side, Side)> {
    let needs_shadow = |s: &Source| !matches!(s, Source::Database(_));
    let shadow = if needs_shadow(from) || needs_shadow(to) {
        Some(open_shadow(ctx).await?)
    } else {
        None
    };
    let (a, b) = tokio::join!(
        read_side(from, ctx, shadow.as_ref()),
        read_side(to, ctx, shadow.as_ref())
    );
    match (a, b) {
        (Ok(a), Ok(b)) => Ok((a, b)),
        (Err(e), Ok(other)) | (Ok(other), Err(e)) => {
            drop_side(other).await;
            Err(e)
        }
        (Err(e), Err(_)) => Err(e),
    }
}

async fn read_side(source: &Source, ctx: &Context, shadow: Option<&Shadow>) -> Result<Side> {
    let opts = ctx.read_options();
    let label = source.describe();
    let started = std::time::Instant::now();
    let shadow = || shadow.ok_or_else(|| Error::usage("no shadow server", None));
    let side = match source {
        Source::Database(url) => {
            let options = pgstrata_conn::ConnectOptions::from_env(Some(url))?;
            let db = pgstrata::Database::connect(&options).await?;
            let catalog = pgstrata_catalog::read(db.client(), &opts).await?;
            Side {
                catalog,
                renames: Renames::default(),
                db: None,
                label,
            }
        }
        Source::Migrations => {
            let project = ctx.project.as_ref().ok_or_else(|| {
                Error::usage(
                    "`migrations` needs a package",
                    Some("run in a package directory, or pass --package"),
                )
            })?;
            let shadow = shadow()?;
            let sdb = replay(shadow, project).await?;
            tracing::debug!("declare: migrations in place after {:?}", started.elapsed());
            let db = sdb.connect().await?;
            let catalog = pgstrata_catalog::read(db.client(), &opts).await?;
            drop(db);
            tracing::debug!(
                "declare: migrations' catalog read after {:?}",
                started.elapsed()
            );
            Side {
                catalog,
                renames: Renames::default(),
                db: Some(sdb),
                label,
            }
        }
        Source::Files(path) => {
            let files = load::collect(path)?;
            let sdb = shadow()?.database("declared").await?;
            let mut db = sdb.connect().await?;
            let mut all_files = files.clone();
            let mut stmts = load::statements(&files);
            if let Some(pkg) = ctx.package() {
                prepare_package(&mut db, ctx, pkg).await?;
                // The package's managed code loads with the declared files (they may use each other).
                let base = all_files.len();
                for f in &pkg.code().files {
                    all_files.push(DeclaredFile {
                        path: PathBuf::from(&f.display),
                        text: f.text.to_string(),
                    });
                }
                for o in &pkg.code().objects {
                    stmts.push(load::Stmt {
                        file: base + o.file,
                        range: o.range.clone(),
                        sql: o.sql.clone(),
                    });
                }
            }
            let schema = ctx.default_schema();
            db.client()
                .batch_execute(&format!(
                    "SET search_path = {}, \"$user\", public",
                    pgstrata_catalog::quote_ident(&schema)
                ))
                .await
                .map_err(Error::db("setting the search_path of the shadow database"))?;
            load::run(db.client(), &all_files, stmts).await?;
            tracing::debug!(
                "declare: declared files loaded after {:?}",
                started.elapsed()
            );
            let catalog = pgstrata_catalog::read(db.client(), &opts).await?;
            drop(db);
            tracing::debug!(
                "declare: declared files' catalog read after {:?}",
                started.elapsed()
            );
            Side {
                catalog,
                renames: load::renames(&files, &schema),
                db: Some(sdb),
                label,
            }
        }
    };
    let mut side = side;
    ctx.mark_managed(&mut side.catalog);
    Ok(side)
}

/// A shadow database holding what the project's migrations build: a copy of the cached replay when the shadow
/// server keeps one for exactly these migrations, else replayed with `strata up` (and then kept, when it keeps
/// them).
async fn replay(shadow: &Shadow, project: &Project) -> Result<ShadowDb> {
    let key = shadow
        .caches()
        .then(|| CacheKey::of(project, shadow.version_num()));
    if let Some(key) = &key
        && let Some(sdb) = shadow.from_cache(key, "migrations").await?
    {
        tracing::debug!("declare: migrations copied from {}", key.database());
        return Ok(sdb);
    }
    let sdb = shadow.database("migrations").await?;
    let mut db = sdb.connect().await?;
    let up = pgstrata::UpOptions {
        tests: pgstrata::TestMode::Skip,
        allow_lint_errors: true,
        ..Default::default()
    };
    pgstrata::up(&mut db, project, &up, &mut pgstrata::Quiet).await?;
    drop(db);
    if let Some(key) = &key {
        shadow.store(&sdb, key).await;
    }
    Ok(sdb)
}

/// The state declared files start from in a package: the packages it uses deployed, its schema and extensions.
async fn prepare_package(db: &mut pgstrata::Database, ctx: &Context, pkg: &Package) -> Result<()> {
    if let Some(project) = &ctx.project {
        let deps: Vec<Package> = project
            .packages()
            .iter()
            .filter(|p| p.name() != pkg.name())
            .cloned()
            .collect();
        if !deps.is_empty() {
            let deps = Project::new(deps)?;
            let up = pgstrata::UpOptions {
                tests: pgstrata::TestMode::Skip,
                allow_lint_errors: true,
                ..Default::default()
            };
            pgstrata::up(db, &deps, &up, &mut pgstrata::Quiet).await?;
        }
    }
    let mut sql = format!(
        "CREATE SCHEMA IF NOT EXISTS {};",
        pgstrata_catalog::quote_ident(pkg.schema())
    );
    for e in pkg.extensions() {
        sql.push_str(&format!(
            " CREATE EXTENSION IF NOT EXISTS {};",
            pgstrata_catalog::quote_ident(e)
        ));
    }
    db.client()
        .batch_execute(&sql)
        .await
        .map_err(Error::db(format!(
            "creating schema {} in the shadow database",
            pkg.schema()
        )))
}

fn check_versions(a: &Side, b: &Side) -> Result<()> {
    let (x, y) = (a.catalog.major_version(), b.catalog.major_version());
    if x != y {
        return Err(Error::VersionMismatch {
            what: a.label.clone(),
            left: x,
            other: b.label.clone(),
            right: y,
        });
    }
    Ok(())
}

fn reversed(r: &Renames) -> Renames {
    Renames {
        tables: r
            .tables
            .iter()
            .map(|(a, b)| (b.clone(), a.clone()))
            .collect(),
        columns: r
            .columns
            .iter()
            .map(|(t, old, new)| {
                let table = r
                    .tables
                    .iter()
                    .find(|(_, n)| n == t)
                    .map_or_else(|| t.clone(), |(o, _)| o.clone());
                (table, new.clone(), old.clone())
            })
            .collect(),
    }
}

/// Up and down, planned at once on two threads (each is a full comparison of the two catalogs).
fn plans(a: &Side, b: &Side, opts: &Options) -> Result<(Plan, Plan)> {
    let up_options = DiffOptions {
        renames: b.renames.clone(),
        concurrent_indexes: opts.concurrent_indexes,
    };
    let down_options = DiffOptions {
        renames: reversed(&b.renames),
        concurrent_indexes: opts.concurrent_indexes,
    };
    let (up, down) = std::thread::scope(|scope| {
        let down = scope.spawn(|| pgstrata_catalog::diff(&b.catalog, &a.catalog, &down_options));
        let up = pgstrata_catalog::diff(&a.catalog, &b.catalog, &up_options);
        let down = down
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        (up, down)
    });
    Ok((up?, down?))
}

async fn drop_side(side: Side) {
    let Side { catalog, db, .. } = side;
    // Freeing a catalog of tens of thousands of objects takes tens of milliseconds: on a thread of its own, not the
    // caller's time. (Should the thread not start, the catalog is freed right here.)
    let _ = std::thread::Builder::new().spawn(move || drop(catalog));
    if let Some(db) = db
        && let Err(e) = db.drop_now().await
    {
        tracing::warn!("{e}");
    }
}

/// Compare two sources: the plan from `from` to `to`, and back. Data loss is refused unless allowed.
pub async fn compare(
    from: &Source,
    to: &Source,
    ctx: &Context,
    opts: &Options,
) -> Result<Comparison> {
    let started = std::time::Instant::now();
    let (a, b) = read_both(from, to, ctx).await?;
    tracing::debug!("declare: both sides read after {:?}", started.elapsed());
    let result = (|| {
        check_versions(&a, &b)?;
        let (up, down) = plans(&a, &b, opts)?;
        tracing::debug!("declare: planned after {:?}", started.elapsed());
        up.check_data_loss(opts.allow_data_loss)?;
        Ok(Comparison {
            up,
            down,
            from: a.label.clone(),
            to: b.label.clone(),
            renames: b.renames.clone(),
        })
    })();
    tokio::join!(drop_side(a), drop_side(b));
    result
}

/// `strata schema check`: compare the package's migrations with its declared schema. The report's `up` is empty
/// when they agree.
pub async fn check(ctx: &Context, opts: &Options) -> Result<Comparison> {
    let dir = ctx.schema_dir()?;
    let opts = Options {
        allow_data_loss: true,
        ..opts.clone()
    };
    compare(&Source::Migrations, &Source::Files(dir), ctx, &opts).await
}

/// What [`generate`] did.
#[derive(Debug, Clone)]
pub struct Generated {
    /// The comparison (migrations → declared schema).
    pub comparison: Comparison,
    /// The migration file written (`None`: nothing to generate).
    pub path: Option<PathBuf>,
    /// Whether the migration was proven on a shadow copy.
    pub proven: bool,
    /// Lint findings and locks of its up part.
    pub review: Review,
}

/// `strata generate NAME`: the migration from the package's migrations to its declared schema, proven (unless
/// `opts.verify` is off), written as `migrations/NNNN_NAME.sql` and listed in the manifest.
pub async fn generate(name: &str, ctx: &Context, opts: &Options) -> Result<Generated> {
    let pkg = ctx.package().ok_or_else(|| {
        Error::usage(
            "generate needs a package",
            Some("run in a package directory, or pass --package"),
        )
    })?;
    let root = pkg
        .root()
        .ok_or_else(|| {
            Error::usage(
                "the package has no directory to write the migration to",
                None,
            )
        })?
        .to_path_buf();
    let dir = ctx.schema_dir()?;
    let started = std::time::Instant::now();
    let (a, mut b) = read_both(&Source::Migrations, &Source::Files(dir.clone()), ctx).await?;
    tracing::debug!("declare: both sides read after {:?}", started.elapsed());
    // The declared files' database is done with: dropped while the plan is made and proven.
    let declared_db = b.db.take();
    let major = b.catalog.major_version().to_string();
    let outcome = async {
        check_versions(&a, &b)?;
        let (up, down) = plans(&a, &b, opts)?;
        up.check_data_loss(opts.allow_data_loss)?;
        let comparison = Comparison {
            up,
            down,
            from: a.label.clone(),
            to: b.label.clone(),
            renames: b.renames.clone(),
        };
        if comparison.up.is_empty() {
            return Ok((comparison, false));
        }
        if opts.verify {
            prove(ctx, &a, &b, &comparison).await?;
            tracing::debug!("declare: proven after {:?}", started.elapsed());
        }
        Ok::<_, Error>((comparison, opts.verify))
    };
    let drop_declared = async {
        if let Some(db) = declared_db
            && let Err(e) = db.drop_now().await
        {
            tracing::warn!("{e}");
        }
    };
    let ((), outcome) = tokio::join!(drop_declared, outcome);
    tokio::join!(drop_side(a), drop_side(b));
    tracing::debug!(
        "declare: shadow databases dropped after {:?}",
        started.elapsed()
    );
    let (comparison, proven) = outcome?;
    if comparison.up.is_empty() {
        return Ok(Generated {
            comparison,
            path: None,
            proven: false,
            review: Review::default(),
        });
    }
    let shown = dir
        .strip_prefix(&root)
        .map_or_else(|_| dir.clone(), Path::to_path_buf);
    let text = file_text(&comparison, &shown, proven);
    let review = review(&text, pkg, Some(&major));
    let path = pgstrata::scaffold::new_migration(&root, name)?;
    std::fs::write(&path, &text).map_err(|source| Error::Io {
        path: path.clone(),
        source,
    })?;
    Ok(Generated {
        comparison,
        path: Some(path),
        proven,
        review,
    })
}

/// The generated file: a header, then the migration.
fn file_text(c: &Comparison, dir: &Path, proven: bool) -> String {
    let mut out = format!(
        "-- Generated by `strata generate` (Strata {}): the declared schema in {} compared with what the\n\
         -- migrations build. Review it before you deploy it.\n",
        pgstrata::VERSION,
        dir.display()
    );
    if proven {
        out.push_str(
            "-- Proven on a shadow copy: up converges to the declared schema; down restores the migrations' schema.\n",
        );
    }
    let lost = c.up.data_loss();
    if !lost.is_empty() {
        out.push_str("-- Loses data (allowed with --allow-data-loss):\n");
        for l in lost {
            out.push_str(&format!("--   {l}\n"));
        }
    }
    for u in
        c.up.unmodeled
            .iter()
            .filter(|u| u.side != pgstrata_catalog::Side::Both)
    {
        out.push_str(&format!(
            "-- unmodeled (not compared, not migrated): {} ({})\n",
            u.identity,
            match u.side {
                pgstrata_catalog::Side::Source => "in the migrations only",
                _ => "in the declared schema only",
            }
        ));
    }
    out.push('\n');
    out.push_str(&c.migration());
    out
}

/// Apply up to the source's shadow database (a copy of what the migrations build, thrown away afterwards): it must
/// converge to the target; then down must bring it back.
async fn prove(ctx: &Context, a: &Side, b: &Side, c: &Comparison) -> Result<()> {
    let Some(source_db) = &a.db else {
        return Err(Error::usage("only a shadow source can be proven", None));
    };
    let db = source_db.connect().await?;
    let opts = ctx.read_options();
    pgstrata_catalog::apply(db.client(), &c.up.sections())
        .await
        .map_err(|e| Error::Proof {
            message: format!("up does not apply: {e}"),
        })?;
    let mut after = pgstrata_catalog::read(db.client(), &opts).await?;
    ctx.mark_managed(&mut after);
    let rest = pgstrata_catalog::diff(&after, &b.catalog, &DiffOptions::default())?;
    if !rest.is_empty() {
        return Err(Error::Proof {
            message: format!(
                "after up, the copy still differs from the declared schema:\n{}",
                rest.script()
            ),
        });
    }
    pgstrata_catalog::apply(db.client(), &c.down.sections())
        .await
        .map_err(|e| Error::Proof {
            message: format!("down does not apply: {e}"),
        })?;
    let mut back = pgstrata_catalog::read(db.client(), &opts).await?;
    ctx.mark_managed(&mut back);
    let rest = pgstrata_catalog::diff(&back, &a.catalog, &DiffOptions::default())?;
    if !rest.is_empty() {
        return Err(Error::Proof {
            message: format!(
                "after down, the copy differs from the migrations' schema:\n{}",
                rest.script()
            ),
        });
    }
    Ok(())
}
