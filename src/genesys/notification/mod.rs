//! Notification envelopes, as they arrive over a WebSocket or pushed to a
//! webhook: `{"topicName","version","eventBody":{…},"metadata":{…}}`, and
//! what cxrelay derives from them (partition key, event time).
//!
//! Only the envelope is parsed; the body stays raw unless a field is
//! needed, because most events are routed without looking inside.

use std::borrow::Cow;
use std::sync::Arc;

use serde_json::value::RawValue;

pub use super::topics::topic_id;
use super::topics::{topic_entity, Names, TimeField, TopicEntity};
use crate::json::JsonError;
use crate::wire::time::iso_ms_of;

mod scan;

/// Envelope metadata.
#[derive(Debug, Default)]
pub struct Metadata<'a> {
    /// Unique per published event.
    pub correlation_id: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod oracle;

/// The few body fields used for keys and times (all others are skipped).
#[derive(Debug, Default)]
pub(super) struct BodyFields<'a> {
    conversation_id: Option<Cow<'a, str>>,
    id: Option<Cow<'a, str>>,
    event_time: EventTime<'a>,
    end_time: Option<Cow<'a, str>>,
    connected_time: Option<Cow<'a, str>>,
    start_time: Option<Cow<'a, str>>,
    timestamp: Option<Cow<'a, str>>,
    /// When the entity became as the body shows it (presence).
    modified_date: Option<Cow<'a, str>>,
    /// `channel.metadata` frames: "WebSocket Heartbeat", "pong".
    message: Option<Cow<'a, str>>,
    /// `v2.system.*` messages: what happened to the channel.
    system_topic_type: Option<Cow<'a, str>>,
    /// Conversation events (`v2.routing.queues.{id}.conversations`, ...)
    /// carry their times on the participants: the latest of them.
    participants_time: Option<i64>,
}

/// `eventTime` as a body gives it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
enum EventTime<'a> {
    /// Absent or `null`.
    #[default]
    Absent,
    /// Epoch milliseconds.
    Ms(i64),
    /// Text (ISO-8601 if it is a time).
    Text(Cow<'a, str>),
    /// Any other value.
    Other,
}

/// The latest of the `connectedTime` / `endTime` values of participants.
#[derive(Debug, Default)]
struct LatestTime<'a> {
    latest: Option<i64>,
    // Times in Genesys's usual form (`…T14:02:03.120Z`) order as strings:
    // only the latest of those is parsed.
    latest_utc: Option<Cow<'a, str>>,
}

impl<'a> LatestTime<'a> {
    fn offer(&mut self, t: Option<Cow<'a, str>>) {
        let Some(t) = t else { return };
        if is_utc_millis(&t) {
            if self.latest_utc.as_deref().is_none_or(|l| *t > *l) {
                self.latest_utc = Some(t);
            }
        } else if let Some(ms) = iso_ms_of(&t) {
            self.latest = Some(self.latest.map_or(ms, |l| l.max(ms)));
        }
    }

    fn finish(self) -> Option<i64> {
        match self.latest_utc.as_deref().and_then(iso_ms_of) {
            Some(ms) => Some(self.latest.map_or(ms, |l| l.max(ms))),
            None => self.latest,
        }
    }
}

/// A notification frame: the envelope, read in one pass together with the
/// few body fields cxrelay derives its key and time from (the rest is
/// skipped, and the frame itself stays the payload).
#[derive(Debug)]
pub struct Frame<'a> {
    /// The topic the event was published on.
    pub topic_name: Option<std::borrow::Cow<'a, str>>,
    /// Metadata (carries the correlation id).
    pub metadata: Option<Metadata<'a>>,
    message: Option<std::borrow::Cow<'a, str>>,
    system_topic_type: Option<std::borrow::Cow<'a, str>>,
    timestamp: Option<std::borrow::Cow<'a, str>>,
    derived: Derived,
}

impl<'a> Frame<'a> {
    /// Parses a frame; an error means it is not a JSON object with the
    /// envelope fields of their types (see `scan`).
    pub fn parse(text: &'a str) -> Result<Frame<'a>, JsonError> {
        Frame::parse_with(text, topic_entity)
    }

    /// [`Frame::parse`], with the topic's entity taken from `entity` (a
    /// reader that knows its topics' shapes already).
    pub fn parse_with(
        text: &'a str,
        entity: impl for<'t> FnOnce(&'t str) -> TopicEntity<'t>,
    ) -> Result<Frame<'a>, JsonError> {
        Ok(Frame::from_scan(scan::frame(text)?, entity))
    }

    /// Reads the frame at `c`, a value inside larger JSON (a pushed event's
    /// `detail`), and leaves `c` after it: the value is read once, not
    /// passed over and then parsed.
    pub(crate) fn read(c: &mut crate::json::Cursor<'a>) -> Result<Frame<'a>, JsonError> {
        Ok(Frame::from_scan(scan::frame_in(c)?, topic_entity))
    }

    fn from_scan(f: scan::Scanned<'a>, entity: impl for<'t> FnOnce(&'t str) -> TopicEntity<'t>) -> Frame<'a> {
        let derived = derive_fields(entity(f.topic_name.as_deref().unwrap_or("")), &f.fields);
        Frame {
            topic_name: f.topic_name,
            metadata: f.metadata.map(|correlation_id| Metadata { correlation_id }),
            message: f.fields.message,
            system_topic_type: f.fields.system_topic_type,
            timestamp: f.timestamp,
            derived,
        }
    }

    /// `eventBody.message`, as in `channel.metadata` frames.
    pub fn message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// `eventBody.systemTopicType`, as in `v2.system.*` messages.
    pub fn system_topic_type(&self) -> Option<&str> {
        self.system_topic_type.as_deref()
    }

    /// `timestamp`: the send time of a pushed notification (ISO-8601).
    pub fn timestamp(&self) -> Option<&str> {
        self.timestamp.as_deref()
    }

    /// `metadata.CorrelationId`.
    pub fn correlation_id(&self) -> Option<&str> {
        self.metadata.as_ref().and_then(|m| m.correlation_id.as_deref())
    }

    /// Partition key and event time, as [`derive()`] gives them.
    pub fn derived(&self) -> Derived {
        self.derived.clone()
    }

    /// [`Frame::derived`], taken out without a copy (the frame keeps none).
    pub fn take_derived(&mut self) -> Derived {
        std::mem::take(&mut self.derived)
    }
}

/// Partition key and event time of a notification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Derived {
    /// The conversation, user or queue the event is about.
    pub key: Option<Arc<str>>,
    /// When it happened (ms since the epoch).
    pub event_time: Option<i64>,
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`: UTC with milliseconds, which orders as text.
fn is_utc_millis(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 24
        && b[23] == b'Z'
        && b[10] == b'T'
        && b[19] == b'.'
        && b.iter()
            .enumerate()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 23) || c.is_ascii_digit())
}

/// Derives the partition key and event time from a topic and body.
///
/// The key is the conversation id when the event is about a conversation
/// (so that per-conversation order can be kept), else the entity the topic
/// names in its family (see [`super::topics`]). The time is `eventTime`
/// (epoch ms, or ISO), else the ISO time fields of conversation events,
/// else `modifiedDate`; presence events take `modifiedDate` first.
pub fn derive(topic: &str, body: Option<&RawValue>) -> Derived {
    let fields = body.and_then(|b| scan::body(b.get())).unwrap_or_default();
    derive_fields(topic_entity(topic), &fields)
}

fn derive_fields(entity: TopicEntity<'_>, fields: &BodyFields<'_>) -> Derived {
    // An empty id identifies nothing; the next candidate is taken.
    fn given<'s>(v: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
        v.as_deref().filter(|s| !s.is_empty())
    }
    let from_body = match entity.names() {
        Names::Conversation => entity.id,
        Names::ConversationsOf => given(&fields.id),
        Names::Entity | Names::Nothing => None,
    };
    let key = given(&fields.conversation_id)
        .or(from_body)
        .or(entity.id)
        .map(Arc::from);
    let modified = || fields.modified_date.as_deref().and_then(iso_ms_of);
    let usual = || {
        match &fields.event_time {
            EventTime::Ms(n) => Some(*n),
            EventTime::Text(s) => iso_ms_of(s),
            EventTime::Absent | EventTime::Other => None,
        }
        .or_else(|| {
            [
                &fields.end_time,
                &fields.connected_time,
                &fields.start_time,
                &fields.timestamp,
            ]
            .into_iter()
            .filter_map(|l| l.as_deref())
            .find_map(iso_ms_of)
        })
        .or(fields.participants_time)
    };
    let event_time = match entity.time() {
        TimeField::ModifiedDate => modified().or_else(usual),
        TimeField::Usual => usual().or_else(modified),
    };
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

    #[test]
    fn presence_takes_its_time_from_modified_date() {
        // PresenceEventUserPresence: source, presenceDefinition, primary,
        // message, modifiedDate.
        let body = r#"{"source":"PURECLOUD","presenceDefinition":{"id":"p","systemPresence":"Available"},"primary":true,"message":"","modifiedDate":"2024-05-01T14:02:03.120Z"}"#;
        let d = derive("v2.users.u7.presence", Some(&raw(body)));
        assert_eq!(
            d,
            Derived {
                key: Some("u7".into()),
                event_time: Some(1714572123120)
            }
        );
        // The one-pass frame reader agrees.
        let frame = format!(r#"{{"topicName":"v2.users.u7.presence","eventBody":{body}}}"#);
        assert_eq!(Frame::parse(&frame).unwrap().derived(), d);
        // Elsewhere `modifiedDate` is the last resort, after the usual fields.
        let d = derive(
            "v2.users.u7.outofoffice",
            Some(&raw(
                r#"{"modifiedDate":"2024-05-01T14:02:03.120Z","startTime":"2024-05-01T00:00:00Z"}"#,
            )),
        );
        assert_eq!(d.event_time, Some(1714521600000));
        let d = derive(
            "v2.users.u7.outofoffice",
            Some(&raw(r#"{"modifiedDate":"2024-05-01T14:02:03.120Z"}"#)),
        );
        assert_eq!(d.event_time, Some(1714572123120));
    }

    #[test]
    fn keys_follow_the_topic_family() {
        let chat = derive("v2.conversations.chats.c5.members", Some(&raw(r#"{"id":"member-1"}"#)));
        assert_eq!(chat.key.as_deref(), Some("c5"), "the chat, not `chats` or the member");
        let audit = derive(
            "v2.audits.entitytype.QUEUE.entityid.q9",
            Some(&raw(r#"{"id":"audit-1"}"#)),
        );
        assert_eq!(audit.key.as_deref(), Some("q9"));
        let calls = derive("v2.users.u1.conversations.calls", Some(&raw(r#"{"id":"c8"}"#)));
        assert_eq!(calls.key.as_deref(), Some("c8"), "the conversation the body is");
        let summary = derive("v2.users.u1.conversationsummary", Some(&raw(r#"{"id":"s1"}"#)));
        assert_eq!(summary.key.as_deref(), Some("u1"), "not a conversation body");
        let empty = derive(
            "v2.routing.queues.q1.conversations",
            Some(&raw(r#"{"conversationId":"","id":""}"#)),
        );
        assert_eq!(empty.key.as_deref(), Some("q1"), "empty ids are skipped");
    }

    #[test]
    fn a_frame_in_one_pass_derives_what_derive_does() {
        let text = r#"{"topicName":"v2.routing.queues.q1.conversations","version":"2","eventBody":{"id":"conv-9","participants":[{"id":"p","endTime":"2000-01-01T00:00:00Z"}],"endTime":"2024-05-01T14:02:03.120Z"},"metadata":{"CorrelationId":"corr-1"}}"#;
        let f = Frame::parse(text).unwrap();
        assert_eq!(f.topic_name.as_deref(), Some("v2.routing.queues.q1.conversations"));
        assert_eq!(f.correlation_id(), Some("corr-1"));
        assert_eq!(
            f.derived(),
            derive(
                "v2.routing.queues.q1.conversations",
                Some(&raw(r#"{"id":"conv-9","endTime":"2024-05-01T14:02:03.120Z"}"#))
            )
        );
        let hb =
            Frame::parse(r#"{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}"#).unwrap();
        assert_eq!(hb.message(), Some("WebSocket Heartbeat"));
        // Conversation events without top-level times take their latest
        // participant time.
        let conv = Frame::parse(r#"{"topicName":"v2.routing.queues.q1.conversations","eventBody":{"id":"c","participants":[{"connectedTime":"2024-05-01T14:00:00.000Z"},{"connectedTime":"2024-05-01T14:00:05.000Z","endTime":"2024-05-01T14:02:03.120Z","calls":[{"connectedTime":"2030-01-01T00:00:00Z"}]}]}}"#).unwrap();
        assert_eq!(conv.derived().event_time, Some(1714572123120));
        // Other forms are parsed and compared as times.
        let conv = Frame::parse(r#"{"topicName":"v2.routing.queues.q1.conversations","eventBody":{"participants":[{"connectedTime":"2024-05-01T14:00:00.000Z"},{"endTime":"2024-05-01T16:02:04+02:00"}]}}"#).unwrap();
        assert_eq!(conv.derived().event_time, Some(1714572124000));
        // Bodies that are not objects are skipped, not refused.
        let odd = Frame::parse(r#"{"topicName":"v2.users.u1.presence","eventBody":[1,{"a":2}]}"#).unwrap();
        assert_eq!(odd.derived().key.as_deref(), Some("u1"));
        let odd = Frame::parse(r#"{"topicName":"v2.users.u1.presence","eventBody":{"participants":[1,null,{"endTime":7}],"id":{"x":1}},"metadata":{"CorrelationId":"c"}}"#).unwrap();
        assert_eq!(
            (odd.derived().key.as_deref(), odd.correlation_id()),
            (Some("u1"), Some("c"))
        );
        let odd =
            Frame::parse(r#"{"topicName":"v2.users.u1.presence","eventBody":{"participants":[1,null,{"endTime":7}]}}"#)
                .unwrap();
        assert_eq!(odd.derived().event_time, None);
        assert!(Frame::parse(r#"{"topicName":"x","eventBody":{"#).is_err());
        assert!(Frame::parse("[1]").is_err());
    }

    #[test]
    fn envelope_strings_are_borrowed_unless_escaped() {
        use std::borrow::Cow;
        let plain = r#"{"topicName":"v2.users.u1.presence","eventBody":{},"metadata":{"CorrelationId":"c1"}}"#;
        let f = Frame::parse(plain).unwrap();
        assert!(matches!(f.topic_name, Some(Cow::Borrowed("v2.users.u1.presence"))));
        assert!(matches!(
            f.metadata.as_ref().and_then(|m| m.correlation_id.as_ref()),
            Some(Cow::Borrowed("c1"))
        ));
        let escaped = r#"{"topicName":"v2.users.u\u0031.presence","metadata":{"CorrelationId":null}}"#;
        let f = Frame::parse(escaped).unwrap();
        assert!(matches!(&f.topic_name, Some(Cow::Owned(t)) if t == "v2.users.u1.presence"));
        assert_eq!(f.correlation_id(), None);
        // A missing topic is absent; one of another type is no frame.
        assert_eq!(Frame::parse(r#"{"eventBody":{}}"#).unwrap().topic_name, None);
        assert!(Frame::parse(r#"{"topicName":7}"#).is_err());
    }

    #[test]
    fn a_field_of_another_type_loses_only_that_field() {
        // One participant's time in epoch seconds: the conversation id and
        // the other participants' times still count.
        let text = r#"{"topicName":"v2.routing.queues.q1.conversations","eventBody":{"id":"conv-3","startTime":17,"participants":[{"connectedTime":1714572000},{"connectedTime":"2024-05-01T14:02:03.120Z","endTime":{"at":1}}]}}"#;
        let f = Frame::parse(text).unwrap();
        assert_eq!(
            f.derived(),
            Derived {
                key: Some("conv-3".into()),
                event_time: Some(1714572123120)
            }
        );
        // So does reading the body alone.
        let envelope: std::collections::HashMap<&str, &RawValue> = serde_json::from_str(text).unwrap();
        assert_eq!(
            derive("v2.routing.queues.q1.conversations", envelope.get("eventBody").copied()),
            f.derived()
        );
    }
}
