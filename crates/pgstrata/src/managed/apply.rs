//! Bringing managed code up to date inside the deploy transaction (see the module docs of
//! [`crate::managed`] for the rules).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use miette::NamedSource;
use pgstrata_sql::LineIndex;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::ErrorPosition;

use super::assess::{Assessment, Catalog, Node, NodePlan, Reason, assess};
use super::catalog::{self, CatalogObject, Oid};
use super::graph::{Graph, Item};
use super::source::CodeKind;
use super::{CodeAction, CodeChange, CodeReport};
use crate::error::{Error, Result, SourceError, SqlError, widen};
use crate::package::Package;
use crate::roles;
use crate::session::{Session, ms};

/// Passes over the install order before giving up on statements that keep failing on undefined
/// names (each pass must install something).
const MAX_PASSES: usize = 10;

/// SQLSTATEs of `CREATE OR REPLACE` refusing to change an object in place (return type, parameter
/// names or defaults, view columns, routine kind): the old object must be dropped first (the psql script of
/// `strata export` stops instead).
pub(crate) const REPLACE_REFUSED: &[&str] = &["42P13", "42P16", "42804", "42809"];

/// Statements of new objects sent in one round trip.
const BATCH: usize = 100;

/// SQLSTATEs of a statement naming something that does not exist (yet).
const UNDEFINED: &[&str] = &["42883", "42P01", "42704", "3F000"];

/// Upsert rows of `strata.managed_object` from arrays: package, kind, identity, object_oid, sub_id,
/// catalog_version, catalog_hash (empty: keep the recorded one), source_hash, file, line, seq ($1..$11) and the run
/// ($12). Also run by the psql script of `strata export`, so both record objects the same way.
pub(crate) const RECORD_SQL: &str = "INSERT INTO strata.managed_object AS m
                            (package, kind, identity, object_oid, sub_id, catalog_version, catalog_hash, source_hash,
                             file, line, seq, run_id)
                     SELECT u.*, $12::bigint
                       FROM unnest($1::text[], $2::text[], $3::text[], $4::oid[], $5::int4[], $6::text[], $7::text[],
                                   $8::text[], $9::text[], $10::int4[], $11::int4[]) AS u
                     ON CONFLICT (package, kind, identity) DO UPDATE
                        SET object_oid = EXCLUDED.object_oid, sub_id = EXCLUDED.sub_id,
                            catalog_version = EXCLUDED.catalog_version,
                            catalog_hash = CASE WHEN EXCLUDED.catalog_hash = '' THEN m.catalog_hash
                                                ELSE EXCLUDED.catalog_hash END,
                            source_hash = EXCLUDED.source_hash, file = EXCLUDED.file, line = EXCLUDED.line,
                            seq = EXCLUDED.seq,
                            installed_at = CASE WHEN EXCLUDED.catalog_hash = '' THEN m.installed_at
                                                ELSE clock_timestamp() END,
                            run_id = CASE WHEN EXCLUDED.catalog_hash = '' THEN m.run_id ELSE EXCLUDED.run_id END";

/// Delete rows of `strata.managed_object` given as arrays of package, kind and identity.
pub(crate) const FORGET_SQL: &str = "DELETE FROM strata.managed_object m
                      USING unnest($1::text[], $2::text[], $3::text[]) AS d(package, kind, identity)
                      WHERE (m.package, m.kind, m.identity) = (d.package, d.kind, d.identity)";

/// The statement removing a comment recorded as `<target> …` ($1: `function`, `procedure`, `view`, `column` or
/// `trigger`) on object $2 (column $3), built by the catalog; no row when the object is gone. Also run by the psql
/// script of `strata export`.
pub(crate) const CLEAR_COMMENT_SQL: &str =
    "SELECT format('COMMENT ON %s %s IS NULL', upper($1::text), p.oid::regprocedure)
       FROM pg_catalog.pg_proc p WHERE $1::text IN ('function', 'procedure') AND p.oid = $2::oid
     UNION ALL
     SELECT format('COMMENT ON VIEW %s IS NULL', c.oid::regclass)
       FROM pg_catalog.pg_class c WHERE $1::text = 'view' AND c.oid = $2::oid
     UNION ALL
     SELECT format('COMMENT ON COLUMN %s.%I IS NULL', a.attrelid::regclass, a.attname)
       FROM pg_catalog.pg_attribute a WHERE $1::text = 'column' AND a.attrelid = $2::oid AND a.attnum = $3::int4
     UNION ALL
     SELECT format('COMMENT ON TRIGGER %I ON %s IS NULL', t.tgname, t.tgrelid::regclass)
       FROM pg_catalog.pg_trigger t WHERE $1::text = 'trigger' AND t.oid = $2::oid";

/// The catalog table an object lives in, which with its oid identifies it.
fn class(kind: CodeKind) -> &'static str {
    match kind {
        CodeKind::Function | CodeKind::Procedure => "pg_proc",
        CodeKind::View => "pg_class",
        CodeKind::Trigger => "pg_trigger",
        CodeKind::Comment => "pg_description",
    }
}

/// Who a catalog object belongs to, among what this deploy manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Node(usize),
    Stale(usize),
}

struct Installed {
    cat: CatalogObject,
}

enum Attempt {
    Done,
    /// Failed on an undefined name: retry in a later pass.
    Deferred(Box<Error>),
}

struct Installer<'p, 's, 'a> {
    session: &'s mut Session<'a>,
    packages: &'p [Package],
    a: Assessment<'p>,
    graph: Graph,
    order: Vec<usize>,
    flagged: Vec<bool>,
    reasons: Vec<Reason>,
    installed: Vec<Option<Installed>>,
    /// Stale rows replaced in place or dropped (they get no row any more).
    stale_done: Vec<bool>,
    /// (catalog class, oid) → what it is.
    owners: HashMap<(&'static str, Oid), Owner>,
    /// The package whose role and search_path are active (None: the login's).
    entered: Option<usize>,
    /// Names (class, schema, name, table) that existed in the catalog when the install began.
    existing: HashSet<NameKey>,
    /// How many statements declare each name.
    declared: HashMap<NameKey, usize>,
    /// Statements installed without probes, whose identity is still to be read from the catalog (in bulk).
    pending: Vec<usize>,
    /// Changes with the moment they happened (statements resolved in bulk report when they ran).
    changes: Vec<(usize, CodeChange)>,
    /// Moments: incremented for every statement run and object dropped.
    clock: usize,
    /// When each statement last ran.
    ran_at: Vec<usize>,
    report: CodeReport,
}

/// (catalog class, schema, name, table for triggers).
type NameKey = (&'static str, String, String, String);

/// Install what changed in the managed code of `packages` (Strata's own package is skipped).
pub(crate) async fn deploy(
    session: &mut Session<'_>,
    packages: &[Package],
    run: &mut crate::history::RunRow,
) -> Result<CodeReport> {
    let started = Instant::now();
    let a = assess(
        session.db.client(),
        packages,
        session.managed_table_exists(),
    )
    .await?;
    tracing::debug!("managed code: assessed in {:.1} ms", ms(started.elapsed()));
    if a.nodes.is_empty() && a.stored.is_empty() {
        return Ok(CodeReport::default());
    }
    let n = a.nodes.len();
    let mut flagged = vec![false; n];
    let mut reasons = vec![Reason::New; n];
    for (i, p) in a.plan.iter().enumerate() {
        if let NodePlan::Install(r) = p {
            flagged[i] = true;
            reasons[i] = *r;
        }
    }
    let mut owners = HashMap::new();
    for (i, p) in a.plan.iter().enumerate() {
        if let NodePlan::Keep(s) = p
            && a.nodes[i].obj.kind != CodeKind::Comment
        {
            let oid = match &a.catalog[*s] {
                Catalog::Refresh { oid, .. } => *oid,
                _ => a.stored[*s].oid,
            };
            owners.insert((class(a.nodes[i].obj.kind), oid), Owner::Node(i));
        }
    }
    for &s in &a.stale {
        let row = &a.stored[s];
        if row.kind == CodeKind::Comment {
            continue;
        }
        let oid = match &a.catalog[s] {
            Catalog::Refresh { oid, .. } | Catalog::Drifted { oid } => *oid,
            Catalog::Intact => row.oid,
            Catalog::Missing => continue,
        };
        owners.insert((class(row.kind), oid), Owner::Stale(s));
    }
    // The graph (which parses routine bodies) is only needed when something is to be installed or dropped.
    let nothing_to_do = !flagged.iter().any(|f| *f) && a.stale.is_empty();
    let (graph, order) = if nothing_to_do {
        (Graph::default(), (0..n).collect())
    } else {
        parse_bodies(&a.nodes);
        let graph = build_graph(&a.nodes, packages);
        let order = graph
            .order()
            .map_err(|chain| cycle_error(&a.nodes, &chain))?;
        (graph, order)
    };
    let stale_count = a.stored.len();
    let mut installer = Installer {
        session,
        packages,
        graph,
        order,
        flagged,
        reasons,
        installed: (0..n).map(|_| None).collect(),
        stale_done: vec![false; stale_count],
        owners,
        entered: None,
        existing: HashSet::new(),
        declared: HashMap::new(),
        pending: Vec::new(),
        changes: Vec::new(),
        clock: 0,
        ran_at: vec![0; n],
        report: CodeReport::default(),
        a,
    };
    if nothing_to_do {
        installer.record(run).await?;
        installer.report.unchanged = installer.a.nodes.len();
        installer.report.duration_ms = ms(started.elapsed());
        return Ok(installer.report);
    }
    installer.check_references().await?;
    tracing::debug!(
        "managed code: graph and references checked at {:.1} ms",
        ms(started.elapsed())
    );
    installer.run().await?;
    let mut changes = std::mem::take(&mut installer.changes);
    changes.sort_by_key(|(at, _)| *at);
    installer.report.changes = changes.into_iter().map(|(_, c)| c).collect();
    tracing::debug!("managed code: installed at {:.1} ms", ms(started.elapsed()));
    installer.record(run).await?;
    tracing::debug!("managed code: recorded at {:.1} ms", ms(started.elapsed()));
    installer.leave().await?;
    installer.report.unchanged = installer
        .a
        .plan
        .iter()
        .enumerate()
        .filter(|(i, p)| matches!(p, NodePlan::Keep(_)) && installer.installed[*i].is_none())
        .count();
    installer.report.duration_ms = ms(started.elapsed());
    Ok(installer.report)
}

impl<'p> Installer<'p, '_, '_> {
    fn client(&self) -> &tokio_postgres::Client {
        self.session.db.client()
    }

    /// Checked references to objects of the deployed packages' schemas that no statement defines must exist in
    /// the database already.
    async fn check_references(&mut self) -> Result<()> {
        let mut wanted: Vec<(&str, String, String)> = Vec::new();
        let mut which = Vec::new();
        for u in &self.graph.unresolved {
            if !self.flagged[u.item] {
                continue;
            }
            let node = &self.a.nodes[u.item];
            let r = &node.obj.references(node.code())[u.reference];
            let kind = match r.kind {
                pgstrata_sql::objects::ReferenceKind::Function => "function",
                pgstrata_sql::objects::ReferenceKind::Relation => "relation",
                pgstrata_sql::objects::ReferenceKind::Type => "type",
                pgstrata_sql::objects::ReferenceKind::Any => "any",
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

    async fn run(&mut self) -> Result<()> {
        // Objects that left the source entirely go first: nothing new can depend on them.
        let removed: Vec<usize> = self
            .a
            .stale
            .iter()
            .copied()
            .filter(|&s| {
                let row = &self.a.stored[s];
                // A comment's target is known only once it runs: stale comments are cleared after the install
                // pass, unless a statement re-set them.
                row.kind != CodeKind::Comment
                    && !self.a.nodes.iter().any(|n| {
                        n.package.name() == row.package
                            && super::assess::names_match(row, n.obj, n.schema())
                    })
            })
            .collect();
        self.drop_stale(&removed).await?;
        self.load_existing().await?;

        let mut leftovers_dropped = false;
        for pass in 1..=MAX_PASSES {
            let mut progress = false;
            let mut deferred: Vec<(usize, Box<Error>)> = Vec::new();
            // Consecutive statements creating new names go in batches; the others one by one, in order.
            let mut batch: Vec<usize> = Vec::new();
            for k in 0..self.order.len() {
                let i = self.order[k];
                if !self.flagged[i] {
                    continue;
                }
                let same_package = batch
                    .first()
                    .is_none_or(|&b| self.a.nodes[b].pkg == self.a.nodes[i].pkg);
                if !self.is_new_name(i) || !same_package || batch.len() >= BATCH {
                    self.run_batch(&mut batch, &mut progress, &mut deferred)
                        .await?;
                }
                if self.is_new_name(i) {
                    batch.push(i);
                    continue;
                }
                self.run_one(i, &mut progress, &mut deferred).await?;
            }
            self.run_batch(&mut batch, &mut progress, &mut deferred)
                .await?;
            self.resolve_pending().await?;
            if deferred.is_empty() {
                if !leftovers_dropped {
                    leftovers_dropped = true;
                    let left: Vec<usize> = self
                        .a
                        .stale
                        .iter()
                        .copied()
                        .filter(|&s| !self.stale_done[s])
                        .collect();
                    self.drop_stale(&left).await?;
                }
                if !self.flagged.iter().any(|f| *f) {
                    return Ok(());
                }
                continue;
            }
            if !progress || pass == MAX_PASSES {
                let (_, e) = deferred.swap_remove(0);
                return Err(*e);
            }
            for (i, e) in &deferred {
                self.report.retried.push(format!(
                    "{} ({}) was retried after: {}",
                    self.a.nodes[*i].obj.label(),
                    self.a.nodes[*i].location(),
                    e
                ));
            }
        }
        Ok(())
    }

    async fn run_one(
        &mut self,
        i: usize,
        progress: &mut bool,
        deferred: &mut Vec<(usize, Box<Error>)>,
    ) -> Result<()> {
        match self.install(i).await? {
            Attempt::Done => {
                *progress = true;
                self.flagged[i] = false;
            }
            Attempt::Deferred(e) => deferred.push((i, e)),
        }
        Ok(())
    }

    /// Create objects with new names in one round trip and one savepoint; if any statement fails, roll the
    /// batch back and run its statements one by one (to tell which failed, and why).
    async fn run_batch(
        &mut self,
        batch: &mut Vec<usize>,
        progress: &mut bool,
        deferred: &mut Vec<(usize, Box<Error>)>,
    ) -> Result<()> {
        let items = std::mem::take(batch);
        match items.as_slice() {
            [] => return Ok(()),
            [one] => return self.run_one(*one, progress, deferred).await,
            _ => {}
        }
        self.enter(self.a.nodes[items[0]].pkg).await?;
        let mut sql = String::from("SAVEPOINT strata_batch;\n");
        for &i in &items {
            sql.push_str(&self.a.nodes[i].obj.sql);
            sql.push_str("\n;\n");
        }
        sql.push_str("RELEASE SAVEPOINT strata_batch");
        let result = self.client().batch_execute(&sql).await;
        if let Err(e) = &result {
            tracing::debug!(
                "a batch of {} statements failed ({e}); running them one by one",
                items.len()
            );
        }
        if result.is_ok() {
            for &i in &items {
                self.clock += 1;
                self.ran_at[i] = self.clock;
                self.flagged[i] = false;
                self.pending.push(i);
            }
            *progress = true;
            return Ok(());
        }
        self.client()
            .batch_execute("ROLLBACK TO SAVEPOINT strata_batch; RELEASE SAVEPOINT strata_batch")
            .await
            .map_err(Error::db("rolling back a batch of managed code"))?;
        for i in items {
            self.run_one(i, progress, deferred).await?;
        }
        Ok(())
    }

    /// Switch to a package's role and search_path (only when it is not the active one).
    async fn enter(&mut self, pkg: usize) -> Result<()> {
        if self.entered == Some(pkg) {
            return Ok(());
        }
        let package = &self.packages[pkg];
        self.session
            .enter_package(package.schema(), package.extensions())
            .await?;
        let role = roles::role_of(package);
        self.client()
            .batch_execute(&roles::set_role_sql(role.as_deref(), true))
            .await
            .map_err(Error::db(format!(
                "switching to the role of {}",
                package.name()
            )))?;
        self.entered = Some(pkg);
        Ok(())
    }

    /// Back to the login's role (drops and bookkeeping run as the login).
    async fn leave(&mut self) -> Result<()> {
        if self.entered.take().is_some() {
            self.client()
                .batch_execute("RESET ROLE")
                .await
                .map_err(Error::db("resetting the role"))?;
        }
        Ok(())
    }

    /// The name a statement declares, as a key of [`Installer::existing`] (None for comments).
    fn name_key(&self, i: usize) -> Option<NameKey> {
        let node = &self.a.nodes[i];
        let obj = node.obj;
        if obj.kind == CodeKind::Comment {
            return None;
        }
        let schema = node.schema();
        Some(match (&obj.kind, &obj.table) {
            (CodeKind::Trigger, Some(t)) => (
                "pg_trigger",
                t.schema.clone().unwrap_or_else(|| schema.to_string()),
                obj.name.name.clone(),
                t.name.clone(),
            ),
            _ => (
                class(obj.kind),
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
    async fn load_existing(&mut self) -> Result<()> {
        let schemas: Vec<&str> = self.packages.iter().map(|p| p.schema()).collect();
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
            let class: &str = r.get(0);
            let class: &'static str = match class {
                "pg_proc" => "pg_proc",
                "pg_class" => "pg_class",
                _ => "pg_trigger",
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
    fn is_new_name(&self, i: usize) -> bool {
        self.name_key(i).is_some_and(|key| {
            !self.existing.contains(&key) && self.declared.get(&key).copied() == Some(1)
        })
    }

    async fn install(&mut self, i: usize) -> Result<Attempt> {
        if self.is_new_name(i) {
            return match self.try_create(i).await? {
                Ok(()) => Ok(Attempt::Done),
                Err(failure) if UNDEFINED.contains(&failure.sqlstate.as_str()) => {
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
                if REPLACE_REFUSED.contains(&code.as_str()) && node.obj.kind != CodeKind::Comment {
                    // The previous version cannot be replaced in place: drop it (and what depends on it), retry.
                    let candidates: Vec<usize> = failure
                        .before
                        .iter()
                        .filter_map(|c| match self.owners.get(&(class(node.obj.kind), c.oid)) {
                            Some(Owner::Stale(s)) if !self.stale_done[*s] => Some(*s),
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
                if UNDEFINED.contains(&code.as_str()) {
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
        self.ran_at[i] = self.clock;
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
    async fn resolve_pending(&mut self) -> Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let pending = std::mem::take(&mut self.pending);
        let keys: Vec<NameKey> = pending.iter().filter_map(|&i| self.name_key(i)).collect();
        let classes: Vec<&str> = keys.iter().map(|k| k.0).collect();
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
            let class: &str = r.get(0);
            let class: &'static str = match class {
                "pg_proc" => "pg_proc",
                "pg_class" => "pg_class",
                _ => "pg_trigger",
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
        self.ran_at[i] = self.clock;
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
            CodeKind::Function | CodeKind::Procedure => after
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
        if cat.schema != node.schema() {
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
        let key = (class(node.obj.kind), cat.oid);
        let comment_key = (cat.identity.clone(), cat.sub_id);
        // Two statements installing the same object (same signature): the later one silently replaced the earlier.
        let duplicate = (0..self.installed.len()).find(|&j| {
            j != i
                && self.installed[j].as_ref().is_some_and(|other| {
                    let other_node = &self.a.nodes[j];
                    if node.obj.kind == CodeKind::Comment {
                        other_node.obj.kind == CodeKind::Comment
                            && (other.cat.identity.clone(), other.cat.sub_id) == comment_key
                    } else {
                        other_node.obj.kind != CodeKind::Comment
                            && (class(other_node.obj.kind), other.cat.oid) == key
                    }
                })
        });
        let kept_duplicate = node.obj.kind != CodeKind::Comment
            && matches!(self.owners.get(&key), Some(Owner::Node(j)) if *j != i && self.installed[*j].is_none());
        if let Some(j) = duplicate.or(if kept_duplicate {
            match self.owners.get(&key) {
                Some(Owner::Node(j)) => Some(*j),
                _ => None,
            }
        } else {
            None
        }) {
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
        let reason = self.reasons[i];
        let replaced_stale = if node.obj.kind == CodeKind::Comment {
            self.a.stale.iter().copied().find(|&s| {
                !self.stale_done[s]
                    && self.a.stored[s].kind == CodeKind::Comment
                    && self.a.stored[s].identity == cat.identity
                    && self.a.stored[s].package == node.package.name()
            })
        } else {
            match self.owners.get(&key) {
                Some(Owner::Stale(s)) if !self.stale_done[*s] => Some(*s),
                _ => None,
            }
        };
        let action = if let Some(s) = replaced_stale {
            self.stale_done[s] = true;
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
        if node.obj.kind != CodeKind::Comment {
            self.owners.insert(key, Owner::Node(i));
        }
        self.changes.push((
            self.ran_at[i],
            CodeChange {
                package: node.package.name().to_string(),
                kind: node.obj.kind,
                identity: cat.identity.clone(),
                action,
                file: Some(node.code().files[node.obj.file].display.clone()),
                line: Some(node.obj.line),
            },
        ));
        self.installed[i] = Some(Installed { cat });
        Ok(())
    }

    /// Drop recorded objects that are stale, with everything managed that depends on them (to be re-created from
    /// the source). Anything unmanaged that depends on them stops the deploy with a message naming it.
    async fn drop_stale(&mut self, stale: &[usize]) -> Result<()> {
        // New objects may depend on what is dropped: know them first.
        self.resolve_pending().await?;
        let mut roots: Vec<(String, Oid)> = Vec::new();
        let mut comments = Vec::new();
        for &s in stale {
            if self.stale_done[s] {
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
                    self.stale_done[s] = true;
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
            roots.push((class(row.kind).to_string(), oid));
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
        let mut members: Vec<(String, Oid)> = roots.clone();
        let mut edges: Vec<((String, Oid), (String, Oid))> = Vec::new();
        let mut frontier = roots;
        while !frontier.is_empty() {
            let deps = catalog::dependents(self.client(), &frontier).await?;
            let mut next = Vec::new();
            for d in deps {
                let key = (d.class.clone(), d.oid);
                let owner = catalog::managed_kind(&d.class, &d.subkind)
                    .and_then(|k| self.owners.get(&(class(k), d.oid)).copied());
                if owner.is_none() {
                    return Err(self.unmanaged_dependent(&d, &members));
                }
                edges.push((key.clone(), d.on.clone()));
                if !members.contains(&key) {
                    members.push(key.clone());
                    next.push(key);
                }
            }
            frontier = next;
        }
        // Dependents first.
        let mut dropped: HashSet<(String, Oid)> = HashSet::new();
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
                self.drop_one(m).await?;
                dropped.insert(m.clone());
            }
            if dropped.len() == before {
                // A dependency loop in pg_depend (cannot happen between droppable objects); let PostgreSQL decide.
                for m in members.clone() {
                    if !dropped.contains(&m) {
                        self.drop_one(&m).await?;
                        dropped.insert(m);
                    }
                }
            }
        }
        Ok(())
    }

    async fn drop_one(&mut self, (cls, oid): &(String, Oid)) -> Result<()> {
        let Some(sql) = catalog::drop_sql(self.client(), cls, *oid).await? else {
            return Ok(());
        };
        self.client()
            .batch_execute(&sql)
            .await
            .map_err(Error::db(format!("{sql} (dropping a managed object)")))?;
        let key_class: &'static str = match cls.as_str() {
            "pg_proc" => "pg_proc",
            "pg_class" => "pg_class",
            _ => "pg_trigger",
        };
        match self.owners.remove(&(key_class, *oid)) {
            Some(Owner::Stale(s)) => {
                self.stale_done[s] = true;
                // Its successor (same name) will be created fresh: comments on it must be set again.
                let successors: Vec<usize> = (0..self.a.nodes.len())
                    .filter(|&j| {
                        let n = &self.a.nodes[j];
                        n.package.name() == self.a.stored[s].package
                            && super::assess::names_match(&self.a.stored[s], n.obj, n.schema())
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
                if let Some(prev) = self.installed[i].take() {
                    let kind = self.a.nodes[i].obj.kind;
                    self.changes
                        .retain(|(_, c)| !(c.identity == prev.cat.identity && c.kind == kind));
                }
                self.flag(i, Reason::Dependency);
            }
            None => {}
        }
        Ok(())
    }

    /// Record a change happening now.
    fn note(&mut self, change: CodeChange) {
        self.clock += 1;
        self.changes.push((self.clock, change));
    }

    /// Mark a statement to be (re)installed, with the comments attached to it.
    fn flag(&mut self, i: usize, reason: Reason) {
        self.flagged[i] = true;
        if self.reasons[i] != Reason::Drifted && self.reasons[i] != Reason::Missing {
            self.reasons[i] = reason;
        }
        self.flag_comments_of(i);
    }

    /// Comments on statement `i` are lost when its object is dropped: run them again.
    fn flag_comments_of(&mut self, i: usize) {
        for c in 0..self.a.nodes.len() {
            if self.a.nodes[c].obj.kind == CodeKind::Comment
                && self.graph.hard[c].contains(&i)
                && !self.flagged[c]
            {
                self.flagged[c] = true;
                if self.installed[c].take().is_none() && self.reasons[c] == Reason::New {
                    self.reasons[c] = Reason::Dependency;
                }
            }
        }
    }

    /// A comment removed from the source: `COMMENT ON … IS NULL`, if its object still exists (found by oid; the
    /// statement is built by the catalog).
    async fn clear_comment(&mut self, s: usize) -> Result<()> {
        self.stale_done[s] = true;
        let row = &self.a.stored[s];
        let oid = match &self.a.catalog[s] {
            Catalog::Refresh { oid, .. } | Catalog::Drifted { oid } => *oid,
            _ => row.oid,
        };
        let target = row.identity.split(' ').next().unwrap_or_default();
        let clear: Option<String> = self
            .client()
            .query_opt(CLEAR_COMMENT_SQL, &[&target, &oid, &row.sub_id])
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

    fn unmanaged_dependent(&self, d: &catalog::Dependent, members: &[(String, Oid)]) -> Error {
        // Name the managed object that has to go, and its source.
        let root = members
            .iter()
            .find(|m| m.0 == d.on.0 && m.1 == d.on.1)
            .or(members.first());
        let (label, location) = match root.and_then(|(c, o)| {
            let class: &'static str = match c.as_str() {
                "pg_proc" => "pg_proc",
                "pg_class" => "pg_class",
                _ => "pg_trigger",
            };
            self.owners.get(&(class, *o)).copied()
        }) {
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

    /// Write what was installed to `strata.managed_object`, refresh moved rows, delete dropped ones.
    async fn record(&mut self, run: &mut crate::history::RunRow) -> Result<()> {
        self.leave().await?;
        let client = self.session.db.client();
        // Rows to write: installed objects, and kept ones whose catalog row moved (or that we changed, e.g. a
        // trigger created on a view).
        let mut rows: Vec<(usize, CatalogObject)> = Vec::new();
        for (i, inst) in self.installed.iter().enumerate() {
            if let Some(inst) = inst {
                rows.push((i, inst.cat.clone()));
            }
        }
        let touched = !rows.is_empty() || self.stale_done.iter().any(|d| *d);
        for (i, p) in self.a.plan.iter().enumerate() {
            if self.installed[i].is_some() {
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
            .filter(|&s| self.stale_done[s])
            .collect();
        if rows.is_empty() && deleted.is_empty() {
            return Ok(());
        }
        let keys: Vec<(CodeKind, Oid, i32, &str)> = rows
            .iter()
            .map(|(i, c)| {
                let kind = self.a.nodes[*i].obj.kind;
                (kind, c.oid, c.sub_id, catalog::class_of(kind, &c.identity))
            })
            .collect();
        let t = Instant::now();
        let versions = catalog::versions(client, &keys).await?;
        tracing::debug!("record: versions in {:.1} ms", ms(t.elapsed()));
        let installed_keys: Vec<(CodeKind, Oid, i32, &str)> = rows
            .iter()
            .zip(&keys)
            .filter(|((i, _), _)| self.installed[*i].is_some())
            .map(|(_, k)| *k)
            .collect();
        let t = Instant::now();
        let hashes = catalog::hashes(client, &installed_keys).await?;
        tracing::debug!("record: hashes in {:.1} ms", ms(t.elapsed()));
        let mut order_of = vec![0i32; self.a.nodes.len()];
        for (pos, &i) in self.order.iter().enumerate() {
            order_of[i] = i32::try_from(pos).unwrap_or(i32::MAX);
        }
        let (
            mut pkg,
            mut kind,
            mut identity,
            mut oid,
            mut sub,
            mut version,
            mut hash,
            mut source,
            mut file,
            mut line,
            mut seq,
        ) = (
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
            vec![],
        );
        for ((i, c), key) in rows.iter().zip(&keys) {
            let node = &self.a.nodes[*i];
            let current_version = catalog::lookup(&versions, key.0, key.1, key.2)
                .cloned()
                .unwrap_or_else(|| c.version.clone());
            let current_hash = if self.installed[*i].is_some() {
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
            if self.installed[*i].is_none()
                && let NodePlan::Keep(s) = self.a.plan[*i]
                && self.a.stored[s].version == current_version
                && self.a.stored[s].oid == c.oid
            {
                continue;
            }
            pkg.push(node.package.name().to_string());
            kind.push(node.obj.kind.as_str().to_string());
            identity.push(c.identity.clone());
            oid.push(c.oid);
            sub.push(c.sub_id);
            version.push(current_version);
            hash.push(current_hash);
            source.push(node.obj.hash.clone());
            file.push(node.code().files[node.obj.file].path.clone());
            line.push(i32::try_from(node.obj.line).unwrap_or(i32::MAX));
            seq.push(order_of[*i]);
        }
        if deleted.is_empty() && pkg.is_empty() {
            return Ok(());
        }
        // The rows point at the run: its row is written now, if this is the run's first record.
        let run_id = run.ensure(client).await?;
        // Deleted rows first (an object replaced under a new identity, a removed one), then the upsert.
        let del_pkg: Vec<&str> = deleted
            .iter()
            .map(|&s| self.a.stored[s].package.as_str())
            .collect();
        let del_kind: Vec<&str> = deleted
            .iter()
            .map(|&s| self.a.stored[s].kind.as_str())
            .collect();
        let del_identity: Vec<&str> = deleted
            .iter()
            .map(|&s| self.a.stored[s].identity.as_str())
            .collect();
        if !deleted.is_empty() {
            client
                .execute(FORGET_SQL, &[&del_pkg, &del_kind, &del_identity])
                .await
                .map_err(Error::db("deleting rows of strata.managed_object"))?;
        }
        if !pkg.is_empty() {
            client
                .execute(
                    RECORD_SQL,
                    &[
                        &pkg, &kind, &identity, &oid, &sub, &version, &hash, &source, &file, &line,
                        &seq, &run_id,
                    ],
                )
                .await
                .map_err(Error::db(
                    "recording managed objects in strata.managed_object",
                ))?;
        }
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
pub(crate) fn statement_error(
    node: Node<'_>,
    prefix_chars: usize,
    e: &tokio_postgres::Error,
) -> SqlError {
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

/// Map an error of a statement sent as `sent` (the file's `range`, maybe with text inserted at `inserted`), after
/// `prefix_chars` characters of other statements.
#[allow(clippy::too_many_arguments)]
pub(crate) fn object_error(
    display: &str,
    text: &str,
    range: std::ops::Range<usize>,
    sent: &str,
    inserted: Option<(usize, usize)>,
    prefix_chars: usize,
    e: &tokio_postgres::Error,
    what: Option<String>,
) -> SqlError {
    let stmt_text = &text[range.clone()];
    let (offset, sqlstate, message, detail, hint, context) = match e.as_db_error() {
        Some(db) => {
            let in_sent = match db.position() {
                Some(ErrorPosition::Original(p)) => (*p as usize)
                    .checked_sub(prefix_chars)
                    .filter(|p| *p > 0)
                    .map(|p| pgstrata_sql::char_position_to_byte(sent, p)),
                _ => crate::exec::statement_error_offset(sent, db),
            };
            let offset = in_sent.map(|o| match inserted {
                Some((at, len)) if o >= at + len => o - len,
                Some((at, _)) if o > at => at,
                _ => o,
            });
            (
                offset.map(|o| range.start + o.min(stmt_text.len())),
                db.code().code().to_string(),
                db.message().to_string(),
                db.detail().map(str::to_string),
                // SQL only a newer server accepts: say which version, rather than "no such function".
                pgstrata_sql::versions::newer_server_hint(
                    stmt_text,
                    offset.map(|o| o.min(stmt_text.len())),
                    db.code().code(),
                    db.message(),
                )
                .or_else(|| db.hint().map(str::to_string))
                .or_else(|| crate::exec::own_hint(db)),
                db.where_().map(str::to_string),
            )
        }
        None => (
            None,
            "08006".to_string(),
            format!("connection failure: {e}"),
            None,
            None,
            None,
        ),
    };
    let span_range = match offset {
        Some(o) => o..o,
        None => range.start..range.start + stmt_text.find('\n').unwrap_or(stmt_text.len()),
    };
    let lc = LineIndex::new(text).line_col(span_range.start);
    SqlError {
        origin: display.to_string(),
        line: lc.line,
        col: lc.col,
        sqlstate,
        message,
        detail,
        hint,
        context,
        migration: what,
        rolled_back: true,
        span: widen(text, span_range),
        file: NamedSource::new(display, text.to_string()).with_language("SQL"),
        committed_statements: Vec::new(),
        committed_migrations: Vec::new(),
    }
}

/// The dependency graph of the managed statements `nodes` of a deploy of `packages`.
pub(crate) fn build_graph(nodes: &[Node<'_>], packages: &[Package]) -> Graph {
    let items: Vec<Item<'_>> = nodes
        .iter()
        .map(|n| Item {
            kind: n.obj.kind,
            name: &n.obj.name,
            table: n.obj.table.as_ref(),
            comment_on: n
                .obj
                .comment
                .as_ref()
                .map(|c| CodeKind::of(c.target.object_kind())),
            schema: n.schema(),
            references: n.obj.references(n.code()),
        })
        .collect();
    let schemas: Vec<&str> = packages.iter().map(|p| p.schema()).collect();
    Graph::build(&items, &schemas)
}

/// Parse the routine bodies of every statement (for their references), on all cores: with thousands of routines
/// it is the bulk of the client's work in a deploy.
fn parse_bodies(nodes: &[Node<'_>]) {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .clamp(1, 8);
    let chunk = nodes.len().div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for part in nodes.chunks(chunk) {
            scope.spawn(move || {
                for n in part {
                    n.obj.references(n.code());
                }
            });
        }
    });
}

fn source_error(node: Node<'_>, message: String, help: &str) -> Error {
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

pub(crate) fn cycle_error(nodes: &[Node<'_>], chain: &[usize]) -> Error {
    let first = nodes[chain[0]];
    let names: Vec<String> = chain
        .iter()
        .map(|&i| format!("{} ({})", nodes[i].obj.label(), nodes[i].location()))
        .collect();
    let file = &first.code().files[first.obj.file];
    let text = first.obj.source(first.code());
    SourceError::new(
        "strata::cycle",
        &file.display,
        file.text.to_string(),
        Some(first.obj.range.start..first.obj.range.start + text.find('\n').unwrap_or(text.len())),
        format!(
            "managed objects depend on each other in a cycle: {}",
            names.join(" → ")
        ),
    )
    .with_label("part of the cycle")
    .with_help(
        "PostgreSQL needs each of these before the next can be created; break the cycle (a PL/pgSQL body may \
         refer to objects created after it, a view or a LANGUAGE sql body may not)",
    )
    .into()
}
