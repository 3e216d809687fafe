//! The text of JSON strings: finding the end of their plain part sixteen
//! or eight bytes at a time, decoding their escapes, and writing them.
//! Strings are most of what the rewriter and the sinks' line encoder read
//! and write, and most of their bytes need nothing done.

/// How many leading bytes of `bytes` a JSON string holds as they are: the
/// length up to the first `"`, `\` or control character (or all of it).
#[inline]
pub fn plain_run(bytes: &[u8]) -> usize {
    let (done, found) = wide_run(bytes);
    if found {
        return done;
    }
    done + narrow_run(bytes.get(done..).unwrap_or_default())
}

/// [`plain_run`] over whole 16-byte blocks with SSE2 (part of every x86-64
/// CPU): the offset of the first special byte and `true`, or how many
/// bytes the whole blocks cover and `false`. Strings are read in place in
/// the document, so a short string's block usually holds its closing quote.
#[cfg(target_arch = "x86_64")]
#[inline]
fn wide_run(bytes: &[u8]) -> (usize, bool) {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_max_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut done = 0;
    for block in bytes.chunks_exact(16) {
        // SAFETY: SSE2 is part of the x86-64 baseline, so its intrinsics
        // are always available there; `block` is 16 readable bytes and an
        // unaligned load reads exactly those.
        let mask = unsafe {
            let v = _mm_loadu_si128(block.as_ptr().cast::<__m128i>());
            let control_max = _mm_set1_epi8(0x1f);
            // Unsigned `max(v, 0x1f) == 0x1f` is `v <= 0x1f`: a control byte.
            let control = _mm_cmpeq_epi8(_mm_max_epu8(v, control_max), control_max);
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
        };
        if mask != 0 {
            return (done + mask.trailing_zeros() as usize, true);
        }
        done += 16;
    }
    (done, false)
}

#[cfg(not(target_arch = "x86_64"))]
fn wide_run(_: &[u8]) -> (usize, bool) {
    (0, false)
}

/// [`plain_run`] eight bytes at a time in a machine word, then byte by byte.
fn narrow_run(bytes: &[u8]) -> usize {
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

/// Writes `s` as a JSON string, byte for byte as serde_json does.
pub fn write_string(out: &mut Vec<u8>, s: &str) {
    // Names, ids and topics almost never need escaping: checking is
    // cheaper than escaping byte by byte.
    if plain_run(s.as_bytes()) == s.len() {
        out.reserve(s.len() + 2);
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Decodes a JSON string body with escapes.
pub fn unescape(raw: &[u8]) -> std::result::Result<String, &'static str> {
    let mut out: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    let hex4 = |at: usize| -> std::result::Result<u32, &'static str> {
        raw.get(at..at + 4)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or("invalid \\u escape")
    };
    while i < raw.len() {
        let c = raw[i];
        if c != b'\\' {
            out.push(c);
            i += 1;
            continue;
        }
        let e = raw.get(i + 1).copied().ok_or("invalid escape")?;
        i += 2;
        let ch = match e {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = hex4(i)?;
                i += 4;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if raw.get(i..i + 2) != Some(b"\\u") {
                        return Err("lone leading surrogate in \\u escape");
                    }
                    let lo = hex4(i + 2)?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return Err("invalid surrogate pair in \\u escape");
                    }
                    i += 6;
                    0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return Err("lone trailing surrogate in \\u escape");
                } else {
                    hi
                };
                char::from_u32(code).ok_or("invalid \\u escape")?
            }
            _ => return Err("invalid escape"),
        };
        let mut buf = [0u8; 4];
        out.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
    }
    String::from_utf8(out).map_err(|_| "invalid UTF-8")
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
        // Every byte value at every offset of a 0..=40 byte run (two
        // 16-byte blocks and a word-and-bytes tail), behind plain ASCII and
        // behind bytes just outside the special ranges.
        for len in 0..41 {
            for at in 0..len {
                for c in 0..=255u8 {
                    for fill in [b'a', b' ', 0x7f, 0x80, 0xff, b'!', b'#', b'[', b']'] {
                        let mut v = vec![fill; len];
                        v[at] = c;
                        assert_eq!(plain_run(&v), naive(&v), "{v:?}");
                        assert_eq!(narrow_run(&v), naive(&v), "{v:?}");
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

    #[test]
    fn unescapes_every_form() {
        assert_eq!(unescape(br#"a\"b\\c\/\n\u00e9\ud83d\ude00"#).unwrap(), "a\"b\\c/\né😀");
        assert!(unescape(br"\ud83d").is_err());
        assert!(unescape(br"\ude00").is_err());
    }

    #[test]
    fn strings_are_written_as_serde_json_writes_them() {
        for s in [
            "",
            "plain.topic-1",
            "q\"uote",
            "back\\slash",
            "tab\t",
            "nl\n",
            "\u{1}",
            "\u{7f}",
            "ünï €",
            "\u{1F600}",
        ] {
            let mut out = Vec::new();
            write_string(&mut out, s);
            assert_eq!(out, serde_json::to_vec(s).unwrap(), "{s:?}");
        }
    }
}
