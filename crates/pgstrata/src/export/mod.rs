//! `export`: write a project's migrations and managed code for another tool, or as one self-contained psql script.
//!
//! ## The psql script ([`psql_script`])
//! One file that needs nothing but `psql -f`. It is plain SQL plus PL/pgSQL `DO` blocks (no psql variables, no
//! `\if`), in this order, as `strata up` does it:
//!
//! 1. It takes Strata's deploy lock and notes the state before.
//! 2. Package roles (unless `[security] package_role = false`): each role created if missing and granted to the
//!    login, the package's schema created owned by it (or an existing one handed over to it, with its objects), and
//!    the `uses` grants given or revoked against what `strata.package` recorded — see `export/roles.rs`.
//! 3. Strata's history tables, created if missing (Strata's own migrations, exactly as `strata up` bootstraps them).
//! 4. Every migration the history (`strata.migration`) lacks, each statement through `EXECUTE` as the package's
//!    role (`SET LOCAL ROLE`), its schema and extensions created and its `search_path` set as `strata up` does;
//!    then recorded, as the login, with its checksum and its up and down SQL (`source = 'psql'`). Repeatable scripts
//!    run when their checksum changed.
//! 5. Managed code (see `export/code.rs`): each statement, in the dependency order `strata up` uses, is skipped when
//!    `strata.managed_object` records an object installed from the same source that the catalog shows untouched;
//!    otherwise it runs (`CREATE OR REPLACE`) as the package role and its record is written with the identity, oid,
//!    catalog version and definition hash read by the same queries `strata up` runs. Recorded objects whose source
//!    is gone are dropped. **Only in-place replacement is supported**: when PostgreSQL refuses `CREATE OR REPLACE`
//!    (changed return type or parameter names, changed view columns) or an object to drop still has dependents, the
//!    script stops with an error saying to deploy that change with `strata up`, and nothing is applied. Tests are not
//!    run.
//! 6. The last block reports each package's `from → to` with `RAISE NOTICE`.
//!
//! Everything happens in one transaction. Run twice, the second run changes nothing (it records no run either), and
//! after it `strata status` shows nothing pending and no drift, and `strata up` has nothing to do.
//!
//! No-transaction migrations cannot run inside that transaction (nor inside a `DO` block): as `strata up` does, the
//! script commits what came before, runs their statements one by one in autocommit with psql's `\gexec` (each
//! statement is selected only while the migration is not recorded), records the migration in a new transaction and
//! carries on. A script with such migrations therefore commits in several steps, and the file's header says so;
//! a session-level advisory lock keeps other deployers out across those commits.
//!
//! Statements run through `EXECUTE` behave as at top level except for the few things PL/pgSQL refuses:
//! transaction control (`COMMIT`, `BEGIN`) and `SELECT … INTO new_table` (use `CREATE TABLE … AS`).
//!
//! ## Other tools ([`export`])
//! dbmate, Flyway, sqlx, golang-migrate and diesel folders, in the project's deploy order, with down parts where the
//! format has them (Flyway: `U` undo scripts). File names are kept when they already follow the tool's pattern and
//! sort into the same order; otherwise every migration is renumbered `0001_<name>`, … (`V1__<name>` for Flyway).
//! Because those tools send a file as one multi-statement query (an implicit transaction), a no-transaction
//! migration with several statements becomes one migration per statement (Flyway splits statements itself and gets
//! an `executeInTransaction=false` `.conf` file instead). A package whose schema is not `public` gets a first
//! migration creating its schema and extensions, and each transactional migration sets `search_path` to the
//! package's schema for its own transaction (as `strata up` does); single-statement no-transaction migrations
//! cannot, so their names must be schema-qualified (a warning lists them). Repeatable scripts become Flyway `R__`
//! scripts, and for the other tools one generated migration per package at the end. Managed code follows, in
//! dependency order: Flyway repeatables `R__<rank>_<package>_<file>.sql`, or for the other tools one generated
//! migration per package whose down part drops it (see `export/code.rs`). Package roles are not exported, nor
//! Strata's own history tables: the other tool keeps its own.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::source::project::Project;

pub(crate) mod bundle;
mod code;
pub(crate) mod dump;
mod psql;
mod quote;
mod roles;
mod tools;

pub use psql::psql_script;

/// What `strata export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExportFormat {
    /// One self-contained script for `psql -f`.
    Psql,
    /// A dbmate migrations folder.
    Dbmate,
    /// A Flyway `sql` folder.
    Flyway,
    /// An sqlx migrations folder.
    Sqlx,
    /// A golang-migrate folder.
    GolangMigrate,
    /// A diesel migrations folder.
    Diesel,
}

impl ExportFormat {
    /// Every format.
    pub const ALL: [ExportFormat; 6] = [
        ExportFormat::Psql,
        ExportFormat::Dbmate,
        ExportFormat::Flyway,
        ExportFormat::Sqlx,
        ExportFormat::GolangMigrate,
        ExportFormat::Diesel,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            ExportFormat::Psql => "psql",
            ExportFormat::Dbmate => "dbmate",
            ExportFormat::Flyway => "flyway",
            ExportFormat::Sqlx => "sqlx",
            ExportFormat::GolangMigrate => "golang-migrate",
            ExportFormat::Diesel => "diesel",
        }
    }
}

impl FromStr for ExportFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<ExportFormat> {
        ExportFormat::ALL
            .into_iter()
            .find(|f| f.name() == s || (s == "golang" && *f == ExportFormat::GolangMigrate))
            .ok_or_else(|| {
                Error::usage(
                    format!("unknown export format `{s}`"),
                    Some(format!(
                        "use one of: {}",
                        ExportFormat::ALL.map(ExportFormat::name).join(", ")
                    )),
                )
            })
    }
}

/// What `export` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ExportReport {
    /// Format.
    pub format: ExportFormat,
    /// The file or folder written.
    pub path: PathBuf,
    /// Files written.
    pub files: Vec<PathBuf>,
    /// Migrations exported (after splitting no-transaction migrations, for the other tools).
    pub migrations: usize,
    /// Whether migrations were renumbered (their names did not fit the tool, or some were split or added).
    pub renumbered: bool,
    /// Things to know about the result.
    pub warnings: Vec<String>,
}

/// Write the project's migrations in `format` to `out` (a file for `psql`, else a folder that must be empty or
/// not exist yet).
pub fn export(project: &Project, format: ExportFormat, out: &Path) -> Result<ExportReport> {
    if format == ExportFormat::Psql {
        let script = psql_script(project)?;
        write_file(out, &script)?;
        let migrations = project
            .packages()
            .iter()
            .map(|p| p.migrations().len())
            .sum();
        return Ok(ExportReport {
            format,
            path: out.to_path_buf(),
            files: vec![out.to_path_buf()],
            migrations,
            renumbered: false,
            warnings: Vec::new(),
        });
    }
    if out.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|source| Error::Read {
            path: out.to_path_buf(),
            source,
        })?;
        if entries.next().is_some() {
            return Err(Error::usage(
                format!("{} is not empty", out.display()),
                Some("export into a new or empty folder, so no old migration is mixed in".into()),
            ));
        }
    }
    let (items, mut warnings) = tools::items(project, format)?;
    let (names, renumbered) = tools::name_items(&items, format);
    let mut files = Vec::new();
    for (item, name) in items.iter().zip(&names) {
        for (rel, text) in tools::render(item, name, format) {
            let path = out.join(&rel);
            write_file(&path, &text)?;
            files.push(path);
        }
    }
    if format == ExportFormat::Flyway && items.iter().any(|i| i.down.is_some()) {
        warnings.push(
            "down parts were written as Flyway undo scripts (U…); only Flyway Teams runs them"
                .to_string(),
        );
    }
    Ok(ExportReport {
        format,
        path: out.to_path_buf(),
        files,
        migrations: items.iter().filter(|i| !i.repeatable).count(),
        renumbered,
        warnings,
    })
}

fn write_file(path: &Path, text: &str) -> Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|source| Error::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    std::fs::write(path, text).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}
