//! Continuation-frame reassembly against a reference model. Bytes 0-1 pick
//! the limit (its top bit: a limit above the 64 KiB dead-letter prefix);
//! then each piece is a tag byte (kind in bits 0-1, bit 2: a long piece)
//! and a length byte, followed by its bytes (repeated when the input runs
//! short, so large pieces cost little input). No panic, every answer the
//! model's, nothing held beyond the limit (or the prefix).

#![no_main]

use libfuzzer_sys::fuzz_target;

#[path = "../../tests/it/properties/invariants.rs"]
mod invariants;

use invariants::Piece;

fuzz_target!(|data: &[u8]| {
    let [hi, lo, pieces_data @ ..] = data else {
        return;
    };
    let mut rest = pieces_data;
    let raw = usize::from(u16::from_be_bytes([*hi & 0x7f, *lo]));
    let limit = if hi & 0x80 != 0 { 60_000 + raw } else { 1 + raw % 512 };
    let mut pieces = Vec::new();
    while let [tag, len, tail @ ..] = rest {
        let len = if tag & 4 != 0 {
            usize::from(*len) * 512
        } else {
            usize::from(*len)
        };
        let take = len.min(tail.len());
        let mut bytes = tail[..take].to_vec();
        let fill = bytes.last().copied().unwrap_or(b'x');
        bytes.resize(len, fill);
        rest = &tail[take..];
        pieces.push(match tag & 3 {
            0 => Piece::FirstText(bytes),
            1 => Piece::FirstBinary(bytes),
            2 => Piece::Continue(bytes),
            _ => Piece::Last(bytes),
        });
        if pieces.len() >= 64 {
            break;
        }
    }
    if let Err(broken) = invariants::verdict(invariants::check_reassembly(limit, &pieces)) {
        panic!("{broken}");
    }
});
