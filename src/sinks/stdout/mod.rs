//! `kind = "stdout"`: NDJSON on standard output.

mod config;
pub use config::StdoutSinkConfig;

use std::io::Write;
use std::sync::Arc;

use cxrelay_actors::Event;
use futures_util::future::LocalBoxFuture;

use crate::sinks::encode::write_in_pieces;
use crate::sinks::{encode_ndjson, SinkError, SinkWriter};

/// Writes NDJSON to standard output; a flush is its commit.
#[derive(Default)]
pub struct StdoutWriter {
    buf: Vec<u8>,
}

impl SinkWriter for StdoutWriter {
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        let mut out = std::io::stdout().lock();
        let r = write_in_pieces(events.iter().map(|e| &**e), &mut self.buf, encode_ndjson, |piece| {
            out.write_all(piece)
        })
        .and_then(|()| out.flush())
        .map_err(|source| SinkError::Io {
            what: "writing to stdout".into(),
            source,
        });
        Box::pin(std::future::ready(r))
    }
}
