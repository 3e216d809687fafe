use std::sync::atomic::Ordering;
use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::mpsc;

use super::worker::{Run, Worker, WorkerActor};
use super::{BatchFailed, PoolStats, Task};
use crate::registry::StopReason;

pub(super) struct SlotConfig {
    pub pool: String,
    pub index: usize,
    pub recycle_after: u64,
    /// Worker threads of the whole pool (for its status).
    pub workers: usize,
    pub component: Option<Arc<crate::registry::Component>>,
}

/// The supervisor of one pool slot, running on the slot's arbiter: hands
/// batches to the current worker actor one at a time, swaps in a fresh
/// worker after `recycle_after` batches or after a panic, and retries a
/// panicked batch once before handing it back as failed.
pub(super) async fn run<W: Worker>(
    cfg: SlotConfig,
    mut rx: mpsc::Receiver<Task<W>>,
    factory: Arc<dyn Fn() -> W + Send + Sync>,
    stats: Arc<PoolStats>,
) {
    let fresh = || WorkerActor::new(factory()).start();
    let mut worker = fresh();
    let mut done: u64 = 0;
    while let Some(task) = rx.recv().await {
        let mut attempts = 0;
        let result = loop {
            attempts += 1;
            let (reason, stop) = match worker.send(Run::<W>(task.job.clone())).await {
                Ok(Ok(output)) => {
                    if attempts > 1 {
                        stats.retried_ok.fetch_add(1, Ordering::Relaxed);
                    }
                    break Ok(output);
                }
                Ok(Err(panic)) => (panic.clone(), StopReason::Panicked { message: panic }),
                Err(e) => (format!("worker actor died: {e}"), StopReason::Exited),
            };
            stats.panics.fetch_add(1, Ordering::Relaxed);
            stats.replaced.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(pool = %cfg.pool, worker = cfg.index, attempt = attempts, %reason,
                "worker panicked on a batch; replacing it");
            if let Some(c) = &cfg.component {
                c.restarted(stop);
                // The typed reason has the message; the error says which worker.
                c.record_error(format!("worker {} panicked: {reason}", cfg.index));
            }
            // The old worker's state may be half-updated: never reuse it.
            worker = fresh();
            done = 0;
            if attempts >= 2 {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                break Err(BatchFailed {
                    job: task.job.clone(),
                    reason,
                    attempts,
                });
            }
        };
        stats.batches.fetch_add(1, Ordering::Relaxed);
        done += 1;
        if cfg.recycle_after > 0 && done >= cfg.recycle_after {
            worker = fresh();
            done = 0;
            stats.recycled.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(c) = &cfg.component {
            c.set_status(&super::PoolStatus {
                workers: cfg.workers,
                stats: stats.snapshot(),
            });
        }
        // The submitter may have gone away; the result is then unwanted.
        let _ = task.reply.send(result);
    }
}
