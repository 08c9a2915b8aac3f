//! What package code may not do, refused before anything runs (not lint rules: `-- squawk-ignore` and
//! `--allow-lint-errors` do not silence these).
//!
//! - **Transaction control** in a section that runs inside the deploy's transaction (`COMMIT`, `ROLLBACK`,
//!   `BEGIN`, …, and `RELEASE`/`ROLLBACK TO` a savepoint the section did not create): it would commit half a
//!   deploy, or undo Strata's own records. `PREPARE TRANSACTION` and `COMMIT|ROLLBACK PREPARED` anywhere: a
//!   prepared transaction outlives the session and holds its locks, and the next deploy would wait for it forever.
//! - **Statements PostgreSQL refuses inside a transaction block** in such a section (`CREATE INDEX CONCURRENTLY`, …).
//! - **`COPY … FROM STDIN` / `TO STDOUT`**: a deploy carries no data stream.
//! - For a package with a role (the package-role boundary, see `crate::db::boundary`): role changes (`SET ROLE`,
//!   `RESET ROLE`, `SET SESSION AUTHORIZATION`, `set_config('role', …)`, a routine's `SET role`), and unless the
//!   manifest's `[security]` allows them: `SECURITY DEFINER` (`allow_security_definer`), event triggers
//!   (`allow_event_triggers`), `COPY … PROGRAM` (`allow_copy_program`), role management (`allow_alter_role`).
//!
//! The scan reads text (`pgstrata_sql::hazards`); what it cannot see (`EXECUTE 'RE' || 'SET ROLE'`) the
//! boundary check after every statement catches when it runs.

use std::collections::HashSet;

use pgstrata_sql::hazards::{Hazard, statement_hazards};

use crate::decide::plan::Plan;
use crate::decide::repeatable::RepeatableState;
use crate::error::{Result, SourceError};
use crate::source::STRATA_PACKAGE;
use crate::source::package::{Package, Script};

/// Check every script the plan will run (pending migrations, changed repeatables).
pub(crate) fn check_plan(packages: &[Package], plan: &Plan) -> Result<()> {
    for step in &plan.steps {
        let Some(pkg) = packages.get(step.package_index) else {
            continue;
        };
        let Some(m) = pkg.migrations().get(step.migration_index) else {
            continue;
        };
        check_script(pkg, m.up(), &format!("{}:{}", step.package, step.name))?;
    }
    for r in plan
        .repeatables
        .iter()
        .filter(|r| r.state != RepeatableState::Applied)
    {
        let found = packages
            .iter()
            .find(|p| p.name() == r.package)
            .and_then(|p| {
                p.repeatables()
                    .iter()
                    .find(|x| x.name() == r.name)
                    .map(|x| (p, x))
            });
        if let Some((pkg, rep)) = found {
            check_script(pkg, rep.script(), &format!("{}:{}", r.package, r.name))?;
        }
    }
    Ok(())
}

/// Check one script of `pkg` (`what` names it in messages: `package:migration`).
pub(crate) fn check_script(pkg: &Package, script: &Script, what: &str) -> Result<()> {
    if pkg.name() == STRATA_PACKAGE {
        return Ok(());
    }
    let has_role = crate::db::roles::role_of(pkg).is_some();
    let security = &pkg.manifest().security;
    for section in script.sections() {
        let text = section.text(script.text());
        // Savepoints this section created: releasing or rolling back to them is its own business.
        let mut savepoints: HashSet<String> = HashSet::new();
        // Statement by statement as the text is cut: a data load's statements are never all held at once.
        let mut refused: Option<crate::Error> = None;
        pgstrata_sql::for_each_statement(text, |statement| {
            if refused.is_none()
                && let Err(e) = check_statement(
                    pkg,
                    script,
                    section,
                    text,
                    &statement,
                    what,
                    &mut savepoints,
                    has_role,
                    security,
                )
            {
                refused = Some(e);
            }
        });
        if let Some(e) = refused {
            return Err(e);
        }
    }
    Ok(())
}

/// The refusals of one statement of `section` (see [`check_script`]).
#[allow(clippy::too_many_arguments)]
fn check_statement(
    pkg: &Package,
    script: &Script,
    section: &pgstrata_sql::migration::Section,
    text: &str,
    statement: &pgstrata_sql::Statement,
    what: &str,
    savepoints: &mut HashSet<String>,
    has_role: bool,
    security: &crate::source::manifest::SecuritySettings,
) -> Result<()> {
    let start = section.range.start + statement.range.start;
    if !section.no_transaction
        && let Some(reason) = pgstrata_sql::non_transactional_reason(text, statement)
    {
        let first_line = statement
            .text(text)
            .find('\n')
            .unwrap_or(statement.range.len());
        return Err(refusal(
            "strata::no_transaction_required",
            script,
            start..start + first_line,
            format!(
                "{reason}, and {what} runs inside one: the deploy would fail at this statement"
            ),
            "cannot run inside a transaction block",
            "mark the migration with `-- strata:no-transaction` as its first line (or dbmate's \
                 `-- migrate:up transaction:false`): Strata then runs it outside a transaction, one statement \
                 at a time. Nothing was run.",
        ));
    }
    for finding in statement_hazards(text, statement) {
        let span = (start + finding.range.start)..(start + finding.range.end);
        let in_tx = !section.no_transaction;
        let refused: Option<(&str, String, String)> = match &finding.hazard {
                Hazard::Savepoint(name) => {
                    savepoints.insert(name.clone());
                    None
                }
                Hazard::ReleaseSavepoint(name) | Hazard::RollbackToSavepoint(name)
                    if in_tx && !savepoints.contains(name) =>
                {
                    Some((
                        "strata::transaction_control",
                        format!(
                            "{what} releases or rolls back to savepoint `{name}`, which it did not create"
                        ),
                        "a migration that runs in the deploy's transaction may only use savepoints it \
                         creates itself (SAVEPOINT earlier in the same section): anything else would undo or \
                         release work that is not its own. Nothing was run."
                            .to_string(),
                    ))
                }
                Hazard::TransactionControl if in_tx => Some((
                    "strata::transaction_control",
                    format!(
                        "{what} runs inside the deploy's transaction and must not control it: this would commit \
                         or roll back half a deploy"
                    ),
                    "Strata runs each migration inside the deploy's transaction and commits it at the end: \
                     remove BEGIN/COMMIT/ROLLBACK from the migration. To manage transactions yourself, mark it \
                     `-- strata:no-transaction` (it then runs statement by statement, outside any transaction). \
                     Nothing was run."
                        .to_string(),
                )),
                Hazard::PreparedTransaction => Some((
                    "strata::transaction_control",
                    format!("{what} uses a prepared transaction (two-phase commit)"),
                    "a prepared transaction outlives the deploy's session and keeps its locks, so the next \
                     deploy would wait for it forever; run two-phase commits from the application. Nothing \
                     was run."
                        .to_string(),
                )),
                Hazard::CopyStdio => Some((
                    "strata::copy_stdio",
                    format!("{what} copies data from STDIN or to STDOUT"),
                    "a deploy sends SQL, not a data stream: load data with INSERT … VALUES, or COPY from a \
                     file on the database server (needs pg_read_server_files). Nothing was run."
                        .to_string(),
                )),
                Hazard::RoleChange if has_role => Some((
                    "strata::role_change",
                    format!(
                        "{what} changes the role it runs as: package code runs as the package role {}, and \
                         must not leave it",
                        crate::db::roles::role_of(pkg).unwrap_or_default()
                    ),
                    "SET ROLE, RESET ROLE, SET SESSION AUTHORIZATION, set_config('role', …) and a routine's \
                     `SET role` would run SQL with the deploying login's rights, outside the package's \
                     boundary. Grant the package role what it needs instead, or set `package_role = false` \
                     under [security] to run the package as the login. Nothing was run."
                        .to_string(),
                )),
                Hazard::SecurityDefiner if has_role && !security.allow_security_definer => Some((
                    "strata::security_definer",
                    format!("{what} declares a SECURITY DEFINER routine"),
                    "a SECURITY DEFINER routine runs with its owner's rights for every caller. If that is \
                     intended, set `allow_security_definer = true` under [security] in strata.toml. Nothing \
                     was run."
                        .to_string(),
                )),
                Hazard::EventTrigger if has_role && !security.allow_event_triggers => Some((
                    "strata::event_trigger",
                    format!("{what} creates or alters an event trigger"),
                    "an event trigger fires for the DDL of every role of the database, not only the package's. \
                     If that is intended, set `allow_event_triggers = true` under [security] in strata.toml. \
                     Nothing was run."
                        .to_string(),
                )),
                Hazard::CopyProgram if has_role && !security.allow_copy_program => Some((
                    "strata::copy_program",
                    format!("{what} runs a program on the database server (COPY … PROGRAM)"),
                    "COPY … PROGRAM runs a shell command as the server's operating-system user. If that is \
                     intended, set `allow_copy_program = true` under [security] in strata.toml. Nothing was \
                     run."
                        .to_string(),
                )),
                Hazard::RoleManagement if has_role && !security.allow_alter_role => Some((
                    "strata::alter_role",
                    format!("{what} creates, changes or grants roles"),
                    "roles belong to the whole cluster, not to the package. If the package must manage roles, \
                     set `allow_alter_role = true` under [security] in strata.toml (the deploying login needs \
                     CREATEROLE). Nothing was run."
                        .to_string(),
                )),
                _ => None,
            };
        if let Some((code, message, help)) = refused {
            return Err(refusal(code, script, span, message, "here", &help));
        }
    }
    Ok(())
}

fn refusal(
    code: &'static str,
    script: &Script,
    span: std::ops::Range<usize>,
    message: String,
    label: &str,
    help: &str,
) -> crate::error::Error {
    SourceError::new(
        code,
        script.origin(),
        script.text().to_string(),
        Some(span),
        message,
    )
    .with_label(label)
    .with_help(help)
    .into()
}
