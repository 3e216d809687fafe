//! `kind = "stdout"`: NDJSON on standard output.

mod config;
pub use config::StdoutSinkConfig;

use std::io::Write;
use std::sync::Arc;

use cxrelay_actors::Event;
use futures_util::future::LocalBoxFuture;

use crate::sinks::encode::WRITE_PIECE;
use crate::sinks::{encode_ndjson, SinkError, SinkWriter};

/// Writes NDJSON to standard output; a flush is its commit.
#[derive(Default)]
pub struct StdoutWriter {
    buf: Vec<u8>,
}

impl SinkWriter for StdoutWriter {
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        let mut out = std::io::stdout().lock();
        let mut write = || {
            self.buf.clear();
            for ev in events {
                encode_ndjson(ev, &mut self.buf);
                if self.buf.len() >= WRITE_PIECE {
                    out.write_all(&self.buf)?;
                    self.buf.clear();
                }
            }
            out.write_all(&self.buf)?;
            out.flush()
        };
        let r = write().map_err(|source| SinkError::Io {
            what: "writing to stdout".into(),
            source,
        });
        Box::pin(std::future::ready(r))
    }
}
