//! Other tools' migration folders, read in place (no conversion).
//!
//! | layout | files | order | no-transaction | down |
//! |---|---|---|---|---|
//! | `dbmate` | `<digits>….sql` with `-- migrate:up` / `-- migrate:down` sections | file name (bytes) | `transaction:false` per section | inline sections |
//! | `sqlx` | `<i64>_<desc>.sql`, or `.up.sql` + `.down.sql` | version (integer) | file starts with `-- no-transaction` | `.down.sql` |
//! | `diesel` | `<version>_<name>/up.sql` (+ `down.sql`, `metadata.toml`) | version = name before the first `_`, dashes removed, compared as text | `run_in_transaction = false` in `metadata.toml` | `down.sql` |
//! | `golang-migrate` | `<u64>_<name>.up.sql` / `.down.sql` | version (integer) | detected: a file with a statement that cannot run in a transaction | `.down.sql` |
//! | `flyway` | `V<ver>__<desc>.sql`, `U<ver>__<desc>.sql` (undo), `R__<desc>.sql` (repeatable), in any subfolder | version (dotted numbers, `_` = `.`, trailing zeros ignored); repeatables after, by description | detected, as Flyway's parser does | `U` file of the same version |
//! | `refinery` | `V<int>__<name>.sql` / `U<int>__<name>.sql` (unversioned) | version (integer) | never (refinery always uses a transaction) | none |
//! | `up-down` | `NNNN-name.up.sql` (or `N.up.sql`) + `.down.sql`; optionally under `migrations/`, with a `functions/` (or `function/`) folder of managed code | file name | Strata's directives (`-- strata:no-transaction`) | `.down.sql` |
//! | `popx` | `<version>_<name>[.<dialect>][.autocommit].(up\|down).sql`, in any subfolder; per version the `.postgres.` file, else the dialect-less one | version (compared as text, up to 20 digits) | `.autocommit.` | `.down.sql` of the same version |
//! | `postgres-migrations` | `<id>[-_]<name>.sql`, ids consecutive from 1 | id (integer) | `-- postgres-migrations disable-transaction` anywhere in the file | none |
//!
//! Differences from the tools themselves, all on purpose:
//! - every pending migration runs in Strata's one deploy transaction (the tools use one per file or section), so a
//!   failure leaves nothing half-applied; no-transaction migrations split the run as in Strata's own layout;
//! - a no-transaction migration runs statement by statement, so several `CREATE INDEX CONCURRENTLY` in one file
//!   work (dbmate, sqlx and golang-migrate send the file as one multi-statement query, which PostgreSQL runs as an
//!   implicit transaction, and fail);
//! - duplicate versions are an error (dbmate and golang-migrate silently treat the second file as applied);
//! - files whose names do not follow the tool's pattern are ignored, as the tools do, and listed
//!   ([`Package::ignored_files`]); Flyway's Teams-only `B` (baseline) scripts and `.sql.conf` files are ignored; a
//!   version that does not fit the tool's type (a golang-migrate version beyond 64 bits, which golang-migrate skips
//!   without a word) is an error, and so is a folder of `.sql` files where the layout finds no migration at all;
//! - detection goes by the folder's majority shape: a stray file the tool would ignore does not stop it
//!   (see `detect`);
//! - popx renders files as Go templates: a file with template syntax (`{{`) is refused; `.fizz` files are not read;
//! - postgres-migrations' `-- postgres-migrations ignore` (supabase/storage's runner) records the migration
//!   without running it; its JavaScript migrations cannot be run and are refused;
//! - `refinery` is never detected automatically: its `V` files look like Flyway's, and its `U` means
//!   "unversioned", not "undo". Pass it explicitly.
//!
//! The identity of each migration in Strata's history is its file's base name (diesel: its folder's name), as for
//! Strata's own layout; the tool's version is kept too ([`crate::Migration::tool_version`]) for `strata adopt`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;

use pgstrata_sql::migration::{self, Direction, Section};

use crate::error::{Error, Result, SourceError};
use crate::source::files::PackageSource;
use crate::source::manifest::{DeploySettings, Manifest, ManifestFormat};
use crate::source::package::{Migration, Package, Script};
use crate::source::repeatable::Repeatable;

mod dbmate;
mod detect;
mod diesel;
mod flyway;
mod golang_migrate;
mod popx;
mod postgres_migrations;
mod sqlx;
mod updown;

pub(crate) use detect::{Listing, Verdict, some_names};
use detect::{detect, detect_listing};
pub(crate) use postgres_migrations::postgres_migrations_hash;
pub(crate) use sqlx::SqlxConfig;

pub(crate) use flyway::{FlywayVersion, flyway_checksum};

/// A migration folder layout of another tool.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum Layout {
    /// dbmate: `NNN_name.sql` with `-- migrate:up` / `-- migrate:down` sections.
    Dbmate,
    /// sqlx: `<version>_<desc>.sql`, or `.up.sql` / `.down.sql` pairs.
    Sqlx,
    /// diesel: `<version>_<name>/up.sql` and `down.sql`.
    Diesel,
    /// golang-migrate: `<version>_<name>.up.sql` / `.down.sql`.
    GolangMigrate,
    /// Flyway: `V<version>__<desc>.sql`, `U…` undo scripts, `R__<desc>.sql` repeatables.
    Flyway,
    /// refinery: `V<version>__<name>.sql` (and `U…`, unversioned). Never detected automatically.
    Refinery,
    /// The up/down pair layout: `NNNN-name.up.sql` + `NNNN-name.down.sql`, with a `functions/` folder.
    UpDown,
    /// popx (Ory): `<version>_<name>[.<dialect>][.autocommit].(up|down).sql`.
    Popx,
    /// postgres-migrations: `<id>-<name>.sql`, ids consecutive from 1.
    PostgresMigrations,
}

impl Layout {
    /// Every layout, in the order detection reports them.
    pub const ALL: [Layout; 9] = [
        Layout::Dbmate,
        Layout::Sqlx,
        Layout::Diesel,
        Layout::GolangMigrate,
        Layout::Flyway,
        Layout::Refinery,
        Layout::UpDown,
        Layout::Popx,
        Layout::PostgresMigrations,
    ];

    /// The name used on the command line and in `strata.toml` (`golang-migrate`, `up-down`, …).
    pub fn name(self) -> &'static str {
        match self {
            Layout::Dbmate => "dbmate",
            Layout::Sqlx => "sqlx",
            Layout::Diesel => "diesel",
            Layout::GolangMigrate => "golang-migrate",
            Layout::Flyway => "flyway",
            Layout::Refinery => "refinery",
            Layout::UpDown => "up-down",
            Layout::Popx => "popx",
            Layout::PostgresMigrations => "postgres-migrations",
        }
    }

    /// Where the tool looks by default, relative to the project root (used when `strata.toml` sets `layout` but
    /// not `migrations_dir`).
    pub fn default_dir(self) -> &'static str {
        match self {
            Layout::Dbmate => "db/migrations",
            Layout::Flyway => "sql",
            Layout::UpDown => ".",
            Layout::Sqlx
            | Layout::Diesel
            | Layout::GolangMigrate
            | Layout::Refinery
            | Layout::Popx
            | Layout::PostgresMigrations => "migrations",
        }
    }

    /// Find which layout the folder `dir` uses, by its majority shape: files the tool itself ignores do not count
    /// against a layout (they are listed by [`Package::ignored_files`] once loaded). Fails, saying why, when no
    /// layout fits or several fit equally well.
    ///
    /// ```no_run
    /// let layout = pgstrata::Layout::detect("db/migrations")?;
    /// println!("{}", layout.name());
    /// # Ok::<(), pgstrata::Error>(())
    /// ```
    pub fn detect(dir: impl AsRef<Path>) -> Result<Layout> {
        detect(dir.as_ref())
    }
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Layout {
    type Err = Error;

    fn from_str(s: &str) -> Result<Layout> {
        Layout::ALL
            .into_iter()
            .find(|l| l.name() == s || (s == "golang" && *l == Layout::GolangMigrate))
            .ok_or_else(|| {
                Error::usage(
                    format!("unknown layout `{s}`"),
                    Some(format!(
                        "use one of: {}",
                        Layout::ALL.map(Layout::name).join(", ")
                    )),
                )
            })
    }
}

/// Sort key of a migration in its tool's order. Within one layout every key has the same variant.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum SortKey {
    /// Compared as bytes (file names, diesel versions).
    Text(String),
    /// Compared as numbers.
    Int(i128),
    /// Flyway's dotted versions.
    Parts(Vec<u128>),
}

/// How a file's no-transaction mode is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TxRule {
    /// dbmate markers and Strata directives (`pgstrata_sql::migration::parse`).
    Markers,
    /// sqlx: the file starts with `-- no-transaction`.
    SqlxPrefix,
    /// Fixed by the layout (diesel's `metadata.toml`; refinery: always in a transaction).
    Fixed(bool),
    /// Statements that cannot run in a transaction make the file no-transaction (Flyway, golang-migrate).
    Detect,
    /// postgres-migrations' directives anywhere in the file: `-- postgres-migrations disable-transaction` (no
    /// transaction), `-- postgres-migrations ignore` (recorded, never run).
    PostgresMigrations,
    /// popx: `.autocommit.` in the name means no transaction; template syntax is refused.
    Popx { autocommit: bool },
}

/// A versioned migration found by a layout, before its files are read.
#[derive(Debug, Clone)]
pub(crate) struct Found {
    /// Identity in Strata's history.
    pub name: String,
    /// The version as the tool records it.
    pub version: String,
    /// Order.
    pub key: SortKey,
    /// Up file, relative to the migrations folder.
    pub up: String,
    /// Down file, relative to the migrations folder.
    pub down: Option<String>,
    /// How to decide no-transaction.
    pub tx: TxRule,
}

/// A repeatable script found by a layout.
#[derive(Debug, Clone)]
pub(crate) struct FoundRepeatable {
    pub name: String,
    pub path: String,
    pub tx: TxRule,
}

/// What a layout found in a folder.
#[derive(Debug, Default)]
pub(crate) struct Scan {
    pub migrations: Vec<Found>,
    /// In the order they are applied.
    pub repeatables: Vec<FoundRepeatable>,
}

/// The `.sql` files of a migrations folder (paths relative to it, `/`-separated, sorted), and how to read them.
pub(crate) struct Folder<'a> {
    source: &'a PackageSource,
    /// `""` or `dir/`.
    prefix: String,
    pub files: Vec<String>,
}

impl Folder<'_> {
    pub(crate) fn rel(&self, path: &str) -> String {
        format!("{}{path}", self.prefix)
    }

    /// Read a file of the folder; `Ok(None)` if it does not exist.
    pub fn read(&self, path: &str) -> Result<Option<String>> {
        self.source.read(&self.rel(path))
    }

    /// Top-level files only.
    pub fn top_level(&self) -> impl Iterator<Item = &str> {
        self.files
            .iter()
            .map(String::as_str)
            .filter(|f| !f.contains('/'))
    }
}

impl Package {
    /// Read another tool's migration folder as a package, without converting anything. The package is named
    /// after the folder (see [`default_package_name`]) and owns schema `public`.
    ///
    /// ```no_run
    /// use pgstrata::{Layout, Package};
    /// let package = Package::from_layout("db/migrations", Layout::detect("db/migrations")?)?;
    /// println!("{} migrations", package.migrations().len());
    /// # Ok::<(), pgstrata::Error>(())
    /// ```
    pub fn from_layout(dir: impl AsRef<Path>, layout: Layout) -> Result<Package> {
        Package::from_layout_named(dir, layout, None, None)
    }

    /// [`from_layout`](Package::from_layout) with an explicit package name and schema.
    pub fn from_layout_named(
        dir: impl AsRef<Path>,
        layout: Layout,
        name: Option<&str>,
        schema: Option<&str>,
    ) -> Result<Package> {
        Package::from_layout_read(dir.as_ref(), layout, name, schema, None)
    }

    /// Another tool's folder, its layout detected when not given ([`Layout::detect`]), with an explicit package
    /// name and schema. Files that detection read are not read again.
    ///
    /// ```no_run
    /// let package = pgstrata::Package::from_folder("db/migrations", None, None, None)?;
    /// println!("{} migrations", package.migrations().len());
    /// # Ok::<(), pgstrata::Error>(())
    /// ```
    pub fn from_folder(
        dir: impl AsRef<Path>,
        layout: Option<Layout>,
        name: Option<&str>,
        schema: Option<&str>,
    ) -> Result<Package> {
        let dir = dir.as_ref();
        match layout {
            Some(layout) => Package::from_layout_read(dir, layout, name, schema, None),
            None => {
                let (layout, listing) = detect_listing(dir)?;
                Package::from_layout_read(dir, layout, name, schema, Some(&listing))
            }
        }
    }

    fn from_layout_read(
        dir: &Path,
        layout: Layout,
        name: Option<&str>,
        schema: Option<&str>,
        preread: Option<&Listing>,
    ) -> Result<Package> {
        if !dir.is_dir() {
            return Err(Error::usage(
                format!("{} is not a directory", dir.display()),
                None,
            ));
        }
        let name = match name {
            Some(n) => n.to_string(),
            None => default_package_name(dir)?,
        };
        let schema = schema.unwrap_or("public").to_string();
        let manifest_path = dir.to_path_buf();
        let manifest = Manifest {
            format: ManifestFormat::Strata,
            name,
            schemas: vec![schema.clone()],
            schema,
            extensions: Vec::new(),
            uses: Vec::new(),
            migrations: Vec::new(),
            deploy: DeploySettings::default(),
            layout: Some(layout),
            migrations_dir: None,
            lint: Default::default(),
            // Another tool's folder runs as the login, the way that tool runs it: no package role.
            security: crate::source::manifest::SecuritySettings {
                package_role: false,
                ..Default::default()
            },
            require_down: false,
        };
        crate::source::manifest::validate_package_name(&manifest.name).map_err(|m| {
            Error::usage(
                m,
                Some("pass a valid name with --package-name (letters, digits and . _ / -)".into()),
            )
        })?;
        crate::source::manifest::validate_identifier("schema", &manifest.schema)
            .map_err(|m| Error::usage(m, None))?;
        if manifest.name == crate::source::STRATA_PACKAGE || manifest.schema == "strata" {
            return Err(Error::usage(
                "the name and schema `strata` are reserved for Strata's own tables",
                Some("pass --package-name / --schema".into()),
            ));
        }
        build(
            PackageSource::Dir(dir.to_path_buf()),
            manifest,
            manifest_path,
            layout,
            "",
            preread,
        )
    }
}

/// The package name used for a folder read with `--dir`: the folder's name, or the name of the nearest parent that
/// is not a generic folder name (`migrations`, `migration`, `db`, `database`, `sql`, `schema`, `resources`, `src`,
/// `main`), so `~/code/billing/db/migrations` gives `billing`. Only the names of folders are used, never the whole
/// path: the name is the package's identity in the history and must not depend on where a checkout lives.
pub fn default_package_name(dir: &Path) -> Result<String> {
    const GENERIC: [&str; 9] = [
        "migrations",
        "migration",
        "db",
        "database",
        "sql",
        "schema",
        "resources",
        "src",
        "main",
    ];
    let full = dir.canonicalize().map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let names: Vec<String> = full
        .components()
        .filter_map(|c| match c {
            std::path::Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect();
    let chosen = names
        .iter()
        .rev()
        .find(|n| !GENERIC.contains(&n.to_ascii_lowercase().as_str()))
        .or(names.last())
        .cloned()
        .unwrap_or_else(|| "migrations".to_string());
    // Keep what a package name allows; anything else becomes `-`.
    let cleaned: String = chosen
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .collect();
    // A package name starts with a letter or digit (`.tmpXYZ` → `tmpXYZ`).
    let cleaned = cleaned.trim_start_matches(|c: char| !c.is_ascii_alphanumeric());
    Ok(if cleaned.is_empty() {
        "migrations".to_string()
    } else {
        cleaned.to_string()
    })
}

/// Load a package whose `strata.toml` sets `layout`.
pub(crate) fn load(
    source: PackageSource,
    manifest: Manifest,
    manifest_path: PathBuf,
    layout: Layout,
    manifest_text: &str,
) -> Result<Package> {
    let dir = manifest
        .migrations_dir
        .clone()
        .unwrap_or_else(|| layout.default_dir().to_string());
    let dir = dir.trim_end_matches('/').to_string();
    let dir = if dir == "." { String::new() } else { dir };
    if let PackageSource::Dir(root) = &source {
        let full = root.join(&dir);
        if !full.is_dir() {
            return Err(SourceError::new(
                "strata::layout",
                manifest_path.display(),
                manifest_text,
                None,
                format!(
                    "the {layout} migrations folder {} does not exist",
                    full.display()
                ),
            )
            .with_help("set `migrations_dir` to the folder that holds the migrations, relative to strata.toml")
            .into());
        }
    }
    build(source, manifest, manifest_path, layout, &dir, None)
}

/// Scan, order, read and check the folder `dir` (relative to the source root; `""` = the root).
fn build(
    source: PackageSource,
    mut manifest: Manifest,
    manifest_path: PathBuf,
    layout: Layout,
    dir: &str,
    preread: Option<&Listing>,
) -> Result<Package> {
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let files: Vec<String> = source
        .sql_files()?
        .into_iter()
        .filter_map(|f| f.strip_prefix(&prefix).map(str::to_string))
        .collect();
    let folder = Folder {
        source: &source,
        prefix,
        files,
    };
    let mut scan = match layout {
        Layout::Dbmate => dbmate::scan(&folder),
        Layout::Sqlx => sqlx::scan(&folder)?,
        Layout::Diesel => diesel::scan(&folder)?,
        Layout::GolangMigrate => golang_migrate::scan(&folder)?,
        Layout::Flyway => flyway::scan(&folder)?,
        Layout::Refinery => flyway::scan_refinery(&folder)?,
        Layout::UpDown => updown::scan(&folder)?,
        Layout::Popx => popx::scan(&folder)?,
        Layout::PostgresMigrations => postgres_migrations::scan(&folder)?,
    };
    scan.migrations.sort_by(|a, b| a.key.cmp(&b.key));
    check_unique(layout, &scan.migrations, &folder)?;
    if layout == Layout::PostgresMigrations {
        postgres_migrations::check_consecutive(&scan.migrations, &folder)?;
    }
    if scan.migrations.is_empty() && scan.repeatables.is_empty() && !folder.files.is_empty() {
        return Err(nothing_matches(layout, &folder));
    }

    let mut owned = BTreeSet::new();
    let mut migrations = Vec::with_capacity(scan.migrations.len());
    let cwd = std::env::current_dir().ok();
    let files = Files {
        source: &source,
        cwd: cwd.as_deref(),
        // Detection read the folder's files from its root: only valid for a package rooted there.
        preread: preread.filter(|_| dir.is_empty()),
    };
    for found in &scan.migrations {
        let up_rel = folder.rel(&found.up);
        let up = read_script(&files, &up_rel, found.tx, Direction::Up, layout)?;
        let down = match &found.down {
            Some(d) => {
                let rel = folder.rel(d);
                owned.insert(rel.clone());
                Some(read_script(
                    &files,
                    &rel,
                    found.tx,
                    Direction::Down,
                    layout,
                )?)
            }
            None => None,
        };
        owned.insert(up_rel.clone());
        migrations.push(Migration::assemble(
            found.name.clone(),
            up_rel,
            up,
            down,
            Some(found.version.clone()),
        ));
    }
    let mut repeatables = Vec::with_capacity(scan.repeatables.len());
    for r in &scan.repeatables {
        let rel = folder.rel(&r.path);
        let script = read_script(&files, &rel, r.tx, Direction::Up, layout)?;
        owned.insert(rel.clone());
        repeatables.push(Repeatable::new(r.name.clone(), rel, script));
    }
    // The layout's files stand in for the `migrations` list, so everything that reads the list (unlisted-file
    // checks, status) sees them.
    manifest.migrations = migrations
        .iter()
        .map(|m| (m.path().to_string(), 0..0))
        .collect();
    let ignored = folder
        .files
        .iter()
        .filter(|f| !owned.contains(&folder.rel(f)))
        .map(|f| IgnoredFile {
            path: folder.rel(f),
            reason: ignore_reason(layout, f),
        })
        .collect();
    let code = match layout {
        Layout::UpDown => updown::code(&folder, &manifest)?,
        _ => crate::source::code::Code::default(),
    };
    let mut package = Package::from_parts(
        manifest,
        source,
        manifest_path,
        migrations,
        layout,
        repeatables,
        owned,
    )
    .with_code(code);
    package.set_ignored_files(ignored);
    Ok(package)
}

/// A `.sql` file of a migrations folder that the folder's tool does not read, so Strata does not either.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IgnoredFile {
    /// Path relative to the package root.
    pub path: String,
    /// Why the tool does not read it (e.g. `diesel reads only <version>_<name>/up.sql folders`).
    pub reason: String,
}

/// Why `layout`'s tool does not read `file` (a path relative to the migrations folder).
fn ignore_reason(layout: Layout, file: &str) -> String {
    match layout {
        Layout::Diesel if !file.contains('/') => {
            "diesel reads only <version>_<name>/up.sql folders, not files at the top level".into()
        }
        Layout::Dbmate | Layout::Sqlx | Layout::GolangMigrate | Layout::PostgresMigrations
            if file.contains('/') =>
        {
            format!("{layout} reads only the top level of its folder")
        }
        Layout::Popx => popx::ignore_reason(file),
        _ => format!("not named like a {layout} migration ({})", expected(layout)),
    }
}

/// The file names `layout` reads, for messages.
pub(crate) fn expected(layout: Layout) -> &'static str {
    match layout {
        Layout::Dbmate => "<version>_<name>.sql with a `-- migrate:up` section",
        Layout::Sqlx => "<version>_<description>.sql, or .up.sql and .down.sql",
        Layout::Diesel => "<version>_<name>/up.sql folders",
        Layout::GolangMigrate => "<version>_<name>.up.sql and .down.sql",
        Layout::Flyway => "V<version>__<description>.sql, U…, R__<description>.sql",
        Layout::Refinery => "V<version>__<name>.sql or U<version>__<name>.sql",
        Layout::UpDown => "NNNN-name.up.sql (or N.up.sql) and .down.sql",
        Layout::Popx => "<version>_<name>[.postgres][.autocommit].up.sql and .down.sql",
        Layout::PostgresMigrations => "<id>-<name>.sql, ids 1, 2, 3, …",
    }
}

/// An explicit layout that finds no migration in a folder of `.sql` files: the layout is wrong, and deploying
/// "nothing" would only hide that.
fn nothing_matches(layout: Layout, folder: &Folder<'_>) -> Error {
    Error::usage(
        format!(
            "no {layout} migrations in {}: {layout} reads {}, and none of its {} .sql file(s) is named so ({})",
            if folder.prefix.is_empty() {
                "the folder".to_string()
            } else {
                folder.prefix.trim_end_matches('/').to_string()
            },
            expected(layout),
            folder.files.len(),
            some_names(folder.files.iter().map(String::as_str))
        ),
        Some("leave --layout out to detect the layout, or pass the one these files follow".into()),
    )
}

fn check_unique(layout: Layout, found: &[Found], folder: &Folder<'_>) -> Result<()> {
    let mut by_key: BTreeMap<&SortKey, &Found> = BTreeMap::new();
    let mut by_version: BTreeMap<&str, &Found> = BTreeMap::new();
    let mut by_name: BTreeMap<&str, &Found> = BTreeMap::new();
    for f in found {
        let clash = [
            by_key.insert(&f.key, f),
            by_version.insert(&f.version, f),
            by_name.insert(&f.name, f),
        ]
        .into_iter()
        .flatten()
        .next();
        if let Some(other) = clash {
            return Err(Error::usage(
                format!(
                    "{layout}: {} and {} have the same version {}",
                    folder.rel(&other.up),
                    folder.rel(&f.up),
                    f.version
                ),
                Some("each migration needs its own version: renumber one of them".into()),
            ));
        }
    }
    Ok(())
}

/// Read a file and cut it into sections according to the layout's rule.
/// Where `build` reads files: the source, the working directory (for display paths), and what detection read.
struct Files<'a> {
    source: &'a PackageSource,
    cwd: Option<&'a Path>,
    preread: Option<&'a Listing>,
}

fn read_script(
    files: &Files<'_>,
    rel: &str,
    tx: TxRule,
    direction: Direction,
    layout: Layout,
) -> Result<Script> {
    let source = files.source;
    let display = source
        .display_path_in(rel, files.cwd)
        .to_string_lossy()
        .into_owned();
    let preread = files.preread.and_then(|l| l.exact_text(rel));
    let raw = match preread {
        Some(text) => Some(text.to_string()),
        None => source.read(rel)?,
    };
    let raw = raw.ok_or_else(|| Error::Read {
        path: PathBuf::from(&display),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
    })?;
    let text: Arc<str> = Arc::from(pgstrata_sql::normalize(&raw).as_ref());
    let sections = match tx {
        TxRule::Markers => {
            let parsed = match direction {
                Direction::Up => migration::parse(&text),
                Direction::Down => migration::parse_down(&text),
            };
            let sections = parsed.map_err(|e| {
                SourceError::new("strata::sections", &display, text.to_string(), Some(e.range), e.message)
                    .with_help("dbmate markers are `-- migrate:up` and `-- migrate:down`, optionally followed by `transaction:false`")
            })?;
            if layout == Layout::Dbmate && sections.iter().all(|s| s.marker.is_none()) {
                return Err(SourceError::new(
                    "strata::sections",
                    &display,
                    text.to_string(),
                    None,
                    format!("{display} has no `-- migrate:up` marker, which dbmate requires"),
                )
                .with_help("start the file with `-- migrate:up` (and add `-- migrate:down` for the rollback)")
                .into());
            }
            if direction == Direction::Up && !sections.iter().any(|s| s.direction == Direction::Up)
            {
                return Err(SourceError::new(
                    "strata::sections",
                    &display,
                    text.to_string(),
                    None,
                    format!(
                        "{display} has a `-- migrate:down` section but no `-- migrate:up` section"
                    ),
                )
                .into());
            }
            sections
        }
        TxRule::SqlxPrefix => vec![whole(
            &text,
            direction,
            text.starts_with("-- no-transaction"),
        )],
        TxRule::Fixed(no_tx) => vec![whole(&text, direction, no_tx)],
        TxRule::Detect => vec![whole(&text, direction, has_non_transactional(&text))],
        TxRule::PostgresMigrations => postgres_migrations::sections(&text, direction),
        TxRule::Popx { autocommit } => {
            if let Some(at) = popx::template_at(&text) {
                return Err(SourceError::new(
                    "strata::layout",
                    &display,
                    text.to_string(),
                    Some(at..at + 2),
                    format!("{display} uses Go template syntax, which popx renders and Strata cannot"),
                )
                .with_help("render the template for PostgreSQL into the file, or deploy this folder with popx")
                .into());
            }
            vec![whole(&text, direction, autocommit)]
        }
    };
    Ok(Script::new(display, text, sections))
}

fn whole(text: &str, direction: Direction, no_transaction: bool) -> Section {
    Section {
        direction,
        range: 0..text.len(),
        no_transaction,
        marker: None,
    }
}

/// True if some statement of `text` cannot run inside a transaction block.
pub(crate) fn has_non_transactional(text: &str) -> bool {
    let script = pgstrata_sql::split(text);
    script
        .statements
        .iter()
        .any(|s| pgstrata_sql::non_transactional_reason(text, s).is_some())
}

/// The leading ASCII digits of `s` (at least one), and the rest.
pub(crate) fn leading_digits(s: &str) -> Option<(&str, &str)> {
    let end = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    (end > 0).then(|| s.split_at(end))
}

#[cfg(test)]
mod tests;
