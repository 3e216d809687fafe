//! A pool of CPU workers: one worker actor per arbiter thread, a bounded
//! queue in front of each, and a per-slot supervisor loop that recycles a
//! worker after N batches and replaces one that panicked.
//!
//! `SyncArbiter` is not used: its mailboxes are unbounded and a panic kills
//! its thread for good.

mod slot;
mod worker;

use std::hash::Hash;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Arbiter;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

pub use worker::Worker;

/// How a pool is shaped.
#[derive(Debug, Clone)]
pub struct PoolConfig {
    /// Name for logs and status.
    pub name: String,
    /// Worker threads (at least 1).
    pub workers: usize,
    /// Batches waiting per worker before submitters wait.
    pub queue_bound: usize,
    /// Replace a worker with a fresh one after this many batches (0: never).
    pub recycle_after: u64,
    /// Where to report replacements (as restarts) and counters, if anywhere.
    pub component: Option<Arc<crate::registry::Component>>,
}

impl Default for PoolConfig {
    fn default() -> Self {
        PoolConfig {
            name: "pool".into(),
            workers: 2,
            queue_bound: 4,
            recycle_after: 100,
            component: None,
        }
    }
}

/// A batch that could not be processed: it panicked on a fresh worker too.
/// The job is handed back so the caller can dead-letter it.
#[derive(Debug)]
pub struct BatchFailed<J> {
    /// The job, unchanged.
    pub job: Arc<J>,
    /// The panic message (or why the pool could not run it).
    pub reason: String,
    /// How many workers tried it.
    pub attempts: u32,
}

/// Pool counters.
#[derive(Debug, Default)]
pub struct PoolStats {
    batches: AtomicU64,
    panics: AtomicU64,
    replaced: AtomicU64,
    recycled: AtomicU64,
    failed: AtomicU64,
    retried_ok: AtomicU64,
}

/// A copy of [`PoolStats`].
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct PoolSnapshot {
    /// Batches completed (successfully or handed back failed).
    pub batches: u64,
    /// Panics caught.
    pub panics: u64,
    /// Workers replaced after a panic.
    pub replaced: u64,
    /// Workers recycled after their batch quota.
    pub recycled: u64,
    /// Batches handed back as failed.
    pub failed: u64,
    /// Batches that panicked once and then succeeded on a fresh worker.
    pub retried_ok: u64,
}

impl PoolStats {
    /// Copies the counters.
    pub fn snapshot(&self) -> PoolSnapshot {
        PoolSnapshot {
            batches: self.batches.load(Ordering::Relaxed),
            panics: self.panics.load(Ordering::Relaxed),
            replaced: self.replaced.load(Ordering::Relaxed),
            recycled: self.recycled.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            retried_ok: self.retried_ok.load(Ordering::Relaxed),
        }
    }
}

/// A pool's `/status` details: its size and counters (published by each
/// worker slot after every batch).
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PoolStatus {
    /// Worker threads.
    pub workers: usize,
    /// Counters so far.
    pub stats: PoolSnapshot,
}

/// What a pool answers for one job.
pub type JobResult<W> = Result<<W as Worker>::Output, BatchFailed<<W as Worker>::Job>>;
type Reply<W> = oneshot::Sender<JobResult<W>>;

pub(crate) struct Task<W: Worker> {
    job: Arc<W::Job>,
    reply: Reply<W>,
}

struct Threads(Vec<Arbiter>);

impl Drop for Threads {
    fn drop(&mut self) {
        for a in &self.0 {
            a.stop();
        }
    }
}

/// Handle to a running pool; cheap to clone.
pub struct WorkerPool<W: Worker> {
    slots: Arc<[mpsc::Sender<Task<W>>]>,
    next: Arc<AtomicUsize>,
    stats: Arc<PoolStats>,
    _threads: Arc<Threads>,
}

impl<W: Worker> Clone for WorkerPool<W> {
    fn clone(&self) -> Self {
        WorkerPool {
            slots: self.slots.clone(),
            next: self.next.clone(),
            stats: self.stats.clone(),
            _threads: self._threads.clone(),
        }
    }
}

/// A job accepted by a worker's queue; await it for the result.
pub struct Pending<W: Worker> {
    rx: Option<oneshot::Receiver<JobResult<W>>>,
    job: Arc<W::Job>,
}

impl<W: Worker> Pending<W> {
    /// Waits for the result. If the pool stopped before running the job, the
    /// job is handed back as failed.
    pub async fn result(self) -> Result<W::Output, BatchFailed<W::Job>> {
        if let Some(rx) = self.rx {
            if let Ok(r) = rx.await {
                return r;
            }
        }
        Err(BatchFailed {
            job: self.job,
            reason: "worker pool stopped".into(),
            attempts: 0,
        })
    }
}

impl<W: Worker> WorkerPool<W> {
    /// Starts `config.workers` threads, each running one worker made by
    /// `factory` (called again for every fresh worker).
    pub fn start<F>(config: PoolConfig, factory: F) -> Self
    where
        F: Fn() -> W + Send + Sync + 'static,
    {
        let factory: Arc<dyn Fn() -> W + Send + Sync> = Arc::new(factory);
        let stats = Arc::new(PoolStats::default());
        let mut senders = Vec::new();
        let mut threads = Vec::new();
        for index in 0..config.workers.max(1) {
            let (tx, rx) = mpsc::channel(config.queue_bound.max(1));
            let arbiter = Arbiter::new();
            let started = arbiter.spawn(slot::run::<W>(
                slot::SlotConfig {
                    pool: config.name.clone(),
                    index,
                    recycle_after: config.recycle_after,
                    workers: config.workers.max(1),
                    component: config.component.clone(),
                },
                rx,
                factory.clone(),
                stats.clone(),
            ));
            debug_assert!(started, "fresh arbiter accepts work");
            senders.push(tx);
            threads.push(arbiter);
        }
        if let Some(c) = &config.component {
            c.set_state(crate::registry::ComponentState::Running);
            c.set_status(&PoolStatus {
                workers: config.workers.max(1),
                stats: stats.snapshot(),
            });
        }
        WorkerPool {
            slots: senders.into(),
            next: Arc::new(AtomicUsize::new(0)),
            stats,
            _threads: Arc::new(Threads(threads)),
        }
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.slots.len()
    }

    /// The pool's counters.
    pub fn stats(&self) -> &Arc<PoolStats> {
        &self.stats
    }

    fn pick(&self, key: Option<u64>) -> usize {
        let n = self.slots.len();
        match key {
            // Same key, same worker: per-key order across batches.
            Some(k) => (k % n as u64) as usize,
            None => {
                // The emptiest queue, starting from a rotating position so
                // that ties spread.
                let start = self.next.fetch_add(1, Ordering::Relaxed);
                (0..n)
                    .map(|i| (start + i) % n)
                    .max_by_key(|&i| self.slots[i].capacity())
                    .unwrap_or(0)
            }
        }
    }

    /// Queues a job, waiting while the chosen worker's queue is full.
    /// Jobs enqueued in order with the same key complete in that order.
    pub async fn enqueue(&self, key: Option<u64>, job: W::Job) -> Pending<W> {
        let job = Arc::new(job);
        let (reply, rx) = oneshot::channel();
        let slot = self.pick(key);
        match self.slots[slot]
            .send(Task {
                job: job.clone(),
                reply,
            })
            .await
        {
            Ok(()) => Pending { rx: Some(rx), job },
            Err(_) => Pending { rx: None, job },
        }
    }

    /// Runs a job and waits for its result.
    pub async fn submit(&self, key: Option<u64>, job: W::Job) -> Result<W::Output, BatchFailed<W::Job>> {
        self.enqueue(key, job).await.result().await
    }
}

/// A stable key from anything hashable (for [`WorkerPool::enqueue`]): the
/// same within a process, which is all a worker slot needs. Fixed-seed
/// foldhash: it is taken per event, and SipHash cost several times more.
pub fn key_of<K: Hash + ?Sized>(k: &K) -> u64 {
    use std::hash::BuildHasher;
    foldhash::fast::FixedState::default().hash_one(k)
}
