//! Other tools' migration folders (see the module docs of `crate::export`): items in deploy order, named to fit
//! the tool, rendered as its files.

use std::fmt::Write as _;

use pgstrata_sql::migration::{Direction, Section};
use postgres_protocol::escape::{escape_identifier, escape_literal};

use super::ExportFormat;
use crate::error::Result;
use crate::source::STRATA_PACKAGE;
use crate::source::layout::{FlywayVersion, SortKey, leading_digits};
use crate::source::package::{Package, Script};
use crate::source::project::Project;

/// One migration as another tool will run it: a single transaction, or a single statement outside one.
#[derive(Debug, Clone)]
pub(super) struct Item {
    /// Descriptive part of the name (no version).
    pub(super) base: String,
    /// The Strata migration name, when the item is the whole migration (not a piece of a split one).
    pub(super) original: Option<String>,
    pub(super) up: String,
    pub(super) no_transaction: bool,
    pub(super) down: Option<String>,
    pub(super) down_no_transaction: bool,
    pub(super) repeatable: bool,
}

/// Turn the project's migrations into items for `format` (see the module docs), with warnings.
pub(super) fn items(project: &Project, format: ExportFormat) -> Result<(Vec<Item>, Vec<String>)> {
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
    super::code::tool_items(project.packages(), &order, format, &mut out, &mut warnings);
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
pub(super) fn scope(pkg: &Package, sql: &str) -> String {
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
        for stmt in super::psql::statements(script, s) {
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
pub(super) fn sanitize(s: &str) -> String {
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
pub(super) fn name_items(items: &[Item], format: ExportFormat) -> (Vec<String>, bool) {
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
    let mut keys: Vec<SortKey> = Vec::with_capacity(items.len());
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
fn tool_key(name: &str, format: ExportFormat) -> Option<(String, SortKey)> {
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
            let fv = FlywayVersion::parse(v)?;
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
pub(super) fn render(item: &Item, name: &str, format: ExportFormat) -> Vec<(String, String)> {
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
