//! Bodies of Genesys Open Messaging outbound webhooks (`body =
//! "open_messaging"`): one normalized message (OpenNormalizedMessage: `id`,
//! `channel`, `type`, `text`, `content`, `status`, `direction`, ...) or a
//! JSON array of them. There is no `topicName`: the topic is made from the
//! message, `openmessaging.<direction>.<type>` in lower case
//! (`openmessaging.outbound.text`, `openmessaging.outbound.receipt`,
//! `openmessaging.inbound.event`).

use std::borrow::Cow;
use std::sync::Arc;

use cxrelay_actors::Event;
use serde::Deserialize;

use super::envelope::{generated_id, EnvelopeError, Pushed};
use crate::wire::time::iso_ms_of;

/// The message fields cxrelay reads (everything else stays in the payload).
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    direction: Option<Cow<'a, str>>,
    /// Receipts: `Delivered`, `Read`, `Failed`, ...
    #[serde(borrow, default)]
    status: Option<Cow<'a, str>>,
    /// Not in the normalized message model, but carried by some senders:
    /// used when present.
    #[serde(rename = "conversationId", borrow, default)]
    conversation_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    channel: Option<Channel<'a>>,
}

/// OpenMessagingChannel: the integration, the parties and the time.
#[derive(Deserialize)]
struct Channel<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    to: Option<Party<'a>>,
    #[serde(borrow, default)]
    from: Option<Party<'a>>,
}

#[derive(Deserialize)]
struct Party<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
}

fn given<'s>(v: &'s Option<Cow<'_, str>>) -> Option<&'s str> {
    v.as_deref().filter(|s| !s.is_empty())
}

/// One topic segment from a message field: lower case, and only what a
/// topic (and a NATS subject) can carry; `unknown` otherwise.
fn segment(v: Option<&str>) -> String {
    match v {
        Some(s) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') => {
            s.to_ascii_lowercase()
        }
        _ => "unknown".to_string(),
    }
}

/// Parses an Open Messaging body into events for source `source`.
///
/// - idempotency key: the message `id`; a receipt shares the id of the
///   message it is about, so its key is `<id>:receipt:<status>`; a message
///   without an id has no key (it is never dropped as a duplicate);
/// - partition key: `conversationId` when present, else the external party
///   (`channel.to.id` of an outbound message, `channel.from.id` of an
///   inbound one), else the integration (`channel.id`);
/// - event time: `channel.time`.
pub fn parse_open_messaging(body: &[u8], source: &str) -> Result<Pushed, EnvelopeError> {
    let elements = super::envelope::elements(body)?;
    let source: Arc<str> = Arc::from(source);
    let mut events = Vec::with_capacity(elements.len());
    let mut keys = Vec::with_capacity(elements.len());
    for el in elements {
        let m: Message<'_> = serde_json::from_str(el.get()).map_err(|_| EnvelopeError::NotOpenMessage)?;
        // `channel` and `type` are what every normalized message has.
        let (Some(channel), Some(kind)) = (&m.channel, given(&m.kind)) else {
            return Err(EnvelopeError::NotOpenMessage);
        };
        let direction = given(&m.direction);
        let topic = format!("openmessaging.{}.{}", segment(direction), segment(Some(kind)));
        let key = given(&m.id).map(|id| {
            if kind.eq_ignore_ascii_case("receipt") {
                format!("{id}:receipt:{}", segment(given(&m.status)))
            } else {
                id.to_string()
            }
        });
        let party = |p: &Option<Party<'_>>| p.as_ref().and_then(|p| given(&p.id)).map(Arc::<str>::from);
        let external = match direction.map(str::to_ascii_lowercase).as_deref() {
            Some("outbound") => party(&channel.to),
            Some("inbound") => party(&channel.from),
            _ => party(&channel.from).or_else(|| party(&channel.to)),
        };
        let partition = given(&m.conversation_id)
            .map(Arc::from)
            .or(external)
            .or_else(|| given(&channel.id).map(Arc::from));
        let event_time = channel.time.as_deref().and_then(iso_ms_of);
        let id: Arc<str> = key.as_deref().map_or_else(|| generated_id(&source).into(), Arc::from);
        events.push(
            Event::builder(source.clone(), topic)
                .id(id)
                .key_opt(partition)
                .event_time(event_time)
                .payload(el.get().as_bytes().to_vec())
                .build(),
        );
        keys.push(key);
    }
    Ok(Pushed { events, keys })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An outbound text message as Genesys posts it to the integration's
    /// outbound notification webhook.
    const OUTBOUND: &str = r#"{"id":"5f9c1a6e2b","channel":{"id":"integration-1","platform":"Open","type":"Private","to":{"id":"customer@example.com","idType":"Email"},"from":{"nickname":"Agent","id":"integration-1","idType":"Opaque"},"time":"2024-05-01T14:02:03.120Z","messageId":"5f9c1a6e2b"},"type":"Text","text":"Hello","originatingEntity":"Human","direction":"Outbound"}"#;

    #[test]
    fn an_outbound_message_is_keyed_on_its_id_and_partitioned_by_the_customer() {
        let p = parse_open_messaging(OUTBOUND.as_bytes(), "om").unwrap();
        let e = &p.events[0];
        assert_eq!(
            (&*e.topic, &*e.id, e.key.as_deref(), e.event_time),
            (
                "openmessaging.outbound.text",
                "5f9c1a6e2b",
                Some("customer@example.com"),
                Some(1714572123120)
            )
        );
        assert_eq!(p.keys, vec![Some("5f9c1a6e2b".to_string())]);
        assert_eq!(e.json().unwrap()["text"], "Hello");
    }

    #[test]
    fn a_receipt_is_not_a_duplicate_of_its_message() {
        let receipt = r#"{"id":"5f9c1a6e2b","channel":{"id":"integration-1","to":{"id":"customer@example.com"},"time":"2024-05-01T14:02:04Z"},"type":"Receipt","status":"Delivered","isFinalReceipt":false,"direction":"Outbound"}"#;
        let p = parse_open_messaging(receipt.as_bytes(), "om").unwrap();
        assert_eq!(p.keys, vec![Some("5f9c1a6e2b:receipt:delivered".to_string())]);
        assert_eq!(&*p.events[0].topic, "openmessaging.outbound.receipt");
    }

    #[test]
    fn the_conversation_wins_as_partition_key_and_inbound_takes_the_sender() {
        let with_conv = OUTBOUND.replacen(
            "{\"id\":\"5f9c1a6e2b\",",
            "{\"id\":\"m2\",\"conversationId\":\"c-77\",",
            1,
        );
        let p = parse_open_messaging(with_conv.as_bytes(), "om").unwrap();
        assert_eq!(p.events[0].key.as_deref(), Some("c-77"));
        let inbound = r#"{"channel":{"id":"integration-1","from":{"id":"customer-9"},"to":{"id":"integration-1"},"time":"2024-05-01T14:02:03Z"},"type":"Event","direction":"Inbound"}"#;
        let a = parse_open_messaging(inbound.as_bytes(), "om").unwrap();
        let b = parse_open_messaging(inbound.as_bytes(), "om").unwrap();
        assert_eq!(
            (&*a.events[0].topic, a.events[0].key.as_deref()),
            ("openmessaging.inbound.event", Some("customer-9"))
        );
        // No id: no idempotency key, and each event its own id.
        assert_eq!(a.keys, vec![None]);
        assert_ne!(a.events[0].id, b.events[0].id);
        let bare = r#"{"channel":{"id":"integration-1"},"type":"Text"}"#;
        let p = parse_open_messaging(bare.as_bytes(), "om").unwrap();
        assert_eq!(
            (&*p.events[0].topic, p.events[0].key.as_deref(), p.events[0].event_time),
            ("openmessaging.unknown.text", Some("integration-1"), None)
        );
    }

    #[test]
    fn arrays_and_refusals() {
        let p = parse_open_messaging(format!("[{OUTBOUND},{OUTBOUND}]").as_bytes(), "om").unwrap();
        assert_eq!(p.events.len(), 2);
        let reason = |b: &str| parse_open_messaging(b.as_bytes(), "om").unwrap_err().reason();
        assert_eq!(reason("{nope"), "invalid_json");
        assert_eq!(reason("[]"), "no_events");
        // A notification envelope is not an Open Messaging message.
        assert_eq!(
            reason(r#"{"topicName":"v2.users.u1.presence","eventBody":{}}"#),
            "unrecognized_message"
        );
        assert_eq!(reason(r#"{"channel":{},"type":""}"#), "unrecognized_message");
        assert_eq!(reason(r#"{"channel":"x","type":"Text"}"#), "unrecognized_message");
        assert_eq!(reason("[1]"), "unrecognized_message");
        // Odd field values make no odd topics.
        let odd = r#"{"channel":{},"type":"Te.xt","direction":"Out bound"}"#;
        let p = parse_open_messaging(odd.as_bytes(), "om").unwrap();
        assert_eq!(&*p.events[0].topic, "openmessaging.unknown.unknown");
    }
}
