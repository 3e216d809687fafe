//! Framing of journal records in a segment file: `len u32 | crc32 u32 |
//! payload`, little-endian, the CRC (IEEE, as gzip's) over the payload.
//! A header of zeros ([`END`]) ends a segment's records: every record is
//! written with one after it, so what lies beyond (zeros written ahead, or
//! the old bytes of a reused file) is never read as a record.
//!
//! A record is either whole and intact or it is not there: recovery reads
//! frames until the first one that is cut short (a torn write), whose
//! length is implausible, or whose CRC does not match, and the segment is
//! cut back to the end of the last good frame. Everything after it was
//! never acknowledged to anyone: a group is acknowledged only after its
//! frame and everything before it are synced.

/// Bytes of a frame's header.
pub const HEADER: usize = 8;

/// The header that ends a segment's records.
pub const END: [u8; HEADER] = [0; HEADER];

/// The largest payload a frame may declare: a group commit holds at most a
/// few thousand events of bounded size, so a larger length can only be
/// garbage (a torn header), never a record.
pub const MAX_PAYLOAD: usize = 1 << 30;

/// Appends a frame holding `payload` to `out`.
pub fn put(out: &mut Vec<u8>, payload: &[u8]) {
    out.reserve(HEADER + payload.len());
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// Writes a frame whose payload is already in `buf[at + HEADER..]`, with
/// room for the header reserved at `buf[at..at + HEADER]`: a record is
/// encoded straight into the write buffer, never copied.
pub fn seal(buf: &mut [u8], at: usize) {
    let (head, payload) = buf[at..].split_at_mut(HEADER);
    head[..4].copy_from_slice(&(payload.len() as u32).to_le_bytes());
    head[4..].copy_from_slice(&crc32fast::hash(payload).to_le_bytes());
}

/// What is at the front of a buffer read from a segment.
#[derive(Debug, PartialEq, Eq)]
pub enum Next<'a> {
    /// A whole, intact frame: its payload and the bytes it takes.
    Frame(&'a [u8], usize),
    /// Nothing more (the buffer is empty, or starts with [`END`]).
    End,
    /// The frame is cut short: the buffer ends inside it.
    Torn,
    /// The header is garbage or the payload does not match its CRC.
    Corrupt,
}

/// Reads the frame at the front of `buf`.
pub fn next(buf: &[u8]) -> Next<'_> {
    if buf.is_empty() || buf.starts_with(&END) {
        return Next::End;
    }
    if buf.len() < HEADER {
        return Next::Torn;
    }
    let len = u32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    let crc = u32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    if len == 0 || len > MAX_PAYLOAD {
        return Next::Corrupt;
    }
    let Some(payload) = buf.get(HEADER..HEADER + len) else {
        return Next::Torn;
    };
    if crc32fast::hash(payload) != crc {
        return Next::Corrupt;
    }
    Next::Frame(payload, HEADER + len)
}

/// Bytes of the intact frames at the front of `buf`.
pub fn records_len(buf: &[u8]) -> usize {
    let mut at = 0;
    while let Next::Frame(_, n) = next(&buf[at..]) {
        at += n;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_read_back_and_damage_is_told_apart() {
        let mut buf = Vec::new();
        put(&mut buf, b"first");
        let at = buf.len();
        buf.extend_from_slice(&[0; HEADER]);
        buf.extend_from_slice(b"second");
        seal(&mut buf, at);
        let Next::Frame(p, n) = next(&buf) else { panic!() };
        assert_eq!((p, n), (&b"first"[..], HEADER + 5));
        assert_eq!(next(&buf[n..]), Next::Frame(&b"second"[..], HEADER + 6));
        assert_eq!(next(&buf[buf.len()..]), Next::End);
        // Every cut inside the second frame is torn, never a frame.
        for cut in n + 1..buf.len() {
            assert_eq!(next(&buf[n..cut]), Next::Torn, "cut at {cut}");
        }
        // A flipped payload bit fails the CRC.
        let mut bad = buf.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert_eq!(next(&bad[n..]), Next::Corrupt);
        // A zero header ends the records, whatever follows it; an absurd
        // one is garbage.
        assert_eq!(next(&[0; 16]), Next::End);
        assert_eq!(next(&[[0; HEADER].as_slice(), &buf].concat()), Next::End);
        assert_eq!(next(&[0, 0, 0, 0, 1, 0, 0, 0]), Next::Corrupt);
        assert_eq!(next(&[0xff; 16]), Next::Corrupt);
    }
}
