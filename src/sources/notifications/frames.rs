//! What a frame from a channel is: an event to ingest, a heartbeat or a
//! pong (consumed, never published), the maintenance announcement, or a
//! malformed frame (counted and dead-lettered). Each frame is parsed once:
//! the envelope plus the few body fields the key and time come from; the
//! frame itself, as received, is the event's payload.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use cxrelay_actors::Event;

use crate::genesys::notification::Frame;
use crate::genesys::topics::{topic_entity, TopicShape};

/// The topic of Genesys's own frames on a channel.
const METADATA_TOPIC: &str = "channel.metadata";
/// The maintenance announcement.
const SOCKET_CLOSING_TOPIC: &str = "v2.system.socket_closing";
/// The platform's own messages about the channel (never events).
const SYSTEM_PREFIX: &str = "v2.system.";

/// A `v2.system.*` message about the channel (the SDK's
/// SystemMessageSystemMessage `systemTopicType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemMessage {
    /// The channel no longer receives its topics: resubscribe.
    NoLongerSubscribed,
    /// Its subscriptions were changed: set them again.
    SubscriptionChanged,
    /// The token it was made with was revoked: a new token, then set them
    /// again.
    TokenRevoked,
    /// One this client does not know (counted, never ingested).
    Other,
}

impl SystemMessage {
    /// Every kind.
    pub const ALL: [SystemMessage; 4] = [
        SystemMessage::NoLongerSubscribed,
        SystemMessage::SubscriptionChanged,
        SystemMessage::TokenRevoked,
        SystemMessage::Other,
    ];

    /// The `systemTopicType` (the label in metrics and status).
    pub fn as_str(self) -> &'static str {
        match self {
            SystemMessage::NoLongerSubscribed => "no_longer_subscribed",
            SystemMessage::SubscriptionChanged => "subscription_changed",
            SystemMessage::TokenRevoked => "token_revoked",
            SystemMessage::Other => "other",
        }
    }

    /// Its index in [`SystemMessage::ALL`].
    pub fn index(self) -> usize {
        SystemMessage::ALL.iter().position(|k| *k == self).unwrap_or(3)
    }

    /// Reads the kind from the body's `systemTopicType`, else from the
    /// topic's last segment.
    fn read(topic: &str, body_type: Option<&str>) -> SystemMessage {
        let name = body_type.unwrap_or_else(|| topic.trim_start_matches(SYSTEM_PREFIX));
        SystemMessage::ALL
            .into_iter()
            .find(|k| *k != SystemMessage::Other && k.as_str() == name)
            .unwrap_or(SystemMessage::Other)
    }
}

/// Why a frame was not an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MalformedReason {
    /// A text frame that is not UTF-8.
    InvalidUtf8,
    /// Not JSON (or not a JSON object).
    InvalidJson,
    /// JSON without a `topicName`.
    NoTopic,
    /// Over `max_frame_bytes`.
    Oversized,
    /// A binary frame (Genesys sends text).
    Binary,
    /// Continuation frames out of order.
    BrokenFragments,
}

impl MalformedReason {
    /// Every reason.
    pub const ALL: [MalformedReason; 6] = [
        MalformedReason::InvalidUtf8,
        MalformedReason::InvalidJson,
        MalformedReason::NoTopic,
        MalformedReason::Oversized,
        MalformedReason::Binary,
        MalformedReason::BrokenFragments,
    ];

    /// The label in metrics, status and dead letters.
    pub fn as_str(self) -> &'static str {
        match self {
            MalformedReason::InvalidUtf8 => "invalid_utf8",
            MalformedReason::InvalidJson => "invalid_json",
            MalformedReason::NoTopic => "no_topic",
            MalformedReason::Oversized => "oversized",
            MalformedReason::Binary => "binary",
            MalformedReason::BrokenFragments => "broken_fragments",
        }
    }

    /// Its index in [`MalformedReason::ALL`].
    pub fn index(self) -> usize {
        MalformedReason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

/// A frame, read.
#[derive(Debug)]
pub enum Classified {
    /// An event for ingest.
    Event(Event),
    /// `WebSocket Heartbeat`.
    Heartbeat,
    /// The answer to a ping.
    Pong,
    /// `v2.system.socket_closing`: about a minute left on this socket.
    SocketClosing,
    /// Another `v2.system.*` message: acted on, never an event.
    System(SystemMessage),
    /// Another `channel.metadata` frame.
    Metadata,
    /// Not an event.
    Malformed(MalformedReason),
}

/// Turns frames of one channel into events.
pub struct FrameReader {
    source: Arc<str>,
    /// The channel's topics, shared by every event on them (no allocation
    /// per event for the topic), and what each names.
    topics: HashMap<Box<str>, (Arc<str>, TopicShape), foldhash::fast::RandomState>,
    max_frame_bytes: usize,
    /// Id prefix of events without a CorrelationId.
    fallback_prefix: String,
    frames: u64,
}

impl FrameReader {
    /// A reader for source `source`, frames up to `max_frame_bytes`.
    pub fn new(source: Arc<str>, topics: &[String], max_frame_bytes: usize, fallback_prefix: String) -> Self {
        let mut r = FrameReader {
            source,
            topics: HashMap::default(),
            max_frame_bytes,
            fallback_prefix,
            frames: 0,
        };
        r.set_topics(topics);
        r
    }

    /// The channel's topics changed.
    pub fn set_topics(&mut self, topics: &[String]) {
        self.topics = topics
            .iter()
            .map(|t| (t.as_str().into(), (Arc::<str>::from(t.as_str()), TopicShape::of(t))))
            .collect();
    }

    /// Reads one text frame, read off the socket at `received_at` (ms since
    /// the epoch).
    pub fn text(&mut self, bytes: Bytes, received_at: i64) -> Classified {
        self.frames += 1;
        if bytes.len() > self.max_frame_bytes {
            return Classified::Malformed(MalformedReason::Oversized);
        }
        let Ok(text) = crate::wire::text::utf8(&bytes) else {
            return Classified::Malformed(MalformedReason::InvalidUtf8);
        };
        let mut known = None;
        let parsed = Frame::parse_with(text, |topic| match self.topics.get(topic) {
            Some((name, shape)) => {
                known = Some(name.clone());
                shape.entity(topic)
            }
            None => topic_entity(topic),
        });
        let mut frame = match parsed {
            Ok(f) => f,
            Err(_) => return Classified::Malformed(MalformedReason::InvalidJson),
        };
        let topic = match frame.topic_name.as_deref() {
            Some(t) if !t.is_empty() => t,
            _ => return Classified::Malformed(MalformedReason::NoTopic),
        };
        if topic == METADATA_TOPIC {
            return match frame.message() {
                Some("WebSocket Heartbeat") => Classified::Heartbeat,
                Some("pong") => Classified::Pong,
                _ => Classified::Metadata,
            };
        }
        if topic == SOCKET_CLOSING_TOPIC {
            return Classified::SocketClosing;
        }
        if topic.starts_with(SYSTEM_PREFIX) {
            return Classified::System(SystemMessage::read(topic, frame.system_topic_type()));
        }
        let id = match frame.correlation_id() {
            Some(c) => Arc::<str>::from(c),
            None => format!("{}-{}", self.fallback_prefix, self.frames).into(),
        };
        let topic = known.unwrap_or_else(|| Arc::from(topic));
        let derived = frame.take_derived();
        // A copy: the frame is a slice of the socket's read buffer, which
        // may be large (after an oversized frame); an event held in a queue
        // must not keep all of it alive.
        Classified::Event(
            Event::builder(self.source.clone(), topic)
                .id(id)
                .key_opt(derived.key)
                .event_time(derived.event_time)
                .received_at(received_at)
                .payload(Bytes::copy_from_slice(&bytes))
                .build(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader() -> FrameReader {
        FrameReader::new(
            Arc::from("queues"),
            &["v2.routing.queues.q1.conversations".to_string()],
            1000,
            "ch-1".into(),
        )
    }

    /// When the tests' frames were read off the socket.
    const READ_AT: i64 = 1_714_572_000_000;

    fn read(r: &mut FrameReader, s: &str) -> Classified {
        r.text(Bytes::copy_from_slice(s.as_bytes()), READ_AT)
    }

    #[test]
    fn events_keep_the_frame_as_payload_with_key_time_and_id() {
        let mut r = reader();
        let frame = r#"{"topicName":"v2.routing.queues.q1.conversations","version":"2","eventBody":{"id":"conv-1","endTime":"2024-05-01T14:02:03.120Z"},"metadata":{"CorrelationId":"corr-1"}}"#;
        match read(&mut r, frame) {
            Classified::Event(e) => {
                assert_eq!(&*e.topic, "v2.routing.queues.q1.conversations");
                assert_eq!(
                    (&*e.id, e.key.as_deref(), e.event_time),
                    ("corr-1", Some("conv-1"), Some(1714572123120))
                );
                assert_eq!(&e.payload[..], frame.as_bytes());
                assert_eq!(&*e.source, "queues");
                // Received when read, the instant the checkpoint records.
                assert_eq!(e.received_at, READ_AT);
            }
            other => panic!("{other:?}"),
        }
        // Without a correlation id the event still gets a unique id.
        match read(&mut r, r#"{"topicName":"v2.users.u1.presence","eventBody":{}}"#) {
            Classified::Event(e) => assert_eq!((&*e.id, e.key.as_deref()), ("ch-1-2", Some("u1"))),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_subscribed_topic_is_shared_and_names_its_entity() {
        let topic = "v2.users.u2.presence";
        let mut r = FrameReader::new(Arc::from("users"), &[topic.to_string()], 1000, "ch-1".into());
        let frame = format!(r#"{{"topicName":"{topic}","eventBody":{{}}}}"#);
        let (Classified::Event(a), Classified::Event(b)) = (read(&mut r, &frame), read(&mut r, &frame)) else {
            panic!("not events");
        };
        assert_eq!((&*a.topic, a.key.as_deref()), (topic, Some("u2")));
        assert!(Arc::ptr_eq(&a.topic, &b.topic), "one topic for every event on it");
        assert_eq!(b.key.as_deref(), Some("u2"));
    }

    #[test]
    fn genesys_frames_are_not_events() {
        let mut r = reader();
        assert!(matches!(
            read(
                &mut r,
                r#"{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}"#
            ),
            Classified::Heartbeat
        ));
        assert!(matches!(
            read(
                &mut r,
                r#"{"topicName":"channel.metadata","eventBody":{"message":"pong"}}"#
            ),
            Classified::Pong
        ));
        assert!(matches!(
            read(
                &mut r,
                r#"{"topicName":"v2.system.socket_closing","eventBody":{"message":"bye"}}"#
            ),
            Classified::SocketClosing
        ));
    }

    #[test]
    fn system_messages_are_never_events() {
        let mut r = reader();
        let frame = r#"{"topicName":"v2.system.no_longer_subscribed","version":"2","eventBody":{"channelId":"c","systemTopicType":"no_longer_subscribed"},"metadata":{"CorrelationId":"x"}}"#;
        assert!(matches!(
            read(&mut r, frame),
            Classified::System(SystemMessage::NoLongerSubscribed)
        ));
        assert!(matches!(
            read(&mut r, r#"{"topicName":"v2.system.token_revoked","eventBody":{}}"#),
            Classified::System(SystemMessage::TokenRevoked)
        ));
        assert!(matches!(
            read(&mut r, r#"{"topicName":"v2.system.something_new","eventBody":{}}"#),
            Classified::System(SystemMessage::Other)
        ));
    }

    #[test]
    fn malformed_frames_say_why() {
        let mut r = reader();
        let reason = |c: Classified| match c {
            Classified::Malformed(m) => m,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            reason(read(&mut r, r#"{"topicName":"x","eventBody":{"#)),
            MalformedReason::InvalidJson
        );
        assert_eq!(reason(read(&mut r, "[1,2]")), MalformedReason::InvalidJson);
        assert_eq!(reason(read(&mut r, r#"{"eventBody":{}}"#)), MalformedReason::NoTopic);
        assert_eq!(
            reason(read(&mut r, r#"{"topicName":"","eventBody":{}}"#)),
            MalformedReason::NoTopic
        );
        assert_eq!(reason(read(&mut r, &"x".repeat(1001))), MalformedReason::Oversized);
        assert_eq!(
            reason(r.text(Bytes::from_static(b"{\"topicName\":\"v2.a\",\"x\":\"\xff\"}"), READ_AT)),
            MalformedReason::InvalidUtf8
        );
    }
}
