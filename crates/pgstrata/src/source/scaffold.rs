//! Creating packages and migration files (`strata init`, `strata new`). The manifest is edited with `toml_edit`,
//! so the user's comments and layout survive.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::source::manifest::{validate_identifier, validate_package_name};

const MIGRATION_TEMPLATE: &str = "-- migrate:up\n\n\n-- migrate:down\n\n";

/// Create a package in `dir` (which must not contain a manifest yet): `strata.toml`, `migrations/`, and a first
/// migration. Returns the files created.
pub fn init(dir: &Path, name: &str, schema: Option<&str>) -> Result<Vec<PathBuf>> {
    validate_package_name(name).map_err(|m| Error::usage(m, None))?;
    let schema = match schema {
        Some(s) => s.to_string(),
        None => default_schema(name),
    };
    validate_identifier("schema", &schema).map_err(|m| Error::usage(m, None))?;
    let manifest = dir.join("strata.toml");
    if manifest.exists() || dir.join("pgpkg.toml").exists() {
        return Err(Error::usage(
            format!("{} already holds a package", dir.display()),
            Some("use `strata new NAME` to add a migration to it".into()),
        ));
    }
    let migrations = dir.join("migrations");
    std::fs::create_dir_all(&migrations).map_err(|source| Error::Write {
        path: migrations.clone(),
        source,
    })?;
    let first = migrations.join("0001_init.sql");
    let text = format!(
        "# Strata package manifest. Reference: README.md, section \"strata.toml\".\n\
         name = {name:?}\n\
         schema = {schema:?}\n\
         extensions = []\n\
         uses = []\n\
         # Applied in this order; a file's base name is its identity. `strata new NAME` appends here.\n\
         migrations = [\n    \"migrations/0001_init.sql\",\n]\n"
    );
    write_new(&manifest, &text)?;
    write_new(
        &first,
        &format!(
            "-- migrate:up\n-- Unqualified names land in schema \"{schema}\" (migrations run with search_path = {schema}, …).\n\n\n-- migrate:down\n\n"
        ),
    )?;
    Ok(vec![manifest, first])
}

/// Add a migration `NNNN_<name>.sql` to the package at `root` (next to the last listed migration, or in
/// `migrations/`) and append it to the manifest's list. Returns the new file.
pub fn new_migration(root: &Path, name: &str) -> Result<PathBuf> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(Error::usage(
            format!("invalid migration name `{name}`: use letters, digits, _ and -"),
            None,
        ));
    }
    let (manifest_path, key) = if root.join("strata.toml").is_file() {
        (root.join("strata.toml"), "migrations")
    } else if root.join("pgpkg.toml").is_file() {
        (root.join("pgpkg.toml"), "Migrations")
    } else {
        return Err(Error::PackageNotFound {
            start: root.to_path_buf(),
        });
    };
    let text = std::fs::read_to_string(&manifest_path).map_err(|source| Error::Read {
        path: manifest_path.clone(),
        source,
    })?;
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        Error::usage(
            format!("{}: {}", manifest_path.display(), e.message()),
            None,
        )
    })?;
    let listed: Vec<String> = doc
        .get(key)
        .and_then(|v| v.as_array())
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let dir = listed
        .last()
        .and_then(|p| p.rsplit_once('/').map(|(d, _)| d.to_string()))
        .unwrap_or_else(|| "migrations".to_string());
    let next = listed
        .iter()
        .filter_map(|p| {
            let base = p.rsplit('/').next().unwrap_or(p);
            let digits: String = base.chars().take_while(char::is_ascii_digit).collect();
            digits.parse::<u64>().ok()
        })
        .max()
        .map_or(1, |n| n + 1);
    let rel = format!("{dir}/{next:04}_{name}.sql");
    if listed.iter().any(|p| {
        crate::source::script::migration_name(p) == crate::source::script::migration_name(&rel)
    }) {
        return Err(Error::usage(
            format!("a migration named like {rel} is already listed"),
            None,
        ));
    }
    let file = root.join(&rel);
    if let Some(parent) = file.parent() {
        std::fs::create_dir_all(parent).map_err(|source| Error::Write {
            path: parent.to_path_buf(),
            source,
        })?;
    }
    write_new(&file, MIGRATION_TEMPLATE)?;
    match doc.get_mut(key).and_then(|v| v.as_array_mut()) {
        Some(array) => {
            array.push(rel.as_str());
            // Keep one entry per line, as `init` writes it.
            let n = array.len();
            for (i, v) in array.iter_mut().enumerate() {
                v.decor_mut().set_prefix("\n    ");
                if i + 1 == n {
                    v.decor_mut().set_suffix("");
                }
            }
            array.set_trailing(",\n");
            array.set_trailing_comma(false);
        }
        None => {
            let mut array = toml_edit::Array::new();
            array.push(rel.as_str());
            doc.insert(key, toml_edit::value(array));
        }
    }
    std::fs::write(&manifest_path, doc.to_string()).map_err(|source| Error::Write {
        path: manifest_path.clone(),
        source,
    })?;
    Ok(file)
}

/// A schema name derived from a package name: its last path segment, lower-cased, other characters as `_`.
pub fn default_schema(package: &str) -> String {
    let last = package.rsplit('/').next().unwrap_or(package);
    let s: String = last
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if s.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        format!("p_{s}")
    } else {
        s
    }
}

fn write_new(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|source| Error::Write {
            path: path.to_path_buf(),
            source,
        })?;
    f.write_all(text.as_bytes()).map_err(|source| Error::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_then_new_appends_to_the_manifest() {
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), "github.com/acme/billing", None).unwrap();
        let f = new_migration(dir.path(), "add_status").unwrap();
        assert!(f.ends_with("migrations/0002_add_status.sql"));
        let pkg = crate::source::package::Package::load(dir.path()).unwrap();
        assert_eq!(pkg.schema(), "billing");
        let names: Vec<&str> = pkg.migrations().iter().map(|m| m.name()).collect();
        assert_eq!(names, ["0001_init", "0002_add_status"]);
        let text = std::fs::read_to_string(dir.path().join("strata.toml")).unwrap();
        assert!(
            text.contains("# Applied in this order"),
            "comments survive:\n{text}"
        );
    }

    #[test]
    fn schema_names_are_derived_safely() {
        assert_eq!(default_schema("github.com/acme/Billing-API"), "billing_api");
        assert_eq!(default_schema("9lives"), "p_9lives");
    }
}
