//! The record parser: runs on a thread of its own, reading the download as
//! one continuous stream, and hands bounded batches of records back.
//! Memory stays constant whatever the file size: NDJSON is read line by
//! line; a JSON array is split element by element as it streams
//! ([`super::json_array`]; the array itself is never held); ZIP entries
//! and gzip are decoded as streams by the `zip` and `flate2` crates, which
//! also check their CRCs. Each record is then parsed on its own by a serde
//! visitor that picks out the key and time fields and skips the rest.
//!
//! A record that is not a JSON object (or not JSON at all) is
//! dead-lettered with its position and the rest continue. Broken framing
//! of an array (unbalanced brackets or quotes) stops the parse with the
//! offset where it broke.

use std::fmt;
use std::io::{BufRead, BufReader, Read};
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use tokio::sync::mpsc;

use super::chunk_reader::ChunkReader;
use super::format::{sniff, Detected};
use super::json_array::{ArrayFramer, Element};
use crate::genesys::interval::parse_iso_ms;
use crate::store::DeadLetter;

/// Read buffer of the parser.
const READ_BUFFER: usize = 64 * 1024;
/// Largest batch in bytes of records, whatever `batch_records` says.
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Largest record: past this the framing is surely broken.
const MAX_RECORD_BYTES: usize = 16 << 20;

/// How to parse.
#[derive(Debug, Clone)]
pub struct ParserSettings {
    /// Source name (dead letters).
    pub source: Arc<str>,
    /// Field whose value keys the event.
    pub key_field: String,
    /// Field whose value is the event time (ISO-8601 or epoch ms).
    pub time_field: String,
    /// Records per batch.
    pub batch_records: usize,
    /// Number of the first record the stream starts at.
    pub start_index: u64,
    /// Byte offset in the file the stream starts at.
    pub start_offset: u64,
    /// Records before this number are read but not handed over (already
    /// committed before a restart).
    pub skip_before: u64,
    /// The format, when known in advance.
    pub forced: Option<Detected>,
    /// The stream starts right after a record of a plain file (a restart
    /// resumed by `Range`), not at the file's start.
    pub mid_file: bool,
    /// Whether ZIP and gzip are accepted (false when the format is
    /// configured as plain JSON or NDJSON).
    pub containers: bool,
}

/// One record, ready to become an event.
#[derive(Debug, Clone)]
pub struct ExportRecord {
    /// Its number in the file (malformed records count too).
    pub index: u64,
    /// The key field's value.
    pub key: Option<String>,
    /// The time field's value (ms since the epoch).
    pub time: Option<i64>,
    /// The record as it was in the file.
    pub payload: Bytes,
}

/// A batch of parsed records.
#[derive(Debug, Default)]
pub struct ParsedBatch {
    /// Records, in file order.
    pub records: Vec<ExportRecord>,
    /// Records that could not become events.
    pub dead_letters: Vec<DeadLetter>,
    /// Number of the record after the batch.
    pub next_index: u64,
    /// Byte offset in the file after the batch, when the file is plain
    /// NDJSON or JSON (a restart resumes there by `Range`).
    pub resume_at: Option<u64>,
    /// What the file is.
    pub detected: Option<Detected>,
}

/// What the parser hands back.
#[derive(Debug)]
pub enum Parsed {
    /// Records.
    Batch(ParsedBatch),
    /// The stream ended cleanly after this many records in all.
    Finished {
        /// Records in the file.
        records: u64,
        /// What the file was.
        detected: Option<Detected>,
    },
    /// Parsing cannot go on.
    Failed(String),
}

/// Starts a parser thread reading `chunks` and sending to `out`. It ends
/// when the stream does, or when `out` is dropped.
pub fn spawn(
    settings: ParserSettings,
    chunks: mpsc::Receiver<Bytes>,
    out: mpsc::Sender<Parsed>,
) -> std::io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("export-parser-{}", settings.source))
        .spawn(move || {
            let reader = BufReader::with_capacity(READ_BUFFER, ChunkReader::new(chunks));
            let mut em = Emitter::new(settings, out);
            let outcome = em.parse_top(reader);
            let msg = match outcome {
                Ok(()) => match em.flush() {
                    Ok(()) => Parsed::Finished {
                        records: em.index,
                        detected: em.detected,
                    },
                    Err(Gone) => return,
                },
                Err(ParseError::Gone) => return,
                // What was parsed before the break is still delivered.
                Err(ParseError::Fatal(m)) => match em.flush() {
                    Ok(()) => Parsed::Failed(m),
                    Err(Gone) => return,
                },
            };
            let _ = em.out.blocking_send(msg);
        })
}

/// The receiver went away (the source stopped).
struct Gone;

enum ParseError {
    Gone,
    Fatal(String),
}

impl From<Gone> for ParseError {
    fn from(_: Gone) -> Self {
        ParseError::Gone
    }
}

impl From<std::io::Error> for ParseError {
    fn from(e: std::io::Error) -> Self {
        ParseError::Fatal(e.to_string())
    }
}

struct Emitter {
    s: ParserSettings,
    out: mpsc::Sender<Parsed>,
    batch: ParsedBatch,
    batch_bytes: usize,
    index: u64,
    /// Byte offset in the file, while it is meaningful (plain NDJSON).
    offset: Option<u64>,
    detected: Option<Detected>,
    where_: String,
}

impl Emitter {
    fn new(s: ParserSettings, out: mpsc::Sender<Parsed>) -> Self {
        Emitter {
            index: s.start_index,
            offset: Some(s.start_offset),
            s,
            out,
            batch: ParsedBatch::default(),
            batch_bytes: 0,
            detected: None,
            where_: String::new(),
        }
    }

    fn parse_top<R: BufRead>(&mut self, mut r: R) -> Result<(), ParseError> {
        let (detected, skipped) = match self.s.forced {
            Some(d) => (Some(d), 0),
            None => sniff(&mut r, self.s.containers).map_err(|e| ParseError::Fatal(e.to_string()))?,
        };
        self.detected = detected;
        self.offset = self.offset.map(|o| o + skipped);
        match detected {
            None => Ok(()),
            Some(Detected::Ndjson) => self.ndjson(r),
            Some(Detected::JsonArray) => {
                let start = self.offset.unwrap_or(0);
                let framer = if self.s.mid_file {
                    ArrayFramer::after_element(start, MAX_RECORD_BYTES)
                } else {
                    ArrayFramer::new(start, MAX_RECORD_BYTES)
                };
                self.json_array(r, framer)
            }
            Some(Detected::Gzip) => {
                self.offset = None;
                let mut inner = BufReader::with_capacity(READ_BUFFER, flate2::read::MultiGzDecoder::new(r));
                self.records_in(&mut inner, "gzip")?;
                drain(&mut inner)
            }
            Some(Detected::Zip) => {
                self.offset = None;
                self.zip(r)
            }
        }
    }

    /// Records inside a container (NDJSON or a JSON array).
    fn records_in<R: BufRead>(&mut self, r: &mut R, what: &str) -> Result<(), ParseError> {
        match sniff(r, false) {
            Ok((None, _)) => Ok(()),
            Ok((Some(Detected::JsonArray), _)) => self.json_array(r, ArrayFramer::new(0, MAX_RECORD_BYTES)),
            Ok((Some(_), _)) => self.ndjson(r),
            Err(e) => Err(ParseError::Fatal(format!("{what} content: {e}"))),
        }
    }

    fn zip<R: BufRead>(&mut self, mut r: R) -> Result<(), ParseError> {
        loop {
            let entry = zip::read::read_zipfile_from_stream(&mut r)
                .map_err(|e| ParseError::Fatal(format!("ZIP archive: {e}")))?;
            let Some(mut entry) = entry else { break };
            let name = String::from_utf8_lossy(entry.name_raw()).into_owned();
            if entry.is_dir() {
                continue;
            }
            self.where_ = format!("entry {name}, ");
            let mut inner = BufReader::with_capacity(READ_BUFFER, &mut entry);
            self.records_in(&mut inner, &format!("ZIP entry {name}"))?;
            // Reading the entry to its end makes the zip crate check its CRC.
            drain(&mut inner).map_err(|e| match e {
                ParseError::Fatal(m) => ParseError::Fatal(format!("ZIP entry {name}: {m}")),
                other => other,
            })?;
        }
        self.where_.clear();
        // The central directory: read, not needed.
        drain(&mut r)
    }

    fn ndjson<R: BufRead>(&mut self, mut r: R) -> Result<(), ParseError> {
        let mut line = Vec::with_capacity(4096);
        loop {
            line.clear();
            let (n, oversized) = read_line_bounded(&mut r, &mut line, MAX_RECORD_BYTES)?;
            if n == 0 {
                return Ok(());
            }
            let start = self.offset;
            self.offset = self.offset.map(|o| o + n as u64);
            let text = trim(&line);
            if text.is_empty() {
                continue;
            }
            let span = start.map(|s| (s, s + n as u64));
            if self.index >= self.s.skip_before {
                if oversized {
                    self.dead_letter(
                        format!("record longer than {MAX_RECORD_BYTES} bytes ({n} bytes): skipped to the next line"),
                        text,
                        span,
                    );
                } else {
                    self.record(text, span);
                }
            }
            self.index += 1;
            self.batch.resume_at = self.offset;
            self.maybe_flush()?;
        }
    }

    fn json_array<R: BufRead>(&mut self, mut r: R, mut framer: ArrayFramer) -> Result<(), ParseError> {
        let mut on = |el: Element<'_>| -> Result<(), Gone> {
            if self.index >= self.s.skip_before {
                let span = self.offset.is_some().then_some((el.start, el.end));
                self.record(el.bytes, span);
            }
            self.index += 1;
            if self.offset.is_some() {
                self.offset = Some(el.end);
                self.batch.resume_at = Some(el.end);
            }
            self.maybe_flush()
        };
        loop {
            let data = r.fill_buf()?;
            if data.is_empty() {
                break;
            }
            let n = data.len();
            framer.feed(data, &mut on).map_err(|e| match e {
                Ok(framing) => ParseError::Fatal(format!("invalid JSON array: {framing}")),
                Err(Gone) => ParseError::Gone,
            })?;
            r.consume(n);
        }
        framer
            .finish()
            .map_err(|e| ParseError::Fatal(format!("invalid JSON array: {e}")))
    }

    /// One record's text; `span` is its place in the file, when known.
    fn record(&mut self, text: &[u8], span: Option<(u64, u64)>) {
        let seed = HeadSeed {
            key_field: &self.s.key_field,
            time_field: &self.s.time_field,
        };
        let mut de = serde_json::Deserializer::from_slice(text);
        let head = seed.deserialize(&mut de).and_then(|h| de.end().map(|_| h));
        match head {
            Ok(h) => {
                self.batch_bytes += text.len();
                self.batch.records.push(ExportRecord {
                    index: self.index,
                    key: h.key,
                    time: h.time,
                    payload: Bytes::copy_from_slice(text),
                });
            }
            Err(e) => {
                let why = if e.is_syntax() || e.is_eof() {
                    format!("malformed JSON: {e}")
                } else {
                    e.to_string()
                };
                self.dead_letter(why, text, span);
            }
        }
    }

    /// Keeps a record that cannot become an event, with its position.
    fn dead_letter(&mut self, why: String, text: &[u8], span: Option<(u64, u64)>) {
        let position = match span {
            Some((a, b)) => format!("record {} (bytes {a}-{b})", self.index),
            None => format!("{}record {}", self.where_, self.index),
        };
        self.batch.dead_letters.push(DeadLetter::for_raw(
            &self.s.source,
            &format!("export:{}", self.s.source),
            &why,
            text,
            Some(position),
        ));
    }

    fn maybe_flush(&mut self) -> Result<(), Gone> {
        let full = self.batch.records.len() + self.batch.dead_letters.len() >= self.s.batch_records
            || self.batch_bytes >= MAX_BATCH_BYTES;
        if full {
            self.flush()
        } else {
            Ok(())
        }
    }

    fn flush(&mut self) -> Result<(), Gone> {
        if self.batch.records.is_empty() && self.batch.dead_letters.is_empty() {
            return Ok(());
        }
        let mut batch = std::mem::take(&mut self.batch);
        batch.next_index = self.index;
        batch.detected = self.detected;
        if self.offset.is_none() {
            batch.resume_at = None;
        }
        self.batch_bytes = 0;
        self.out.blocking_send(Parsed::Batch(batch)).map_err(|_| Gone)
    }
}

/// Reads one line (newline included) into `line`, keeping at most `max`
/// bytes of it: a longer line is consumed to its end without being held.
/// Answers the bytes consumed and whether the line was longer than `max`.
fn read_line_bounded<R: BufRead>(r: &mut R, line: &mut Vec<u8>, max: usize) -> std::io::Result<(usize, bool)> {
    let (mut consumed, mut oversized) = (0, false);
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            return Ok((consumed, oversized));
        }
        let (take, done) = match memchr::memchr(b'\n', buf) {
            Some(i) => (i + 1, true),
            None => (buf.len(), false),
        };
        let room = max.saturating_sub(line.len());
        if take > room {
            oversized = true;
        }
        line.extend_from_slice(&buf[..take.min(room)]);
        r.consume(take);
        consumed += take;
        if done {
            return Ok((consumed, oversized));
        }
    }
}

fn drain<R: Read>(r: &mut R) -> Result<(), ParseError> {
    std::io::copy(r, &mut std::io::sink())?;
    Ok(())
}

fn trim(line: &[u8]) -> &[u8] {
    let end = line.iter().rposition(|b| !b.is_ascii_whitespace()).map_or(0, |i| i + 1);
    let start = line[..end].iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(end);
    &line[start..end]
}

/// The fields of a record that make its event, found without building the
/// record (every other value is skipped).
struct Head {
    key: Option<String>,
    time: Option<i64>,
}

struct HeadSeed<'a> {
    key_field: &'a str,
    time_field: &'a str,
}

enum Field {
    Key,
    Time,
    Other,
}

struct FieldSeed<'a>(&'a HeadSeed<'a>);

impl<'de> DeserializeSeed<'de> for FieldSeed<'_> {
    type Value = Field;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Field, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for FieldSeed<'_> {
    type Value = Field;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a field name")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Field, E> {
        Ok(if v == self.0.key_field {
            Field::Key
        } else if v == self.0.time_field {
            Field::Time
        } else {
            Field::Other
        })
    }
}

impl<'de> DeserializeSeed<'de> for HeadSeed<'_> {
    type Value = Head;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Head, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for HeadSeed<'_> {
    type Value = Head;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Head, A::Error> {
        let mut head = Head { key: None, time: None };
        while let Some(field) = map.next_key_seed(FieldSeed(&self))? {
            match field {
                Field::Key => {
                    head.key = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::String(s) => Some(s),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    }
                }
                Field::Time => {
                    head.time = match map.next_value::<serde_json::Value>()? {
                        serde_json::Value::String(s) => parse_iso_ms(&s).ok(),
                        serde_json::Value::Number(n) => n.as_i64(),
                        _ => None,
                    }
                }
                Field::Other => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(head)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Head, A::Error> {
        Err(de::Error::custom("record is a JSON array, not an object"))
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Head, E> {
        Err(de::Error::custom("record is a JSON string, not an object"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Head, E> {
        Err(de::Error::custom("record is a JSON number, not an object"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Head, E> {
        Err(de::Error::custom("record is a JSON number, not an object"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Head, E> {
        Err(de::Error::custom("record is a JSON number, not an object"))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Head, E> {
        Err(de::Error::custom("record is a JSON boolean, not an object"))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Head, E> {
        Err(de::Error::custom("record is JSON null, not an object"))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn settings() -> ParserSettings {
        ParserSettings {
            source: Arc::from("exp"),
            key_field: "conversationId".into(),
            time_field: "conversationStart".into(),
            batch_records: 3,
            start_index: 0,
            start_offset: 0,
            skip_before: 0,
            forced: None,
            mid_file: false,
            containers: true,
        }
    }

    /// Feeds `bytes` in small chunks and collects everything parsed.
    fn parse(s: ParserSettings, bytes: &[u8]) -> (Vec<ExportRecord>, Vec<DeadLetter>, Vec<ParsedBatch>, Parsed) {
        let (ctx, crx) = mpsc::channel(4);
        let (otx, mut orx) = mpsc::channel(2);
        let t = spawn(s, crx, otx).unwrap();
        // Small chunks find split-boundary bugs; big inputs go in 64 KiB ones.
        let size = if bytes.len() > 1 << 20 { 64 << 10 } else { 7 };
        let chunks: Vec<Bytes> = bytes.chunks(size).map(Bytes::copy_from_slice).collect();
        let feeder = std::thread::spawn(move || {
            for c in chunks {
                if ctx.blocking_send(c).is_err() {
                    return;
                }
            }
        });
        let mut records = Vec::new();
        let mut letters = Vec::new();
        let mut batches = Vec::new();
        let end = loop {
            match orx.blocking_recv().expect("parser answers") {
                Parsed::Batch(mut b) => {
                    records.append(&mut b.records);
                    letters.append(&mut b.dead_letters);
                    batches.push(b);
                }
                other => break other,
            }
        };
        feeder.join().unwrap();
        t.join().unwrap();
        (records, letters, batches, end)
    }

    #[test]
    fn an_ndjson_line_longer_than_the_record_limit_is_dead_lettered_and_never_held() {
        let mut file = b"{\"conversationId\":\"a\"}\n{\"conversationId\":\"big\",\"pad\":\"".to_vec();
        file.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 1000));
        file.extend_from_slice(b"\"}\n{\"conversationId\":\"c\"}\n");
        let mut r = std::io::BufReader::new(&file[..]);
        let mut line = Vec::new();
        assert!(!read_line_bounded(&mut r, &mut line, MAX_RECORD_BYTES).unwrap().1);
        line.clear();
        let (n, oversized) = read_line_bounded(&mut r, &mut line, MAX_RECORD_BYTES).unwrap();
        assert!(oversized && n > MAX_RECORD_BYTES);
        assert_eq!(line.len(), MAX_RECORD_BYTES, "the line is not held past the limit");
        let (records, letters, _, _) = parse(settings(), &file);
        let keys: Vec<String> = records.iter().filter_map(|r| r.key.clone()).collect();
        assert_eq!(keys, ["a", "c"], "the records after it are delivered");
        assert_eq!(letters.len(), 1);
        assert!(letters[0].error.contains("record longer than"), "{}", letters[0].error);
        let position = letters[0].position.clone().unwrap_or_default();
        assert!(position.starts_with("record 1 (bytes 23-"), "{position}");
    }

    const NDJSON: &[u8] = b"{\"conversationId\":\"a\",\"conversationStart\":\"2024-05-01T00:00:00Z\"}\n\n{\"conversationId\":\"b\",\"nested\":{\"conversationId\":\"no\"}}\r\n{oops\n[1]\n{\"conversationId\":7,\"conversationStart\":1714521600000}";

    #[test]
    fn ndjson_records_with_positions_and_dead_letters() {
        let (records, letters, batches, end) = parse(settings(), NDJSON);
        assert_eq!(
            records.iter().map(|r| r.key.clone().unwrap()).collect::<Vec<_>>(),
            ["a", "b", "7"]
        );
        assert_eq!(records[0].time, Some(1_714_521_600_000));
        assert_eq!(records[2].time, Some(1_714_521_600_000));
        assert_eq!(records[2].index, 4);
        assert_eq!(letters.len(), 2);
        assert!(letters[0].error.starts_with("malformed JSON"), "{}", letters[0].error);
        assert_eq!(letters[0].position.as_deref(), Some("record 2 (bytes 124-130)"));
        assert!(letters[1].error.contains("array, not an object"));
        assert_eq!(batches[0].resume_at, Some(130), "after three records: the next byte");
        assert!(matches!(
            end,
            Parsed::Finished {
                records: 5,
                detected: Some(Detected::Ndjson)
            }
        ));
    }

    #[test]
    fn a_json_array_is_walked_element_by_element_and_skips_on_restart() {
        let text =
            br#" [ {"conversationId":"a"}, "junk", {"conversationId":"b","x":[{"y":1}]}, {"conversationId":"c"} ] "#;
        let (records, letters, _, end) = parse(settings(), text);
        assert_eq!(records.len(), 3);
        assert_eq!(&records[1].payload[..], br#"{"conversationId":"b","x":[{"y":1}]}"#);
        assert_eq!(letters[0].position.as_deref(), Some("record 1 (bytes 27-33)"));
        assert!(matches!(end, Parsed::Finished { records: 4, .. }));
        // Resumed by Range right after record 1 (byte 33).
        let (records, _, _, _) = parse(
            ParserSettings {
                start_index: 2,
                start_offset: 33,
                mid_file: true,
                forced: Some(Detected::JsonArray),
                ..settings()
            },
            &text[33..],
        );
        assert_eq!(records.iter().map(|r| r.index).collect::<Vec<_>>(), [2, 3]);
        assert_eq!(&records[0].payload[..], br#"{"conversationId":"b","x":[{"y":1}]}"#);
        let (records, _, _, _) = parse(
            ParserSettings {
                skip_before: 2,
                ..settings()
            },
            text,
        );
        assert_eq!(records.iter().map(|r| r.index).collect::<Vec<_>>(), [2, 3]);
        let (records, letters, _, end) = parse(settings(), br#"[{"conversationId":"a"}, {"conversationId":,}, {"conv"#);
        assert_eq!(
            (records.len(), letters.len()),
            (1, 1),
            "a malformed element is one bad record"
        );
        assert!(letters[0].error.starts_with("malformed JSON"));
        match end {
            Parsed::Failed(m) => assert!(m.contains("ends early"), "{m}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn gzip_and_zip_containers_are_decoded_and_checked() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(NDJSON).unwrap();
        let gz = gz.finish().unwrap();
        let (records, letters, _, end) = parse(settings(), &gz);
        assert_eq!((records.len(), letters.len()), (3, 2));
        assert_eq!(letters[0].position.as_deref(), Some("record 2"));
        assert!(matches!(
            end,
            Parsed::Finished {
                detected: Some(Detected::Gzip),
                ..
            }
        ));

        let mut zipped = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut zipped);
            let opts = zip::write::SimpleFileOptions::default();
            w.start_file("a.json", opts).unwrap();
            w.write_all(br#"[{"conversationId":"x"},{"conversationId":"y"}]"#)
                .unwrap();
            w.start_file("b.ndjson", opts).unwrap();
            w.write_all(b"{\"conversationId\":\"z\"}\n").unwrap();
            w.finish().unwrap();
        }
        let bytes = zipped.into_inner();
        let (records, _, _, end) = parse(settings(), &bytes);
        assert_eq!(
            records.iter().map(|r| r.key.clone().unwrap()).collect::<Vec<_>>(),
            ["x", "y", "z"]
        );
        assert!(matches!(end, Parsed::Finished { records: 3, .. }));
        // A corrupted byte inside a stored entry fails its CRC.
        let mut stored = std::io::Cursor::new(Vec::new());
        {
            let mut w = zip::ZipWriter::new(&mut stored);
            let opts = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
            w.start_file("a.ndjson", opts).unwrap();
            w.write_all(b"{\"conversationId\":\"x\"}\n").unwrap();
            w.finish().unwrap();
        }
        let mut bytes = stored.into_inner();
        let at = bytes.windows(5).position(|w| w == b"\"x\"}\n").unwrap() + 1;
        bytes[at] = b'q';
        let (_, _, _, end) = parse(settings(), &bytes);
        match end {
            Parsed::Failed(m) => assert!(m.to_lowercase().contains("checksum") || m.contains("CRC"), "{m}"),
            other => panic!("{other:?}"),
        }
    }
}
