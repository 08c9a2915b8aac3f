//! The manifest written beside an archive (`<archive>.manifest.json`): what was dumped, from which server, Strata's
//! history at that moment, exact row counts in the dump's snapshot, and the archive's checksum.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::Format;
use crate::error::{Error, Result};

/// The manifest format; a reader refuses newer ones.
pub const MANIFEST_VERSION: u32 = 1;

/// A backup's manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackupManifest {
    /// [`MANIFEST_VERSION`].
    pub manifest_version: u32,
    /// The Strata version that wrote it.
    pub strata_version: String,
    /// When the dump's snapshot was taken.
    pub created_at: DateTime<Utc>,
    /// The database dumped.
    pub database: String,
    /// Its server's `server_version`.
    pub server_version: String,
    /// Its server's `server_version_num`.
    pub server_version_num: i32,
    /// The `pg_dump` version used.
    pub pg_dump_version: String,
    /// Archive format.
    pub format: Format,
    /// Schema only (no table data, no row counts).
    pub schema_only: bool,
    /// The schemas dumped (empty: all).
    pub schemas: Vec<String>,
    /// The archive's file name (a sibling of the manifest).
    pub archive: String,
    /// Its size in bytes (all files, for the directory format).
    pub bytes: u64,
    /// Its checksum.
    pub checksum: Checksum,
    /// Strata's history: the applied migrations in the order they were applied.
    pub history: Vec<HistoryEntry>,
    /// The last `strata.run` id.
    pub last_run: Option<i64>,
    /// Every table whose data pg_dump writes, with its exact row count in the dump's snapshot (0 for a
    /// schema-only backup).
    pub tables: Vec<TableRows>,
}

/// SHA-256 of the archive. For a directory: of the lines `<sha256>  <file name>` of its files in name order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksum {
    /// `sha256`.
    pub algorithm: String,
    /// Hex digest.
    pub value: String,
}

/// One applied migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryEntry {
    /// Package.
    pub package: String,
    /// Migration.
    pub name: String,
    /// Checksum of its file.
    pub checksum: String,
}

/// Rows of one table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableRows {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// `count(*)`.
    pub rows: i64,
}

impl BackupManifest {
    /// Where the manifest of `archive` lives.
    pub fn path_for(archive: &Path) -> PathBuf {
        let mut name = archive
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        name.push(".manifest.json");
        archive.with_file_name(name)
    }

    /// Read the manifest of `archive`; `None` when there is none (an archive from plain `pg_dump`).
    pub fn read_for(archive: &Path) -> Result<Option<BackupManifest>> {
        let path = Self::path_for(archive);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("cannot read", &path)(e)),
        };
        let manifest: BackupManifest =
            serde_json::from_str(&text).map_err(|e| Error::Manifest {
                path: path.clone(),
                message: format!("not a Strata backup manifest: {e}"),
            })?;
        if manifest.manifest_version > MANIFEST_VERSION {
            return Err(Error::Manifest {
                path,
                message: format!(
                    "manifest version {} is newer than this Strata understands ({MANIFEST_VERSION})",
                    manifest.manifest_version
                ),
            });
        }
        Ok(Some(manifest))
    }

    /// Write it beside `archive` (through a temporary file, so a crash never leaves half a manifest).
    pub fn write_for(&self, archive: &Path) -> Result<PathBuf> {
        let path = Self::path_for(archive);
        let text = serde_json::to_string_pretty(self).map_err(|e| Error::Manifest {
            path: path.clone(),
            message: format!("cannot encode: {e}"),
        })?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n").map_err(Error::io("cannot write", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("cannot write", &path))?;
        Ok(path)
    }
}

/// The checksum and total size of an archive file or directory.
pub fn checksum(archive: &Path) -> Result<(Checksum, u64)> {
    let hash_file = |path: &Path| -> Result<(String, u64)> {
        let mut file = std::fs::File::open(path).map_err(Error::io("cannot read", path))?;
        let mut hasher = Sha256::new();
        let bytes =
            std::io::copy(&mut file, &mut hasher).map_err(Error::io("cannot read", path))?;
        Ok((hex::encode(hasher.finalize()), bytes))
    };
    let meta = std::fs::metadata(archive).map_err(Error::io("cannot read", archive))?;
    let (value, bytes) = if meta.is_dir() {
        let mut names: Vec<PathBuf> = std::fs::read_dir(archive)
            .map_err(Error::io("cannot read", archive))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_file())
            .collect();
        names.sort();
        let mut list = Sha256::new();
        let mut total = 0;
        for p in &names {
            let (h, n) = hash_file(p)?;
            total += n;
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            list.update(format!("{h}  {name}\n"));
        }
        (hex::encode(list.finalize()), total)
    } else {
        hash_file(archive)?
    };
    Ok((
        Checksum {
            algorithm: "sha256".into(),
            value,
        },
        bytes,
    ))
}

/// Bytes written so far to an archive file or directory (for progress; errors count as 0).
pub fn size_so_far(archive: &Path) -> u64 {
    match std::fs::metadata(archive) {
        Ok(m) if m.is_dir() => std::fs::read_dir(archive)
            .map(|rd| {
                rd.filter_map(|e| e.ok()?.metadata().ok())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}
