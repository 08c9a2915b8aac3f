//! A worker runner: leases messages, runs a handler on each, keeps the lease alive, acks or retries.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures_util::FutureExt;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_postgres::{Client, GenericClient};

use crate::error::Result;
use crate::listener::Listener;
use crate::queue::{Delivery, NackOutcome, Queue, Retry, extend_lease, release_lease};

/// Settings of a [`Worker`].
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerOptions {
    /// Handlers running at once (default 8).
    pub concurrency: usize,
    /// Most messages leased per dequeue (default: `concurrency`); never more than there are free slots.
    pub batch_size: usize,
    /// Lease length; `None` uses the queue's visibility timeout. Leases are extended every third of it while a
    /// handler runs, so a long job keeps its message and a crashed worker's messages come back soon.
    pub lease: Option<Duration>,
    /// How often an idle worker looks for work without a wake-up (default 1 s): NOTIFY is best effort.
    pub poll_interval: Duration,
    /// At shutdown, how long running handlers may finish before their messages are released (default 30 s).
    pub shutdown_grace: Duration,
    /// How often to run `minipaas.maintain()` (retention, trims); `None` never (default 60 s).
    pub maintenance_interval: Option<Duration>,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 8,
            batch_size: 8,
            lease: None,
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(30),
            maintenance_interval: Some(Duration::from_secs(60)),
        }
    }
}

/// A message handed to a handler.
pub struct Job<T> {
    delivery: Delivery<T>,
    queue: Queue<T>,
    acked: Arc<AtomicBool>,
}

impl<T> fmt::Debug for Job<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Job")
            .field("queue", &self.queue.name())
            .field("id", &self.delivery.id)
            .field("attempt", &self.delivery.attempt)
            .finish_non_exhaustive()
    }
}

impl<T> Job<T>
where
    T: Serialize + DeserializeOwned,
{
    /// The delivery: id, attempt, lease, payload.
    pub fn delivery(&self) -> &Delivery<T> {
        &self.delivery
    }

    /// The payload.
    pub fn payload(&self) -> &T {
        &self.delivery.payload
    }

    /// Acks inside your own transaction, so the message is done exactly when your writes commit. The worker
    /// then does not ack again; if your transaction rolls back, the lease runs out and the message is retried.
    /// False if the lease was lost (do not commit your work then, or accept that it may run twice).
    pub async fn ack_with<C: GenericClient + Sync>(&self, client: &C) -> Result<bool> {
        let acked = self.queue.ack(client, &self.delivery).await?;
        if acked {
            self.acked.store(true, Ordering::SeqCst);
        }
        Ok(acked)
    }
}

/// Why a handler gave a message back. Any error converts into a retry with the queue's backoff, so `?` works
/// in handlers; use [`JobError::fatal`] for messages that can never succeed.
pub struct JobError {
    message: String,
    retry: Retry,
}

impl JobError {
    /// Retry after the queue's backoff.
    pub fn retry(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            retry: Retry::Backoff,
        }
    }

    /// Retry after `delay`.
    pub fn retry_after(message: impl Into<String>, delay: Duration) -> JobError {
        JobError {
            message: message.into(),
            retry: Retry::After(delay),
        }
    }

    /// Do not retry: dead-letter the message now.
    pub fn fatal(message: impl Into<String>) -> JobError {
        JobError {
            message: message.into(),
            retry: Retry::Never,
        }
    }

    /// The error text recorded in the message's history.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Debug for JobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobError")
            .field("message", &self.message)
            .field("retry", &self.retry)
            .finish()
    }
}

impl<E: fmt::Display> From<E> for JobError {
    fn from(error: E) -> JobError {
        JobError::retry(error.to_string())
    }
}

/// What a worker did, returned when it stops.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkerReport {
    /// Messages handed to the handler.
    pub delivered: u64,
    /// Acked (by the worker or by the handler's [`Job::ack_with`]).
    pub acked: u64,
    /// Given back for a retry.
    pub retried: u64,
    /// Dead-lettered.
    pub dead: u64,
    /// Released unprocessed at shutdown.
    pub released: u64,
    /// Finished after their lease had gone to another delivery (their result was not recorded).
    pub lease_lost: u64,
}

type ConnectListener =
    Box<dyn Fn() -> Pin<Box<dyn Future<Output = Result<Listener>> + Send>> + Send + Sync>;

/// Runs a handler over a queue's messages.
///
/// ```no_run
/// # async fn demo() -> minipaas::Result<()> {
/// use std::sync::Arc;
/// let url = "postgresql://localhost/app";
/// let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
/// tokio::spawn(connection);
/// let queue = minipaas::Queue::<serde_json::Value>::new("emails")?;
/// let worker = minipaas::Worker::new(queue, minipaas::WorkerOptions::default())
///     .listen_with(move || Box::pin(minipaas::Listener::connect(url)));
/// let report = worker
///     .run(Arc::new(client), |job| async move {
///         println!("sending {}", job.payload());
///         Ok(())
///     }, async { let _ = tokio::signal::ctrl_c().await; })
///     .await?;
/// println!("{report:?}");
/// # Ok(()) }
/// ```
pub struct Worker<T> {
    queue: Queue<T>,
    options: WorkerOptions,
    listener: Option<Listener>,
    connect: Option<ConnectListener>,
}

impl<T> fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("queue", &self.queue.name())
            .field("options", &self.options)
            .field("listener", &self.listener.is_some())
            .finish_non_exhaustive()
    }
}

enum Finished {
    Acked,
    /// The handler succeeded; the worker acks it with the next batch of acks.
    Succeeded(i64, i64),
    Retried,
    Dead,
    LeaseLost,
}

impl<T> Worker<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// A worker for `queue`. Without a listener it polls every `poll_interval`.
    pub fn new(queue: Queue<T>, options: WorkerOptions) -> Self {
        Worker {
            queue,
            options,
            listener: None,
            connect: None,
        }
    }

    /// Wakes up on NOTIFY through this connection (see [`Listener`]).
    pub fn with_listener(mut self, listener: Listener) -> Self {
        self.listener = Some(listener);
        self
    }

    /// Opens the LISTEN connection with `connect`, and again whenever it is lost (polling meanwhile).
    pub fn listen_with<F>(mut self, connect: F) -> Self
    where
        F: Fn() -> Pin<Box<dyn Future<Output = Result<Listener>> + Send>> + Send + Sync + 'static,
    {
        self.connect = Some(Box::new(connect));
        self
    }

    /// Runs until `shutdown` completes, then lets running handlers finish for `shutdown_grace` and releases
    /// the messages of those still running. Returns an error only when the database connection is gone.
    ///
    /// `client` serves the worker's own calls (dequeue, ack, extend), pipelined on one connection; leases commit
    /// without waiting for the disk ([`Queue::dequeue_async_commit`]), so do not share it with code that opens
    /// transaction blocks by hand. A handler
    /// that returns `Ok` has its message acked; an error retries it through `nack` (or dead-letters it, see
    /// [`JobError`]); a panic counts as a retryable error.
    pub async fn run<F, Fut, S>(
        mut self,
        client: Arc<Client>,
        handler: F,
        shutdown: S,
    ) -> Result<WorkerReport>
    where
        F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::result::Result<(), JobError>> + Send + 'static,
        S: Future<Output = ()> + Send,
    {
        let concurrency = self.options.concurrency.max(1);
        let batch_size = self.options.batch_size.clamp(1, crate::queue::MAX_BATCH);
        let poll_interval = self.options.poll_interval.max(Duration::from_millis(10));
        let handler = Arc::new(handler);
        let mut report = WorkerReport::default();
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        let mut leases: HashMap<tokio::task::Id, (i64, i64)> = HashMap::new();
        // Successes are acked in batches: one round trip and one commit for all that finished meanwhile.
        let mut pending_acks: Vec<(i64, i64)> = Vec::new();
        let mut next_due: Option<Instant> = None;
        let mut recheck_at: Option<Instant> = None;
        let mut reconnect_at = Instant::now();
        let mut maintain_at = self
            .options
            .maintenance_interval
            .map(|every| Instant::now() + every);
        let mut shutdown = std::pin::pin!(shutdown.fuse());
        let channel = self.queue.channel();
        let mut listening = false;

        let outcome: Result<()> = 'run: loop {
            while let Some(done) = tasks.try_join_next_with_id() {
                record(&mut report, &mut leases, &mut pending_acks, done);
            }
            if self.listener.as_ref().is_some_and(Listener::is_closed) {
                tracing::warn!(queue = %self.queue.name(), "minipaas: lost the LISTEN connection; polling");
                self.listener = None;
                listening = false;
            }
            if self.listener.is_none() && Instant::now() >= reconnect_at {
                reconnect_at = Instant::now() + poll_interval.max(Duration::from_secs(1));
                if let Some(connect) = &self.connect {
                    match connect().await {
                        Ok(listener) => self.listener = Some(listener),
                        Err(e) => {
                            tracing::warn!(error = %e, "minipaas: cannot open the LISTEN connection")
                        }
                    }
                }
            }
            if let (Some(listener), false) = (&self.listener, listening) {
                match listener.listen(&channel).await {
                    Ok(()) => listening = true,
                    Err(e) => {
                        tracing::warn!(error = %e, "minipaas: LISTEN failed; polling");
                        self.listener = None;
                    }
                }
            }
            if let Some(at) = maintain_at
                && Instant::now() >= at
            {
                maintain_at = self
                    .options
                    .maintenance_interval
                    .map(|every| Instant::now() + every);
                let client = Arc::clone(&client);
                tokio::spawn(async move {
                    if let Err(e) = client
                        .batch_execute("SELECT count(*) FROM minipaas.maintain()")
                        .await
                    {
                        tracing::warn!(error = %e, "minipaas: maintain() failed");
                    }
                });
            }

            let free = concurrency.saturating_sub(tasks.len());
            if free == 0 {
                tokio::select! {
                    () = &mut shutdown => break 'run Ok(()),
                    Some(done) = tasks.join_next_with_id() => record(&mut report, &mut leases, &mut pending_acks, done),
                }
                continue;
            }
            let want = free.min(batch_size);
            let acks = flush_acks(&client, &mut pending_acks, &mut report);
            let (deliveries, acked) = tokio::join!(
                self.queue
                    .dequeue_async_commit(&client, want, self.options.lease),
                acks
            );
            if let Err(e) = acked
                && e.is_closed()
            {
                break 'run Err(e);
            }
            let deliveries = match deliveries {
                Ok(deliveries) => deliveries,
                Err(e) if e.is_closed() => break 'run Err(e),
                Err(e) => {
                    tracing::warn!(queue = %self.queue.name(), error = %e, "minipaas: dequeue failed; retrying");
                    tokio::select! {
                        () = &mut shutdown => break 'run Ok(()),
                        () = tokio::time::sleep(poll_interval) => {}
                    }
                    continue;
                }
            };
            let got = deliveries.len();
            for delivery in deliveries {
                report.delivered += 1;
                let lease = (
                    id_token(&delivery),
                    lease_length(&delivery, self.options.lease),
                );
                let task = tasks.spawn(handle(
                    self.queue.clone(),
                    Arc::clone(&client),
                    Arc::clone(&handler),
                    delivery,
                    lease.1,
                    self.options.lease,
                ));
                leases.insert(task.id(), lease.0);
            }
            if got == want {
                continue;
            }

            // Idle: sleep until a wake-up, a delayed message comes due, the poll interval, or shutdown.
            if let Err(e) = flush_acks(&client, &mut pending_acks, &mut report).await
                && e.is_closed()
            {
                break 'run Err(e);
            }
            let now = Instant::now();
            let mut deadline = now + poll_interval;
            for at in [next_due, recheck_at].into_iter().flatten() {
                deadline = deadline.min(at.max(now));
            }
            if next_due.is_some_and(|at| at <= now) {
                next_due = None;
            }
            if recheck_at.is_some_and(|at| at <= now) {
                recheck_at = None;
            }
            'wait: loop {
                let listener = self.listener.as_mut();
                let notified = async {
                    match listener {
                        Some(listener) => listener.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    () = &mut shutdown => break 'run Ok(()),
                    () = tokio::time::sleep_until(deadline) => break 'wait,
                    notification = notified => {
                        let Some(notification) = notification else {
                            break 'wait;
                        };
                        match due_instant(notification.payload()) {
                            Some(due) if due > Instant::now() => {
                                next_due = Some(next_due.map_or(due, |at| at.min(due)));
                                deadline = deadline.min(due);
                            }
                            _ => {
                                // Wake-ups are throttled to one per 50 ms per queue: look again shortly after, for
                                // messages whose producers' notifications were folded into this one.
                                recheck_at = Some(Instant::now() + Duration::from_millis(150));
                                break 'wait;
                            }
                        }
                    }
                    Some(done) = tasks.join_next_with_id(), if !tasks.is_empty() => {
                        record(&mut report, &mut leases, &mut pending_acks, done);
                        if !pending_acks.is_empty() {
                            // Nothing to dequeue, but a finished job's ack should not wait for the next poll.
                            if let Err(e) = flush_acks(&client, &mut pending_acks, &mut report).await
                                && e.is_closed()
                            {
                                break 'run Err(e);
                            }
                        }
                    }
                }
            }
        };

        // Graceful shutdown: no new leases; running handlers may finish, then the rest is released.
        let grace_end = Instant::now() + self.options.shutdown_grace;
        while !tasks.is_empty() {
            match tokio::time::timeout_at(grace_end, tasks.join_next_with_id()).await {
                Ok(Some(done)) => record(&mut report, &mut leases, &mut pending_acks, done),
                Ok(None) => break,
                Err(_) => {
                    tasks.abort_all();
                    while let Some(done) = tasks.join_next_with_id().await {
                        record(&mut report, &mut leases, &mut pending_acks, done);
                    }
                }
            }
        }
        if let Err(e) = flush_acks(&client, &mut pending_acks, &mut report).await {
            tracing::warn!(error = %e, "minipaas: cannot ack finished jobs at shutdown; they will be redelivered");
        }
        for (_, (id, token)) in leases.drain() {
            match release_lease(&*client, id, token).await {
                Ok(true) => report.released += 1,
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(id, error = %e, "minipaas: cannot release a message at shutdown")
                }
            }
        }
        outcome.map(|()| report)
    }
}

/// Acks the finished jobs in one call; those whose lease went elsewhere meanwhile count as lost.
async fn flush_acks(
    client: &Client,
    pending: &mut Vec<(i64, i64)>,
    report: &mut WorkerReport,
) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    let batch: Vec<(i64, i64)> = std::mem::take(pending);
    let ids: Vec<i64> = batch.iter().map(|(id, _)| *id).collect();
    let tokens: Vec<i64> = batch.iter().map(|(_, token)| *token).collect();
    match crate::queue::ack_leases(client, &ids, &tokens).await {
        Ok(acked) => {
            let acked = acked.len() as u64;
            report.acked += acked;
            report.lease_lost += batch.len() as u64 - acked;
            Ok(())
        }
        Err(e) => {
            // Unacked, the leases run out and the messages come back: at-least-once.
            tracing::warn!(error = %e, count = batch.len(), "minipaas: cannot ack finished jobs");
            report.lease_lost += batch.len() as u64;
            Err(e)
        }
    }
}

fn id_token<T>(delivery: &Delivery<T>) -> (i64, i64) {
    (delivery.id, delivery.lease_token)
}

/// The lease length to keep extending: the one asked for, or what the queue granted this delivery.
fn lease_length<T>(delivery: &Delivery<T>, asked: Option<Duration>) -> Duration {
    asked
        .or_else(|| (delivery.lease_expires_at - Utc::now()).to_std().ok())
        .unwrap_or(Duration::from_secs(30))
        .max(Duration::from_millis(300))
}

/// A NOTIFY payload: empty for "now", else the epoch seconds at which a delayed message becomes visible.
fn due_instant(payload: &str) -> Option<Instant> {
    let epoch: f64 = payload.parse().ok()?;
    let ahead = epoch - Utc::now().timestamp_micros() as f64 / 1e6;
    (ahead > 0.0).then(|| Instant::now() + Duration::from_secs_f64(ahead.min(86_400.0)))
}

fn record(
    report: &mut WorkerReport,
    leases: &mut HashMap<tokio::task::Id, (i64, i64)>,
    pending_acks: &mut Vec<(i64, i64)>,
    done: std::result::Result<(tokio::task::Id, Finished), tokio::task::JoinError>,
) {
    match done {
        Ok((id, finished)) => {
            leases.remove(&id);
            match finished {
                Finished::Acked => report.acked += 1,
                Finished::Succeeded(message, token) => pending_acks.push((message, token)),
                Finished::Retried => report.retried += 1,
                Finished::Dead => report.dead += 1,
                Finished::LeaseLost => report.lease_lost += 1,
            }
        }
        // Aborted at the end of the shutdown grace: its lease stays in `leases` and is released.
        Err(e) if e.is_cancelled() => {}
        Err(e) => {
            // Handler panics are caught inside the task; this is a panic in the worker's own bookkeeping.
            tracing::error!(error = %e, "minipaas: a worker task failed");
            leases.remove(&e.id());
        }
    }
}

/// Stops the lease extension when the job ends, however it ends (also when the shutdown grace aborts it).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Extends a running job's lease every `every`, until aborted.
async fn keep_extending(
    queue: String,
    client: Arc<Client>,
    id: i64,
    token: i64,
    every: Duration,
    asked: Option<Duration>,
) {
    let mut ticker = tokio::time::interval_at(Instant::now() + every, every);
    loop {
        ticker.tick().await;
        match extend_lease(&*client, id, token, asked).await {
            Ok(Some(_)) => {}
            Ok(None) => {
                tracing::warn!(queue = %queue, id, "minipaas: lost the lease of a running job");
                return;
            }
            Err(e) => {
                tracing::warn!(queue = %queue, id, error = %e, "minipaas: cannot extend a lease")
            }
        }
    }
}

async fn handle<T, F, Fut>(
    queue: Queue<T>,
    client: Arc<Client>,
    handler: Arc<F>,
    delivery: Delivery<T>,
    lease: Duration,
    asked: Option<Duration>,
) -> Finished
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
    F: Fn(Job<T>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = std::result::Result<(), JobError>> + Send + 'static,
{
    let (id, token) = id_token(&delivery);
    let acked = Arc::new(AtomicBool::new(false));
    let job = Job {
        delivery,
        queue: queue.clone(),
        acked: Arc::clone(&acked),
    };
    // The lease is extended by a task of its own: were the extension awaited in the handler's task, the handler
    // would not be polled meanwhile, and a handler holding the message's row (acking in its own transaction)
    // could never commit while the extension waited.
    let extender = AbortOnDrop(tokio::spawn(keep_extending(
        queue.name().to_owned(),
        Arc::clone(&client),
        id,
        token,
        lease / 3,
        asked,
    )));
    let result = AssertUnwindSafe(handler(job)).catch_unwind().await;
    drop(extender);
    if acked.load(Ordering::SeqCst) {
        return Finished::Acked;
    }
    let (message, retry) = match result {
        Ok(Ok(())) => return Finished::Succeeded(id, token),
        Ok(Err(error)) => (error.message, error.retry),
        Err(panic) => {
            let text = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            (format!("handler panicked: {text}"), Retry::Backoff)
        }
    };
    match crate::queue::nack_lease(&*client, id, token, &message, retry).await {
        Ok(Some(NackOutcome::Retry { .. })) => Finished::Retried,
        Ok(Some(NackOutcome::Dead)) => Finished::Dead,
        Ok(None) => Finished::LeaseLost,
        Err(e) => {
            tracing::warn!(queue = %queue.name(), id, error = %e, "minipaas: cannot nack");
            Finished::LeaseLost
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn notification_payloads() {
        assert!(due_instant("").is_none(), "empty means now");
        assert!(due_instant("garbage").is_none());
        let past = (Utc::now().timestamp() - 10).to_string();
        assert!(due_instant(&past).is_none(), "already due means now");
        let future = format!("{}.5", Utc::now().timestamp() + 60);
        let due = due_instant(&future).expect("a future time");
        let ahead = due - Instant::now();
        assert!(
            ahead > Duration::from_secs(59) && ahead < Duration::from_secs(62),
            "{ahead:?}"
        );
    }

    #[test]
    fn any_error_converts_to_a_retry() {
        fn parse(text: &str) -> std::result::Result<i32, JobError> {
            Ok(text.parse::<i32>()?)
        }
        let error = parse("x").expect_err("not a number");
        assert_eq!(error.retry, Retry::Backoff);
        assert!(error.message().contains("invalid digit"));
        assert_eq!(JobError::fatal("no").retry, Retry::Never);
    }
}
