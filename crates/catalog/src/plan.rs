//! From changes to an ordered plan: one dependency graph over actions, sorted once.
//!
//! Every changed object gets up to three nodes: *drop*, *create* (or *alter*) and, for a type rebuilt under its
//! columns, *cleanup*. Edges come from the two catalogs' dependencies (walking through unchanged objects):
//! - a dependent is dropped before what it depends on (source's dependencies: drops in reverse order);
//! - what something depends on is created or altered before it (target's dependencies: forward order);
//! - an object is dropped before it is created again; a relation name is freed before it is reused;
//! - a dependent is dropped before what it depends on is altered (a view before its column's type changes).
//!
//! The graph is sorted once (Kahn's algorithm), ties broken by phase (drops first), kind and name, so the output is
//! deterministic. When a new table is emitted, its columns, defaults, non-foreign-key constraints and partition
//! or parents are folded into its `CREATE TABLE` if everything they need already exists at that point.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};

use serde::Serialize;

use crate::diff::{AlterStmt, Change, Renames, compare, owner_in};
use crate::error::{Error, Result};
use crate::ident::QName;
use crate::model::*;
use crate::render::{self, TableParts};

/// Options of [`diff`].
#[derive(Debug, Clone)]
pub struct DiffOptions {
    /// Renames declared with `-- strata:renamed-from` (never guessed).
    pub renames: Renames,
    /// Build new indexes of existing tables with `CREATE INDEX CONCURRENTLY`, after the transaction (default on).
    pub concurrent_indexes: bool,
}

impl Default for DiffOptions {
    fn default() -> Self {
        DiffOptions {
            renames: Renames::default(),
            concurrent_indexes: true,
        }
    }
}

/// What an action does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verb {
    /// Create the object.
    Create,
    /// Drop it.
    Drop,
    /// Alter it in place.
    Alter,
    /// Rename it (declared with `-- strata:renamed-from`).
    Rename,
    /// Rename a type away so that a new one can be created and its columns converted.
    RenameAway,
    /// Drop the renamed-away old type.
    Cleanup,
}

/// When an action runs relative to the migration's transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Before, outside a transaction: `ALTER TYPE … ADD VALUE` whose value the migration then uses.
    BeforeTransaction,
    /// In the migration's transaction.
    Transaction,
    /// After, outside a transaction: `CREATE INDEX CONCURRENTLY` on existing tables.
    AfterTransaction,
}

/// The kind of a hazard.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HazardKind {
    /// Loses data (gated by `--allow-data-loss`).
    DataLoss,
    /// Rewrites a table (and its indexes).
    Rewrite,
    /// Reads a whole table while holding a lock (validation, index build).
    Scan,
    /// Takes a lock that blocks reads or writes for its duration.
    Lock,
    /// May fail on existing rows.
    MayFail,
}

/// A hazard of an action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Hazard {
    /// What kind.
    pub kind: HazardKind,
    /// Why.
    pub message: String,
}

/// One step of a plan: the statements that create, drop or alter one object (and what was folded into it).
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// What it does.
    pub verb: Verb,
    /// The object.
    pub object: ObjectId,
    /// Sub-objects created with it (columns and constraints in a `CREATE TABLE`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub merged: Vec<ObjectId>,
    /// The statements.
    pub sql: Vec<String>,
    /// When it runs.
    pub phase: Phase,
    /// Why it loses data, if it does.
    pub data_loss: Option<String>,
    /// Other hazards.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hazards: Vec<Hazard>,
    /// Why it happens when the object itself did not change (it depends on something that did).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl Action {
    /// `drop table public.t`.
    pub fn describe(&self) -> String {
        let verb = match self.verb {
            Verb::Create => "create",
            Verb::Drop => "drop",
            Verb::Alter => "alter",
            Verb::Rename => "rename",
            Verb::RenameAway => "rebuild",
            Verb::Cleanup => "drop old",
        };
        format!("{verb} {}", self.object)
    }
}

/// Where an object that is not modelled exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Only in the source.
    Source,
    /// Only in the target.
    Target,
    /// On both sides (not compared).
    Both,
}

/// An object present but not modelled: reported, never acted on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnmodeledReport {
    /// The kind.
    pub kind: String,
    /// How to recognise it.
    pub identity: String,
    /// Where it is.
    pub side: Side,
}

/// A section of a migration: statements that run in one transaction, or one by one outside any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Section {
    /// Runs outside a transaction.
    pub no_transaction: bool,
    /// The statements, each ending with `;`.
    pub statements: Vec<String>,
}

/// What turns the source's schema into the target's: ordered actions, plus what could not be compared.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The actions, in the order they run.
    pub actions: Vec<Action>,
    /// Remarks (extensions left alone, renames that did not apply).
    pub notes: Vec<String>,
    /// Objects present but not modelled, on either side.
    pub unmodeled: Vec<UnmodeledReport>,
    /// The plan creates routines: their bodies are checked when called, not when created (SQL functions may name
    /// tables the plan creates later).
    pub defers_function_bodies: bool,
}

impl Plan {
    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.actions.is_empty()
    }

    /// The actions that lose data, described.
    pub fn data_loss(&self) -> Vec<String> {
        self.actions
            .iter()
            .filter_map(|a| {
                a.data_loss
                    .as_ref()
                    .map(|why| format!("{}: {why}", a.describe()))
            })
            .collect()
    }

    /// Refuse the plan if it loses data and that is not allowed.
    pub fn check_data_loss(&self, allow: bool) -> Result<()> {
        let lost = self.data_loss();
        if allow || lost.is_empty() {
            Ok(())
        } else {
            Err(Error::DataLoss { actions: lost })
        }
    }

    /// The statements, cut into sections: before the transaction, in it, after it.
    pub fn sections(&self) -> Vec<Section> {
        let mut out = Vec::new();
        for phase in [
            Phase::BeforeTransaction,
            Phase::Transaction,
            Phase::AfterTransaction,
        ] {
            let mut statements: Vec<String> = self
                .actions
                .iter()
                .filter(|a| a.phase == phase)
                .flat_map(|a| a.sql.iter().cloned())
                .collect();
            if statements.is_empty() {
                continue;
            }
            if phase == Phase::Transaction && self.defers_function_bodies {
                statements.insert(0, "SET LOCAL check_function_bodies = off;".to_string());
            }
            out.push(Section {
                no_transaction: phase != Phase::Transaction,
                statements,
            });
        }
        out
    }

    /// A plain script for `psql -f` (no transaction control; each statement commits on its own unless the caller
    /// wraps it).
    pub fn script(&self) -> String {
        let mut out = String::new();
        if self.defers_function_bodies {
            out.push_str("SET check_function_bodies = off;\n\n");
        }
        for a in &self.actions {
            for s in &a.sql {
                out.push_str(s);
                out.push('\n');
            }
            out.push('\n');
        }
        out.trim_end().to_string() + if out.trim().is_empty() { "" } else { "\n" }
    }
}

/// Compare two catalogs: the plan that turns `source` into `target`.
///
/// ```no_run
/// # async fn demo(prod: &tokio_postgres::Client, staging: &tokio_postgres::Client) -> Result<(), pgstrata_catalog::Error> {
/// use pgstrata_catalog::{read, diff, ReadOptions, DiffOptions};
/// let (a, b) = (read(prod, &ReadOptions::default()).await?, read(staging, &ReadOptions::default()).await?);
/// let plan = diff(&a, &b, &DiffOptions::default())?;
/// plan.check_data_loss(false)?;
/// print!("{}", plan.script());
/// # Ok(()) }
/// ```
pub fn diff(source: &Catalog, target: &Catalog, options: &DiffOptions) -> Result<Plan> {
    if source.major_version() != target.major_version() {
        return Err(Error::VersionMismatch {
            source_version: source.server_version_num,
            target_version: target.server_version_num,
        });
    }
    let cmp = compare(source, target, &options.renames);
    let mut planner = Planner::new(&cmp.source, target, &cmp.changes);
    planner.edges();
    let groups = planner.sort()?;
    let mut actions: Vec<Action> = cmp
        .renames
        .iter()
        .map(|(id, sql)| Action {
            verb: Verb::Rename,
            object: id.clone(),
            merged: Vec::new(),
            sql: sql.lines().map(str::to_string).collect(),
            phase: Phase::Transaction,
            data_loss: None,
            hazards: Vec::new(),
            reason: None,
        })
        .collect();
    for g in &groups {
        actions.extend(planner.render(g, options));
    }
    let defers_function_bodies = actions.iter().any(|a| {
        matches!(a.object, ObjectId::Function { .. })
            && matches!(a.verb, Verb::Create | Verb::Alter)
    });
    Ok(Plan {
        actions,
        notes: cmp.notes,
        unmodeled: unmodeled(source, target),
        defers_function_bodies,
    })
}

fn unmodeled(source: &Catalog, target: &Catalog) -> Vec<UnmodeledReport> {
    let a: BTreeSet<&Unmodeled> = source.unmodeled.iter().collect();
    let b: BTreeSet<&Unmodeled> = target.unmodeled.iter().collect();
    let mut out = Vec::new();
    for u in a.union(&b) {
        let side = match (a.contains(u), b.contains(u)) {
            (true, true) => Side::Both,
            (true, false) => Side::Source,
            _ => Side::Target,
        };
        out.push(UnmodeledReport {
            kind: u.kind.clone(),
            identity: u.identity.clone(),
            side,
        });
    }
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Step {
    Drop,
    Alter,
    Create,
    Cleanup,
}

struct Node {
    id: ObjectId,
    step: Step,
}

/// An emitted node and the nodes folded into it.
struct Group {
    node: usize,
    merged: Vec<usize>,
}

struct Planner<'a> {
    src: &'a Catalog,
    dst: &'a Catalog,
    changes: &'a BTreeMap<ObjectId, Change>,
    nodes: Vec<Node>,
    index: HashMap<(ObjectId, Step), usize>,
    succ: Vec<BTreeSet<usize>>,
    pred: Vec<BTreeSet<usize>>,
}

fn create_rank(cat: &Catalog, id: &ObjectId) -> u8 {
    match id {
        ObjectId::Schema { .. } => 0,
        ObjectId::Extension { .. } => 1,
        ObjectId::Type { .. } => 2,
        ObjectId::Sequence { .. } => 3,
        ObjectId::Table { .. } => 4,
        ObjectId::PartitionOf { .. } | ObjectId::Inherits { .. } => 5,
        ObjectId::Column { .. } => 6,
        ObjectId::Default { .. } => 7,
        ObjectId::SequenceOwner { .. } => 8,
        ObjectId::Constraint { table, name } => {
            match cat.constraints.get(&(table.clone(), name.clone())) {
                Some(c) if c.kind == 'f' => 11,
                _ => 9,
            }
        }
        ObjectId::Index { .. } => 10,
        ObjectId::Function { .. } => 12,
        ObjectId::View { .. } => 13,
        ObjectId::Trigger { .. } => 14,
        ObjectId::Policy { .. } => 15,
    }
}

/// The name an object takes in the shared namespace of relations and types, if any.
fn relation_key(cat: &Catalog, id: &ObjectId) -> Option<QName> {
    match id {
        ObjectId::Table { name }
        | ObjectId::View { name }
        | ObjectId::Sequence { name }
        | ObjectId::Index { name }
        | ObjectId::Type { name } => Some(name.clone()),
        ObjectId::Constraint { table, name } => cat
            .constraints
            .get(&(table.clone(), name.clone()))
            .filter(|c| matches!(c.kind, 'p' | 'u' | 'x'))
            .map(|_| QName::new(&table.schema, name)),
        _ => None,
    }
}

impl<'a> Planner<'a> {
    fn new(src: &'a Catalog, dst: &'a Catalog, changes: &'a BTreeMap<ObjectId, Change>) -> Self {
        let mut p = Planner {
            src,
            dst,
            changes,
            nodes: Vec::new(),
            index: HashMap::new(),
            succ: Vec::new(),
            pred: Vec::new(),
        };
        for (id, change) in changes {
            let steps: &[Step] = match change {
                Change::Create => &[Step::Create],
                Change::Drop { .. } => &[Step::Drop],
                Change::Replace { .. } => &[Step::Drop, Step::Create],
                Change::Rebuild { .. } => &[Step::Drop, Step::Create, Step::Cleanup],
                Change::Alter { .. } => &[Step::Alter],
            };
            for step in steps {
                p.index.insert((id.clone(), *step), p.nodes.len());
                p.nodes.push(Node {
                    id: id.clone(),
                    step: *step,
                });
            }
        }
        p.succ = vec![BTreeSet::new(); p.nodes.len()];
        p.pred = vec![BTreeSet::new(); p.nodes.len()];
        p
    }

    fn node(&self, id: &ObjectId, step: Step) -> Option<usize> {
        self.index.get(&(id.clone(), step)).copied()
    }

    fn edge(&mut self, from: usize, to: usize) {
        if from != to {
            self.succ[from].insert(to);
            self.pred[to].insert(from);
        }
    }

    /// Objects `id` depends on in `deps`, walking through objects for which `stop` is false.
    fn walk(cat: &'a Catalog, id: &ObjectId, stop: impl Fn(&ObjectId) -> bool) -> Vec<ObjectId> {
        let mut out = Vec::new();
        let mut seen: std::collections::HashSet<&ObjectId> = std::collections::HashSet::new();
        let mut stack: Vec<&ObjectId> = cat.dependencies_of(id);
        while let Some(x) = stack.pop() {
            if x == id || !seen.insert(x) {
                continue;
            }
            if stop(x) {
                out.push(x.clone());
            } else {
                stack.extend(cat.dependencies_of(x));
            }
        }
        out
    }

    fn edges(&mut self) {
        let changes = self.changes;
        let has = |id: &ObjectId| changes.contains_key(id);
        let mut pending: Vec<(usize, usize)> = Vec::new();
        for i in 0..self.nodes.len() {
            let id = self.nodes[i].id.clone();
            let step = self.nodes[i].step;
            match step {
                Step::Drop => {
                    for x in Self::walk(self.src, &id, has) {
                        if let Some(d) = self.node(&x, Step::Drop) {
                            pending.push((i, d));
                        }
                        if let Some(a) = self.node(&x, Step::Alter) {
                            pending.push((i, a));
                        }
                    }
                }
                Step::Alter | Step::Create => {
                    if step == Step::Alter {
                        let target_deps: BTreeSet<ObjectId> =
                            Self::walk(self.dst, &id, has).into_iter().collect();
                        for x in Self::walk(self.src, &id, has) {
                            if let Some(c) = self.node(&x, Step::Cleanup) {
                                pending.push((i, c));
                            } else if let Some(d) = self.node(&x, Step::Drop)
                                && !(target_deps.contains(&x)
                                    && self.node(&x, Step::Create).is_some())
                            {
                                pending.push((i, d));
                            }
                        }
                    }
                    for x in Self::walk(self.dst, &id, has) {
                        if let Some(c) = self.node(&x, Step::Create) {
                            pending.push((c, i));
                        }
                        if let Some(a) = self.node(&x, Step::Alter) {
                            pending.push((a, i));
                        }
                    }
                }
                Step::Cleanup => {}
            }
            if let (Some(d), Some(c)) = (self.node(&id, Step::Drop), self.node(&id, Step::Create))
                && step == Step::Drop
            {
                pending.push((d, c));
            }
            if step == Step::Cleanup
                && let Some(c) = self.node(&id, Step::Create)
            {
                pending.push((c, i));
            }
        }

        // Relation and type names (identity sequences' too) are freed before they are reused.
        let mut dropped_names: HashMap<QName, Vec<usize>> = HashMap::new();
        for (i, n) in self.nodes.iter().enumerate() {
            if matches!(self.changes.get(&n.id), Some(Change::Rebuild { .. })) {
                continue;
            }
            for k in self.names(i, false) {
                dropped_names.entry(k).or_default().push(i);
            }
        }
        for i in 0..self.nodes.len() {
            for k in self.names(i, true) {
                if let Some(drops) = dropped_names.get(&k) {
                    pending.extend(drops.iter().filter(|d| **d != i).map(|d| (*d, i)));
                }
            }
        }

        // Attaching a partition (or inheriting) comes after the table's own sub-objects are dropped; detaching
        // comes before its sub-objects change (they become its own).
        for (i, n) in self.nodes.iter().enumerate() {
            let table = match &n.id {
                ObjectId::PartitionOf { table } | ObjectId::Inherits { table, .. } => table,
                _ => continue,
            };
            for (j, m) in self.nodes.iter().enumerate() {
                let sub_of_table = match &m.id {
                    ObjectId::Column { table: t, .. }
                    | ObjectId::Constraint { table: t, .. }
                    | ObjectId::Trigger { table: t, .. } => t == table,
                    ObjectId::Index { name } => self
                        .src
                        .indexes
                        .get(name)
                        .or_else(|| self.dst.indexes.get(name))
                        .is_some_and(|ix| &ix.table == table),
                    _ => false,
                };
                if !sub_of_table {
                    continue;
                }
                match (n.step, m.step) {
                    (Step::Create, Step::Drop) => pending.push((j, i)),
                    (Step::Create, Step::Create) if matches!(m.id, ObjectId::Column { .. }) => {
                        pending.push((j, i))
                    }
                    (Step::Drop, Step::Create | Step::Drop | Step::Alter) if !matches!(self.changes.get(&ObjectId::Table { name: table.clone() }), Some(c) if c.drops()) => {
                        pending.push((i, j))
                    }
                    _ => {}
                }
            }
        }

        // A new table is created once its columns' types and its parents exist, so that they can be folded in.
        for (i, n) in self.nodes.iter().enumerate() {
            let ObjectId::Table { name } = &n.id else {
                continue;
            };
            if n.step != Step::Create {
                continue;
            }
            let Some(t) = self.dst.tables.get(name) else {
                continue;
            };
            let mut subs: Vec<ObjectId> = t
                .columns
                .iter()
                .filter(|c| !c.inherited)
                .map(|c| ObjectId::Column {
                    table: name.clone(),
                    column: c.name.clone(),
                })
                .collect();
            if t.partition_of.is_some() {
                subs.push(ObjectId::PartitionOf {
                    table: name.clone(),
                });
            }
            subs.extend(t.inherits.iter().map(|p| ObjectId::Inherits {
                table: name.clone(),
                parent: p.clone(),
            }));
            let me = ObjectId::Table { name: name.clone() };
            for sub in subs {
                for x in Self::walk(self.dst, &sub, has) {
                    if x == me || owner_in(self.dst, &x).is_some_and(|o| o == me) {
                        continue;
                    }
                    if let Some(c) = self.node(&x, Step::Create) {
                        pending.push((c, i));
                    }
                    if let Some(a) = self.node(&x, Step::Alter) {
                        pending.push((a, i));
                    }
                }
            }
        }

        // A drop that goes with its owner's happens when the owner is dropped: its edges are the owner's.
        let effective: Vec<usize> = (0..self.nodes.len()).map(|i| self.effective(i)).collect();
        for (a, b) in pending {
            self.edge(effective[a], effective[b]);
        }
    }

    /// The node that performs node `i`: for an implicit drop, its nearest owner's explicit drop.
    fn effective(&self, i: usize) -> usize {
        let n = &self.nodes[i];
        if n.step != Step::Drop {
            return i;
        }
        let mut cur = i;
        let mut steps = 0;
        loop {
            let node = &self.nodes[cur];
            let implicit = matches!(
                self.changes.get(&node.id),
                Some(Change::Drop { implicit: true } | Change::Replace { implicit: true, .. })
            );
            if !implicit || steps > 8 {
                return cur;
            }
            steps += 1;
            match owner_in(self.src, &node.id).and_then(|o| self.node(&o, Step::Drop)) {
                Some(o) => cur = o,
                None => return cur,
            }
        }
    }

    /// Relation names node `i` frees (`taken == false`: a drop, or an identity dropped) or takes (a create, or an
    /// identity added), identity sequences included.
    fn names(&self, i: usize, taken: bool) -> Vec<QName> {
        let n = &self.nodes[i];
        let cat = if taken { self.dst } else { self.src };
        let identity_seq = |c: &Column| {
            c.identity
                .as_ref()
                .map(|i| i.sequence.clone())
                .filter(|q| !q.name.is_empty())
        };
        let mut out = Vec::new();
        match (n.step, taken) {
            (Step::Drop, false) | (Step::Create, true) => {
                out.extend(relation_key(cat, &n.id));
                match &n.id {
                    ObjectId::Table { name } => {
                        if let Some(t) = cat.tables.get(name) {
                            out.extend(t.columns.iter().filter_map(identity_seq));
                        }
                    }
                    ObjectId::Column { table, column } => {
                        out.extend(cat.column(table, column).and_then(identity_seq));
                    }
                    _ => {}
                }
            }
            (Step::Alter, _) => {
                if let ObjectId::Column { table, column } = &n.id {
                    let (had, has) = (
                        self.src.column(table, column).and_then(identity_seq),
                        self.dst.column(table, column).and_then(identity_seq),
                    );
                    match (taken, had, has) {
                        (false, Some(q), None) => out.push(q),
                        (true, None, Some(q)) => out.push(q),
                        _ => {}
                    }
                }
            }
            _ => {}
        }
        out
    }

    fn priority(&self, i: usize) -> (u8, u8, &ObjectId) {
        let n = &self.nodes[i];
        match n.step {
            Step::Drop => (0, 15 - create_rank(self.src, &n.id), &n.id),
            Step::Alter | Step::Create => (1, create_rank(self.dst, &n.id), &n.id),
            Step::Cleanup => (2, 0, &n.id),
        }
    }

    /// Candidates to fold into the node emitted: sub-objects created with it.
    fn candidates(&self, i: usize) -> Vec<usize> {
        let n = &self.nodes[i];
        if n.step != Step::Create {
            return Vec::new();
        }
        let mut out = Vec::new();
        match &n.id {
            ObjectId::Table { name } => {
                let Some(t) = self.dst.tables.get(name) else {
                    return out;
                };
                if t.partition_of.is_some() {
                    out.extend(self.node(
                        &ObjectId::PartitionOf {
                            table: name.clone(),
                        },
                        Step::Create,
                    ));
                }
                for p in &t.inherits {
                    out.extend(self.node(
                        &ObjectId::Inherits {
                            table: name.clone(),
                            parent: p.clone(),
                        },
                        Step::Create,
                    ));
                }
                for c in &t.columns {
                    let col = ObjectId::Column {
                        table: name.clone(),
                        column: c.name.clone(),
                    };
                    out.extend(self.node(&col, Step::Create));
                    out.extend(self.node(
                        &ObjectId::Default {
                            table: name.clone(),
                            column: c.name.clone(),
                        },
                        Step::Create,
                    ));
                }
                for ((tn, cn), c) in self.dst.constraints.range((name.clone(), String::new())..) {
                    if tn != name {
                        break;
                    }
                    if c.kind != 'f' {
                        out.extend(self.node(
                            &ObjectId::Constraint {
                                table: name.clone(),
                                name: cn.clone(),
                            },
                            Step::Create,
                        ));
                    }
                }
            }
            ObjectId::Column { table, column } => {
                out.extend(self.node(
                    &ObjectId::Default {
                        table: table.clone(),
                        column: column.clone(),
                    },
                    Step::Create,
                ));
            }
            ObjectId::Sequence { name } => {
                out.extend(self.node(
                    &ObjectId::SequenceOwner { name: name.clone() },
                    Step::Create,
                ));
            }
            _ => {}
        }
        out
    }

    fn sort(&self) -> Result<Vec<Group>> {
        let n = self.nodes.len();
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|a, b| self.priority(*a).cmp(&self.priority(*b)));
        let mut prio = vec![0usize; n];
        for (rank, i) in order.iter().enumerate() {
            prio[*i] = rank;
        }
        let mut indeg: Vec<usize> = self.pred.iter().map(BTreeSet::len).collect();
        let mut done = vec![false; n];
        let mut heap: BinaryHeap<Reverse<(usize, usize)>> = BinaryHeap::new();
        for i in 0..n {
            if indeg[i] == 0 {
                heap.push(Reverse((prio[i], i)));
            }
        }
        let mut groups = Vec::new();
        let mut emitted = 0;
        while let Some(Reverse((_, i))) = heap.pop() {
            if done[i] {
                continue;
            }
            done[i] = true;
            let mut merged: Vec<usize> = Vec::new();
            let candidates = self.candidates(i);
            loop {
                let mut progress = false;
                for &c in &candidates {
                    if done[c] {
                        continue;
                    }
                    // A default folds into its column's definition only.
                    if let ObjectId::Default { table, column } = &self.nodes[c].id
                        && matches!(self.nodes[i].id, ObjectId::Table { .. })
                    {
                        let col = self.node(
                            &ObjectId::Column {
                                table: table.clone(),
                                column: column.clone(),
                            },
                            Step::Create,
                        );
                        if !col.is_some_and(|col| merged.contains(&col)) {
                            continue;
                        }
                    }
                    let ready = self.pred[c]
                        .iter()
                        .all(|p| done[*p] || *p == i || merged.contains(p));
                    if ready {
                        done[c] = true;
                        merged.push(c);
                        progress = true;
                    }
                }
                if !progress {
                    break;
                }
            }
            for &m in std::iter::once(&i).chain(merged.iter()) {
                emitted += 1;
                for &s in &self.succ[m] {
                    indeg[s] -= 1;
                    if indeg[s] == 0 && !done[s] {
                        heap.push(Reverse((prio[s], s)));
                    }
                }
            }
            groups.push(Group { node: i, merged });
        }
        if emitted < n {
            let stuck: Vec<String> = (0..n)
                .filter(|i| !done[*i])
                .take(8)
                .map(|i| format!("{:?} {}", self.nodes[i].step, self.nodes[i].id).to_lowercase())
                .collect();
            return Err(Error::Cycle { cycle: stuck });
        }
        Ok(groups)
    }

    fn render(&self, g: &Group, options: &DiffOptions) -> Vec<Action> {
        let node = &self.nodes[g.node];
        let id = &node.id;
        let change = self.changes.get(id);
        let reason = match change {
            Some(Change::Replace { reason, .. }) => reason.clone(),
            Some(Change::Rebuild { reason }) => Some(reason.clone()),
            _ => None,
        };
        let base = Action {
            verb: Verb::Create,
            object: id.clone(),
            merged: g.merged.iter().map(|m| self.nodes[*m].id.clone()).collect(),
            sql: Vec::new(),
            phase: Phase::Transaction,
            data_loss: None,
            hazards: Vec::new(),
            reason: reason.clone(),
        };
        match node.step {
            Step::Drop => {
                let implicit = matches!(
                    change,
                    Some(Change::Drop { implicit: true } | Change::Replace { implicit: true, .. })
                );
                if implicit {
                    return Vec::new();
                }
                if let (Some(Change::Rebuild { .. }), ObjectId::Type { name }) = (change, id) {
                    return vec![Action {
                        verb: Verb::RenameAway,
                        sql: vec![render::rebuild_rename(self.src, name)],
                        ..base
                    }];
                }
                let data_loss = self.drop_loss(id, change);
                let mut hazards = Vec::new();
                if matches!(id, ObjectId::Table { .. } | ObjectId::Column { .. }) {
                    hazards.push(Hazard {
                        kind: HazardKind::Lock,
                        message: "takes ACCESS EXCLUSIVE on the table".into(),
                    });
                }
                vec![Action {
                    verb: Verb::Drop,
                    sql: render::drop(self.src, id),
                    data_loss,
                    hazards,
                    ..base
                }]
            }
            Step::Cleanup => {
                let ObjectId::Type { name } = id else {
                    return Vec::new();
                };
                vec![Action {
                    verb: Verb::Cleanup,
                    sql: vec![render::rebuild_cleanup(self.src, name)],
                    ..base
                }]
            }
            Step::Alter => {
                let Some(Change::Alter { stmts, .. }) = change else {
                    return Vec::new();
                };
                // ADD VALUE runs before the transaction when something later in the plan uses the type.
                let used_later = !self.succ[g.node].is_empty();
                let (early, rest): (Vec<&AlterStmt>, Vec<&AlterStmt>) =
                    stmts.iter().partition(|s| s.enum_value && used_later);
                let mut out = Vec::new();
                for (part, phase) in [
                    (early, Phase::BeforeTransaction),
                    (rest, Phase::Transaction),
                ] {
                    if part.is_empty() {
                        continue;
                    }
                    out.push(Action {
                        verb: Verb::Alter,
                        sql: part.iter().map(|s| s.sql.clone()).collect(),
                        phase,
                        data_loss: part.iter().find_map(|s| s.data_loss.clone()),
                        hazards: part
                            .iter()
                            .flat_map(|s| s.hazards.iter().cloned())
                            .collect(),
                        ..base.clone()
                    });
                }
                out
            }
            Step::Create => vec![self.render_create(g, options, base)],
        }
    }

    fn render_create(&self, g: &Group, options: &DiffOptions, base: Action) -> Action {
        let id = &self.nodes[g.node].id;
        let mut parts = TableParts::default();
        let merged: Vec<&ObjectId> = g.merged.iter().map(|m| &self.nodes[*m].id).collect();
        let merged_default = |table: &QName, column: &str| {
            merged.iter().any(|m| {
                matches!(m, ObjectId::Default { table: t, column: c } if t == table && c == column)
            })
        };
        let mut hazards = Vec::new();
        let table_existed = |t: &QName| {
            self.src.tables.contains_key(t)
                && !self
                    .changes
                    .get(&ObjectId::Table { name: t.clone() })
                    .is_some_and(Change::drops)
        };
        match id {
            ObjectId::Table { name } => {
                if let Some(t) = self.dst.tables.get(name) {
                    for c in &t.columns {
                        let col = ObjectId::Column {
                            table: name.clone(),
                            column: c.name.clone(),
                        };
                        if merged.contains(&&col)
                            && let Some(def) = render::table_column(
                                self.dst,
                                name,
                                &c.name,
                                merged_default(name, &c.name),
                            )
                        {
                            parts.columns.push(def);
                        }
                    }
                    parts.inherits = t
                        .inherits
                        .iter()
                        .filter(|p| {
                            merged.contains(&&ObjectId::Inherits {
                                table: name.clone(),
                                parent: (*p).clone(),
                            })
                        })
                        .cloned()
                        .collect();
                }
                for m in &merged {
                    match m {
                        ObjectId::Constraint { table, name: cn } => {
                            parts
                                .constraints
                                .extend(render::table_constraint(self.dst, table, cn));
                        }
                        ObjectId::PartitionOf { .. } => parts.partition = true,
                        _ => {}
                    }
                }
                // Comments of merged constraints.
                let mut sql = render::create(self.dst, id, &parts, false);
                for m in &merged {
                    if let ObjectId::Constraint { table, name: cn } = m
                        && let Some(c) = self.dst.constraints.get(&(table.clone(), cn.clone()))
                        && c.comment.is_some()
                    {
                        sql.push(render::comment(
                            &format!("CONSTRAINT {} ON {table}", crate::ident::quote_ident(cn)),
                            &c.comment,
                        ));
                    }
                }
                let data_loss = None;
                return Action {
                    sql,
                    data_loss,
                    ..base
                };
            }
            ObjectId::Column { table, column } => {
                if merged_default(table, column)
                    && let Some(c) = self.dst.column(table, column)
                    && let Some(d) = &c.default
                {
                    parts.defaults.push(d.clone());
                }
                if let Some(c) = self.dst.column(table, column)
                    && table_existed(table)
                {
                    if c.not_null
                        && c.default.is_none()
                        && c.identity.is_none()
                        && c.generated.is_none()
                    {
                        hazards.push(Hazard {
                            kind: HazardKind::MayFail,
                            message: "a NOT NULL column without a default cannot be added to a table that has rows".into(),
                        });
                    }
                    if c.generated.is_some() || c.identity.is_some() {
                        hazards.push(Hazard {
                            kind: HazardKind::Rewrite,
                            message: "fills every row: rewrites the table under ACCESS EXCLUSIVE"
                                .into(),
                        });
                    }
                }
            }
            ObjectId::Sequence { .. } => {
                parts.owned = merged
                    .iter()
                    .any(|m| matches!(m, ObjectId::SequenceOwner { .. }));
            }
            ObjectId::Constraint { table, name } => {
                if table_existed(table)
                    && let Some(c) = self.dst.constraints.get(&(table.clone(), name.clone()))
                    && c.validated
                {
                    hazards.push(Hazard {
                        kind: HazardKind::Scan,
                        message: "checks every row while holding a lock on the table".into(),
                    });
                }
            }
            _ => {}
        }
        let mut phase = Phase::Transaction;
        let mut concurrently = false;
        if let ObjectId::Index { name } = id
            && let Some(ix) = self.dst.indexes.get(name)
        {
            let existing = table_existed(&ix.table) || {
                self.src.views.contains_key(&ix.table)
                    && !self
                        .changes
                        .get(&ObjectId::View {
                            name: ix.table.clone(),
                        })
                        .is_some_and(Change::creates)
            };
            let replica = self.dst.tables.get(&ix.table).is_some_and(|t| {
                t.replica_identity == 'i' && t.replica_index.as_deref() == Some(name.name.as_str())
            });
            if existing {
                if options.concurrent_indexes
                    && !ix.partitioned
                    && !replica
                    && self.succ[g.node].is_empty()
                {
                    concurrently = true;
                    phase = Phase::AfterTransaction;
                } else {
                    hazards.push(Hazard {
                        kind: HazardKind::Scan,
                        message: "builds the index under SHARE: writes to the table wait".into(),
                    });
                }
            }
        }
        let sql = render::create(self.dst, id, &parts, concurrently);
        let mut sql = sql;
        // A sequence attached to a column that already holds values starts past them.
        if let ObjectId::SequenceOwner { name } = id
            && !self.src.sequences.contains_key(name)
            && let Some(Sequence {
                owned_by: Some((t, c)),
                ..
            }) = self.dst.sequences.get(name)
            && table_existed(t)
            && self.src.column(t, c).is_some()
        {
            sql.push(format!(
                "SELECT pg_catalog.setval({}, COALESCE(max({}), 0) + 1, false) FROM {t};",
                crate::ident::quote_literal(&name.sql()),
                crate::ident::quote_ident(c)
            ));
        }
        Action {
            sql,
            phase,
            hazards,
            ..base
        }
    }

    fn drop_loss(&self, id: &ObjectId, change: Option<&Change>) -> Option<String> {
        let replaced = matches!(change, Some(Change::Replace { .. }));
        match id {
            ObjectId::Table { name } => Some(if replaced {
                format!("table {name} is dropped and created again: its rows are lost")
            } else {
                format!("table {name} is dropped with its rows")
            }),
            ObjectId::Column { table, column } => {
                let c = self.src.column(table, column)?;
                if c.generated.is_some() {
                    return None;
                }
                Some(format!(
                    "column {table}.{} is {} with its values",
                    crate::ident::quote_ident(column),
                    if replaced {
                        "dropped and added again"
                    } else {
                        "dropped"
                    }
                ))
            }
            ObjectId::Sequence { name } => {
                let s = self.src.sequences.get(name)?;
                // A serial column's sequence that goes with the column (or is replaced by an identity) holds no
                // data of its own worth keeping.
                if s.owned_by.is_some() {
                    return None;
                }
                Some(format!("sequence {name} is dropped with its current value"))
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn different_major_versions_are_refused() {
        let a = Catalog {
            server_version_num: 150004,
            ..Catalog::default()
        };
        let b = Catalog {
            server_version_num: 160001,
            ..Catalog::default()
        };
        let err = diff(&a, &b, &DiffOptions::default()).unwrap_err();
        assert!(matches!(err, Error::VersionMismatch { .. }), "{err}");
        assert!(err.to_string().contains("150004 and 160001"), "{err}");
        let same = Catalog {
            server_version_num: 150018,
            ..Catalog::default()
        };
        assert!(diff(&a, &same, &DiffOptions::default()).unwrap().is_empty());
    }
}
