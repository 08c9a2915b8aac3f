//! Where a package's files come from: a directory on disk, or a directory embedded in the binary with
//! `include_dir!` (so an application can deploy its own schema at start-up without shipping files).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result, SourceError};

/// The root of a package's files.
#[derive(Debug, Clone)]
pub enum PackageSource {
    /// A directory on disk.
    Dir(PathBuf),
    /// A directory compiled into the binary.
    Embedded(&'static include_dir::Dir<'static>),
}

impl PackageSource {
    /// Read a file given by its path relative to the package root. `Ok(None)` if it does not exist.
    pub fn read(&self, rel: &str) -> Result<Option<String>> {
        match self {
            PackageSource::Dir(root) => {
                let path = root.join(rel);
                match std::fs::read(&path) {
                    Ok(bytes) => String::from_utf8(bytes).map(Some).map_err(|e| {
                        not_utf8(&self.display_path(rel), e.as_bytes(), e.utf8_error())
                    }),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
                        Err(Error::Read { path, source: e })
                    }
                    Err(source) => Err(Error::Read { path, source }),
                }
            }
            PackageSource::Embedded(dir) => match dir.get_file(rel) {
                Some(f) => match std::str::from_utf8(f.contents()) {
                    Ok(s) => Ok(Some(s.to_owned())),
                    Err(e) => Err(not_utf8(&self.display_path(rel), f.contents(), e)),
                },
                None => Ok(None),
            },
        }
    }

    /// The path to show to a user for a file of this package.
    pub fn display_path(&self, rel: &str) -> PathBuf {
        self.display_path_in(rel, std::env::current_dir().ok().as_deref())
    }

    /// [`display_path`](Self::display_path) with the working directory already known (loading a package shows
    /// the paths of all its files: one `getcwd` instead of one per file).
    pub(crate) fn display_path_in(&self, rel: &str, cwd: Option<&Path>) -> PathBuf {
        match self {
            PackageSource::Dir(root) => {
                let full = root.join(rel);
                // Relative to the working directory when possible: shorter, and clickable in terminals.
                match cwd {
                    Some(cwd) => full
                        .strip_prefix(cwd)
                        .map(Path::to_path_buf)
                        .unwrap_or(full),
                    None => full,
                }
            }
            PackageSource::Embedded(_) => PathBuf::from(format!("<embedded>/{rel}")),
        }
    }

    /// The names of the entries of the package folder `rel_dir` (`""`: the root). `None` when it cannot be listed
    /// (then callers look files up one by one) or for an embedded source.
    pub(crate) fn entry_names(&self, rel_dir: &str) -> Option<std::collections::HashSet<String>> {
        match self {
            PackageSource::Dir(root) => {
                let entries = std::fs::read_dir(root.join(rel_dir)).ok()?;
                entries
                    .map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                    .collect()
            }
            PackageSource::Embedded(_) => None,
        }
    }

    /// Every `.sql` file of the package (relative paths, `/`-separated, sorted), skipping dot-files and
    /// dot-directories (caches, `.strata/`, editors' files).
    pub fn sql_files(&self) -> Result<Vec<String>> {
        self.files_where(&|name| name.ends_with(".sql"))
    }

    /// Every file of the package whose name is `name` (relative paths, sorted), skipping dot-directories as
    /// [`sql_files`](Self::sql_files) does: where pgpkg's `@migration.pgpkg` indexes are.
    pub(crate) fn files_named(&self, name: &str) -> Result<Vec<String>> {
        self.files_where(&|n| n == name)
    }

    fn files_where(&self, wanted: &dyn Fn(&str) -> bool) -> Result<Vec<String>> {
        let mut out = Vec::new();
        match self {
            PackageSource::Dir(root) => walk_dir(root, root, wanted, &mut out)?,
            PackageSource::Embedded(dir) => walk_embedded(dir, wanted, &mut out),
        }
        out.sort();
        Ok(out)
    }
}

/// A file that is not UTF-8, shown like any other source error: the file, with the first bad byte underlined.
fn not_utf8(display: &Path, bytes: &[u8], e: std::str::Utf8Error) -> Error {
    let at = e.valid_up_to();
    // The lossy text is identical up to the first bad byte, so `at` points at its replacement character.
    let text = String::from_utf8_lossy(bytes).into_owned();
    let lc = pgstrata_sql::LineIndex::new(&text).line_col(at);
    SourceError::new(
        "strata::encoding",
        display.display(),
        text,
        Some(at..at),
        format!(
            "{} is not valid UTF-8: byte 0x{:02X} at line {}, column {}",
            display.display(),
            bytes.get(at).copied().unwrap_or_default(),
            lc.line,
            lc.col
        ),
    )
    .with_label("not UTF-8")
    .with_help("Strata reads SQL files as UTF-8: convert the file, e.g. `iconv -f LATIN1 -t UTF-8`")
    .into()
}

fn walk_dir(
    root: &Path,
    dir: &Path,
    wanted: &dyn Fn(&str) -> bool,
    out: &mut Vec<String>,
) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || name == "target" || name == "node_modules" {
            continue;
        }
        let path = entry.path();
        let ft = entry.file_type().map_err(|source| Error::Read {
            path: path.clone(),
            source,
        })?;
        if ft.is_dir() {
            // A nested package is its own package, not part of this one.
            if path.join("strata.toml").exists() || path.join("pgpkg.toml").exists() {
                continue;
            }
            walk_dir(root, &path, wanted, out)?;
        } else if wanted(&name)
            && let Ok(rel) = path.strip_prefix(root)
        {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
    Ok(())
}

fn walk_embedded(
    dir: &include_dir::Dir<'static>,
    wanted: &dyn Fn(&str) -> bool,
    out: &mut Vec<String>,
) {
    for f in dir.files() {
        let p = f.path().to_string_lossy().replace('\\', "/");
        let base = p.rsplit('/').next().unwrap_or(&p);
        if wanted(base) && !base.starts_with('.') {
            out.push(p);
        }
    }
    for d in dir.dirs() {
        let p = d.path().to_string_lossy();
        let base = p.rsplit('/').next().unwrap_or(&p);
        if base.starts_with('.') {
            continue;
        }
        if d.get_file(d.path().join("strata.toml")).is_some() {
            continue;
        }
        walk_embedded(d, wanted, out);
    }
}
