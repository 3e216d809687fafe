//! The ingest path in cluster mode: a batch is published to the stream and
//! accepted once every message of it is acknowledged; then its checkpoint
//! is saved in the checkpoints bucket.
//!
//! Why not one atomic write: the checkpoint lives in a key-value bucket
//! (another stream), which no JetStream batch spans. What matters is that a
//! checkpoint is never ahead of its events, and that holds since it is
//! written only after their acknowledgements. A node that dies in between
//! leaves the old checkpoint: the next owner fetches the page again and
//! publishes the same message ids, which the stream drops as duplicates
//! within its duplicate window (the idempotency window, 24 h by default),
//! so the page is neither lost nor delivered twice.

use std::future::IntoFuture;
use std::sync::Arc;
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream::message::PublishMessage;
use bytes::Bytes;
use dashmap::DashMap;
use futures_util::future::join_all;
use futures_util::StreamExt;

use super::nats::{key_of, name_of, Nats};
use super::partition::{partition_of, subject};
use super::telemetry::Published;
use super::{ClusterError, ClusterSettings};
use crate::ingest::{scoped_key, IngestBatch, IngestError, Receipt};
use crate::store::codec;
use cxrelay_actors::Event;

/// Messages published before their acknowledgements are awaited.
const WINDOW: usize = 4096;

/// Publishes batches to the stream. Cheap to clone, `Send`.
#[derive(Clone)]
pub struct ClusterIngest {
    nats: Nats,
    settings: Arc<ClusterSettings>,
    /// Checkpoints of the sources this node runs, read from the bucket
    /// when it took their lease, and written through.
    checkpoints: Arc<DashMap<String, Vec<u8>>>,
}

impl ClusterIngest {
    /// The ingest path over `nats`.
    pub fn new(nats: Nats, settings: Arc<ClusterSettings>) -> Self {
        ClusterIngest {
            nats,
            settings,
            checkpoints: Arc::default(),
        }
    }

    /// Whether NATS is reachable now.
    pub fn is_available(&self) -> bool {
        self.nats.client.connection_state() == State::Connected
    }

    /// The checkpoint `source` committed last (as read when this node took
    /// its lease, or written since).
    pub fn checkpoint(&self, source: &str) -> Option<Vec<u8>> {
        self.checkpoints.get(source).map(|c| c.clone())
    }

    /// Reads the checkpoints of `source` and its parts (`<source>/...`,
    /// e.g. notification channels) from the bucket: the state the last
    /// owner left.
    pub async fn load_checkpoints(&self, source: &str) -> Result<usize, ClusterError> {
        let error = |e: &dyn std::fmt::Display| ClusterError::Nats(format!("reading checkpoints: {e}"));
        let mut keys = self.nats.checkpoints.keys().await.map_err(|e| error(&e))?;
        let prefix = format!("{source}/");
        let mut mine = Vec::new();
        while let Some(k) = keys.next().await {
            let k = k.map_err(|e| error(&e))?;
            if let Some(name) = name_of(&k).filter(|n| n == source || n.starts_with(&prefix)) {
                mine.push((k, name));
            }
        }
        let mut n = 0;
        for (k, name) in mine {
            if let Some(v) = self.nats.checkpoints.get(k).await.map_err(|e| error(&e))? {
                self.checkpoints.insert(name, v.to_vec());
                n += 1;
            }
        }
        Ok(n)
    }

    /// Publishes a batch and waits for the stream's acknowledgements, then
    /// saves its checkpoint. Refused as a whole when NATS cannot take it
    /// (its events may be in the stream: a retry publishes the same ids).
    pub async fn submit(&self, batch: IngestBatch) -> Result<Receipt, IngestError> {
        self.within_timeout(self.publish(batch)).await
    }

    /// Publishes dead letters sent back: delivered to `target` only (every
    /// listener with `None`), without idempotency keys (a replay is asked
    /// for on purpose).
    pub async fn send_back(&self, events: Vec<Event>, target: Option<&str>) -> Result<Receipt, IngestError> {
        self.within_timeout(async {
            let receipt = self.publish_events(&events, Vec::new(), target).await?;
            self.emit(receipt);
            Ok(receipt)
        })
        .await
    }

    async fn within_timeout(
        &self,
        work: impl std::future::Future<Output = Result<Receipt, IngestError>>,
    ) -> Result<Receipt, IngestError> {
        let timeout = self.settings.timeout * 2;
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(IngestError::StoreUnavailable(format!(
                "NATS did not acknowledge within {}",
                humantime::format_duration(timeout)
            ))),
        }
    }

    fn emit(&self, receipt: Receipt) {
        Published {
            accepted: receipt.accepted,
            duplicates: receipt.duplicates,
        }
        .emit();
    }

    fn unavailable(&self, what: &str, e: &dyn std::fmt::Display) -> IngestError {
        IngestError::StoreUnavailable(format!("NATS stream `{}`: {what}: {e}", self.settings.stream))
    }

    async fn publish(&self, batch: IngestBatch) -> Result<Receipt, IngestError> {
        let receipt = self.publish_events(&batch.events, batch.keys, None).await?;
        self.emit(receipt);
        if let Some((name, bytes)) = batch.checkpoint {
            self.nats
                .checkpoints
                .put(key_of(&name), Bytes::from(bytes.clone()))
                .await
                .map_err(|e| self.unavailable("saving the checkpoint", &e))?;
            self.checkpoints.insert(name, bytes);
        }
        Ok(receipt)
    }

    /// Publishes events and waits for every acknowledgement.
    async fn publish_events(
        &self,
        events: &[Event],
        keys: Vec<Option<String>>,
        target: Option<&str>,
    ) -> Result<Receipt, IngestError> {
        let s = &self.settings;
        let mut keys = keys.into_iter();
        let mut messages = events.iter().map(|ev| {
            let mut body = Vec::with_capacity(ev.payload.len() + 128);
            codec::encode(ev, target, &mut body);
            let mut m = PublishMessage::build().payload(Bytes::from(body));
            // The same event from any node, on any retry, has the same id:
            // the stream keeps one.
            if let Some(k) = keys.next().flatten() {
                m = m.message_id(scoped_key(&ev.source, &k));
            }
            (subject(&s.stream, partition_of(ev, s.partitions)), m)
        });
        let mut receipt = Receipt::default();
        loop {
            let mut acks = Vec::with_capacity(WINDOW);
            for (subject, m) in messages.by_ref().take(WINDOW) {
                let ack = self
                    .nats
                    .js
                    .send_publish(subject, m)
                    .await
                    .map_err(|e| self.unavailable("publishing", &e))?;
                acks.push(ack.into_future());
            }
            if acks.is_empty() {
                break;
            }
            for ack in join_all(acks).await {
                match ack {
                    Ok(a) if a.duplicate => receipt.duplicates += 1,
                    Ok(_) => receipt.accepted += 1,
                    Err(e) => return Err(self.unavailable("not acknowledged", &e)),
                }
            }
        }
        Ok(receipt)
    }
}

/// How long a standby waits between attempts at a lease, and a node between
/// NATS retries.
pub(crate) const RETRY: Duration = Duration::from_millis(500);
