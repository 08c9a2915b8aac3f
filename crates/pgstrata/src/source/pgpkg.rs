//! pgpkg's conventions besides `pgpkg.toml` itself: the `@migration.pgpkg` index (its older way of listing
//! migrations, still read by pgpkg and used by its own packages and examples) and the `.pgpkg/` folder where
//! `pgpkg import` puts the packages a project uses.
//!
//! The index: one path per line, relative to the folder the index is in; `#` starts a comment; blank lines are
//! skipped. As in pgpkg, a package has at most one index and not together with `Migrations`, and every `.sql` file
//! under the index's folder must be listed (pgpkg refuses the package otherwise: "a surprisingly common mistake").

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::error::{Result, SourceError};
use crate::source::files::PackageSource;
use crate::source::manifest::Manifest;

/// The file name of pgpkg's migration index.
pub(crate) const MIGRATION_INDEX: &str = "@migration.pgpkg";

/// The folder pgpkg keeps used packages in, at the root of the package that uses them.
pub(crate) const CACHE_DIR: &str = ".pgpkg";

/// A package's `@migration.pgpkg`, read and checked for form.
#[derive(Debug, Clone)]
pub(crate) struct MigrationIndex {
    /// Its path as shown to users.
    pub display: String,
    /// Its text (errors point into it).
    pub text: String,
    /// The folder it lists files of, relative to the package root (`""`: the root), with a trailing `/`.
    pub prefix: String,
    /// The listed migrations (relative to the package root) with their span in [`MigrationIndex::text`].
    pub entries: Entries,
}

/// Find and read the `@migration.pgpkg` of a pgpkg package (`None`: it has none).
#[allow(
    clippy::result_large_err,
    reason = "the error carries the file's text for its diagnostic; Error::Source boxes it"
)]
pub(crate) fn migration_index(
    source: &PackageSource,
    manifest: &Manifest,
    manifest_display: &str,
    manifest_text: &str,
) -> Result<Option<MigrationIndex>> {
    let found = source.files_named(MIGRATION_INDEX)?;
    let Some(rel) = found.first() else {
        return Ok(None);
    };
    let display = source.display_path(rel).to_string_lossy().into_owned();
    if found.len() > 1 {
        let all: Vec<String> = found
            .iter()
            .map(|f| source.display_path(f).to_string_lossy().into_owned())
            .collect();
        return Err(SourceError::new(
            "strata::pgpkg_index",
            manifest_display,
            manifest_text,
            None,
            format!(
                "the package has several {MIGRATION_INDEX} files: {}",
                all.join(", ")
            ),
        )
        .with_help("pgpkg reads one migration index per package: merge them into one")
        .into());
    }
    if let Some((_, span)) = manifest.migrations.first() {
        return Err(SourceError::new(
            "strata::pgpkg_index",
            manifest_display,
            manifest_text,
            Some(span.clone()),
            format!("the package lists `Migrations` and also has {display}"),
        )
        .with_label("Migrations")
        .with_help(format!(
            "pgpkg accepts only one of them: keep `Migrations` (and delete {MIGRATION_INDEX}) or the index"
        ))
        .into());
    }
    let text = source.read(rel)?.unwrap_or_default();
    let prefix = match rel.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/"),
        None => String::new(),
    };
    let entries = parse_index(&text, &prefix).map_err(|(span, message)| {
        SourceError::new(
            "strata::pgpkg_index",
            &display,
            text.clone(),
            Some(span),
            message,
        )
        .with_help(format!(
            "each line of {MIGRATION_INDEX} is a migration's path relative to the index's folder; `#` starts a comment"
        ))
    })?;
    Ok(Some(MigrationIndex {
        display,
        text,
        prefix,
        entries,
    }))
}

/// Paths with their spans in a file's text.
type Entries = Vec<(String, Range<usize>)>;

/// The entries of an index whose folder is `prefix`: paths relative to the package root with their spans.
fn parse_index(text: &str, prefix: &str) -> std::result::Result<Entries, (Range<usize>, String)> {
    let mut out: Vec<(String, Range<usize>)> = Vec::new();
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let start = offset;
        offset += line.len();
        let content = line.split('#').next().unwrap_or("");
        let entry = content.trim();
        if entry.is_empty() {
            continue;
        }
        let at = start + content.find(entry).unwrap_or(0);
        let span = at..at + entry.len();
        let entry = entry.strip_prefix("./").unwrap_or(entry);
        if entry.starts_with('/')
            || entry.contains('\\')
            || entry
                .split('/')
                .any(|c| c == ".." || c == "." || c.is_empty())
        {
            return Err((
                span,
                format!(
                    "`{entry}` must be a path inside the index's folder, with `/` separators and no `..`"
                ),
            ));
        }
        if !entry.ends_with(".sql") {
            return Err((span, format!("`{entry}` does not end in .sql")));
        }
        let base = crate::source::script::migration_name(entry);
        if let Some((prev, _)) = out
            .iter()
            .find(|(p, _)| crate::source::script::migration_name(p) == base)
        {
            return Err((
                span,
                format!(
                    "duplicate migration name `{base}` (also listed as {prev}): a migration's identity is its file's \
                     base name"
                ),
            ));
        }
        out.push((format!("{prefix}{entry}"), span));
    }
    Ok(out)
}

/// The first `.sql` file under the index's folder that the index does not list (nor is the down file of a listed
/// one), as pgpkg refuses it.
pub(crate) fn check_index_complete(
    index: &MigrationIndex,
    sql_files: &[String],
) -> std::result::Result<(), Box<SourceError>> {
    let listed: Vec<&str> = index.entries.iter().map(|(p, _)| p.as_str()).collect();
    for f in sql_files {
        if !f.starts_with(&index.prefix) || listed.contains(&f.as_str()) {
            continue;
        }
        if listed
            .iter()
            .any(|l| crate::source::script::down_sibling(l) == *f)
        {
            continue;
        }
        let end = index.text.trim_end().len();
        return Err(Box::new(
            SourceError::new(
                "strata::unlisted",
                &index.display,
                index.text.clone(),
                Some(end..end),
                format!(
                    "{f} is in the folder of {} but not listed in it",
                    index.display
                ),
            )
            .with_label("the list ends here")
            .with_help(format!(
                "add \"{}\" to the index (pgpkg refuses an unlisted file there too), or move the file out of the \
                 folder",
                &f[index.prefix.len()..]
            )),
        ));
    }
    Ok(())
}

/// Where a package used by the package at `root` may sit in a pgpkg cache: `root/.pgpkg/<name>`, then, for a package
/// that itself lives in a cache (`X/.pgpkg/<its name>`), `X/.pgpkg/<name>` (pgpkg imports a project's dependencies
/// flat into one cache). Only folders holding a manifest; names with `.`/`..` components are never looked up.
pub(crate) fn cached_package_dirs(root: &Path, name: &str) -> Vec<PathBuf> {
    if name
        .split('/')
        .any(|c| c.is_empty() || c == "." || c == "..")
    {
        return Vec::new();
    }
    let mut caches = vec![root.join(CACHE_DIR)];
    if let Some(outer) = root
        .ancestors()
        .skip(1)
        .find(|a| a.file_name().is_some_and(|n| n == CACHE_DIR))
    {
        caches.push(outer.to_path_buf());
    }
    caches
        .into_iter()
        .map(|c| c.join(name))
        .filter(|d| d.join("pgpkg.toml").is_file() || d.join("strata.toml").is_file())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_lines_comments_and_spans() {
        let text = "mob.sql\n# a comment\n\n  sub/pkg.sql   # trailing comment\n./x.sql\n";
        let entries = parse_index(text, "schema/").unwrap();
        let paths: Vec<&str> = entries.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            paths,
            ["schema/mob.sql", "schema/sub/pkg.sql", "schema/x.sql"]
        );
        assert_eq!(&text[entries[1].1.clone()], "sub/pkg.sql");
    }

    #[test]
    fn index_rejects_escapes_and_duplicates() {
        let (span, m) = parse_index("a.sql\n../b.sql\n", "").unwrap_err();
        assert_eq!(span, 6..14);
        assert!(m.contains("no `..`"), "{m}");
        let (_, m) = parse_index("a.sql\nx/a.sql\n", "").unwrap_err();
        assert!(m.contains("duplicate migration name `a`"), "{m}");
        let (_, m) = parse_index("notes.txt\n", "").unwrap_err();
        assert!(m.contains("does not end in .sql"), "{m}");
    }

    #[test]
    fn cache_lookups_never_leave_the_cache() {
        assert!(cached_package_dirs(Path::new("/p"), "a/../../etc").is_empty());
        assert!(cached_package_dirs(Path::new("/p"), "a//b").is_empty());
    }
}
