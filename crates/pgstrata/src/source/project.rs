//! A project: the packages deployed together, in dependency order of `uses`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result, SourceError};
use crate::source::STRATA_PACKAGE;
use crate::source::package::Package;

static STRATA_SCHEMA: include_dir::Dir<'static> =
    include_dir::include_dir!("$CARGO_MANIFEST_DIR/schema");

/// Strata's own package: the `strata` schema and its history tables, upgraded by the same mechanism as users'
/// packages.
pub fn strata_package() -> Result<Package> {
    Package::embedded(&STRATA_SCHEMA)
}

/// Packages deployed together. All their pending migrations run in one transaction, packages in dependency order
/// (a package after the packages it uses), Strata's own package first.
#[derive(Debug, Clone)]
pub struct Project {
    packages: Vec<Package>,
}

impl Project {
    /// A project from already-loaded packages. Every `uses` must be satisfied by one of them, or be found on disk
    /// (the `path` given in the manifest, pgpkg's `.pgpkg/<name>` cache, sibling directories of the using package,
    /// or `$STRATA_PATH`).
    pub fn new(packages: Vec<Package>) -> Result<Project> {
        let mut by_name: BTreeMap<String, Package> = BTreeMap::new();
        let mut order: Vec<String> = Vec::new();
        for p in packages {
            if p.name() == STRATA_PACKAGE {
                return Err(Error::usage(
                    format!("package name `{STRATA_PACKAGE}` is reserved for Strata's own tables"),
                    None,
                ));
            }
            if let Some(prev) = by_name.get(p.name()) {
                if prev.root() == p.root() {
                    continue;
                }
                return Err(Error::usage(
                    format!(
                        "two packages are named `{}`: {} and {}",
                        p.name(),
                        prev.manifest_path().display(),
                        p.manifest_path().display()
                    ),
                    Some("package names must be unique".into()),
                ));
            }
            order.push(p.name().to_string());
            by_name.insert(p.name().to_string(), p);
        }
        resolve_uses(&mut by_name, &mut order)?;
        check_schemas(&by_name)?;
        let sorted = toposort(&by_name, &order)?;
        let packages = sorted
            .into_iter()
            .filter_map(|n| by_name.remove(&n))
            .collect();
        Ok(Project { packages })
    }

    /// Load the packages at `paths` (directories or manifests) and what they use.
    pub fn load<P: AsRef<Path>>(paths: &[P]) -> Result<Project> {
        let packages = paths
            .iter()
            .map(Package::load)
            .collect::<Result<Vec<_>>>()?;
        Project::new(packages)
    }

    /// The user's packages, in deploy order (dependencies first).
    pub fn packages(&self) -> &[Package] {
        &self.packages
    }

    /// Find a package by name.
    pub fn package(&self, name: &str) -> Option<&Package> {
        self.packages.iter().find(|p| p.name() == name)
    }

    /// Strata's own package followed by the user's packages.
    pub(crate) fn with_internal(&self) -> Result<Vec<Package>> {
        let mut all = Vec::with_capacity(self.packages.len() + 1);
        all.push(strata_package()?);
        all.extend(self.packages.iter().cloned());
        Ok(all)
    }
}

fn resolve_uses(by_name: &mut BTreeMap<String, Package>, order: &mut Vec<String>) -> Result<()> {
    let search_path: Vec<PathBuf> = std::env::var_os("STRATA_PATH")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default();
    let mut queue: Vec<String> = order.clone();
    while let Some(name) = queue.pop() {
        let Some(pkg) = by_name.get(&name) else {
            continue;
        };
        let uses = pkg.uses().to_vec();
        let root = pkg.root().map(Path::to_path_buf);
        let manifest_path = pkg.manifest_path().to_path_buf();
        for u in uses {
            if by_name.contains_key(&u.name) {
                continue;
            }
            let found = find_used(&u.name, u.path.as_deref(), root.as_deref(), &search_path)?;
            let Some(found) = found else {
                let text = std::fs::read_to_string(&manifest_path).unwrap_or_default();
                return Err(SourceError::new(
                    "strata::uses",
                    manifest_path.display(),
                    text,
                    Some(u.span.clone()),
                    format!("package `{}` uses `{}`, which was not found", name, u.name),
                )
                .with_label("not found")
                .with_help(format!(
                    "give its location: uses = [{{ name = \"{}\", path = \"../dir\" }}], pass --package DIR, or add its parent directory to STRATA_PATH",
                    u.name
                ))
                .into());
            };
            order.push(found.name().to_string());
            queue.push(found.name().to_string());
            by_name.insert(found.name().to_string(), found);
        }
    }
    Ok(())
}

fn find_used(
    name: &str,
    path: Option<&str>,
    root: Option<&Path>,
    search_path: &[PathBuf],
) -> Result<Option<Package>> {
    if let Some(p) = path {
        let dir = root.map_or_else(|| PathBuf::from(p), |r| r.join(p));
        let pkg = Package::load(&dir)?;
        if pkg.name() != name {
            return Err(Error::usage(
                format!(
                    "{} holds package `{}`, not `{name}`",
                    dir.display(),
                    pkg.name()
                ),
                None,
            ));
        }
        return Ok(Some(pkg));
    }
    // pgpkg's cache of used packages: `.pgpkg/<name>` (where `pgpkg import` puts them).
    if let Some(dir) = root.and_then(|r| {
        crate::source::pgpkg::cached_package_dirs(r, name)
            .into_iter()
            .next()
    }) {
        let pkg = Package::load(&dir)?;
        if pkg.name() != name {
            return Err(Error::usage(
                format!(
                    "{} holds package `{}`, not `{name}`",
                    dir.display(),
                    pkg.name()
                ),
                Some("a package in a .pgpkg cache sits in the folder named after it".into()),
            ));
        }
        return Ok(Some(pkg));
    }
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(parent) = root.and_then(Path::parent) {
        candidates.push(parent.to_path_buf());
    }
    if let Some(r) = root {
        candidates.push(r.join("packages"));
    }
    candidates.extend(search_path.iter().cloned());
    for dir in candidates {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        let mut subdirs: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        subdirs.sort();
        for sub in subdirs {
            if let Some(n) = manifest_name(&sub)
                && n == name
            {
                return Package::load(&sub).map(Some);
            }
        }
    }
    Ok(None)
}

/// The `name` of the manifest in `dir`, read cheaply (no migration files are loaded).
fn manifest_name(dir: &Path) -> Option<String> {
    for (file, key) in [("strata.toml", "name"), ("pgpkg.toml", "Package")] {
        if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
            let table: toml::Table = toml::from_str(&text).ok()?;
            return table.get(key)?.as_str().map(str::to_string);
        }
    }
    None
}

fn check_schemas(by_name: &BTreeMap<String, Package>) -> Result<()> {
    let mut owners: HashMap<&str, &str> = HashMap::new();
    for p in by_name.values() {
        for schema in p.schemas() {
            if let Some(other) = owners.insert(schema, p.name()) {
                return Err(Error::usage(
                    format!(
                        "packages `{other}` and `{}` both claim schema `{schema}`",
                        p.name(),
                    ),
                    Some("a schema belongs to one package".into()),
                ));
            }
        }
    }
    Ok(())
}

/// Dependencies first (each right before the first package that uses it); among independent packages, the order
/// they were given in. A cycle is reported with its chain of names.
fn toposort(by_name: &BTreeMap<String, Package>, order: &[String]) -> Result<Vec<String>> {
    let index: HashMap<&str, usize> = order
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let needs: Vec<Vec<usize>> = order
        .iter()
        .map(|name| {
            by_name.get(name).map_or_else(Vec::new, |p| {
                p.uses()
                    .iter()
                    .filter_map(|u| index.get(u.name.as_str()).copied())
                    .collect()
            })
        })
        .collect();
    match crate::order::depth_first(&needs) {
        Ok(sorted) => Ok(sorted.into_iter().map(|i| order[i].clone()).collect()),
        Err(chain) => {
            let names: Vec<&str> = chain.iter().map(|&i| order[i].as_str()).collect();
            Err(Error::usage(
                format!("packages use each other in a cycle: {}", names.join(" → ")),
                Some("remove one of the `uses` entries".into()),
            ))
        }
    }
}
