//! Bringing managed code up to date inside the deploy transaction (see the module docs of
//! [`crate::decide::code`] for the rules).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use crate::db::catalog::{CatalogClass, CatalogObject, Oid};
use crate::db::history::RunRow;
use crate::db::roles;
use crate::db::session::Session;
use crate::decide::assess::{Assessment, Catalog, NodePlan, Reason, assess};
use crate::decide::graph::{Graph, build_graph, cycle_error, parse_bodies};
use crate::error::{Error, Result};
use crate::report::code::{CodeChange, CodeKind, CodeReport};
use crate::report::ms;
use crate::source::package::Package;

mod drop;
mod install;
mod record;

use tokio_postgres::error::SqlState;

/// Passes over the install order before giving up on statements that keep failing on undefined
/// names (each pass must install something).
const MAX_PASSES: usize = 10;

/// Statements of new objects sent in one round trip.
const BATCH: usize = 100;

/// Who a catalog object belongs to, among what this deploy manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Node(usize),
    Stale(usize),
}

/// What the install knows and did about one statement of managed code (indexed like the assessment's nodes).
#[derive(Debug, Clone)]
struct NodeState {
    /// To be (re)installed in this deploy.
    flagged: bool,
    /// Why.
    reason: Reason,
    /// What the catalog showed it created or replaced, once it ran.
    installed: Option<CatalogObject>,
    /// When it last ran (moments of [`Installer::clock`]): changes are reported in that order.
    ran_at: usize,
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
    /// Per statement of managed code.
    nodes: Vec<NodeState>,
    /// Per stored row: replaced in place or dropped (it gets no row any more).
    stored_done: Vec<bool>,
    /// (catalog class, oid) → what it is.
    owners: HashMap<(CatalogClass, Oid), Owner>,
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
    report: CodeReport,
}

/// (catalog class, schema, name, table for triggers).
type NameKey = (CatalogClass, String, String, String);

/// Install what changed in the managed code of `packages` (Strata's own package is skipped).
pub(crate) async fn deploy(
    session: &mut Session<'_>,
    packages: &[Package],
    run: &mut RunRow,
) -> Result<CodeReport> {
    let started = Instant::now();
    let a = assess(session.client(), packages, session.managed_table_exists()).await?;
    tracing::debug!("managed code: assessed in {:.1} ms", ms(started.elapsed()));
    if a.nodes.is_empty() && a.stored.is_empty() {
        return Ok(CodeReport::default());
    }
    let n = a.nodes.len();
    let nodes: Vec<NodeState> = a
        .plan
        .iter()
        .map(|p| NodeState {
            flagged: matches!(p, NodePlan::Install(_)),
            reason: match p {
                NodePlan::Install(r) => *r,
                NodePlan::Keep(_) => Reason::New,
            },
            installed: None,
            ran_at: 0,
        })
        .collect();
    let mut owners = HashMap::new();
    for (i, p) in a.plan.iter().enumerate() {
        if let NodePlan::Keep(s) = p
            && let Some(class) = CatalogClass::of(a.nodes[i].obj.kind)
        {
            let oid = match &a.catalog[*s] {
                Catalog::Refresh { oid, .. } => *oid,
                _ => a.stored[*s].oid,
            };
            owners.insert((class, oid), Owner::Node(i));
        }
    }
    for &s in &a.stale {
        let row = &a.stored[s];
        let Some(class) = CatalogClass::of(row.kind) else {
            continue;
        };
        let oid = match &a.catalog[s] {
            Catalog::Refresh { oid, .. } | Catalog::Drifted { oid } => *oid,
            Catalog::Intact => row.oid,
            Catalog::Missing => continue,
        };
        owners.insert((class, oid), Owner::Stale(s));
    }
    // The graph (which parses routine bodies) is only needed when something is to be installed or dropped.
    let nothing_to_do = !nodes.iter().any(|n| n.flagged) && a.stale.is_empty();
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
    let stored_count = a.stored.len();
    let mut installer = Installer {
        session,
        packages,
        graph,
        order,
        nodes,
        stored_done: vec![false; stored_count],
        owners,
        entered: None,
        existing: HashSet::new(),
        declared: HashMap::new(),
        pending: Vec::new(),
        changes: Vec::new(),
        clock: 0,
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
        .filter(|(i, p)| matches!(p, NodePlan::Keep(_)) && installer.nodes[*i].installed.is_none())
        .count();
    installer.report.duration_ms = ms(started.elapsed());
    Ok(installer.report)
}

impl<'p> Installer<'p, '_, '_> {
    pub(super) fn client(&self) -> &tokio_postgres::Client {
        self.session.client()
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
                            && crate::decide::assess::names_match(row, n.obj, n.schema())
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
                if !self.nodes[i].flagged {
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
                        .filter(|&s| !self.stored_done[s])
                        .collect();
                    self.drop_stale(&left).await?;
                }
                if !self.nodes.iter().any(|n| n.flagged) {
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
                self.nodes[i].flagged = false;
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
                self.nodes[i].ran_at = self.clock;
                self.nodes[i].flagged = false;
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
    pub(super) async fn enter(&mut self, pkg: usize) -> Result<()> {
        if self.entered == Some(pkg) {
            return Ok(());
        }
        let package = &self.packages[pkg];
        self.session
            .enter_package(package.schemas(), package.extensions())
            .await?;
        let role = roles::role_of(package);
        self.session.set_role(role.as_deref()).await?;
        self.entered = Some(pkg);
        Ok(())
    }

    /// Back to the login's role (drops and bookkeeping run as the login).
    pub(super) async fn leave(&mut self) -> Result<()> {
        if self.entered.take().is_some() {
            self.session.set_role(None).await?;
        }
        Ok(())
    }

    /// Record a change happening now.
    pub(super) fn note(&mut self, change: CodeChange) {
        self.clock += 1;
        self.changes.push((self.clock, change));
    }

    /// Mark a statement to be (re)installed, with the comments attached to it.
    pub(super) fn flag(&mut self, i: usize, reason: Reason) {
        self.nodes[i].flagged = true;
        if self.nodes[i].reason != Reason::Drifted && self.nodes[i].reason != Reason::Missing {
            self.nodes[i].reason = reason;
        }
        self.flag_comments_of(i);
    }

    /// Comments on statement `i` are lost when its object is dropped: run them again.
    pub(super) fn flag_comments_of(&mut self, i: usize) {
        for c in 0..self.a.nodes.len() {
            if self.a.nodes[c].obj.kind == CodeKind::Comment
                && self.graph.hard[c].contains(&i)
                && !self.nodes[c].flagged
            {
                self.nodes[c].flagged = true;
                if self.nodes[c].installed.take().is_none() && self.nodes[c].reason == Reason::New {
                    self.nodes[c].reason = Reason::Dependency;
                }
            }
        }
    }
}

/// SQLSTATEs of a statement naming something that does not exist (yet): retried in a later pass.
fn is_undefined(sqlstate: &str) -> bool {
    [
        SqlState::UNDEFINED_FUNCTION,
        SqlState::UNDEFINED_TABLE,
        SqlState::UNDEFINED_OBJECT,
        SqlState::INVALID_SCHEMA_NAME,
    ]
    .iter()
    .any(|s| s.code() == sqlstate)
}
