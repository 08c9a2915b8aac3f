//! The rows each check returns. Sizes are bytes, ages seconds, ratios fractions; names are unquoted.

use chrono::{DateTime, Utc};
use serde::Serialize;

/// The rows of one check (the variant matches the check).
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Details {
    /// `database-sizes`.
    DatabaseSizes(Vec<DatabaseSize>),
    /// `schema-sizes`.
    SchemaSizes(Vec<SchemaSize>),
    /// `table-sizes`.
    TableSizes(TableSizes),
    /// `unused-indexes`.
    UnusedIndexes(UnusedIndexes),
    /// `duplicate-indexes`.
    DuplicateIndexes(Vec<DuplicateIndex>),
    /// `invalid-indexes`.
    InvalidIndexes(Vec<InvalidIndex>),
    /// `index-bloat` and `table-bloat`.
    Bloat(Vec<Bloat>),
    /// `dead-tuples`.
    DeadTuples(Vec<DeadTuples>),
    /// `vacuum-analyze`.
    VacuumAnalyze(Vec<VacuumAnalyze>),
    /// `seq-scans`.
    SeqScans(Vec<SeqScans>),
    /// `wraparound`.
    Wraparound(Wraparound),
    /// `long-transactions`.
    Transactions(Vec<Transaction>),
    /// `blocking-locks`.
    BlockingLocks(Vec<LockedSession>),
    /// `connections`.
    Connections(Connections),
    /// `cache-hit`.
    CacheHit(CacheHit),
    /// `replication-slots`.
    ReplicationSlots(Vec<ReplicationSlot>),
    /// `checkpoints`.
    Checkpoints(Checkpoints),
    /// `strata`.
    Strata(StrataState),
    /// `queues`.
    Queues(Vec<QueueState>),
    /// `streams`.
    Streams(Vec<StreamState>),
    /// `statements`.
    Statements(Vec<Statement>),
}

/// One database.
#[derive(Debug, Clone, Serialize)]
pub struct DatabaseSize {
    /// Name.
    pub name: String,
    /// `pg_database_size`; `None` when the role may not connect to it.
    pub bytes: Option<i64>,
    /// The database inspected.
    pub current: bool,
}

/// One schema.
#[derive(Debug, Clone, Serialize)]
pub struct SchemaSize {
    /// Name.
    pub schema: String,
    /// The Strata package(s) deployed into it.
    pub packages: Vec<String>,
    /// Tables and materialized views.
    pub tables: i64,
    /// Their total size with indexes and TOAST, from the catalog's page counts.
    pub bytes: i64,
}

/// The largest tables.
#[derive(Debug, Clone, Serialize)]
pub struct TableSizes {
    /// How many tables there are.
    pub tables: i64,
    /// Their total size.
    pub total_bytes: i64,
    /// The largest ones.
    pub largest: Vec<TableSize>,
}

/// One table.
#[derive(Debug, Clone, Serialize)]
pub struct TableSize {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Heap, indexes and TOAST.
    pub total_bytes: i64,
    /// Heap (with its free space and visibility maps).
    pub table_bytes: i64,
    /// All its indexes.
    pub index_bytes: i64,
    /// TOAST table and its index.
    pub toast_bytes: i64,
    /// `reltuples`; `None` before the first vacuum or analyze.
    pub rows_estimate: Option<i64>,
    /// Sizes from the catalog's page counts, because another session holds an exclusive lock on it.
    pub estimated: bool,
}

/// Indexes never scanned.
#[derive(Debug, Clone, Serialize)]
pub struct UnusedIndexes {
    /// When this database's statistics were last reset (`None`: never): "unused" means since then.
    pub stats_reset: Option<DateTime<Utc>>,
    /// How many there are.
    pub count: i64,
    /// Their total size.
    pub total_bytes: i64,
    /// The largest.
    pub indexes: Vec<UnusedIndex>,
}

/// One unused index.
#[derive(Debug, Clone, Serialize)]
pub struct UnusedIndex {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Index.
    pub index: String,
    /// Size.
    pub bytes: i64,
    /// `CREATE INDEX …`.
    pub definition: String,
}

/// An index that another index makes unnecessary.
#[derive(Debug, Clone, Serialize)]
pub struct DuplicateIndex {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// The unnecessary index.
    pub index: String,
    /// Its size.
    pub bytes: i64,
    /// Its definition.
    pub definition: String,
    /// The index that covers it.
    pub covered_by: String,
    /// That index's definition.
    pub covered_by_definition: String,
    /// Same definition (else: its columns are a prefix of the other's).
    pub exact: bool,
}

/// An invalid index.
#[derive(Debug, Clone, Serialize)]
pub struct InvalidIndex {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Index.
    pub index: String,
    /// Size.
    pub bytes: i64,
    /// Definition.
    pub definition: String,
    /// A `CREATE INDEX CONCURRENTLY` is building it right now (not a problem yet).
    pub being_built: bool,
}

/// Estimated bloat of a table or index.
#[derive(Debug, Clone, Serialize)]
pub struct Bloat {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Index (`None` for a table).
    pub index: Option<String>,
    /// Size on disk (catalog page count).
    pub bytes: i64,
    /// Estimated space beyond what its rows need at its fillfactor.
    pub wasted_bytes: i64,
    /// `wasted_bytes / bytes`.
    pub ratio: f64,
}

/// Dead tuples of one table.
#[derive(Debug, Clone, Serialize)]
pub struct DeadTuples {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Live tuples.
    pub live: i64,
    /// Dead tuples.
    pub dead: i64,
    /// `dead / (live + dead)`.
    pub ratio: f64,
    /// Last manual vacuum.
    pub last_vacuum: Option<DateTime<Utc>>,
    /// Last autovacuum.
    pub last_autovacuum: Option<DateTime<Utc>>,
    /// Autovacuum is switched off for this table (`autovacuum_enabled = false`).
    pub autovacuum_disabled: bool,
}

/// Vacuum and analyze state of one table.
#[derive(Debug, Clone, Serialize)]
pub struct VacuumAnalyze {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Live tuples.
    pub live: i64,
    /// Rows changed since the last analyze.
    pub modified_since_analyze: i64,
    /// Never analyzed (the planner guesses its statistics).
    pub never_analyzed: bool,
    /// Last manual vacuum.
    pub last_vacuum: Option<DateTime<Utc>>,
    /// Last autovacuum.
    pub last_autovacuum: Option<DateTime<Utc>>,
    /// Last manual analyze.
    pub last_analyze: Option<DateTime<Utc>>,
    /// Last autoanalyze.
    pub last_autoanalyze: Option<DateTime<Utc>>,
}

/// A large table read by sequential scans.
#[derive(Debug, Clone, Serialize)]
pub struct SeqScans {
    /// Schema.
    pub schema: String,
    /// Table.
    pub table: String,
    /// Estimated rows.
    pub rows: i64,
    /// Sequential scans.
    pub seq_scans: i64,
    /// Rows read by them.
    pub seq_rows_read: i64,
    /// Index scans.
    pub index_scans: i64,
    /// Share of scans that used an index.
    pub index_use: f64,
    /// Last sequential scan (PostgreSQL 16 and later).
    pub last_seq_scan: Option<DateTime<Utc>>,
}

/// Wraparound ages.
#[derive(Debug, Clone, Serialize)]
pub struct Wraparound {
    /// `autovacuum_freeze_max_age`.
    pub autovacuum_freeze_max_age: i64,
    /// `autovacuum_multixact_freeze_max_age`.
    pub autovacuum_multixact_freeze_max_age: i64,
    /// Every database of the cluster.
    pub databases: Vec<XidAge>,
    /// The oldest tables of this database.
    pub tables: Vec<XidAge>,
}

/// The age of one database's or table's oldest unfrozen IDs.
#[derive(Debug, Clone, Serialize)]
pub struct XidAge {
    /// Schema (tables only).
    pub schema: Option<String>,
    /// Database or table.
    pub name: String,
    /// `age(datfrozenxid)` / `age(relfrozenxid)`.
    pub xid_age: i64,
    /// `mxid_age(datminmxid)` / `mxid_age(relminmxid)`.
    pub multixact_age: i64,
}

/// A long transaction, or a session idle inside one.
#[derive(Debug, Clone, Serialize)]
pub struct Transaction {
    /// Backend pid (`None` for a prepared transaction).
    pub pid: Option<i32>,
    /// Role.
    pub user: Option<String>,
    /// Database.
    pub database: Option<String>,
    /// `application_name`.
    pub application: Option<String>,
    /// `active`, `idle in transaction`, `prepared`, …
    pub state: Option<String>,
    /// How long the transaction has run.
    pub transaction_age_s: Option<f64>,
    /// How long it has been in its state.
    pub state_age_s: Option<f64>,
    /// Current or last query (`None` when the role may not see it).
    pub query: Option<String>,
}

/// A session in a lock chain: waiting, holding, or both.
#[derive(Debug, Clone, Serialize)]
pub struct LockedSession {
    /// Backend pid.
    pub pid: i32,
    /// Role.
    pub user: Option<String>,
    /// Database.
    pub database: Option<String>,
    /// State.
    pub state: Option<String>,
    /// Current or last query.
    pub query: Option<String>,
    /// Age of its transaction.
    pub transaction_age_s: Option<f64>,
    /// How long it has been waiting for its lock (`None`: not waiting).
    pub waiting_s: Option<f64>,
    /// The lock it waits for, e.g. `RowExclusiveLock on app.accounts`.
    pub waiting_for: Option<String>,
    /// The sessions it waits for.
    pub blocked_by: Vec<i32>,
}

/// Connection use.
#[derive(Debug, Clone, Serialize)]
pub struct Connections {
    /// Client connections.
    pub used: i64,
    /// `max_connections`.
    pub max_connections: i64,
    /// `superuser_reserved_connections` (+ `reserved_connections` from PostgreSQL 16).
    pub reserved: i64,
    /// `used / (max_connections - reserved)`.
    pub ratio: f64,
    /// Connections per state (`active`, `idle`, …).
    pub by_state: Vec<(String, i64)>,
    /// Connections per database.
    pub by_database: Vec<(String, i64)>,
}

/// Cache hit ratios (`None`: not enough reads yet to judge).
#[derive(Debug, Clone, Serialize)]
pub struct CacheHit {
    /// Table blocks found in shared buffers / all table blocks read.
    pub table_ratio: Option<f64>,
    /// The same for indexes.
    pub index_ratio: Option<f64>,
    /// The same for the whole database, catalogs included (`pg_stat_database`).
    pub database_ratio: Option<f64>,
    /// Table block reads (hits + disk).
    pub table_blocks: i64,
    /// Index block reads (hits + disk).
    pub index_blocks: i64,
}

/// One replication slot.
#[derive(Debug, Clone, Serialize)]
pub struct ReplicationSlot {
    /// Name.
    pub name: String,
    /// `physical` or `logical`.
    pub kind: String,
    /// Output plugin (logical slots).
    pub plugin: Option<String>,
    /// Database (logical slots).
    pub database: Option<String>,
    /// A consumer is connected.
    pub active: bool,
    /// Dropped at the end of its session.
    pub temporary: bool,
    /// `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    /// WAL kept for it.
    pub retained_bytes: Option<i64>,
    /// Inactive for this long (PostgreSQL 17 and later).
    pub inactive_s: Option<f64>,
}

/// Checkpoint counters since the last reset.
#[derive(Debug, Clone, Serialize)]
pub struct Checkpoints {
    /// Checkpoints started by `checkpoint_timeout`.
    pub timed: i64,
    /// Checkpoints requested (WAL reached `max_wal_size`, or `CHECKPOINT`).
    pub requested: i64,
    /// `requested / (timed + requested)`.
    pub requested_ratio: Option<f64>,
    /// When the counters were reset.
    pub stats_reset: Option<DateTime<Utc>>,
    /// `checkpoint_timeout`.
    pub checkpoint_timeout: String,
    /// `max_wal_size`.
    pub max_wal_size: String,
}

/// Strata's history.
#[derive(Debug, Clone, Serialize)]
pub struct StrataState {
    /// Packages recorded in the database.
    pub packages: Vec<PackageState>,
    /// The last run.
    pub last_run: Option<RunState>,
    /// The last failed run, if any.
    pub last_failure: Option<RunState>,
}

/// One package.
#[derive(Debug, Clone, Serialize)]
pub struct PackageState {
    /// Name.
    pub name: String,
    /// Schema.
    pub schema: String,
    /// Applied migrations.
    pub applied: i64,
    /// When the last one was applied.
    pub last_applied_at: Option<DateTime<Utc>>,
    /// Managed objects recorded.
    pub managed_objects: i64,
    /// Pending migrations (known only with the package's files).
    pub pending: Option<i64>,
    /// Applied migrations whose files changed, or that have no file any more (with the files).
    pub changed_or_missing: Option<i64>,
    /// Managed objects changed or dropped outside Strata (with the files).
    pub drifted: Option<i64>,
    /// Managed code new or changed in the files, not installed yet (with the files).
    pub code_pending: Option<i64>,
}

/// One `strata.run` row.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct RunState {
    /// Run id.
    pub id: i64,
    /// `up`, `down`, …
    pub command: String,
    /// `success`, `noop`, `failed`, `running`, `dry-run`.
    pub outcome: String,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// End.
    pub finished_at: Option<DateTime<Utc>>,
    /// The error of a failed run.
    pub error: Option<String>,
    /// Who ran it.
    pub db_user: String,
}

/// One MiniPaaS queue.
#[derive(Debug, Clone, Serialize)]
pub struct QueueState {
    /// Name.
    pub name: String,
    /// Deliverable now.
    pub ready: i64,
    /// Delayed or backing off.
    pub delayed: i64,
    /// Leased, lease running.
    pub in_flight: i64,
    /// Leased, lease ran out (delivered again by the next dequeue).
    pub expired: i64,
    /// Waiting behind an earlier message with the same ordering key.
    pub waiting: i64,
    /// Dead letters.
    pub dead: i64,
    /// Acked, kept for the queue's retention.
    pub done: i64,
    /// How long the oldest deliverable message has been ready.
    pub oldest_ready_age_s: Option<f64>,
    /// Where its dead letters go (`None`: they stay in the queue).
    pub dead_letter_queue: Option<String>,
}

/// One MiniPaaS stream.
#[derive(Debug, Clone, Serialize)]
pub struct StreamState {
    /// Name.
    pub name: String,
    /// Partitions.
    pub partitions: i32,
    /// Events held.
    pub events: i64,
    /// Retention by age (`None`: forever).
    pub retention_age: Option<String>,
    /// Retention by count per partition.
    pub retention_count: Option<i64>,
    /// Its consumer groups.
    pub groups: Vec<GroupLag>,
}

/// One consumer group of a stream.
#[derive(Debug, Clone, Serialize)]
pub struct GroupLag {
    /// Name.
    pub group: String,
    /// Events published after its committed offsets.
    pub pending: i64,
    /// Age of the oldest of them.
    pub oldest_pending_age_s: Option<f64>,
    /// Its last commit.
    pub last_commit_at: Option<DateTime<Utc>>,
}

/// One statement of `pg_stat_statements`.
#[derive(Debug, Clone, Serialize)]
pub struct Statement {
    /// Normalised text (`None` when the role may not see it).
    pub query: Option<String>,
    /// Role.
    pub user: Option<String>,
    /// Calls.
    pub calls: i64,
    /// Total execution time.
    pub total_ms: f64,
    /// Mean execution time.
    pub mean_ms: f64,
    /// Rows returned or affected.
    pub rows: i64,
    /// Share of the database's total execution time.
    pub share: f64,
}
