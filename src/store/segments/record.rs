//! One journal record: everything a group commit made durable at once.
//!
//! Layout (little-endian): version `1`; `first_seq` u64 (the position of
//! the first event, or of the next event when the record holds none);
//! event count u32; the keys' expiry i64 (ms since the epoch); key count
//! u32 and that many 16-byte idempotency key hashes; checkpoint count u32
//! and each checkpoint as a length-prefixed (u32) source name and value;
//! then each event length-prefixed (u32) in the encoding of
//! [`crate::store::codec::encode`], at consecutive positions.
//!
//! Keys and checkpoints ride in the record so that one sync makes a group's
//! events, its idempotency keys and its sources' checkpoints durable
//! together: no second store has to be synced on the hot path.

use cxrelay_actors::Event;

use crate::store::codec::{self, CodecError, Reader};
use crate::store::idempotency::{pack_keys, unpack_keys, KeyHash};

const VERSION: u8 = 1;

/// Bytes of the fixed part before the keys.
const FIXED: usize = 1 + 8 + 4 + 8 + 4;

/// Builds a record in a buffer it does not own (the segment's write
/// buffer), so no per-record allocation is made.
pub struct RecordWriter<'b> {
    buf: &'b mut Vec<u8>,
    start: usize,
    count: u32,
}

impl<'b> RecordWriter<'b> {
    /// Starts a record at the end of `buf`, with its keys and checkpoints
    /// (they come first, so events can be streamed in after them).
    pub fn begin(
        buf: &'b mut Vec<u8>,
        first_seq: u64,
        keys_expire_ms: i64,
        keys: &[KeyHash],
        checkpoints: &[(&str, &[u8])],
    ) -> Self {
        let start = buf.len();
        buf.push(VERSION);
        buf.extend_from_slice(&first_seq.to_le_bytes());
        buf.extend_from_slice(&0u32.to_le_bytes());
        buf.extend_from_slice(&keys_expire_ms.to_le_bytes());
        buf.extend_from_slice(&(keys.len() as u32).to_le_bytes());
        pack_keys(buf, keys.iter().copied());
        buf.extend_from_slice(&(checkpoints.len() as u32).to_le_bytes());
        for (source, value) in checkpoints {
            put_bytes(buf, source.as_bytes());
            put_bytes(buf, value);
        }
        RecordWriter { buf, start, count: 0 }
    }

    /// Adds the next event (at the previous one's position plus one).
    pub fn push(&mut self, ev: &Event, target: Option<&str>) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        codec::encode(ev, target, self.buf);
        let len = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
        self.count += 1;
    }

    /// Finishes the record; answers its event count.
    pub fn finish(self) -> u32 {
        let at = self.start + 9;
        self.buf[at..at + 4].copy_from_slice(&self.count.to_le_bytes());
        self.count
    }
}

fn put_bytes(buf: &mut Vec<u8>, b: &[u8]) {
    buf.extend_from_slice(&(b.len() as u32).to_le_bytes());
    buf.extend_from_slice(b);
}

/// A record read back, borrowing the segment's bytes.
#[derive(Debug)]
pub struct Record<'a> {
    /// Position of the first event (or of the next one, with none).
    pub first_seq: u64,
    /// Events held.
    pub count: u32,
    /// When the keys expire.
    pub keys_expire_ms: i64,
    raw_keys: &'a [u8],
    /// Checkpoints, in commit order (a later one of a source wins).
    pub checkpoints: Vec<(&'a str, &'a [u8])>,
    events: &'a [u8],
}

impl<'a> Record<'a> {
    /// Reads a record's header, keys and checkpoints; its events are
    /// decoded on demand ([`Record::events`]).
    pub fn parse(buf: &'a [u8]) -> Result<Self, CodecError> {
        if buf.len() < FIXED {
            return Err(CodecError::Truncated);
        }
        if buf[0] != VERSION {
            return Err(CodecError::Version(buf[0]));
        }
        let mut r = Reader(&buf[1..]);
        let first_seq = r.u64()?;
        let count = r.u32()?;
        let keys_expire_ms = r.u64()? as i64;
        let n_keys = r.u32()? as usize;
        let raw_keys = r.take(n_keys.checked_mul(16).ok_or(CodecError::Truncated)?)?;
        let n_ckpt = r.u32()?;
        let mut checkpoints = Vec::new();
        for _ in 0..n_ckpt {
            let source = std::str::from_utf8(r.bytes()?).map_err(|_| CodecError::Utf8)?;
            checkpoints.push((source, r.bytes()?));
        }
        Ok(Record {
            first_seq,
            count,
            keys_expire_ms,
            raw_keys,
            checkpoints,
            events: r.0,
        })
    }

    /// The idempotency key hashes.
    pub fn keys(&self) -> impl Iterator<Item = KeyHash> + 'a {
        unpack_keys(self.raw_keys)
    }

    /// Position of the last event (`first_seq - 1` with none).
    pub fn last_seq(&self) -> u64 {
        (self.first_seq + u64::from(self.count)).saturating_sub(1)
    }

    /// When the first event was received (none without events).
    pub fn first_received_ms(&self) -> Option<i64> {
        // An encoded event starts with its version, flags, then
        // `received_at`: read it without decoding the event.
        let b = self.events.get(4 + 2..4 + 10)?;
        let mut a = [0; 8];
        a.copy_from_slice(b);
        Some(i64::from_le_bytes(a))
    }

    /// The events with their target listeners, at their positions. A
    /// damaged event is answered as an error in its place.
    pub fn events(&self) -> impl Iterator<Item = Result<(Event, Option<String>), CodecError>> + 'a {
        let mut r = Reader(self.events);
        let (first, count) = (self.first_seq, u64::from(self.count));
        let mut failed = false;
        (0..count).map_while(move |i| {
            if failed {
                return None;
            }
            let item = r.bytes().and_then(|b| codec::decode(first + i, b));
            failed = item.is_err();
            Some(item)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_events_keys_and_checkpoints() {
        let mut buf = vec![9, 9];
        let mut w = RecordWriter::begin(
            &mut buf,
            41,
            777,
            &[1, u128::MAX],
            &[("src", b"ck-1"), ("src", b"ck-2")],
        );
        for i in 0..3 {
            let ev = Event::builder("src", "a.b")
                .id(format!("e{i}"))
                .received_at(100 + i)
                .payload(format!("{{\"n\":{i}}}"))
                .build();
            w.push(&ev, (i == 2).then_some("only"));
        }
        assert_eq!(w.finish(), 3);
        let r = Record::parse(&buf[2..]).unwrap();
        assert_eq!((r.first_seq, r.count, r.last_seq(), r.keys_expire_ms), (41, 3, 43, 777));
        assert_eq!(r.keys().collect::<Vec<_>>(), vec![1, u128::MAX]);
        assert_eq!(r.checkpoints, vec![("src", &b"ck-1"[..]), ("src", &b"ck-2"[..])]);
        assert_eq!(r.first_received_ms(), Some(100));
        let evs: Vec<_> = r.events().map(Result::unwrap).collect();
        assert_eq!(evs.iter().map(|(e, _)| e.seq).collect::<Vec<_>>(), [41, 42, 43]);
        assert_eq!(evs[2].1.as_deref(), Some("only"));
        assert_eq!(&evs[1].0.payload[..], b"{\"n\":1}");
        // A record without events covers no position.
        let mut empty = Vec::new();
        RecordWriter::begin(&mut empty, 44, 0, &[], &[("s", b"x")]).finish();
        let r = Record::parse(&empty).unwrap();
        assert_eq!((r.count, r.last_seq(), r.first_received_ms()), (0, 43, None));
        // Cut anywhere, a record is an error, never a panic.
        for cut in 0..buf.len() - 2 {
            if let Ok(r) = Record::parse(&buf[2..2 + cut]) {
                let _ = r.events().count();
            }
        }
    }
}
