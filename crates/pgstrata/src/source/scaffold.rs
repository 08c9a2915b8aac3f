//! Creating packages and migration files (`strata init`, `strata new`). The manifest is edited with `toml_edit`,
//! so the user's comments and layout survive.
//!
//! New packages keep their migrations in a versioned folder (`migrations_dir`, see [`crate::source::versioned`]):
//! `strata new` adds a timestamped file and leaves the manifest alone, so branches merge cleanly. Packages that list
//! their migrations (`migrations`, pgpkg's `Migrations`) keep doing so: `strata new` numbers the file after the last
//! one and appends it.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::source::manifest::{validate_identifier, validate_package_name};

const MIGRATION_TEMPLATE: &str = "-- migrate:up\n\n\n-- migrate:down\n\n";

/// Create a package in `dir` (which must not contain a manifest yet): `strata.toml`, `migrations/`, and a first
/// migration `migrations/<UTC timestamp>_init.sql`. Returns the files created.
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
    let version = crate::source::versioned::next_version(chrono::Utc::now(), None);
    let first = migrations.join(format!("{version}_init.sql"));
    let text = format!(
        "# Strata package manifest. `strata init --help` describes every key.\n\
         name = {name:?}\n\
         schema = {schema:?}\n\
         extensions = []\n\
         uses = []\n\
         # The migrations are the files <version>_<name>.sql of this folder, applied in version order; a file's base\n\
         # name is its identity. `strata new NAME` creates migrations/<UTC timestamp>_NAME.sql: there is no list to\n\
         # edit, so branches that each add a migration merge cleanly.\n\
         migrations_dir = \"migrations\"\n\
         \n\
         [security]\n\
         # Strata creates a role for the package (\"$\" and its name), makes it own the schema and runs the\n\
         # migrations and managed code as it. That needs a deploying login with CREATEROLE (or a superuser).\n\
         # Set to false to deploy as the login itself, e.g. as a database owner without CREATEROLE.\n\
         package_role = true\n"
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

/// Add a migration to the package at `root`, the way the package keeps them. Returns the new file.
///
/// - A versioned folder (`migrations_dir`, what `strata init` writes): `<folder>/<UTC timestamp>_<name>.sql`; the
///   manifest does not change.
/// - A list (`migrations`, or pgpkg's `Migrations`): `NNNN_<name>.sql` next to the last listed migration (or in
///   `migrations/`), appended to the list.
/// - Neither (a `strata.toml` without migrations yet): `migrations_dir = "migrations"` is added, then as for a
///   folder.
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
    if key == "migrations" {
        if let Some(layout) = doc.get("layout").and_then(|v| v.as_str()) {
            return Err(Error::usage(
                format!(
                    "{} reads a {layout} migrations folder (`layout`): Strata does not write that tool's files",
                    manifest_path.display()
                ),
                Some(format!("create the migration with {layout}'s own command")),
            ));
        }
        if let Some(dir) = doc.get("migrations_dir").and_then(|v| v.as_str()) {
            return new_in_folder(root, dir.trim_end_matches('/'), name);
        }
        if doc.get(key).is_none() {
            let file = new_in_folder(root, "migrations", name)?;
            doc.insert("migrations_dir", toml_edit::value("migrations"));
            std::fs::write(&manifest_path, doc.to_string()).map_err(|source| Error::Write {
                path: manifest_path.clone(),
                source,
            })?;
            return Ok(file);
        }
    }
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

/// `<dir>/<version>_<name>.sql` in a versioned folder, the version being the UTC time (or one more than the
/// newest version there, if that is not earlier).
fn new_in_folder(root: &Path, dir: &str, name: &str) -> Result<PathBuf> {
    use crate::source::versioned::{Version, next_version};
    let folder = root.join(dir);
    std::fs::create_dir_all(&folder).map_err(|source| Error::Write {
        path: folder.clone(),
        source,
    })?;
    let entries = std::fs::read_dir(&folder).map_err(|source| Error::Read {
        path: folder.clone(),
        source,
    })?;
    let newest = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| Version::of(&e.file_name().to_string_lossy()))
        .max();
    let version = next_version(chrono::Utc::now(), newest.as_ref());
    let file = folder.join(format!("{version}_{name}.sql"));
    write_new(&file, MIGRATION_TEMPLATE)?;
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
    fn init_then_new_adds_timestamped_files_and_leaves_the_manifest_alone() {
        let dir = tempfile::tempdir().unwrap();
        let created = init(dir.path(), "github.com/acme/billing", None).unwrap();
        let manifest = std::fs::read_to_string(dir.path().join("strata.toml")).unwrap();
        let first = new_migration(dir.path(), "add_status").unwrap();
        let second = new_migration(dir.path(), "add_index").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("strata.toml")).unwrap(),
            manifest
        );
        let pkg = crate::source::package::Package::load(dir.path()).unwrap();
        assert_eq!(pkg.schema(), "billing");
        assert!(pkg.manifest().security.package_role);
        let names: Vec<&str> = pkg.migrations().iter().map(|m| m.name()).collect();
        let stem = |p: &Path| p.file_stem().unwrap().to_string_lossy().into_owned();
        assert_eq!(names, [stem(&created[1]), stem(&first), stem(&second)]);
        // 14-digit UTC timestamps, each later than the one before (even within one second).
        for n in &names {
            let version = n.split('_').next().unwrap();
            assert_eq!(version.len(), 14, "{n}");
        }
        assert!(names[0].ends_with("_init") && names[2].ends_with("_add_index"));
    }

    #[test]
    fn new_follows_a_package_that_lists_its_migrations() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("db")).unwrap();
        std::fs::write(dir.path().join("db/0001_init.sql"), "SELECT 1;\n").unwrap();
        std::fs::write(
            dir.path().join("strata.toml"),
            "name = \"acme/listed\"\nschema = \"listed\"\n# Applied in this order.\nmigrations = [\"db/0001_init.sql\"]\n",
        )
        .unwrap();
        let f = new_migration(dir.path(), "add_status").unwrap();
        assert!(f.ends_with("db/0002_add_status.sql"));
        let text = std::fs::read_to_string(dir.path().join("strata.toml")).unwrap();
        assert!(
            text.contains("# Applied in this order"),
            "comments survive:\n{text}"
        );
        let pkg = crate::source::package::Package::load(dir.path()).unwrap();
        let names: Vec<&str> = pkg.migrations().iter().map(|m| m.name()).collect();
        assert_eq!(names, ["0001_init", "0002_add_status"]);
    }

    #[test]
    fn new_gives_a_package_without_migrations_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("strata.toml"),
            "name = \"acme/empty\"\nschema = \"empty\"\n",
        )
        .unwrap();
        let f = new_migration(dir.path(), "first").unwrap();
        let text = std::fs::read_to_string(dir.path().join("strata.toml")).unwrap();
        assert!(text.contains("migrations_dir = \"migrations\""), "{text}");
        let pkg = crate::source::package::Package::load(dir.path()).unwrap();
        assert_eq!(pkg.migrations().len(), 1);
        assert_eq!(
            pkg.migrations()[0].path(),
            format!("migrations/{}", f.file_name().unwrap().to_string_lossy())
        );
    }

    #[test]
    fn schema_names_are_derived_safely() {
        assert_eq!(default_schema("github.com/acme/Billing-API"), "billing_api");
        assert_eq!(default_schema("9lives"), "p_9lives");
    }
}
