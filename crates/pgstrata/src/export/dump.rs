//! `dump-schema`: a stable, diff-friendly schema file, for review and for CI.
//!
//! The schema comes from `pg_dump --schema-only --no-owner --no-privileges` (as dbmate's `schema.sql`), normalised
//! so that dumping the same schema twice gives the same bytes: the server and pg_dump version lines and the random
//! `\restrict` keys of recent pg_dump releases are removed, line endings are `\n`, runs of blank lines are collapsed.
//! Strata's history follows as comment lines (package, migration, checksum, in order of application), so a diff
//! also shows which migrations a database has; they are comments because the history rows hold the full SQL of
//! every migration, which a schema file should not repeat.

use std::path::PathBuf;
use std::process::Stdio;

use tokio_postgres::Client;

use crate::error::{Error, Result};

/// Options for [`dump_schema`].
#[derive(Debug, Clone)]
pub struct DumpOptions {
    /// The `pg_dump` to run (it must be at least as new as the server).
    pub pg_dump: PathBuf,
    /// Append Strata's history (and repeatables) as comment lines.
    pub history: bool,
}

impl Default for DumpOptions {
    fn default() -> Self {
        DumpOptions {
            pg_dump: PathBuf::from("pg_dump"),
            history: true,
        }
    }
}

/// Dump the schema of the database `options` points at (see the module docs). `client` is a connection to the same
/// database, used to read the history.
///
/// ```no_run
/// # async fn demo() -> Result<(), pgstrata::Error> {
/// let options = pgstrata_conn::ConnectOptions::from_env(None)?;
/// let db = pgstrata::Database::connect(&options).await?;
/// let text = pgstrata::dump_schema(&options, db.client(), &pgstrata::DumpOptions::default()).await?;
/// std::fs::write("db/schema.sql", text).unwrap();
/// # Ok(()) }
/// ```
pub async fn dump_schema(
    options: &pgstrata_conn::ConnectOptions,
    client: &Client,
    opts: &DumpOptions,
) -> Result<String> {
    let output = tokio::process::Command::new(&opts.pg_dump)
        .args([
            "--schema-only",
            "--no-owner",
            "--no-privileges",
            "--format=plain",
            "--encoding=UTF8",
        ])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(options.pg_env())
        .stdin(Stdio::null())
        .output()
        .await
        .map_err(|source| Error::Read {
            path: opts.pg_dump.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(Error::usage(
            format!(
                "pg_dump failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ),
            Some(
                "pg_dump must be at least as new as the server; set PG_BINDIR to pick another one"
                    .into(),
            ),
        ));
    }
    let raw = String::from_utf8_lossy(&output.stdout);
    let mut text = normalize_dump(&raw);
    if opts.history {
        text.push_str(&history_comments(client).await?);
    }
    Ok(text)
}

/// Remove what changes between two dumps of the same schema.
pub(crate) fn normalize_dump(raw: &str) -> String {
    let text = pgstrata_sql::normalize(raw);
    let mut out = String::with_capacity(text.len());
    let mut blank_run = 0;
    for line in text.lines() {
        let volatile = line.starts_with("-- Dumped from database version")
            || line.starts_with("-- Dumped by pg_dump version")
            || line.starts_with("\\restrict ")
            || line.starts_with("\\unrestrict ");
        if volatile {
            continue;
        }
        let line = line.trim_end();
        if line.is_empty() {
            blank_run += 1;
            if blank_run > 1 {
                continue;
            }
        } else {
            blank_run = 0;
        }
        out.push_str(line);
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
}

async fn history_comments(client: &Client) -> Result<String> {
    let mut out = String::from(
        "\n--\n-- Strata history (strata.migration, in order of application): package | migration | checksum\n--\n\n",
    );
    if !crate::db::history::history_exists(client).await? {
        out.push_str("-- (no Strata history in this database)\n");
        return Ok(out);
    }
    for r in client
        .query(
            "SELECT package, name, checksum FROM strata.migration ORDER BY id",
            &[],
        )
        .await
        .map_err(Error::db("reading strata.migration"))?
    {
        let (p, n, c): (String, String, String) = (r.get(0), r.get(1), r.get(2));
        out.push_str(&format!("-- {p} | {n} | {c}\n"));
    }
    let has_repeatables: bool = client
        .query_one("SELECT to_regclass('strata.repeatable') IS NOT NULL", &[])
        .await
        .map_err(Error::db("checking for strata.repeatable"))?
        .get(0);
    if has_repeatables {
        let rows = client
            .query(
                "SELECT package, name, checksum FROM strata.repeatable ORDER BY package, name",
                &[],
            )
            .await
            .map_err(Error::db("reading strata.repeatable"))?;
        if !rows.is_empty() {
            out.push_str(
                "\n-- Repeatable scripts (strata.repeatable): package | name | checksum\n",
            );
            for r in rows {
                let (p, n, c): (String, String, String) = (r.get(0), r.get(1), r.get(2));
                out.push_str(&format!("-- {p} | {n} | {c}\n"));
            }
        }
    }
    Ok(out)
}

/// A unified diff from `file` (the committed schema) to `database` (a fresh dump), or `None` when they agree.
/// Line endings do not count.
pub fn schema_diff(file: &str, database: &str) -> Option<String> {
    let file = pgstrata_sql::normalize(file);
    let database = pgstrata_sql::normalize(database);
    if file.trim_end() == database.trim_end() {
        return None;
    }
    Some(
        similar::TextDiff::from_lines(file.as_ref(), database.as_ref())
            .unified_diff()
            .context_radius(3)
            .header("file", "database")
            .to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volatile_lines_go() {
        let raw = "--\r\n-- Dumped from database version 15.18\r\n-- Dumped by pg_dump version 15.18\r\n\\restrict abc\r\n\r\n\r\n\r\nCREATE TABLE t ();\r\n\\unrestrict abc\r\n\r\n";
        assert_eq!(normalize_dump(raw), "--\n\nCREATE TABLE t ();\n");
    }

    #[test]
    fn diffs() {
        assert_eq!(schema_diff("a\r\nb\r\n", "a\nb\n"), None);
        let d = schema_diff("a\nb\n", "a\nc\n").unwrap();
        assert!(d.contains("-b") && d.contains("+c"), "{d}");
    }
}
