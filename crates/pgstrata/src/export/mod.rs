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

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pgstrata_sql::migration::{Direction, Section};
use postgres_protocol::escape::{escape_identifier, escape_literal};

use crate::db::VERSION;
use crate::db::history::{
    FINISH_RUN_SQL, LogAction, MIGRATION_SQL, PACKAGE_SQL, REPEATABLE_SQL, START_RUN_SQL,
};
use crate::db::session::{STRATA_LOCK_KEY, SessionSettings};
use crate::error::{Error, Result};
use crate::report::{MigrationId, Outcome, RunOutcome};
use crate::source::STRATA_PACKAGE;
use crate::source::package::{Migration, Package, Script};
use crate::source::project::Project;
use crate::source::repeatable::Repeatable;

pub(crate) mod bundle;
mod code;
pub(crate) mod dump;
mod roles;

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
    let (items, mut warnings) = items(project, format)?;
    let (names, renumbered) = name_items(&items, format);
    let mut files = Vec::new();
    for (item, name) in items.iter().zip(&names) {
        for (rel, text) in render(item, name, format) {
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

// ---------------------------------------------------------------------------------------------------------------
// The psql script.

/// One self-contained script that brings a database to the project's state with nothing but `psql -f` (see the
/// module docs for exactly what it does).
///
/// ```no_run
/// let project = pgstrata::Project::load(&["db/billing"])?;
/// std::fs::write("deploy.sql", pgstrata::psql_script(&project)?).unwrap();
/// // psql "$DATABASE_URL" -f deploy.sql
/// # Ok::<(), pgstrata::Error>(())
/// ```
pub fn psql_script(project: &Project) -> Result<String> {
    let packages = project.with_internal()?;
    // Checked before anything is written: a cycle in managed code is an error, as it is for `strata up`.
    let code_order = crate::decide::code::install_order(&packages)?;
    let mut w = PsqlWriter::new(&packages);
    w.header(project);
    roles::psql_roles(&mut w);
    for pkg in &packages {
        for m in pkg.migrations() {
            w.migration(pkg, m);
        }
    }
    for pkg in &packages {
        for r in pkg.repeatables() {
            w.repeatable(pkg, r);
        }
    }
    code::psql_code(&mut w, &code_order);
    w.footer();
    Ok(w.out)
}

/// Whose history row guards a block of the script.
enum Guard<'a> {
    Migration(&'a str, &'a str),
    Repeatable(&'a str, &'a str, &'a str),
}

struct PsqlWriter<'p> {
    out: String,
    packages: &'p [Package],
    in_tx: bool,
    session_lock: bool,
}

impl<'p> PsqlWriter<'p> {
    fn new(packages: &'p [Package]) -> PsqlWriter<'p> {
        let session_lock = packages.iter().any(|p| {
            p.migrations().iter().any(|m| {
                m.no_transaction() || m.down().is_some_and(Script::has_no_transaction_section)
            }) || p
                .repeatables()
                .iter()
                .any(|r| r.script().has_no_transaction_section())
        });
        PsqlWriter {
            out: String::new(),
            packages,
            in_tx: false,
            session_lock,
        }
    }

    fn header(&mut self, project: &Project) {
        let names: Vec<&str> = project.packages().iter().map(Package::name).collect();
        let count: usize = project
            .packages()
            .iter()
            .map(|p| p.migrations().len())
            .sum();
        let o = &mut self.out;
        let _ = writeln!(
            o,
            "-- Generated by strata {} (`strata export --to psql`) for: {}.",
            VERSION,
            names.join(", ")
        );
        let _ = writeln!(
            o,
            "-- {count} migration(s). Apply with: psql \"$DATABASE_URL\" -f THIS_FILE"
        );
        o.push_str(
            "--\n\
             -- Creates the package roles and Strata's history tables if missing, applies only the migrations that\n\
             -- strata.migration lacks, records each one (checksum, up and down SQL) as `strata up` does, installs the\n\
             -- managed code that changed (only in place: a change PostgreSQL cannot make with CREATE OR REPLACE stops\n\
             -- the script, deploy it with `strata up`), and reports from -> to. Running it again changes nothing.\n",
        );
        if self.session_lock {
            o.push_str(
                "-- Some migrations cannot run inside a transaction: the script commits before each of them, runs\n\
                 -- their statements one by one (psql's \\gexec), and starts a new transaction after, as `strata up`\n\
                 -- does. Everything else runs in one transaction per stretch between them.\n",
            );
        } else {
            o.push_str("-- Everything runs in one transaction: on any error nothing is applied.\n");
        }
        o.push_str("\n\\set ON_ERROR_STOP on\n");
        let settings = project
            .packages()
            .last()
            .map(|p| SessionSettings::from_manifest(p.deploy_settings()))
            .unwrap_or_default();
        for (k, v) in [
            ("lock_timeout", &settings.lock_timeout),
            ("statement_timeout", &settings.statement_timeout),
        ] {
            if let Some(v) = v {
                let _ = writeln!(o, "SET {k} = {};", escape_literal(v.as_str()));
            }
        }
        o.push_str("BEGIN;\n");
        self.in_tx = true;
        let mut body = String::new();
        let _ = writeln!(body, "  PERFORM pg_advisory_xact_lock({STRATA_LOCK_KEY});");
        if self.session_lock {
            let _ = writeln!(
                body,
                "  -- held across the commits around no-transaction migrations, released at the end\n  \
                 PERFORM pg_advisory_lock({STRATA_LOCK_KEY});"
            );
        }
        body.push_str(
            "  PERFORM set_config('strata.search_path', current_setting('search_path'), false);\n  \
             PERFORM set_config('strata.run_id', '', false);\n  \
             IF to_regclass('strata.migration') IS NULL THEN\n    \
             PERFORM set_config('strata.from_state', '{}', false);\n  \
             ELSE\n    \
             PERFORM set_config('strata.from_state',\n      \
             (SELECT COALESCE(jsonb_object_agg(package, name ORDER BY id), '{}')::text FROM strata.migration), false);\n  \
             END IF;\n",
        );
        self.do_block("deploy lock, and the state before", "", &body);
    }

    fn begin(&mut self) {
        if !self.in_tx {
            self.out.push_str("BEGIN;\n");
            self.in_tx = true;
        }
    }

    fn commit(&mut self) {
        if self.in_tx {
            self.out.push_str("COMMIT;\n");
            self.in_tx = false;
        }
    }

    fn migration(&mut self, pkg: &Package, m: &Migration) {
        let label = MigrationId::new(pkg.name(), m.name());
        let guard = Guard::Migration(pkg.name(), m.name());
        if m.up().sections().first().is_some_and(|s| s.no_transaction) {
            self.commit();
        }
        let _ = writeln!(self.out, "\n-- {label} ({})", m.path());
        if !m.no_transaction() {
            self.begin();
            let mut body = String::new();
            body.push_str(&enter_package(pkg, true, true));
            for section in m.up().sections() {
                body.push_str(&executes(m.up(), section));
            }
            body.push_str(&reset_role(pkg));
            body.push_str(&record_migration(pkg, m));
            self.guarded_block(
                "run and record it, unless the history has it",
                &guard,
                &body,
            );
            return;
        }
        for section in m.up().sections() {
            if section.no_transaction {
                self.commit();
                let _ = writeln!(
                    self.out,
                    "-- {label}: outside a transaction, statement by statement"
                );
                self.pending(&guard);
                self.guarded_block(
                    "the package's search_path (and role) for the statements below",
                    &guard,
                    &enter_package(pkg, false, true),
                );
                self.gexec(m.up(), section);
                if crate::db::roles::role_of(pkg).is_some() {
                    self.out.push_str("RESET ROLE;\n");
                }
            } else {
                self.begin();
                let mut body = enter_package(pkg, true, true);
                body.push_str(&executes(m.up(), section));
                body.push_str(&reset_role(pkg));
                self.guarded_block("its transactional part", &guard, &body);
            }
        }
        // As `strata up` does, a no-transaction migration is recorded (and committed) as soon as it ran.
        self.begin();
        self.guarded_block("record it", &guard, &record_migration(pkg, m));
        self.commit();
    }

    fn repeatable(&mut self, pkg: &Package, r: &Repeatable) {
        let label = MigrationId::new(pkg.name(), r.name());
        let guard = Guard::Repeatable(pkg.name(), r.name(), r.checksum());
        let _ = writeln!(
            self.out,
            "\n-- repeatable {label} ({}): runs when its checksum changed",
            r.path()
        );
        let script = r.script();
        for section in script.sections() {
            if section.no_transaction {
                self.commit();
                self.pending(&guard);
                self.guarded_block(
                    "the package's search_path for the statements below",
                    &guard,
                    &enter_package(pkg, false, false),
                );
                self.gexec(script, section);
            } else {
                self.begin();
                let mut body = enter_package(pkg, true, false);
                body.push_str(&executes(script, section));
                self.guarded_block("run it", &guard, &body);
            }
        }
        self.begin();
        self.guarded_block("record it", &guard, &record_repeatable(pkg, r));
        if script.has_no_transaction_section() {
            self.commit();
        }
    }

    fn footer(&mut self) {
        self.begin();
        let names: Vec<String> = self
            .packages
            .iter()
            .map(|p| escape_literal(p.name()))
            .collect();
        let mut body = String::new();
        let _ = write!(
            body,
            "  IF v_run = '' THEN\n    \
             RAISE NOTICE 'strata: nothing to apply, the database is up to date';\n    \
             RETURN;\n  \
             END IF;\n  \
             SELECT COALESCE(jsonb_object_agg(package, name ORDER BY id), '{{}}') INTO new_state FROM strata.migration;\n  \
             EXECUTE {finish} USING v_run::bigint, {success}::text, new_state, NULL::jsonb, NULL::text;\n  \
             FOREACH pkg IN ARRAY ARRAY[{}]::text[] LOOP\n    \
             SELECT count(*) INTO applied FROM strata.migration WHERE package = pkg AND run_id = v_run::bigint;\n    \
             IF applied > 0 THEN\n      \
             RAISE NOTICE 'strata: % % -> % (% migration(s))', pkg, COALESCE(old_state ->> pkg, '(nothing)'),\n        \
             new_state ->> pkg, applied;\n    \
             END IF;\n  \
             END LOOP;\n",
            names.join(", "),
            finish = dollar_quote(FINISH_RUN_SQL),
            success = escape_literal(RunOutcome::from(Outcome::Applied).as_str()),
        );
        if self.packages.iter().any(|p| !p.repeatables().is_empty()) {
            body.push_str(
                "  FOR rep IN SELECT package || ':' || name AS label FROM strata.repeatable WHERE run_id = v_run::bigint\n    \
                 ORDER BY package, name LOOP\n    \
                 RAISE NOTICE 'strata: repeatable % applied', rep.label;\n  \
                 END LOOP;\n",
            );
        }
        let declare = "  v_run text := current_setting('strata.run_id');\n  \
                       old_state jsonb := current_setting('strata.from_state')::jsonb;\n  \
                       new_state jsonb;\n  \
                       pkg text;\n  \
                       applied bigint;\n  \
                       rep record;\n";
        self.do_block("report from -> to", declare, &body);
        self.commit();
        if self.session_lock {
            self.do_block(
                "release the session lock",
                "",
                &format!("  PERFORM pg_advisory_unlock({STRATA_LOCK_KEY});\n"),
            );
        }
    }

    /// A `DO` block whose body runs only while the guard's history row is missing (or differs).
    fn guarded_block(&mut self, comment: &str, guard: &Guard<'_>, body: &str) {
        let check = match guard {
            // Nested IFs: PL/pgSQL plans the whole condition at once, so the table must exist before the EXISTS
            // is even looked at.
            Guard::Migration(p, n) => format!(
                "  IF to_regclass('strata.migration') IS NOT NULL THEN\n    \
                 IF EXISTS (SELECT FROM strata.migration WHERE package = {} AND name = {}) THEN\n      \
                 RETURN;\n    END IF;\n  END IF;\n",
                escape_literal(p),
                escape_literal(n)
            ),
            Guard::Repeatable(p, n, c) => format!(
                "  IF to_regclass('strata.repeatable') IS NOT NULL THEN\n    \
                 IF EXISTS (SELECT FROM strata.repeatable WHERE package = {} AND name = {} AND checksum = {}) THEN\n      \
                 RETURN;\n    END IF;\n  END IF;\n",
                escape_literal(p),
                escape_literal(n),
                escape_literal(c)
            ),
        };
        let declare = "  started timestamptz := clock_timestamp();\n  v_run bigint;\n";
        self.do_block(comment, declare, &format!("{check}{body}"));
    }

    fn do_block(&mut self, comment: &str, declare: &str, body: &str) {
        let tag = dollar_tag("strata", &format!("{declare}{body}"));
        let _ = writeln!(self.out, "-- {}\nDO {tag}", one_line(comment));
        if !declare.is_empty() {
            let _ = write!(self.out, "DECLARE\n{declare}");
        }
        let _ = write!(self.out, "BEGIN\n{body}END\n{tag};\n");
    }

    /// Note in `strata.pending` whether the guard's history row is missing, for [`PsqlWriter::gexec`] (whose
    /// statements may run as a package role, which cannot read Strata's history).
    fn pending(&mut self, guard: &Guard<'_>) {
        let cond = match guard {
            Guard::Migration(p, n) => format!(
                "NOT EXISTS (SELECT FROM strata.migration WHERE package = {} AND name = {})",
                escape_literal(p),
                escape_literal(n)
            ),
            Guard::Repeatable(p, n, c) => format!(
                "(to_regclass('strata.repeatable') IS NULL OR NOT EXISTS (SELECT FROM strata.repeatable\n       \
                 WHERE package = {} AND name = {} AND checksum = {}))",
                escape_literal(p),
                escape_literal(n),
                escape_literal(c)
            ),
        };
        self.do_block(
            "whether the statements below still have to run",
            "",
            &format!(
                "  PERFORM set_config('strata.pending', CASE WHEN {cond} THEN 'on' ELSE 'off' END, false);\n"
            ),
        );
    }

    /// Statements of a no-transaction section, each selected (and run by `\gexec`) while [`PsqlWriter::pending`]
    /// says the guard's row is missing.
    fn gexec(&mut self, script: &Script, section: &Section) {
        let cond = "current_setting('strata.pending') = 'on'";
        for stmt in statements(script, section) {
            let _ = write!(
                self.out,
                "SELECT {} WHERE {cond}\n\\gexec\n",
                dollar_quote(stmt)
            );
        }
    }
}

fn one_line(s: &str) -> String {
    s.replace(['\n', '\r'], " ")
}

/// The statements of a section, as `strata up` sends them.
fn statements<'a>(script: &'a Script, section: &Section) -> Vec<&'a str> {
    let text = section.text(script.text());
    pgstrata_sql::split(text)
        .statements
        .iter()
        .map(|s| s.text(text))
        .collect()
}

fn executes(script: &Script, section: &Section) -> String {
    let mut out = String::new();
    for stmt in statements(script, section) {
        let _ = writeln!(out, "  EXECUTE {};", dollar_quote(stmt));
    }
    out
}

/// Create the package's schema and extensions if missing and point `search_path` at the schema, then the session's
/// original path, as `Session::enter_package` does (`local`: for the transaction only); with `as_role`, switch to the
/// package's role as `strata up` does for migrations and managed code ([`reset_role`] switches back).
fn enter_package(pkg: &Package, local: bool, as_role: bool) -> String {
    let schema = pkg.schema();
    let mut out = format!(
        "  IF NOT EXISTS (SELECT FROM pg_namespace WHERE nspname = {}) THEN\n    EXECUTE {};\n  END IF;\n",
        escape_literal(schema),
        escape_literal(&format!("CREATE SCHEMA {}", escape_identifier(schema)))
    );
    for ext in pkg.extensions() {
        let _ = write!(
            out,
            "  IF NOT EXISTS (SELECT FROM pg_extension WHERE extname = {}) THEN\n    \
             PERFORM set_config('search_path', current_setting('strata.search_path'), {local});\n    \
             EXECUTE {};\n  END IF;\n",
            escape_literal(ext),
            escape_literal(&format!(
                "CREATE EXTENSION IF NOT EXISTS {}",
                escape_identifier(ext)
            ))
        );
    }
    let _ = writeln!(
        out,
        "  PERFORM set_config('search_path', {} || CASE WHEN current_setting('strata.search_path') = '' THEN ''\n    \
         ELSE ', ' || current_setting('strata.search_path') END, {local});",
        escape_literal(&escape_identifier(schema))
    );
    if as_role && let Some(role) = crate::db::roles::role_of(pkg) {
        let _ = writeln!(
            out,
            "  EXECUTE {};",
            escape_literal(&crate::db::roles::set_role_sql(Some(&role), local))
        );
    }
    out
}

/// Back to the login's role after [`enter_package`] with `as_role` (Strata's bookkeeping runs as the login).
fn reset_role(pkg: &Package) -> String {
    if crate::db::roles::role_of(pkg).is_some() {
        "  EXECUTE 'RESET ROLE';\n".to_string()
    } else {
        String::new()
    }
}

/// Open the script's run on its first change (needs `v_run bigint` declared); `v_run` is set either way. The run
/// row is written by the history's own statement ([`START_RUN_SQL`]).
fn open_run() -> String {
    format!(
        "  IF current_setting('strata.run_id') = '' THEN\n    \
         EXECUTE {start} INTO v_run\n      \
         USING 'psql'::text, current_setting('strata.from_state')::jsonb, {version}::text, NULL::text,\n        \
         inet_client_addr()::text;\n    \
         PERFORM set_config('strata.run_id', v_run::text, false);\n  \
         END IF;\n  \
         v_run := current_setting('strata.run_id')::bigint;\n",
        start = dollar_quote(START_RUN_SQL),
        version = escape_literal(VERSION),
    )
}

/// Open the run (once per script run), record the package ([`PACKAGE_SQL`]).
fn run_and_package(pkg: &Package) -> String {
    let uses: Vec<String> = pkg.uses().iter().map(|u| u.name.clone()).collect();
    format!(
        "{run}  EXECUTE {package} USING {name}::text, {schema}::text, {uses}, {exts};\n",
        run = open_run(),
        package = dollar_quote(PACKAGE_SQL),
        name = escape_literal(pkg.name()),
        schema = escape_literal(pkg.schema()),
        uses = text_array(&uses),
        exts = text_array(pkg.extensions()),
    )
}

/// The time since the block started, in milliseconds (needs `started timestamptz` declared).
const ELAPSED_MS: &str = "(1000 * extract(epoch FROM clock_timestamp() - started))::float8";

fn record_migration(pkg: &Package, m: &Migration) -> String {
    let down = m
        .down_sql()
        .map_or_else(|| "NULL".to_string(), |d| dollar_quote(&d));
    format!(
        "{head}  EXECUTE {record}\n    \
         USING {p}::text, {n}::text, {path}::text, {sum}::text, {up}::text,\n      {down}::text,\n      \
         {no_tx}, {ELAPSED_MS}, {version}::text, v_run, 'psql'::text, {apply}::text;\n  \
         RAISE NOTICE 'strata: applied %', {label};\n",
        head = run_and_package(pkg),
        record = dollar_quote(MIGRATION_SQL),
        p = escape_literal(pkg.name()),
        n = escape_literal(m.name()),
        path = escape_literal(m.path()),
        sum = escape_literal(m.checksum()),
        up = dollar_quote(m.up_sql()),
        no_tx = m.no_transaction(),
        version = escape_literal(VERSION),
        apply = escape_literal(LogAction::Apply.as_str()),
        label = escape_literal(&MigrationId::new(pkg.name(), m.name()).to_string()),
    )
}

fn record_repeatable(pkg: &Package, r: &Repeatable) -> String {
    format!(
        "{head}  EXECUTE {record}\n    \
         USING {p}::text, {n}::text, {path}::text, {sum}::text, {sql}::text,\n      \
         {ELAPSED_MS}, {version}::text, v_run, 'psql'::text, {apply}::text;\n  \
         RAISE NOTICE 'strata: applied repeatable %', {label};\n",
        head = run_and_package(pkg),
        record = dollar_quote(REPEATABLE_SQL),
        p = escape_literal(pkg.name()),
        n = escape_literal(r.name()),
        path = escape_literal(r.path()),
        sum = escape_literal(r.checksum()),
        sql = dollar_quote(r.script().text()),
        version = escape_literal(VERSION),
        apply = escape_literal(LogAction::Apply.as_str()),
        label = escape_literal(&MigrationId::new(pkg.name(), r.name()).to_string()),
    )
}

fn text_array(items: &[String]) -> String {
    if items.is_empty() {
        return "'{}'::text[]".to_string();
    }
    format!(
        "ARRAY[{}]::text[]",
        items
            .iter()
            .map(|s| escape_literal(s))
            .collect::<Vec<_>>()
            .join(", ")
    )
}

/// A dollar-quote tag `$<base><n>$` that does not occur in `text`, nor straddles its end (`x$q` + `$q$`).
fn dollar_tag(base: &str, text: &str) -> String {
    let mut n = 0usize;
    loop {
        let tag = if n == 0 {
            format!("${base}$")
        } else {
            format!("${base}{n}$")
        };
        let closed = format!("{text}{tag}");
        if closed.find(&tag) == Some(text.len()) {
            return tag;
        }
        n += 1;
    }
}

/// `text` as a dollar-quoted literal.
fn dollar_quote(text: &str) -> String {
    let tag = dollar_tag("q", text);
    format!("{tag}{text}{tag}")
}

// ---------------------------------------------------------------------------------------------------------------
// Other tools' folders.

/// One migration as another tool will run it: a single transaction, or a single statement outside one.
#[derive(Debug, Clone)]
struct Item {
    /// Descriptive part of the name (no version).
    base: String,
    /// The Strata migration name, when the item is the whole migration (not a piece of a split one).
    original: Option<String>,
    up: String,
    no_transaction: bool,
    down: Option<String>,
    down_no_transaction: bool,
    repeatable: bool,
}

/// Turn the project's migrations into items for `format` (see the module docs), with warnings.
fn items(project: &Project, format: ExportFormat) -> Result<(Vec<Item>, Vec<String>)> {
    let split = format != ExportFormat::Flyway;
    let mut out = Vec::new();
    let mut warnings = Vec::new();
    for pkg in project.packages() {
        if pkg.name() == STRATA_PACKAGE {
            continue;
        }
        let scoped = pkg.schema() != "public" || !pkg.extensions().is_empty();
        if scoped {
            let mut sql = format!(
                "CREATE SCHEMA IF NOT EXISTS {};\n",
                escape_identifier(pkg.schema())
            );
            for ext in pkg.extensions() {
                let _ = writeln!(
                    sql,
                    "CREATE EXTENSION IF NOT EXISTS {};",
                    escape_identifier(ext)
                );
            }
            out.push(Item {
                base: format!("{}_setup", sanitize(pkg.schema())),
                original: None,
                up: sql,
                no_transaction: false,
                down: None,
                down_no_transaction: false,
                repeatable: false,
            });
        }
        for m in pkg.migrations() {
            let pieces = pieces(m.up(), split);
            let n = pieces.len();
            let down_no_tx = m.down().is_some_and(Script::has_no_transaction_section);
            let downs = downs_for_pieces(m.down(), n, split);
            if down_no_tx
                && split
                && downs
                    .iter()
                    .flatten()
                    .any(|d| pgstrata_sql::split(d).statements.len() > 1)
            {
                warnings.push(format!(
                    "the down part of {}:{} runs outside a transaction and has more statements than the migration \
                     has pieces: the other tool sends them as one query, which PostgreSQL runs in an implicit \
                     transaction",
                    pkg.name(),
                    m.name()
                ));
            }
            for (i, ((sql, no_tx), down)) in pieces.into_iter().zip(downs).enumerate() {
                if no_tx && pkg.schema() != "public" {
                    warnings.push(format!(
                        "{}:{} runs outside a transaction, so it cannot set search_path to `{}`: its object names \
                         must be schema-qualified for the other tool",
                        pkg.name(),
                        m.name(),
                        pkg.schema()
                    ));
                }
                out.push(Item {
                    base: if n == 1 {
                        strip_version(m.name())
                    } else {
                        format!("{}_{}", strip_version(m.name()), i + 1)
                    },
                    original: (n == 1).then(|| m.name().to_string()),
                    up: if scoped && !no_tx {
                        scope(pkg, &sql)
                    } else {
                        sql
                    },
                    no_transaction: no_tx,
                    down_no_transaction: down.is_some() && down_no_tx,
                    down: match down {
                        Some(d) if scoped && !down_no_tx => Some(scope(pkg, &d)),
                        other => other,
                    },
                    repeatable: false,
                });
            }
        }
    }
    // Repeatables last, as Strata runs them after every migration.
    for pkg in project.packages() {
        if pkg.repeatables().is_empty() {
            continue;
        }
        if format == ExportFormat::Flyway {
            for r in pkg.repeatables() {
                let sql = joined(r.script(), Direction::Up);
                let scoped = pkg.schema() != "public";
                out.push(Item {
                    base: strip_repeatable(r.name()),
                    original: None,
                    up: if scoped { scope(pkg, &sql) } else { sql },
                    no_transaction: r.script().has_no_transaction_section(),
                    down: None,
                    down_no_transaction: false,
                    repeatable: true,
                });
            }
            continue;
        }
        let mut sql = String::new();
        for r in pkg.repeatables() {
            let _ = writeln!(sql, "-- {}", r.path());
            sql.push_str(&joined(r.script(), Direction::Up));
            if !sql.ends_with('\n') {
                sql.push('\n');
            }
        }
        let hash = crate::source::script::checksum(&sql);
        let short = hash.trim_start_matches("sha256:").get(..8).unwrap_or("");
        out.push(Item {
            base: format!("{}_repeatables_{short}", sanitize(pkg.schema())),
            original: None,
            up: if pkg.schema() != "public" {
                scope(pkg, &sql)
            } else {
                sql
            },
            no_transaction: false,
            down: None,
            down_no_transaction: false,
            repeatable: false,
        });
        warnings.push(format!(
            "{}'s {} repeatable script(s) became one migration at the end; when they change, export again into a \
             new folder or add a migration",
            pkg.name(),
            pkg.repeatables().len()
        ));
    }
    // Managed code after that, as Strata installs it after repeatable scripts.
    let order = crate::decide::code::install_order(project.packages())?;
    code::tool_items(project.packages(), &order, format, &mut out, &mut warnings);
    Ok((out, warnings))
}

/// The down part of a migration cut into `n` pieces: the tool rolls the last piece back first, so it gets the
/// (first part of the) down SQL. A no-transaction down part is cut statement by statement too: the last piece gets
/// the first statement, the one before it the second, …, the first piece whatever is left.
fn downs_for_pieces(down: Option<&Script>, n: usize, split: bool) -> Vec<Option<String>> {
    let mut out: Vec<Option<String>> = vec![None; n];
    let Some(d) = down else {
        return out;
    };
    let whole = joined(d, Direction::Down);
    if !split || n <= 1 || !d.has_no_transaction_section() {
        if let Some(last) = out.last_mut() {
            *last = Some(whole);
        }
        return out;
    }
    let stmts: Vec<String> = pgstrata_sql::split(&whole)
        .statements
        .iter()
        .map(|s| format!("{}\n", s.text(&whole)))
        .collect();
    for (k, stmt) in stmts.iter().enumerate() {
        let piece = n - 1 - k.min(n - 1);
        match &mut out[piece] {
            Some(text) => text.push_str(stmt),
            slot => *slot = Some(stmt.clone()),
        }
    }
    out
}

/// Wrap transactional SQL so it runs with the package's schema first on the search path, and restores the path for
/// the tool's own bookkeeping after it.
fn scope(pkg: &Package, sql: &str) -> String {
    let mut out = format!(
        "SELECT set_config('strata.saved_search_path', current_setting('search_path'), true),\n       \
         set_config('search_path', {} || ', ' || current_setting('search_path'), true);\n",
        escape_literal(&escape_identifier(pkg.schema()))
    );
    out.push_str(sql);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(
        "SELECT set_config('search_path', current_setting('strata.saved_search_path'), true);\n",
    );
    out
}

/// The up sections of a script as (SQL, no-transaction) pieces: consecutive transactional sections joined; each
/// statement of a no-transaction section its own piece when `split`.
fn pieces(script: &Script, split: bool) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    let mut tx = String::new();
    let ups: Vec<&Section> = script
        .sections()
        .iter()
        .filter(|s| s.direction == Direction::Up)
        .collect();
    if !split {
        let no_tx = ups.iter().any(|s| s.no_transaction);
        return vec![(joined(script, Direction::Up), no_tx)];
    }
    for s in ups {
        if !s.no_transaction {
            push_text(&mut tx, s.text(script.text()));
            continue;
        }
        if !tx.trim().is_empty() {
            out.push((std::mem::take(&mut tx), false));
        }
        tx.clear();
        for stmt in statements(script, s) {
            let mut one = stmt.to_string();
            one.push('\n');
            out.push((one, true));
        }
    }
    if !tx.trim().is_empty() || out.is_empty() {
        out.push((tx, false));
    }
    out
}

/// The text of a script's sections of one direction, joined.
fn joined(script: &Script, direction: Direction) -> String {
    let mut out = String::new();
    for s in script
        .sections()
        .iter()
        .filter(|s| s.direction == direction)
    {
        push_text(&mut out, s.text(script.text()));
    }
    out
}

fn push_text(out: &mut String, text: &str) {
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(text);
}

/// A name without a leading version (`0001_init` → `init`, `V1_2__add_users` → `add_users`).
fn strip_version(name: &str) -> String {
    if let Some(rest) = name.strip_prefix(['V', 'U', 'R'])
        && let Some((v, desc)) = rest.split_once("__")
        && v.chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '_')
    {
        return sanitize(desc);
    }
    let trimmed = name.trim_start_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '.');
    let trimmed = trimmed.trim_start_matches(['_', '-']);
    if trimmed.is_empty()
        || trimmed.len() == name.len() && name.starts_with(|c: char| c.is_ascii_digit())
    {
        return sanitize(name);
    }
    sanitize(trimmed)
}

fn strip_repeatable(name: &str) -> String {
    let base = name.rsplit('/').next().unwrap_or(name);
    sanitize(base.strip_prefix("R__").unwrap_or(base))
}

/// Letters, digits and `_` only (every tool accepts that in a description).
fn sanitize(s: &str) -> String {
    let mut out: String = s
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    while out.contains("__") {
        out = out.replace("__", "_");
    }
    let out = out.trim_matches('_').to_string();
    if out.is_empty() {
        "migration".into()
    } else {
        out
    }
}

/// The file name stems: the original names when they already fit the tool and keep the order, else renumbered.
fn name_items(items: &[Item], format: ExportFormat) -> (Vec<String>, bool) {
    let regular: Vec<&Item> = items.iter().filter(|i| !i.repeatable).collect();
    if let Some(kept) = keep_names(&regular, format) {
        let mut names = kept.into_iter();
        return (
            items
                .iter()
                .map(|i| {
                    if i.repeatable {
                        i.base.clone()
                    } else {
                        names.next().unwrap_or_default()
                    }
                })
                .collect(),
            false,
        );
    }
    let width = regular.len().to_string().len().max(4);
    let mut n = 0usize;
    let names = items
        .iter()
        .map(|i| {
            if i.repeatable {
                return i.base.clone();
            }
            n += 1;
            match format {
                ExportFormat::Flyway => format!("{n}__{}", i.base),
                _ => format!("{n:0width$}_{}", i.base),
            }
        })
        .collect();
    (names, true)
}

/// The original names, if each fits the tool's pattern, versions are unique, and the tool's order is Strata's.
fn keep_names(items: &[&Item], format: ExportFormat) -> Option<Vec<String>> {
    let mut names = Vec::with_capacity(items.len());
    let mut keys: Vec<crate::source::layout::SortKey> = Vec::with_capacity(items.len());
    let mut versions = std::collections::HashSet::new();
    for i in items {
        let name = i.original.as_deref()?;
        let (version, key) = tool_key(name, format)?;
        if !versions.insert(version) {
            return None;
        }
        keys.push(key);
        names.push(match format {
            // `V1__x` is written as `V1__x.sql`; the others carry their version in the name already.
            ExportFormat::Flyway => name.strip_prefix('V')?.to_string(),
            _ => name.to_string(),
        });
    }
    keys.windows(2).all(|w| w[0] < w[1]).then_some(names)
}

/// A name's version and sort key under the tool's rules, if the name fits the tool.
fn tool_key(name: &str, format: ExportFormat) -> Option<(String, crate::source::layout::SortKey)> {
    use crate::source::layout::{SortKey, leading_digits};
    match format {
        ExportFormat::Dbmate => {
            let (digits, _) = leading_digits(name)?;
            Some((digits.to_string(), SortKey::Text(format!("{name}.sql"))))
        }
        ExportFormat::Sqlx => {
            let (v, desc) = name.split_once('_')?;
            let v: i64 = v.parse().ok()?;
            (!desc.is_empty()).then(|| (v.to_string(), SortKey::Int(i128::from(v))))
        }
        ExportFormat::GolangMigrate => {
            let (digits, rest) = leading_digits(name)?;
            let v: u64 = digits.parse().ok()?;
            rest.starts_with('_')
                .then(|| (v.to_string(), SortKey::Int(i128::from(v))))
        }
        ExportFormat::Diesel => {
            let (v, desc) = name.split_once('_')?;
            let v = v.replace('-', "");
            (!v.is_empty() && !desc.is_empty()).then(|| (v.clone(), SortKey::Text(v)))
        }
        ExportFormat::Flyway => {
            let rest = name.strip_prefix('V')?;
            let (v, desc) = rest.split_once("__")?;
            let fv = crate::source::layout::FlywayVersion::parse(v)?;
            (!desc.is_empty()).then(|| {
                (
                    fv.parts()
                        .iter()
                        .map(u128::to_string)
                        .collect::<Vec<_>>()
                        .join("."),
                    SortKey::Parts(fv.parts().to_vec()),
                )
            })
        }
        ExportFormat::Psql => None,
    }
}

/// The files of one item: (path relative to the export folder, text).
fn render(item: &Item, name: &str, format: ExportFormat) -> Vec<(String, String)> {
    let ensure_nl = |s: &str| {
        let mut s = s.to_string();
        if !s.is_empty() && !s.ends_with('\n') {
            s.push('\n');
        }
        s
    };
    let up = ensure_nl(&item.up);
    let down = item.down.as_deref().map(ensure_nl);
    match format {
        ExportFormat::Dbmate => {
            let mut text = String::from("-- migrate:up");
            if item.no_transaction {
                text.push_str(" transaction:false");
            }
            text.push('\n');
            text.push_str(&up);
            text.push_str("\n-- migrate:down");
            if item.down_no_transaction {
                text.push_str(" transaction:false");
            }
            text.push('\n');
            if let Some(d) = &down {
                text.push_str(d);
            }
            vec![(format!("{name}.sql"), text)]
        }
        ExportFormat::Sqlx => {
            let mark = |no_tx: bool, s: &str| {
                if no_tx {
                    format!("-- no-transaction\n{s}")
                } else {
                    s.to_string()
                }
            };
            match &down {
                Some(d) => vec![
                    (format!("{name}.up.sql"), mark(item.no_transaction, &up)),
                    (
                        format!("{name}.down.sql"),
                        mark(item.down_no_transaction, d),
                    ),
                ],
                None => vec![(format!("{name}.sql"), mark(item.no_transaction, &up))],
            }
        }
        ExportFormat::GolangMigrate => {
            let mut files = vec![(format!("{name}.up.sql"), up)];
            if let Some(d) = down {
                files.push((format!("{name}.down.sql"), d));
            }
            files
        }
        ExportFormat::Diesel => {
            let mut files = vec![(format!("{name}/up.sql"), up)];
            files.push((
                format!("{name}/down.sql"),
                down.unwrap_or_else(|| "-- This migration has no down part.\n".to_string()),
            ));
            if item.no_transaction {
                files.push((
                    format!("{name}/metadata.toml"),
                    "run_in_transaction = false\n".to_string(),
                ));
            }
            files
        }
        ExportFormat::Flyway => {
            if item.repeatable {
                return vec![(format!("R__{name}.sql"), up)];
            }
            let mut files = vec![(format!("V{name}.sql"), up)];
            if item.no_transaction {
                files.push((
                    format!("V{name}.sql.conf"),
                    "executeInTransaction=false\n".to_string(),
                ));
            }
            if let Some(d) = down {
                files.push((format!("U{name}.sql"), d));
            }
            files
        }
        ExportFormat::Psql => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollar_quotes_avoid_the_text() {
        assert_eq!(dollar_quote("SELECT 1"), "$q$SELECT 1$q$");
        assert_eq!(dollar_quote("SELECT '$q$'"), "$q1$SELECT '$q$'$q1$");
        assert_eq!(dollar_quote("x$"), "$q$x$$q$");
        assert_eq!(dollar_quote("x$q"), "$q1$x$q$q1$");
    }

    #[test]
    fn versions_are_stripped_from_names() {
        assert_eq!(strip_version("0001_init"), "init");
        assert_eq!(strip_version("20240101120000_create_users"), "create_users");
        assert_eq!(strip_version("V1_2__add_users"), "add_users");
        assert_eq!(strip_version("2024-01-31-120000_posts"), "posts");
        assert_eq!(strip_version("0003-users"), "users");
        assert_eq!(strip_version("init"), "init");
        assert_eq!(strip_version("0001"), "0001");
    }

    #[test]
    fn names_are_kept_only_when_they_fit() {
        let item = |n: &str| Item {
            base: strip_version(n),
            original: Some(n.to_string()),
            up: String::new(),
            no_transaction: false,
            down: None,
            down_no_transaction: false,
            repeatable: false,
        };
        let items = vec![item("0001_a"), item("0002_b")];
        assert_eq!(
            name_items(&items, ExportFormat::Dbmate),
            (vec!["0001_a".to_string(), "0002_b".to_string()], false)
        );
        // sqlx compares versions as numbers: 10 after 9 is fine, but these names are out of order for dbmate.
        let items = vec![item("9_a"), item("10_b")];
        assert!(!name_items(&items, ExportFormat::Sqlx).1);
        assert!(name_items(&items, ExportFormat::Dbmate).1);
        let items = vec![item("init"), item("users")];
        assert_eq!(
            name_items(&items, ExportFormat::Flyway).0,
            vec!["1__init".to_string(), "2__users".to_string()]
        );
    }
}
