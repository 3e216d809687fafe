use std::io::Write;
use std::sync::Arc;

use cxrelay_actors::Event;

use super::{encode_ndjson, SinkError, SinkWriter};

/// Writes NDJSON to standard output; a flush is its commit.
#[derive(Default)]
pub struct StdoutWriter {
    buf: Vec<u8>,
}

impl SinkWriter for StdoutWriter {
    fn write(&mut self, events: &[Arc<Event>]) -> Result<(), SinkError> {
        for ev in events {
            encode_ndjson(ev, &mut self.buf);
        }
        Ok(())
    }

    fn commit(&mut self) -> Result<(), SinkError> {
        let mut out = std::io::stdout().lock();
        out.write_all(&self.buf)
            .and_then(|_| out.flush())
            .map_err(|source| SinkError::Io {
                what: "writing to stdout".into(),
                source,
            })?;
        self.buf.clear();
        Ok(())
    }
}
