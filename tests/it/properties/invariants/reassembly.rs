//! Invariants of the notification frame reassembly (a part of `invariants.rs`).

use bytes::Bytes;
use cxrelay::sources::notifications::reassembly::{Assembled, Reassembly};

use super::Checked;

/// Bytes of an oversized message kept for its dead letter
/// (`src/sources/notifications/reassembly.rs`, `PREFIX`).
pub const REASSEMBLY_PREFIX: usize = 64 * 1024;

/// A continuation frame.
#[derive(Debug, Clone)]
pub enum Piece {
    FirstText(Vec<u8>),
    FirstBinary(Vec<u8>),
    Continue(Vec<u8>),
    Last(Vec<u8>),
}

impl Piece {
    fn item(&self) -> actix_ws::Item {
        use actix_ws::Item;
        match self {
            Piece::FirstText(b) => Item::FirstText(Bytes::copy_from_slice(b)),
            Piece::FirstBinary(b) => Item::FirstBinary(Bytes::copy_from_slice(b)),
            Piece::Continue(b) => Item::Continue(Bytes::copy_from_slice(b)),
            Piece::Last(b) => Item::Last(Bytes::copy_from_slice(b)),
        }
    }
}

/// A reference reassembler: holds everything, and says what the real one
/// should answer.
struct Model {
    limit: usize,
    held: Option<(Vec<u8>, bool)>,
}

impl Model {
    /// What is kept of `data`: all of it within the limit, else a prefix.
    fn kept(&self, data: &[u8]) -> Vec<u8> {
        if data.len() <= self.limit {
            data.to_vec()
        } else {
            data[..data.len().min(REASSEMBLY_PREFIX)].to_vec()
        }
    }

    fn push(&mut self, p: &Piece) -> Assembled {
        let b = |v: Vec<u8>| Bytes::from(v);
        match p {
            Piece::FirstText(d) | Piece::FirstBinary(d) => {
                let was = self.held.take().map(|(h, _)| self.kept(&h));
                self.held = Some((d.clone(), matches!(p, Piece::FirstBinary(_))));
                match was {
                    Some(h) => Assembled::Broken(b(h)),
                    None => Assembled::Pending,
                }
            }
            Piece::Continue(d) | Piece::Last(d) => match self.held.take() {
                None => Assembled::Broken(b(d.clone())),
                Some((mut h, binary)) => {
                    h.extend_from_slice(d);
                    if matches!(p, Piece::Continue(_)) {
                        self.held = Some((h, binary));
                        Assembled::Pending
                    } else if h.len() > self.limit {
                        let total = h.len();
                        Assembled::Oversized(b(self.kept(&h)), total)
                    } else {
                        Assembled::Complete(b(h), binary)
                    }
                }
            },
        }
    }
}

/// Feeds `pieces` to a reassembler of `limit` bytes: every answer is the
/// reference's, and nothing handed back (what it held) is larger than the
/// limit, or the dead-letter prefix for a message over it.
pub fn check_reassembly(limit: usize, pieces: &[Piece]) -> Checked<Vec<Assembled>> {
    let mut real = Reassembly::new(limit);
    let mut model = Model { limit, held: None };
    let mut answers = Vec::new();
    for (i, p) in pieces.iter().enumerate() {
        let got = real.push(p.item());
        let want = model.push(p);
        let held = match &got {
            Assembled::Complete(b, _) => Some(b.len()),
            Assembled::Oversized(b, _) => Some(b.len()),
            // A piece without a start is answered as it came; what was
            // held is bounded.
            Assembled::Broken(b) if matches!(p, Piece::FirstText(_) | Piece::FirstBinary(_)) => Some(b.len()),
            _ => None,
        };
        if let Some(n) = held {
            ensure!(
                n <= limit.max(REASSEMBLY_PREFIX),
                "piece {i}: held {n} bytes with a limit of {limit}"
            );
        }
        if let Assembled::Complete(b, _) = &got {
            ensure!(
                b.len() <= limit,
                "piece {i}: a complete message of {} bytes over the limit {limit}",
                b.len()
            );
        }
        ensure!(
            got == want,
            "piece {i} ({}): got {}, want {}",
            describe_piece(p),
            describe(&got),
            describe(&want)
        );
        ensure!(
            real.is_active() == model.held.is_some(),
            "piece {i}: is_active is wrong"
        );
        answers.push(got);
    }
    Ok(answers)
}

fn describe_piece(p: &Piece) -> String {
    match p {
        Piece::FirstText(b) => format!("FirstText({} bytes)", b.len()),
        Piece::FirstBinary(b) => format!("FirstBinary({} bytes)", b.len()),
        Piece::Continue(b) => format!("Continue({} bytes)", b.len()),
        Piece::Last(b) => format!("Last({} bytes)", b.len()),
    }
}

fn describe(a: &Assembled) -> String {
    match a {
        Assembled::Pending => "Pending".into(),
        Assembled::Complete(b, bin) => format!("Complete({} bytes, binary {bin})", b.len()),
        Assembled::Oversized(b, total) => format!("Oversized({} bytes kept of {total})", b.len()),
        Assembled::Broken(b) => format!("Broken({} bytes)", b.len()),
    }
}
