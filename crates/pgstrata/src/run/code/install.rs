//! Installing statements of managed code: new names in batches, the others one by one between catalog probes, and
//! what each one created or replaced.

use std::collections::HashMap;

use tokio_postgres::SimpleQueryMessage;

use super::{Attempt, Installer, NameKey, Owner, is_undefined};
use crate::db::catalog::{self, CatalogClass, CatalogObject};
use crate::db::exec::object_error;
use crate::decide::assess::{Catalog, Node, Reason};
use crate::error::{Error, Result, SourceError, SqlError};
use crate::report::code::{CodeAction, CodeChange, CodeKind};

impl<'p> Installer<'p, '_, '_> {
    /// Checked references to objects of the deployed packages' schemas that no statement defines must exist in
    /// the database already.
    pub(super) async fn check_references(&mut self) -> Result<()> {
        let mut wanted: Vec<(&str, String, String)> = Vec::new();
        let mut which = Vec::new();
        for u in &self.graph.unresolved {
            if !self.nodes[u.item].flagged {
                continue;
            }
            let node = &self.a.nodes[u.item];
            let r = &node.obj.references(node.code())[u.reference];
            let kind = match r.kind {
                pgstrata_sql::objects::ReferenceKind::Function => "function",
                pgstrata_sql::objects::ReferenceKind::Relation => "relation",
                pgstrata_sql::objects::ReferenceKind::Type => "type",
                pgstrata_sql::objects::ReferenceKind::Any => "any",
                pgstrata_sql::objects::ReferenceKind::Operator => "operator",
            };
            let name = r.name.or_schema(node.schema());
            wanted.push((
                kind,
                name.schema.clone().unwrap_or_default(),
                name.name.clone(),
            ));
            which.push(u.clone());
        }
        if wanted.is_empty() {
            return Ok(());
        }
        let found = catalog::existing(self.client(), &wanted).await?;
        for (k, u) in which.iter().enumerate() {
            let key = (
                wanted[k].0.to_string(),
                wanted[k].1.clone(),
                wanted[k].2.clone(),
            );
            if found.contains(&key) {
                continue;
            }
            let node = &self.a.nodes[u.item];
            let r = &node.obj.references(node.code())[u.reference];
            let mut chain = vec![format!("{} ({})", node.obj.label(), node.location())];
            for d in self.graph.dependents_chain(u.item) {
                let dn = &self.a.nodes[d];
                chain.insert(0, format!("{} ({})", dn.obj.label(), dn.location()));
            }
            chain.push(format!(
                "{} {}",
                wanted[k].0,
                r.name.or_schema(node.schema())
            ));
            let file = &node.code().files[node.obj.file];
            let at = node.obj.range.start + r.range.start;
            return Err(SourceError::new(
                "strata::missing_reference",
                &file.display,
                file.text.to_string(),
                Some(at..node.obj.range.start + r.range.end),
                format!(
                    "{} {} does not exist: it is not defined by the managed code being deployed, nor in the database",
                    wanted[k].0,
                    r.name.or_schema(node.schema())
                ),
            )
            .with_label("referenced here")
            .with_help(format!(
                "dependency chain: {}. Define it in managed code, create it in a migration, or fix the name",
                chain.join(" → ")
            ))
            .into());
        }
        Ok(())
    }

    /// The name a statement declares, as a key of [`Installer::existing`] (None for comments).
    pub(super) fn name_key(&self, i: usize) -> Option<NameKey> {
        let node = &self.a.nodes[i];
        let obj = node.obj;
        // Operators and casts always run between probes (they are few, and have no name of their own in
        // `RESOLVE_NAMES`).
        if matches!(obj.kind, CodeKind::Operator | CodeKind::Cast) {
            return None;
        }
        let class = CatalogClass::of(obj.kind)?;
        let schema = node.schema();
        Some(match (&obj.kind, &obj.table) {
            (CodeKind::Trigger, Some(t)) => (
                class,
                t.schema.clone().unwrap_or_else(|| schema.to_string()),
                obj.name.name.clone(),
                t.name.clone(),
            ),
            _ => (
                class,
                obj.name
                    .schema
                    .clone()
                    .unwrap_or_else(|| schema.to_string()),
                obj.name.name.clone(),
                String::new(),
            ),
        })
    }

    /// Read which names exist, so statements creating something new can skip the probes.
    pub(super) async fn load_existing(&mut self) -> Result<()> {
        let schemas: Vec<&str> = self
            .packages
            .iter()
            .flat_map(|p| p.schemas().iter().map(String::as_str))
            .collect();
        let rows = self
            .client()
            .query(
                "SELECT 'pg_proc', n.nspname::text, p.proname::text, ''
                   FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
                  WHERE n.nspname = ANY($1)
                 UNION ALL
                 SELECT 'pg_class', n.nspname::text, c.relname::text, ''
                   FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = ANY($1)
                 UNION ALL
                 SELECT 'pg_trigger', n.nspname::text, t.tgname::text, c.relname::text
                   FROM pg_catalog.pg_trigger t JOIN pg_catalog.pg_class c ON c.oid = t.tgrelid
                   JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = ANY($1)",
                &[&schemas],
            )
            .await
            .map_err(Error::db("listing the objects of the packages' schemas"))?;
        for r in rows {
            let Some(class) = CatalogClass::parse(r.get(0)) else {
                continue;
            };
            self.existing.insert((class, r.get(1), r.get(2), r.get(3)));
        }
        for i in 0..self.a.nodes.len() {
            if let Some(key) = self.name_key(i) {
                *self.declared.entry(key).or_default() += 1;
            }
        }
        Ok(())
    }

    /// A statement creating an object whose name nothing else has (in the catalog or the source) cannot replace
    /// anything: it needs no probes, and its identity can be read later with the others'.
    pub(super) fn is_new_name(&self, i: usize) -> bool {
        self.name_key(i).is_some_and(|key| {
            !self.existing.contains(&key) && self.declared.get(&key).copied() == Some(1)
        })
    }

    pub(super) async fn install(&mut self, i: usize) -> Result<Attempt> {
        if self.is_new_name(i) {
            return match self.try_create(i).await? {
                Ok(()) => Ok(Attempt::Done),
                Err(failure) if is_undefined(&failure.sqlstate) => {
                    Ok(Attempt::Deferred(Box::new(failure.error.into())))
                }
                Err(failure) => Err(failure.error.into()),
            };
        }
        match self.try_install(i).await? {
            Ok(()) => Ok(Attempt::Done),
            Err(failure) => {
                let code = failure.sqlstate.clone();
                let node = self.a.nodes[i];
                let class = CatalogClass::of(node.obj.kind);
                if let Some(class) = class.filter(|_| catalog::replace_refused(&code)) {
                    // The previous version cannot be replaced in place: drop it (and what depends on it), retry.
                    let candidates: Vec<usize> = failure
                        .before
                        .iter()
                        .filter_map(|c| match self.owners.get(&(class, c.oid)) {
                            Some(Owner::Stale(s)) if !self.stored_done[*s] => Some(*s),
                            _ => None,
                        })
                        .collect();
                    if candidates.is_empty() {
                        let mut e = failure.error;
                        e.hint = Some(format!(
                            "{}the object in the way is not managed by these packages (created by a migration or by \
                             hand?): drop it in a migration",
                            e.hint.map(|h| format!("{h}; ")).unwrap_or_default()
                        ));
                        return Err(e.into());
                    }
                    self.drop_stale(&candidates).await?;
                    return match self.try_install(i).await? {
                        Ok(()) => Ok(Attempt::Done),
                        Err(f) => Err(f.error.into()),
                    };
                }
                if is_undefined(&code) {
                    return Ok(Attempt::Deferred(Box::new(failure.error.into())));
                }
                Err(failure.error.into())
            }
        }
    }

    /// Create an object with a new name: the statement in a savepoint, nothing else.
    async fn try_create(&mut self, i: usize) -> Result<std::result::Result<(), Box<Failure>>> {
        let node = self.a.nodes[i];
        self.clock += 1;
        self.nodes[i].ran_at = self.clock;
        self.enter(node.pkg).await?;
        let prefix = "SAVEPOINT strata_code;\n";
        let sql = format!("{prefix}{}\n;\nRELEASE SAVEPOINT strata_code", node.obj.sql);
        if let Err(e) = self.client().batch_execute(&sql).await {
            let error = statement_error(node, prefix.chars().count(), &e);
            let rolled_back = self
                .client()
                .batch_execute("ROLLBACK TO SAVEPOINT strata_code; RELEASE SAVEPOINT strata_code")
                .await;
            if rolled_back.is_err() {
                // The transaction is lost: the statement's own error is what matters.
                return Err(error.into());
            }
            return Ok(Err(Box::new(Failure {
                sqlstate: error.sqlstate.clone(),
                error,
                before: Vec::new(),
            })));
        }
        self.pending.push(i);
        Ok(Ok(()))
    }

    /// Read the identities of the objects created without probes, in one query per catalog.
    pub(super) async fn resolve_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let keys: Vec<NameKey> = pending.iter().filter_map(|&i| self.name_key(i)).collect();
        let classes: Vec<&str> = keys.iter().map(|k| k.0.as_str()).collect();
        let schemas: Vec<&str> = keys.iter().map(|k| k.1.as_str()).collect();
        let names: Vec<&str> = keys.iter().map(|k| k.2.as_str()).collect();
        let tables: Vec<&str> = keys.iter().map(|k| k.3.as_str()).collect();
        let rows = self
            .client()
            .query(
                catalog::RESOLVE_NAMES,
                &[&classes, &schemas, &names, &tables],
            )
            .await
            .map_err(Error::db("reading the identities of new managed objects"))?;
        let mut found: HashMap<NameKey, CatalogObject> = HashMap::new();
        for r in rows {
            let Some(class) = CatalogClass::parse(r.get(0)) else {
                continue;
            };
            found.insert(
                (class, r.get(1), r.get(2), r.get(3)),
                CatalogObject {
                    oid: r.get(4),
                    sub_id: 0,
                    version: r.get(5),
                    identity: r.get(6),
                    schema: r.get(1),
                },
            );
        }
        for (i, key) in pending.into_iter().zip(keys) {
            let Some(cat) = found.remove(&key) else {
                let node = self.a.nodes[i];
                return Err(source_error(
                    node,
                    format!(
                        "{} ran, but the catalog shows no {} {} in schema `{}`",
                        node.obj.label(),
                        node.obj.kind,
                        key.2,
                        key.1
                    ),
                    "managed objects must be created in the package's schema",
                ));
            };
            self.installed_object(i, cat, &[])?;
        }
        Ok(())
    }

    /// Run one statement in a savepoint, between two probes of the catalog that tell what it created or replaced.
    /// `Ok(Err(_))`: the statement failed and was rolled back to the savepoint.
    async fn try_install(&mut self, i: usize) -> Result<std::result::Result<(), Box<Failure>>> {
        let node = self.a.nodes[i];
        self.clock += 1;
        self.nodes[i].ran_at = self.clock;
        self.enter(node.pkg).await?;
        let probe = catalog::probe_sql(node.obj, node.schema());
        let prefix = format!("{probe};\nSAVEPOINT strata_code;\n");
        let sql = format!(
            "{prefix}{}\n;\nRELEASE SAVEPOINT strata_code;\n{probe}",
            node.obj.sql
        );
        let messages = match self.client().simple_query(&sql).await {
            Ok(m) => m,
            Err(e) => {
                let error = statement_error(node, prefix.chars().count(), &e);
                // The probe before the savepoint cannot fail on its own; if it did, the transaction is lost.
                let rolled_back = self
                    .client()
                    .batch_execute(
                        "ROLLBACK TO SAVEPOINT strata_code; RELEASE SAVEPOINT strata_code",
                    )
                    .await;
                if rolled_back.is_err() {
                    // The transaction is lost: the statement's own error is what matters.
                    return Err(error.into());
                }
                let before = self.probe(node).await?;
                return Ok(Err(Box::new(Failure {
                    sqlstate: error.sqlstate.clone(),
                    error,
                    before,
                })));
            }
        };
        let mut results: Vec<Vec<tokio_postgres::SimpleQueryRow>> = vec![Vec::new()];
        for m in messages {
            match m {
                SimpleQueryMessage::Row(r) => {
                    if let Some(last) = results.last_mut() {
                        last.push(r);
                    }
                }
                SimpleQueryMessage::CommandComplete(_) => results.push(Vec::new()),
                _ => {}
            }
        }
        let before = catalog::probe_rows(results.first().map(Vec::as_slice).unwrap_or(&[]));
        // probe, SAVEPOINT, statement, RELEASE, probe: the last probe's rows are in the fifth result.
        let after = catalog::probe_rows(results.get(4).map(Vec::as_slice).unwrap_or(&[]));
        let cat = match node.obj.kind {
            kind if kind.overloaded() => after
                .iter()
                .find(|a| {
                    !before
                        .iter()
                        .any(|b| b.oid == a.oid && b.version == a.version)
                })
                .cloned(),
            _ => after.first().cloned(),
        };
        let Some(cat) = cat else {
            return Err(Error::usage(
                format!(
                    "{} ({}) ran, but the catalog shows no object it created",
                    node.obj.label(),
                    node.location()
                ),
                Some(
                    "is the statement shadowed by an object of another kind with the same name?"
                        .into(),
                ),
            ));
        };
        self.installed_object(i, cat, &before)?;
        Ok(Ok(()))
    }

    async fn probe(&self, node: Node<'_>) -> Result<Vec<CatalogObject>> {
        let rows = self
            .client()
            .simple_query(&catalog::probe_sql(node.obj, node.schema()))
            .await
            .map_err(Error::db("probing the catalog"))?;
        let rows: Vec<_> = rows
            .into_iter()
            .filter_map(|m| match m {
                SimpleQueryMessage::Row(r) => Some(r),
                _ => None,
            })
            .collect();
        Ok(catalog::probe_rows(&rows))
    }

    /// Book-keeping after a statement ran: schema check, duplicate check, what it replaced.
    fn installed_object(
        &mut self,
        i: usize,
        cat: CatalogObject,
        before: &[CatalogObject],
    ) -> Result<()> {
        let node = self.a.nodes[i];
        // A cast belongs to no schema (PostgreSQL lets only the owner of one of its types create it).
        if node.obj.kind != CodeKind::Cast && !node.package.schemas().contains(&cat.schema) {
            return Err(source_error(
                node,
                format!(
                    "{} was created in schema `{}`, not in the package's schema `{}`",
                    cat.identity,
                    cat.schema,
                    node.schema()
                ),
                "qualify the name with the package's schema",
            ));
        }
        // Comments have no catalog row of their own (None); other objects are (class, oid).
        let key = CatalogClass::of(node.obj.kind).map(|class| (class, cat.oid));
        let owner = key.and_then(|k| self.owners.get(&k).copied());
        // Two statements installing the same object (same signature): the later one silently replaced the earlier.
        let duplicate = (0..self.nodes.len()).find(|&j| {
            j != i
                && self.nodes[j].installed.as_ref().is_some_and(|other| {
                    let other_kind = self.a.nodes[j].obj.kind;
                    match key {
                        None => {
                            other_kind == CodeKind::Comment
                                && other.identity == cat.identity
                                && other.sub_id == cat.sub_id
                        }
                        Some(key) => {
                            CatalogClass::of(other_kind) == Some(key.0) && other.oid == key.1
                        }
                    }
                })
        });
        // A statement kept as installed whose object this one just replaced.
        let kept_duplicate = match owner {
            Some(Owner::Node(j)) if j != i && self.nodes[j].installed.is_none() => Some(j),
            _ => None,
        };
        if let Some(j) = duplicate.or(kept_duplicate) {
            return Err(source_error(
                node,
                format!(
                    "{} is defined twice: here and at {}",
                    cat.identity,
                    self.a.nodes[j].location()
                ),
                "keep one definition (two statements with the same signature replace each other)",
            ));
        }
        let reason = self.nodes[i].reason;
        let replaced_stale = if node.obj.kind == CodeKind::Comment {
            self.a.stale.iter().copied().find(|&s| {
                !self.stored_done[s]
                    && self.a.stored[s].kind == CodeKind::Comment
                    && self.a.stored[s].identity == cat.identity
                    && self.a.stored[s].package == node.package.name()
            })
        } else {
            match owner {
                Some(Owner::Stale(s)) if !self.stored_done[s] => Some(s),
                _ => None,
            }
        };
        let action = if let Some(s) = replaced_stale {
            self.stored_done[s] = true;
            match self.a.catalog[s] {
                Catalog::Drifted { .. } => CodeAction::Restored,
                _ => CodeAction::Replaced,
            }
        } else {
            match reason {
                Reason::Drifted => CodeAction::Restored,
                Reason::Missing => CodeAction::Restored,
                Reason::Dependency => CodeAction::Recreated,
                _ if before.iter().any(|b| b.oid == cat.oid)
                    && node.obj.kind != CodeKind::Comment =>
                {
                    CodeAction::Adopted
                }
                Reason::Changed => CodeAction::Recreated,
                Reason::New => CodeAction::Created,
            }
        };
        if let Some(key) = key {
            self.owners.insert(key, Owner::Node(i));
        }
        self.changes.push((
            self.nodes[i].ran_at,
            CodeChange {
                package: node.package.name().to_string(),
                kind: node.obj.kind,
                identity: cat.identity.clone(),
                action,
                file: Some(node.code().files[node.obj.file].display.clone()),
                line: Some(node.obj.line),
            },
        ));
        self.nodes[i].installed = Some(cat);
        Ok(())
    }
}

/// A statement that failed and was rolled back to its savepoint.
struct Failure {
    sqlstate: String,
    error: SqlError,
    /// What the catalog held under the statement's name before it ran.
    before: Vec<CatalogObject>,
}

/// Map a failed managed statement's error to its file, line and column. `prefix_chars` is the number of characters
/// sent before the statement in the same query string.
fn statement_error(node: Node<'_>, prefix_chars: usize, e: &tokio_postgres::Error) -> SqlError {
    let code = node.code();
    let file = &code.files[node.obj.file];
    object_error(
        &file.display,
        &file.text,
        node.obj.range.clone(),
        &node.obj.sql,
        node.obj.inserted,
        prefix_chars,
        e,
        Some(format!(
            "{} (managed code of {})",
            node.obj.label(),
            node.package.name()
        )),
    )
}

pub(super) fn source_error(node: Node<'_>, message: String, help: &str) -> Error {
    let file = &node.code().files[node.obj.file];
    let text = node.obj.source(node.code());
    SourceError::new(
        "strata::managed",
        &file.display,
        file.text.to_string(),
        Some(node.obj.range.start..node.obj.range.start + text.find('\n').unwrap_or(text.len())),
        message,
    )
    .with_help(help)
    .into()
}
