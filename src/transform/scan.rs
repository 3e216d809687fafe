//! Finding the end of the plain part of a JSON string, eight bytes at a
//! time: strings are most of what the rewriter and the sinks' line encoder
//! scan, and most of their bytes need nothing done.

/// How many leading bytes of `bytes` a JSON string holds as they are: the
/// length up to the first `"`, `\` or control character (or all of it).
pub fn plain_run(bytes: &[u8]) -> usize {
    const ONES: u64 = u64::MAX / 255;
    const HIGH: u64 = ONES << 7;
    let mut chunks = bytes.chunks_exact(8);
    let mut done = 0;
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // A byte's high bit is set in each term when that byte is below
        // 0x20, or is zero after the xor (the quote, the backslash). A
        // borrow can only set bits above the first such byte, so the
        // lowest set bit is exact.
        let control = w.wrapping_sub(ONES * 0x20) & !w;
        let q = w ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q;
        let b = w ^ (ONES * u64::from(b'\\'));
        let backslash = b.wrapping_sub(ONES) & !b;
        let hits = (control | quote | backslash) & HIGH;
        if hits != 0 {
            return done + hits.trailing_zeros() as usize / 8;
        }
        done += 8;
    }
    done + chunks
        .remainder()
        .iter()
        .position(|&c| special(c))
        .unwrap_or(chunks.remainder().len())
}

fn special(c: u8) -> bool {
    c == b'"' || c == b'\\' || c < 0x20
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(bytes: &[u8]) -> usize {
        bytes.iter().position(|&c| special(c)).unwrap_or(bytes.len())
    }

    #[test]
    fn agrees_with_a_byte_by_byte_scan_at_every_position_and_byte() {
        // Every byte value at every offset of a 0..=19 byte run, behind
        // plain ASCII and behind bytes just outside the special ranges.
        for len in 0..20 {
            for at in 0..len {
                for c in 0..=255u8 {
                    for fill in [b'a', b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']'] {
                        let mut v = vec![fill; len];
                        v[at] = c;
                        assert_eq!(plain_run(&v), naive(&v), "{v:?}");
                    }
                }
            }
            assert_eq!(plain_run(&vec![b'x'; len]), len);
        }
        // Two special bytes in one word: the first one counts.
        assert_eq!(plain_run(b"ab\\c\"defgh"), 2);
        assert_eq!(plain_run(b"abcdefg\x01\""), 7);
        assert_eq!(plain_run("ünï €\u{1F600}\"".as_bytes()), "ünï €\u{1F600}".len());
    }
}
