//! The `[lint]` table of `strata.toml`: which rules, which severities, which PostgreSQL version (the linting itself
//! is `crate::decide::lint`, the rules are in `pgstrata_sql::lint`).

use std::collections::BTreeMap;
use std::ops::Range;

use pgstrata_sql::lint::{LintConfig, Linter, Severity};
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};

/// The `[lint]` table of `strata.toml`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct LintSettings {
    /// Target PostgreSQL version (`"15"`, `"16.2"`); default: the server's when connected, else 15.
    pub pg_version: Option<String>,
    /// Rules to turn on.
    pub enable: Vec<String>,
    /// Rules to turn off.
    pub disable: Vec<String>,
    /// Severity overrides.
    #[serde(serialize_with = "serialize_severities")]
    pub severity: BTreeMap<String, Severity>,
}

impl LintSettings {
    pub(crate) fn config(&self, server_version: Option<&str>) -> LintConfig {
        LintConfig {
            pg_version: self
                .pg_version
                .clone()
                .or_else(|| server_version.map(str::to_string)),
            enable: self.enable.clone(),
            disable: self.disable.clone(),
            severity: self.severity.iter().map(|(k, v)| (k.clone(), *v)).collect(),
        }
    }

    /// A linter for these settings.
    pub(crate) fn linter(&self, server_version: Option<&str>) -> Result<Linter> {
        Linter::new(&self.config(server_version))
            .map_err(|e| Error::usage(format!("[lint]: {}", e.message), None))
    }
}

/// `[lint]` as written, with spans for error messages.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLintSettings {
    #[serde(default)]
    pg_version: Option<Spanned<VersionValue>>,
    #[serde(default)]
    enable: Vec<Spanned<String>>,
    #[serde(default)]
    disable: Vec<Spanned<String>>,
    #[serde(default)]
    severity: BTreeMap<String, Spanned<String>>,
}

/// `pg_version = 15` and `pg_version = "15.4"` both work.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum VersionValue {
    Number(i64),
    Text(String),
}

/// Check `[lint]` and turn it into [`LintSettings`]; errors carry the span of the offending value.
pub(crate) fn settings_from_raw(
    raw: Option<RawLintSettings>,
) -> std::result::Result<LintSettings, (Option<Range<usize>>, String)> {
    let Some(raw) = raw else {
        return Ok(LintSettings::default());
    };
    let mut severity = BTreeMap::new();
    for (rule, value) in &raw.severity {
        let s: Severity = value.get_ref().parse().map_err(|m| {
            (
                Some(value.span()),
                format!("[lint] severity of {rule}: {m}"),
            )
        })?;
        severity.insert(rule.clone(), s);
    }
    let settings = LintSettings {
        pg_version: raw.pg_version.as_ref().map(|v| match v.get_ref() {
            VersionValue::Number(n) => n.to_string(),
            VersionValue::Text(t) => t.clone(),
        }),
        enable: raw.enable.iter().map(|s| s.get_ref().clone()).collect(),
        disable: raw.disable.iter().map(|s| s.get_ref().clone()).collect(),
        severity,
    };
    if let Err(e) = Linter::new(&settings.config(None)) {
        let span = raw
            .enable
            .iter()
            .chain(&raw.disable)
            .find(|s| *s.get_ref() == e.value)
            .map(|s| s.span())
            .or_else(|| raw.pg_version.as_ref().map(|v| v.span()))
            .filter(|_| !raw.severity.contains_key(&e.value));
        let help = if e.message.starts_with("unknown lint rule") {
            " (`strata lint --list-rules` lists them)"
        } else {
            ""
        };
        return Err((span, format!("[lint] {}{help}", e.message)));
    }
    Ok(settings)
}

fn serialize_severities<S: serde::Serializer>(
    map: &BTreeMap<String, Severity>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    use serde::ser::SerializeMap;
    let mut m = s.serialize_map(Some(map.len()))?;
    for (k, v) in map {
        m.serialize_entry(k, v.as_str())?;
    }
    m.end()
}
