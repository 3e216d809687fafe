//! Ingest: the one path by which every source hands events in.

use std::sync::Arc;

use actix::Addr;
use cxrelay_actors::router::PublishOutcome;
use cxrelay_actors::{Event, Publish, Router};

/// A batch of events from one source.
#[derive(Debug)]
pub struct IngestBatch {
    /// The events, in source order.
    pub events: Vec<Event>,
}

/// What happened to a submitted batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Events accepted.
    pub accepted: usize,
    /// Events that no listener wanted (counted, not lost by mistake).
    pub unrouted: usize,
}

/// Why a batch was refused. The caller still owns the problem: nothing of
/// a refused batch was accepted.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The service is shutting down or the router is gone.
    #[error("cxrelay is shutting down; not accepting events")]
    ShuttingDown,
}

/// Hands events to the router. Cheap to clone, `Send`.
#[derive(Clone)]
pub struct Ingest {
    router: Addr<Router>,
}

impl Ingest {
    /// Ingest into `router`.
    pub fn new(router: Addr<Router>) -> Self {
        Ingest { router }
    }

    /// Submits a batch and waits until it is accepted. Waiting is the
    /// backpressure: a full `block` listener holds the caller here.
    pub async fn submit(&self, batch: IngestBatch) -> Result<Receipt, IngestError> {
        let n = batch.events.len();
        let events = batch.events.into_iter().map(Arc::new).collect();
        let PublishOutcome { unrouted, .. } = self
            .router
            .send(Publish { events })
            .await
            .map_err(|_| IngestError::ShuttingDown)?;
        Ok(Receipt {
            accepted: n,
            unrouted,
        })
    }
}
