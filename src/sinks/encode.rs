use cxrelay_actors::Event;

use crate::json::strings::write_string;

/// Encoded lines are handed to the kernel in pieces of about this size
/// rather than a batch at once: a piece written and reused stays in the
/// CPU's cache, where a batch's megabytes would be written to memory and
/// read back for the copy (measured: see `benches/HISTORY.md`).
pub const WRITE_PIECE: usize = 64 << 10;

/// Encodes `events` with `encode` into `buf` and hands the bytes to
/// `write` a piece of about [`WRITE_PIECE`] at a time (the last one
/// shorter, perhaps empty).
pub fn write_in_pieces<'e, E>(
    events: impl IntoIterator<Item = &'e Event>,
    buf: &mut Vec<u8>,
    encode: impl Fn(&Event, &mut Vec<u8>),
    mut write: impl FnMut(&[u8]) -> Result<(), E>,
) -> Result<(), E> {
    buf.clear();
    for ev in events {
        encode(ev, buf);
        if buf.len() >= WRITE_PIECE {
            write(buf)?;
            buf.clear();
        }
    }
    write(buf)
}

/// Appends `ev` to `out` as one NDJSON line. The payload is written as is:
/// it is known-valid JSON (checked at ingest), and re-serialising it would
/// cost a parse per event per sink.
pub fn encode_ndjson(ev: &Event, out: &mut Vec<u8>) {
    out.extend_from_slice(b"{\"id\":");
    write_string(out, &ev.id);
    out.extend_from_slice(b",\"seq\":");
    write_int(out, ev.seq);
    out.extend_from_slice(b",\"source\":");
    write_string(out, &ev.source);
    out.extend_from_slice(b",\"topic\":");
    write_string(out, &ev.topic);
    out.extend_from_slice(b",\"key\":");
    match &ev.key {
        Some(k) => write_string(out, k),
        None => out.extend_from_slice(b"null"),
    }
    match ev.event_time {
        Some(t) => {
            out.extend_from_slice(b",\"event_time\":");
            write_int(out, t);
        }
        None => out.extend_from_slice(b",\"event_time\":null"),
    }
    out.extend_from_slice(b",\"received_at\":");
    write_int(out, ev.received_at);
    out.extend_from_slice(b",\"payload\":");
    write_payload(out, &ev.payload);
    out.extend_from_slice(b"}\n");
}

/// Appends `ev`'s payload alone (the record, transformed if the listener
/// transforms) as one NDJSON line.
pub fn encode_payload_line(ev: &Event, out: &mut Vec<u8>) {
    write_payload(out, &ev.payload);
    out.push(b'\n');
}

/// Writes a JSON payload on one line: `null` when empty, and raw CR/LF
/// bytes turned into spaces. In valid JSON those bytes can only be
/// whitespace between tokens (strings cannot hold them raw, and UTF-8 never
/// uses them inside a character), so the value is unchanged while a
/// pretty-printed record no longer splits its line.
fn write_payload(out: &mut Vec<u8>, payload: &[u8]) {
    let payload = trim_ascii(payload);
    if payload.is_empty() {
        out.extend_from_slice(b"null");
        return;
    }
    let start = out.len();
    out.extend_from_slice(payload);
    if memchr::memchr2(b'\n', b'\r', payload).is_some() {
        for b in &mut out[start..] {
            if *b == b'\n' || *b == b'\r' {
                *b = b' ';
            }
        }
    }
}

fn write_int(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

fn trim_ascii(b: &[u8]) -> &[u8] {
    let start = b.iter().position(|c| !c.is_ascii_whitespace()).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_valid_json_line_per_event() {
        let ev = Event::builder("gen", "a.b")
            .id("x\"1")
            .seq(3)
            .key("k\n")
            .event_time(Some(5))
            .received_at(6)
            .payload(&b" {\"a\":[1,2]}\n"[..])
            .build();
        let mut out = Vec::new();
        encode_ndjson(&ev, &mut out);
        assert_eq!(out.iter().filter(|&&c| c == b'\n').count(), 1);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["id"], "x\"1");
        assert_eq!(v["key"], "k\n");
        assert_eq!(v["payload"]["a"][1], 2);
        assert_eq!((v["seq"].as_u64(), v["event_time"].as_i64()), (Some(3), Some(5)));
    }

    #[test]
    fn a_pretty_printed_payload_stays_on_one_line_with_its_value() {
        let pretty = "{\r\n  \"a\": \"x\\ny\",\n  \"b\": [1,\n 2]\n}\n";
        let ev = Event::builder("s", "t").payload(pretty.as_bytes().to_vec()).build();
        let want: serde_json::Value = serde_json::from_str(pretty).unwrap();
        for encode in [encode_ndjson, encode_payload_line] {
            let mut out = Vec::new();
            encode(&ev, &mut out);
            assert_eq!(out.iter().filter(|&&c| c == b'\n').count(), 1);
            assert_eq!(out.last(), Some(&b'\n'));
            let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
            let record = if v.get("payload").is_some() { &v["payload"] } else { &v };
            assert_eq!(record, &want);
        }
        let mut out = Vec::new();
        encode_payload_line(&Event::builder("s", "t").payload(&b" "[..]).build(), &mut out);
        assert_eq!(out, b"null\n");
    }

    #[test]
    fn integers_are_written_in_full() {
        let mut out = Vec::new();
        write_int(&mut out, i64::MIN);
        write_int(&mut out, u64::MAX);
        assert_eq!(out, format!("{}{}", i64::MIN, u64::MAX).as_bytes());
    }
}
