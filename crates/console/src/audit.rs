//! The record of state changes made through the console: each is reported to the [`ActionSink`] the caller gave
//! (the CLI logs one line per action on stderr) and kept in memory, so a queue's page lists what was done to it
//! from this console. MiniPaaS keeps no audit table of its own; a redriven message keeps its error history.

use std::collections::VecDeque;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use serde::Serialize;

/// What was done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ActionKind {
    /// `minipaas.queue_redrive`: dead messages made deliverable again.
    Redrive,
    /// `minipaas.queue_delete_dead`: a dead message deleted.
    DeleteDead,
}

impl fmt::Display for ActionKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ActionKind::Redrive => "redrive",
            ActionKind::DeleteDead => "delete-dead",
        })
    }
}

/// One state change made through the console.
#[derive(Debug, Clone, Serialize)]
pub struct Action {
    /// Sequence number within this console process (from 1).
    pub id: u64,
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: ActionKind,
    /// The queue.
    pub queue: String,
    /// The messages named (empty: every dead message of the queue).
    pub message_ids: Vec<i64>,
    /// How many messages it changed, or the error when it failed.
    pub outcome: std::result::Result<i64, String>,
    /// The browser's address.
    pub client: SocketAddr,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids = if self.message_ids.is_empty() {
            "all dead".to_string()
        } else {
            self.message_ids
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        write!(
            f,
            "console action #{} {} queue={:?} messages={} from={}: ",
            self.id, self.kind, self.queue, ids, self.client
        )?;
        match &self.outcome {
            Ok(n) => write!(f, "{n} message(s) changed"),
            Err(e) => write!(f, "failed: {e}"),
        }
    }
}

/// Where actions are reported (besides the console's own list of recent actions).
#[derive(Clone, Default)]
pub struct ActionSink(Option<Arc<Report>>);

/// What a sink calls for each action.
type Report = dyn Fn(&Action) + Send + Sync;

impl ActionSink {
    /// Report each action to `f`.
    pub fn new(f: impl Fn(&Action) + Send + Sync + 'static) -> ActionSink {
        ActionSink(Some(Arc::new(f)))
    }
}

impl fmt::Debug for ActionSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0.is_some() {
            "ActionSink(..)"
        } else {
            "ActionSink(none)"
        })
    }
}

/// Actions kept in memory.
const KEPT: usize = 200;

pub(crate) struct Audit {
    sink: ActionSink,
    recent: Mutex<(u64, VecDeque<Action>)>,
}

impl Audit {
    pub(crate) fn new(sink: ActionSink) -> Audit {
        Audit {
            sink,
            recent: Mutex::new((0, VecDeque::new())),
        }
    }

    /// Record an action; returns it with its number.
    pub(crate) fn record(
        &self,
        kind: ActionKind,
        queue: &str,
        message_ids: Vec<i64>,
        outcome: std::result::Result<i64, String>,
        client: SocketAddr,
    ) -> Action {
        let mut action = Action {
            id: 0,
            at: Utc::now(),
            kind,
            queue: queue.to_string(),
            message_ids,
            outcome,
            client,
        };
        if let Ok(mut recent) = self.recent.lock() {
            recent.0 += 1;
            action.id = recent.0;
            recent.1.push_back(action.clone());
            while recent.1.len() > KEPT {
                recent.1.pop_front();
            }
        }
        tracing::info!("{action}");
        if let Some(f) = &self.sink.0 {
            f(&action);
        }
        action
    }

    /// The recent actions on `queue`, newest first.
    pub(crate) fn for_queue(&self, queue: &str) -> Vec<Action> {
        self.recent
            .lock()
            .map(|r| {
                r.1.iter()
                    .rev()
                    .filter(|a| a.queue == queue)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Action number `id`, if still kept.
    pub(crate) fn get(&self, id: u64) -> Option<Action> {
        self.recent
            .lock()
            .ok()
            .and_then(|r| r.1.iter().find(|a| a.id == id).cloned())
    }
}
