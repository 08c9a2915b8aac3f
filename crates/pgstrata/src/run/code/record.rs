//! Recording what the install did in `strata.managed_object` (through the history).

use std::time::Instant;

use super::Installer;
use crate::db::catalog::{self, CatalogClass, CatalogObject, Oid};
use crate::db::history::{self, ManagedRows, RunRow};
use crate::decide::assess::{Catalog, NodePlan};
use crate::error::Result;
use crate::report::code::CodeKind;
use crate::report::ms;

impl<'p> Installer<'p, '_, '_> {
    /// Write what was installed to `strata.managed_object`, refresh moved rows, delete dropped ones.
    pub(super) async fn record(&mut self, run: &mut RunRow) -> Result<()> {
        self.leave().await?;
        let client = self.session.client();
        // Rows to write: installed objects, and kept ones whose catalog row moved (or that we changed, e.g. a
        // trigger created on a view).
        let mut rows: Vec<(usize, CatalogObject)> = Vec::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if let Some(cat) = &n.installed {
                rows.push((i, cat.clone()));
            }
        }
        let touched = !rows.is_empty() || self.stored_done.iter().any(|d| *d);
        for (i, p) in self.a.plan.iter().enumerate() {
            if self.nodes[i].installed.is_some() {
                continue;
            }
            if let NodePlan::Keep(s) = p {
                let row = &self.a.stored[*s];
                let refresh = match &self.a.catalog[*s] {
                    Catalog::Refresh { oid, version } => Some((*oid, version.clone())),
                    _ if touched => Some((row.oid, row.version.clone())),
                    _ => None,
                };
                if let Some((oid, version)) = refresh {
                    rows.push((
                        i,
                        CatalogObject {
                            oid,
                            sub_id: row.sub_id,
                            version,
                            identity: row.identity.clone(),
                            schema: self.a.nodes[i].schema().to_string(),
                        },
                    ));
                }
            }
        }
        let deleted: Vec<usize> = (0..self.a.stored.len())
            .filter(|&s| self.stored_done[s])
            .collect();
        if rows.is_empty() && deleted.is_empty() {
            return Ok(());
        }
        let keys: Vec<(CodeKind, Oid, i32, CatalogClass)> = rows
            .iter()
            .map(|(i, c)| {
                let kind = self.a.nodes[*i].obj.kind;
                (
                    kind,
                    c.oid,
                    c.sub_id,
                    CatalogClass::of_recorded(kind, &c.identity),
                )
            })
            .collect();
        let t = Instant::now();
        let versions = catalog::versions(client, &keys).await?;
        tracing::debug!("record: versions in {:.1} ms", ms(t.elapsed()));
        let installed_keys: Vec<(CodeKind, Oid, i32, CatalogClass)> = rows
            .iter()
            .zip(&keys)
            .filter(|((i, _), _)| self.nodes[*i].installed.is_some())
            .map(|(_, k)| *k)
            .collect();
        let t = Instant::now();
        let hashes = catalog::hashes(client, &installed_keys).await?;
        tracing::debug!("record: hashes in {:.1} ms", ms(t.elapsed()));
        let mut order_of = vec![0i32; self.a.nodes.len()];
        for (pos, &i) in self.order.iter().enumerate() {
            order_of[i] = i32::try_from(pos).unwrap_or(i32::MAX);
        }
        let mut write = ManagedRows::default();
        for ((i, c), key) in rows.iter().zip(&keys) {
            let node = &self.a.nodes[*i];
            let current_version = catalog::lookup(&versions, key.0, key.1, key.2)
                .cloned()
                .unwrap_or_else(|| c.version.clone());
            let current_hash = if self.nodes[*i].installed.is_some() {
                catalog::lookup(&hashes, key.0, key.1, key.2)
                    .cloned()
                    .unwrap_or_default()
            } else {
                match self.a.plan[*i] {
                    NodePlan::Keep(s) => self.a.stored[s].hash.clone(),
                    NodePlan::Install(_) => String::new(),
                }
            };
            // Kept rows whose version did not move need no write.
            if self.nodes[*i].installed.is_none()
                && let NodePlan::Keep(s) = self.a.plan[*i]
                && self.a.stored[s].version == current_version
                && self.a.stored[s].oid == c.oid
            {
                continue;
            }
            write.package.push(node.package.name().to_string());
            write.kind.push(node.obj.kind.as_str());
            write.identity.push(c.identity.clone());
            write.oid.push(c.oid);
            write.sub_id.push(c.sub_id);
            write.version.push(current_version);
            write.hash.push(current_hash);
            write.source_hash.push(node.obj.hash.clone());
            write
                .file
                .push(node.code().files[node.obj.file].path.clone());
            write
                .line
                .push(i32::try_from(node.obj.line).unwrap_or(i32::MAX));
            write.seq.push(order_of[*i]);
        }
        if deleted.is_empty() && write.is_empty() {
            return Ok(());
        }
        // The rows point at the run: its row is written now, if this is the run's first record.
        let run_id = run.ensure(client).await?;
        // Deleted rows first (an object replaced under a new identity, a removed one), then the upsert.
        let forget: Vec<(&str, &str, &str)> = deleted
            .iter()
            .map(|&s| {
                let row = &self.a.stored[s];
                (
                    row.package.as_str(),
                    row.kind.as_str(),
                    row.identity.as_str(),
                )
            })
            .collect();
        history::record_managed(client, &forget, &write, run_id).await
    }
}
