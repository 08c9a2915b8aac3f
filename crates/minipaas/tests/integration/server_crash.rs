//! Server crash: the postmaster is SIGKILLed while workers hold leases (some committed asynchronously, as the
//! `Worker` commits them), some acks committed and one ack still in an open transaction. After the restart no acked
//! message comes back, every other message is delivered again exactly once, and every lease from before the crash
//! is stale: its ack is refused.
//!
//! The test owns its cluster (a `DevCluster` in a temporary directory): its subject is a server crash, which the
//! cluster shared by the other tests must not suffer.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use minipaas::{Delivery, Queue};
use pgstrata_embedded::DevCluster;
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, Config, NoTls};

use crate::support;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Work {
    n: u32,
}

/// Messages enqueued before the first crash.
const MESSAGES: u32 = 240;
/// Crashes, each after one round of leases and acks.
const CRASHES: usize = 3;

/// A cluster of our own, destroyed (stopped, directory removed) however the test ends.
struct OwnCluster {
    cluster: DevCluster,
    _dir: tempfile::TempDir,
}

impl OwnCluster {
    fn start() -> OwnCluster {
        let dir = tempfile::Builder::new()
            .prefix("minipaas-crash-")
            .tempdir()
            .expect("a temporary directory");
        let cluster =
            DevCluster::new(dir.path().join("cluster")).expect("find the server binaries");
        cluster.start().expect("start the cluster");
        OwnCluster { cluster, _dir: dir }
    }

    /// A connection whose commits wait for the WAL flush (the cluster's default is asynchronous commit): an ack
    /// that returned must survive the crash.
    async fn connect(&self) -> Client {
        let mut config: Config = self
            .cluster
            .url("postgres")
            .expect("the cluster's URL")
            .parse()
            .expect("the URL parses");
        config.options("-c synchronous_commit=on");
        let (client, connection) = config.connect(NoTls).await.expect("connect");
        tokio::spawn(async move {
            // Ends with an error when the server is killed; the client reports it.
            let _ = connection.await;
        });
        client
    }

    /// SIGKILL the postmaster (no shutdown checkpoint, no goodbye to the backends), wait until every process
    /// of the old server is gone, and start it again: crash recovery replays the WAL.
    fn crash_and_restart(&self) {
        let pid = self
            .cluster
            .status()
            .expect("status")
            .pid
            .expect("the server runs");
        let children = children_of(pid);
        let pid_t = libc::pid_t::try_from(pid).expect("a pid");
        // SAFETY: kill has no memory-safety preconditions; `pid` is the postmaster this test started.
        assert_eq!(
            unsafe { libc::kill(pid_t, libc::SIGKILL) },
            0,
            "SIGKILL the postmaster"
        );
        let started = Instant::now();
        // Backends notice their postmaster's death and exit; a new server must not start beside them.
        while std::iter::once(pid)
            .chain(children.iter().copied())
            .any(is_running)
        {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the old server's processes did not exit"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
        self.cluster.start().expect("restart after the crash");
    }
}

impl Drop for OwnCluster {
    fn drop(&mut self) {
        if let Err(e) = self.cluster.destroy() {
            eprintln!("cannot remove the crash test's cluster: {e}");
        }
    }
}

/// The processes whose parent is `pid` (the postmaster's backends and helpers), from /proc.
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter(|child| {
            stat_of(&Path::new("/proc").join(child.to_string()))
                .is_some_and(|(_, ppid)| ppid == pid)
        })
        .collect()
}

/// (state, parent pid) of a process, from /proc/<pid>/stat.
fn stat_of(dir: &Path) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ')'.
    let mut rest = stat[stat.rfind(')')? + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether a process still runs (a zombie has exited: only its parent has not reaped it).
fn is_running(pid: u32) -> bool {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    stat_of(&dir).is_some_and(|(state, _)| state != 'Z')
}

/// The message ids left in the queue, in any state.
async fn left(client: &Client) -> BTreeSet<i64> {
    client
        .query("SELECT id FROM minipaas.messages", &[])
        .await
        .expect("list the messages")
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_crash_loses_no_ack_and_redelivers_every_lease_once() {
    let cluster = OwnCluster::start();
    let setup = cluster.connect().await;
    support::install(&setup).await;
    let queue = Queue::<Work>::new("crash").expect("a queue name");
    let payloads: Vec<Work> = (0..MESSAGES).map(|n| Work { n }).collect();
    let mut open: BTreeSet<i64> = queue
        .enqueue_batch(&setup, &payloads)
        .await
        .expect("enqueue")
        .into_iter()
        .collect();
    drop(setup);
    let mut acked_total = 0;

    for crash in 1..=CRASHES {
        let sync_worker = cluster.connect().await;
        let async_worker = cluster.connect().await;
        let mut holder = cluster.connect().await;
        // Leases: half committed synchronously, half as the Worker commits them (without waiting for the disk).
        let mut leases: Vec<Delivery<Work>> =
            queue.dequeue(&sync_worker, 20, None).await.expect("lease");
        leases.extend(
            queue
                .dequeue_async_commit(&async_worker, 20, None)
                .await
                .expect("lease, committed asynchronously"),
        );
        assert_eq!(leases.len(), 40, "crash {crash}: a full round of leases");
        // Every third lease is acked (synchronously: it returned, so it is on disk); one more ack waits in an
        // open transaction when the server dies.
        let mut acked = BTreeSet::new();
        for delivery in leases.iter().step_by(3) {
            assert!(
                queue.ack(&sync_worker, delivery).await.expect("ack"),
                "crash {crash}: a current lease acks"
            );
            acked.insert(delivery.id);
        }
        let uncommitted = leases
            .iter()
            .find(|d| !acked.contains(&d.id))
            .expect("an unacked lease");
        let tx = holder.transaction().await.expect("begin");
        assert!(
            queue
                .ack(&tx, uncommitted)
                .await
                .expect("ack in a transaction"),
            "crash {crash}: the ack inside the open transaction succeeds there"
        );

        cluster.crash_and_restart();
        drop(tx);
        let checker = cluster.connect().await;

        open = &open - &acked;
        acked_total += acked.len();
        let after = left(&checker).await;
        assert!(
            after == open,
            "crash {crash}: after recovery exactly the unacked messages are left (the uncommitted ack rolled back); \
             acked but back: {:?}; lost: {:?}",
            &after - &open,
            &open - &after
        );

        // Time passes: every lease from before the crash runs out. One consumer then drains what is ready.
        checker
            .execute(
                "UPDATE minipaas.messages SET lease_until = clock_timestamp() WHERE lease_until IS NOT NULL",
                &[],
            )
            .await
            .expect("let the leases run out");
        let mut redelivered: BTreeMap<i64, Delivery<Work>> = BTreeMap::new();
        loop {
            let batch = queue
                .dequeue(&checker, minipaas::MAX_BATCH, None)
                .await
                .expect("redeliver");
            if batch.is_empty() {
                break;
            }
            for delivery in batch {
                let id = delivery.id;
                assert!(
                    redelivered.insert(id, delivery).is_none(),
                    "crash {crash}: message {id} delivered twice"
                );
            }
        }
        let again: BTreeSet<i64> = redelivered.keys().copied().collect();
        assert!(
            again == open,
            "crash {crash}: every unacked message is delivered again, no acked one; not delivered: {:?}; acked but \
             delivered: {:?}",
            &open - &again,
            &again - &open
        );
        for stale in leases.iter().filter(|d| !acked.contains(&d.id)) {
            assert!(
                !queue.ack(&checker, stale).await.expect("stale ack"),
                "crash {crash}: the lease on message {} from before the crash is refused",
                stale.id
            );
        }
        // The new deliveries are current: give them back unprocessed, for the next round.
        for delivery in redelivered.values() {
            assert!(
                queue.release(&checker, delivery).await.expect("release"),
                "crash {crash}: a delivery after the crash is current"
            );
        }
    }

    let checker = cluster.connect().await;
    assert_eq!(acked_total, CRASHES * 14, "acks made across the crashes");
    assert_eq!(
        left(&checker).await.len(),
        MESSAGES as usize - acked_total,
        "nothing lost over {CRASHES} crashes"
    );
}
