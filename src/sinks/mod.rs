//! Sinks: listener actors that write events somewhere and acknowledge them
//! once the write is durable.

mod encode;
mod file;
mod sink_actor;
mod stdout;

pub use encode::encode_ndjson;
pub use file::FileWriter;
pub use sink_actor::{FlushNow, SinkActor, SinkOptions};
pub use stdout::StdoutWriter;

use std::sync::Arc;

use cxrelay_actors::Event;

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
}

/// Something that writes batches of events.
///
/// `write` may buffer; `commit` makes everything written so far durable.
/// Events are acknowledged only after `commit` succeeds. If `write` or
/// `commit` fails, the writer must be able to take the same batch again
/// (it undoes partial writes where it can).
pub trait SinkWriter: 'static {
    /// Writes a batch (possibly buffered).
    fn write(&mut self, events: &[Arc<Event>]) -> Result<(), SinkError>;
    /// Makes every written batch durable.
    fn commit(&mut self) -> Result<(), SinkError>;
    /// A short description for status (e.g. the current file).
    fn describe(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
}
