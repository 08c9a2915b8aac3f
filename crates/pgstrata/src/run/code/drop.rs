//! Dropping managed objects that left the source or must be re-created: with every managed object that depends on
//! them (re-created from their source afterwards); an unmanaged dependent stops the deploy.

use std::collections::HashSet;

use super::{Installer, Owner};
use crate::db::catalog::{self, CatalogClass, Oid};
use crate::decide::assess::{Catalog, Reason};
use crate::error::{Error, Result};
use crate::report::code::{CodeAction, CodeChange, CodeKind};

impl<'p> Installer<'p, '_, '_> {
    /// Drop recorded objects that are stale, with everything managed that depends on them (to be re-created from
    /// the source). Anything unmanaged that depends on them stops the deploy with a message naming it.
    pub(super) async fn drop_stale(&mut self, stale: &[usize]) -> Result<()> {
        // New objects may depend on what is dropped: know them first.
        self.resolve_pending().await?;
        let mut roots: Vec<(CatalogClass, Oid)> = Vec::new();
        let mut comments = Vec::new();
        for &s in stale {
            if self.stored_done[s] {
                continue;
            }
            let row = &self.a.stored[s];
            if row.kind == CodeKind::Comment {
                comments.push(s);
                continue;
            }
            let oid = match &self.a.catalog[s] {
                Catalog::Refresh { oid, .. } | Catalog::Drifted { oid } => *oid,
                Catalog::Intact => row.oid,
                Catalog::Missing => {
                    self.stored_done[s] = true;
                    self.note(CodeChange {
                        package: row.package.clone(),
                        kind: row.kind,
                        identity: row.identity.clone(),
                        action: CodeAction::Forgotten,
                        file: Some(row.file.clone()),
                        line: u32::try_from(row.line).ok(),
                    });
                    continue;
                }
            };
            if let Some(class) = CatalogClass::of(row.kind) {
                roots.push((class, oid));
            }
        }
        self.leave().await?;
        // Descriptions of dependents and DROP statements come from the catalog, fully qualified only when the
        // search_path does not reach them: empty it while dropping.
        self.client()
            .batch_execute("SELECT pg_catalog.set_config('search_path', 'pg_catalog', true)")
            .await
            .map_err(Error::db("setting search_path"))?;
        self.session.forget_search_path();
        for s in comments {
            self.clear_comment(s).await?;
        }
        if roots.is_empty() {
            return Ok(());
        }
        // Closure over pg_depend, level by level.
        let mut members: Vec<(CatalogClass, Oid)> = roots.clone();
        let mut edges: Vec<((CatalogClass, Oid), (CatalogClass, Oid))> = Vec::new();
        let mut frontier = roots;
        while !frontier.is_empty() {
            let deps = catalog::dependents(self.client(), &frontier).await?;
            let mut next = Vec::new();
            for d in deps {
                let owned = d.class.and_then(|class| {
                    catalog::managed_kind(class, &d.subkind)?;
                    self.owners.get(&(class, d.oid)).map(|_| (class, d.oid))
                });
                let Some(key) = owned else {
                    return Err(self.unmanaged_dependent(&d, &members));
                };
                edges.push((key, d.on));
                if !members.contains(&key) {
                    members.push(key);
                    next.push(key);
                }
            }
            frontier = next;
        }
        // Dependents first.
        let mut dropped: HashSet<(CatalogClass, Oid)> = HashSet::new();
        while dropped.len() < members.len() {
            let before = dropped.len();
            for m in &members {
                if dropped.contains(m) {
                    continue;
                }
                let blocked = edges
                    .iter()
                    .any(|(dep, on)| on == m && dep != m && !dropped.contains(dep));
                if blocked {
                    continue;
                }
                self.drop_one(*m).await?;
                dropped.insert(*m);
            }
            if dropped.len() == before {
                // A dependency loop in pg_depend (cannot happen between droppable objects); let PostgreSQL decide.
                for m in members.clone() {
                    if !dropped.contains(&m) {
                        self.drop_one(m).await?;
                        dropped.insert(m);
                    }
                }
            }
        }
        Ok(())
    }

    async fn drop_one(&mut self, (class, oid): (CatalogClass, Oid)) -> Result<()> {
        let Some(sql) = catalog::drop_sql(self.client(), class, oid).await? else {
            return Ok(());
        };
        self.client()
            .batch_execute(&sql)
            .await
            .map_err(Error::db(format!("{sql} (dropping a managed object)")))?;
        match self.owners.remove(&(class, oid)) {
            Some(Owner::Stale(s)) => {
                self.stored_done[s] = true;
                // Its successor (same name) will be created fresh: comments on it must be set again.
                let successors: Vec<usize> = (0..self.a.nodes.len())
                    .filter(|&j| {
                        let n = &self.a.nodes[j];
                        n.package.name() == self.a.stored[s].package
                            && crate::decide::assess::names_match(
                                &self.a.stored[s],
                                n.obj,
                                n.schema(),
                            )
                    })
                    .collect();
                for j in successors {
                    self.flag_comments_of(j);
                }
                let row = &self.a.stored[s];
                self.note(CodeChange {
                    package: row.package.clone(),
                    kind: row.kind,
                    identity: row.identity.clone(),
                    action: CodeAction::Dropped,
                    file: Some(row.file.clone()),
                    line: u32::try_from(row.line).ok(),
                });
            }
            Some(Owner::Node(i)) => {
                // Re-created from its source later in the order; so are the comments on it.
                if let Some(prev) = self.nodes[i].installed.take() {
                    let kind = self.a.nodes[i].obj.kind;
                    self.changes
                        .retain(|(_, c)| !(c.identity == prev.identity && c.kind == kind));
                }
                self.flag(i, Reason::Dependency);
            }
            None => {}
        }
        Ok(())
    }

    /// A comment removed from the source: `COMMENT ON … IS NULL`, if its object still exists (found by oid; the
    /// statement is built by the catalog).
    async fn clear_comment(&mut self, s: usize) -> Result<()> {
        self.stored_done[s] = true;
        let row = &self.a.stored[s];
        let oid = match &self.a.catalog[s] {
            Catalog::Refresh { oid, .. } | Catalog::Drifted { oid } => *oid,
            _ => row.oid,
        };
        let target = row.identity.split(' ').next().unwrap_or_default();
        let clear: Option<String> = self
            .client()
            .query_opt(catalog::CLEAR_COMMENT_SQL, &[&target, &oid, &row.sub_id])
            .await
            .map_err(Error::db(format!("finding the {}", row.identity)))?
            .map(|r| r.get(0));
        // A comment whose object is gone went with it.
        if let Some(sql) = clear {
            self.client()
                .batch_execute(&sql)
                .await
                .map_err(Error::db(format!("removing the {}", row.identity)))?;
        }
        self.note(CodeChange {
            package: row.package.clone(),
            kind: CodeKind::Comment,
            identity: row.identity.clone(),
            action: CodeAction::Dropped,
            file: Some(row.file.clone()),
            line: u32::try_from(row.line).ok(),
        });
        Ok(())
    }

    fn unmanaged_dependent(
        &self,
        d: &catalog::Dependent,
        members: &[(CatalogClass, Oid)],
    ) -> Error {
        // Name the managed object that has to go, and its source.
        let root = members
            .iter()
            .find(|m| m.0 == d.on.0 && m.1 == d.on.1)
            .or(members.first());
        let (label, location) = match root.and_then(|key| self.owners.get(key).copied()) {
            Some(Owner::Stale(s)) => {
                let row = &self.a.stored[s];
                (
                    format!("{} {}", row.kind, row.identity),
                    format!("{}:{}", row.file, row.line),
                )
            }
            Some(Owner::Node(i)) => (self.a.nodes[i].obj.label(), self.a.nodes[i].location()),
            None => ("a managed object".to_string(), String::new()),
        };
        Error::refused(
            format!(
                "{label} ({location}) must be dropped and re-created (its signature, return type or columns changed, \
                 or it was removed), but {} depends on it",
                d.what
            ),
            "a managed object used by table DDL (a column default, a check constraint, an index, a policy) or by \
             objects Strata does not manage can only change in place: keep its signature, return type and columns, \
             or change the dependent object in a migration first (migrations run before managed code)",
        )
    }
}
