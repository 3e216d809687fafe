//! Fragmented messages (RFC 6455 continuation frames) put back together,
//! up to the frame size limit. Past the limit the pieces are dropped as
//! they come (memory stays bounded) and only a prefix is kept, for the
//! dead letter.

use actix_ws::Item;
use bytes::{Bytes, BytesMut};

/// Bytes of an oversized message kept for its dead letter.
const PREFIX: usize = 64 * 1024;

/// What a continuation frame completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Assembled {
    /// More pieces to come.
    Pending,
    /// A whole message (and whether it is binary).
    Complete(Bytes, bool),
    /// A message over the limit: its first bytes and its total size.
    Oversized(Bytes, usize),
    /// Pieces out of order (a continuation without a start, or a start
    /// while another message was unfinished): what was held is dropped.
    Broken(Bytes),
}

/// One message being reassembled.
#[derive(Debug)]
pub struct Reassembly {
    limit: usize,
    buf: BytesMut,
    active: bool,
    binary: bool,
    total: usize,
}

impl Reassembly {
    /// Messages of at most `limit` bytes.
    pub fn new(limit: usize) -> Self {
        Reassembly {
            limit,
            buf: BytesMut::new(),
            active: false,
            binary: false,
            total: 0,
        }
    }

    /// Whether a message is half-way.
    pub fn is_active(&self) -> bool {
        self.active
    }

    fn start(&mut self, piece: Bytes, binary: bool) {
        self.active = true;
        self.binary = binary;
        self.total = 0;
        self.buf = BytesMut::new();
        self.append(&piece);
    }

    fn append(&mut self, piece: &[u8]) {
        self.total += piece.len();
        let keep = if self.total > self.limit { PREFIX } else { self.limit };
        let room = keep.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&piece[..piece.len().min(room)]);
        if self.total > self.limit && self.buf.len() > PREFIX {
            self.buf.truncate(PREFIX);
        }
    }

    fn take(&mut self) -> Bytes {
        self.active = false;
        std::mem::take(&mut self.buf).freeze()
    }

    fn first(&mut self, piece: Bytes, binary: bool) -> Assembled {
        let interrupted = self.active.then(|| self.take());
        self.start(piece, binary);
        match interrupted {
            Some(held) => Assembled::Broken(held),
            None => Assembled::Pending,
        }
    }

    /// Takes one continuation frame.
    pub fn push(&mut self, item: Item) -> Assembled {
        match item {
            Item::FirstText(piece) => self.first(piece, false),
            Item::FirstBinary(piece) => self.first(piece, true),
            Item::Continue(piece) => {
                if !self.active {
                    return Assembled::Broken(piece);
                }
                self.append(&piece);
                Assembled::Pending
            }
            Item::Last(piece) => {
                if !self.active {
                    return Assembled::Broken(piece);
                }
                self.append(&piece);
                let total = self.total;
                let binary = self.binary;
                let bytes = self.take();
                if total > self.limit {
                    Assembled::Oversized(bytes, total)
                } else {
                    Assembled::Complete(bytes, binary)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn pieces_make_a_message() {
        let mut r = Reassembly::new(100);
        assert_eq!(r.push(Item::FirstText(b("{\"a\":"))), Assembled::Pending);
        assert!(r.is_active());
        assert_eq!(r.push(Item::Continue(b("1"))), Assembled::Pending);
        assert_eq!(r.push(Item::Last(b("}"))), Assembled::Complete(b("{\"a\":1}"), false));
        assert!(!r.is_active());
        assert_eq!(r.push(Item::FirstBinary(b("x"))), Assembled::Pending);
        assert_eq!(r.push(Item::Last(Bytes::new())), Assembled::Complete(b("x"), true));
    }

    #[test]
    fn past_the_limit_only_a_prefix_is_held() {
        let mut r = Reassembly::new(10);
        r.push(Item::FirstText(b("0123456789")));
        for _ in 0..10_000 {
            r.push(Item::Continue(Bytes::from(vec![b'x'; 100])));
            assert!(r.buf.len() <= PREFIX);
        }
        match r.push(Item::Last(b("end"))) {
            Assembled::Oversized(prefix, total) => {
                assert_eq!(total, 10 + 1_000_000 + 3);
                assert!(prefix.starts_with(b"0123456789"));
                assert!(prefix.len() <= PREFIX);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn pieces_out_of_order_are_broken() {
        let mut r = Reassembly::new(100);
        assert_eq!(r.push(Item::Continue(b("x"))), Assembled::Broken(b("x")));
        assert_eq!(r.push(Item::Last(b("y"))), Assembled::Broken(b("y")));
        r.push(Item::FirstText(b("half")));
        assert_eq!(r.push(Item::FirstText(b("new"))), Assembled::Broken(b("half")));
        assert_eq!(r.push(Item::Last(b("!"))), Assembled::Complete(b("new!"), false));
    }
}
