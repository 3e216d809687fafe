//! The parser thread's view of the download: a blocking [`Read`] over the
//! bounded channel the body reader fills. However many times the transfer
//! was resumed, the parser sees one continuous stream; end of stream is the
//! channel closing.

use std::io::Read;

use bytes::{Buf, Bytes};
use tokio::sync::mpsc;

/// Reads chunks as they arrive.
pub struct ChunkReader {
    rx: mpsc::Receiver<Bytes>,
    current: Bytes,
}

impl ChunkReader {
    /// Reads what `rx` receives.
    pub fn new(rx: mpsc::Receiver<Bytes>) -> Self {
        ChunkReader {
            rx,
            current: Bytes::new(),
        }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.current = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}
