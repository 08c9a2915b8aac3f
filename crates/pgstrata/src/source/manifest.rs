//! `strata.toml` (and pgpkg's `pgpkg.toml`, read as it is).
//!
//! ```toml
//! name = "github.com/acme/billing"     # unique package id
//! schema = "billing"                   # the package's schema
//! # schemas = ["billing", "billing_private"] # instead of `schema`: several schemas, the first is the main one
//! extensions = ["pgcrypto"]            # created by the deploying login before migrations
//! uses = ["github.com/acme/core"]      # or { name = "…", path = "../core" }
//! require_down = false                 # refuse migrations without a down part (as postgres-json does)
//! migrations = [                       # the list decides the order; a file's base name is its identity
//!     "migrations/0001_init.sql",
//! ]
//! # Or, instead of the list (what `strata init` writes): every `<version>_<name>.sql` file of the folder,
//! # in version order (see `crate::source::versioned`):
//! # migrations_dir = "migrations"
//!
//! # Or read another tool's folder in place (see `crate::source::layout`):
//! # layout = "dbmate"                  # dbmate, sqlx, diesel, golang-migrate, flyway, refinery, up-down
//! # migrations_dir = "db/migrations"   # default: the tool's own default folder
//! [security]
//! package_role = true                  # own the schema with a package role, run code as it (default)
//! allow_security_definer = false       # package code may declare SECURITY DEFINER routines
//! allow_event_triggers = false         # migrations may CREATE/ALTER EVENT TRIGGER
//! allow_copy_program = false           # migrations may COPY … FROM/TO PROGRAM
//! allow_alter_role = false             # migrations may CREATE/ALTER/DROP ROLE, grant role membership
//! adopt_schema = false                 # take over an existing schema holding objects Strata did not create
//!
//! [deploy]
//! lock_timeout = "5s"                  # SET lock_timeout for deploy sessions
//! statement_timeout = "0"              # SET statement_timeout for deploy sessions
//! lock_wait_timeout = "60s"            # how long to wait for another deployer
//! lock_retries = 3                     # retries after a lock_timeout (55P03), with backoff
//! lock_retry_backoff = "1s"            # first pause between retries (doubled each time)
//!
//! [lint]                               # see `crate::decide::lint`
//! disable = ["prefer-robust-stmts"]
//! ```

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;

use crate::error::SourceError;
use crate::source::STRATA_PACKAGE;
pub use crate::source::duration::PgDuration;

/// Which file format the manifest was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestFormat {
    /// `strata.toml`.
    Strata,
    /// pgpkg's `pgpkg.toml` (capitalised keys), accepted as it is.
    Pgpkg,
}

impl ManifestFormat {
    /// The manifest's file name.
    pub fn file_name(self) -> &'static str {
        match self {
            ManifestFormat::Strata => "strata.toml",
            ManifestFormat::Pgpkg => "pgpkg.toml",
        }
    }
}

/// A validated manifest. Every path and name in it has been checked for form (not yet for existence).
#[derive(Debug, Clone)]
pub struct Manifest {
    /// Format it was read from.
    pub format: ManifestFormat,
    /// Unique package id, e.g. `github.com/acme/billing`.
    pub name: String,
    /// The package's main schema (the first of [`Manifest::schemas`]): unqualified names in managed code land
    /// there, and it comes first on the search_path.
    pub schema: String,
    /// Every schema the package owns, the main one first (`schemas = [...]`, pgpkg's `Schemas`); one element for
    /// `schema = "..."`.
    pub schemas: Vec<String>,
    /// Extensions the package needs.
    pub extensions: Vec<String>,
    /// Packages this one uses.
    pub uses: Vec<Use>,
    /// Ordered migration paths (relative to the package root), with their span in the manifest text.
    pub migrations: Vec<(String, Range<usize>)>,
    /// Deploy session settings.
    pub deploy: DeploySettings,
    /// interop: another tool's migration folder to read instead of the `migrations` list.
    pub layout: Option<crate::source::layout::Layout>,
    /// Where the migrations folder is, relative to the package root: without `layout`, Strata's own versioned
    /// folder (`<version>_<name>.sql` files in version order, instead of the `migrations` list); with it, that
    /// tool's folder (default: the tool's default).
    pub migrations_dir: Option<String>,
    /// Lint settings (`[lint]`).
    pub lint: crate::source::lint_settings::LintSettings,
    /// Package role and managed-code safety settings.
    pub security: SecuritySettings,
    /// Refuse migrations without a down part (`require_down = true`; postgres-json's rule).
    pub require_down: bool,
}

/// `[security]`: the package role, and what managed code may do.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SecuritySettings {
    /// Create a role for the package, make it own the schema, and run migrations and managed code as it
    /// (`SET LOCAL ROLE`). Default true.
    pub package_role: bool,
    /// Allow `SECURITY DEFINER` routines in managed code and migrations. Default false.
    pub allow_security_definer: bool,
    /// Allow `CREATE`/`ALTER EVENT TRIGGER` in migrations (they fire for every role's DDL). Default false.
    pub allow_event_triggers: bool,
    /// Allow `COPY … FROM/TO PROGRAM` in migrations (a shell command on the server). Default false.
    pub allow_copy_program: bool,
    /// Allow role management in migrations: `CREATE`/`ALTER`/`DROP ROLE|USER|GROUP`, role membership
    /// `GRANT`/`REVOKE`, `REASSIGN OWNED`. Default false.
    pub allow_alter_role: bool,
    /// Let the package role take over a schema that exists with objects no deploy of this package created (or
    /// `public`): the schema and its objects then belong to the package role. Default false.
    pub adopt_schema: bool,
}

impl Default for SecuritySettings {
    fn default() -> SecuritySettings {
        SecuritySettings {
            package_role: true,
            allow_security_definer: false,
            allow_event_triggers: false,
            allow_copy_program: false,
            allow_alter_role: false,
            adopt_schema: false,
        }
    }
}

/// A dependency on another package.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Use {
    /// The used package's name.
    pub name: String,
    /// Where to find it, relative to the using package's root (optional).
    pub path: Option<String>,
    /// Span in the manifest text.
    #[serde(skip)]
    pub span: Range<usize>,
}

/// Settings applied to deploy sessions. Durations are written in PostgreSQL's syntax (`500ms`, `5s`, `2min`, `0` =
/// off) and parsed when the manifest is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeploySettings {
    /// `SET lock_timeout` while migrations run.
    pub lock_timeout: Option<PgDuration>,
    /// `SET statement_timeout` while migrations run.
    pub statement_timeout: Option<PgDuration>,
    /// How long to wait for the deploy lock held by another deployer (default: wait indefinitely).
    pub lock_wait_timeout: Option<PgDuration>,
    /// How many times `up` retries after a statement gave up waiting for a lock (lock_timeout).
    pub lock_retries: Option<u32>,
    /// Pause before the first retry (doubled before each next one).
    pub lock_retry_backoff: Option<PgDuration>,
}

/// `[deploy]` as written: durations are checked once the rest of the manifest is.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeploySettings {
    lock_timeout: Option<String>,
    statement_timeout: Option<String>,
    lock_wait_timeout: Option<String>,
    lock_retries: Option<u32>,
    lock_retry_backoff: Option<String>,
}

impl RawDeploySettings {
    fn parse(self) -> Result<DeploySettings, String> {
        let duration = |key: &str, v: Option<String>| {
            v.map(|v| v.parse::<PgDuration>())
                .transpose()
                .map_err(|m| format!("[deploy] {key}: {m}"))
        };
        Ok(DeploySettings {
            lock_timeout: duration("lock_timeout", self.lock_timeout)?,
            statement_timeout: duration("statement_timeout", self.statement_timeout)?,
            lock_wait_timeout: duration("lock_wait_timeout", self.lock_wait_timeout)?,
            lock_retries: self.lock_retries,
            lock_retry_backoff: duration("lock_retry_backoff", self.lock_retry_backoff)?,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStrata {
    name: Spanned<String>,
    #[serde(default)]
    schema: Option<Spanned<String>>,
    #[serde(default)]
    schemas: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(default)]
    extensions: Vec<Spanned<String>>,
    #[serde(default)]
    uses: Vec<Spanned<RawUse>>,
    #[serde(default)]
    migrations: Vec<Spanned<String>>,
    #[serde(default)]
    deploy: Option<Spanned<RawDeploySettings>>,
    #[serde(default)]
    lint: Option<crate::source::lint_settings::RawLintSettings>,
    security: Option<SecuritySettings>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    layout: Option<Spanned<crate::source::layout::Layout>>,
    #[serde(default)]
    migrations_dir: Option<Spanned<String>>,
    #[serde(default)]
    require_down: bool,
    /// `[inspect]` thresholds belong to `strata inspect` (crate pgstrata-ops), which reads and checks them itself;
    /// accepted here so that a manifest carrying them still deploys.
    #[serde(default)]
    #[allow(dead_code)]
    inspect: Option<toml::Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RawUse {
    Name(String),
    Table {
        name: String,
        #[serde(default)]
        path: Option<String>,
    },
}

/// pgpkg's keys (as pgpkg's `config.go` reads them).
#[derive(Deserialize)]
struct RawPgpkg {
    #[serde(rename = "Package")]
    package: Spanned<String>,
    #[serde(rename = "Schema", default)]
    schema: Option<Spanned<String>>,
    #[serde(rename = "Schemas", default)]
    schemas: Option<Spanned<Vec<Spanned<String>>>>,
    #[serde(rename = "Extensions", default)]
    extensions: Vec<Spanned<String>>,
    #[serde(rename = "Uses", default)]
    uses: Vec<Spanned<String>>,
    #[serde(rename = "Migrations", default)]
    migrations: Vec<Spanned<String>>,
}

impl Manifest {
    /// Parse and validate a manifest's text. `path` is only used in error messages.
    #[allow(
        clippy::result_large_err,
        reason = "the error carries the manifest text for its diagnostic; Error::Source boxes it"
    )]
    pub fn parse(path: &str, text: &str, format: ManifestFormat) -> Result<Manifest, SourceError> {
        let err = |span: Option<Range<usize>>, msg: String| {
            SourceError::new("strata::manifest", path, text, span, msg)
        };
        let manifest = match format {
            ManifestFormat::Strata => {
                let raw: RawStrata = toml::from_str(text).map_err(|e| {
                    err(e.span(), format!("invalid {}: {}", format.file_name(), e.message()))
                        .with_help("`strata init --help` lists every key (name, schema, extensions, uses, migrations_dir or migrations, [security], [deploy], [lint])")
                })?;
                let _ = raw.description;
                check_layout_keys(&raw).map_err(|(span, msg)| err(Some(span), msg))?;
                let (schemas, schema_spans) = match (&raw.schema, &raw.schemas) {
                    (Some(one), None) => (vec![one.get_ref().clone()], vec![one.span()]),
                    (None, Some(list)) => {
                        schema_list(list, "schemas").map_err(|(span, m)| err(Some(span), m))?
                    }
                    (Some(one), Some(_)) => {
                        return Err(err(
                            Some(one.span()),
                            "`schema` and `schemas` cannot both be set".into(),
                        )
                        .with_help("list every schema in `schemas` (the first is the main one), or keep only `schema`"));
                    }
                    (None, None) => {
                        return Err(err(
                            None,
                            "strata.toml has neither `schema` nor `schemas`".into(),
                        )
                        .with_help("add schema = \"NAME\": the schema the package owns"));
                    }
                };
                let lint = crate::source::lint_settings::settings_from_raw(raw.lint)
                    .map_err(|(span, message)| err(span, message))?;
                Manifest {
                    format,
                    name: raw.name.get_ref().clone(),
                    schema: schemas[0].clone(),
                    schemas,
                    extensions: raw.extensions.iter().map(|e| e.get_ref().clone()).collect(),
                    uses: raw
                        .uses
                        .iter()
                        .map(|u| match u.get_ref() {
                            RawUse::Name(n) => Use {
                                name: n.clone(),
                                path: None,
                                span: u.span(),
                            },
                            RawUse::Table { name, path } => Use {
                                name: name.clone(),
                                path: path.clone(),
                                span: u.span(),
                            },
                        })
                        .collect(),
                    migrations: raw
                        .migrations
                        .iter()
                        .map(|m| (m.get_ref().clone(), m.span()))
                        .collect(),
                    deploy: DeploySettings::default(),
                    layout: raw.layout.as_ref().map(|l| *l.get_ref()),
                    migrations_dir: raw.migrations_dir.as_ref().map(|d| d.get_ref().clone()),
                    lint,
                    security: raw.security.unwrap_or_default(),
                    require_down: raw.require_down,
                }
                .validated(
                    path,
                    text,
                    Some((raw.name.span(), schema_spans)),
                    raw.deploy.map(|d| d.into_inner()).unwrap_or_default(),
                )?
            }
            ManifestFormat::Pgpkg => {
                let raw: RawPgpkg = toml::from_str(text)
                    .map_err(|e| err(e.span(), format!("invalid pgpkg.toml: {}", e.message())))?;
                // pgpkg turns the legacy `Schema` into a one-element `Schemas` (and ignores it when both are set).
                let (schemas, schema_spans) = match (&raw.schemas, &raw.schema) {
                    (Some(list), _) => schema_list(list, "Schemas"),
                    (None, Some(s)) => Ok((vec![s.get_ref().clone()], vec![s.span()])),
                    (None, None) => Err((
                        0..0,
                        "pgpkg.toml has neither Schema nor Schemas".to_string(),
                    )),
                }
                .map_err(|(span, m)| err((!span.is_empty()).then_some(span), m))?;
                let schemas = schemas
                    .iter()
                    .zip(&schema_spans)
                    .map(|(s, span)| pgpkg_schema_name(s).map_err(|m| err(Some(span.clone()), m)))
                    .collect::<Result<Vec<String>, SourceError>>()?;
                Manifest {
                    format,
                    name: raw.package.get_ref().clone(),
                    schema: schemas[0].clone(),
                    schemas,
                    extensions: raw.extensions.iter().map(|e| e.get_ref().clone()).collect(),
                    uses: raw
                        .uses
                        .iter()
                        .map(|u| Use {
                            name: u.get_ref().clone(),
                            path: None,
                            span: u.span(),
                        })
                        .collect(),
                    migrations: raw
                        .migrations
                        .iter()
                        .map(|m| (m.get_ref().clone(), m.span()))
                        .collect(),
                    deploy: DeploySettings::default(),
                    layout: None,
                    migrations_dir: None,
                    lint: Default::default(),
                    security: SecuritySettings::default(),
                    require_down: false,
                }
                .validated(
                    path,
                    text,
                    Some((raw.package.span(), schema_spans)),
                    RawDeploySettings::default(),
                )?
            }
        };
        Ok(manifest)
    }

    #[allow(
        clippy::result_large_err,
        reason = "the error carries the manifest text for its diagnostic; Error::Source boxes it"
    )]
    fn validated(
        mut self,
        path: &str,
        text: &str,
        spans: Option<(Range<usize>, Vec<Range<usize>>)>,
        deploy: RawDeploySettings,
    ) -> Result<Manifest, SourceError> {
        let err = |span: Option<Range<usize>>, msg: String| {
            SourceError::new("strata::manifest", path, text, span, msg)
        };
        let (name_span, schema_spans) = spans.map_or((None, Vec::new()), |(a, b)| (Some(a), b));
        validate_package_name(&self.name).map_err(|m| {
            err(name_span.clone(), m)
                .with_help("a package name is a path-like id such as github.com/acme/billing")
        })?;
        for (i, schema) in self.schemas.iter().enumerate() {
            let schema_span = schema_spans.get(i).cloned();
            validate_identifier("schema", schema).map_err(|m| err(schema_span.clone(), m))?;
            if schema == "strata" && self.name != STRATA_PACKAGE {
                return Err(err(
                    schema_span,
                    "schema `strata` is reserved for Strata's own tables".into(),
                ));
            }
            if schema == "information_schema" {
                return Err(err(
                    schema_span,
                    "schema `information_schema` belongs to PostgreSQL".into(),
                ));
            }
            if schema == "public" && self.security.package_role && !self.security.adopt_schema {
                return Err(err(
                    schema_span,
                    "schema `public` is shared by every role of the database: a package role would take it over, \
                     with every object in it"
                        .into(),
                )
                .with_help(
                    "give the package a schema of its own; or, to hand `public` and its objects to the package role, \
                     set `adopt_schema = true` under [security] (or `package_role = false`: the package then runs as \
                     the deploying login)",
                ));
            }
            if schema.starts_with("pg_") {
                return Err(err(
                    schema_span,
                    "schema names starting with `pg_` are reserved by PostgreSQL".into(),
                ));
            }
            if self.schemas[..i].contains(schema) {
                return Err(err(
                    schema_span,
                    format!("schema `{schema}` is listed twice"),
                ));
            }
        }
        for e in &self.extensions {
            validate_identifier("extension", e).map_err(|m| err(None, m))?;
        }
        for u in &self.uses {
            validate_package_name(&u.name).map_err(|m| err(Some(u.span.clone()), m))?;
            if u.name == self.name {
                return Err(err(
                    Some(u.span.clone()),
                    "a package cannot use itself".into(),
                ));
            }
        }
        let mut seen: std::collections::HashMap<String, Range<usize>> = Default::default();
        for (m, span) in &self.migrations {
            validate_relative_path(m).map_err(|msg| err(Some(span.clone()), msg))?;
            if m.ends_with(".down.sql") {
                return Err(err(
                    Some(span.clone()),
                    format!(
                        "`{m}` is a down file; list only the up file, its `.down.sql` sibling is found automatically"
                    ),
                ));
            }
            let name = crate::source::script::migration_name(m);
            if let Some(prev) = seen.insert(name.clone(), span.clone()) {
                let line = text[..prev.start].matches('\n').count() + 1;
                return Err(err(
                    Some(span.clone()),
                    format!("duplicate migration name `{name}` (also listed on line {line})"),
                )
                .with_label("duplicate")
                .with_help("a migration's identity is its file's base name: rename one of them"));
            }
        }
        self.deploy = deploy.parse().map_err(|m| err(None, m))?;
        Ok(self)
    }
}

/// The keys that say where the migrations are: the `migrations` list, or a folder (`migrations_dir`: Strata's own
/// versioned files, or another tool's with `layout`). One of them.
fn check_layout_keys(raw: &RawStrata) -> Result<(), (Range<usize>, String)> {
    match (&raw.layout, &raw.migrations_dir) {
        (Some(layout), _) if !raw.migrations.is_empty() => Err((
            layout.span(),
            "`layout` and `migrations` cannot both be set: with a layout, the migrations are the files of \
             `migrations_dir`, in the tool's own order"
                .into(),
        )),
        (None, Some(dir)) if !raw.migrations.is_empty() => Err((
            dir.span(),
            "`migrations_dir` and `migrations` cannot both be set: the migrations are either the files of the \
             folder, in version order, or the list"
                .into(),
        )),
        (_, Some(dir)) => {
            let d = dir.get_ref();
            if d.starts_with('/') || d.contains('\\') || d.split('/').any(|c| c == "..") {
                return Err((
                    dir.span(),
                    format!(
                        "migrations_dir `{d}` must be relative to the package root, with `/` separators and no `..`"
                    ),
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Names with their spans in the manifest text.
type NamesAndSpans = (Vec<String>, Vec<Range<usize>>);

/// The names of a `schemas` list with their spans; an empty list is an error.
fn schema_list(
    list: &Spanned<Vec<Spanned<String>>>,
    key: &str,
) -> Result<NamesAndSpans, (Range<usize>, String)> {
    if list.get_ref().is_empty() {
        return Err((list.span(), format!("{key} is empty")));
    }
    Ok(list
        .get_ref()
        .iter()
        .map(|s| (s.get_ref().clone(), s.span()))
        .unzip())
}

/// A schema name as pgpkg writes it: the text between the double quotes of its SQL, so a `"` must be doubled
/// (pgpkg's rule `^([^"]|""){1,63}$`); `""` stands for one `"`. Returns the name itself.
///
/// ```
/// use pgstrata::manifest::pgpkg_schema_name;
/// assert_eq!(pgpkg_schema_name("good.Schema Name$!").unwrap(), "good.Schema Name$!");
/// assert_eq!(pgpkg_schema_name("say \"\"hi\"\"").unwrap(), "say \"hi\"");
/// assert!(pgpkg_schema_name("$bad\"SchemaName").is_err());
/// ```
pub fn pgpkg_schema_name(written: &str) -> Result<String, String> {
    let mut name = String::with_capacity(written.len());
    let mut chars = written.chars().peekable();
    let mut units = 0;
    while let Some(c) = chars.next() {
        if c == '"' && chars.next_if_eq(&'"').is_none() {
            return Err(format!(
                "illegal schema name `{written}`: pgpkg rejects a lone `\"` in a schema name (write `\"\"` for one)"
            ));
        }
        units += 1;
        name.push(c);
    }
    if units == 0 || units > 63 {
        return Err(format!(
            "illegal schema name `{written}`: pgpkg accepts 1 to 63 characters"
        ));
    }
    Ok(name)
}

/// Check a package name: a path-like id of letters, digits and `._/-`, starting with a letter or digit.
pub fn validate_package_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("package name is empty".into());
    }
    if name.len() > 200 {
        return Err(format!("package name `{name}` is longer than 200 bytes"));
    }
    let first_ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
    {
        return Err(format!(
            "invalid package name `{name}`: use letters, digits and . _ / -, starting with a letter or digit"
        ));
    }
    Ok(())
}

/// Check an identifier that Strata will always double-quote: 1 to 63 bytes, no NUL.
pub fn validate_identifier(what: &str, ident: &str) -> Result<(), String> {
    if ident.is_empty() {
        return Err(format!("{what} name is empty"));
    }
    if ident.len() > 63 {
        return Err(format!(
            "{what} name `{ident}` is {} bytes; PostgreSQL would silently truncate it to 63",
            ident.len()
        ));
    }
    if ident.contains('\0') {
        return Err(format!("{what} name contains a NUL byte"));
    }
    Ok(())
}

fn validate_relative_path(p: &str) -> Result<(), String> {
    if p.is_empty() {
        return Err("empty migration path".into());
    }
    if crate::source::files::check_file_name(p).is_err() {
        return Err(format!(
            "migration path {} contains control characters (a newline, an escape sequence): rename the file",
            crate::source::files::printable(p)
        ));
    }
    if p.starts_with('/') || p.contains('\\') || p.split('/').any(|c| c == ".." || c.is_empty()) {
        return Err(format!(
            "migration path `{p}` must be relative to the package root, with `/` separators and no `..`"
        ));
    }
    if !p.ends_with(".sql") {
        return Err(format!("migration path `{p}` does not end in .sql"));
    }
    Ok(())
}

/// Parse a PostgreSQL-style duration (`250ms`, `5s`, `2min`, `1h`, `1d`, bare integer = milliseconds) into
/// milliseconds. `0` means "no timeout". (See [`PgDuration`], which keeps the text too.)
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let d: PgDuration = s.parse()?;
    u64::try_from(d.duration().as_millis()).map_err(|_| format!("duration `{s}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use pgstrata_sql::lint::Severity;

    fn parse(text: &str) -> Result<Manifest, Box<SourceError>> {
        Manifest::parse("strata.toml", text, ManifestFormat::Strata).map_err(Box::new)
    }

    #[test]
    fn minimal_manifest() {
        let m = parse("name = \"github.com/acme/billing\"\nschema = \"billing\"\nmigrations = [\"migrations/0001_init.sql\"]\n")
            .unwrap();
        assert_eq!(m.name, "github.com/acme/billing");
        assert_eq!(m.migrations[0].0, "migrations/0001_init.sql");
    }

    #[test]
    fn duplicate_base_names_are_rejected_with_both_lines() {
        let e = parse(
            "name = \"a\"\nschema = \"a\"\nmigrations = [\n\"x/0001.sql\",\n\"y/0001.sql\"]\n",
        )
        .unwrap_err();
        assert!(
            e.message.contains("duplicate migration name `0001`"),
            "{}",
            e.message
        );
        assert!(e.message.contains("line 4"), "{}", e.message);
    }

    #[test]
    fn inspect_table_is_accepted_for_strata_inspect() {
        let m = parse("name = \"a\"\nschema = \"a\"\n[inspect]\ndead_tuples_warning = 0.3\n");
        assert!(m.is_ok(), "{:?}", m.err().map(|e| e.message.clone()));
    }

    #[test]
    fn unknown_keys_are_errors_with_a_span() {
        let e = parse("name = \"a\"\nschema = \"a\"\nmigration = []\n").unwrap_err();
        assert!(
            e.message.contains("unknown field `migration`"),
            "{}",
            e.message
        );
        assert!(e.span.is_some());
    }

    #[test]
    fn long_schema_names_are_rejected() {
        let long = "s".repeat(64);
        let e = parse(&format!("name = \"a\"\nschema = \"{long}\"\n")).unwrap_err();
        assert!(e.message.contains("truncate"), "{}", e.message);
    }

    #[test]
    fn paths_must_stay_inside_the_package() {
        let e = parse("name = \"a\"\nschema = \"a\"\nmigrations = [\"../x.sql\"]\n").unwrap_err();
        assert!(e.message.contains("no `..`"), "{}", e.message);
    }

    #[test]
    fn pgpkg_manifest_is_accepted() {
        let m = Manifest::parse(
            "pgpkg.toml",
            "Package = \"github.com/pgpkg/example\"\nSchema = \"example\"\nExtensions = [ \"uuid-ossp\" ]\nUses = [ \"github.com/pgpkg/another-example\" ]\nMigrations = [\n\"migration1.sql\",\n\"migration2.sql\"\n]\n",
            ManifestFormat::Pgpkg,
        )
        .unwrap();
        assert_eq!(m.schema, "example");
        assert_eq!(m.uses[0].name, "github.com/pgpkg/another-example");
        assert_eq!(m.migrations.len(), 2);
    }

    fn pgpkg(text: &str) -> Result<Manifest, Box<SourceError>> {
        Manifest::parse("pgpkg.toml", text, ManifestFormat::Pgpkg).map_err(Box::new)
    }

    #[test]
    fn several_schemas_in_both_formats() {
        let m =
            pgpkg("Package = \"github.com/pgpkg/cross_schema\"\nSchemas = [ \"cs1\", \"cs2\" ]\n")
                .unwrap();
        assert_eq!(m.schema, "cs1");
        assert_eq!(m.schemas, ["cs1", "cs2"]);
        // pgpkg ignores the legacy `Schema` when `Schemas` is set.
        let m = pgpkg("Package = \"p\"\nSchema = \"old\"\nSchemas = [\"a\"]\n").unwrap();
        assert_eq!(m.schemas, ["a"]);
        let m = parse("name = \"acme/a\"\nschemas = [\"app\", \"app_private\"]\n").unwrap();
        assert_eq!((m.schema.as_str(), m.schemas.len()), ("app", 2));
        let m = parse("name = \"acme/a\"\nschema = \"app\"\n").unwrap();
        assert_eq!(m.schemas, ["app"]);
    }

    #[test]
    fn schema_lists_are_checked() {
        let e = parse("name = \"a\"\nschema = \"a\"\nschemas = [\"a\", \"b\"]\n").unwrap_err();
        assert!(e.message.contains("cannot both be set"), "{}", e.message);
        let e = parse("name = \"a\"\n").unwrap_err();
        assert!(
            e.message.contains("neither `schema` nor `schemas`"),
            "{}",
            e.message
        );
        let text = "name = \"a\"\nschemas = [\"a\", \"b\", \"a\"]\n";
        let e = Manifest::parse("strata.toml", text, ManifestFormat::Strata).unwrap_err();
        assert!(e.message.contains("listed twice"), "{}", e.message);
        let span = e.span.unwrap();
        assert_eq!(span.offset(), text.rfind("\"a\"").unwrap());
        let e = parse("name = \"a\"\nschemas = []\n").unwrap_err();
        assert!(e.message.contains("schemas is empty"), "{}", e.message);
        let e = parse("name = \"a\"\nschemas = [\"a\", \"pg_x\"]\n").unwrap_err();
        assert!(
            e.message.contains("reserved by PostgreSQL"),
            "{}",
            e.message
        );
    }

    #[test]
    fn schema_names_pgpkg_rejects_are_rejected() {
        // pgpkg's own test packages: tests/bad/bad-schema-name and tests/good/good-schema-name.
        let text = "Package = \"github.com/pgpkg/pgpkg-func-duplicates\"\nSchema = \"$bad\\\"SchemaName\"\n";
        let e = pgpkg(text).unwrap_err();
        assert!(e.message.contains("illegal schema name"), "{}", e.message);
        assert_eq!(e.span.unwrap().offset(), text.find("\"$bad").unwrap());
        let m = pgpkg(
            "Package = \"github.com/pgpkg/good-schema-name\"\nSchema = \"good.Schema Name$!\"\n",
        )
        .unwrap();
        assert_eq!(m.schema, "good.Schema Name$!");
        // A doubled quote stands for one (the name is the text between pgpkg's double quotes).
        let m = pgpkg("Package = \"p\"\nSchemas = [\"a\\\"\\\"b\"]\n").unwrap();
        assert_eq!(m.schema, "a\"b");
        assert!(pgpkg("Package = \"p\"\nSchemas = [\"\"]\n").is_err());
        assert!(
            pgpkg(&format!(
                "Package = \"p\"\nSchema = \"{}\"\n",
                "x".repeat(64)
            ))
            .is_err()
        );
        // strata.toml names are plain identifiers: a quote is just a character there.
        assert!(parse("name = \"a\"\nschema = \"a\\\"b\"\n").is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5s"), Ok(5000));
        assert_eq!(parse_duration("250ms"), Ok(250));
        assert_eq!(parse_duration("2min"), Ok(120_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("").is_err());
    }

    fn manifest_with_lint(lint: &str) -> std::result::Result<Manifest, Box<SourceError>> {
        Manifest::parse(
            "strata.toml",
            &format!("name = \"acme/a\"\nschema = \"a\"\n\n[lint]\n{lint}"),
            ManifestFormat::Strata,
        )
        .map_err(Box::new)
    }

    #[test]
    fn lint_table_in_the_manifest() {
        let m = manifest_with_lint(
            "pg_version = 16\nenable = [\"require-table-schema\"]\ndisable = [\"prefer-robust-stmts\"]\n\
             severity = { ban-drop-column = \"error\" }\n",
        )
        .unwrap();
        assert_eq!(m.lint.pg_version.as_deref(), Some("16"));
        assert_eq!(m.lint.enable, ["require-table-schema"]);
        assert_eq!(m.lint.severity["ban-drop-column"], Severity::Error);
        let linter = m.lint.linter(None).unwrap();
        assert_eq!(linter.severity("ban-drop-column"), Some(Severity::Error));
        assert_eq!(linter.severity("prefer-robust-stmts"), None);
    }

    #[test]
    fn unknown_rules_point_at_their_name() {
        let text = "name = \"acme/a\"\nschema = \"a\"\n\n[lint]\ndisable = [\"prefer-robust-stmts\", \"no-such-rule\"]\n";
        let e = Manifest::parse("strata.toml", text, ManifestFormat::Strata).unwrap_err();
        assert!(
            e.message.contains("unknown lint rule \"no-such-rule\""),
            "{}",
            e.message
        );
        let span = e.span.unwrap();
        assert_eq!(
            &text[span.offset()..span.offset() + span.len()],
            "\"no-such-rule\""
        );
    }

    #[test]
    fn bad_severities_and_versions_are_errors() {
        let e = manifest_with_lint("severity = { ban-drop-column = \"fatal\" }\n").unwrap_err();
        assert!(
            e.message.contains("unknown severity \"fatal\""),
            "{}",
            e.message
        );
        let e = manifest_with_lint("pg_version = \"fifteen\"\n").unwrap_err();
        assert!(
            e.message.contains("invalid PostgreSQL version"),
            "{}",
            e.message
        );
        let e = manifest_with_lint("enabled = []\n").unwrap_err();
        assert!(
            e.message.contains("unknown field `enabled`"),
            "{}",
            e.message
        );
    }
}
