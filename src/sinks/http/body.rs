//! A batch as the HTTP sink sends it: NDJSON or one JSON array, gzipped or
//! not.

use std::io::Write;
use std::sync::Arc;

use cxrelay_actors::Event;
use serde::{Deserialize, Serialize};

use crate::sinks::encode_ndjson;

/// How a batch is laid out in the body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// One JSON object per line (`application/x-ndjson`).
    #[default]
    Ndjson,
    /// One JSON array of the objects (`application/json`).
    JsonArray,
}

impl BodyFormat {
    /// Its content type.
    pub fn content_type(self) -> &'static str {
        match self {
            BodyFormat::Ndjson => "application/x-ndjson",
            BodyFormat::JsonArray => "application/json",
        }
    }
}

/// How the body is compressed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// Sent as is.
    #[default]
    None,
    /// gzip, with `content-encoding: gzip`.
    Gzip,
}

/// The body for `events`.
pub fn encode(events: &[Arc<Event>], format: BodyFormat, compression: Compression) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::with_capacity(events.len() * 512 + 2);
    match format {
        BodyFormat::Ndjson => {
            for ev in events {
                encode_ndjson(ev, &mut body);
            }
        }
        BodyFormat::JsonArray => {
            body.push(b'[');
            for ev in events {
                encode_ndjson(ev, &mut body);
                // The line's newline becomes the separator; the last one
                // is replaced by the closing bracket below.
                if let Some(last) = body.last_mut() {
                    *last = b',';
                }
            }
            if body.last() == Some(&b',') {
                body.pop();
            }
            body.push(b']');
        }
    }
    match compression {
        Compression::None => Ok(body),
        Compression::Gzip => {
            let mut gz =
                flate2::write::GzEncoder::new(Vec::with_capacity(body.len() / 4), flate2::Compression::default());
            gz.write_all(&body)?;
            gz.finish()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn events(n: u64) -> Vec<Arc<Event>> {
        (0..n)
            .map(|i| {
                Arc::new(
                    Event::builder("gen", "a.b")
                        .id(format!("e{i}"))
                        .payload(&b"{\"x\":[1,2]}"[..])
                        .build(),
                )
            })
            .collect()
    }

    #[test]
    fn a_json_array_holds_every_event_and_an_empty_batch_is_an_empty_array() {
        let body = encode(&events(3), BodyFormat::JsonArray, Compression::None).unwrap();
        let v: Vec<serde_json::Value> = serde_json::from_slice(&body).unwrap();
        let ids: Vec<&str> = v.iter().filter_map(|e| e["id"].as_str()).collect();
        assert_eq!(ids, ["e0", "e1", "e2"]);
        assert_eq!(v[1]["payload"]["x"][1], 2);
        assert_eq!(encode(&[], BodyFormat::JsonArray, Compression::None).unwrap(), b"[]");
    }

    #[test]
    fn gzip_unpacks_to_the_plain_body() {
        // One set of events for both: each holds its receive time, and two
        // sets made a millisecond apart would differ.
        let events = events(50);
        let plain = encode(&events, BodyFormat::Ndjson, Compression::None).unwrap();
        let packed = encode(&events, BodyFormat::Ndjson, Compression::Gzip).unwrap();
        assert!(packed.len() < plain.len() / 2, "{} vs {}", packed.len(), plain.len());
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&packed[..]).read_to_end(&mut out).unwrap();
        assert_eq!(out, plain);
        assert_eq!(out.iter().filter(|&&c| c == b'\n').count(), 50);
    }
}
