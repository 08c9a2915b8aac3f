//! Comparing the managed code on disk with what Strata recorded and what the catalog holds now.
//! Read-only: `strata status` shows the result, `up` acts on it.

use std::collections::HashMap;

use crate::db::catalog::{self, CatalogClass, Oid, StoredObject};
use crate::error::Result;
use crate::report::code::CodeKind;
use crate::source::STRATA_PACKAGE;
use crate::source::code::{Code, CodeObject};
use crate::source::package::Package;

/// A statement of managed code, with its package.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Node<'p> {
    /// Index of the package in the deploy's package list.
    pub pkg: usize,
    pub package: &'p Package,
    pub obj: &'p CodeObject,
}

impl<'p> Node<'p> {
    pub fn code(&self) -> &'p Code {
        self.package.code()
    }

    pub fn schema(&self) -> &'p str {
        self.package.schema()
    }

    /// `file:line` of the statement.
    pub fn location(&self) -> String {
        format!(
            "{}:{}",
            self.code().files[self.obj.file].display,
            self.obj.line
        )
    }
}

/// The state in the catalog of a recorded object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Catalog {
    /// As installed.
    Intact,
    /// As installed, but its catalog row moved (grants, dump and restore): record the new oid and version.
    Refresh { oid: Oid, version: String },
    /// Changed outside Strata (`ALTER`, `CREATE OR REPLACE` by hand).
    Drifted { oid: Oid },
    /// Dropped outside Strata.
    Missing,
}

/// Why a statement must be run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reason {
    /// Nothing recorded with this source.
    New,
    /// Its source changed since it was installed.
    Changed,
    /// Installed from this source, but changed outside Strata since.
    Drifted,
    /// Installed from this source, but dropped outside Strata since.
    Missing,
    /// Dropped during this deploy because something it depends on had to be re-created.
    Dependency,
}

/// What to do with a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NodePlan {
    /// Installed from the same source and intact: leave it alone (index into the stored rows).
    Keep(usize),
    /// Run it.
    Install(Reason),
}

pub(crate) struct Assessment<'p> {
    pub nodes: Vec<Node<'p>>,
    pub stored: Vec<StoredObject>,
    pub catalog: Vec<Catalog>,
    pub plan: Vec<NodePlan>,
    /// Stored rows no statement keeps: the previous versions of changed statements, and removed objects.
    pub stale: Vec<usize>,
}

/// Compare the code of `packages` with the records and the catalog. `table_known`: `strata.managed_object` is
/// known to exist (saves checking).
pub(crate) async fn assess<'p>(
    client: &tokio_postgres::Client,
    packages: &'p [Package],
    table_known: bool,
) -> Result<Assessment<'p>> {
    let mut nodes = Vec::new();
    for (pkg, package) in packages.iter().enumerate() {
        if package.name() == STRATA_PACKAGE {
            continue;
        }
        for obj in &package.code().objects {
            nodes.push(Node { pkg, package, obj });
        }
    }
    let names: Vec<String> = packages
        .iter()
        .filter(|p| p.name() != STRATA_PACKAGE)
        .map(|p| p.name().to_string())
        .collect();
    let stored = catalog::stored(client, &names, table_known).await?;
    let catalog = catalog_state(client, &stored).await?;

    let mut by_hash: HashMap<(&str, &str), usize> = HashMap::new();
    for (i, s) in stored.iter().enumerate() {
        by_hash.insert((s.package.as_str(), s.source_hash.as_str()), i);
    }
    // (package, kind, name) of recorded objects, to tell "changed" from "new".
    let mut plan = Vec::with_capacity(nodes.len());
    let mut kept = vec![false; stored.len()];
    for n in &nodes {
        let found = by_hash
            .get(&(n.package.name(), n.obj.hash.as_str()))
            .copied()
            .filter(|&i| {
                stored[i].kind == n.obj.kind
                    || (stored[i].kind.is_routine() && n.obj.kind.is_routine())
            });
        let p = match found {
            Some(i) if !kept[i] => match &catalog[i] {
                Catalog::Intact | Catalog::Refresh { .. } => {
                    kept[i] = true;
                    NodePlan::Keep(i)
                }
                Catalog::Drifted { .. } => NodePlan::Install(Reason::Drifted),
                // Nothing left to drop or replace: the statement simply installs it again (same identity).
                Catalog::Missing => {
                    kept[i] = true;
                    NodePlan::Install(Reason::Missing)
                }
            },
            _ => {
                let same_name = stored
                    .iter()
                    .any(|s| s.package == n.package.name() && names_match(s, n.obj, n.schema()));
                NodePlan::Install(if same_name {
                    Reason::Changed
                } else {
                    Reason::New
                })
            }
        };
        plan.push(p);
    }
    let stale = (0..stored.len()).filter(|&i| !kept[i]).collect();
    Ok(Assessment {
        nodes,
        stored,
        catalog,
        plan,
        stale,
    })
}

/// Whether a recorded identity is (a version of) the object a statement declares: same kind and name, any
/// arguments.
pub(crate) fn names_match(s: &StoredObject, obj: &CodeObject, schema: &str) -> bool {
    let same_kind = s.kind == obj.kind || (s.kind.is_routine() && obj.kind.is_routine());
    if !same_kind {
        return false;
    }
    let ident = |t: &str| postgres_protocol::escape::escape_identifier(t);
    let quote_ident = |t: &str| {
        // quote_ident() leaves plain lower-case identifiers bare; escape_identifier always quotes.
        if t.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
            && t.chars().next().is_some_and(|c| !c.is_ascii_digit())
        {
            t.to_string()
        } else {
            ident(t)
        }
    };
    let name = obj.name.or_schema(schema);
    let qualified = format!(
        "{}.{}",
        quote_ident(name.schema.as_deref().unwrap_or(schema)),
        quote_ident(&name.name)
    );
    match obj.kind {
        CodeKind::Function | CodeKind::Procedure | CodeKind::Aggregate => s
            .identity
            .strip_prefix(&qualified)
            .is_some_and(|rest| rest.starts_with('(')),
        // Operators are not quoted: `schema.=?(integer, integer)`.
        CodeKind::Operator => s
            .identity
            .strip_prefix(&format!(
                "{}.{}",
                quote_ident(name.schema.as_deref().unwrap_or(schema)),
                name.name
            ))
            .is_some_and(|rest| rest.starts_with('(')),
        CodeKind::Cast => s.identity == format!("({})", obj.name.name),
        CodeKind::View => s.identity == qualified,
        CodeKind::Trigger => {
            let table = obj
                .table
                .clone()
                .unwrap_or_else(|| obj.name.clone())
                .or_schema(schema);
            s.identity
                == format!(
                    "{} ON {}.{}",
                    quote_ident(&obj.name.name),
                    quote_ident(table.schema.as_deref().unwrap_or(schema)),
                    quote_ident(&table.name)
                )
        }
        CodeKind::Comment => false,
    }
}

/// Check every recorded object against the catalog: cheap `xmin` comparison first, definition hashes only for
/// what moved, identities only for what vanished.
async fn catalog_state(
    client: &tokio_postgres::Client,
    stored: &[StoredObject],
) -> Result<Vec<Catalog>> {
    if stored.is_empty() {
        return Ok(Vec::new());
    }
    let keys: Vec<(CodeKind, Oid, i32, CatalogClass)> = stored
        .iter()
        .map(|s| {
            (
                s.kind,
                s.oid,
                s.sub_id,
                CatalogClass::of_recorded(s.kind, &s.identity),
            )
        })
        .collect();
    let now = catalog::versions(client, &keys).await?;
    let mut out = vec![Catalog::Intact; stored.len()];
    let mut moved = Vec::new();
    let mut lost = Vec::new();
    for (i, s) in stored.iter().enumerate() {
        let key = (s.kind, s.oid, s.sub_id);
        let current = catalog::lookup(&now, key.0, key.1, key.2);
        match current {
            Some(v) if *v == s.version => {}
            Some(_) if s.kind == CodeKind::Comment => out[i] = Catalog::Drifted { oid: s.oid },
            Some(_) => moved.push(i),
            None => lost.push(i),
        }
    }
    // Objects whose oid vanished may exist under a new oid (dump and restore): find them by identity.
    let lost_rows: Vec<&StoredObject> = lost.iter().map(|&i| &stored[i]).collect();
    let found = catalog::resolve_identities(client, &lost_rows).await?;
    let mut relocated: HashMap<usize, (Oid, i32)> = HashMap::new();
    for &i in &lost {
        let s = &stored[i];
        match found.get(&(s.kind, s.identity.clone())) {
            Some(&(oid, sub)) => {
                relocated.insert(i, (oid, sub));
                moved.push(i);
            }
            None => out[i] = Catalog::Missing,
        }
    }
    if moved.is_empty() {
        return Ok(out);
    }
    let probe: Vec<(CodeKind, Oid, i32, CatalogClass)> = moved
        .iter()
        .map(|&i| {
            let s = &stored[i];
            let (oid, sub) = relocated.get(&i).copied().unwrap_or((s.oid, s.sub_id));
            (
                s.kind,
                oid,
                sub,
                CatalogClass::of_recorded(s.kind, &s.identity),
            )
        })
        .collect();
    let hashes = catalog::hashes(client, &probe).await?;
    let versions = catalog::versions(client, &probe).await?;
    for (k, &i) in moved.iter().enumerate() {
        let (kind, oid, sub, _) = probe[k];
        let s = &stored[i];
        let hash = catalog::lookup(&hashes, kind, oid, sub);
        out[i] = match hash {
            Some(h) if *h == s.hash => Catalog::Refresh {
                oid,
                version: catalog::lookup(&versions, kind, oid, sub)
                    .cloned()
                    .unwrap_or_default(),
            },
            Some(_) => Catalog::Drifted { oid },
            None => Catalog::Missing,
        };
    }
    Ok(out)
}
