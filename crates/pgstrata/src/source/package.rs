//! A package: a manifest plus the migration files it lists, loaded and checked.
//!
//! A [`Package`] is valid by construction: if [`Package::load`] returns one, its manifest parsed, every listed
//! migration exists, is UTF-8, has well-formed sections, and has a checksum. Nothing here touches a database.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pgstrata_sql::migration::{self, Direction, Section};

use crate::error::{Error, Result, SourceError};
use crate::source::files::PackageSource;
use crate::source::manifest::{DeploySettings, Manifest, ManifestFormat, Use};
use crate::source::script::down_sibling;
pub use crate::source::script::{Script, checksum, migration_name};

/// A loaded, checked package.
#[derive(Debug, Clone)]
pub struct Package {
    manifest: Manifest,
    source: PackageSource,
    manifest_path: PathBuf,
    /// Shared: a project hands copies of its packages to every deploy, and a package may hold thousands.
    migrations: Arc<[Migration]>,
    // interop: set for packages read from another tool's folder (`Package::from_layout`, `layout` in strata.toml).
    layout: Option<crate::source::layout::Layout>,
    repeatables: Vec<crate::source::repeatable::Repeatable>,
    layout_files: BTreeSet<String>,
    /// `.sql` files of another tool's folder that the tool does not read (so neither does Strata).
    ignored_files: Vec<crate::source::layout::IgnoredFile>,
    /// Managed code and tests: every other `.sql` file (see [`crate::decide::code`]).
    code: Arc<crate::source::code::Code>,
}

/// A versioned migration of a package.
#[derive(Debug, Clone)]
pub struct Migration {
    name: String,
    path: String,
    up: Script,
    /// The file's text itself when it has no down section: a data load is not held twice.
    up_sql: Arc<str>,
    down: Option<Script>,
    checksum: String,
    tool_version: Option<String>,
}

impl Migration {
    /// The migration's identity: its file's base name without `.sql` (and without `.up`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Path relative to the package root, as listed in the manifest.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The up script.
    pub fn up(&self) -> &Script {
        &self.up
    }

    /// The text recorded as this migration's up SQL (the file without its down sections, normalised).
    pub fn up_sql(&self) -> &str {
        &self.up_sql
    }

    /// [`Migration::up_sql`], shared.
    pub(crate) fn up_sql_shared(&self) -> Arc<str> {
        Arc::clone(&self.up_sql)
    }

    /// The down script, if the migration has one.
    pub fn down(&self) -> Option<&Script> {
        self.down.as_ref()
    }

    /// The text recorded as this migration's down SQL.
    pub fn down_sql(&self) -> Option<String> {
        self.down.as_ref().map(|d| {
            // A no-transaction down part without markers (diesel's metadata.toml, detected statements) keeps its
            // mode through a `transaction:false` marker, so a rollback from the stored SQL runs it the same way.
            if d.sections
                .iter()
                .any(|s| s.marker.is_some() || s.no_transaction)
            {
                migration::down_text(&d.text, &d.sections)
            } else {
                d.text.to_string()
            }
        })
    }

    /// `sha256:<hex>` of the up SQL after normalisation (BOM and CRLF do not change it).
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// True if some up section runs outside a transaction.
    pub fn no_transaction(&self) -> bool {
        self.up.has_no_transaction_section()
    }

    /// The version the migration's original tool records for it (dbmate's leading digits, Flyway's `1.2`, …);
    /// `None` for Strata's own layout.
    pub fn tool_version(&self) -> Option<&str> {
        self.tool_version.as_deref()
    }

    /// A migration from an already-read file: `sections` cut `text` (up sections, and inline down sections if the
    /// file has them); `down` is a separate down script. Used by the layouts of other tools.
    pub(crate) fn assemble(
        name: String,
        path: String,
        up: Script,
        down: Option<Script>,
        tool_version: Option<String>,
    ) -> Migration {
        let (up_sections, inline_down): (Vec<Section>, Vec<Section>) = up
            .sections
            .iter()
            .cloned()
            .partition(|s| s.direction == Direction::Up);
        let up_sql = up_text(&up.text, &up_sections, &inline_down);
        let down = match down {
            Some(d) => Some(d),
            None if !inline_down.is_empty() => {
                Some(Script::new(up.origin.clone(), up.text.clone(), inline_down))
            }
            None => None,
        };
        Migration {
            name,
            path,
            checksum: checksum(&up_sql),
            up: Script::new(up.origin, up.text, up_sections),
            up_sql,
            down,
            tool_version,
        }
    }
}

impl Package {
    /// Load the package whose root is `path` (a directory with `strata.toml` or `pgpkg.toml`, or the manifest
    /// file itself).
    pub fn load(path: impl AsRef<Path>) -> Result<Package> {
        let path = path.as_ref();
        let (dir, format) = if path.is_file() {
            let format = match path.file_name().and_then(|n| n.to_str()) {
                Some("pgpkg.toml") => ManifestFormat::Pgpkg,
                _ => ManifestFormat::Strata,
            };
            (
                path.parent().unwrap_or(Path::new(".")).to_path_buf(),
                format,
            )
        } else if path.join("strata.toml").is_file() {
            (path.to_path_buf(), ManifestFormat::Strata)
        } else if path.join("pgpkg.toml").is_file() {
            (path.to_path_buf(), ManifestFormat::Pgpkg)
        } else if path.exists() {
            return Err(Error::usage(
                format!("{} has no strata.toml", path.display()),
                Some(
                    "create one with `strata init NAME`, or point --package at a package directory"
                        .into(),
                ),
            ));
        } else {
            return Err(Error::usage(
                format!("{} does not exist", path.display()),
                None,
            ));
        };
        Package::from_source(PackageSource::Dir(dir), format)
    }

    /// Find the package containing `start` by walking up the directory tree.
    pub fn discover(start: impl AsRef<Path>) -> Result<Package> {
        let start = start.as_ref();
        for dir in start.ancestors() {
            if dir.join("strata.toml").is_file() || dir.join("pgpkg.toml").is_file() {
                return Package::load(dir);
            }
        }
        Err(Error::PackageNotFound {
            start: start.to_path_buf(),
        })
    }

    /// Load a package compiled into the binary with `include_dir!`.
    ///
    /// ```no_run
    /// static BILLING: include_dir::Dir<'static> = include_dir::include_dir!("$CARGO_MANIFEST_DIR/../../examples/billing");
    /// let package = pgstrata::Package::embedded(&BILLING)?;
    /// assert_eq!(package.schema(), "billing");
    /// # Ok::<(), pgstrata::Error>(())
    /// ```
    pub fn embedded(dir: &'static include_dir::Dir<'static>) -> Result<Package> {
        let format = if dir.get_file("strata.toml").is_some() {
            ManifestFormat::Strata
        } else {
            ManifestFormat::Pgpkg
        };
        Package::from_source(PackageSource::Embedded(dir), format)
    }

    /// Load a package from a source, reading its manifest in the given format.
    pub fn from_source(source: PackageSource, format: ManifestFormat) -> Result<Package> {
        let manifest_rel = format.file_name();
        let manifest_path = source.display_path(manifest_rel);
        let text = source.read(manifest_rel)?.ok_or_else(|| Error::Read {
            path: manifest_path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such file"),
        })?;
        let mut manifest = Manifest::parse(&manifest_path.to_string_lossy(), &text, format)?;
        // pgpkg's older migration list, `@migration.pgpkg` (pgpkg's own package and examples use it): its entries
        // stand in for `Migrations`, and errors about them point into it.
        let index = match format {
            ManifestFormat::Pgpkg => crate::source::pgpkg::migration_index(
                &source,
                &manifest,
                &manifest_path.to_string_lossy(),
                &text,
            )?,
            ManifestFormat::Strata => None,
        };
        if let Some(index) = &index {
            manifest.migrations = index.entries.clone();
        }
        let (list_path, list_text) = match &index {
            Some(i) => (PathBuf::from(&i.display), i.text.as_str()),
            None => (manifest_path.clone(), text.as_str()),
        };
        if let Some(layout) = manifest.layout {
            // interop: the migrations come from another tool's folder, not from the `migrations` list.
            return crate::source::layout::load(source, manifest, manifest_path, layout, &text);
        }
        // One walk of the package's files, for the migrations folder, the unlisted-file check and the managed code.
        let sql_files = source.sql_files()?;
        if let Some(dir) = manifest.migrations_dir.clone() {
            // Strata's own folder: its files, in version order, stand in for the list (they have no span in it).
            let dir = dir.trim_end_matches('/');
            if let PackageSource::Dir(root) = &source
                && !root.join(dir).is_dir()
            {
                return Err(SourceError::new(
                    "strata::manifest",
                    manifest_path.display(),
                    text.clone(),
                    None,
                    format!(
                        "the migrations folder {} does not exist",
                        root.join(dir).display()
                    ),
                )
                .with_help(
                    "create it (`strata new NAME` adds a migration to it), or fix `migrations_dir`",
                )
                .into());
            }
            manifest.migrations = crate::source::versioned::scan(&sql_files, dir)?
                .into_iter()
                .map(|rel| (rel, 0..0))
                .collect();
        }
        let mut migrations = Vec::with_capacity(manifest.migrations.len());
        let cwd = std::env::current_dir().ok();
        // The folders of the listed migrations, listed once: a missing `NAME.down.sql` is then known without a
        // failed open per migration.
        let mut folders: std::collections::HashMap<
            &str,
            Option<std::collections::HashSet<String>>,
        > = std::collections::HashMap::new();
        for (rel, span) in &manifest.migrations {
            let (dir, _) = rel.rsplit_once('/').unwrap_or(("", rel));
            let names = folders
                .entry(dir)
                .or_insert_with(|| source.entry_names(dir))
                .as_ref();
            let files = Files {
                source: &source,
                cwd: cwd.as_deref(),
                names,
            };
            migrations.push(load_migration(&files, &list_path, list_text, rel, span)?);
        }
        match &index {
            Some(index) => crate::source::pgpkg::check_index_complete(index, &sql_files)
                .map_err(Error::Source)?,
            None => check_unlisted(&source, &sql_files, &manifest, &manifest_path, &text)?,
        }
        let code = Arc::new(crate::source::code::Code::load(
            &source, &sql_files, &manifest,
        )?);
        Ok(Package {
            manifest,
            source,
            manifest_path,
            migrations: migrations.into(),
            layout: None,
            repeatables: Vec::new(),
            layout_files: BTreeSet::new(),
            ignored_files: Vec::new(),
            code,
        })
    }

    /// A package assembled by a layout reader (`crate::source::layout`): everything already loaded and checked.
    pub(crate) fn from_parts(
        manifest: Manifest,
        source: PackageSource,
        manifest_path: PathBuf,
        migrations: Vec<Migration>,
        layout: crate::source::layout::Layout,
        repeatables: Vec<crate::source::repeatable::Repeatable>,
        layout_files: BTreeSet<String>,
    ) -> Package {
        Package {
            manifest,
            source,
            manifest_path,
            migrations: migrations.into(),
            layout: Some(layout),
            repeatables,
            layout_files,
            ignored_files: Vec::new(),
            // Flyway's `R__` scripts are repeatables; the up/down layout's function files are managed code
            // ([`Package::with_code`]).
            code: Arc::new(crate::source::code::Code::default()),
        }
    }

    /// Files of another tool's folder that its tool does not read, so Strata does not either (a diesel folder's
    /// top-level `data.sql`, popx files for other databases), with the reason.
    pub fn ignored_files(&self) -> &[crate::source::layout::IgnoredFile] {
        &self.ignored_files
    }

    pub(crate) fn set_ignored_files(&mut self, files: Vec<crate::source::layout::IgnoredFile>) {
        self.ignored_files = files;
    }

    /// The package with this managed code (a layout whose folder holds some: the up/down layout's functions).
    pub(crate) fn with_code(mut self, code: crate::source::code::Code) -> Package {
        self.code = Arc::new(code);
        self
    }

    /// The other tool's layout this package was read from (`None`: Strata's own manifest list).
    pub fn layout(&self) -> Option<crate::source::layout::Layout> {
        self.layout
    }

    /// Repeatable scripts (Flyway's `R__*.sql`): re-run after the
    /// migrations whenever their text changes.
    pub fn repeatables(&self) -> &[crate::source::repeatable::Repeatable] {
        &self.repeatables
    }

    /// True if `rel` (a path relative to the package root) is part of the package's migrations: a listed
    /// migration, its down file, or a file the package's layout owns (down, undo, repeatable files, …).
    pub fn is_migration_file(&self, rel: &str) -> bool {
        self.layout_files.contains(rel)
            || self
                .manifest
                .migrations
                .iter()
                .any(|(p, _)| p == rel || down_sibling(p) == rel)
    }

    /// Unique package id.
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The package's main schema: unqualified names of its managed code land there.
    pub fn schema(&self) -> &str {
        &self.manifest.schema
    }

    /// Every schema the package owns, the main one first (`schemas = [...]`; one for `schema = "..."`). Its role
    /// owns them all, and its SQL runs with all of them on the search_path, in this order.
    pub fn schemas(&self) -> &[String] {
        &self.manifest.schemas
    }

    /// This package deployed into `schema` instead of its manifest's (a tenant schema): the same migrations and
    /// code, run with `schema` first on the search_path, owned by a role of its own, with a history of its own
    /// recorded under the name `NAME@SCHEMA` (package names cannot contain `@`, so it never collides with one).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # pgstrata::scaffold::init(dir.path(), "acme/app", None).unwrap();
    /// let app = pgstrata::Package::load(dir.path())?;
    /// let tenant = app.in_schema("tenant_42")?;
    /// assert_eq!(tenant.name(), "acme/app@tenant_42");
    /// assert_eq!(tenant.schema(), "tenant_42");
    /// assert_eq!(tenant.instance_of(), Some("acme/app"));
    /// assert!(app.in_schema("strata").is_err());
    /// # Ok::<(), pgstrata::Error>(())
    /// ```
    pub fn in_schema(&self, schema: &str) -> Result<Package> {
        if let Some(base) = self.instance_of() {
            return Err(Error::usage(
                format!(
                    "package `{base}` is already deployed into schema `{}`",
                    self.schema()
                ),
                None,
            ));
        }
        crate::source::manifest::validate_identifier("schema", schema)
            .map_err(|m| Error::usage(format!("tenant schema: {m}"), None))?;
        if schema == crate::source::STRATA_PACKAGE
            || schema.starts_with("pg_")
            || schema == "information_schema"
        {
            return Err(Error::usage(
                format!("`{schema}` cannot be a tenant schema: it belongs to Strata or PostgreSQL"),
                None,
            ));
        }
        if self.schemas().len() > 1 {
            return Err(Error::usage(
                format!(
                    "package `{}` owns several schemas ({}): a tenant schema takes the place of one schema only",
                    self.name(),
                    self.schemas().join(", ")
                ),
                None,
            ));
        }
        let mut package = self.clone();
        package.manifest.name = format!("{}@{schema}", self.name());
        package.manifest.schema = schema.to_string();
        package.manifest.schemas = vec![schema.to_string()];
        Ok(package)
    }

    /// For a package deployed into another schema ([`Package::in_schema`]), the name in its manifest.
    pub fn instance_of(&self) -> Option<&str> {
        self.name().split_once('@').map(|(base, _)| base)
    }

    /// Extensions the package needs.
    pub fn extensions(&self) -> &[String] {
        &self.manifest.extensions
    }

    /// Packages this one uses.
    pub fn uses(&self) -> &[Use] {
        &self.manifest.uses
    }

    /// Migrations in manifest order.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// Managed code (functions, procedures, views, triggers, comments) and tests: the package's `.sql` files
    /// that are not migrations.
    pub fn code(&self) -> &crate::source::code::Code {
        &self.code
    }

    /// Deploy settings from the manifest.
    pub fn deploy_settings(&self) -> &DeploySettings {
        &self.manifest.deploy
    }

    /// The parsed manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The package's root directory, if it lives on disk.
    pub fn root(&self) -> Option<&Path> {
        match &self.source {
            PackageSource::Dir(d) => Some(d),
            PackageSource::Embedded(_) => None,
        }
    }

    /// Where the files come from.
    pub fn source(&self) -> &PackageSource {
        &self.source
    }

    /// The manifest's path, for messages.
    pub fn manifest_path(&self) -> &Path {
        &self.manifest_path
    }
}

/// How `load_migration` finds files: the source, the working directory for display paths, and the names in the
/// migration's folder when it could be listed.
struct Files<'a> {
    source: &'a PackageSource,
    cwd: Option<&'a Path>,
    names: Option<&'a std::collections::HashSet<String>>,
}

impl Files<'_> {
    /// Read `rel` (in the migration's folder), skipping the open when the folder's listing says it is not there.
    fn read_sibling(&self, rel: &str) -> Result<Option<String>> {
        let base = rel.rsplit('/').next().unwrap_or(rel);
        if self.names.is_some_and(|names| !names.contains(base)) {
            return Ok(None);
        }
        self.source.read(rel)
    }
}

fn load_migration(
    files: &Files<'_>,
    manifest_path: &Path,
    manifest_text: &str,
    rel: &str,
    span: &std::ops::Range<usize>,
) -> Result<Migration> {
    let source = files.source;
    let display = source
        .display_path_in(rel, files.cwd)
        .to_string_lossy()
        .into_owned();
    let raw = source.read(rel)?.ok_or_else(|| {
        SourceError::new(
            "strata::missing_file",
            manifest_path.to_string_lossy(),
            manifest_text,
            Some(span.clone()),
            format!("migration file {display} does not exist"),
        )
        .with_label("listed here")
        .with_help("create the file, fix the path, or remove the entry (paths are relative to the package root)")
    })?;
    let text: Arc<str> = Arc::from(pgstrata_sql::normalize(&raw).as_ref());
    let sections = migration::parse(&text).map_err(|e| {
        SourceError::new("strata::sections", &display, text.to_string(), Some(e.range), e.message)
            .with_help("dbmate markers are `-- migrate:up` and `-- migrate:down`, optionally followed by `transaction:false`")
    })?;
    let (up_sections, inline_down): (Vec<Section>, Vec<Section>) = sections
        .into_iter()
        .partition(|s| s.direction == Direction::Up);
    if up_sections.is_empty() {
        return Err(SourceError::new(
            "strata::sections",
            &display,
            text.to_string(),
            None,
            format!("{display} has a `-- migrate:down` section but no `-- migrate:up` section"),
        )
        .into());
    }
    let up_sql = up_text(&text, &up_sections, &inline_down);
    let down_rel = down_sibling(rel);
    let sibling = files.read_sibling(&down_rel)?;
    let down = match (sibling, inline_down.is_empty()) {
        (Some(_), false) => {
            return Err(SourceError::new(
                "strata::sections",
                &display,
                text.to_string(),
                inline_down.first().and_then(|s| s.marker.clone()),
                format!(
                    "{display} has both a `-- migrate:down` section and a sibling file {down_rel}"
                ),
            )
            .with_help("keep the down SQL in one place")
            .into());
        }
        (Some(down_raw), true) => {
            let down_display = source
                .display_path_in(&down_rel, files.cwd)
                .to_string_lossy()
                .into_owned();
            let down_text: Arc<str> = Arc::from(pgstrata_sql::normalize(&down_raw).as_ref());
            let down_sections = migration::parse_down(&down_text).map_err(|e| {
                SourceError::new(
                    "strata::sections",
                    &down_display,
                    down_text.to_string(),
                    Some(e.range),
                    e.message,
                )
            })?;
            Some(Script::new(down_display, down_text, down_sections))
        }
        (None, false) => Some(Script::new(display.clone(), text.clone(), inline_down)),
        (None, true) => None,
    };
    Ok(Migration {
        name: migration_name(rel),
        path: rel.to_string(),
        checksum: checksum(&up_sql),
        up: Script::new(display, text, up_sections),
        up_sql,
        down,
        tool_version: None,
    })
}

/// The recorded up text: the file without its down sections (the preamble before the first marker and every up
/// section with its marker), so that editing only the down part does not change the up checksum.
fn up_text(text: &Arc<str>, up: &[Section], down: &[Section]) -> Arc<str> {
    if down.is_empty() {
        return Arc::clone(text);
    }
    let first_marker = up
        .iter()
        .chain(down)
        .filter_map(|s| s.marker.as_ref().map(|m| m.start))
        .min()
        .unwrap_or(0);
    let mut out = String::from(&text[..first_marker]);
    for s in up {
        let start = s.marker.as_ref().map_or(s.range.start, |m| m.start);
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&text[start..s.range.end]);
    }
    Arc::from(out)
}

/// A `.sql` file next to listed migrations that is neither listed, a down file, nor a test is almost always a
/// migration someone forgot to list: say so before it silently never runs.
fn check_unlisted(
    source: &PackageSource,
    sql_files: &[String],
    manifest: &Manifest,
    manifest_path: &Path,
    manifest_text: &str,
) -> Result<()> {
    let listed: BTreeSet<&str> = manifest
        .migrations
        .iter()
        .map(|(p, _)| p.as_str())
        .collect();
    let downs: BTreeSet<String> = listed.iter().map(|p| down_sibling(p)).collect();
    let dirs: BTreeSet<&str> = listed
        .iter()
        .filter_map(|p| p.rsplit_once('/').map(|(d, _)| d))
        .collect();
    if dirs.is_empty() {
        return Ok(());
    }
    for f in sql_files {
        let Some((dir, _)) = f.rsplit_once('/') else {
            continue;
        };
        if dirs.contains(dir)
            && !listed.contains(f.as_str())
            && !downs.contains(f)
            && !f.ends_with("_test.sql")
        {
            let display = source.display_path(f).to_string_lossy().into_owned();
            return Err(SourceError::new(
                "strata::unlisted",
                manifest_path.to_string_lossy(),
                manifest_text,
                manifest.migrations.last().map(|(_, s)| s.clone()),
                format!("{display} is in a migrations directory but not listed in `migrations`"),
            )
            .with_label("the list ends here")
            .with_help(format!(
                "add \"{f}\" to `migrations` (or create migrations with `strata new NAME`, which lists them for you)"
            ))
            .into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_directories_and_suffixes() {
        assert_eq!(migration_name("migrations/0001_init.sql"), "0001_init");
        assert_eq!(migration_name("0002-users.up.sql"), "0002-users");
        assert_eq!(down_sibling("m/0002-users.up.sql"), "m/0002-users.down.sql");
        assert_eq!(down_sibling("m/0003.sql"), "m/0003.down.sql");
    }

    #[test]
    fn checksum_ignores_bom_and_line_endings() {
        assert_eq!(checksum("a;\nb;\n"), checksum("\u{feff}a;\r\nb;\r\n"));
        assert_ne!(checksum("a;\n"), checksum("b;\n"));
    }
}
