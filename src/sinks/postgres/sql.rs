//! The table the PostgreSQL sink writes and the one statement it writes
//! with.
//!
//! A batch is one `INSERT ... SELECT FROM unnest($1..$8) ON CONFLICT (id)
//! DO NOTHING`: a multi-row insert whose eight array parameters carry the
//! columns, so it is prepared once per connection and takes any batch size
//! (a `VALUES` list would need a statement per size and stops at 65535
//! parameters, about 8000 rows). COPY into a temporary table, then an
//! insert-select, would save the server some parsing of array literals,
//! but costs two more statements and a temporary table per connection for
//! batches of a few thousand rows, where the round trips dominate.

use std::sync::Arc;

use cxrelay_actors::Event;

/// Whether `table` is a plain identifier, optionally schema-qualified
/// (`events`, `audit.events`): letters, digits and `_`, not starting with
/// a digit, at most 63 bytes each (PostgreSQL's limit).
pub fn valid_table(table: &str) -> bool {
    let parts: Vec<&str> = table.split('.').collect();
    parts.len() <= 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 63
                && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                && !p.as_bytes()[0].is_ascii_digit()
        })
}

/// `table` quoted for SQL (each part, as written: `Events` stays capitalised).
/// Only called on a name [`valid_table`] accepted, so no quote can be in it.
pub fn quoted(table: &str) -> String {
    table
        .split('.')
        .map(|p| format!("\"{p}\""))
        .collect::<Vec<_>>()
        .join(".")
}

/// Creates the table when it does not exist.
pub fn create_table(table: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (
            id text PRIMARY KEY,
            seq bigint NOT NULL,
            source text NOT NULL,
            topic text NOT NULL,
            key text,
            event_time timestamptz,
            received_at timestamptz NOT NULL,
            payload jsonb
        )",
        quoted(table)
    )
}

/// Inserts a batch given as column arrays; a row whose id is there already
/// is skipped, so writing a batch again (a retry, a replay after a crash)
/// adds nothing. Times go in as milliseconds since the epoch and come out
/// exact (no float rounding).
pub fn insert(table: &str) -> String {
    format!(
        "INSERT INTO {} (id, seq, source, topic, key, event_time, received_at, payload)
         SELECT id, seq, source, topic, key,
                'epoch'::timestamptz + event_ms * interval '1 millisecond',
                'epoch'::timestamptz + received_ms * interval '1 millisecond',
                payload::jsonb
         FROM unnest($1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[], $8::text[])
              AS t(id, seq, source, topic, key, event_ms, received_ms, payload)
         ON CONFLICT (id) DO NOTHING",
        quoted(table)
    )
}

/// A batch as the statement's eight column arrays.
#[derive(Debug, Default)]
pub struct Columns {
    /// Event ids.
    pub id: Vec<String>,
    /// Journal positions.
    pub seq: Vec<i64>,
    /// Source names.
    pub source: Vec<String>,
    /// Topics.
    pub topic: Vec<String>,
    /// Partition keys.
    pub key: Vec<Option<String>>,
    /// Event times (ms since the epoch).
    pub event_ms: Vec<Option<i64>>,
    /// Receive times (ms since the epoch).
    pub received_ms: Vec<i64>,
    /// Payloads as JSON text (`None`: no payload).
    pub payload: Vec<Option<String>>,
}

impl Columns {
    /// The columns of `events`.
    pub fn of(events: &[Arc<Event>]) -> Columns {
        let n = events.len();
        let mut c = Columns {
            id: Vec::with_capacity(n),
            seq: Vec::with_capacity(n),
            source: Vec::with_capacity(n),
            topic: Vec::with_capacity(n),
            key: Vec::with_capacity(n),
            event_ms: Vec::with_capacity(n),
            received_ms: Vec::with_capacity(n),
            payload: Vec::with_capacity(n),
        };
        for ev in events {
            c.id.push(ev.id.to_string());
            // Journal positions stay far below 2^63; saturate rather than wrap.
            c.seq.push(i64::try_from(ev.seq).unwrap_or(i64::MAX));
            c.source.push(ev.source.to_string());
            c.topic.push(ev.topic.to_string());
            c.key.push(ev.key.as_deref().map(str::to_string));
            c.event_ms.push(ev.event_time);
            c.received_ms.push(ev.received_at);
            let text = String::from_utf8_lossy(&ev.payload);
            let text = text.trim();
            c.payload.push((!text.is_empty()).then(|| text.to_string()));
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_names_are_plain_identifiers_and_quoted_as_written() {
        for ok in ["events", "cxrelay_events", "audit.Events", "_x1"] {
            assert!(valid_table(ok), "{ok}");
        }
        for bad in [
            "",
            "1events",
            "a.b.c",
            "ev ents",
            "ev\"ents",
            "x;drop table y",
            "a.",
            &"x".repeat(64),
        ] {
            assert!(!valid_table(bad), "{bad}");
        }
        assert_eq!(quoted("audit.Events"), "\"audit\".\"Events\"");
        assert!(insert("e").contains("ON CONFLICT (id) DO NOTHING"));
    }

    #[test]
    fn columns_carry_every_field_and_an_empty_payload_is_null() {
        let evs = vec![
            Arc::new(
                Event::builder("gen", "a.b")
                    .id("x1")
                    .seq(7)
                    .key("k")
                    .event_time(Some(1_700_000_000_123))
                    .received_at(1_700_000_000_456)
                    .payload(&b" {\"a\":1}\n"[..])
                    .build(),
            ),
            Arc::new(Event::builder("gen", "a.c").id("x2").payload(&b"  "[..]).build()),
        ];
        let c = Columns::of(&evs);
        assert_eq!(c.id.len(), 2);
        assert_eq!((c.id[0].as_str(), c.seq[0], c.key[0].as_deref()), ("x1", 7, Some("k")));
        assert_eq!(
            (c.event_ms[0], c.received_ms[0]),
            (Some(1_700_000_000_123), 1_700_000_000_456)
        );
        assert_eq!(c.payload[0].as_deref(), Some("{\"a\":1}"));
        assert_eq!(
            (c.topic[1].as_str(), c.event_ms[1], c.payload[1].as_deref()),
            ("a.c", None, None)
        );
    }
}
