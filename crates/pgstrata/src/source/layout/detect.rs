//! Which tool's folder is this? Each layout says which files it reads as migrations, which it ignores (as the tool
//! itself ignores them) and which it would refuse; the layout that reads most of the folder and refuses nothing wins.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{
    Layout, dbmate, diesel, flyway, golang_migrate, popx, postgres_migrations, sqlx, updown,
};
use crate::error::{Error, Result};

/// Detection: the one layout that fits the folder's majority shape.
pub(super) fn detect(dir: &Path) -> Result<Layout> {
    detect_listing(dir).map(|(layout, _)| layout)
}

/// The layout of `dir`, and the listing detection read (with the texts it read).
///
/// A layout fits when the tool would read the folder without refusing a file, and the files it reads as migrations
/// are at least as many as those it ignores (a stray `data.sql` next to forty diesel folders is ignored, as diesel ignores it; a
/// folder of unrelated files with one numbered file is not a migrations folder). Of the layouts that fit, the one
/// that ignores fewest files wins; a tie is an error that names them, since they would track the files differently.
pub(super) fn detect_listing(dir: &Path) -> Result<(Layout, Listing)> {
    if dir.join("strata.toml").is_file() || dir.join("pgpkg.toml").is_file() {
        return Err(Error::usage(
            format!(
                "{} is a Strata package (it has a manifest), not another tool's folder",
                dir.display()
            ),
            Some("use --package DIR (or -p) for Strata packages".into()),
        ));
    }
    let listing = Listing::read(dir)?;
    let mut fits: Vec<(Layout, String, usize)> = Vec::new();
    let mut misfits = Vec::new();
    for layout in Layout::ALL {
        let verdict = match layout {
            Layout::Dbmate => dbmate::detect(&listing),
            Layout::Sqlx => sqlx::detect(&listing),
            Layout::Diesel => diesel::detect(&listing),
            Layout::GolangMigrate => golang_migrate::detect(&listing),
            Layout::Flyway => flyway::detect(&listing),
            Layout::UpDown => updown::detect(&listing),
            Layout::Popx => popx::detect(&listing),
            Layout::PostgresMigrations => postgres_migrations::detect(&listing),
            // Its `V` files look like Flyway's, and its `U` means "unversioned", not "undo": never guessed.
            Layout::Refinery => continue,
        };
        match verdict {
            Verdict::Fits(why) => fits.push((layout, why, 0)),
            Verdict::Partly {
                why,
                migrations,
                ignored,
            } if migrations >= ignored.len() => {
                let why = if ignored.is_empty() {
                    why
                } else {
                    format!(
                        "{why}; it ignores {}",
                        some_names(ignored.iter().map(String::as_str))
                    )
                };
                fits.push((layout, why, ignored.len()));
            }
            Verdict::Partly {
                migrations,
                ignored,
                ..
            } => misfits.push((
                layout,
                format!(
                    "it would read only {migrations} file(s) as migrations and ignore {} ({})",
                    ignored.len(),
                    some_names(ignored.iter().map(String::as_str))
                ),
            )),
            Verdict::No(why) => misfits.push((layout, why)),
        }
    }
    let fewest = fits.iter().map(|(_, _, n)| *n).min();
    fits.retain(|(_, _, n)| Some(*n) == fewest);
    match fits.as_slice() {
        [(one, _, _)] => Ok((*one, listing)),
        [] => Err(Error::usage(
            format!(
                "cannot tell which tool's migrations {} holds:\n{}",
                dir.display(),
                misfits
                    .iter()
                    .map(|(l, why)| format!("  - not {l}: {why}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            Some(format!(
                "pass --layout ({})",
                Layout::ALL.map(Layout::name).join(", ")
            )),
        )),
        several => Err(Error::usage(
            format!(
                "{} fits several layouts:\n{}",
                dir.display(),
                several
                    .iter()
                    .map(|(l, why, _)| format!("  - {l}: {why}"))
                    .collect::<Vec<_>>()
                    .join("\n")
            ),
            Some(format!(
                "pass --layout {} (they name files the same way but track them differently)",
                several
                    .iter()
                    .map(|(l, _, _)| l.name())
                    .collect::<Vec<_>>()
                    .join(" or --layout ")
            )),
        )),
    }
}

/// A detection verdict, with the evidence.
pub(crate) enum Verdict {
    /// Every file the layout looks at is one of its migrations.
    Fits(String),
    /// The layout reads `migrations` files as migrations and ignores the `ignored` ones, as the tool does.
    Partly {
        why: String,
        migrations: usize,
        ignored: Vec<String>,
    },
    /// The tool would refuse the folder (or finds nothing in it), and why.
    No(String),
}

/// The top level of a folder (and one level of subfolders), for detection.
pub(crate) struct Listing {
    root: PathBuf,
    /// Texts read so far (several layouts look at the same files), and whether each is the file's exact text
    /// (valid UTF-8), which loading can use instead of reading the file again.
    texts: std::cell::RefCell<BTreeMap<String, (std::rc::Rc<str>, bool)>>,
    /// Top-level `.sql` file names.
    pub sql_files: Vec<String>,
    /// Subfolder names, with the names of the files they hold.
    pub dirs: Vec<(String, Vec<String>)>,
}

impl Listing {
    fn read(dir: &Path) -> Result<Listing> {
        let mut sql_files = Vec::new();
        let mut dirs = Vec::new();
        for (name, is_dir) in read_names(dir)? {
            if is_dir {
                let inner = read_names(&dir.join(&name))?
                    .into_iter()
                    .map(|(n, _)| n)
                    .collect();
                dirs.push((name, inner));
            } else if name.ends_with(".sql") {
                sql_files.push(name);
            }
        }
        sql_files.sort();
        dirs.sort();
        let texts = prefetch(dir, &sql_files);
        Ok(Listing {
            root: dir.to_path_buf(),
            texts: std::cell::RefCell::new(texts),
            sql_files,
            dirs,
        })
    }

    /// A top-level (or nested, `a/b.sql`) file's text; empty if unreadable (detection only looks).
    pub fn text(&self, name: &str) -> std::rc::Rc<str> {
        if let Some((t, _)) = self.texts.borrow().get(name) {
            return t.clone();
        }
        let (text, exact) = read_text(&self.root.join(name));
        let text: std::rc::Rc<str> = text.into();
        self.texts
            .borrow_mut()
            .insert(name.to_string(), (text.clone(), exact));
        text
    }

    /// The exact text of a file detection read, if it read it (and it is valid UTF-8).
    pub(super) fn exact_text(&self, name: &str) -> Option<std::rc::Rc<str>> {
        match self.texts.borrow().get(name) {
            Some((t, true)) => Some(t.clone()),
            _ => None,
        }
    }

    /// The files of subfolder `name`, if it exists.
    pub fn dir(&self, name: &str) -> Option<&[String]> {
        self.dirs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, files)| files.as_slice())
    }
}

/// A file's text for detection: lossy if it is not UTF-8 (then `false`: not its exact text), empty if unreadable.
fn read_text(path: &Path) -> (String, bool) {
    match std::fs::read(path) {
        Ok(b) => match String::from_utf8(b) {
            Ok(s) => (s, true),
            Err(e) => (String::from_utf8_lossy(e.as_bytes()).into_owned(), false),
        },
        Err(_) => (String::new(), false),
    }
}

/// Read the top-level `.sql` files of a folder up front, on a few threads: detection and loading read them all
/// (dbmate's detection looks for a marker in every file), and a folder may hold thousands. Small folders are left
/// to be read on demand.
fn prefetch(root: &Path, files: &[String]) -> BTreeMap<String, (std::rc::Rc<str>, bool)> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get().min(4));
    let mut out = BTreeMap::new();
    if files.len() < 64 || threads < 2 {
        return out;
    }
    let chunk = files.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .chunks(chunk)
            .map(|part| {
                let handle = scope.spawn(move || {
                    part.iter()
                        .map(|f| read_text(&root.join(f)))
                        .collect::<Vec<_>>()
                });
                (part, handle)
            })
            .collect();
        for (part, handle) in handles {
            // A part whose thread failed is simply read again on demand.
            let Ok(texts) = handle.join() else {
                continue;
            };
            for (name, (text, exact)) in part.iter().zip(texts) {
                out.insert(name.clone(), (text.into(), exact));
            }
        }
    });
    out
}

fn read_names(dir: &Path) -> Result<Vec<(String, bool)>> {
    let entries = std::fs::read_dir(dir).map_err(|source| Error::Read {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| Error::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        // The entry's type comes with the listing; only a symbolic link needs a stat to know where it points.
        let is_dir = match entry.file_type() {
            Ok(t) if t.is_symlink() => entry.path().is_dir(),
            Ok(t) => t.is_dir(),
            Err(_) => entry.path().is_dir(),
        };
        out.push((name, is_dir));
    }
    out.sort();
    Ok(out)
}

/// `n` file names for a message: the first few, then a count.
pub(crate) fn some_names<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let all: Vec<&str> = names.into_iter().collect();
    let mut shown: Vec<String> = all.iter().take(3).map(|s| s.to_string()).collect();
    if all.len() > 3 {
        shown.push(format!("and {} more", all.len() - 3));
    }
    shown.join(", ")
}
