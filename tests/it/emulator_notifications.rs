//! Conformance of the emulator's notifications API with genesys-api.md §2:
//! the REST shapes (status codes, fields, headers), the limits, and the
//! socket behaviours, over real HTTP and WebSocket on loopback.

use std::time::{Duration, Instant};

use crate::common::{emulator, emulator_token, eventually};
use actix_web::http::StatusCode;
use awc::ws::{Frame, Message};
use cxrelay::emulator::notifications::{NotificationSettings, TrafficRequest};
use cxrelay::emulator::{EmulatorHandle, EmulatorSettings, Fault};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

/// An awc WebSocket (its concrete type lives in a crate cxrelay does not
/// name).
trait Socket:
    futures_util::Stream<Item = Result<Frame, awc::error::WsProtocolError>>
    + futures_util::Sink<Message, Error = awc::error::WsProtocolError>
    + Unpin
{
}
impl<T> Socket for T where
    T: futures_util::Stream<Item = Result<Frame, awc::error::WsProtocolError>>
        + futures_util::Sink<Message, Error = awc::error::WsProtocolError>
        + Unpin
{
}

fn settings(n: NotificationSettings) -> EmulatorSettings {
    EmulatorSettings {
        requests_per_minute: 0,
        notifications: n,
        ..EmulatorSettings::default()
    }
}

fn fast() -> NotificationSettings {
    NotificationSettings {
        heartbeat_interval: Duration::from_millis(200),
        ..NotificationSettings::default()
    }
}

struct Api {
    http: awc::Client,
    base: String,
    token: String,
}

impl Api {
    async fn new(e: &EmulatorHandle) -> Api {
        let http = awc::Client::default();
        Api {
            http,
            base: e.url(),
            token: emulator_token(e),
        }
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, awc::http::header::HeaderMap, Value) {
        let req = self
            .http
            .request(method.parse().unwrap(), format!("{}{path}", self.base))
            .insert_header(("authorization", format!("Bearer {}", self.token)));
        let mut res = match body {
            Some(b) => req.send_json(&b).await.unwrap(),
            None => req.send().await.unwrap(),
        };
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.body().limit(64 << 20).await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, v)
    }

    async fn channel(&self) -> Value {
        let (status, _, v) = self.call("POST", "/api/v2/notifications/channels", None).await;
        assert_eq!(status, 200, "{v}");
        v
    }

    async fn subscribe(&self, id: &str, topics: &[String]) -> Value {
        let body: Vec<Value> = topics.iter().map(|t| json!({ "id": t })).collect();
        let (status, _, v) = self
            .call(
                "PUT",
                &format!("/api/v2/notifications/channels/{id}/subscriptions?ignoreErrors=true"),
                Some(json!(body)),
            )
            .await;
        assert_eq!(status, 200, "{v}");
        v
    }
}

async fn connect(uri: &str) -> impl Socket {
    let (_, framed) = awc::Client::default()
        .ws(uri)
        .max_frame_size(4 << 20)
        .connect()
        .await
        .unwrap_or_else(|e| panic!("connecting {uri}: {e}"));
    framed
}

/// The next frame within `timeout`, `None` when the stream ended.
async fn next(socket: &mut impl Socket, timeout: Duration) -> Option<Frame> {
    match tokio::time::timeout(timeout, socket.next()).await {
        Ok(Some(Ok(f))) => Some(f),
        Ok(Some(Err(e))) => panic!("protocol error: {e}"),
        Ok(None) => None,
        Err(_) => panic!("no frame within {timeout:?}"),
    }
}

fn text(f: &Frame) -> Option<Value> {
    match f {
        Frame::Text(b) => serde_json::from_slice(b).ok(),
        _ => None,
    }
}

/// Waits until the sockets of channel `id` have taken `n` fault orders in
/// all: what they send next follows the fault.
async fn orders_taken(e: &EmulatorHandle, id: &str, n: u64) {
    eventually("the socket took the fault", || {
        let taken = e.state().notifications.record(id).map_or(0, |r| r.orders_taken);
        async move { taken >= n }
    })
    .await;
}

/// Reads until a text frame `pick` accepts, within `timeout`.
async fn until(socket: &mut impl Socket, timeout: Duration, pick: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match next(socket, left).await {
            Some(f) => {
                if let Some(v) = text(&f) {
                    if pick(&v) {
                        return v;
                    }
                }
            }
            None => panic!("socket ended while waiting"),
        }
    }
}

fn queues(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("v2.routing.queues.q{i}.conversations"))
        .collect()
}

#[actix::test]
async fn a_channel_is_created_with_its_connect_uri_and_expiry() {
    let e = emulator(settings(fast()));
    let api = Api::new(&e).await;
    let (status, headers, v) = api.call("POST", "/api/v2/notifications/channels", None).await;
    assert_eq!(status, 200);
    assert!(headers.contains_key("inin-correlation-id"));
    assert!(headers.contains_key("inin-ratelimit-count"));
    let id = v["id"].as_str().unwrap();
    assert!(id.starts_with("streaming-0-"), "{id}");
    let uri = v["connectUri"].as_str().unwrap();
    assert_eq!(uri, format!("ws://{}/channels/{id}", e.streaming_addr()));
    let expires = time::OffsetDateTime::parse(
        v["expires"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    let left = expires - time::OffsetDateTime::now_utc();
    assert!(
        left > time::Duration::hours(23) && left <= time::Duration::hours(24),
        "{left}"
    );
    let (status, _, list) = api.call("GET", "/api/v2/notifications/channels", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["entities"][0]["id"], id);
    // HEAD: 200 while valid, 404 once gone.
    let (status, _, body) = api
        .call("HEAD", &format!("/api/v2/notifications/channels/{id}"), None)
        .await;
    assert_eq!((status.as_u16(), body), (200, Value::Null));
    let (status, _, _) = api
        .call("HEAD", "/api/v2/notifications/channels/streaming-0-nope", None)
        .await;
    assert_eq!(status, 404);
    // Without a token: 401 with Genesys's body.
    let res = awc::Client::default()
        .post(format!("{}/api/v2/notifications/channels", e.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
}

#[actix::test]
async fn subscriptions_replace_add_list_and_remove() {
    let e = emulator(settings(NotificationSettings {
        denied_topics: vec!["v2.analytics.>".into()],
        ..fast()
    }));
    let api = Api::new(&e).await;
    let ch = api.channel().await;
    let id = ch["id"].as_str().unwrap();
    let path = format!("/api/v2/notifications/channels/{id}/subscriptions");
    // Without ignoreErrors one topic the client may not have fails the
    // whole request, as on the platform, and nothing is subscribed.
    let (status, _, v) = api
        .call(
            "PUT",
            &path,
            Some(json!([{"id": "v2.users.u1.presence"}, {"id": "v2.analytics.queues.q1.observations"}])),
        )
        .await;
    assert_eq!(
        (status.as_u16(), v["code"].as_str()),
        (403, Some("missing.permissions")),
        "{v}"
    );
    assert_eq!(api.call("GET", &path, None).await.2["entities"], json!([]));
    let v = api
        .subscribe(
            id,
            &[
                "v2.users.u1.presence".to_string(),
                "v2.analytics.queues.q1.observations".to_string(),
                "not-a-topic".to_string(),
            ],
        )
        .await;
    assert_eq!(
        v["entities"],
        json!([
            {"id": "v2.users.u1.presence", "state": "Permitted"},
            {"id": "v2.analytics.queues.q1.observations", "state": "Rejected",
             "rejectionReason": "missing.permissions: this OAuth client may not subscribe to this topic",
             "missingPermissions": ["analytics:conversationDetail:view"]},
            {"id": "not-a-topic", "state": "Rejected",
             "rejectionReason": "invalid.topic: `not-a-topic` is not a notification topic"},
        ])
    );
    let (status, _, v) = api
        .call("POST", &path, Some(json!([{"id": "v2.users.u2.presence"}])))
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["entities"][0]["state"], "Permitted");
    let (_, _, v) = api.call("GET", &path, None).await;
    let topics: Vec<&str> = v["entities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(topics, ["v2.users.u1.presence", "v2.users.u2.presence"]);
    let (status, _, _) = api.call("DELETE", &path, None).await;
    assert_eq!(status, 204);
    let (_, _, v) = api.call("GET", &path, None).await;
    assert_eq!(v["entities"], json!([]));
    // A body that is not a topic list is a 400 with Genesys's body.
    let (status, _, v) = api.call("PUT", &path, Some(json!({"id": "x"}))).await;
    assert_eq!((status.as_u16(), v["code"].as_str()), (400, Some("bad.request")));
    let (status, _, v) = api
        .call(
            "PUT",
            "/api/v2/notifications/channels/streaming-0-gone/subscriptions",
            Some(json!([])),
        )
        .await;
    assert_eq!((status.as_u16(), v["code"].as_str()), (404, Some("not.found")));
}

#[actix::test]
async fn more_than_a_thousand_topics_on_a_channel_is_a_400() {
    let e = emulator(settings(fast()));
    let api = Api::new(&e).await;
    let ch = api.channel().await;
    let id = ch["id"].as_str().unwrap();
    api.subscribe(id, &queues(1000)).await;
    let body: Vec<Value> = queues(1001).iter().map(|t| json!({ "id": t })).collect();
    let path = format!("/api/v2/notifications/channels/{id}/subscriptions");
    let (status, _, v) = api.call("PUT", &path, Some(json!(body))).await;
    assert_eq!(status, 400);
    assert_eq!(v["status"], 400);
    assert!(v["message"].as_str().unwrap().contains("at most 1000 topics"), "{v}");
    assert!(v["contextId"].is_string());
    let (status, _, _) = api
        .call("POST", &path, Some(json!([{"id": "v2.users.extra.presence"}])))
        .await;
    assert_eq!(status, 400);
    // The channel kept its 1000 topics.
    assert_eq!(e.state().notifications.topics_of(id).unwrap().len(), 1000);
}

#[actix::test]
async fn the_twenty_first_channel_evicts_the_oldest_and_closes_its_socket() {
    let e = emulator(settings(fast()));
    let api = Api::new(&e).await;
    let first = api.channel().await;
    let mut socket = connect(first["connectUri"].as_str().unwrap()).await;
    let mut ids = vec![first["id"].as_str().unwrap().to_string()];
    for _ in 1..20 {
        ids.push(api.channel().await["id"].as_str().unwrap().to_string());
    }
    // Idle channels go first: the 21st evicts the second (no socket).
    api.channel().await;
    let now = e.state().notifications.channel_ids();
    assert_eq!(now.len(), 20);
    assert!(now.contains(&ids[0]) && !now.contains(&ids[1]));
    // Once every older channel is connected... evict the connected oldest.
    for id in &ids[2..] {
        let (s, _, _) = api
            .call(
                "DELETE",
                &format!("/api/v2/notifications/channels/{id}/subscriptions"),
                None,
            )
            .await;
        assert_eq!(s, 204);
    }
    let mut sockets = Vec::new();
    for id in e.state().notifications.channel_ids() {
        if id != ids[0] {
            sockets.push(connect(&format!("ws://{}/channels/{id}", e.streaming_addr())).await);
        }
    }
    api.channel().await;
    assert!(!e.state().notifications.channel_ids().contains(&ids[0]));
    let closed = loop {
        match next(&mut socket, Duration::from_secs(5)).await {
            Some(Frame::Close(reason)) => break reason,
            Some(_) => continue,
            None => panic!("no close frame"),
        }
    };
    assert_eq!(closed.map(|r| u16::from(r.code)), Some(1008));
    let (status, _, _) = api
        .call("HEAD", &format!("/api/v2/notifications/channels/{}", ids[0]), None)
        .await;
    assert_eq!(status, 404);
}

#[actix::test]
async fn sockets_send_heartbeats_and_answer_pings() {
    let e = emulator(settings(fast()));
    let api = Api::new(&e).await;
    let ch = api.channel().await;
    let mut socket = connect(ch["connectUri"].as_str().unwrap()).await;
    let hb = until(&mut socket, Duration::from_secs(5), |_| true).await;
    assert_eq!(
        hb,
        json!({"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}})
    );
    socket
        .send(Message::Text(r#"{"message":"ping"}"#.into()))
        .await
        .unwrap();
    let pong = until(&mut socket, Duration::from_secs(5), |v| {
        v["eventBody"]["message"] == "pong"
    })
    .await;
    assert_eq!(
        pong,
        json!({"topicName": "channel.metadata", "eventBody": {"message": "pong"}})
    );
    // An unknown channel is refused at the handshake.
    let err = awc::Client::default()
        .ws(format!("ws://{}/channels/streaming-0-nope", e.streaming_addr()))
        .connect()
        .await
        .err()
        .unwrap();
    assert!(
        matches!(err, awc::error::WsClientError::InvalidResponseStatus(s) if s == 404),
        "{err}"
    );
}

#[actix::test]
async fn a_second_socket_replaces_the_first() {
    let e = emulator(settings(fast()));
    let api = Api::new(&e).await;
    let ch = api.channel().await;
    let uri = ch["connectUri"].as_str().unwrap();
    let mut first = connect(uri).await;
    let mut second = connect(uri).await;
    let closed = loop {
        match next(&mut first, Duration::from_secs(10)).await {
            Some(Frame::Close(r)) => break r,
            Some(_) => continue,
            None => panic!("no close frame"),
        }
    };
    assert_eq!(closed.map(|r| u16::from(r.code)), Some(1000));
    until(&mut second, Duration::from_secs(5), |v| {
        v["topicName"] == "channel.metadata"
    })
    .await;
}

#[actix::test]
async fn traffic_flows_on_subscribed_topics_and_is_recorded() {
    let e = emulator(settings(fast()));
    let api = Api::new(&e).await;
    let ch = api.channel().await;
    let id = ch["id"].as_str().unwrap().to_string();
    let topics = vec![
        "v2.routing.queues.q1.conversations".to_string(),
        "v2.detail.events.conversation.c1.customer.start".to_string(),
        "v2.users.u1.presence".to_string(),
    ];
    api.subscribe(&id, &topics).await;
    let mut socket = connect(ch["connectUri"].as_str().unwrap()).await;
    let n = &e.state().notifications;
    n.traffic.start(
        e.state(),
        TrafficRequest {
            rate: Some(2000.0),
            count: Some(300),
            ..TrafficRequest::default()
        },
    );
    let mut ids = Vec::new();
    while ids.len() < 300 {
        let v = until(&mut socket, Duration::from_secs(10), |v| {
            v["topicName"] != "channel.metadata"
        })
        .await;
        assert!(topics.iter().any(|t| v["topicName"] == *t), "{v}");
        // The client finds the partition key of every emulated event.
        let frame = v.to_string();
        let key = cxrelay::genesys::notification::Frame::parse(&frame)
            .unwrap()
            .derived()
            .key;
        assert!(key.is_some(), "{v}");
        ids.push(v["metadata"]["CorrelationId"].as_str().unwrap().to_string());
    }
    let record = n.record(&id).unwrap();
    assert_eq!(record.delivered_count, 300);
    assert_eq!(record.missed_count, 0);
    let sent: Vec<String> = record
        .delivered
        .iter()
        .map(|i| n.traffic.correlation_id(e.state().settings.seed, record.run, *i))
        .collect();
    assert_eq!(sent, ids);
    // The same over HTTP.
    let (status, _, v) = api
        .call("GET", &format!("/_emulator/traffic/channels/{id}"), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(v["delivered_ids"].as_array().unwrap().len(), 300);
    let (_, _, v) = api.call("GET", "/_emulator/traffic", None).await;
    assert_eq!(v["traffic"]["emitted"], 300);
}

#[actix::test]
async fn events_for_a_channel_without_a_socket_are_missed() {
    let e = emulator(settings(fast()));
    let api = Api::new(&e).await;
    let ch = api.channel().await;
    let id = ch["id"].as_str().unwrap().to_string();
    api.subscribe(&id, &queues(3)).await;
    let n = &e.state().notifications;
    n.traffic.start(
        e.state(),
        TrafficRequest {
            rate: Some(5000.0),
            count: Some(100),
            ..TrafficRequest::default()
        },
    );
    crate::common::wait_until("traffic ran", Duration::from_secs(10), || !n.traffic.status().running);
    let r = n.record(&id).unwrap();
    assert_eq!((r.delivered_count, r.missed_count), (0, 100));
}

async fn close_of(socket: &mut impl Socket) -> Option<u16> {
    loop {
        match next(socket, Duration::from_secs(10)).await {
            Some(Frame::Close(r)) => return r.map(|r| u16::from(r.code)),
            Some(_) => continue,
            None => return None,
        }
    }
}

#[actix::test]
async fn socket_faults_close_drop_and_expire() {
    let e = emulator(settings(fast()));
    let api = Api::new(&e).await;
    for (fault, expected) in [
        (
            Fault::CloseSocket {
                channel: None,
                code: 1011,
            },
            Some(1011),
        ),
        (Fault::DropSocket { channel: None }, None),
        (Fault::ExpireChannel { channel: None }, Some(1008)),
    ] {
        let ch = api.channel().await;
        let id = ch["id"].as_str().unwrap().to_string();
        let mut socket = connect(ch["connectUri"].as_str().unwrap()).await;
        until(&mut socket, Duration::from_secs(5), |_| true).await;
        e.inject(fault.clone());
        assert_eq!(close_of(&mut socket).await, expected, "{fault:?}");
        let head = api
            .call("HEAD", &format!("/api/v2/notifications/channels/{id}"), None)
            .await
            .0;
        let gone = matches!(fault, Fault::ExpireChannel { .. });
        assert_eq!(head.as_u16(), if gone { 404 } else { 200 }, "{fault:?}");
    }
}

#[actix::test]
async fn a_silenced_socket_sends_nothing_and_socket_closing_announces_the_close() {
    let e = emulator(settings(fast()));
    let api = Api::new(&e).await;
    let ch = api.channel().await;
    let id = ch["id"].as_str().unwrap().to_string();
    let mut socket = connect(ch["connectUri"].as_str().unwrap()).await;
    until(&mut socket, Duration::from_secs(5), |_| true).await;
    e.inject(Fault::SilenceSocket {
        channel: Some(id.clone()),
    });
    // Once the socket has taken the fault (frames sent before it may still
    // be on their way), nothing arrives, not even a pong.
    orders_taken(&e, &id, 1).await;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), socket.next()).await {}
    socket
        .send(Message::Text(r#"{"message":"ping"}"#.into()))
        .await
        .unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(800), socket.next())
        .await
        .is_err());

    let ch = api.channel().await;
    let mut socket = connect(ch["connectUri"].as_str().unwrap()).await;
    e.inject(Fault::SocketClosing {
        channel: ch["id"].as_str().map(str::to_string),
        grace_ms: 300,
    });
    let t = Instant::now();
    let v = until(&mut socket, Duration::from_secs(5), |v| {
        v["topicName"] == "v2.system.socket_closing"
    })
    .await;
    assert!(v["eventBody"]["message"].is_string());
    assert_eq!(close_of(&mut socket).await, Some(1001));
    assert!(t.elapsed() >= Duration::from_millis(250));
}

#[actix::test]
async fn malformed_and_fragmented_frames_on_demand() {
    let e = emulator(settings(NotificationSettings {
        oversized_frame_bytes: 100_000,
        fragment_bytes: 100,
        ..fast()
    }));
    let api = Api::new(&e).await;
    let ch = api.channel().await;
    let id = ch["id"].as_str().unwrap().to_string();
    api.subscribe(&id, &queues(1)).await;
    let mut socket = connect(ch["connectUri"].as_str().unwrap()).await;
    e.inject(Fault::MalformedFrames {
        channel: None,
        count: 3,
    });
    let mut bad_json = 0;
    let mut no_topic = 0;
    let mut oversized = 0;
    while bad_json + no_topic + oversized < 3 {
        match next(&mut socket, Duration::from_secs(5)).await.unwrap() {
            Frame::Text(b) => match serde_json::from_slice::<Value>(&b) {
                Err(_) => bad_json += 1,
                Ok(v) if v.get("topicName").is_none() => no_topic += 1,
                Ok(_) if b.len() >= 100_000 => oversized += 1,
                Ok(_) => {}
            },
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((bad_json, no_topic, oversized), (1, 1, 1));
    let taken = e.state().notifications.record(&id).unwrap().orders_taken;
    e.inject(Fault::FragmentFrames {
        channel: None,
        count: 2,
    });
    orders_taken(&e, &id, taken + 1).await;
    e.state().notifications.traffic.start(
        e.state(),
        TrafficRequest {
            count: Some(3),
            ..TrafficRequest::default()
        },
    );
    let mut assembled: Option<Vec<u8>> = None;
    let mut whole = Vec::new();
    let mut fragmented = 0;
    while whole.len() < 3 {
        match next(&mut socket, Duration::from_secs(5)).await.unwrap() {
            Frame::Continuation(actix_ws::Item::FirstText(b)) => assembled = Some(b.to_vec()),
            Frame::Continuation(actix_ws::Item::Continue(b)) => assembled.as_mut().unwrap().extend_from_slice(&b),
            Frame::Continuation(actix_ws::Item::Last(b)) => {
                let mut a = assembled.take().unwrap();
                a.extend_from_slice(&b);
                fragmented += 1;
                whole.push(serde_json::from_slice::<Value>(&a).unwrap());
            }
            Frame::Text(b) => {
                let v: Value = serde_json::from_slice(&b).unwrap();
                if v["topicName"] != "channel.metadata" {
                    whole.push(v);
                }
            }
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(fragmented, 2);
    assert!(whole
        .iter()
        .all(|v| v["topicName"] == "v2.routing.queues.q0.conversations"));
    let r = e.state().notifications.record(&id).unwrap();
    assert_eq!((r.malformed_sent, r.fragmented_sent, r.delivered_count), (3, 2, 3));
}

#[actix::test]
async fn a_channel_expires_unless_its_subscriptions_are_put_again() {
    let e = emulator(settings(NotificationSettings {
        channel_lifetime: Duration::from_millis(1500),
        ..fast()
    }));
    let api = Api::new(&e).await;
    let kept = api.channel().await;
    let kept_id = kept["id"].as_str().unwrap().to_string();
    let lapsed = api.channel().await;
    let lapsed_id = lapsed["id"].as_str().unwrap().to_string();
    let mut socket = connect(lapsed["connectUri"].as_str().unwrap()).await;
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        api.subscribe(&kept_id, &queues(1)).await;
    }
    assert_eq!(close_of(&mut socket).await, Some(1008));
    let head = |id: String| {
        let api = &api;
        async move {
            api.call("HEAD", &format!("/api/v2/notifications/channels/{id}"), None)
                .await
                .0
        }
    };
    assert_eq!(head(kept_id).await, 200);
    assert_eq!(head(lapsed_id).await, 404);
}
