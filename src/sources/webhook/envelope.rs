//! Bodies pushed to a webhook: an EventBridge envelope, a bare notification
//! envelope, or a JSON array of either (genesys-api.md §7).

use std::borrow::Cow;
use std::sync::Arc;

use cxrelay_actors::Event;
use serde_json::value::RawValue;

use crate::genesys::notification::Frame;
use crate::json::Cursor;
use crate::wire::time::iso_ms_of;

/// Why a body was refused (the reason is the 400's machine-readable code).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    /// Not JSON.
    #[error("body is not valid JSON")]
    InvalidJson,
    /// JSON, but no recognisable envelope.
    #[error("body is not an EventBridge or notification envelope")]
    Unrecognized,
    /// An empty array.
    #[error("body holds no events")]
    Empty,
    /// JSON, but not an Open Messaging message (`body = "open_messaging"`).
    #[error("body is not an Open Messaging message")]
    NotOpenMessage,
}

impl EnvelopeError {
    /// The short code answered with the 400.
    pub fn reason(&self) -> &'static str {
        match self {
            EnvelopeError::InvalidJson => "invalid_json",
            EnvelopeError::Unrecognized => "unrecognized_envelope",
            EnvelopeError::Empty => "no_events",
            EnvelopeError::NotOpenMessage => "unrecognized_message",
        }
    }
}

/// Events from one body, with their idempotency keys.
#[derive(Debug)]
pub struct Pushed {
    /// Events, in body order.
    pub events: Vec<Event>,
    /// One idempotency key per event; none for an event that carries no
    /// stable identity (a guessed key could drop a different event).
    pub keys: Vec<Option<String>>,
}

/// The outer fields of an element: EventBridge, or a bare notification.
#[derive(Default)]
struct Outer<'a> {
    id: Option<Cow<'a, str>>,
    /// The EventBridge `detail`, as written, and the notification in it.
    detail: Option<(&'a str, Frame<'a>)>,
    time: Option<Cow<'a, str>>,
    /// Whether a (non-null) `topicName` is there: a bare notification.
    topic_name: bool,
}

/// Reads an element's outer fields, and the notification in its `detail`,
/// in one pass of the JSON cursor; `None` when the element is not JSON,
/// not an object, has a field twice or of the wrong type, or a `detail`
/// that is no notification.
fn outer(el: &str) -> Option<Outer<'_>> {
    let mut c = Cursor::new(el);
    let mut o = Outer::default();
    let mut seen = 0u8;
    if c.open(b'{', b'}').ok()? {
        loop {
            let k = c.key().ok()?;
            let bit = match &*c.text(k).ok()? {
                "id" => 1,
                "detail" => 2,
                "time" => 4,
                "topicName" => 8,
                _ => 0,
            };
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            match bit {
                1 => o.id = c.string_or_null().ok()?,
                2 => o.detail = detail(&mut c).ok()?,
                4 => o.time = c.string_or_null().ok()?,
                8 => o.topic_name = c.raw_value().ok()?.is_some(),
                _ => c.skip_value().ok()?,
            }
            if !c.next_or_close(b'}').ok()? {
                break;
            }
        }
        c.leave();
    }
    c.end().ok()?;
    Some(o)
}

/// A `detail` (null reads as absent) and the notification it holds.
fn detail<'a>(c: &mut Cursor<'a>) -> Result<Option<(&'a str, Frame<'a>)>, crate::json::JsonError> {
    if c.null()? {
        return Ok(None);
    }
    let from = c.pos;
    let frame = Frame::read(c)?;
    Ok(Some((c.text.get(from..c.pos).unwrap_or_default(), frame)))
}

/// The elements of a pushed body: one JSON value, or an array of them
/// (none is refused), each left unparsed.
pub(crate) fn elements(body: &[u8]) -> Result<Vec<&RawValue>, EnvelopeError> {
    let text = crate::wire::text::utf8(body).map_err(|_| EnvelopeError::InvalidJson)?;
    let elements: Vec<&RawValue> = if text.trim_start().starts_with('[') {
        serde_json::from_str(text).map_err(|_| EnvelopeError::InvalidJson)?
    } else {
        vec![serde_json::from_str(text).map_err(|_| EnvelopeError::InvalidJson)?]
    };
    if elements.is_empty() {
        return Err(EnvelopeError::Empty);
    }
    Ok(elements)
}

/// Parses a pushed body into events for source `source`.
///
/// An EventBridge element is read in one pass: its outer fields, the
/// notification in its `detail` and the few body fields its key and time
/// come from. An array is split first; a bare notification is read for
/// its outer fields, then as a notification.
pub fn parse_body(body: &[u8], source: &str) -> Result<Pushed, EnvelopeError> {
    parse_body_from(body, &Arc::from(source))
}

/// [`parse_body`] for a source whose name is shared already (the request
/// path: no copy of the name per request).
pub(crate) fn parse_body_from(body: &[u8], source: &Arc<str>) -> Result<Pushed, EnvelopeError> {
    let text = crate::wire::text::utf8(body).map_err(|_| EnvelopeError::InvalidJson)?;
    // A single element (the usual body) is read as it is; an array is
    // split first.
    if text.trim_start().starts_with('[') {
        let split = elements(body)?;
        let mut pushed = Pushed {
            events: Vec::with_capacity(split.len()),
            keys: Vec::with_capacity(split.len()),
        };
        for el in split {
            parse_element(el.get(), source, &mut pushed)?;
        }
        Ok(pushed)
    } else {
        let mut pushed = Pushed {
            events: Vec::with_capacity(1),
            keys: Vec::with_capacity(1),
        };
        parse_element(text, source, &mut pushed)?;
        Ok(pushed)
    }
}

/// Reads one element into an event and its key.
fn parse_element(el: &str, source: &Arc<str>, pushed: &mut Pushed) -> Result<(), EnvelopeError> {
    let outer = outer(el).ok_or_else(|| refusal(el))?;
    // EventBridge wraps the notification in `detail`; a bare notification
    // is the element itself.
    let (notification_raw, mut n, bridge_id, bridge_time) = match (outer.detail, outer.topic_name) {
        (Some((detail, frame)), _) => (
            detail,
            frame,
            outer.id.as_deref().filter(|id| !id.is_empty()),
            outer.time.as_deref().and_then(iso_ms_of),
        ),
        (None, true) => (
            el,
            Frame::parse(el).map_err(|_| EnvelopeError::Unrecognized)?,
            None,
            None,
        ),
        (None, false) => return Err(EnvelopeError::Unrecognized),
    };
    let derived = n.take_derived();
    let topic = n
        .topic_name
        .as_deref()
        .filter(|t| !t.is_empty())
        .ok_or(EnvelopeError::Unrecognized)?;
    let event_time = derived
        .event_time
        .or_else(|| n.timestamp().and_then(iso_ms_of))
        .or(bridge_time);
    // Key precedence: EventBridge id, then the correlation id (an empty id
    // identifies nothing: as a key it would match every other event with
    // an empty id), then what identifies the event by content: its entity,
    // topic and time, all three known (without one, later events of the
    // entity would collide with it: no key, no deduplication).
    let key = match bridge_id.or_else(|| n.correlation_id().filter(|c| !c.is_empty())) {
        Some(k) => Some(k.to_string()),
        None => match (derived.key.as_deref(), event_time) {
            (Some(entity), Some(t)) => Some(format!("{entity}|{topic}|{t}")),
            _ => None,
        },
    };
    let id: Arc<str> = key.as_deref().map_or_else(|| generated_id(source).into(), Arc::from);
    pushed.events.push(
        Event::builder(source.clone(), topic)
            .id(id)
            .key_opt(derived.key)
            .event_time(event_time)
            .payload(notification_raw.as_bytes().to_vec())
            .build(),
    );
    pushed.keys.push(key);
    Ok(())
}

/// Why an element's outer fields could not be read: not JSON at all, or
/// JSON of another shape.
fn refusal(el: &str) -> EnvelopeError {
    match serde_json::from_str::<serde::de::IgnoredAny>(el) {
        Ok(_) => EnvelopeError::Unrecognized,
        Err(_) => EnvelopeError::InvalidJson,
    }
}

/// An id for an event of `source` that carries none: unique within this
/// process run.
pub(super) fn generated_id(source: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{source}-{:x}-{}",
        cxrelay_actors::event::now_ms(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const BARE: &str = r#"{"topicName":"v2.detail.events.conversation.c1.customer.start","version":"2","eventBody":{"eventTime":1714572123000,"conversationId":"c1"},"metadata":{"CorrelationId":"corr-1"}}"#;

    fn bridge(id: &str) -> String {
        format!(
            r#"{{"version":"0","id":"{id}","detail-type":"v2.detail.events.conversation.{{id}}.customer.start","source":"aws.partner/genesys.com/cloud/org/x","time":"2024-05-01T14:02:03Z","detail":{BARE}}}"#
        )
    }

    #[test]
    fn a_bare_notification() {
        let p = parse_body(BARE.as_bytes(), "hook").unwrap();
        let e = &p.events[0];
        assert_eq!(
            (&*e.topic, e.key.as_deref(), e.event_time),
            (
                "v2.detail.events.conversation.c1.customer.start",
                Some("c1"),
                Some(1714572123000)
            )
        );
        assert_eq!(p.keys, vec![Some("corr-1".to_string())]);
        assert_eq!(e.json().unwrap()["eventBody"]["conversationId"], "c1");
    }

    #[test]
    fn an_eventbridge_envelope_keys_on_its_id_and_keeps_the_detail() {
        let p = parse_body(bridge("eb-1").as_bytes(), "hook").unwrap();
        assert_eq!(p.keys, vec![Some("eb-1".to_string())]);
        assert_eq!(&*p.events[0].id, "eb-1");
        assert_eq!(p.events[0].json().unwrap()["metadata"]["CorrelationId"], "corr-1");
    }

    #[test]
    fn arrays_of_either() {
        let body = format!("[{BARE},{}]", bridge("eb-2"));
        let p = parse_body(body.as_bytes(), "hook").unwrap();
        assert_eq!(p.keys, vec![Some("corr-1".to_string()), Some("eb-2".to_string())]);
    }

    #[test]
    fn an_event_without_id_or_time_has_no_key_rather_than_a_colliding_one() {
        // The conversation and topic alone would match every later event of
        // that conversation on that topic: those would be dropped for 24 h.
        let body = r#"{"topicName":"v2.detail.events.conversation.c9.acd.end","eventBody":{"conversationId":"c9"}}"#;
        let a = parse_body(body.as_bytes(), "hook").unwrap();
        let b = parse_body(body.as_bytes(), "hook").unwrap();
        assert_eq!(a.keys, vec![None]);
        assert_ne!(a.events[0].id, b.events[0].id, "each gets its own id");
    }

    #[test]
    fn without_ids_the_key_is_conversation_topic_and_time() {
        let body = r#"{"topicName":"v2.detail.events.conversation.c9.acd.end","eventBody":{"eventTime":5,"conversationId":"c9"}}"#;
        let p = parse_body(body.as_bytes(), "hook").unwrap();
        assert_eq!(
            p.keys,
            vec![Some("c9|v2.detail.events.conversation.c9.acd.end|5".to_string())]
        );
    }

    #[test]
    fn refusals_have_reasons() {
        assert_eq!(parse_body(b"{nope", "h").unwrap_err(), EnvelopeError::InvalidJson);
        assert_eq!(
            parse_body(b"{\"hello\":1}", "h").unwrap_err(),
            EnvelopeError::Unrecognized
        );
        assert_eq!(parse_body(b"[]", "h").unwrap_err(), EnvelopeError::Empty);
        assert_eq!(parse_body(b"[1]", "h").unwrap_err(), EnvelopeError::Unrecognized);
        assert_eq!(
            parse_body(b"{\"topicName\":\"\"}", "h").unwrap_err(),
            EnvelopeError::Unrecognized
        );
        assert_eq!(parse_body(&[0xff, 0xfe], "h").unwrap_err(), EnvelopeError::InvalidJson);
        // Outer fields of the wrong type, or twice, are no envelope; JSON
        // broken after them is still invalid JSON.
        let detail = BARE;
        for body in [
            format!(r#"{{"id":7,"detail":{detail}}}"#),
            format!(r#"{{"id":"a","id":"b","detail":{detail}}}"#),
            format!(r#"{{"time":{{}},"detail":{detail}}}"#),
            format!(r#"{{"detail":{detail},"detail":{detail}}}"#),
            r#"{"detail":"{}"}"#.to_string(),
            // The detail is read where it stands: no notification in it is
            // no envelope, whatever follows (it wins over `topicName`).
            r#"{"detail":{"topicName":7}}"#.to_string(),
            r#"{"detail":[1],"topicName":"t","eventBody":{}}"#.to_string(),
            r#"{"detail":{"topicName":"t","topicName":"u"},"id":"a"}"#.to_string(),
            r#"{"topicName":null}"#.to_string(),
            format!(r#"[["eb-1",{detail}]]"#),
        ] {
            assert_eq!(
                parse_body(body.as_bytes(), "h").unwrap_err(),
                EnvelopeError::Unrecognized,
                "{body}"
            );
        }
        for broken in [
            format!(r#"{{"id":"a","detail":{detail},"x":[1,]}}"#),
            r#"{"id":"a","detail":{"topicName":"t","eventBody":{"x":[1,]}}}"#.to_string(),
            r#"{"detail":{"topicName":"t"}"#.to_string(),
        ] {
            assert_eq!(
                parse_body(broken.as_bytes(), "h").unwrap_err(),
                EnvelopeError::InvalidJson,
                "{broken}"
            );
        }
        // A null `detail` is absent: the element is a bare notification.
        let p = parse_body(
            br#"{"detail":null,"topicName":"v2.users.u1.presence","eventBody":{}}"#,
            "h",
        )
        .unwrap();
        assert_eq!(&*p.events[0].topic, "v2.users.u1.presence");
        // `null` ids and times are absent; an escaped id is read unescaped.
        let p = parse_body(
            format!(r#"{{"id":null,"time":null,"detail":{detail}}}"#).as_bytes(),
            "h",
        )
        .unwrap();
        assert_eq!(p.keys, vec![Some("corr-1".to_string())]);
        let p = parse_body(
            format!(r#" {{ "id" : "eb\u002d1" , "detail" : {detail} }} "#).as_bytes(),
            "h",
        )
        .unwrap();
        assert_eq!(p.keys, vec![Some("eb-1".to_string())]);
        assert_eq!(p.events[0].payload.as_ref(), detail.as_bytes(), "the detail as written");
    }
}
