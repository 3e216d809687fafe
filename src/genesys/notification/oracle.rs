//! The reference the frame scanner is held to: the same frame read through
//! serde_json's typed visitors (how cxrelay read frames before the
//! scanner), compared with [`Frame::parse`] on generated and mutated
//! frames.

use std::borrow::Cow;

use proptest::prelude::*;
use serde::Deserialize;

use super::*;

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

/// The envelope alone, as the serde reading fell back to it.
#[derive(Debug, Deserialize)]
struct Envelope<'a> {
    /// The topic the event was published on (owned only when it was
    /// written with escapes).
    #[serde(rename = "topicName", borrow, default, deserialize_with = "opt_cow")]
    topic_name: Option<std::borrow::Cow<'a, str>>,
    /// The event itself, unparsed.
    #[serde(rename = "eventBody", borrow)]
    event_body: Option<&'a RawValue>,
    /// Metadata (carries the correlation id).
    #[serde(default)]
    metadata: Option<SerdeMetadata<'a>>,
    /// Send time of a pushed notification (ISO-8601), when present.
    #[serde(borrow, default, deserialize_with = "opt_cow")]
    timestamp: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Debug, Deserialize, Default)]
struct SerdeMetadata<'a> {
    #[serde(rename = "CorrelationId", borrow, default, deserialize_with = "opt_cow")]
    correlation_id: Option<Cow<'a, str>>,
}

impl<'a> From<SerdeMetadata<'a>> for Metadata<'a> {
    fn from(m: SerdeMetadata<'a>) -> Self {
        Metadata {
            correlation_id: m.correlation_id,
        }
    }
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

#[derive(Debug, Deserialize, Default)]
struct SerdeBody<'a> {
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
    #[serde(rename = "modifiedDate", borrow, default)]
    modified_date: Loose<'a>,
    #[serde(borrow, default)]
    message: Loose<'a>,
    #[serde(rename = "systemTopicType", borrow, default)]
    system_topic_type: Loose<'a>,
    #[serde(default)]
    participants: Option<LatestParticipantTime>,
}

impl<'a> SerdeBody<'a> {
    fn fields(self) -> BodyFields<'a> {
        BodyFields {
            conversation_id: self.conversation_id.0,
            id: self.id.0,
            event_time: match self.event_time {
                None => EventTime::Absent,
                Some(serde_json::Value::Number(n)) => n.as_i64().map_or(EventTime::Other, EventTime::Ms),
                Some(serde_json::Value::String(s)) => EventTime::Text(Cow::Owned(s)),
                Some(_) => EventTime::Other,
            },
            end_time: self.end_time.0,
            connected_time: self.connected_time.0,
            start_time: self.start_time.0,
            timestamp: self.timestamp.0,
            modified_date: self.modified_date.0,
            message: self.message.0,
            system_topic_type: self.system_topic_type.0,
            participants_time: self.participants.and_then(|p| p.0),
        }
    }
}

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
                let mut latest = LatestTime::default();
                while let Some(Lenient(p)) = seq.next_element::<Lenient<Times<'de>>>()? {
                    latest.offer(p.connected_time.0);
                    latest.offer(p.end_time.0);
                }
                Ok(LatestParticipantTime(latest.finish()))
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

#[derive(Debug, Default)]
struct Loose<'a>(Option<Cow<'a, str>>);

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

#[derive(Deserialize)]
struct OnePass<'a> {
    #[serde(rename = "topicName", borrow, default, deserialize_with = "opt_cow")]
    topic_name: Option<Cow<'a, str>>,
    #[serde(rename = "eventBody", borrow, default)]
    body: Option<Lenient<SerdeBody<'a>>>,
    #[serde(default, borrow)]
    metadata: Option<SerdeMetadata<'a>>,
    #[serde(default, borrow)]
    timestamp: Loose<'a>,
}

/// A frame as serde_json read it: in one pass, else (a body field that
/// cannot be read) by its envelope alone.
fn parse(text: &str) -> Option<Frame<'_>> {
    // serde reads a struct from an array too (by position); the scanner
    // deliberately takes only objects, for the frame and its metadata.
    let top: std::collections::BTreeMap<Cow<'_, str>, &serde_json::value::RawValue> =
        serde_json::from_str(text).ok()?;
    if top.get("metadata").is_some_and(|m| m.get().starts_with('[')) {
        return None;
    }
    if let Ok(f) = serde_json::from_str::<OnePass<'_>>(text) {
        let fields = f.body.map(|b| b.0.fields()).unwrap_or_default();
        let derived = derive_fields(topic_entity(f.topic_name.as_deref().unwrap_or("")), &fields);
        return Some(Frame {
            topic_name: f.topic_name,
            metadata: f.metadata.map(Metadata::from),
            message: fields.message,
            system_topic_type: fields.system_topic_type,
            timestamp: f.timestamp.0,
            derived,
        });
    }
    let e: Envelope<'_> = serde_json::from_str(text).ok()?;
    let fields = e
        .event_body
        .and_then(|b| serde_json::from_str::<SerdeBody<'_>>(b.get()).ok())
        .map(SerdeBody::fields)
        .unwrap_or_default();
    Some(Frame {
        derived: derive_fields(topic_entity(e.topic_name.as_deref().unwrap_or("")), &fields),
        topic_name: e.topic_name,
        message: fields.message.map(|m| Cow::Owned(m.into_owned())),
        system_topic_type: fields.system_topic_type.map(|m| Cow::Owned(m.into_owned())),
        timestamp: e.timestamp,
        metadata: e.metadata.map(Metadata::from),
    })
}

/// What a caller sees of a frame.
fn seen(f: &Frame<'_>) -> String {
    format!(
        "topic={:?} metadata={} id={:?} message={:?} system={:?} timestamp={:?} {:?}",
        f.topic_name.as_deref(),
        f.metadata.is_some(),
        f.correlation_id(),
        f.message(),
        f.system_topic_type(),
        f.timestamp(),
        f.derived()
    )
}

fn agree(text: &str) -> std::result::Result<(), TestCaseError> {
    let want = parse(text).map(|f| seen(&f));
    let got = Frame::parse(text).map(|f| seen(&f)).ok();
    prop_assert_eq!(got, want, "{}", text);
    Ok(())
}

/// Values of every kind a field can meet, the awkward ones included.
fn value() -> impl Strategy<Value = String> {
    let leaf = prop::sample::select(vec![
        r#""2024-05-01T14:02:03.120Z""#,
        r#""2024-05-01T16:02:04+02:00""#,
        r#""2024-05-01T14:02:03.12\u0030Z""#,
        r#""2024-13-01T00:00:00Z""#,
        r#""conv-1""#,
        r#""""#,
        r#""\ud800""#,
        r#""\ud83d\ude00""#,
        r#""WebSocket Heartbeat""#,
        "1714572123000",
        "-0",
        "0",
        "-12",
        "18446744073709551615",
        "9223372036854775808",
        "-9223372036854775808",
        "1.5",
        "1e400",
        "-1e400",
        "1e-400",
        "true",
        "false",
        "null",
        r#"{}"#,
        r#"[]"#,
        r#"{"\udc00":1}"#,
        r#"{"a":"\ud800"}"#,
        r#"[1e400]"#,
        r#"{"x":[{"connectedTime":"\ud800"}]}"#,
    ])
    .prop_map(str::to_string);
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(|v| format!("[{}]", v.join(","))),
            prop::collection::vec((key(), inner), 0..4).prop_map(|m| {
                let members: Vec<String> = m.into_iter().map(|(k, v)| format!("{k}:{v}")).collect();
                format!("{{{}}}", members.join(","))
            }),
        ]
    })
}

/// Keys: the ones read at some level (some escaped), and others.
fn key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        r#""topicName""#,
        r#""eventBody""#,
        r#""metadata""#,
        r#""timestamp""#,
        r#""CorrelationId""#,
        r#""conversationId""#,
        r#""id""#,
        r#""\u0069d""#,
        r#""eventTime""#,
        r#""endTime""#,
        r#""connectedTime""#,
        r#""startTime""#,
        r#""modifiedDate""#,
        r#""message""#,
        r#""systemTopicType""#,
        r#""participants""#,
        r#""calls""#,
        r#""other""#,
        r#""\udc00""#,
    ])
    .prop_map(str::to_string)
}

fn participants() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        (
            prop::sample::select(vec![r#""connectedTime""#, r#""endTime""#, r#""id""#]),
            value()
        )
            .prop_map(|(k, v)| format!("{k}:{v}")),
        value().prop_map(|v| format!(r#""calls":[{{"connectedTime":{v}}}]"#)),
    ];
    let participant = prop_oneof![
        4 => prop::collection::vec(member, 0..4).prop_map(|m| format!("{{{}}}", m.join(","))),
        1 => value(),
    ];
    prop::collection::vec(participant, 0..4).prop_map(|p| format!("[{}]", p.join(",")))
}

fn body() -> impl Strategy<Value = String> {
    let member = prop_oneof![
        4 => (key(), value()).prop_map(|(k, v)| format!("{k}:{v}")),
        2 => participants().prop_map(|p| format!(r#""participants":{p}"#)),
    ];
    prop_oneof![
        6 => prop::collection::vec(member, 0..7).prop_map(|m| format!("{{{}}}", m.join(","))),
        1 => value(),
    ]
}

fn frame() -> impl Strategy<Value = String> {
    let topic = prop::sample::select(vec![
        r#""v2.routing.queues.q1.conversations""#,
        r#""v2.users.u1.presence""#,
        r#""v2.detail.events.conversation.c1.customer.start""#,
        r#""channel.metadata""#,
        r#""v2.users.u\u0031.presence""#,
        r#""\ud800""#,
        "null",
        "7",
        "{}",
    ]);
    let metadata = prop::sample::select(vec![
        r#"{"CorrelationId":"corr-1"}"#,
        r#"{"CorrelationId":null,"x":[1e400]}"#,
        r#"{"CorrelationId":7}"#,
        r#"{"CorrelationId":"a","CorrelationId":"b"}"#,
        r#"{"\udc00":1}"#,
        "null",
        r#""m""#,
    ]);
    let member = prop_oneof![
        3 => topic.prop_map(|t| format!(r#""topicName":{t}"#)),
        4 => body().prop_map(|b| format!(r#""eventBody":{b}"#)),
        2 => metadata.prop_map(|m| format!(r#""metadata":{m}"#)),
        2 => value().prop_map(|v| format!(r#""timestamp":{v}"#)),
        1 => (key(), value()).prop_map(|(k, v)| format!("{k}:{v}")),
    ];
    prop::collection::vec(member, 0..6).prop_map(|m| format!("{{{}}}", m.join(",")))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn the_scanner_reads_frames_as_serde_json_did(text in frame()) {
        agree(&text)?;
    }

    #[test]
    fn and_refuses_or_reads_broken_frames_as_it_did(text in frame(), cut in any::<prop::sample::Index>(), byte in any::<u8>(), truncate in any::<bool>()) {
        // One byte changed, or the frame cut short: whether it is still
        // JSON, and what it then says, must not change.
        let mut bytes = text.into_bytes();
        if bytes.is_empty() {
            return Ok(());
        }
        let at = cut.index(bytes.len());
        if truncate {
            bytes.truncate(at);
        } else {
            bytes[at] = byte;
        }
        if let Ok(text) = String::from_utf8(bytes) {
            agree(&text)?;
        }
    }
}

#[test]
fn frames_of_the_platform_and_the_bench_read_the_same() {
    for text in [
        r#"{"topicName":"v2.routing.queues.q1.conversations","version":"2","eventBody":{"id":"b054cc67","seq":0,"startTime":"2024-05-01T07:00:00.000-05:00","participants":[{"id":"p1","address":"tel:+13175552110","connectedTime":"2024-05-01T12:00:01.200Z","calls":[{"state":"connected"}],"attributes":{"a":"b"}},{"connectedTime":1714564809}]},"metadata":{"CorrelationId":"d093e30f"}}"#,
        r#"{"topicName":"channel.metadata","eventBody":{"message":"WebSocket Heartbeat"}}"#,
        r#"{"topicName":"v2.system.socket_closing","eventBody":{"message":"closing"},"metadata":{}}"#,
        r#"{"topicName":"v2.users.u1.presence","eventBody":{"presenceDefinition":{"id":"x"},"modifiedDate":"2024-05-01T14:02:03.120Z"},"timestamp":"2024-05-01T14:02:04.000Z"}"#,
        " { \"topicName\" : \"v2.users.u1.presence\" } \n",
        "[]",
        "",
        r#"{"topicName":"x","topicName":"y"}"#,
        r#"{"eventBody":{"id":"a","id":"b"},"timestamp":5}"#,
        r#"{"eventBody":{"id":"a","id":"b"},"timestamp":"t"}"#,
    ] {
        agree(text).unwrap();
    }
}
