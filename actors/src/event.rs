//! The unit that flows through the runtime.

use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// One event: metadata for routing plus the raw JSON payload.
///
/// Events are shared between listeners as `Arc<Event>` and never copied per
/// listener. The payload stays raw bytes; [`Event::json`] parses it on first
/// use only, because most routes never look inside the body.
#[derive(Debug)]
pub struct Event {
    /// Identifier assigned by the source (unique within the source);
    /// shared, not copied, by the events a transform derives from it.
    pub id: Arc<str>,
    /// Durable position in the journal; 0 when the event was never journaled.
    /// This is the acknowledgement handle: a listener acknowledges an event
    /// by acknowledging its position (see [`crate::router::AckHandle`]).
    pub seq: u64,
    /// Name of the source that produced the event.
    pub source: Arc<str>,
    /// Dot-separated topic used for routing.
    pub topic: Arc<str>,
    /// Partition key (e.g. a conversation id): events with the same key keep
    /// their relative order through ordered stages.
    pub key: Option<Arc<str>>,
    /// When the event happened, in milliseconds since the Unix epoch.
    pub event_time: Option<i64>,
    /// When cxrelay received it, in milliseconds since the Unix epoch.
    pub received_at: i64,
    /// Raw JSON payload.
    pub payload: Bytes,
    parsed: OnceLock<Result<serde_json::Value, String>>,
}

impl Event {
    /// Starts building an event for `source` on `topic`.
    pub fn builder(source: impl Into<Arc<str>>, topic: impl Into<Arc<str>>) -> EventBuilder {
        EventBuilder {
            id: None,
            seq: 0,
            source: source.into(),
            topic: topic.into(),
            key: None,
            event_time: None,
            received_at: None,
            payload: Bytes::from_static(b"null"),
        }
    }

    /// The payload parsed as JSON, parsed once on first call.
    pub fn json(&self) -> Result<&serde_json::Value, &str> {
        self.parsed
            .get_or_init(|| serde_json::from_slice(&self.payload).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(String::as_str)
    }

    /// A copy of this event with another payload (used by transforms); the
    /// metadata, including the journal position, is kept.
    pub fn with_payload(&self, payload: Bytes) -> Event {
        Event {
            id: self.id.clone(),
            seq: self.seq,
            source: self.source.clone(),
            topic: self.topic.clone(),
            key: self.key.clone(),
            event_time: self.event_time,
            received_at: self.received_at,
            payload,
            parsed: OnceLock::new(),
        }
    }

    /// A copy of this event carrying a journal position.
    pub fn with_seq(mut self, seq: u64) -> Event {
        self.seq = seq;
        self
    }

    /// Approximate heap + inline size, for memory accounting.
    pub fn approx_size(&self) -> usize {
        std::mem::size_of::<Event>() + self.id.len() + self.key.as_ref().map_or(0, |k| k.len()) + self.payload.len()
    }
}

/// Builder for [`Event`].
#[derive(Debug)]
pub struct EventBuilder {
    id: Option<Arc<str>>,
    seq: u64,
    source: Arc<str>,
    topic: Arc<str>,
    key: Option<Arc<str>>,
    event_time: Option<i64>,
    received_at: Option<i64>,
    payload: Bytes,
}

impl EventBuilder {
    /// Sets the source-assigned id.
    pub fn id(mut self, id: impl Into<Arc<str>>) -> Self {
        self.id = Some(id.into());
        self
    }
    /// Sets the journal position.
    pub fn seq(mut self, seq: u64) -> Self {
        self.seq = seq;
        self
    }
    /// Sets the partition key.
    pub fn key(mut self, key: impl Into<Arc<str>>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Sets the optional partition key.
    pub fn key_opt<K: Into<Arc<str>>>(mut self, key: Option<K>) -> Self {
        self.key = key.map(Into::into);
        self
    }
    /// Sets the event time (ms since the epoch).
    pub fn event_time(mut self, ms: Option<i64>) -> Self {
        self.event_time = ms;
        self
    }
    /// Sets the receive time (ms since the epoch); defaults to now.
    pub fn received_at(mut self, ms: i64) -> Self {
        self.received_at = Some(ms);
        self
    }
    /// Sets the raw JSON payload.
    pub fn payload(mut self, payload: impl Into<Bytes>) -> Self {
        self.payload = payload.into();
        self
    }
    /// Finishes the event.
    pub fn build(self) -> Event {
        Event {
            id: self.id.unwrap_or_else(no_id),
            seq: self.seq,
            source: self.source,
            topic: self.topic,
            key: self.key,
            event_time: self.event_time,
            received_at: self.received_at.unwrap_or_else(now_ms),
            payload: self.payload,
            parsed: OnceLock::new(),
        }
    }
}

/// The empty id of an event built without one (shared: building it must
/// not allocate).
fn no_id() -> Arc<str> {
    static EMPTY: LazyLock<Arc<str>> = LazyLock::new(|| Arc::from(""));
    EMPTY.clone()
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_payload_lazily_once() {
        let ev = Event::builder("s", "a.b").payload(&b"{\"x\":1}"[..]).build();
        assert_eq!(ev.json().unwrap()["x"], 1);
        // Second call returns the same cached view.
        let first = ev.json().unwrap() as *const _;
        assert_eq!(first, ev.json().unwrap() as *const _);
    }

    #[test]
    fn malformed_payload_is_an_error_not_a_panic() {
        let ev = Event::builder("s", "a").payload(&b"{nope"[..]).build();
        assert!(ev.json().is_err());
    }

    #[test]
    fn an_event_built_without_an_id_or_key_has_an_empty_id_and_no_key() {
        let ev = Event::builder("s", "a").build();
        assert_eq!((&*ev.id, ev.key.as_deref()), ("", None));
        // Ids and keys given as owned or borrowed text read back the same.
        let ev = Event::builder("s", "a")
            .id(String::from("i"))
            .key_opt(Some("k"))
            .build();
        assert_eq!((&*ev.id, ev.key.as_deref()), ("i", Some("k")));
    }

    #[test]
    fn with_payload_keeps_metadata() {
        let ev = Event::builder("s", "a")
            .id("1")
            .seq(7)
            .key("k")
            .payload(&b"1"[..])
            .build();
        let t = ev.with_payload(Bytes::from_static(b"2"));
        assert_eq!((t.seq, &*t.id, t.key.as_deref()), (7, "1", Some("k")));
        assert_eq!(&t.payload[..], b"2");
    }
}
