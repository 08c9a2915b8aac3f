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
                check_file_name(rel)?;
                let Some(path) = self.resolve(root, rel)? else {
                    return Ok(None);
                };
                match std::fs::read(&path) {
                    Ok(bytes) => String::from_utf8(bytes)
                        .map_err(|e| {
                            not_utf8(&self.display_path(rel), e.as_bytes(), e.utf8_error())
                        })
                        .and_then(|text| no_nul(&self.display_path(rel), text))
                        .map(Some),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                    Err(e) if e.kind() == std::io::ErrorKind::IsADirectory => {
                        Err(Error::Read { path, source: e })
                    }
                    Err(source) => Err(Error::Read { path, source }),
                }
            }
            PackageSource::Embedded(dir) => match dir.get_file(rel) {
                Some(f) => match std::str::from_utf8(f.contents()) {
                    Ok(s) => no_nul(&self.display_path(rel), s.to_owned()).map(Some),
                    Err(e) => Err(not_utf8(&self.display_path(rel), f.contents(), e)),
                },
                None => Ok(None),
            },
        }
    }

    /// Where `rel` really is (symbolic links resolved), refusing what lands outside the package root: a link
    /// to `/etc/passwd` or a linked directory elsewhere would otherwise be read, sent to the server and quoted in
    /// diagnostics. `Ok(None)` if it does not exist.
    fn resolve(&self, root: &Path, rel: &str) -> Result<Option<PathBuf>> {
        let path = root.join(rel);
        let real = match std::fs::canonicalize(&path) {
            Ok(real) => real,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(Error::Read { path, source }),
        };
        let real_root = std::fs::canonicalize(root).map_err(|source| Error::Read {
            path: root.to_path_buf(),
            source,
        })?;
        if real.starts_with(&real_root) {
            return Ok(Some(real));
        }
        let display = self.display_path(rel);
        Err(SourceError::new(
            "strata::outside_package",
            printable(&display.display().to_string()),
            "",
            None,
            format!(
                "{} leads outside the package: it resolves to {}, which is not under the package root {}",
                printable(&display.display().to_string()),
                printable(&real.display().to_string()),
                printable(&real_root.display().to_string()),
            ),
        )
        .with_help(
            "a package's files must live inside its directory (symbolic links are followed and must stay inside \
             it); copy the file into the package instead of linking to it. Nothing was read.",
        )
        .into())
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

/// Refuse a file name holding control characters (a newline, an ANSI escape) or bidirectional-text controls:
/// printed as is, it could forge or hide lines of Strata's output; it is shown escaped.
pub(crate) fn check_file_name(rel: &str) -> Result<()> {
    if !rel.chars().any(unprintable) {
        return Ok(());
    }
    Err(SourceError::new(
        "strata::file_name",
        printable(rel),
        "",
        None,
        format!(
            "the file name {} contains control characters",
            printable(rel)
        ),
    )
    .with_help("rename the file: Strata refuses names with newlines, escape sequences or other control characters")
    .into())
}

/// Characters that must not reach a terminal unescaped: C0/C1 controls (newline, ESC, …) and the Unicode
/// bidirectional overrides that reorder what is displayed.
fn unprintable(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `name` as it can be printed safely: quoted and escaped (`"a\nb"`, `"\u{1b}[31m"`) when it holds unprintable
/// characters, as it is otherwise.
pub fn printable(name: &str) -> std::borrow::Cow<'_, str> {
    if !name.chars().any(unprintable) {
        return std::borrow::Cow::Borrowed(name);
    }
    let mut out = String::from("\"");
    for c in name.chars() {
        if unprintable(c) || c == '"' || c == '\\' {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out.push('"');
    std::borrow::Cow::Owned(out)
}

/// Refuse a NUL character: PostgreSQL's protocol cannot carry one in SQL text (the driver would fail with an
/// obscure message, or the server would read the text up to it).
fn no_nul(display: &Path, text: String) -> Result<String> {
    let Some(at) = text.find('\0') else {
        return Ok(text);
    };
    let lc = pgstrata_sql::LineIndex::new(&text).line_col(at);
    let shown = text.replace('\0', "\u{2400}");
    Err(SourceError::new(
        "strata::nul_byte",
        printable(&display.display().to_string()),
        shown,
        Some(at..at + '\u{2400}'.len_utf8()),
        format!(
            "{} contains a NUL byte at line {}, column {}",
            printable(&display.display().to_string()),
            lc.line,
            lc.col
        ),
    )
    .with_label("NUL")
    .with_help("PostgreSQL cannot receive a NUL character in SQL text: remove it (a binary file, or a copy gone wrong?)")
    .into())
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
