//! The emulator's notification frames against the SDK's event models:
//! every generated event over many seeds, and what a real socket carries
//! (events, system messages).

use std::time::Duration;

use serde_json::Value;

use super::{Http, Tally};
use crate::common::*;
use cxrelay::emulator::faults::SystemTopicType;
use cxrelay::emulator::notifications::traffic::sample_frames;
use cxrelay::emulator::notifications::{NotificationSettings, TrafficRequest};
use cxrelay::emulator::{EmulatorSettings, Fault};

/// The schema of an event body by its topic (`None`: not an SDK model).
pub fn schema_for(topic: &str) -> Option<&'static str> {
    let parts: Vec<&str> = topic.split('.').collect();
    Some(match parts.as_slice() {
        ["v2", "routing", "queues", _, "conversations"] => "queue_conversation_event_topic_conversation",
        ["v2", "users", _, "presence"] => "presence_event_user_presence",
        ["v2", "system", kind] if *kind != "socket_closing" => "system_message_system_message",
        ["v2", "detail", "events", "conversation", _, rest @ ..] => match rest.join(".").as_str() {
            "customer.start" => "customer_start_detail_event_topic_customer_start_event",
            "customer.end" => "customer_end_detail_event_topic_customer_end_event",
            "acd.start" => "acd_start_detail_event_topic_acd_start_event",
            "acd.end" => "acd_end_detail_event_topic_acd_end_event",
            "user.start" => "user_start_detail_event_topic_user_start_event",
            "user.end" => "user_end_detail_event_topic_user_end_event",
            "acw" => "acw_detail_event_topic_after_call_work_event",
            _ => return None,
        },
        _ => return None,
    })
}

/// Checks a frame's envelope (`topicName`, `version`, `eventBody`,
/// `metadata.CorrelationId`, nothing else) and its body against its model.
pub fn check_frame(tally: &mut Tally, text: &str) {
    let v: Value = serde_json::from_str(text).unwrap_or_else(|e| panic!("frame is not JSON ({e}): {text}"));
    let o = v.as_object().expect("a frame is an object");
    for k in o.keys() {
        assert!(
            ["topicName", "version", "eventBody", "metadata"].contains(&k.as_str()),
            "unknown envelope field {k}: {text}"
        );
    }
    let topic = v["topicName"].as_str().expect("topicName");
    if topic == "channel.metadata" {
        let m = v["eventBody"]["message"].as_str();
        assert!(matches!(m, Some("WebSocket Heartbeat" | "pong")), "{text}");
        return;
    }
    assert_eq!(v["version"], "2", "{text}");
    assert!(v["metadata"]["CorrelationId"].is_string(), "{text}");
    if let Some(schema) = schema_for(topic) {
        tally.check(schema, topic, &v["eventBody"]);
    }
}

fn topics() -> Vec<String> {
    let mut t = vec![
        "v2.routing.queues.6f1b2c3d-1111-4000-8000-000000000001.conversations".to_string(),
        "v2.routing.queues.6f1b2c3d-1111-4000-8000-000000000002.conversations".to_string(),
        "v2.users.0a5d3e2f-2222-4000-8000-000000000001.presence".to_string(),
    ];
    for phase in [
        "customer.start",
        "acd.start",
        "acd.end",
        "user.start",
        "user.end",
        "acw",
        "customer.end",
    ] {
        t.push(format!(
            "v2.detail.events.conversation.c0ffee00-0000-4000-8000-000000000001.{phase}"
        ));
    }
    t
}

#[test]
fn generated_frames_match_the_event_models_over_many_seeds() {
    let mut tally = Tally::default();
    for seed in 1..=40u64 {
        for frame in sample_frames(seed, &topics(), 300) {
            check_frame(&mut tally, &frame);
        }
    }
    let n = tally.report("generated frames, 40 seeds");
    assert!(n >= 40 * 290, "{n}");
    for schema in [
        "queue_conversation_event_topic_conversation",
        "presence_event_user_presence",
        "acw_detail_event_topic_after_call_work_event",
        "customer_end_detail_event_topic_customer_end_event",
    ] {
        assert!(tally.count(schema) > 100, "{schema}");
    }
}

/// The next text frame within `timeout`.
async fn next_text<S>(socket: &mut S, timeout: Duration) -> String
where
    S: futures_util::Stream<Item = Result<awc::ws::Frame, awc::error::WsProtocolError>> + Unpin,
{
    use futures_util::StreamExt;
    loop {
        match tokio::time::timeout(timeout, socket.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Text(b)))) => return String::from_utf8_lossy(&b).into_owned(),
            Ok(Some(Ok(_))) => continue,
            other => panic!("no text frame: {other:?}"),
        }
    }
}

#[actix::test]
async fn frames_on_a_socket_and_system_messages_match_the_models() {
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        notifications: NotificationSettings {
            heartbeat_interval: Duration::from_millis(200),
            ..NotificationSettings::default()
        },
        ..EmulatorSettings::default()
    });
    let api = Http::new(&e);
    let mut tally = Tally::default();
    let created = api.call("POST", "/api/v2/notifications/channels", Some("{}"));
    assert_eq!(created.status, 200, "{}", created.text());
    tally.check("channel", "POST channels", &created.json());
    let channel = created.json();
    let id = channel["id"].as_str().expect("id").to_string();
    let body = Value::Array(topics().iter().map(|t| serde_json::json!({ "id": t })).collect()).to_string();
    let subscribe = |api: &Http| {
        let r = api.call(
            "PUT",
            &format!("/api/v2/notifications/channels/{id}/subscriptions?ignoreErrors=true"),
            Some(&body),
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    };
    tally.check("channel_topic_entity_listing", "PUT subscriptions", &subscribe(&api));
    let (_, mut ws) = awc::Client::default()
        .ws(channel["connectUri"].as_str().expect("connectUri"))
        .max_frame_size(4 << 20)
        .connect()
        .await
        .expect("socket");
    e.state().notifications.traffic.start(
        e.state(),
        TrafficRequest {
            // Enough to go on flowing however long a resubscription takes
            // on a loaded machine (events for topics not subscribed then
            // are spent unseen).
            count: Some(100_000),
            ..TrafficRequest::default()
        },
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let mut events = 0;
    for kind in [
        SystemTopicType::SubscriptionChanged,
        SystemTopicType::NoLongerSubscribed,
        SystemTopicType::TokenRevoked,
    ] {
        // Events first, then the system message.
        let target = events + 100;
        while events < target {
            // Heartbeats come whether events do or not: a deadline, so a
            // channel that stopped carrying events fails the test.
            assert!(
                std::time::Instant::now() < deadline,
                "{events} events, waiting for {target}"
            );
            let f = next_text(&mut ws, Duration::from_secs(10)).await;
            if !f.contains("\"channel.metadata\"") {
                events += 1;
            }
            check_frame(&mut tally, &f);
        }
        e.inject(Fault::SystemMessage {
            channel: Some(id.clone()),
            message: kind,
        });
        loop {
            let f = next_text(&mut ws, Duration::from_secs(10)).await;
            check_frame(&mut tally, &f);
            if f.contains("\"v2.system.") {
                assert!(f.contains(kind.as_str()), "{f}");
                break;
            }
        }
        // Subscribed again (with a new token: one was revoked), the
        // channel flows again.
        subscribe(&Http::new(&e));
    }
    tally.report("socket frames");
    assert_eq!(tally.count("system_message_system_message"), 3);
}
