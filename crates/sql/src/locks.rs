//! Which table-level locks a statement takes, on which relations, and whether it rewrites or scans a
//! table: the facts behind `strata plan`'s lock report.
//!
//! The levels follow PostgreSQL's documentation ("Explicit Locking", and the lock notes of
//! `ALTER TABLE`, `CREATE INDEX`, `REINDEX`, `CREATE TRIGGER`, …). Only locks on relations that
//! the statement names are reported; the catalog locks every DDL statement also takes are
//! short and left out. Statements the analysis does not know (procedural code, `CALL`, rare DDL)
//! say so in [`StatementLocks::note`] rather than guessing.
//!
//! ```
//! use pgstrata_sql::locks::{self, LockMode};
//!
//! let sql = "CREATE TABLE billing.payment (id bigint, invoice bigint REFERENCES billing.invoice);
//! ALTER TABLE billing.invoice ADD COLUMN token uuid DEFAULT gen_random_uuid();
//! CREATE INDEX CONCURRENTLY payment_invoice ON billing.payment (invoice);";
//! let report = locks::analyze(sql);
//! // The new table references an existing one: SHARE ROW EXCLUSIVE on the referenced table.
//! assert_eq!(report[0].locks[0].relation.to_string(), "billing.invoice");
//! assert_eq!(report[0].locks[0].mode, LockMode::ShareRowExclusive);
//! // A volatile default is computed for every row: ACCESS EXCLUSIVE and a table rewrite.
//! assert_eq!(report[1].locks[0].mode, LockMode::AccessExclusive);
//! assert!(report[1].rewrite.is_some());
//! // The index is built on a table created earlier in the same script: nobody can be blocked.
//! assert_eq!(report[2].locks[0].mode, LockMode::ShareUpdateExclusive);
//! assert!(report[2].locks[0].created_earlier);
//! ```

use std::fmt;
use std::ops::Range;

use squawk_syntax::ast::{self, AstNode};
use squawk_syntax::{SourceFile, SyntaxKind, SyntaxNode};

use crate::split::{StatementKind, split};

/// PostgreSQL's table-level lock modes, weakest first (so `Ord` compares strength).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LockMode {
    /// `SELECT`.
    AccessShare,
    /// `SELECT … FOR UPDATE/SHARE`.
    RowShare,
    /// `INSERT`, `UPDATE`, `DELETE`, `MERGE`.
    RowExclusive,
    /// `VACUUM`, `ANALYZE`, `CREATE INDEX CONCURRENTLY`, `VALIDATE CONSTRAINT`, `COMMENT ON`, …
    ShareUpdateExclusive,
    /// `CREATE INDEX`.
    Share,
    /// `CREATE TRIGGER`, foreign keys.
    ShareRowExclusive,
    /// `REFRESH MATERIALIZED VIEW CONCURRENTLY`.
    Exclusive,
    /// Most `ALTER TABLE` forms, `DROP`, `TRUNCATE`, `VACUUM FULL`, `CLUSTER`, …
    AccessExclusive,
}

impl LockMode {
    /// The mode's name as PostgreSQL spells it, e.g. `ACCESS EXCLUSIVE`.
    pub fn name(self) -> &'static str {
        match self {
            LockMode::AccessShare => "ACCESS SHARE",
            LockMode::RowShare => "ROW SHARE",
            LockMode::RowExclusive => "ROW EXCLUSIVE",
            LockMode::ShareUpdateExclusive => "SHARE UPDATE EXCLUSIVE",
            LockMode::Share => "SHARE",
            LockMode::ShareRowExclusive => "SHARE ROW EXCLUSIVE",
            LockMode::Exclusive => "EXCLUSIVE",
            LockMode::AccessExclusive => "ACCESS EXCLUSIVE",
        }
    }

    /// What other sessions cannot do on the relation while the lock is held (or waited for:
    /// a queued lock request already blocks everything that conflicts with it).
    pub fn blocks(self) -> &'static str {
        match self {
            LockMode::AccessExclusive => "reads and writes",
            LockMode::Exclusive => "writes and row locks (plain reads continue)",
            LockMode::ShareRowExclusive | LockMode::Share => "writes",
            LockMode::ShareUpdateExclusive => "schema changes, VACUUM and index builds",
            LockMode::RowExclusive => "schema changes and index builds",
            LockMode::RowShare => "EXCLUSIVE and ACCESS EXCLUSIVE locks",
            LockMode::AccessShare => "ACCESS EXCLUSIVE locks",
        }
    }

    /// True when plain `SELECT`s on the relation wait for this lock.
    pub fn blocks_reads(self) -> bool {
        self == LockMode::AccessExclusive
    }

    /// True when `INSERT`/`UPDATE`/`DELETE` on the relation wait for this lock.
    pub fn blocks_writes(self) -> bool {
        self >= LockMode::Share
    }

    fn from_ast(mode: &ast::LockMode) -> LockMode {
        match mode {
            ast::LockMode::AccessExclusive(_) => LockMode::AccessExclusive,
            ast::LockMode::AccessShare(_) => LockMode::AccessShare,
            ast::LockMode::Exclusive(_) => LockMode::Exclusive,
            ast::LockMode::RowExclusive(_) => LockMode::RowExclusive,
            ast::LockMode::RowShare(_) => LockMode::RowShare,
            ast::LockMode::Share(_) => LockMode::Share,
            ast::LockMode::ShareRowExclusive(_) => LockMode::ShareRowExclusive,
            ast::LockMode::ShareUpdateExclusive(_) => LockMode::ShareUpdateExclusive,
        }
    }
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A relation name as PostgreSQL resolves it: unquoted parts folded to lower case, quotes
/// removed, a database qualifier dropped.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RelationName {
    /// The schema, when the statement qualifies the name.
    pub schema: Option<String>,
    /// The relation's own name.
    pub name: String,
}

impl RelationName {
    /// A name from its parts (already folded: `"Invoice"` is `Invoice`, `Invoice` is `invoice`).
    pub fn new(schema: Option<&str>, name: &str) -> RelationName {
        RelationName {
            schema: schema.map(str::to_string),
            name: name.to_string(),
        }
    }

    /// This name with `schema` filled in when the statement left it out (unqualified names in a
    /// package's migrations resolve to the package's schema first).
    pub fn qualified_or(&self, schema: &str) -> RelationName {
        RelationName {
            schema: Some(self.schema.clone().unwrap_or_else(|| schema.to_string())),
            name: self.name.clone(),
        }
    }

    fn from_path_node(node: &SyntaxNode) -> Option<RelationName> {
        let mut parts = Vec::new();
        collect_path(node, &mut parts);
        let name = parts.pop()?;
        Some(RelationName {
            schema: parts.pop(),
            name,
        })
    }
}

impl fmt::Display for RelationName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(schema) = &self.schema {
            write!(f, "{}.", quote_ident(schema))?;
        }
        f.write_str(&quote_ident(&self.name))
    }
}

/// Double-quote an identifier unless it reads back the same unquoted.
pub(crate) fn quote_ident(ident: &str) -> String {
    let plain = ident
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && ident
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '$');
    if plain {
        ident.to_string()
    } else {
        format!("\"{}\"", ident.replace('"', "\"\""))
    }
}

/// Segments of a `PATH`/`PATH_REF` node, outermost qualifier first.
fn collect_path(node: &SyntaxNode, out: &mut Vec<String>) {
    if let Some(path) = ast::Path::cast(node.clone()) {
        if let Some(q) = path.qualifier() {
            collect_path(q.syntax(), out);
        }
        if let Some(s) = path.segment() {
            out.push(s.text());
        }
    } else if let Some(path) = ast::PathRef::cast(node.clone()) {
        if let Some(q) = path.qualifier() {
            collect_path(q.syntax(), out);
        }
        if let Some(s) = path.segment() {
            out.push(s.text());
        }
    }
}

/// The name in the first `PATH`/`PATH_REF` at or below `node`.
pub(crate) fn name_below(node: &SyntaxNode) -> Option<RelationName> {
    node.descendants()
        .find(|n| matches!(n.kind(), SyntaxKind::PATH | SyntaxKind::PATH_REF))
        .and_then(|n| RelationName::from_path_node(&n))
}

/// The name in the first node of `kind` below `node`.
pub(crate) fn name_of_kind(node: &SyntaxNode, kind: SyntaxKind) -> Option<RelationName> {
    node.descendants()
        .find(|n| n.kind() == kind)
        .and_then(|n| name_below(&n))
}

/// One lock a statement takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lock {
    /// The relation named in the statement.
    pub relation: RelationName,
    /// True when `relation` is an index and the lock is taken on the index's table (`DROP INDEX`,
    /// `REINDEX INDEX`): the table is only known once connected.
    pub on_table_of_index: bool,
    /// The lock mode.
    pub mode: LockMode,
    /// True when an earlier statement of the same script (or, for [`analyze_with`], of the same
    /// deploy) created the relation: nobody else can be using it, so the lock blocks nobody.
    pub created_earlier: bool,
}

/// What one statement does to existing relations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatementLocks {
    /// Byte range of the statement in the script.
    pub range: Range<usize>,
    /// A short label, e.g. `ALTER TABLE … ADD COLUMN, ALTER COLUMN … SET TYPE`.
    pub command: String,
    /// Locks on named relations, strongest first; one per relation.
    pub locks: Vec<Lock>,
    /// Why the statement rewrites a whole table (every row copied, indexes rebuilt), if it does.
    pub rewrite: Option<String>,
    /// Why it reads a whole table while holding its lock (validation, index build), if it does.
    pub scan: Option<String>,
    /// Relations (tables, views, indexes, sequences) the statement creates; a relation created earlier in the
    /// script (or deploy) and renamed here is created under its new name.
    pub creates: Vec<RelationName>,
    /// `ALTER TABLE … RENAME TO` / `ALTER INDEX … RENAME TO`: the old name and the new one (in the old one's
    /// schema).
    pub renamed: Option<(RelationName, RelationName)>,
    /// Something the analysis cannot tell from the text (procedural code, unknown statements).
    pub note: Option<String>,
}

impl StatementLocks {
    /// The strongest lock on a relation that existed before (None when every lock is on a
    /// relation created earlier, or there is none).
    pub fn strongest_on_existing(&self) -> Option<&Lock> {
        self.locks
            .iter()
            .filter(|l| !l.created_earlier)
            .max_by_key(|l| l.mode)
    }
}

/// Analyse every statement of a script (see the module docs).
pub fn analyze(source: &str) -> Vec<StatementLocks> {
    analyze_with(source, &[])
}

/// Like [`analyze`], with relations created before the script (by earlier migrations of the same
/// deploy) counted as new too. Names are compared as written, so pass them the way the script
/// spells them, or qualify both sides first.
pub fn analyze_with(source: &str, created_before: &[RelationName]) -> Vec<StatementLocks> {
    analyze_after(source, &[created_before], None)
}

/// [`analyze_with`] for a server of major version `server_major` (e.g. 18): what a statement rewrites or scans
/// can depend on the version (a generated column without `STORED` is virtual from PostgreSQL 18 on, and costs no
/// rewrite), and the cheaper ways the report suggests exist only on some versions (`ADD CONSTRAINT … NOT NULL …
/// NOT VALID` from 18 on). Lock levels themselves are the same from PostgreSQL 14 to 18.
///
/// ```
/// use pgstrata_sql::locks;
///
/// let sql = "ALTER TABLE t ADD COLUMN total int GENERATED ALWAYS AS (price * qty) STORED";
/// assert!(locks::analyze_for(sql, &[], 17)[0].rewrite.is_some());
/// // PostgreSQL 18 mentions the virtual alternative, which computes values when read.
/// assert!(locks::analyze_for(sql, &[], 18)[0].rewrite.as_deref().unwrap().contains("VIRTUAL"));
/// ```
pub fn analyze_for(
    source: &str,
    created_before: &[RelationName],
    server_major: u32,
) -> Vec<StatementLocks> {
    analyze_after(source, &[created_before], Some(server_major))
}

/// [`analyze_with`] with the earlier relations in several lists, so that callers which keep a deploy-wide list
/// and a per-file one need not concatenate them for every script (that copy made long deploys quadratic).
pub(crate) fn analyze_after(
    source: &str,
    created_before: &[&[RelationName]],
    server_major: Option<u32>,
) -> Vec<StatementLocks> {
    let mut created_here: Vec<RelationName> = Vec::new();
    let mut out = Vec::new();
    for statement in split(source).statements {
        let text = statement.text(source);
        let mut analysis = analyze_statement(text, &statement.kind, server_major);
        analysis.range = statement.range.clone();
        let earlier = |r: &RelationName, here: &[RelationName]| {
            created_before
                .iter()
                .flat_map(|list| list.iter())
                .chain(here)
                .any(|c| same_relation(c, r))
        };
        for lock in &mut analysis.locks {
            lock.created_earlier = earlier(&lock.relation, &created_here);
        }
        // Later statements use the new name for the same new relation.
        if let Some((old, new)) = &analysis.renamed
            && earlier(old, &created_here)
        {
            analysis.creates.push(new.clone());
        }
        created_here.extend(analysis.creates.iter().cloned());
        out.push(analysis);
    }
    out
}

/// Every name a script could use for a relation: its identifiers as PostgreSQL reads them (unquoted ones folded to
/// lower case), to look up in the catalog before linting (see `lint::MigrationContext::existing`).
///
/// ```
/// let names = pgstrata_sql::locks::mentioned_names("CREATE INDEX i ON Billing.\"Invoice\" (id);");
/// assert!(names.contains("billing") && names.contains("Invoice") && names.contains("i"));
/// ```
pub fn mentioned_names(source: &str) -> std::collections::BTreeSet<String> {
    // Streamed into the set: a data load has millions of tokens, and repeats the same few names.
    let mut names = std::collections::BTreeSet::new();
    for t in crate::lex::tokens(source) {
        match t.kind {
            squawk_lexer::TokenKind::Ident => {
                let text = t.text(source);
                if text.bytes().any(|b| b.is_ascii_uppercase()) {
                    names.insert(text.to_ascii_lowercase());
                } else if !names.contains(text) {
                    names.insert(text.to_string());
                }
            }
            squawk_lexer::TokenKind::QuotedIdent {
                terminated: true,
                uescape: false,
            } => {
                let text = t.text(source);
                names.insert(text[1..text.len() - 1].replace("\"\"", "\""));
            }
            _ => {}
        }
    }
    names
}

/// Two names denote the same relation: same name, and the same schema when both say one.
pub(crate) fn same_relation(a: &RelationName, b: &RelationName) -> bool {
    a.name == b.name
        && match (&a.schema, &b.schema) {
            (Some(x), Some(y)) => x == y,
            _ => true,
        }
}

/// Collects the facts about one statement.
struct Facts {
    /// The server's major version, when known: some facts depend on it.
    major: Option<u32>,
    command: String,
    locks: Vec<Lock>,
    rewrite: Option<String>,
    scan: Option<String>,
    creates: Vec<RelationName>,
    renamed: Option<(RelationName, RelationName)>,
    note: Option<String>,
}

impl Facts {
    fn new(command: impl Into<String>) -> Facts {
        Facts {
            major: None,
            command: command.into(),
            locks: Vec::new(),
            rewrite: None,
            scan: None,
            creates: Vec::new(),
            renamed: None,
            note: None,
        }
    }

    fn lock(&mut self, relation: Option<RelationName>, mode: LockMode) {
        self.lock_on(relation, mode, false);
    }

    fn lock_index_table(&mut self, index: Option<RelationName>, mode: LockMode) {
        self.lock_on(index, mode, true);
    }

    fn lock_on(&mut self, relation: Option<RelationName>, mode: LockMode, on_table_of_index: bool) {
        let Some(relation) = relation else {
            return;
        };
        if let Some(existing) = self
            .locks
            .iter_mut()
            .find(|l| l.relation == relation && l.on_table_of_index == on_table_of_index)
        {
            existing.mode = existing.mode.max(mode);
        } else {
            self.locks.push(Lock {
                relation,
                on_table_of_index,
                mode,
                created_earlier: false,
            });
        }
    }

    fn rewrite(&mut self, why: impl Into<String>) {
        if self.rewrite.is_none() {
            self.rewrite = Some(why.into());
        }
    }

    fn scan(&mut self, why: impl Into<String>) {
        if self.scan.is_none() {
            self.scan = Some(why.into());
        }
    }

    fn creates(&mut self, relation: Option<RelationName>) {
        self.creates.extend(relation);
    }

    fn finish(mut self) -> StatementLocks {
        // A rewrite reads everything too; saying both is noise.
        if self.rewrite.is_some() {
            self.scan = None;
        }
        self.locks.sort_by_key(|l| std::cmp::Reverse(l.mode));
        StatementLocks {
            range: 0..0,
            command: self.command,
            locks: self.locks,
            rewrite: self.rewrite,
            scan: self.scan,
            creates: self.creates,
            renamed: self.renamed,
            note: self.note,
        }
    }
}

fn analyze_statement(text: &str, kind: &StatementKind, major: Option<u32>) -> StatementLocks {
    let parse = SourceFile::parse(&crate::lex::shallow(text));
    let Some(stmt) = parse.tree().stmts().next() else {
        return Facts::new(label(kind)).finish();
    };
    let mut f = Facts::new(label(kind));
    f.major = major;
    let node = stmt.syntax().clone();
    match &stmt {
        ast::Stmt::AlterTable(alter) => alter_table(alter, &mut f),
        ast::Stmt::CreateTable(create) => {
            let name = create.table_name().and_then(|n| name_below(n.syntax()));
            f.creates(name);
            if let Some(parent) = create.partition_of() {
                f.lock(name_below(parent.syntax()), LockMode::AccessExclusive);
            }
            references(&node, &mut f);
        }
        ast::Stmt::CreateTableAs(_) | ast::Stmt::SelectInto(_) => {
            f.creates(name_of_kind(&node, SyntaxKind::TABLE_NAME));
            f.scan("fills the new table from a query");
        }
        ast::Stmt::CreateView(view) => {
            let name = view.view().and_then(|v| name_below(v.syntax()));
            if view.or_replace().is_some() {
                // Replacing an existing view locks it; a new one is simply created.
                f.lock(name.clone(), LockMode::AccessExclusive);
            }
            f.creates(name);
        }
        ast::Stmt::CreateMaterializedView(_) => {
            f.creates(name_of_kind(&node, SyntaxKind::VIEW));
            f.scan("fills the materialized view from its query");
        }
        ast::Stmt::CreateSequence(_) => f.creates(name_below(&node)),
        ast::Stmt::CreateIndex(index) => {
            let table = index
                .table_relation_name()
                .and_then(|t| name_below(t.syntax()));
            let concurrently = index.concurrently_token().is_some();
            f.lock(
                table,
                if concurrently {
                    LockMode::ShareUpdateExclusive
                } else {
                    LockMode::Share
                },
            );
            // An index lives in its table's schema.
            let name = index.index().and_then(|n| name_below(n.syntax()));
            f.creates(name.map(|n| {
                RelationName {
                    schema: n
                        .schema
                        .or_else(|| f.locks.first().and_then(|l| l.relation.schema.clone())),
                    name: n.name,
                }
            }));
            f.scan(if concurrently {
                "builds the index by reading the table twice, without blocking writes"
            } else {
                "builds the index by reading the whole table"
            });
        }
        ast::Stmt::DropIndex(drop) => {
            let mode = if drop.concurrently_token().is_some() {
                LockMode::ShareUpdateExclusive
            } else {
                LockMode::AccessExclusive
            };
            for index in drop.index_refs() {
                f.lock_index_table(name_below(index.syntax()), mode);
            }
        }
        ast::Stmt::Reindex(_) => reindex(&node, &mut f),
        ast::Stmt::DropTable(_)
        | ast::Stmt::DropView(_)
        | ast::Stmt::DropMaterializedView(_)
        | ast::Stmt::DropSequence(_) => {
            for child in node.children() {
                if matches!(
                    child.kind(),
                    SyntaxKind::TABLE_NAME_REF | SyntaxKind::VIEW_REF | SyntaxKind::SEQUENCE_REF
                ) {
                    f.lock(name_below(&child), LockMode::AccessExclusive);
                }
            }
        }
        ast::Stmt::Truncate(truncate) => {
            if let Some(list) = truncate.table_list() {
                for t in list.table_relation_names() {
                    f.lock(name_below(t.syntax()), LockMode::AccessExclusive);
                }
            }
        }
        ast::Stmt::CreateTrigger(trigger) => {
            let table = trigger.on_relation().and_then(|r| name_below(r.syntax()));
            f.lock(table, LockMode::ShareRowExclusive);
        }
        ast::Stmt::DropTrigger(trigger) => {
            let table = trigger.on_relation().and_then(|r| name_below(r.syntax()));
            f.lock(table, LockMode::AccessExclusive);
        }
        ast::Stmt::AlterTrigger(_) => {
            let table = name_of_kind(&node, SyntaxKind::ON_TABLE)
                .or_else(|| name_of_kind(&node, SyntaxKind::ON_RELATION));
            f.lock(table, LockMode::AccessExclusive);
        }
        ast::Stmt::CreatePolicy(_) | ast::Stmt::AlterPolicy(_) | ast::Stmt::DropPolicy(_) => {
            f.lock(
                name_of_kind(&node, SyntaxKind::ON_TABLE),
                LockMode::AccessExclusive,
            );
        }
        ast::Stmt::CreateRule(rule) => {
            let table = rule.rule_on().and_then(|r| name_below(r.syntax()));
            f.lock(table, LockMode::AccessExclusive);
        }
        ast::Stmt::DropRule(_) => {
            f.lock(
                name_of_kind(&node, SyntaxKind::ON_TABLE),
                LockMode::AccessExclusive,
            );
        }
        ast::Stmt::CommentOn(comment) => {
            if let Some(object) = comment.comment_object() {
                let object = object.syntax();
                if matches!(
                    object.kind(),
                    SyntaxKind::OBJECT_TABLE | SyntaxKind::OBJECT_COLUMN
                ) {
                    f.lock(name_below(object), LockMode::ShareUpdateExclusive);
                }
            }
        }
        ast::Stmt::CreateStatistics(stats) => {
            let table = stats.from_table().and_then(|t| name_below(t.syntax()));
            f.lock(table, LockMode::ShareUpdateExclusive);
        }
        ast::Stmt::AlterIndex(alter) => {
            let index = alter.index_ref().and_then(|i| name_below(i.syntax()));
            // Renaming an index or changing its storage options takes SHARE UPDATE EXCLUSIVE
            // (PostgreSQL 12+); the other forms take ACCESS EXCLUSIVE.
            let light = alter.action().is_some_and(|a| {
                matches!(
                    a.syntax().kind(),
                    SyntaxKind::INDEX_RENAME_TO
                        | SyntaxKind::SET_OPTIONS
                        | SyntaxKind::RESET_OPTIONS
                )
            });
            f.lock(
                index.clone(),
                if light {
                    LockMode::ShareUpdateExclusive
                } else {
                    LockMode::AccessExclusive
                },
            );
            if alter
                .action()
                .is_some_and(|a| a.syntax().kind() == SyntaxKind::SET_TABLESPACE)
            {
                f.rewrite("SET TABLESPACE copies the index to the new tablespace");
            }
            if let Some(action) = alter
                .action()
                .filter(|a| a.syntax().kind() == SyntaxKind::INDEX_RENAME_TO)
            {
                f.renamed = renamed(index.as_ref(), name_below(action.syntax()));
            }
        }
        ast::Stmt::AlterView(alter) => {
            f.lock(
                alter.view_ref().and_then(|v| name_below(v.syntax())),
                LockMode::AccessExclusive,
            );
        }
        ast::Stmt::AlterMaterializedView(alter) => {
            f.lock(
                alter.view_ref().and_then(|v| name_below(v.syntax())),
                LockMode::AccessExclusive,
            );
        }
        ast::Stmt::Refresh(refresh) => {
            let view = refresh.view_ref().and_then(|v| name_below(v.syntax()));
            if refresh.concurrently_token().is_some() {
                f.lock(view, LockMode::Exclusive);
                f.scan("recomputes the view and applies the differences");
            } else {
                f.lock(view, LockMode::AccessExclusive);
                f.rewrite("recomputes the whole materialized view");
            }
        }
        ast::Stmt::Vacuum(vacuum) => {
            let full = vacuum.full_token().is_some() || has_option(&node, "FULL");
            let mode = if full {
                LockMode::AccessExclusive
            } else {
                LockMode::ShareUpdateExclusive
            };
            for t in node
                .descendants()
                .filter(|n| n.kind() == SyntaxKind::TABLE_RELATION_NAME)
            {
                f.lock(name_below(&t), mode);
            }
            if full {
                f.rewrite("VACUUM FULL writes a new copy of the table");
            } else {
                f.scan("reads the table");
            }
        }
        ast::Stmt::Analyze(_) => {
            for t in node
                .descendants()
                .filter(|n| n.kind() == SyntaxKind::TABLE_RELATION_NAME)
            {
                f.lock(name_below(&t), LockMode::ShareUpdateExclusive);
            }
            f.scan("samples the table");
        }
        ast::Stmt::Cluster(cluster) => {
            let table = cluster
                .table_name_ref()
                .and_then(|t| name_below(t.syntax()));
            if table.is_none() {
                f.note = Some("CLUSTER without a table reclusters every clustered table".into());
            }
            f.lock(table, LockMode::AccessExclusive);
            f.rewrite("CLUSTER writes a new copy of the table in index order");
        }
        ast::Stmt::Lock(lock) => {
            let mode = lock
                .lock_mode_clause()
                .and_then(|c| c.lock_mode())
                .map_or(LockMode::AccessExclusive, |m| LockMode::from_ast(&m));
            if let Some(list) = lock.relation_list() {
                for r in list.relation_names() {
                    f.lock(name_below(r.syntax()), mode);
                }
            }
        }
        ast::Stmt::Insert(insert) => {
            let table = insert
                .relation_name_ref()
                .and_then(|r| name_below(r.syntax()));
            f.lock(table, LockMode::RowExclusive);
        }
        ast::Stmt::Update(update) => {
            let table = update.relation_name().and_then(|r| name_below(r.syntax()));
            f.lock(table, LockMode::RowExclusive);
            if update.where_clause_or_current_of().is_none() {
                f.scan("updates every row (a new version of each row is written)");
            }
        }
        ast::Stmt::Delete(delete) => {
            let table = delete.relation_name().and_then(|r| name_below(r.syntax()));
            f.lock(table, LockMode::RowExclusive);
            if delete.where_clause_or_current_of().is_none() {
                f.scan("deletes every row");
            }
        }
        ast::Stmt::Merge(merge) => {
            let table = merge
                .table_relation_name()
                .and_then(|r| name_below(r.syntax()));
            f.lock(table, LockMode::RowExclusive);
        }
        ast::Stmt::Do(_) | ast::Stmt::Call(_) => {
            f.note = Some("runs procedural code: its locks depend on what it does".into());
        }
        _ => {}
    }
    f.finish()
}

/// `REFERENCES` clauses (inline or table constraints) of a `CREATE TABLE`: the referenced
/// table gets SHARE ROW EXCLUSIVE (its foreign-key triggers are added).
fn references(node: &SyntaxNode, f: &mut Facts) {
    for n in node.descendants() {
        if matches!(
            n.kind(),
            SyntaxKind::REFERENCES_CONSTRAINT | SyntaxKind::FOREIGN_KEY_CONSTRAINT
        ) {
            f.lock(
                name_of_kind(&n, SyntaxKind::TABLE_NAME_REF),
                LockMode::ShareRowExclusive,
            );
        }
    }
}

fn reindex(node: &SyntaxNode, f: &mut Facts) {
    let Some(target) = node.children().find(|c| {
        matches!(
            c.kind(),
            SyntaxKind::REINDEX_TARGET_INDEX
                | SyntaxKind::REINDEX_TARGET_TABLE
                | SyntaxKind::REINDEX_TARGET_SCHEMA
                | SyntaxKind::REINDEX_TARGET_DATABASE
                | SyntaxKind::REINDEX_TARGET_SYSTEM
        )
    }) else {
        return;
    };
    let concurrently = target
        .children_with_tokens()
        .any(|t| t.kind() == SyntaxKind::CONCURRENTLY_KW)
        || has_option(node, "CONCURRENTLY");
    // REINDEX blocks writes to the table (SHARE) and, through the index's ACCESS EXCLUSIVE lock,
    // every read that would use the index. CONCURRENTLY only takes SHARE UPDATE EXCLUSIVE.
    let mode = if concurrently {
        LockMode::ShareUpdateExclusive
    } else {
        LockMode::Share
    };
    match target.kind() {
        SyntaxKind::REINDEX_TARGET_INDEX => {
            f.lock_index_table(name_below(&target), mode);
            if !concurrently {
                f.note = Some(
                    "queries that would use the index wait too (ACCESS EXCLUSIVE on the index)"
                        .into(),
                );
            }
        }
        SyntaxKind::REINDEX_TARGET_TABLE => f.lock(name_below(&target), mode),
        _ => f.note = Some("reindexes many tables, one after the other".into()),
    }
    f.scan(if concurrently {
        "rebuilds the indexes by reading the table, without blocking writes"
    } else {
        "rebuilds the indexes by reading the whole table"
    });
}

/// A parenthesised option such as `(FULL)` or `(CONCURRENTLY true)` among the statement's
/// direct children.
fn has_option(node: &SyntaxNode, option: &str) -> bool {
    node.children()
        .filter(|c| {
            matches!(
                c.kind(),
                SyntaxKind::VACUUM_OPTION_LIST
                    | SyntaxKind::REINDEX_OPTION_LIST
                    | SyntaxKind::OPTION_ITEM_LIST
            )
        })
        .flat_map(|list| list.descendants_with_tokens())
        .filter_map(|e| e.into_token())
        .any(|t| t.text().eq_ignore_ascii_case(option))
}

fn alter_table(alter: &ast::AlterTable, f: &mut Facts) {
    let table = alter
        .table_relation_name()
        .and_then(|t| name_below(t.syntax()));
    // The altered table first; each action raises its lock.
    f.lock(table.clone(), LockMode::AccessShare);
    let mut actions = Vec::new();
    for action in alter.actions() {
        actions.push(action_label(&action));
        let mode = alter_table_action(&action, table.as_ref(), f);
        f.lock(table.clone(), mode);
    }
    if actions.is_empty() {
        // ALTER TABLE ALL IN TABLESPACE … or something the parser did not understand.
        f.lock(table, LockMode::AccessExclusive);
    } else {
        f.command = format!("ALTER TABLE … {}", actions.join(", "));
    }
}

/// The lock one `ALTER TABLE` action takes on the table (other relations are locked directly),
/// recording rewrites and scans.
fn alter_table_action(
    action: &ast::AlterTableAction,
    table: Option<&RelationName>,
    f: &mut Facts,
) -> LockMode {
    use ast::AlterTableAction as A;
    match action {
        A::AddColumn(add) => {
            add_column(add, f);
            LockMode::AccessExclusive
        }
        A::AddConstraint(add) => add_constraint(add, f),
        A::AlterColumn(alter) => match alter.option() {
            Some(
                ast::AlterColumnOption::SetStatistics(_)
                | ast::AlterColumnOption::SetOptions(_)
                | ast::AlterColumnOption::ResetOptions(_),
            ) => LockMode::ShareUpdateExclusive,
            Some(ast::AlterColumnOption::SetType(_)) => {
                f.rewrite(
                    "SET TYPE rewrites the table and rebuilds its indexes (unless the old type is \
                     binary-coercible to the new one, e.g. varchar(n) to text)",
                );
                LockMode::AccessExclusive
            }
            Some(ast::AlterColumnOption::SetNotNull(_)) => {
                f.scan(if f.major.is_some_and(|m| m >= 18) {
                    "SET NOT NULL checks every row under ACCESS EXCLUSIVE (unless a valid CHECK (col IS NOT NULL) \
                     proves it); PostgreSQL 18 can instead ADD CONSTRAINT name NOT NULL col NOT VALID, then \
                     VALIDATE CONSTRAINT, which checks the rows without blocking writes"
                } else {
                    "SET NOT NULL checks every row (unless a valid CHECK (col IS NOT NULL) proves it)"
                });
                LockMode::AccessExclusive
            }
            Some(ast::AlterColumnOption::AddGenerated(_)) => {
                f.rewrite("the generated values are computed for every row");
                LockMode::AccessExclusive
            }
            Some(ast::AlterColumnOption::SetExpression(_)) => {
                f.rewrite(match f.major {
                    Some(m) if m < 18 => "SET EXPRESSION recomputes the stored column for every row",
                    _ => "SET EXPRESSION recomputes a stored column for every row (a virtual one, PostgreSQL 18+, \
                          is only recomputed when read)",
                });
                LockMode::AccessExclusive
            }
            _ => LockMode::AccessExclusive,
        },
        A::ValidateConstraint(_) => {
            f.scan("VALIDATE CONSTRAINT checks every row (writes continue meanwhile)");
            LockMode::ShareUpdateExclusive
        }
        A::SetOptions(_) | A::ResetOptions(_) | A::ClusterOn(_) | A::SetWithoutCluster(_) => {
            LockMode::ShareUpdateExclusive
        }
        A::DisableTrigger(_)
        | A::EnableTrigger(_)
        | A::EnableAlwaysTrigger(_)
        | A::EnableReplicaTrigger(_) => LockMode::ShareRowExclusive,
        A::AttachPartition(attach) => {
            f.lock(
                attach.table_name_ref().and_then(|t| name_below(t.syntax())),
                LockMode::AccessExclusive,
            );
            f.scan("ATTACH PARTITION checks every row of the partition (unless a matching CHECK constraint proves the bound)");
            LockMode::ShareUpdateExclusive
        }
        A::DetachPartition(detach) => {
            let concurrently = detach
                .syntax()
                .descendants_with_tokens()
                .any(|t| t.kind() == SyntaxKind::CONCURRENTLY_KW);
            let mode = if concurrently {
                LockMode::ShareUpdateExclusive
            } else {
                LockMode::AccessExclusive
            };
            f.lock(
                detach.table_name_ref().and_then(|t| name_below(t.syntax())),
                mode,
            );
            mode
        }
        A::SetTablespace(_) => {
            f.rewrite("SET TABLESPACE copies the table to the new tablespace");
            LockMode::AccessExclusive
        }
        A::SetLogged(_) | A::SetUnlogged(_) => {
            f.rewrite("SET LOGGED/UNLOGGED writes a new copy of the table");
            LockMode::AccessExclusive
        }
        A::SetAccessMethod(_) => {
            f.rewrite("SET ACCESS METHOD writes a new copy of the table");
            LockMode::AccessExclusive
        }
        A::TableRenameTo(rename) => {
            f.renamed = renamed(table, name_below(rename.syntax()));
            LockMode::AccessExclusive
        }
        _ => LockMode::AccessExclusive,
    }
}

/// A rename's old and new name; the new name lives in the old one's schema.
fn renamed(
    old: Option<&RelationName>,
    new: Option<RelationName>,
) -> Option<(RelationName, RelationName)> {
    let (old, new) = (old?, new?);
    Some((
        old.clone(),
        RelationName {
            schema: old.schema.clone(),
            name: new.name,
        },
    ))
}

fn add_column(add: &ast::AddColumn, f: &mut Facts) {
    let serial = add.ty().is_some_and(|t| {
        let ty = t.syntax().text().to_string().to_ascii_lowercase();
        matches!(
            ty.as_str(),
            "serial" | "bigserial" | "smallserial" | "serial4" | "serial8" | "serial2"
        )
    });
    if serial {
        f.rewrite("a serial column's default (nextval) is computed for every row");
    }
    for constraint in add.constraints() {
        let node = constraint.syntax();
        match node.kind() {
            SyntaxKind::DEFAULT_CONSTRAINT => {
                if let Some(expr) = node.children().next() {
                    match volatility(&expr) {
                        Volatility::Volatile(function) => f.rewrite(format!(
                            "the volatile default {function}() is computed for every row"
                        )),
                        Volatility::Unknown(function) => f.rewrite(format!(
                            "the default calls {function}(): if it is volatile, it is computed for every \
                             row (stable and immutable defaults are stored once, PostgreSQL 11+)"
                        )),
                        Volatility::Stable => {}
                    }
                }
            }
            SyntaxKind::GENERATED_CONSTRAINT => generated_column(node, f),
            SyntaxKind::CHECK_CONSTRAINT => {
                f.scan("the CHECK constraint is checked against every row");
            }
            SyntaxKind::NOT_NULL_CONSTRAINT => {
                f.scan("NOT NULL is checked against every row (fails on a non-empty table without a default)");
            }
            SyntaxKind::PRIMARY_KEY_CONSTRAINT | SyntaxKind::UNIQUE_CONSTRAINT => {
                f.scan("an index is built by reading the whole table");
            }
            SyntaxKind::REFERENCES_CONSTRAINT => {
                f.lock(
                    name_of_kind(node, SyntaxKind::TABLE_NAME_REF),
                    LockMode::ShareRowExclusive,
                );
            }
            _ => {}
        }
    }
}

fn add_constraint(add: &ast::AddConstraint, f: &mut Facts) -> LockMode {
    let Some(constraint) = add.constraint() else {
        return LockMode::AccessExclusive;
    };
    let node = constraint.syntax();
    let not_valid = node
        .descendants()
        .any(|n| n.kind() == SyntaxKind::NOT_VALID)
        || add
            .syntax()
            .children()
            .any(|n| n.kind() == SyntaxKind::NOT_VALID);
    let using_index = node
        .descendants()
        .any(|n| n.kind() == SyntaxKind::USING_INDEX_NAME);
    match node.kind() {
        SyntaxKind::FOREIGN_KEY_CONSTRAINT => {
            f.lock(
                name_of_kind(node, SyntaxKind::TABLE_NAME_REF),
                LockMode::ShareRowExclusive,
            );
            if !not_valid {
                f.scan("the foreign key is checked against every row (add it NOT VALID, then VALIDATE CONSTRAINT)");
            }
            LockMode::ShareRowExclusive
        }
        SyntaxKind::CHECK_CONSTRAINT | SyntaxKind::NOT_NULL_CONSTRAINT => {
            // A NOT ENFORCED constraint (PostgreSQL 18) is never checked against the rows.
            if !not_valid && !has_words(add.syntax(), &["NOT", "ENFORCED"]) {
                f.scan("the constraint is checked against every row (add it NOT VALID, then VALIDATE CONSTRAINT)");
            }
            LockMode::AccessExclusive
        }
        SyntaxKind::PRIMARY_KEY_CONSTRAINT | SyntaxKind::UNIQUE_CONSTRAINT if !using_index => {
            f.scan("an index is built by reading the whole table (build it first with CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … USING INDEX)");
            LockMode::AccessExclusive
        }
        SyntaxKind::EXCLUDE_CONSTRAINT => {
            f.scan("an index is built by reading the whole table");
            LockMode::AccessExclusive
        }
        _ => LockMode::AccessExclusive,
    }
}

/// `GENERATED ALWAYS AS (…) STORED` computes every row now; without `STORED` (or with `VIRTUAL`) the column is
/// virtual, computed when read: PostgreSQL 18 and later, which then rewrite nothing.
fn generated_column(node: &SyntaxNode, f: &mut Facts) {
    if has_words(node, &["IDENTITY"]) {
        f.rewrite("identity values are assigned to every row");
    } else if has_words(node, &["STORED"]) {
        f.rewrite(if f.major.is_some_and(|m| m >= 18) {
            "the stored generated values are computed for every row (a VIRTUAL column, PostgreSQL 18+, is computed \
             when read and rewrites nothing)"
        } else {
            "the generated values are computed for every row"
        });
    } else if let Some(major) = f.major.filter(|m| *m < 18) {
        f.note = Some(format!(
            "a generated column without STORED is virtual, new in PostgreSQL 18: PostgreSQL {major} refuses it"
        ));
    }
}

/// Whether `node` holds the keywords `words` in a row (ASCII case-insensitive, trivia skipped).
fn has_words(node: &SyntaxNode, words: &[&str]) -> bool {
    let tokens: Vec<String> = node
        .descendants_with_tokens()
        .filter_map(|e| e.into_token())
        .filter(|t| !t.kind().is_trivia())
        .map(|t| t.text().to_ascii_uppercase())
        .collect();
    tokens
        .windows(words.len())
        .any(|w| w.iter().zip(words).all(|(a, b)| a == b))
}

enum Volatility {
    /// No function call, or only calls known to be stable or immutable.
    Stable,
    /// Calls a built-in function known to be volatile.
    Volatile(String),
    /// Calls a function whose volatility cannot be known from the text.
    Unknown(String),
}

/// Built-in volatile functions commonly used as column defaults.
const VOLATILE: &[&str] = &[
    "random",
    "gen_random_uuid",
    "uuid_generate_v1",
    "uuid_generate_v1mc",
    "uuid_generate_v4",
    "clock_timestamp",
    "timeofday",
    "nextval",
    "setseed",
    "txid_current",
    "pg_current_xact_id",
    "uuidv4",
    "uuidv7",
];

/// Built-in stable or immutable functions commonly used as column defaults.
const NOT_VOLATILE: &[&str] = &[
    "now",
    "transaction_timestamp",
    "statement_timestamp",
    "current_timestamp",
    "current_date",
    "localtimestamp",
    "lower",
    "upper",
    "coalesce",
    "to_jsonb",
    "jsonb_build_object",
    "json_build_object",
    "array",
    "make_interval",
    "to_timestamp",
    "current_setting",
];

fn volatility(expr: &SyntaxNode) -> Volatility {
    let mut unknown = None;
    for call in expr
        .descendants()
        .filter(|n| n.kind() == SyntaxKind::CALL_EXPR)
    {
        let name = call
            .first_child()
            .and_then(|n| {
                n.descendants_with_tokens()
                    .filter_map(|e| e.into_token())
                    .filter(|t| !t.kind().is_trivia())
                    .last()
            })
            .map(|t| t.text().trim_matches('"').to_ascii_lowercase())
            .unwrap_or_default();
        if VOLATILE.contains(&name.as_str()) {
            return Volatility::Volatile(name);
        }
        if !NOT_VOLATILE.contains(&name.as_str()) && unknown.is_none() {
            unknown = Some(name);
        }
    }
    match unknown {
        Some(name) => Volatility::Unknown(name),
        None => Volatility::Stable,
    }
}

/// `ADD COLUMN`, `ALTER COLUMN … SET TYPE`, `ADD FOREIGN KEY`, … for the command label.
fn action_label(action: &ast::AlterTableAction) -> String {
    let node = action.syntax();
    let base = match node.kind() {
        SyntaxKind::TABLE_RENAME_TO => "RENAME TO".to_string(),
        kind => kind_words(kind),
    };
    match action {
        ast::AlterTableAction::AlterColumn(alter) => match alter.option() {
            Some(option) => format!("ALTER COLUMN … {}", kind_words(option.syntax().kind())),
            None => base,
        },
        ast::AlterTableAction::AddConstraint(add) => match add.constraint() {
            Some(c) => {
                let words = kind_words(c.syntax().kind());
                format!("ADD {}", words.trim_end_matches(" CONSTRAINT"))
            }
            None => base,
        },
        _ => base,
    }
}

/// `SET_NOT_NULL` → `SET NOT NULL`.
fn kind_words(kind: SyntaxKind) -> String {
    format!("{kind:?}").replace('_', " ")
}

/// A short label for a statement kind, e.g. `CREATE INDEX CONCURRENTLY`.
fn label(kind: &StatementKind) -> String {
    match kind {
        StatementKind::CreateFunction => "CREATE FUNCTION".into(),
        StatementKind::CreateProcedure => "CREATE PROCEDURE".into(),
        StatementKind::CreateView => "CREATE VIEW".into(),
        StatementKind::CreateMaterializedView => "CREATE MATERIALIZED VIEW".into(),
        StatementKind::CreateTrigger => "CREATE TRIGGER".into(),
        StatementKind::CommentOn => "COMMENT ON".into(),
        StatementKind::CreateTable => "CREATE TABLE".into(),
        StatementKind::AlterTable => "ALTER TABLE".into(),
        StatementKind::CreateIndex { concurrently } => {
            concurrently_label("CREATE INDEX", *concurrently)
        }
        StatementKind::DropIndex { concurrently } => {
            concurrently_label("DROP INDEX", *concurrently)
        }
        StatementKind::Reindex { concurrently } => concurrently_label("REINDEX", *concurrently),
        StatementKind::Vacuum => "VACUUM".into(),
        StatementKind::AlterSystem => "ALTER SYSTEM".into(),
        StatementKind::CreateDatabase => "CREATE DATABASE".into(),
        StatementKind::DropDatabase => "DROP DATABASE".into(),
        StatementKind::AlterTypeAddValue => "ALTER TYPE … ADD VALUE".into(),
        StatementKind::Do => "DO".into(),
        StatementKind::Begin => "BEGIN".into(),
        StatementKind::Commit => "COMMIT".into(),
        StatementKind::Rollback => "ROLLBACK".into(),
        StatementKind::Set => "SET".into(),
        StatementKind::Select => "SELECT".into(),
        StatementKind::Insert => "INSERT".into(),
        StatementKind::Update => "UPDATE".into(),
        StatementKind::Delete => "DELETE".into(),
        StatementKind::Other(tag) => tag.clone(),
    }
}

fn concurrently_label(base: &str, concurrently: bool) -> String {
    if concurrently {
        format!("{base} CONCURRENTLY")
    } else {
        base.to_string()
    }
}
