//! Where a fleet deploys: databases listed in a targets file or returned by a query against a control database, or
//! the tenant schemas of one database; then narrowed with `--only` / `--exclude`.
//!
//! A targets file (TOML):
//!
//! ```toml
//! [defaults]                 # optional: libpq settings every target starts from (like PG* variables)
//! user = "deploy"
//! sslmode = "verify-full"
//! password_env = "FLEET_PASSWORD"
//!
//! [[target]]
//! name = "eu-1"
//! url = "postgresql://db-eu-1.internal/app"
//! group = "eu"
//! tags = ["canary"]
//!
//! [[target]]
//! name = "us-1"
//! host = "db-us-1.internal"  # or libpq settings instead of a url
//! dbname = "app"
//! password_env = "US1_PASSWORD"
//! ```
//!
//! Passwords never go in the file: `password_env` names an environment variable, else the password file
//! (`~/.pgpass`, `passfile`, `PGPASSFILE`) is used, as libpq does. Unset settings are filled from the `[defaults]`
//! table, then from the PG* and POSTGRES_* variables, then from libpq's defaults.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::Range;
use std::path::Path;

use pgstrata::{Database, Project, SourceError};
use pgstrata_conn::ConnectOptions;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::error::{Error, Result};

/// One place a fleet deploys to: a database, or a tenant schema of one.
#[derive(Clone)]
pub struct Target {
    /// Unique name, shown in progress and summaries and recorded with the run.
    pub name: String,
    /// Its group, if any (`--only`, `--exclude`, `--canary` select by group too).
    pub group: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// How to connect (the password, if any, is never displayed).
    pub connect: ConnectOptions,
    /// For a tenant target, the schema the package is deployed into.
    pub schema: Option<String>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("name", &self.name)
            .field("group", &self.group)
            .field("tags", &self.tags)
            .field("connect", &self.connect.redacted())
            .field("schema", &self.schema)
            .finish()
    }
}

impl Target {
    /// True if `selector` is its name, its group or one of its tags.
    pub fn matches(&self, selector: &str) -> bool {
        self.name == selector
            || self.group.as_deref() == Some(selector)
            || self.tags.iter().any(|t| t == selector)
    }

    /// Where it is, for people: the database without password, and the tenant schema.
    pub fn location(&self) -> String {
        match &self.schema {
            Some(s) => format!("{} schema {s}", self.connect.redacted()),
            None => self.connect.redacted(),
        }
    }
}

/// Where the targets came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A targets file.
    File(String),
    /// A query against a control database.
    Query(String),
    /// The tenant schemas of one database, by LIKE pattern or query.
    TenantSchemas(String),
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::File(p) => write!(f, "--targets {p}"),
            Source::Query(q) => write!(f, "--targets-query {q}"),
            Source::TenantSchemas(p) => write!(f, "--tenant-schemas {p}"),
        }
    }
}

/// The targets of a fleet command, in order.
#[derive(Debug, Clone)]
pub struct Targets {
    source: Source,
    list: Vec<Target>,
}

/// libpq keywords a target (or `[defaults]`) may set, and the variable that sets each in the environment.
const SETTINGS: &[(&str, &str)] = &[
    ("host", "PGHOST"),
    ("hostaddr", "PGHOSTADDR"),
    ("port", "PGPORT"),
    ("dbname", "PGDATABASE"),
    ("user", "PGUSER"),
    ("sslmode", "PGSSLMODE"),
    ("sslrootcert", "PGSSLROOTCERT"),
    ("sslcert", "PGSSLCERT"),
    ("sslkey", "PGSSLKEY"),
    ("application_name", "PGAPPNAME"),
    ("connect_timeout", "PGCONNECT_TIMEOUT"),
    ("options", "PGOPTIONS"),
    ("passfile", "PGPASSFILE"),
    ("channel_binding", "PGCHANNELBINDING"),
    ("target_session_attrs", "PGTARGETSESSIONATTRS"),
];

/// A targets file being read: its name, and its text with passwords masked, for errors that point into it.
struct FileText<'a> {
    path: &'a str,
    masked: String,
}

impl FileText<'_> {
    fn error(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        SourceError::new(
            "strata::fleet::targets",
            self.path,
            self.masked.as_str(),
            Some(span),
            message,
        )
        .into()
    }

    fn string(&self, key: &str, value: &Spanned<DeValue<'_>>) -> Result<String> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            _ => Err(self.error(value.span(), format!("`{key}` must be a string"))),
        }
    }

    /// A libpq setting's value: a string, or an integer (`port = 5432`).
    fn setting(&self, key: &str, value: &Spanned<DeValue<'_>>) -> Result<String> {
        match value.get_ref() {
            DeValue::String(s) => Ok(s.to_string()),
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix())
                .map(|n| n.to_string())
                .map_err(|_| self.error(value.span(), format!("`{key}` is out of range"))),
            _ => Err(self.error(
                value.span(),
                format!("`{key}` must be a string or an integer"),
            )),
        }
    }
}

/// Connection settings of a `[[target]]` or of `[defaults]`, as written.
#[derive(Default)]
struct Settings {
    /// libpq keyword → value.
    values: BTreeMap<&'static str, String>,
    /// The environment variable holding the password, and where it was named.
    password_env: Option<(String, Range<usize>)>,
    /// Where the first libpq setting was written (for "url and settings" errors).
    first_span: Option<Range<usize>>,
}

impl Settings {
    /// Read `key = value` if it is a connection setting; false if it is not one.
    fn read(
        &mut self,
        file: &FileText<'_>,
        key: &Spanned<std::borrow::Cow<'_, str>>,
        value: &Spanned<DeValue<'_>>,
    ) -> Result<bool> {
        let name = key.get_ref().as_ref();
        if name == "password" {
            return Err(file
                .error(key.span(), "passwords do not belong in the targets file")
                .with_help(
                    "name an environment variable with `password_env = \"VAR\"`, or use ~/.pgpass",
                ));
        }
        if name == "password_env" {
            self.password_env = Some((file.string(name, value)?, value.span()));
        } else if let Some((keyword, _)) = SETTINGS.iter().find(|(k, _)| *k == name) {
            self.values.insert(keyword, file.setting(name, value)?);
            self.first_span.get_or_insert(key.span());
        } else {
            return Ok(false);
        }
        Ok(true)
    }

    /// The settings as a libpq conninfo string (`key='value' …`).
    fn conninfo(&self) -> String {
        self.values
            .iter()
            .map(|(k, v)| format!("{k}='{}'", v.replace('\\', "\\\\").replace('\'', "\\'")))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

trait WithHelp {
    fn with_help(self, help: &str) -> Error;
}

impl WithHelp for Error {
    fn with_help(self, help: &str) -> Error {
        match self {
            Error::Targets(e) => Error::Targets(Box::new(e.with_help(help))),
            other => other,
        }
    }
}

impl Targets {
    /// Targets given directly (a library caller's own list), under a description of where they came from.
    pub fn new(source: Source, list: Vec<Target>) -> Result<Targets> {
        let mut seen = HashSet::new();
        for t in &list {
            if !seen.insert(t.name.as_str()) {
                return Err(Error::usage(
                    format!("two targets are named `{}`", t.name),
                    Some("target names must be unique"),
                ));
            }
        }
        Ok(Targets { source, list })
    }

    /// Read a targets file, resolving each target's connection settings with the process environment.
    pub fn load(path: &Path) -> Result<Targets> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::State {
            context: "cannot read the targets file",
            path: path.to_path_buf(),
            source,
        })?;
        Targets::parse(&path.display().to_string(), &text, &|k| {
            std::env::var(k).ok()
        })
    }

    /// Parse a targets file's text (`path` names it in errors), resolving connection settings with `env` (an
    /// environment lookup, so tests can inject one).
    pub fn parse(path: &str, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Targets> {
        let file = FileText {
            path,
            masked: mask_passwords(text),
        };
        let root = DeTable::parse(text).map_err(|e| {
            file.error(
                e.span().unwrap_or(0..0),
                format!("invalid targets file: {}", e.message()),
            )
        })?;
        let mut defaults = Settings::default();
        let mut entries = Vec::new();
        for (key, value) in root.get_ref().iter() {
            match (key.get_ref().as_ref(), value.get_ref()) {
                ("defaults", DeValue::Table(table)) => {
                    for (k, v) in table.iter() {
                        if !defaults.read(&file, k, v)? {
                            return Err(file
                                .error(k.span(), format!("unknown setting `{}` in [defaults]", k.get_ref()))
                                .with_help("[defaults] takes libpq settings (host, port, dbname, user, sslmode, …) and password_env"));
                        }
                    }
                }
                ("target", DeValue::Array(list)) => {
                    for entry in list.iter() {
                        let DeValue::Table(table) = entry.get_ref() else {
                            return Err(file.error(
                                entry.span(),
                                "a target must be a table: write [[target]]",
                            ));
                        };
                        entries.push(read_target(&file, table, entry.span())?);
                    }
                }
                ("defaults" | "target", _) => {
                    return Err(file.error(
                        value.span(),
                        format!(
                            "`{}` must be a table: write [defaults] or [[target]]",
                            key.get_ref()
                        ),
                    ));
                }
                (other, _) => {
                    return Err(file.error(
                        key.span(),
                        format!("unknown key `{other}`: a targets file has [defaults] and [[target]] tables"),
                    ));
                }
            }
        }
        let mut list: Vec<Target> = Vec::with_capacity(entries.len());
        let mut names: HashMap<String, Range<usize>> = HashMap::new();
        for e in entries {
            if let Some(first) = names.get(&e.name) {
                let line = text[..first.start].lines().count().max(1);
                return Err(file
                    .error(
                        e.name_span.clone(),
                        format!("two targets are named `{}`", e.name),
                    )
                    .with_help(&format!(
                        "the first is on line {line}; target names must be unique"
                    )));
            }
            names.insert(e.name.clone(), e.name_span.clone());
            let connect = e.connect(&file, &defaults, env)?;
            list.push(Target {
                name: e.name,
                group: e.group,
                tags: e.tags,
                connect,
                schema: None,
            });
        }
        if list.is_empty() {
            return Err(file.error(0..0, "the targets file lists no [[target]]"));
        }
        Ok(Targets {
            source: Source::File(path.to_string()),
            list,
        })
    }

    /// Run `sql` against the control database: each row is a target. Its `url` column (else its first column)
    /// is the database's URL or conninfo; optional columns `name` (default: the database name), `group` and
    /// `tags` (an array, or a comma-separated list).
    pub async fn from_query(control: &Database, sql: &str) -> Result<Targets> {
        let rows = query_rows(control, sql, "--targets-query").await?;
        // Per row: name, connection, group, tags.
        type Found = (Option<String>, ConnectOptions, Option<String>, Vec<String>);
        let mut found: Vec<Found> = Vec::new();
        for (i, row) in rows.iter().enumerate() {
            let url = row.text(&["url"]).ok_or_else(|| {
                Error::usage(
                    format!("--targets-query: row {} has no URL (NULL)", i + 1),
                    Some("the query returns one row per database, its URL or conninfo in a column named `url` (or the first column)"),
                )
            })?;
            let connect =
                ConnectOptions::from_env(Some(&url)).map_err(|source| Error::Connection {
                    context: format!("--targets-query: the URL of row {}", i + 1),
                    source,
                })?;
            found.push((row.named("name"), connect, row.named("group"), row.tags()));
        }
        let dbnames: Vec<&str> = found.iter().map(|f| f.1.dbname()).collect();
        let unique_dbnames = dbnames.iter().collect::<HashSet<_>>().len() == dbnames.len();
        let list = found
            .into_iter()
            .map(|(name, connect, group, tags)| {
                let name = name.unwrap_or_else(|| {
                    if unique_dbnames {
                        connect.dbname().to_string()
                    } else {
                        format!("{}:{}/{}", connect.host(), connect.port(), connect.dbname())
                    }
                });
                Target {
                    name,
                    group,
                    tags,
                    connect,
                    schema: None,
                }
            })
            .collect();
        Targets::new(Source::Query(sql.to_string()), list)
    }

    /// The tenant schemas of the database `connect` names, for the last package of `project`: `pattern` is a LIKE
    /// pattern matched against the existing schemas (leaving out PostgreSQL's, Strata's and those of the project's
    /// packages), or a query (`SELECT …`, `WITH …`, `VALUES …`, `TABLE …`) whose first column (or `schema`) names
    /// them, existing or not; `new` adds schemas to create. Schemas that do not exist yet are created by the deploy.
    pub async fn tenant_schemas(
        db: &Database,
        connect: &ConnectOptions,
        project: &Project,
        pattern: &str,
        new: &[String],
    ) -> Result<Targets> {
        let mut reserved = vec!["strata".to_string(), "strata_fleet".to_string()];
        reserved.extend(project.packages().iter().map(|p| p.schema().to_string()));
        let mut list: Vec<Target> = Vec::new();
        let target = |schema: String, group: Option<String>, tags: Vec<String>| Target {
            name: schema.clone(),
            group,
            tags,
            connect: connect.clone(),
            schema: Some(schema),
        };
        if is_query(pattern) {
            for (i, row) in query_rows(db, pattern, "--tenant-schemas")
                .await?
                .iter()
                .enumerate()
            {
                let schema = row.text(&["schema", "schema_name"]).ok_or_else(|| {
                    Error::usage(
                        format!("--tenant-schemas: row {} names no schema (NULL)", i + 1),
                        None,
                    )
                })?;
                if reserved.contains(&schema) {
                    return Err(Error::usage(
                        format!(
                            "--tenant-schemas: `{schema}` is not a tenant schema (it belongs to Strata or to a package of the project)"
                        ),
                        None,
                    ));
                }
                list.push(target(schema, row.named("group"), row.tags()));
            }
        } else {
            let rows = db
                .client()
                .query(
                    "SELECT nspname::text FROM pg_catalog.pg_namespace
                      WHERE nspname LIKE $1 AND NOT nspname = ANY ($2)
                        AND nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema'
                      ORDER BY 1",
                    &[&pattern, &reserved],
                )
                .await
                .map_err(Error::db("listing the tenant schemas"))?;
            list.extend(rows.iter().map(|r| target(r.get(0), None, Vec::new())));
        }
        for schema in new {
            if reserved.contains(schema) {
                return Err(Error::usage(
                    format!(
                        "--new-tenant {schema}: the schema belongs to Strata or to a package of the project"
                    ),
                    None,
                ));
            }
            if !list.iter().any(|t| t.name == *schema) {
                list.push(target(schema.clone(), None, Vec::new()));
            }
        }
        Targets::new(Source::TenantSchemas(pattern.to_string()), list)
    }

    /// Keep the targets that match one of `only` (by name, group or tag; all when `only` is empty), then drop those
    /// that match one of `exclude`. A selector that matches no target is an error (a typo would deploy nothing, or
    /// everything).
    pub fn select(mut self, only: &[String], exclude: &[String]) -> Result<Targets> {
        for (flag, selectors) in [("--only", only), ("--exclude", exclude)] {
            if let Some(s) = selectors
                .iter()
                .find(|s| !self.list.iter().any(|t| t.matches(s)))
            {
                return Err(Error::usage(
                    format!("{flag} {s}: no target has that name, group or tag"),
                    None,
                ));
            }
        }
        self.list.retain(|t| {
            (only.is_empty() || only.iter().any(|s| t.matches(s)))
                && !exclude.iter().any(|s| t.matches(s))
        });
        Ok(self)
    }

    /// The targets, in order.
    pub fn list(&self) -> &[Target] {
        &self.list
    }

    /// Where they came from.
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// True when the targets are tenant schemas of one database.
    pub fn are_tenants(&self) -> bool {
        self.list.iter().any(|t| t.schema.is_some())
    }
}

/// A `[[target]]` table as read, before its connection settings are resolved.
struct Entry {
    name: String,
    name_span: Range<usize>,
    span: Range<usize>,
    url: Option<(String, Range<usize>)>,
    group: Option<String>,
    tags: Vec<String>,
    settings: Settings,
}

fn read_target(file: &FileText<'_>, table: &DeTable<'_>, span: Range<usize>) -> Result<Entry> {
    let mut name = None;
    let mut url = None;
    let mut group = None;
    let mut tags = Vec::new();
    let mut settings = Settings::default();
    for (key, value) in table.iter() {
        match key.get_ref().as_ref() {
            "name" => {
                let n = file.string("name", value)?;
                if n.trim().is_empty() {
                    return Err(file.error(value.span(), "a target's name cannot be empty"));
                }
                name = Some((n, value.span()));
            }
            "url" => url = Some((file.string("url", value)?, value.span())),
            "group" => group = Some(file.string("group", value)?),
            "tags" => {
                let DeValue::Array(items) = value.get_ref() else {
                    return Err(file.error(value.span(), "`tags` must be an array of strings"));
                };
                for item in items.iter() {
                    tags.push(file.string("tags", item)?);
                }
            }
            other => {
                if !settings.read(file, key, value)? {
                    return Err(file
                        .error(key.span(), format!("unknown key `{other}` in [[target]]"))
                        .with_help("a target has name, url (or libpq settings: host, port, dbname, user, sslmode, …), password_env, group and tags"));
                }
            }
        }
    }
    let Some((name, name_span)) = name else {
        return Err(file.error(span, "this target has no `name`"));
    };
    if url.is_some() && !settings.values.is_empty() {
        let at = settings.first_span.clone().unwrap_or(span);
        return Err(file
            .error(at, format!("target `{name}` has both a url and libpq settings"))
            .with_help("give the whole connection in the url, or use settings (host, port, dbname, …) without a url"));
    }
    Ok(Entry {
        name,
        name_span,
        span,
        url,
        group,
        tags,
        settings,
    })
}

impl Entry {
    /// Resolve the connection: the url or the target's settings, then `[defaults]`, then the environment.
    fn connect(
        &self,
        file: &FileText<'_>,
        defaults: &Settings,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<ConnectOptions> {
        let conninfo = match &self.url {
            Some((url, _)) => url.clone(),
            None => self.settings.conninfo(),
        };
        // `[defaults]` fills what the target leaves out, as PG* variables would (and before them).
        let layered = |key: &str| {
            SETTINGS
                .iter()
                .find(|(_, var)| *var == key)
                .and_then(|(k, _)| defaults.values.get(k).cloned())
                .or_else(|| env(key))
        };
        let at = self
            .url
            .as_ref()
            .map_or_else(|| self.span.clone(), |(_, s)| s.clone());
        let mut options = ConnectOptions::resolve(Some(&conninfo), &layered)
            .map_err(|e| file.error(at.clone(), format!("target `{}`: {e}", self.name)))?;
        if let Some((var, span)) = self
            .settings
            .password_env
            .as_ref()
            .or(defaults.password_env.as_ref())
        {
            match env(var).filter(|p| !p.is_empty()) {
                Some(password) => options = options.with_password(&password),
                None => {
                    return Err(file.error(
                        span.clone(),
                        format!(
                            "target `{}`: the environment variable {var} (password_env) is not set",
                            self.name
                        ),
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// `text` with the passwords of URLs (`scheme://user:PASSWORD@`) and of `password = …` lines replaced by `*`, byte
/// for byte (so spans still point at the same places): an error quoting the file never shows one.
fn mask_passwords(text: &str) -> String {
    let mut hidden: Vec<Range<usize>> = Vec::new();
    let mut from = 0;
    while let Some(p) = text[from..].find("://") {
        let start = from + p + 3;
        let rest = &text[start..];
        let end = rest
            .find(|c: char| matches!(c, '@' | '/' | '"' | '\'') || c.is_whitespace())
            .unwrap_or(rest.len());
        if rest[end..].starts_with('@')
            && let Some(colon) = rest[..end].find(':')
        {
            hidden.push(start + colon + 1..start + end);
        }
        from = start;
    }
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_start();
        if let Some(after) = trimmed.strip_prefix("password")
            && let Some(value) = after.trim_start().strip_prefix('=')
        {
            let value = value.trim_start();
            let start = offset + line.len() - value.len();
            hidden.push(start..offset + line.trim_end().len());
        }
        offset += line.len();
    }
    text.char_indices()
        .map(|(i, c)| {
            if hidden.iter().any(|r| r.contains(&i)) {
                "*".repeat(c.len_utf8())
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// True if `text` is a query rather than a LIKE pattern.
fn is_query(text: &str) -> bool {
    let first = text
        .trim_start()
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    matches!(first.as_str(), "select" | "with" | "values" | "table")
}

/// A row of a user's query, read by column name with the first column as fallback.
struct QueryRow {
    columns: Vec<(String, Option<String>)>,
    tags: Vec<String>,
}

impl QueryRow {
    /// The value of the first of `names` that is a column, else of the first column.
    fn text(&self, names: &[&str]) -> Option<String> {
        names
            .iter()
            .find_map(|n| self.columns.iter().find(|(c, _)| c == n))
            .or_else(|| self.columns.first())
            .and_then(|(_, v)| v.clone())
    }

    /// The value of column `name`, if there is one and it is not NULL.
    fn named(&self, name: &str) -> Option<String> {
        self.columns
            .iter()
            .find(|(c, _)| c == name)
            .and_then(|(_, v)| v.clone())
    }

    fn tags(&self) -> Vec<String> {
        self.tags.clone()
    }
}

/// Run a user's query (`flag` names it in errors) and read every column as text (the `tags` column as an array
/// or a comma-separated list).
async fn query_rows(db: &Database, sql: &str, flag: &str) -> Result<Vec<QueryRow>> {
    let messages = db.client().simple_query(sql).await.map_err(|e| {
        let detail = match e.as_db_error() {
            Some(d) => format!("{} (SQLSTATE {})", d.message(), d.code().code()),
            None => e.to_string(),
        };
        Error::usage(format!("{flag}: the query failed: {detail}"), None)
    })?;
    let mut rows = Vec::new();
    for m in messages {
        let tokio_postgres::SimpleQueryMessage::Row(row) = m else {
            continue;
        };
        let mut columns = Vec::new();
        let mut tags = Vec::new();
        for (i, c) in row.columns().iter().enumerate() {
            let value = row.get(i).map(str::to_string);
            if c.name() == "tags" {
                tags = value.as_deref().map(split_tags).unwrap_or_default();
            }
            columns.push((c.name().to_string(), value));
        }
        rows.push(QueryRow { columns, tags });
    }
    Ok(rows)
}

/// `{a,b}` (an array as text) or `a, b`.
fn split_tags(text: &str) -> Vec<String> {
    let inner = text
        .strip_prefix('{')
        .and_then(|t| t.strip_suffix('}'))
        .unwrap_or(text);
    inner
        .split(',')
        .map(|t| t.trim().trim_matches('"').to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(key: &str) -> Option<String> {
        match key {
            "EU_PW" => Some("s3cret".into()),
            "PGPORT" => Some("6000".into()),
            "USER" | "PGUSER" => Some("me".into()),
            _ => None,
        }
    }

    fn parse(text: &str) -> Result<Targets> {
        Targets::parse("targets.toml", text, &env)
    }

    fn message(e: Error) -> String {
        match e {
            Error::Targets(s) => {
                let at = s
                    .span
                    .map(|sp| &s.file.inner()[sp.offset()..sp.offset() + sp.len()])
                    .unwrap_or_default()
                    .to_string();
                format!("{} @ {at}", s.message)
            }
            other => other.to_string(),
        }
    }

    #[test]
    fn urls_settings_defaults_and_the_environment_layer() {
        let t = parse(
            r#"
[defaults]
user = "deploy"
sslmode = "disable"

[[target]]
name = "eu-1"
url = "postgresql://db1/app"
group = "eu"
tags = ["canary", "paid"]
password_env = "EU_PW"

[[target]]
name = "us-1"
host = "db2"
port = 5433
dbname = "it's"
"#,
        )
        .unwrap();
        let [eu, us] = t.list() else { panic!() };
        assert_eq!(
            eu.connect.to_string(),
            "postgresql://deploy@db1:6000/app?sslmode=disable"
        );
        assert_eq!(eu.connect.password(), Some("s3cret"));
        assert!(eu.matches("canary") && eu.matches("eu") && eu.matches("eu-1"));
        assert!(!format!("{eu:?}").contains("s3cret"));
        assert_eq!(us.connect.host(), "db2");
        assert_eq!(us.connect.port(), 5433);
        assert_eq!(us.connect.dbname(), "it's");
        assert_eq!(us.connect.user(), "deploy");
        assert_eq!(us.connect.password(), None);
    }

    #[test]
    fn mistakes_point_at_their_place() {
        let cases = [
            (
                "[[target]]\nname = \"a\"\npassword = \"x\"\n",
                "passwords do not belong in the targets file @ password",
            ),
            (
                "[[target]]\nname = \"a\"\nhots = \"x\"\n",
                "unknown key `hots` in [[target]] @ hots",
            ),
            (
                "[[target]]\nname = \"a\"\n[[target]]\nname = \"a\"\n",
                "two targets are named `a` @ \"a\"",
            ),
            (
                "[[target]]\nurl = \"postgresql:///x\"\n",
                "this target has no `name`",
            ),
            (
                "[[target]]\nname = \"a\"\nurl = \"postgresql:///x\"\nhost = \"h\"\n",
                "target `a` has both a url and libpq settings @ host",
            ),
            (
                "[[target]]\nname = \"a\"\npassword_env = \"NOPE\"\n",
                "target `a`: the environment variable NOPE (password_env) is not set @ \"NOPE\"",
            ),
            (
                "[[target]]\nname = \"a\"\nsslmode = \"sometimes\"\n",
                "target `a`:",
            ),
            (
                "[[target]]\nname = \"a\"\nport = true\n",
                "`port` must be a string or an integer @ true",
            ),
            ("targets = 1\n", "unknown key `targets`"),
            ("[[target]\n", "invalid targets file"),
            ("", "the targets file lists no [[target]]"),
        ];
        for (text, want) in cases {
            let got = message(parse(text).unwrap_err());
            assert!(got.starts_with(want), "{text:?}: {got}");
        }
    }

    #[test]
    fn selection_by_name_group_and_tag() {
        let t = parse(
            "[[target]]\nname = \"a\"\ngroup = \"eu\"\n[[target]]\nname = \"b\"\ntags = [\"x\"]\n[[target]]\nname = \"c\"\n",
        )
        .unwrap();
        let names = |t: &Targets| t.list().iter().map(|t| t.name.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&t.clone().select(&["eu".into(), "x".into()], &[]).unwrap()),
            ["a", "b"]
        );
        assert_eq!(
            names(&t.clone().select(&[], &["b".into()]).unwrap()),
            ["a", "c"]
        );
        let e = t.select(&["nope".into()], &[]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--only nope: no target has that name, group or tag"
        );
    }

    #[test]
    fn errors_never_quote_a_password() {
        let text = "[[target]]\nname = \"a\"\nurl = \"postgresql://u:s3crét@h/db?sslmode=nope\"\n";
        let masked = mask_passwords(text);
        assert_eq!(masked.len(), text.len());
        assert!(masked.contains("postgresql://u:*******@h/db"), "{masked}");
        assert_eq!(mask_passwords("password = \"x\"\n"), "password = ***\n");
        let Error::Targets(e) = parse(text).unwrap_err() else {
            panic!()
        };
        assert!(!e.file.inner().contains("s3cr"));
        assert!(!format!("{:?}", miette::Report::new(*e)).contains("s3cr"));
    }

    #[test]
    fn queries_and_tags() {
        assert!(is_query("  SELECT 1"));
        assert!(is_query("with x as (select 1) table x"));
        assert!(!is_query("tenant_%"));
        assert_eq!(split_tags("{a,\"b c\"}"), ["a", "b c"]);
        assert_eq!(split_tags("a, b"), ["a", "b"]);
    }
}
