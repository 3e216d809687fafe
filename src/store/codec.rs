//! Compact binary encoding of journal entries.
//!
//! An event (little-endian): version `1`, flags (bit 0 key, bit 1 event
//! time, bit 2 target listener), `received_at` i64, then `event_time` i64
//! if flagged, then length-prefixed (u32) id, source, topic, key?, target?,
//! and the payload as the rest of the buffer.
//!
//! A journal entry is either one event (version `1`, keyed by its position)
//! or a chunk of consecutive events (version `2`, keyed by the position of
//! its last event): `2`, count u32, then each event length-prefixed (u32).
//! Chunks make one B-tree insert carry many events, which is most of the
//! journal's cost per event.

use std::sync::Arc;

use bytes::Bytes;
use cxrelay_actors::Event;

const VERSION: u8 = 1;
const CHUNK_VERSION: u8 = 2;
const HAS_KEY: u8 = 1;
const HAS_TIME: u8 = 2;
const HAS_TARGET: u8 = 4;

/// Why an entry could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CodecError {
    /// The buffer ended early.
    #[error("journal entry is truncated")]
    Truncated,
    /// Written by a newer cxrelay.
    #[error("journal entry has unknown version {0}")]
    Version(u8),
    /// A string field is not UTF-8.
    #[error("journal entry has a field that is not UTF-8")]
    Utf8,
}

/// Appends the encoding of `ev` (and its target listener, if any) to `out`.
pub fn encode(ev: &Event, target: Option<&str>, out: &mut Vec<u8>) {
    let mut flags = 0;
    if ev.key.is_some() {
        flags |= HAS_KEY;
    }
    if ev.event_time.is_some() {
        flags |= HAS_TIME;
    }
    if target.is_some() {
        flags |= HAS_TARGET;
    }
    out.reserve(32 + ev.id.len() + ev.source.len() + ev.topic.len() + ev.payload.len());
    out.push(VERSION);
    out.push(flags);
    out.extend_from_slice(&ev.received_at.to_le_bytes());
    if let Some(t) = ev.event_time {
        out.extend_from_slice(&t.to_le_bytes());
    }
    put_str(out, &ev.id);
    put_str(out, &ev.source);
    put_str(out, &ev.topic);
    if let Some(k) = &ev.key {
        put_str(out, k);
    }
    if let Some(t) = target {
        put_str(out, t);
    }
    out.extend_from_slice(&ev.payload);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

/// Reads little-endian fields off the front of a buffer; a field past
/// its end is `Truncated`. Shared by the entry and segment record formats.
pub(crate) struct Reader<'a>(pub(crate) &'a [u8]);

impl<'a> Reader<'a> {
    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.0.len() < n {
            return Err(CodecError::Truncated);
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    /// A `u32`.
    pub(crate) fn u32(&mut self) -> Result<u32, CodecError> {
        let mut a = [0; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    /// A `u64`.
    pub(crate) fn u64(&mut self) -> Result<u64, CodecError> {
        let mut a = [0; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    /// An `i64`.
    pub(crate) fn i64(&mut self) -> Result<i64, CodecError> {
        Ok(self.u64()? as i64)
    }

    /// Bytes after their `u32` length.
    pub(crate) fn bytes(&mut self) -> Result<&'a [u8], CodecError> {
        let n = self.u32()? as usize;
        self.take(n)
    }

    /// UTF-8 after its `u32` length.
    pub(crate) fn str(&mut self) -> Result<&'a str, CodecError> {
        std::str::from_utf8(self.bytes()?).map_err(|_| CodecError::Utf8)
    }
}

/// Decodes an entry written by [`encode`] into an event at position `seq`,
/// and its target listener.
pub fn decode(seq: u64, buf: &[u8]) -> Result<(Event, Option<String>), CodecError> {
    let mut r = Reader(buf);
    let head = r.take(2)?;
    if head[0] != VERSION {
        return Err(CodecError::Version(head[0]));
    }
    let flags = head[1];
    let received_at = r.i64()?;
    let event_time = if flags & HAS_TIME != 0 { Some(r.i64()?) } else { None };
    let id = r.str()?;
    let source = r.str()?;
    let topic = r.str()?;
    let key = if flags & HAS_KEY != 0 {
        Some(Arc::<str>::from(r.str()?))
    } else {
        None
    };
    let target = if flags & HAS_TARGET != 0 {
        Some(r.str()?.to_string())
    } else {
        None
    };
    let payload = Bytes::copy_from_slice(r.0);
    let ev = Event::builder(Arc::<str>::from(source), Arc::<str>::from(topic))
        .id(id)
        .seq(seq)
        .key_opt(key)
        .event_time(event_time)
        .received_at(received_at)
        .payload(payload)
        .build();
    Ok((ev, target))
}

/// Builds a chunk entry of consecutive events.
#[derive(Debug)]
pub struct ChunkWriter {
    buf: Vec<u8>,
    count: u32,
}

impl Default for ChunkWriter {
    fn default() -> Self {
        ChunkWriter {
            buf: vec![CHUNK_VERSION, 0, 0, 0, 0],
            count: 0,
        }
    }
}

impl ChunkWriter {
    /// Adds the next event (its position is the previous one's plus one).
    pub fn push(&mut self, ev: &Event, target: Option<&str>) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        encode(ev, target, &mut self.buf);
        let len = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
    }

    /// Events in the chunk.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// The entry's bytes.
    pub fn bytes(&mut self) -> &[u8] {
        let count = self.count.to_le_bytes();
        self.buf[1..5].copy_from_slice(&count);
        &self.buf
    }

    /// Empties the chunk for reuse.
    pub fn clear(&mut self) {
        self.buf.truncate(5);
        self.count = 0;
    }
}

/// Decodes a journal entry stored under `key`: one event, or a chunk whose
/// last event is at `key`. A damaged event inside a chunk is answered as an
/// error in its place; the others are still read.
pub fn decode_entry(key: u64, buf: &[u8]) -> Vec<Result<(Event, Option<String>), CodecError>> {
    match buf.first() {
        Some(&CHUNK_VERSION) => {}
        _ => return vec![decode(key, buf)],
    }
    let mut r = Reader(&buf[1..]);
    let Ok(count) = r.take(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) else {
        return vec![Err(CodecError::Truncated)];
    };
    let first = (key + 1).saturating_sub(u64::from(count));
    let mut out = Vec::with_capacity(count as usize);
    for i in 0..u64::from(count) {
        let item = r
            .take(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .and_then(|n| r.take(n));
        match item {
            Ok(bytes) => out.push(decode(first + i, bytes)),
            Err(e) => {
                out.push(Err(e));
                break;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_field() {
        let ev = Event::builder("src", "a.b.c")
            .id("id-1")
            .key("conv")
            .event_time(Some(-5))
            .received_at(1234)
            .payload(&b"{\"x\":\"\xc3\xa9\"}"[..])
            .build();
        for target in [None, Some("warehouse")] {
            let mut buf = Vec::new();
            encode(&ev, target, &mut buf);
            let (back, t) = decode(9, &buf).unwrap();
            assert_eq!(t.as_deref(), target);
            assert_eq!(
                (back.seq, &*back.id, &*back.source, &*back.topic),
                (9, "id-1", "src", "a.b.c")
            );
            assert_eq!(
                (back.key.as_deref(), back.event_time, back.received_at),
                (Some("conv"), Some(-5), 1234)
            );
            assert_eq!(back.payload, ev.payload);
        }
        let bare = Event::builder("s", "t").received_at(1).build();
        let mut buf = Vec::new();
        encode(&bare, None, &mut buf);
        let (back, _) = decode(1, &buf).unwrap();
        assert_eq!((back.key, back.event_time), (None, None));
    }

    #[test]
    fn chunks_hold_consecutive_positions_ending_at_their_key() {
        let mut c = ChunkWriter::default();
        for i in 0..3 {
            let ev = Event::builder("s", "t")
                .id(format!("e{i}"))
                .payload(format!("{{\"n\":{i}}}"))
                .build();
            c.push(&ev, (i == 1).then_some("only"));
        }
        let entry = c.bytes().to_vec();
        let back: Vec<(Event, Option<String>)> = decode_entry(12, &entry).into_iter().map(Result::unwrap).collect();
        let seqs: Vec<u64> = back.iter().map(|(e, _)| e.seq).collect();
        assert_eq!(seqs, [10, 11, 12]);
        assert_eq!(back[1].1.as_deref(), Some("only"));
        assert_eq!(&back[2].0.payload[..], b"{\"n\":2}");
        // A single-event entry (the older layout) still reads.
        let mut single = Vec::new();
        encode(&back[0].0, None, &mut single);
        assert_eq!(decode_entry(4, &single)[0].as_ref().unwrap().0.seq, 4);
        // A cut chunk yields what is whole and an error, never a panic.
        let cut = decode_entry(12, &entry[..entry.len() - 3]);
        assert_eq!(cut.len(), 3);
        assert!(cut[2].is_err() && cut[0].is_ok());
        c.clear();
        assert_eq!(c.count(), 0);
    }

    #[test]
    fn damaged_entries_are_errors_not_panics() {
        let ev = Event::builder("s", "t").id("x").build();
        let mut buf = Vec::new();
        encode(&ev, None, &mut buf);
        for cut in 0..20 {
            let _ = decode(1, &buf[..cut.min(buf.len())]);
        }
        assert_eq!(decode(1, &[2, 0]).unwrap_err(), CodecError::Version(2));
        assert_eq!(decode(1, &buf[..5]).unwrap_err(), CodecError::Truncated);
    }
}
