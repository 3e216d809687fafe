//! The emulator is as strict as the platform where cxrelay's notes were
//! wrong: each test shows what the old client behaviour meets now.

use std::time::Duration;

use futures_util::StreamExt;
use serde_json::json;

use crate::common::*;
use crate::contract::Http;
use cxrelay::emulator::bulk::BulkSettings;
use cxrelay::emulator::notifications::NotificationSettings;
use cxrelay::emulator::{EmulatorSettings, Fault};
use cxrelay::wire::Interval;

fn settings() -> EmulatorSettings {
    EmulatorSettings {
        requests_per_minute: 0,
        notifications: NotificationSettings {
            denied_topics: (0..3).map(|i| format!("v2.users.denied-{i}.presence")).collect(),
            ..NotificationSettings::default()
        },
        ..EmulatorSettings::default()
    }
}

fn channel(api: &Http) -> String {
    let r = api.call("POST", "/api/v2/notifications/channels", Some("{}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["id"].as_str().expect("id").to_string()
}

#[test]
fn a_denied_topic_fails_a_subscription_request_without_ignore_errors() {
    let e = emulator(settings());
    let api = Http::new(&e);
    let id = channel(&api);
    let body = json!([{"id": "v2.users.u1.presence"}, {"id": "v2.users.denied-1.presence"}]).to_string();
    let path = format!("/api/v2/notifications/channels/{id}/subscriptions");
    // The old client's request: all or nothing, and it is nothing.
    let old = api.call("PUT", &path, Some(&body));
    assert_eq!(old.status, 403, "{}", old.text());
    assert_eq!(old.json()["code"], "missing.permissions");
    assert_eq!(e.state().notifications.topics_of(&id).unwrap_or_default().len(), 0);
    // With ignoreErrors the others are subscribed, the denied one says why.
    let new = api.call("PUT", &format!("{path}?ignoreErrors=true"), Some(&body));
    assert_eq!(new.status, 200, "{}", new.text());
    let entities = new.json()["entities"].clone();
    assert_eq!(entities[0]["state"], "Permitted");
    assert_eq!(entities[1]["state"], "Rejected");
    assert!(entities[1]["rejectionReason"].is_string() && entities[1]["missingPermissions"].is_array());
    assert_eq!(
        e.state().notifications.topics_of(&id).unwrap_or_default(),
        ["v2.users.u1.presence"]
    );
}

#[test]
fn channels_are_listed_per_token() {
    let e = emulator(settings());
    let (a, b) = (Http::new(&e), Http::new(&e));
    let mine = channel(&a);
    let listed = |api: &Http, q: &str| {
        api.call("GET", &format!("/api/v2/notifications/channels{q}"), None)
            .json()
    };
    assert_eq!(listed(&a, "")["entities"][0]["id"], mine.as_str());
    // Another token of the same client does not see it (an old client that
    // relies on the listing after a token refresh finds nothing)...
    assert_eq!(listed(&b, "")["entities"].as_array().map(Vec::len), Some(0));
    // ...and across tokens it is shown without its id.
    let all = listed(&b, "?includechannels=oauthclient");
    assert_eq!(all["entities"].as_array().map(Vec::len), Some(1));
    assert!(all["entities"][0].get("id").is_none());
}

#[test]
fn an_invalid_token_answers_bad_credentials_and_rate_limits_are_per_token() {
    let mut s = settings();
    s.requests_per_minute = 3;
    let e = emulator(s);
    let r = request(
        e.addr(),
        "GET",
        "/api/v2/notifications/channels",
        &[("Authorization", "Bearer stale")],
        b"",
    )
    .expect("request");
    assert_eq!((r.status, r.json()["code"].as_str()), (401, Some("bad.credentials")));
    let (a, b) = (Http::new(&e), Http::new(&e));
    for _ in 0..3 {
        assert_eq!(a.call("GET", "/api/v2/notifications/channels", None).status, 200);
    }
    assert_eq!(a.call("GET", "/api/v2/notifications/channels", None).status, 429);
    // Another token has its own window.
    assert_eq!(b.call("GET", "/api/v2/notifications/channels", None).status, 200);
}

#[test]
fn login_api_streaming_and_downloads_are_distinct_hosts() {
    let mut s = settings();
    s.bulk.exports = vec![serde_json::from_value(json!({"id": "history", "records": 3})).expect("export")];
    let e = emulator(s);
    let hosts = e.hosts();
    assert!([hosts.login, hosts.streaming, hosts.downloads]
        .iter()
        .all(|h| h.port() != hosts.api.port()));
    // A token asked for on the API host (as an old client configured with
    // one URL would) is not found there.
    let r = request(
        e.addr(),
        "POST",
        "/oauth/token",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"grant_type=client_credentials",
    )
    .expect("request");
    assert_eq!(r.status, 404);
    let api = Http::new(&e);
    let url = api
        .call("GET", "/api/v2/downloads/history?issueRedirect=false", None)
        .json()["url"]
        .as_str()
        .expect("url")
        .to_string();
    let path = url
        .split_once(&hosts.downloads.to_string())
        .expect("on the download host")
        .1;
    // The signed URL carries its own authorisation: sent with the bearer
    // token, the download host refuses it and notes the leak.
    let leaked = request(
        e.downloads_addr(),
        "GET",
        path,
        &[("Authorization", &format!("Bearer {}", emulator_token(&e)))],
        b"",
    )
    .expect("request");
    assert_eq!(leaked.status, 400, "{}", leaked.text());
    assert_eq!(e.state().log.leaks().len(), 1);
    assert_eq!(
        request(e.downloads_addr(), "GET", path, &[], b"")
            .expect("request")
            .status,
        200
    );
    // The API host does not serve downloads.
    assert_eq!(request(e.addr(), "GET", path, &[], b"").expect("request").status, 404);
}

#[actix::test]
async fn a_second_connect_cuts_the_first_at_once() {
    let e = emulator(settings());
    let api = Http::new(&e);
    let created = api.call("POST", "/api/v2/notifications/channels", Some("{}")).json();
    let uri = created["connectUri"].as_str().expect("connectUri").to_string();
    assert!(uri.contains(&e.streaming_addr().to_string()), "{uri}");
    let connect = || async {
        awc::Client::default()
            .ws(uri.as_str())
            .connect()
            .await
            .expect("socket")
            .1
    };
    let mut first = connect().await;
    let _second = connect().await;
    let started = std::time::Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(2), first.next()).await {
            Ok(Some(Ok(awc::ws::Frame::Close(reason)))) => {
                assert_eq!(reason.map(|r| u16::from(r.code)), Some(1000));
                break;
            }
            Ok(Some(Ok(_))) => continue,
            other => panic!("the first socket was not cut: {other:?}"),
        }
    }
    // The old emulator let it drain for 5 s; the platform does not.
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[test]
fn a_job_returns_every_conversation_active_in_its_interval_open_until_it_ends() {
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        bulk: BulkSettings {
            conversations_per_hour: 600.0,
            long_conversations: 0.3,
            job_queued: Duration::from_millis(50),
            job_pending: Duration::from_millis(50),
            ..BulkSettings::default()
        },
        ..EmulatorSettings::default()
    });
    let api = Http::new(&e);
    let records = |w: Interval| -> Vec<serde_json::Value> {
        let body = json!({"interval": w.to_string()}).to_string();
        let job = api
            .call("POST", "/api/v2/analytics/conversations/details/jobs", Some(&body))
            .json()["jobId"]
            .as_str()
            .expect("jobId")
            .to_string();
        let status = format!("/api/v2/analytics/conversations/details/jobs/{job}");
        wait_until("fulfilled", Duration::from_secs(10), || {
            api.call("GET", &status, None).json()["state"] == "FULFILLED"
        });
        api.call("GET", &format!("{status}/results"), None).json()["conversations"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    };
    let first = Interval::parse("2024-05-01T10:00:00Z/2024-05-01T10:15:00Z").expect("interval");
    let second = Interval::new(first.end_ms, first.end_ms + 900_000);
    let (a, b) = (records(first), records(second));
    let open_in_first: Vec<&serde_json::Value> = a.iter().filter(|c| c.get("conversationEnd").is_none()).collect();
    assert!(!open_in_first.is_empty());
    // An old client delivering every record of every window delivers these
    // twice, once without their end.
    let again = open_in_first
        .iter()
        .filter(|c| b.iter().any(|d| d["conversationId"] == c["conversationId"]))
        .count();
    assert_eq!(
        again,
        open_in_first.len(),
        "an open conversation comes back in the next window"
    );
    let started_before = b
        .iter()
        .filter(|c| {
            cxrelay::wire::parse_iso_ms(c["conversationStart"].as_str().unwrap_or("")).unwrap_or(i64::MAX)
                < second.start_ms
        })
        .count();
    assert!(
        started_before > 0,
        "the second window holds conversations started in the first"
    );
}

#[test]
fn system_messages_stop_a_channel_until_it_subscribes_again() {
    let e = emulator(settings());
    let api = Http::new(&e);
    let id = channel(&api);
    let body = json!([{"id": "v2.users.u1.presence"}]).to_string();
    let path = format!("/api/v2/notifications/channels/{id}/subscriptions?ignoreErrors=true");
    assert_eq!(api.call("PUT", &path, Some(&body)).status, 200);
    e.inject(Fault::SystemMessage {
        channel: Some(id.clone()),
        message: cxrelay::emulator::faults::SystemTopicType::NoLongerSubscribed,
    });
    // Applied with the next request that touches the channels.
    assert_eq!(api.call("GET", "/api/v2/notifications/channels", None).status, 200);
    let _ = api.call("HEAD", &format!("/api/v2/notifications/channels/{id}"), None);
    assert!(
        e.state().notifications.topics_of(&id).unwrap_or_default().is_empty(),
        "nothing flows: an old client that ingests the message and carries on gets nothing more"
    );
    assert_eq!(api.call("PUT", &path, Some(&body)).status, 200);
    assert_eq!(e.state().notifications.topics_of(&id).unwrap_or_default().len(), 1);
}
