//! Other tools' tracking tables, as `adopt` reads them: which tool, which versions it applied, and the checksums it
//! keeps (sqlx's SHA-384, Flyway's CRC-32, refinery's SipHash-1-3, postgres-migrations' SHA-1), checked against the
//! migration files.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

use sha2::{Digest, Sha384};
use tokio_postgres::Client;

use crate::error::{Error, Result};
use crate::source::layout::{
    FlywayVersion, Layout, SqlxConfig, flyway_checksum, leading_digits, postgres_migrations_hash,
};
use crate::source::package::{Migration, Package};

/// A migration tool whose tracking table `strata adopt` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Tool {
    /// dbmate: `schema_migrations(version varchar)`.
    Dbmate,
    /// sqlx: `_sqlx_migrations(version, description, installed_on, success, checksum, execution_time)`.
    Sqlx,
    /// diesel: `__diesel_schema_migrations(version, run_on)`.
    Diesel,
    /// golang-migrate: `schema_migrations(version bigint, dirty boolean)`, one row.
    GolangMigrate,
    /// Flyway: `flyway_schema_history`.
    Flyway,
    /// refinery: `refinery_schema_history(version, name, applied_on, checksum)`.
    Refinery,
    /// popx (Ory): `schema_migration(version, version_self)`.
    Popx,
    /// postgres-migrations: `migrations(id, name, hash, executed_at)`.
    PostgresMigrations,
}

impl Tool {
    /// Every tool.
    pub const ALL: [Tool; 8] = [
        Tool::Dbmate,
        Tool::Sqlx,
        Tool::Diesel,
        Tool::GolangMigrate,
        Tool::Flyway,
        Tool::Refinery,
        Tool::Popx,
        Tool::PostgresMigrations,
    ];

    /// Its name on the command line and in `source = 'adopted:<name>'`.
    pub fn name(self) -> &'static str {
        self.layout().name()
    }

    /// The tracking table the tool creates by default.
    pub fn default_table(self) -> &'static str {
        match self {
            Tool::Dbmate | Tool::GolangMigrate => "schema_migrations",
            Tool::Sqlx => "_sqlx_migrations",
            Tool::Diesel => "__diesel_schema_migrations",
            Tool::Flyway => "flyway_schema_history",
            Tool::Refinery => "refinery_schema_history",
            Tool::Popx => "schema_migration",
            Tool::PostgresMigrations => "migrations",
        }
    }

    /// The folder layout the tool uses.
    pub fn layout(self) -> Layout {
        match self {
            Tool::Dbmate => Layout::Dbmate,
            Tool::Sqlx => Layout::Sqlx,
            Tool::Diesel => Layout::Diesel,
            Tool::GolangMigrate => Layout::GolangMigrate,
            Tool::Flyway => Layout::Flyway,
            Tool::Refinery => Layout::Refinery,
            Tool::Popx => Layout::Popx,
            Tool::PostgresMigrations => Layout::PostgresMigrations,
        }
    }

    /// The tool that uses `layout`, if any (the up/down layout has no tracking table).
    pub fn for_layout(layout: Layout) -> Option<Tool> {
        Tool::ALL.into_iter().find(|t| t.layout() == layout)
    }
}

impl fmt::Display for Tool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Tool {
    type Err = Error;

    fn from_str(s: &str) -> Result<Tool> {
        Tool::ALL
            .into_iter()
            .find(|t| t.name() == s || (s == "golang" && *t == Tool::GolangMigrate))
            .ok_or_else(|| {
                Error::usage(
                    format!("unknown tool `{s}`"),
                    Some(format!(
                        "use one of: {}",
                        Tool::ALL.map(Tool::name).join(", ")
                    )),
                )
            })
    }
}

/// One applied entry of the tool's tracking table.
#[derive(Debug, Clone)]
pub(super) struct ToolEntry {
    pub(super) version: String,
    pub(super) check: Option<Check>,
}

#[derive(Debug, Clone)]
pub(super) enum Check {
    Sha384(Vec<u8>),
    Crc32(i32),
    SipHash(String),
    /// postgres-migrations: SHA-1 (hex) of the file name followed by its text.
    Sha1Named(String),
}

impl Check {
    pub(super) fn kind(&self) -> &'static str {
        match self {
            Check::Sha384(_) => "sha384",
            Check::Crc32(_) => "crc32",
            Check::SipHash(_) => "siphash13",
            Check::Sha1Named(_) => "sha1",
        }
    }
}

/// What the tracking table says.
pub(super) struct ToolState {
    pub(super) table: String,
    pub(super) entries: Vec<ToolEntry>,
    /// golang-migrate keeps only the current version: everything up to it is applied.
    pub(super) up_to: Option<i128>,
    /// Flyway baseline marker: every version up to it counts as applied.
    pub(super) flyway_baseline: Option<FlywayVersion>,
    /// Flyway repeatables: script name → checksum of the latest successful run.
    pub(super) repeatables: HashMap<String, i32>,
    /// Migrations the tool ran that have no SQL file (Flyway's Java migrations): `V<version> <script> (<type>)`.
    pub(super) external: Vec<String>,
}

/// Which tracking table is in the database (its search path).
pub(super) async fn detect_tool(client: &Client) -> Result<Tool> {
    let mut found = Vec::new();
    for tool in Tool::ALL {
        if tool == Tool::GolangMigrate {
            continue;
        }
        if let Some(table) = resolve_table(client, tool.default_table()).await? {
            // `migrations` is a common name: only postgres-migrations' own shape counts.
            if tool == Tool::PostgresMigrations && !has_column(client, &table, "hash").await? {
                continue;
            }
            let tool = if tool == Tool::Dbmate && has_column(client, &table, "dirty").await? {
                Tool::GolangMigrate
            } else {
                tool
            };
            found.push(tool);
        }
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(Error::usage(
            format!(
                "no other tool's tracking table in this database (looked for {})",
                [
                    "schema_migrations",
                    "_sqlx_migrations",
                    "__diesel_schema_migrations",
                    "flyway_schema_history",
                    "refinery_schema_history",
                    "schema_migration",
                    "migrations"
                ]
                .join(", ")
            ),
            Some(
                "for a database no tool tracked, record what it already has with `strata baseline --to NAME`; \
                 for a table in another schema, pass --from TOOL --table SCHEMA.TABLE"
                    .into(),
            ),
        )),
        several => Err(Error::usage(
            format!(
                "several tools' tracking tables are in this database: {}",
                several.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
            ),
            Some("pass --from TOOL".into()),
        )),
    }
}

/// The table's quoted, schema-qualified name, if it exists.
async fn resolve_table(client: &Client, name: &str) -> Result<Option<String>> {
    let row = client
        .query_one(
            "SELECT to_regclass($1)::text, to_regclass($1)::oid",
            &[&name],
        )
        .await
        .map_err(|e| Error::usage(format!("invalid table name `{name}`: {e}"), None))?;
    let text: Option<String> = row.get(0);
    let oid: Option<u32> = row.get(1);
    match (text, oid) {
        (Some(_), Some(oid)) => {
            let qualified: String = client
                .query_one(
                    "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c
                       JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                    &[&oid],
                )
                .await
                .map_err(Error::db("reading the tracking table's name"))?
                .get(0);
            Ok(Some(qualified))
        }
        _ => Ok(None),
    }
}

async fn has_column(client: &Client, table: &str, column: &str) -> Result<bool> {
    Ok(client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass($1) AND attname = $2
                               AND NOT attisdropped AND attnum > 0)",
            &[&table, &column],
        )
        .await
        .map_err(Error::db("reading the tracking table's columns"))?
        .get(0))
}

pub(super) async fn read_tool_state(client: &Client, tool: Tool, table: &str) -> Result<ToolState> {
    let Some(qualified) = resolve_table(client, table).await? else {
        return Err(Error::usage(
            format!("{tool}'s tracking table {table} is not in this database"),
            Some(
                "check the connection settings (database, search_path), or pass --table SCHEMA.TABLE".into(),
            ),
        ));
    };
    let is_golang = has_column(client, &qualified, "dirty").await?;
    match (tool, is_golang) {
        (Tool::Dbmate, true) => {
            return Err(Error::usage(
                format!(
                    "{qualified} has a `dirty` column: it is golang-migrate's table, not dbmate's"
                ),
                Some("use --from golang-migrate".into()),
            ));
        }
        (Tool::GolangMigrate, false) => {
            return Err(Error::usage(
                format!("{qualified} has no `dirty` column: it is not golang-migrate's table"),
                Some("use --from dbmate if dbmate created it".into()),
            ));
        }
        _ => {}
    }
    let query = |sql: &str| sql.replace("{t}", &qualified);
    let db_err = || Error::db(format!("reading {qualified}"));
    let mut state = ToolState {
        table: qualified.clone(),
        entries: Vec::new(),
        up_to: None,
        flyway_baseline: None,
        repeatables: HashMap::new(),
        external: Vec::new(),
    };
    match tool {
        Tool::Dbmate | Tool::Diesel | Tool::Popx => {
            for r in client
                .query(&query("SELECT version::text FROM {t} ORDER BY 1"), &[])
                .await
                .map_err(db_err())?
            {
                state.entries.push(ToolEntry {
                    version: r.get(0),
                    check: None,
                });
            }
        }
        Tool::GolangMigrate => {
            let rows = client
                .query(&query("SELECT version::bigint, dirty FROM {t}"), &[])
                .await
                .map_err(db_err())?;
            match rows.as_slice() {
                [] => {}
                [row] => {
                    let version: i64 = row.get(0);
                    let dirty: bool = row.get(1);
                    if dirty {
                        return Err(Error::refused(
                            format!(
                                "golang-migrate marked version {version} dirty: it failed part-way, and the database \
                                 may hold some of its changes"
                            ),
                            format!(
                                "nothing was recorded. Check the database by hand, finish or undo migration {version}, \
                                 then clear the flag with `migrate force {version}` (if it is complete) or \
                                 `migrate force <previous version>`, and adopt again"
                            ),
                        ));
                    }
                    // golang-migrate uses -1 for "nothing applied" after a full rollback.
                    if version >= 0 {
                        state.up_to = Some(i128::from(version));
                    }
                }
                _ => {
                    return Err(Error::refused(
                        format!(
                            "{qualified} has {} rows; golang-migrate keeps exactly one",
                            rows.len()
                        ),
                        "nothing was recorded. Is this really golang-migrate's table?",
                    ));
                }
            }
        }
        Tool::Sqlx => {
            for r in client
                .query(
                    &query(
                        "SELECT version, description, success, checksum FROM {t} ORDER BY version",
                    ),
                    &[],
                )
                .await
                .map_err(db_err())?
            {
                let version: i64 = r.get(0);
                let description: String = r.get(1);
                let success: bool = r.get(2);
                if !success {
                    return Err(Error::refused(
                        format!(
                            "sqlx recorded migration {version} ({description}) as failed (success = false): it \
                             stopped part-way"
                        ),
                        format!(
                            "nothing was recorded. Check the database by hand, complete or undo migration {version}, \
                             then delete its row from {qualified} (or set success = true if it is complete), and \
                             adopt again"
                        ),
                    ));
                }
                state.entries.push(ToolEntry {
                    version: version.to_string(),
                    check: Some(Check::Sha384(r.get(3))),
                });
            }
        }
        Tool::Refinery => {
            for r in client
                .query(
                    &query("SELECT version::bigint, checksum FROM {t} ORDER BY 1"),
                    &[],
                )
                .await
                .map_err(db_err())?
            {
                let version: i64 = r.get(0);
                state.entries.push(ToolEntry {
                    version: version.to_string(),
                    check: Some(Check::SipHash(r.get(1))),
                });
            }
        }
        Tool::Flyway => read_flyway(client, &qualified, &mut state).await?,
        Tool::PostgresMigrations => {
            for r in client
                .query(
                    &query("SELECT id::bigint, hash::text FROM {t} ORDER BY id"),
                    &[],
                )
                .await
                .map_err(db_err())?
            {
                let id: i64 = r.get(0);
                // Row 0 is the tool's own `create-migrations-table` migration.
                if id == 0 {
                    continue;
                }
                state.entries.push(ToolEntry {
                    version: id.to_string(),
                    check: Some(Check::Sha1Named(r.get(1))),
                });
            }
        }
    }
    Ok(state)
}

async fn read_flyway(client: &Client, table: &str, state: &mut ToolState) -> Result<()> {
    let rows = client
        .query(
            &format!(
                "SELECT installed_rank, version, description, type, script, checksum, success
                   FROM {table} ORDER BY installed_rank"
            ),
            &[],
        )
        .await
        .map_err(Error::db(format!("reading {table}")))?;
    // Replay the history: an undo un-applies its version, a later run of a repeatable replaces the earlier one.
    let mut versioned: BTreeMap<Vec<u128>, ToolEntry> = BTreeMap::new();
    for r in rows {
        let rank: i32 = r.get(0);
        let version: Option<String> = r.get(1);
        let description: String = r.get(2);
        let kind: String = r.get(3);
        let script: String = r.get(4);
        let checksum: Option<i32> = r.get(5);
        let success: bool = r.get(6);
        if !success {
            return Err(Error::refused(
                format!(
                    "Flyway recorded a failed migration: {script} (rank {rank}, version {})",
                    version.as_deref().unwrap_or("repeatable")
                ),
                format!(
                    "nothing was recorded. Clean up what it left in the database, then run `flyway repair` (it removes \
                     failed entries from {table}) and adopt again"
                ),
            ));
        }
        let parsed = version.as_deref().and_then(FlywayVersion::parse);
        match (kind.as_str(), parsed) {
            ("SCHEMA", _) | ("DELETE", _) => {}
            ("BASELINE", Some(v)) => state.flyway_baseline = Some(v),
            (undo, Some(v)) if undo.starts_with("UNDO_") => {
                versioned.remove(v.parts());
            }
            ("SQL", Some(v)) => {
                versioned.insert(
                    v.parts().to_vec(),
                    ToolEntry {
                        version: v.to_string(),
                        check: checksum.map(Check::Crc32),
                    },
                );
            }
            ("SQL", None) => {
                let base = script.rsplit('/').next().unwrap_or(&script).to_string();
                if let Some(c) = checksum {
                    state.repeatables.insert(base, c);
                }
            }
            // Java (JDBC, SPRING_JDBC) and script migrations have no SQL file: they stay the tool's, recorded in the
            // adopt run as external, and the rest of the history is adopted.
            (other, _) => state.external.push(format!(
                "{}{script} ({other}, {description})",
                version
                    .as_deref()
                    .map(|v| format!("V{v} "))
                    .unwrap_or_default()
            )),
        }
    }
    state.entries = versioned.into_values().collect();
    Ok(())
}

/// A tool's version, comparable between the table and the files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum VersionKey {
    Text(String),
    Int(i128),
    Parts(Vec<u128>),
}

impl VersionKey {
    pub(super) fn parse(tool: Tool, v: &str) -> Option<VersionKey> {
        match tool {
            Tool::Dbmate | Tool::Diesel | Tool::Popx => Some(VersionKey::Text(v.to_string())),
            Tool::Sqlx | Tool::GolangMigrate | Tool::Refinery | Tool::PostgresMigrations => {
                v.trim().parse::<i128>().ok().map(VersionKey::Int)
            }
            Tool::Flyway => FlywayVersion::parse(v).map(|f| VersionKey::Parts(f.parts().to_vec())),
        }
    }

    pub(super) fn as_int(&self) -> Option<i128> {
        match self {
            VersionKey::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// The version `tool` gives migration `m`: from the layout it was read with, or else from its name (a package
/// converted to Strata's manifest that kept the tool's file names).
pub(super) fn tool_version(tool: Tool, pkg: &Package, m: &Migration) -> Option<String> {
    if pkg.layout() == Some(tool.layout()) {
        return m.tool_version().map(str::to_string);
    }
    let name = m.name();
    match tool {
        Tool::Dbmate => leading_digits(name).map(|(d, _)| d.to_string()),
        Tool::Sqlx => name
            .split_once('_')
            .and_then(|(v, _)| v.parse::<i64>().ok())
            .map(|v| v.to_string()),
        Tool::GolangMigrate => leading_digits(name)
            .filter(|(_, rest)| rest.starts_with('_'))
            .map(|(d, _)| d.to_string()),
        Tool::Diesel => Some(name.split('_').next().unwrap_or(name).replace('-', "")),
        Tool::Flyway | Tool::Refinery => name
            .strip_prefix(['V', 'U'])
            .and_then(|rest| rest.split_once("__"))
            .map(|(v, _)| v.replace('_', ".")),
        Tool::Popx => name
            .split_once('_')
            .map(|(v, _)| v.to_string())
            .filter(|v| v.bytes().all(|b| b.is_ascii_digit())),
        Tool::PostgresMigrations => leading_digits(name)
            .and_then(|(d, _)| d.parse::<i64>().ok())
            .map(|v| v.to_string()),
    }
}

/// Check a tool's checksum against the file's raw text (`sqlx`: sqlx's `[migrate] ignored-chars`, from `sqlx.toml`).
pub(super) fn verify(
    check: &Check,
    raw: &str,
    m: &Migration,
    sqlx: &SqlxConfig,
) -> std::result::Result<(), String> {
    match check {
        Check::Sha1Named(expected) => {
            let base = m.path().rsplit('/').next().unwrap_or(m.path());
            let actual = postgres_migrations_hash(base, raw);
            if actual.eq_ignore_ascii_case(expected.trim()) {
                Ok(())
            } else {
                Err(format!(
                    "postgres-migrations hash {} != file {}",
                    short(expected.trim()),
                    short(&actual)
                ))
            }
        }
        Check::Sha384(expected) => {
            let actual = Sha384::digest(sqlx.hashed_text(raw).as_bytes());
            if actual.as_slice() == expected.as_slice() {
                Ok(())
            } else {
                Err(format!(
                    "sqlx checksum {} != file {}",
                    short_hex(expected),
                    short_hex(&actual)
                ))
            }
        }
        Check::Crc32(expected) => {
            let actual = flyway_checksum(raw);
            if actual == *expected {
                Ok(())
            } else {
                Err(format!("Flyway checksum {expected} != file {actual}"))
            }
        }
        Check::SipHash(expected) => {
            let base = m.path().rsplit('/').next().unwrap_or(m.path());
            let Some((_, version, name)) = refinery_parts(base) else {
                return Err("not a refinery file name".into());
            };
            let matches = refinery_checksums(name, version, raw)
                .iter()
                .any(|c| c.to_string() == expected.trim());
            if matches {
                Ok(())
            } else {
                Err(format!(
                    "refinery checksum {expected} does not match the file"
                ))
            }
        }
    }
}

fn refinery_parts(base: &str) -> Option<(char, i64, &str)> {
    let stem = base.strip_suffix(".sql")?;
    let prefix = stem.chars().next()?;
    let (version, name) = stem.get(1..)?.split_once("__")?;
    Some((prefix, version.parse().ok()?, name))
}

/// refinery's checksum: SipHash-1-3 (keys 0) of name, version and SQL through `std::hash::Hash`; the version is an
/// `i32`, or an `i64` with refinery's `int8-versions` feature, so both are returned.
fn refinery_checksums(name: &str, version: i64, sql: &str) -> Vec<u64> {
    let mut out = Vec::new();
    if let Ok(v32) = i32::try_from(version) {
        let mut h = siphasher::sip::SipHasher13::new();
        name.hash(&mut h);
        v32.hash(&mut h);
        sql.hash(&mut h);
        out.push(h.finish());
    }
    let mut h = siphasher::sip::SipHasher13::new();
    name.hash(&mut h);
    version.hash(&mut h);
    sql.hash(&mut h);
    out.push(h.finish());
    out
}

fn short_hex(bytes: &[u8]) -> String {
    short(&hex::encode(bytes))
}

fn short(hex: &str) -> String {
    format!("{}…", hex.get(..16).unwrap_or(hex))
}

/// The files a tool's recorded version stands for. popx records a version longer than 14 digits under its first 14
/// digits when the migration ran before popx's longer versions (its "legacy" versions): such an entry stands for
/// every file whose version starts with it.
pub(super) fn files_for<'m>(
    tool: Tool,
    version: &str,
    by_key: &BTreeMap<VersionKey, &'m Migration>,
) -> Vec<&'m Migration> {
    let Some(key) = VersionKey::parse(tool, version) else {
        return Vec::new();
    };
    if let Some(m) = by_key.get(&key) {
        return vec![*m];
    }
    if tool != Tool::Popx || version.len() != 14 {
        return Vec::new();
    }
    by_key
        .iter()
        .filter(|(k, _)| matches!(k, VersionKey::Text(t) if t.len() > 14 && t.starts_with(version)))
        .map(|(_, m)| *m)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tools_round_trip() {
        for t in Tool::ALL {
            assert_eq!(t.name().parse::<Tool>().unwrap(), t);
            assert_eq!(Tool::for_layout(t.layout()), Some(t));
        }
        assert_eq!(Tool::for_layout(Layout::UpDown), None);
    }

    #[test]
    fn version_keys_compare_like_each_tool() {
        assert_eq!(
            VersionKey::parse(Tool::Sqlx, "0001"),
            VersionKey::parse(Tool::Sqlx, "1")
        );
        assert_ne!(
            VersionKey::parse(Tool::Dbmate, "0001"),
            VersionKey::parse(Tool::Dbmate, "1")
        );
        assert_eq!(
            VersionKey::parse(Tool::Flyway, "1.0"),
            VersionKey::parse(Tool::Flyway, "1")
        );
    }

    #[test]
    fn refinery_checksum_is_stable() {
        // Same inputs, same value; the i32 and i64 variants differ.
        let a = refinery_checksums("initial", 1, "CREATE TABLE t ();");
        let b = refinery_checksums("initial", 1, "CREATE TABLE t ();");
        assert_eq!(a, b);
        assert_eq!(a.len(), 2);
        assert_ne!(a[0], a[1]);
    }
}
