//! The emulator's REST answers against the SDK's models: channels and
//! subscriptions, analytics jobs (every state, every page, records over
//! many seeds, open and complete), the query, recording batches, download
//! URLs and error bodies.

use std::time::Duration;

use serde_json::{json, Value};

use super::{Http, Tally};
use crate::common::*;
use cxrelay::emulator::notifications::NotificationSettings;
use cxrelay::emulator::records::{Durations, Timeline};
use cxrelay::emulator::settings::bulk::{BulkSettings, ExportSpec};
use cxrelay::emulator::{EmulatorSettings, Fault};
use cxrelay::wire::Interval;

const JOBS: &str = "/api/v2/analytics/conversations/details/jobs";

fn settings() -> EmulatorSettings {
    EmulatorSettings {
        requests_per_minute: 0,
        notifications: NotificationSettings {
            denied_topics: vec!["v2.analytics.>".into()],
            ..NotificationSettings::default()
        },
        bulk: BulkSettings {
            conversations_per_hour: 3600.0,
            long_conversations: 0.1,
            job_queued: Duration::from_millis(100),
            job_pending: Duration::from_millis(100),
            recording_delay: Duration::from_millis(100),
            data_lag: Duration::from_secs(60),
            exports: vec![
                serde_json::from_value::<ExportSpec>(json!({"id": "history", "records": 10})).expect("export spec"),
            ],
            ..BulkSettings::default()
        },
        ..EmulatorSettings::default()
    }
}

#[test]
fn records_match_the_analytics_models_over_many_seeds_open_and_complete() {
    let mut tally = Tally::default();
    let window = Interval::parse("2024-05-01T10:00:00Z/2024-05-01T10:15:00Z").expect("interval");
    for seed in 1..=30u64 {
        let tl = Timeline::with_durations(
            seed,
            1200.0,
            Durations {
                long_share: 0.2,
                long_max_ms: 3 * 3_600_000,
            },
        );
        let active = tl.active(window, i64::MAX);
        let mut conversations = Vec::new();
        for k in 0..active.len() {
            let record: Value = serde_json::from_str(&tl.record_as_of(active.index(k), active.as_of_ms)).expect("JSON");
            conversations.push(record);
        }
        assert!(
            conversations.iter().any(|c| c.get("conversationEnd").is_none()),
            "some open"
        );
        tally.check(
            "analytics_conversation_async_query_response",
            "a results page",
            &json!({"conversations": conversations, "cursor": "c", "dataAvailabilityDate": "2024-05-02T00:00:00.000Z"}),
        );
    }
    tally.report("analytics records, 30 seeds");
}

#[test]
fn every_rest_answer_matches_its_model() {
    let e = emulator(settings());
    let api = Http::new(&e);
    let mut t = Tally::default();

    // Notifications.
    let r = api.call("POST", "/api/v2/notifications/channels", Some("{}"));
    t.check("channel", "POST channels", &r.json());
    let id = r.json()["id"].as_str().expect("id").to_string();
    t.check(
        "channel_entity_listing",
        "GET channels",
        &api.call("GET", "/api/v2/notifications/channels", None).json(),
    );
    let topics = json!([{"id": "v2.users.u1.presence"}, {"id": "v2.analytics.queues.q1.observations"}]).to_string();
    let subs = format!("/api/v2/notifications/channels/{id}/subscriptions");
    for method in ["PUT", "POST"] {
        let r = api.call(method, &format!("{subs}?ignoreErrors=true"), Some(&topics));
        assert_eq!(r.status, 200, "{}", r.text());
        t.check("channel_topic_entity_listing", "subscriptions, ignoreErrors", &r.json());
        let r = api.call(method, &subs, Some(&topics));
        assert!((400..500).contains(&r.status), "{}", r.text());
        t.check("error_body", "subscriptions refused", &r.json());
    }
    t.check(
        "channel_topic_entity_listing",
        "GET subscriptions",
        &api.call("GET", &subs, None).json(),
    );
    t.check(
        "error_body",
        "unknown channel",
        &api.call("GET", "/api/v2/notifications/channels/nope/subscriptions", None)
            .json(),
    );
    let bad_token = request(
        e.addr(),
        "GET",
        "/api/v2/notifications/channels",
        &[("Authorization", "Bearer nope")],
        b"",
    )
    .expect("request");
    assert_eq!(bad_token.status, 401);
    assert_eq!(bad_token.json()["code"], "bad.credentials");
    t.check("error_body", "bad token", &bad_token.json());

    // Analytics jobs: every state, every page.
    t.check(
        "data_availability_response",
        "availability",
        &api.call("GET", &format!("{JOBS}/availability"), None).json(),
    );
    let now = cxrelay_actors::event::now_ms();
    let interval = Interval::new(now - 4 * 3_600_000, now - 3 * 3_600_000).to_string();
    let submit = |api: &Http| {
        let r = api.call(
            "POST",
            JOBS,
            Some(&json!({"interval": interval, "order": "asc"}).to_string()),
        );
        assert_eq!(r.status, 202, "{}", r.text());
        r.json()
    };
    let submitted = submit(&api);
    t.check("async_query_response", "job submitted", &submitted);
    let job = submitted["jobId"].as_str().expect("jobId").to_string();
    t.check(
        "async_query_status",
        "job queued",
        &api.call("GET", &format!("{JOBS}/{job}"), None).json(),
    );
    wait_until("job fulfilled", Duration::from_secs(10), || {
        api.call("GET", &format!("{JOBS}/{job}"), None).json()["state"] == "FULFILLED"
    });
    t.check(
        "async_query_status",
        "job fulfilled",
        &api.call("GET", &format!("{JOBS}/{job}"), None).json(),
    );
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("{JOBS}/{job}/results?pageSize=200&cursor={c}"),
            None => format!("{JOBS}/{job}/results?pageSize=200"),
        };
        let page = api.call("GET", &path, None).json();
        t.check("analytics_conversation_async_query_response", "results page", &page);
        match page["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    e.inject(Fault::FailJob {
        count: 1,
        message: "injected".into(),
    });
    let failed = submit(&api)["jobId"].as_str().expect("jobId").to_string();
    wait_until("job failed", Duration::from_secs(10), || {
        api.call("GET", &format!("{JOBS}/{failed}"), None).json()["state"] == "FAILED"
    });
    t.check(
        "async_query_status",
        "job failed",
        &api.call("GET", &format!("{JOBS}/{failed}"), None).json(),
    );
    e.inject(Fault::ExpireJob { job: Some(job.clone()) });
    t.check(
        "async_query_status",
        "job expired",
        &api.call("GET", &format!("{JOBS}/{job}"), None).json(),
    );
    t.check(
        "error_body",
        "results of an expired job",
        &api.call("GET", &format!("{JOBS}/{job}/results"), None).json(),
    );
    let r = api.call(
        "POST",
        JOBS,
        Some(r#"{"interval":"2024-05-01T00:00:00Z/2024-05-02T00:00:00Z","extra":1}"#),
    );
    assert_eq!(r.status, 400, "unknown fields are refused: {}", r.text());
    t.check("error_body", "job body refused", &r.json());

    // The synchronous query.
    let q = api.call(
        "POST",
        "/api/v2/analytics/conversations/details/query",
        Some(&json!({"interval": interval, "paging": {"pageSize": 50, "pageNumber": 1}}).to_string()),
    );
    assert_eq!(q.status, 200, "{}", q.text());
    t.check("analytics_conversation_query_response", "query", &q.json());

    // Recordings and downloads.
    let batch = api.call(
        "POST",
        "/api/v2/recording/batchrequests",
        Some(&json!({"batchDownloadRequestList": [{"conversationId": "c1", "recordingId": "r1"}]}).to_string()),
    );
    assert!(batch.status < 300, "{}", batch.text());
    t.check("batch_download_job_submission_result", "batch submitted", &batch.json());
    let bid = batch.json()["id"].as_str().expect("id").to_string();
    t.check(
        "batch_download_job_status_result",
        "batch in progress",
        &api.call("GET", &format!("/api/v2/recording/batchrequests/{bid}"), None)
            .json(),
    );
    wait_until("batch completed", Duration::from_secs(10), || {
        api.call("GET", &format!("/api/v2/recording/batchrequests/{bid}"), None)
            .json()["status"]
            == "Completed"
    });
    t.check(
        "batch_download_job_status_result",
        "batch completed",
        &api.call("GET", &format!("/api/v2/recording/batchrequests/{bid}"), None)
            .json(),
    );
    t.check(
        "url_response",
        "download URL",
        &api.call("GET", "/api/v2/downloads/history?issueRedirect=false", None)
            .json(),
    );
    t.check(
        "error_body",
        "unknown download",
        &api.call("GET", "/api/v2/downloads/nope?issueRedirect=false", None)
            .json(),
    );
    let n = t.report("emulator answers");
    assert!(n >= 25, "{n}");
}
