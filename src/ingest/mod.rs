//! Ingest: the one path by which every source hands events in.
//!
//! With the journal on (the default), a batch is committed durably (group
//! commit) before `submit` returns, together with the source's checkpoint;
//! only then is it published. With the journal off, it is published
//! directly and `submit` returns once it is queued.

pub mod telemetry;

use std::sync::Arc;

use actix::Addr;
use cxrelay_actors::{Event, Publish, Router};
use tokio::sync::oneshot;

use crate::store::idempotency::{key_hash, KeyHash};
use crate::store::{Append, AppendRequest, Committer};
pub use telemetry::IngestStats;

/// A batch of events from one source.
#[derive(Debug, Default)]
pub struct IngestBatch {
    /// The events, in source order.
    pub events: Vec<Event>,
    /// Idempotency keys, one per event (empty: none). An event whose key
    /// was seen within the window is dropped as a duplicate. Keys are
    /// scoped to the event's source: one source's keys never match
    /// another's.
    pub keys: Vec<Option<String>>,
    /// The keys' hashes, when the caller took them already
    /// ([`Ingest::key_hashes`]); empty: taken at submit.
    pub hashes: Vec<Option<KeyHash>>,
    /// The source's checkpoint, committed atomically with the events.
    pub checkpoint: Option<(String, Vec<u8>)>,
}

impl IngestBatch {
    /// A batch of events without keys or checkpoint.
    pub fn of(events: Vec<Event>) -> Self {
        IngestBatch {
            events,
            ..Default::default()
        }
    }
}

/// `key` of `source` as stored: a sender cannot pre-empt another source's
/// events by choosing ids that collide with its keys.
pub fn scoped_key(source: &str, key: &str) -> String {
    // The source's length first: no name and key pair can spell another's.
    format!("{}:{source}:{key}", source.len())
}

/// What happened to a submitted batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Events accepted (durable, when the journal is on).
    pub accepted: usize,
    /// Events dropped as duplicates of ones already accepted.
    pub duplicates: usize,
}

/// Why a batch was refused. Nothing of a refused batch was accepted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum IngestError {
    /// The service is shutting down.
    #[error("cxrelay is shutting down; not accepting events")]
    ShuttingDown,
    /// The store cannot write (disk full, I/O error); retry later.
    #[error("{0}")]
    StoreUnavailable(String),
}

#[derive(Clone)]
enum Mode {
    Direct(Addr<Router>),
    Journal(Arc<Committer>),
    Cluster(Arc<crate::cluster::ClusterIngest>),
}

/// Hands events in. Cheap to clone, `Send`.
#[derive(Clone)]
pub struct Ingest {
    mode: Mode,
    stats: IngestStats,
}

impl Ingest {
    /// Ingest straight into the router (journal off).
    pub fn direct(router: Addr<Router>) -> Self {
        Ingest {
            mode: Mode::Direct(router),
            stats: IngestStats::default(),
        }
    }

    /// Ingest through the journal: `committer` commits appends through its
    /// journal writer, or on the submitting thread ([`Ingest::submit_here`]).
    pub fn journaled(committer: Arc<Committer>) -> Self {
        Ingest {
            mode: Mode::Journal(committer),
            stats: IngestStats::default(),
        }
    }

    /// What this ingest (and every clone of it) accepted, by source.
    pub fn stats(&self) -> &IngestStats {
        &self.stats
    }

    /// Ingest into the cluster's stream (`[cluster]`).
    pub fn cluster(cluster: crate::cluster::ClusterIngest) -> Self {
        Ingest {
            mode: Mode::Cluster(Arc::new(cluster)),
            stats: IngestStats::default(),
        }
    }

    /// The cluster ingest path, in cluster mode.
    pub fn as_cluster(&self) -> Option<&crate::cluster::ClusterIngest> {
        match &self.mode {
            Mode::Cluster(c) => Some(c),
            _ => None,
        }
    }

    /// Appends handed to the journal whose events are not yet routed.
    pub fn outstanding(&self) -> usize {
        match &self.mode {
            Mode::Direct(_) | Mode::Cluster(_) => 0,
            Mode::Journal(committer) => committer.outstanding(),
        }
    }

    /// The checkpoint `source` committed last (none with the journal off).
    pub fn checkpoint(&self, source: &str) -> Result<Option<Vec<u8>>, crate::store::StoreError> {
        match &self.mode {
            Mode::Direct(_) => Ok(None),
            Mode::Journal(committer) => committer.db().checkpoint(source),
            Mode::Cluster(c) => Ok(c.checkpoint(source)),
        }
    }

    /// Whether new events can be accepted now (the store writes, and the
    /// journal is under its bound).
    pub fn is_available(&self) -> bool {
        match &self.mode {
            Mode::Direct(_) => true,
            Mode::Journal(committer) => committer.db().is_available() && !committer.db().journal_full(),
            Mode::Cluster(c) => c.is_available(),
        }
    }

    /// Whether `source`'s `key` was accepted recently (a fast, in-memory
    /// answer; the commit re-checks against the store).
    pub fn seen_recently(&self, source: &str, key: &str) -> bool {
        self.seen_recently_hashed(key_hash(source, key))
    }

    /// [`Ingest::seen_recently`] for a key hashed already.
    pub fn seen_recently_hashed(&self, key: KeyHash) -> bool {
        match &self.mode {
            // The stream drops duplicates by message id, and says so.
            Mode::Direct(_) | Mode::Cluster(_) => false,
            Mode::Journal(committer) => committer.db().idempotency.seen(key, cxrelay_actors::event::now_ms()),
        }
    }

    /// The hashes of `source`'s `keys` as the journal keeps them, for a
    /// caller that asks [`Ingest::seen_recently_hashed`] before it submits
    /// (empty when nothing here keeps keys by hash: the journal is off).
    pub fn key_hashes(&self, source: &str, keys: &[Option<String>]) -> Vec<Option<KeyHash>> {
        match &self.mode {
            Mode::Direct(_) | Mode::Cluster(_) => Vec::new(),
            Mode::Journal { .. } => keys.iter().map(|k| k.as_deref().map(|k| key_hash(source, k))).collect(),
        }
    }

    /// Submits a batch and waits until it is accepted. Waiting is the
    /// backpressure: a full journal queue or a full `block` listener holds
    /// the caller here.
    pub async fn submit(&self, batch: IngestBatch) -> Result<Receipt, IngestError> {
        self.submit_on(batch, false).await
    }

    /// [`Ingest::submit`], committing on this thread with whatever else
    /// its tasks submit this way in the same turn while commits are quick
    /// (see [`Committer::append_here`]), else by the journal writer: for a
    /// source whose requests arrive on an HTTP worker. Must be called on
    /// a thread that runs local tasks.
    pub async fn submit_here(&self, batch: IngestBatch) -> Result<Receipt, IngestError> {
        self.submit_on(batch, true).await
    }

    async fn submit_on(&self, batch: IngestBatch, in_place: bool) -> Result<Receipt, IngestError> {
        // A batch comes from one source: counted under its first event's.
        let source = batch.events.first().map(|e| e.source.clone());
        let receipt = self.submit_batch(batch, in_place).await?;
        if let Some(source) = source {
            self.stats.count(&source, receipt.accepted, receipt.duplicates);
        }
        Ok(receipt)
    }

    async fn submit_batch(&self, batch: IngestBatch, in_place: bool) -> Result<Receipt, IngestError> {
        match &self.mode {
            Mode::Direct(router) => {
                let n = batch.events.len();
                let events = batch.events.into_iter().map(Arc::new).collect();
                router
                    .send(Publish { events })
                    .await
                    .map_err(|_| IngestError::ShuttingDown)?;
                Ok(Receipt {
                    accepted: n,
                    duplicates: 0,
                })
            }
            // Boxed: a cluster submit's future is kilobytes, and would
            // make every journaled request's future as large.
            Mode::Cluster(c) => Box::pin(c.submit(batch)).await,
            Mode::Journal(committer) => {
                let db = committer.db();
                if !db.is_available() {
                    return Err(IngestError::StoreUnavailable(
                        db.last_error().unwrap_or_else(|| "store unavailable".into()),
                    ));
                }
                if db.journal_full() {
                    return Err(IngestError::StoreUnavailable(format!(
                        "the journal is at its bound ({} bytes): listeners are not keeping up",
                        db.max_journal_bytes()
                    )));
                }
                let keys = if batch.hashes.is_empty() {
                    batch
                        .keys
                        .into_iter()
                        .zip(&batch.events)
                        .map(|(k, e)| k.map(|k| key_hash(&e.source, &k)))
                        .collect()
                } else {
                    batch.hashes
                };
                let (reply, rx) = oneshot::channel();
                let append = Append {
                    events: batch.events,
                    keys,
                    checkpoint: batch.checkpoint,
                    ..Append::default()
                };
                committer.append(AppendRequest { append, reply }, in_place).await?;
                let outcome = rx.await.map_err(|_| IngestError::ShuttingDown)??;
                Ok(Receipt {
                    accepted: outcome.accepted,
                    duplicates: outcome.duplicates,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_scoped_to_their_source() {
        assert_ne!(scoped_key("hook", "c1"), scoped_key("details", "c1"));
        // No source name and key pair can spell another's.
        assert_ne!(scoped_key("a:b", "c"), scoped_key("a", "b:c"));
        assert_eq!(scoped_key("hook", "c1"), "4:hook:c1");
    }
}
