//! Sinks: listener actors that write events somewhere and acknowledge them
//! once the write is durable. One folder per kind (its typed config and
//! writer), registered in [`registry`].

pub mod blackhole;
pub mod builder;
pub(crate) mod encode;
pub mod file;
mod flush;
mod held;
pub mod http;
pub mod nats;
pub mod object_store;
pub mod postgres;
pub mod registry;
mod sink_actor;
pub mod stdout;
pub mod telemetry;
#[cfg(test)]
mod tests;

pub use builder::{SinkBuilder, SinkCommon, SinkContext, SinkHandles, SinkStarter};
pub use encode::encode_ndjson;
pub use file::FileWriter;
pub use flush::{FlushNow, FlushSignal, Flusher};
pub use held::HeldEvents;
pub use http::HttpWriter;
pub use registry::SinkSpec;
pub use sink_actor::{SinkActor, SinkOptions, Taken};
pub use stdout::StdoutWriter;

use std::sync::Arc;
use std::time::Duration;

use cxrelay_actors::Event;
use futures_util::future::LocalBoxFuture;

/// Why a sink write failed.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// An I/O error, with what was being done.
    #[error("{what}: {source}")]
    Io {
        /// What the sink was doing.
        what: String,
        /// The error.
        source: std::io::Error,
    },
    /// The target answered with a non-success status.
    #[error("HTTP {status} from {url}: {body}")]
    Http {
        /// Status code.
        status: u16,
        /// Where.
        url: String,
        /// The start of the answer's body.
        body: String,
    },
    /// The request did not complete.
    #[error("sending to {url}: {message}")]
    Transport {
        /// Where.
        url: String,
        /// Why.
        message: String,
    },
    /// The target refused the batch and sending it again cannot change
    /// that (an HTTP 400, a row the database will never take): the batch
    /// goes to dead letters at once, without waiting for `max_retries`.
    #[error("{0} (not retried)")]
    Rejected(Box<SinkError>),
    /// The target asked to be left alone for `wait` (HTTP 429 or 503 with
    /// `Retry-After`): the next attempt comes no sooner, and this one
    /// counts as a failed attempt.
    #[error("{error} (next attempt in {}s)", wait.as_secs_f64().ceil())]
    RetryAfter {
        /// How long to wait before the next attempt.
        wait: Duration,
        /// What the target answered.
        error: Box<SinkError>,
    },
    /// The sink stopped sending for `wait` (an open circuit breaker): the
    /// next attempt comes no sooner, this one counts as a failed attempt,
    /// and the listener shows as paused (not ready) until a write succeeds.
    #[error("{reason}")]
    Paused {
        /// How long until the sink tries again.
        wait: Duration,
        /// Why, for status and readiness.
        reason: String,
    },
}

/// Something that writes batches of events durably.
///
/// `commit` writes a batch and resolves once it is durable (fsynced,
/// answered 2xx, acknowledged by the broker). Events are acknowledged only
/// then. After a failure the same batch is offered again, so a writer must
/// undo partial writes where it can.
pub trait SinkWriter: 'static {
    /// Writes `events` and makes them durable.
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>>;
    /// Periodic work that must happen even when no event comes (e.g.
    /// closing a file that is old enough). Called on the sink's batch
    /// timer, never while a commit is under way; the writer is built for
    /// it if none exists yet. An error is reported, and the next tick comes
    /// all the same.
    fn tick(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// The sink is being stopped (at shutdown, after its final commit):
    /// finish what is open so a loader gets it now rather than at the next
    /// start (e.g. close and rename the open files). Only committed data is
    /// there to finish.
    fn close(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// A short description for status (e.g. the current file).
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
