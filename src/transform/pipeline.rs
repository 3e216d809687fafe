//! Runs a listener's transforms on the shared pool: a batch is split by key
//! (one key always goes to the same worker, so per-key order holds across
//! batches) into chunks of `chunk_size`, the chunks run in parallel, and the
//! results come back in the batch's order. A chunk whose worker panics is
//! retried once by the pool; if it fails again, its events are run one by
//! one so that only the poisoned record is refused.

use std::sync::Arc;

use cxrelay_actors::pool::{key_of, Worker, WorkerPool};
use cxrelay_actors::Event;

use super::worker::{TransformJob, TransformOutput, TransformWorker};
use super::TransformSpec;

/// The outcome for a batch.
#[derive(Debug, Default)]
pub struct Transformed {
    /// Transformed events, in the batch's order.
    pub events: Vec<Arc<Event>>,
    /// Events refused, with why (they go to dead letters).
    pub rejected: Vec<(Arc<Event>, String)>,
}

/// A listener's transforms on a pool.
pub struct Transformer<W = TransformWorker>
where
    W: Worker<Job = TransformJob, Output = TransformOutput>,
{
    pool: WorkerPool<W>,
    spec: Arc<TransformSpec>,
    chunk_size: usize,
}

impl<W> Clone for Transformer<W>
where
    W: Worker<Job = TransformJob, Output = TransformOutput>,
{
    fn clone(&self) -> Self {
        Transformer {
            pool: self.pool.clone(),
            spec: self.spec.clone(),
            chunk_size: self.chunk_size,
        }
    }
}

impl<W> Transformer<W>
where
    W: Worker<Job = TransformJob, Output = TransformOutput>,
{
    /// Runs `spec` on `pool` in chunks of `chunk_size`.
    pub fn new(pool: WorkerPool<W>, spec: TransformSpec, chunk_size: usize) -> Self {
        Transformer {
            pool,
            spec: Arc::new(spec),
            chunk_size: chunk_size.max(1),
        }
    }

    /// Transforms a batch.
    pub async fn run(&self, events: &[Arc<Event>]) -> Transformed {
        let workers = self.pool.workers() as u64;
        // Events by worker slot, keeping batch order within each slot.
        let mut slots: Vec<Vec<usize>> = vec![Vec::new(); workers as usize];
        for (i, ev) in events.iter().enumerate() {
            let slot = match &ev.key {
                Some(k) => key_of(k) % workers,
                None => i as u64 % workers,
            };
            slots[slot as usize].push(i);
        }
        let mut pending = Vec::new();
        for (slot, indices) in slots.iter().enumerate() {
            for chunk in indices.chunks(self.chunk_size) {
                let job = TransformJob {
                    spec: self.spec.clone(),
                    events: chunk.iter().map(|&i| events[i].clone()).collect(),
                };
                // Same slot, same worker: chunks of one key run in order.
                pending.push((
                    slot as u64,
                    chunk.to_vec(),
                    self.pool.enqueue(Some(slot as u64), job).await,
                ));
            }
        }
        let mut out: Vec<Option<Result<Arc<Event>, String>>> = vec![None; events.len()];
        for (slot, indices, p) in pending {
            match p.result().await {
                Ok(results) => {
                    for (i, r) in indices.into_iter().zip(results) {
                        out[i] = Some(r);
                    }
                }
                Err(failed) => {
                    tracing::warn!(reason = %failed.reason, events = indices.len(),
                        "a transform chunk failed twice; isolating the record responsible");
                    for i in indices {
                        let job = TransformJob {
                            spec: self.spec.clone(),
                            events: vec![events[i].clone()],
                        };
                        out[i] = Some(match self.pool.submit(Some(slot), job).await {
                            Ok(mut r) => r.pop().unwrap_or_else(|| Err("transform produced nothing".into())),
                            Err(f) => Err(format!("transform panicked: {}", f.reason)),
                        });
                    }
                }
            }
        }
        let mut t = Transformed::default();
        for (i, r) in out.into_iter().enumerate() {
            match r {
                Some(Ok(ev)) => t.events.push(ev),
                Some(Err(why)) => t.rejected.push((events[i].clone(), why)),
                None => t.rejected.push((events[i].clone(), "transform lost the record".into())),
            }
        }
        t
    }
}
