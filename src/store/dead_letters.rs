//! Dead letters: what could not be processed, kept with the original
//! payload so that an operator can see it and send it back.

use std::sync::Arc;

use cxrelay_actors::Event;
use serde::{Deserialize, Serialize};

/// Longest raw text kept for input that was not a valid event.
pub const MAX_RAW_BYTES: usize = 64 * 1024;

/// One dead letter as stored and listed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeadLetter {
    /// Its id in the dead-letter table.
    pub id: u64,
    /// When it was dead-lettered (ms since the epoch).
    pub at_ms: i64,
    /// The component that gave up on it.
    pub component: String,
    /// The listener it was meant for, if any (replay goes back to it).
    pub listener: Option<String>,
    /// Why.
    pub error: String,
    /// How many attempts were made.
    pub attempts: u32,
    /// Source name.
    pub source: String,
    /// Topic (empty when the input was not an event).
    pub topic: String,
    /// Event id, if it was an event.
    pub event_id: String,
    /// Partition key.
    pub key: Option<String>,
    /// Event time (ms since the epoch).
    pub event_time: Option<i64>,
    /// Where in the input it was (byte offset, record number, ...).
    pub position: Option<String>,
    /// The original payload (the raw text for input that was not valid).
    pub payload: String,
    /// Whether `payload` was cut at [`MAX_RAW_BYTES`].
    pub truncated: bool,
}

impl DeadLetter {
    /// A dead letter for an event a listener gave up on.
    pub fn for_event(ev: &Arc<Event>, component: &str, listener: Option<&str>, error: &str, attempts: u32) -> Self {
        DeadLetter {
            id: 0,
            at_ms: cxrelay_actors::event::now_ms(),
            component: component.to_string(),
            listener: listener.map(str::to_string),
            error: error.to_string(),
            attempts,
            source: ev.source.to_string(),
            topic: ev.topic.to_string(),
            event_id: ev.id.to_string(),
            key: ev.key.as_deref().map(str::to_string),
            event_time: ev.event_time,
            position: None,
            payload: String::from_utf8_lossy(&ev.payload).into_owned(),
            truncated: false,
        }
    }

    /// A dead letter for raw input that could not become an event.
    pub fn for_raw(source: &str, component: &str, error: &str, raw: &[u8], position: Option<String>) -> Self {
        let truncated = raw.len() > MAX_RAW_BYTES;
        let kept = &raw[..raw.len().min(MAX_RAW_BYTES)];
        DeadLetter {
            id: 0,
            at_ms: cxrelay_actors::event::now_ms(),
            component: component.to_string(),
            listener: None,
            error: error.to_string(),
            attempts: 1,
            source: source.to_string(),
            topic: String::new(),
            event_id: String::new(),
            key: None,
            event_time: None,
            position,
            payload: String::from_utf8_lossy(kept).into_owned(),
            truncated,
        }
    }

    /// The event to send back, if this dead letter holds a whole event.
    pub fn to_event(&self) -> Option<Event> {
        if self.topic.is_empty()
            || self.truncated
            || serde_json::from_str::<serde::de::IgnoredAny>(&self.payload).is_err()
        {
            return None;
        }
        Some(
            Event::builder(self.source.as_str(), self.topic.as_str())
                .id(self.event_id.clone())
                .key_opt(self.key.clone())
                .event_time(self.event_time)
                .payload(self.payload.clone().into_bytes())
                .build(),
        )
    }
}
