//! Notification envelopes, as they arrive over a WebSocket or pushed to a
//! webhook: `{"topicName","version","eventBody":{…},"metadata":{…}}`, and
//! what cxrelay derives from them (partition key, event time).
//!
//! Only the envelope is parsed; the body stays raw unless a field is
//! needed, because most events are routed without looking inside.

use serde::Deserialize;
use serde_json::value::RawValue;

/// The envelope fields cxrelay reads.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// The topic the event was published on.
    #[serde(rename = "topicName")]
    pub topic_name: Option<&'a str>,
    /// The event itself, unparsed.
    #[serde(rename = "eventBody", borrow)]
    pub event_body: Option<&'a RawValue>,
    /// Metadata (carries the correlation id).
    #[serde(default)]
    pub metadata: Option<Metadata<'a>>,
    /// Send time of a pushed notification (ISO-8601), when present.
    pub timestamp: Option<&'a str>,
}

/// Envelope metadata.
#[derive(Debug, Deserialize, Default)]
pub struct Metadata<'a> {
    /// Unique per published event.
    #[serde(rename = "CorrelationId", borrow)]
    pub correlation_id: Option<std::borrow::Cow<'a, str>>,
}

/// The few body fields used for keys and times (all others are skipped).
#[derive(Debug, Deserialize, Default)]
struct BodyFields<'a> {
    #[serde(rename = "conversationId", borrow)]
    conversation_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    id: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "eventTime")]
    event_time: Option<serde_json::Value>,
    #[serde(rename = "endTime", borrow)]
    end_time: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "connectedTime", borrow)]
    connected_time: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "startTime", borrow)]
    start_time: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    timestamp: Option<std::borrow::Cow<'a, str>>,
}

/// Partition key and event time of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Derived {
    /// The conversation, user or queue the event is about.
    pub key: Option<String>,
    /// When it happened (ms since the epoch).
    pub event_time: Option<i64>,
}

/// The id a topic names: `v2.detail.events.conversation.{id}.…`,
/// `v2.conversations.{id}.…`, `v2.users.{id}.…`, `v2.routing.queues.{id}.…`.
pub fn topic_id(topic: &str) -> Option<&str> {
    let mut parts = topic.split('.');
    let first = parts.next()?;
    if first != "v2" {
        return None;
    }
    let kind = parts.next()?;
    match kind {
        "detail" => {
            // v2.detail.events.conversation.{id}
            let _events = parts.next()?;
            let _conversation = parts.next()?;
            parts.next()
        }
        "routing" | "analytics" => {
            // v2.routing.queues.{id} / v2.analytics.queues.{id}
            let _queues = parts.next()?;
            parts.next()
        }
        _ => parts.next(),
    }
    .filter(|s| !s.is_empty() && *s != "*")
}

/// Parses an ISO-8601 time into ms since the epoch.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Derives the partition key and event time from a topic and body.
///
/// The key is the conversation id when the event is about a conversation
/// (so that per-conversation order can be kept), else the id in the topic.
/// The time is `eventTime` (epoch ms, or ISO), else the ISO time fields of
/// queue conversation events.
pub fn derive(topic: &str, body: Option<&RawValue>) -> Derived {
    let fields: BodyFields<'_> = body
        .and_then(|b| serde_json::from_str(b.get()).ok())
        .unwrap_or_default();
    let topic_is_conversation =
        topic.starts_with("v2.detail.events.conversation.") || topic.starts_with("v2.conversations.");
    let from_topic = topic_id(topic);
    let key = fields
        .conversation_id
        .as_deref()
        .or(if topic_is_conversation { from_topic } else { None })
        .or(if topic.contains(".conversations") {
            fields.id.as_deref()
        } else {
            None
        })
        .or(from_topic)
        .map(str::to_string);
    let event_time = match &fields.event_time {
        Some(serde_json::Value::Number(n)) => n.as_i64(),
        Some(serde_json::Value::String(s)) => parse_iso_ms(s),
        _ => None,
    }
    .or_else(|| {
        [
            &fields.end_time,
            &fields.connected_time,
            &fields.start_time,
            &fields.timestamp,
        ]
        .into_iter()
        .flatten()
        .find_map(|s| parse_iso_ms(s))
    });
    Derived { key, event_time }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_string()).unwrap()
    }

    #[test]
    fn ids_from_topics() {
        assert_eq!(topic_id("v2.detail.events.conversation.c1.customer.start"), Some("c1"));
        assert_eq!(topic_id("v2.routing.queues.q1.conversations"), Some("q1"));
        assert_eq!(topic_id("v2.users.u1.presence"), Some("u1"));
        assert_eq!(topic_id("v2.conversations.c2.messages"), Some("c2"));
        assert_eq!(topic_id("channel.metadata"), None);
    }

    #[test]
    fn detail_events_key_on_the_conversation_with_epoch_times() {
        let d = derive(
            "v2.detail.events.conversation.c1.acd.start",
            Some(&raw(
                r#"{"eventTime":1714572123000,"conversationId":"c1","queueId":"q"}"#,
            )),
        );
        assert_eq!(
            d,
            Derived {
                key: Some("c1".into()),
                event_time: Some(1714572123000)
            }
        );
    }

    #[test]
    fn queue_conversation_events_key_on_the_conversation_with_iso_times() {
        let d = derive(
            "v2.routing.queues.q1.conversations",
            Some(&raw(
                r#"{"id":"conv-9","participants":[],"endTime":"2024-05-01T14:02:03.120Z"}"#,
            )),
        );
        assert_eq!(d.key.as_deref(), Some("conv-9"));
        assert_eq!(d.event_time, Some(1714572123120));
    }

    #[test]
    fn user_events_key_on_the_user() {
        let d = derive(
            "v2.users.u7.presence",
            Some(&raw(r#"{"presenceDefinition":{"id":"x"}}"#)),
        );
        assert_eq!(
            d,
            Derived {
                key: Some("u7".into()),
                event_time: None
            }
        );
        assert_eq!(derive("v2.users.u7.presence", None).key.as_deref(), Some("u7"));
    }
}
