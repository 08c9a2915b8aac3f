//! What the console measures while it runs: every queue's depth each `sample_every` (the charts of the last
//! hour), and the `inspect` checks each `inspect_every` (the overview's verdicts, without making the page wait for
//! them).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use pgstrata_ops::inspect::{InspectOptions, InspectReport};

use crate::routes::AppState;

/// How far back the charts go.
pub(crate) const WINDOW_MINUTES: i64 = 60;

/// One queue at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Point {
    pub at: DateTime<Utc>,
    /// Ready, delayed and waiting messages.
    pub depth: i64,
    /// Leased (lease running or run out).
    pub in_flight: i64,
    pub dead: i64,
}

/// All queues at one moment.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Total {
    pub at: DateTime<Utc>,
    pub depth: i64,
    pub in_flight: i64,
    pub dead: i64,
    /// Messages ever enqueued (the id sequence), when readable.
    pub enqueued: Option<i64>,
}

#[derive(Default)]
pub(crate) struct Samples {
    pub queues: HashMap<String, VecDeque<Point>>,
    pub total: VecDeque<Total>,
}

impl Samples {
    fn trim(&mut self, now: DateTime<Utc>) {
        let oldest = now - Duration::minutes(WINDOW_MINUTES);
        while self.total.front().is_some_and(|t| t.at < oldest) {
            self.total.pop_front();
        }
        self.queues.retain(|_, points| {
            while points.front().is_some_and(|p| p.at < oldest) {
                points.pop_front();
            }
            !points.is_empty()
        });
    }
}

/// The last inspection and when it finished, or why it failed.
#[derive(Default)]
pub(crate) struct Inspection {
    pub report: Option<InspectReport>,
    pub error: Option<String>,
}

pub(crate) struct Background(Vec<tokio::task::JoinHandle<()>>);

impl Background {
    pub(crate) fn abort(&self) {
        for h in &self.0 {
            h.abort();
        }
    }
}

pub(crate) fn spawn(state: Arc<AppState>) -> Background {
    let sampler = {
        let state = state.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(state.opts.sample_every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                if let Err(e) = sample(&state).await {
                    tracing::warn!("console: sampling the queues failed: {e}");
                }
            }
        })
    };
    let inspector = tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.opts.inspect_every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let result = inspect(&state).await;
            if let Ok(mut slot) = state.inspection.lock() {
                match result {
                    Ok(report) => {
                        slot.report = Some(report);
                        slot.error = None;
                    }
                    Err(e) => slot.error = Some(e.to_string()),
                }
            }
        }
    });
    Background(vec![sampler, inspector])
}

async fn inspect(state: &AppState) -> crate::Result<InspectReport> {
    let db = state.pool.get().await?;
    let opts = InspectOptions {
        checks: Vec::new(),
        settings: state.opts.inspect_settings.clone(),
    };
    Ok(pgstrata_ops::inspect::inspect(&db, &opts, state.project.as_ref()).await?)
}

/// Take one sample of every queue.
pub(crate) async fn sample(state: &AppState) -> crate::Result<()> {
    let db = state.pool.get().await?;
    if !pgstrata_ops::minipaas::installed(db.client()).await? {
        return Ok(());
    }
    let queues = pgstrata_ops::minipaas::all_queues(db.client()).await?;
    let enqueued = pgstrata_ops::minipaas::messages_enqueued(db.client()).await?;
    drop(db);
    let now = Utc::now();
    let mut total = Total {
        at: now,
        depth: 0,
        in_flight: 0,
        dead: 0,
        enqueued,
    };
    let mut samples = lock(&state.samples);
    for q in queues {
        let p = Point {
            at: now,
            depth: q.ready + q.delayed + q.waiting,
            in_flight: q.in_flight + q.expired,
            dead: q.dead,
        };
        total.depth += p.depth;
        total.in_flight += p.in_flight;
        total.dead += p.dead;
        samples.queues.entry(q.name).or_default().push_back(p);
    }
    samples.total.push_back(total);
    samples.trim(now);
    Ok(())
}

/// A lock even if a panicking holder poisoned it (samples are plain numbers: nothing is left half-changed).
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}
