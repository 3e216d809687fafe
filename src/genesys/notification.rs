//! Notification envelopes, as they arrive over a WebSocket or pushed to a
//! webhook: `{"topicName","version","eventBody":{…},"metadata":{…}}`, and
//! what cxrelay derives from them (partition key, event time).
//!
//! Only the envelope is parsed; the body stays raw unless a field is
//! needed, because most events are routed without looking inside.

use serde::Deserialize;
use serde_json::value::RawValue;

pub use super::topics::topic_id;
use super::topics::{topic_entity, Names, TimeField};

/// The envelope fields cxrelay reads.
#[derive(Debug, Deserialize)]
pub struct Envelope<'a> {
    /// The topic the event was published on (owned only when it was
    /// written with escapes).
    #[serde(rename = "topicName", borrow, default, deserialize_with = "opt_cow")]
    pub topic_name: Option<std::borrow::Cow<'a, str>>,
    /// The event itself, unparsed.
    #[serde(rename = "eventBody", borrow)]
    pub event_body: Option<&'a RawValue>,
    /// Metadata (carries the correlation id).
    #[serde(default)]
    pub metadata: Option<Metadata<'a>>,
    /// Send time of a pushed notification (ISO-8601), when present.
    #[serde(borrow, default, deserialize_with = "opt_cow")]
    pub timestamp: Option<std::borrow::Cow<'a, str>>,
}

/// Envelope metadata.
#[derive(Debug, Deserialize, Default)]
pub struct Metadata<'a> {
    /// Unique per published event.
    #[serde(rename = "CorrelationId", borrow, default, deserialize_with = "opt_cow")]
    pub correlation_id: Option<std::borrow::Cow<'a, str>>,
}

/// Visitor arms for a JSON string read as a `Cow`: borrowed from the
/// input when it has no escapes, `$wrap`ped into the visitor's value.
macro_rules! string_arms {
    ($wrap:expr) => {
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok($wrap(std::borrow::Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok($wrap(std::borrow::Cow::Owned(v.to_string())))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok($wrap(std::borrow::Cow::Owned(v)))
        }
    };
}

/// Reads a string or `null`, borrowing the string from the input when it
/// has no escapes: serde's own `Option<Cow<str>>` always copies, and these
/// fields are read for every event.
pub(crate) fn opt_cow<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<std::borrow::Cow<'de, str>>, D::Error> {
    use std::borrow::Cow;
    struct V;
    impl<'de> serde::de::Visitor<'de> for V {
        type Value = Option<Cow<'de, str>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        string_arms!(Some);
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_str(V)
        }
    }
    d.deserialize_option(V)
}

/// Visitor arms for the scalar JSON values a lenient reader passes over:
/// each answers `$none` (with `str`, strings too).
macro_rules! skipped_scalars {
    ($none:expr) => {
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok($none)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
    ($none:expr, str) => {
        skipped_scalars!($none);
        fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
            Ok($none)
        }
    };
}

/// The few body fields used for keys and times (all others are skipped).
#[derive(Debug, Deserialize, Default)]
struct BodyFields<'a> {
    #[serde(rename = "conversationId", borrow, default)]
    conversation_id: Loose<'a>,
    #[serde(borrow, default)]
    id: Loose<'a>,
    #[serde(rename = "eventTime")]
    event_time: Option<serde_json::Value>,
    #[serde(rename = "endTime", borrow, default)]
    end_time: Loose<'a>,
    #[serde(rename = "connectedTime", borrow, default)]
    connected_time: Loose<'a>,
    #[serde(rename = "startTime", borrow, default)]
    start_time: Loose<'a>,
    #[serde(borrow, default)]
    timestamp: Loose<'a>,
    /// When the entity became as the body shows it (presence).
    #[serde(rename = "modifiedDate", borrow, default)]
    modified_date: Loose<'a>,
    /// `channel.metadata` frames: "WebSocket Heartbeat", "pong".
    #[serde(borrow, default)]
    message: Loose<'a>,
    /// `v2.system.*` messages: what happened to the channel.
    #[serde(rename = "systemTopicType", borrow, default)]
    system_topic_type: Loose<'a>,
    /// Conversation events (`v2.routing.queues.{id}.conversations`, ...)
    /// carry their times on the participants.
    #[serde(default)]
    participants: Option<LatestParticipantTime>,
}

/// The latest `connectedTime` / `endTime` of a `participants` array, read
/// without keeping the participants.
#[derive(Debug, Default)]
struct LatestParticipantTime(Option<i64>);

impl<'de> Deserialize<'de> for LatestParticipantTime {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize, Default)]
        struct Times<'a> {
            #[serde(rename = "connectedTime", borrow, default)]
            connected_time: Loose<'a>,
            #[serde(rename = "endTime", borrow, default)]
            end_time: Loose<'a>,
        }
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = LatestParticipantTime;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of participants")
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                let mut latest: Option<i64> = None;
                // Times in Genesys's usual form (`…T14:02:03.120Z`) order as
                // strings: only the latest of those is parsed.
                let mut latest_utc: Option<std::borrow::Cow<'de, str>> = None;
                while let Some(Lenient(p)) = seq.next_element::<Lenient<Times<'de>>>()? {
                    for t in [p.connected_time.0, p.end_time.0].into_iter().flatten() {
                        if is_utc_millis(&t) {
                            if latest_utc.as_deref().is_none_or(|l| *t > *l) {
                                latest_utc = Some(t);
                            }
                        } else if let Some(ms) = parse_iso_ms(&t) {
                            latest = Some(latest.map_or(ms, |l| l.max(ms)));
                        }
                    }
                }
                if let Some(ms) = latest_utc.as_deref().and_then(parse_iso_ms) {
                    latest = Some(latest.map_or(ms, |l| l.max(ms)));
                }
                Ok(LatestParticipantTime(latest))
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(LatestParticipantTime(None))
            }
            skipped_scalars!(LatestParticipantTime(None), str);
        }
        d.deserialize_any(V)
    }
}

/// A string field cxrelay only peeks at: any other JSON value (a number, an
/// object...) reads as absent, so that one field of an unexpected type
/// neither refuses the frame nor costs a second parse of it.
#[derive(Debug, Default)]
struct Loose<'a>(Option<std::borrow::Cow<'a, str>>);

impl<'de: 'a, 'a> Deserialize<'de> for Loose<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Loose<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            string_arms!(|c| Loose(Some(c)));
            fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
                while map
                    .next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?
                    .is_some()
                {}
                Ok(Loose(None))
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Loose(None))
            }
            skipped_scalars!(Loose(None));
        }
        d.deserialize_any(V(std::marker::PhantomData))
    }
}

/// A `T` read from a JSON object; any other JSON value is skipped and
/// gives `T::default()` (frames are never refused for the shape of fields
/// cxrelay only peeks at). Nothing is buffered.
#[derive(Debug, Default)]
struct Lenient<T>(T);

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de> + Default> serde::de::Visitor<'de> for V<T> {
            type Value = Lenient<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(self, map: M) -> Result<Self::Value, M::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Lenient)
            }
            fn visit_seq<S: serde::de::SeqAccess<'de>>(self, mut seq: S) -> Result<Self::Value, S::Error> {
                while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
                Ok(Lenient(T::default()))
            }
            skipped_scalars!(Lenient(T::default()), str);
        }
        d.deserialize_any(V(std::marker::PhantomData))
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

/// The one-pass shape of a frame.
#[derive(Deserialize)]
struct OnePass<'a> {
    #[serde(rename = "topicName", borrow, default, deserialize_with = "opt_cow")]
    topic_name: Option<std::borrow::Cow<'a, str>>,
    #[serde(rename = "eventBody", borrow, default)]
    body: Option<Lenient<BodyFields<'a>>>,
    #[serde(default, borrow)]
    metadata: Option<Metadata<'a>>,
    #[serde(default, borrow)]
    timestamp: Loose<'a>,
}

impl<'a> Frame<'a> {
    /// Parses a frame; an error means it is not a JSON object.
    pub fn parse(text: &'a str) -> Result<Frame<'a>, serde_json::Error> {
        match serde_json::from_str::<OnePass<'a>>(text) {
            Ok(f) => {
                let fields = f.body.map(|b| b.0).unwrap_or_default();
                let derived = derive_fields(f.topic_name.as_deref().unwrap_or(""), &fields);
                Ok(Frame {
                    topic_name: f.topic_name,
                    metadata: f.metadata,
                    message: fields.message.0,
                    system_topic_type: fields.system_topic_type.0,
                    timestamp: f.timestamp.0,
                    derived,
                })
            }
            // A body field of an unexpected type (`"endTime": 7`): read the
            // envelope alone and derive what can be derived, as webhooks do.
            Err(first) => {
                let e: Envelope<'a> = serde_json::from_str(text).map_err(|_| first)?;
                let fields: BodyFields<'_> = e
                    .event_body
                    .and_then(|b| serde_json::from_str(b.get()).ok())
                    .unwrap_or_default();
                let derived = derive(e.topic_name.as_deref().unwrap_or(""), e.event_body);
                Ok(Frame {
                    topic_name: e.topic_name,
                    derived,
                    message: fields.message.0.map(|m| std::borrow::Cow::Owned(m.into_owned())),
                    system_topic_type: fields
                        .system_topic_type
                        .0
                        .map(|m| std::borrow::Cow::Owned(m.into_owned())),
                    timestamp: e.timestamp,
                    metadata: e.metadata,
                })
            }
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

    /// Partition key and event time, as [`derive`] gives them.
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
    pub key: Option<String>,
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

/// Parses an ISO-8601 time into ms since the epoch.
pub fn parse_iso_ms(s: &str) -> Option<i64> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as i64)
}

/// Derives the partition key and event time from a topic and body.
///
/// The key is the conversation id when the event is about a conversation
/// (so that per-conversation order can be kept), else the entity the topic
/// names in its family (see [`super::topics`]). The time is `eventTime`
/// (epoch ms, or ISO), else the ISO time fields of conversation events,
/// else `modifiedDate`; presence events take `modifiedDate` first.
pub fn derive(topic: &str, body: Option<&RawValue>) -> Derived {
    let fields: BodyFields<'_> = body
        .and_then(|b| serde_json::from_str(b.get()).ok())
        .unwrap_or_default();
    derive_fields(topic, &fields)
}

fn derive_fields(topic: &str, fields: &BodyFields<'_>) -> Derived {
    let entity = topic_entity(topic);
    // An empty id identifies nothing; the next candidate is taken.
    fn given<'s>(v: &'s Loose<'_>) -> Option<&'s str> {
        v.0.as_deref().filter(|s| !s.is_empty())
    }
    let from_body = match entity.names() {
        Names::Conversation => entity.id,
        Names::ConversationsOf => given(&fields.id),
        Names::Entity | Names::Nothing => None,
    };
    let key = given(&fields.conversation_id)
        .or(from_body)
        .or(entity.id)
        .map(str::to_string);
    let modified = || fields.modified_date.0.as_deref().and_then(parse_iso_ms);
    let usual = || {
        match &fields.event_time {
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
            .filter_map(|l| l.0.as_deref())
            .find_map(parse_iso_ms)
        })
        .or_else(|| fields.participants.as_ref().and_then(|p| p.0))
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
        let e: Result<Envelope<'_>, _> = serde_json::from_str(r#"{"topicName":7}"#);
        assert!(e.is_err());
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
        // So does the envelope-only reading webhooks use.
        let envelope: Envelope<'_> = serde_json::from_str(text).unwrap();
        assert_eq!(
            derive("v2.routing.queues.q1.conversations", envelope.event_body),
            f.derived()
        );
    }
}
