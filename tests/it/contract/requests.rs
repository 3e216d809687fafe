//! What the client sends, against the SDK's request models: cxrelay runs
//! a notifications source (with topics added at run time), an analytics
//! job and a recordings source against the emulator, which keeps every
//! body it parsed.

use std::time::Duration;

use serde_json::Value;

use super::Tally;
use crate::common::*;
use cxrelay::emulator::bulk::BulkSettings;
use cxrelay::emulator::notifications::NotificationSettings;
use cxrelay::emulator::EmulatorSettings;

#[test]
fn every_request_body_the_client_sends_matches_its_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        notifications: NotificationSettings {
            denied_topics: vec!["v2.users.denied.>".into()],
            ..NotificationSettings::default()
        },
        bulk: BulkSettings {
            conversations_per_hour: 600.0,
            job_queued: Duration::from_millis(100),
            job_pending: Duration::from_millis(100),
            recording_delay: Duration::from_millis(100),
            recording_bytes: 1024,
            ..BulkSettings::default()
        },
        ..EmulatorSettings::default()
    });
    let config = format!(
        r#"{}{}[[source]]
name = "queues"
kind = "notifications"
topics = ["v2.routing.queues.{{queue}}.conversations", "v2.users.{{user}}.presence"]
ids = {{ queue = ["q1", "q2"], user = ["u1", "denied"] }}

[[source]]
name = "details"
kind = "analytics_job"
interval = "2024-05-01T00:00:00Z/2024-05-01T01:00:00Z"

[[source]]
name = "recs"
kind = "recordings"
recordings = ["c1/r1", "c2/r2"]
output = "{}"

[[listener]]
name = "all"
topics = [">"]
sink = {{ kind = "blackhole" }}
"#,
        preamble(dir.path()),
        genesys_section(&e, 6000),
        dir.path().join("recordings").display()
    );
    let p = Proc::start(dir.path(), &config);
    let bodies = |path: &str| -> Vec<String> {
        e.state()
            .log
            .bodies()
            .into_iter()
            .filter(|b| b.path.starts_with(path))
            .map(|b| b.body)
            .collect()
    };
    wait_until(
        "a job, a subscription and a batch request sent",
        Duration::from_secs(60),
        || {
            !bodies("/api/v2/analytics/conversations/details/jobs").is_empty()
                && !bodies("/api/v2/notifications/channels/").is_empty()
                && !bodies("/api/v2/recording/batchrequests").is_empty()
        },
    );
    drop(p);
    let mut t = Tally::default();
    for b in bodies("/api/v2/notifications/channels/") {
        let v: Value = serde_json::from_str(&b).expect("a subscription body is JSON");
        for topic in v.as_array().expect("a list of ChannelTopic") {
            t.check("channel_topic", "a subscription body's topic", topic);
        }
    }
    for b in bodies("/api/v2/analytics/conversations/details/jobs") {
        t.check_text("async_conversation_query", "a details job body", &b);
    }
    for b in bodies("/api/v2/recording/batchrequests") {
        t.check_text("batch_download_job_submission", "a batch download body", &b);
    }
    t.report("client request bodies");
    assert!(e.state().log.leaks().is_empty(), "{:?}", e.state().log.leaks());
    // Subscriptions ask for per-topic answers rather than all or nothing.
    assert!(e
        .state()
        .log
        .matching(|r| r.path.ends_with("/subscriptions") && r.method != "GET")
        .iter()
        .all(|r| r.query.contains("ignoreErrors=true")));
}
