//! cxrelay against the strict emulator: per-topic subscription answers,
//! conversations delivered once in their final state across analytics
//! windows, system messages acted on, creates that survive a lost answer.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use cxrelay::emulator::bulk::BulkSettings;
use cxrelay::emulator::faults::SystemTopicType;
use cxrelay::emulator::notifications::{NotificationSettings, TrafficRequest};
use cxrelay::emulator::records::{Durations, Timeline};
use cxrelay::emulator::{EmulatorHandle, EmulatorSettings, Fault};
use serde_json::Value;

fn file_listener(dir: &Path, topics: &str) -> String {
    format!(
        "[[listener]]\nname = \"files\"\ntopics = [{topics}]\nsink = {{ kind = \"file\", path = \"{}\", fsync = false, batch_events = 5000, batch_interval = \"50ms\" }}\nmailbox = 20000\nbatch = 5000\n",
        dir.join("out").display()
    )
}

fn status_of(p: &Proc, name: &str) -> Value {
    component(&p.get("/status").json(), name)
}

fn channels_of(e: &EmulatorHandle) -> Vec<String> {
    e.state().notifications.channel_ids()
}

#[test]
fn a_channel_of_1000_topics_with_3_denied_delivers_the_other_997_and_lists_the_3() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        notifications: NotificationSettings {
            denied_topics: (0..3).map(|i| format!("v2.users.denied-{i}.presence")).collect(),
            heartbeat_interval: Duration::from_millis(500),
            ..NotificationSettings::default()
        },
        ..EmulatorSettings::default()
    });
    let mut ids: Vec<String> = (0..997).map(|i| format!("\"u{i}\"")).collect();
    ids.extend((0..3).map(|i| format!("\"denied-{i}\"")));
    let config = format!(
        "{}{}[[source]]\nname = \"people\"\nkind = \"notifications\"\ntopics = [\"v2.users.{{user}}.presence\"]\nids = {{ user = [{}] }}\n\n{}",
        preamble(dir.path()),
        genesys_section(&e, 6000),
        ids.join(", "),
        file_listener(dir.path(), "\"v2.>\"")
    );
    let p = Proc::start(dir.path(), &config);
    wait_until("the channel connected", Duration::from_secs(30), || {
        e.state().notifications.open_sockets() == 1 && status_of(&p, "people/channel-0")["state"] == "running"
    });
    let channel = status_of(&p, "people/channel-0");
    assert_eq!(channel["detail"]["topics"]["rejected"], 3, "{channel}");
    assert_eq!(channel["detail"]["topics"]["permitted"], 997, "{channel}");
    let rejected = channel["detail"]["rejected_topics"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(rejected.len(), 3);
    for r in &rejected {
        assert!(r["topic"].as_str().is_some_and(|t| t.contains("denied-")), "{r}");
        assert!(
            r["reason"].as_str().is_some_and(|t| t.contains("missing.permissions")),
            "{r}"
        );
    }
    e.state().notifications.traffic.start(
        e.state(),
        TrafficRequest {
            count: Some(4000),
            in_flight: Some(4),
            ..TrafficRequest::default()
        },
    );
    wait_until("events from all 997 permitted topics", Duration::from_secs(60), || {
        let topics: HashSet<String> = read_ndjson_dir(&dir.path().join("out"))
            .iter()
            .filter_map(|l| l["topic"].as_str().map(str::to_string))
            .collect();
        topics.len() >= 997
    });
    let topics: HashSet<String> = read_ndjson_dir(&dir.path().join("out"))
        .iter()
        .filter_map(|l| l["topic"].as_str().map(str::to_string))
        .collect();
    assert_eq!(topics.len(), 997);
    assert!(topics.iter().all(|t| !t.contains("denied-")));
}

#[test]
fn a_day_of_15_minute_windows_delivers_each_conversation_once_with_its_end() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bulk = BulkSettings {
        conversations_per_hour: 60.0,
        long_conversations: 0.15,
        long_conversation_max: Duration::from_secs(2 * 3600),
        job_queued: Duration::from_millis(5),
        job_pending: Duration::from_millis(5),
        data_lag: Duration::from_secs(60),
        ..BulkSettings::default()
    };
    let timeline = Timeline::with_durations(
        1,
        bulk.conversations_per_hour,
        Durations {
            long_share: bulk.long_conversations,
            long_max_ms: bulk.long_conversation_max.as_millis() as i64,
        },
    );
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        bulk,
        ..EmulatorSettings::default()
    });
    let quarter = 900_000i64;
    let now = cxrelay_actors::event::now_ms();
    let start = (now - 26 * 3_600_000).div_euclid(quarter) * quarter;
    let day_end = start + 24 * 3_600_000;
    let config = format!(
        "{}{}[[source]]\nname = \"details\"\nkind = \"analytics_job\"\nevery = \"15m\"\nlag = \"1m\"\ncatch_up = \"15m\"\nstart = \"{}\"\npoll_interval = \"20ms\"\npoll_max_interval = \"50ms\"\n\n{}",
        preamble(dir.path()),
        genesys_section(&e, 60000),
        cxrelay::wire::iso_ms(start),
        file_listener(dir.path(), "\"analytics.conversations\"")
    );
    let p = Proc::start(dir.path(), &config);
    wait_until("96 windows delivered", Duration::from_secs(120), || {
        status_of(&p, "details")["detail"]["done_until"]
            .as_str()
            .and_then(|d| cxrelay::wire::parse_iso_ms(d).ok())
            .is_some_and(|d| d >= day_end)
    });
    let windows = e
        .state()
        .log
        .count(|r| r.method == "POST" && r.path == "/api/v2/analytics/conversations/details/jobs");
    assert!(windows >= 96, "{windows} jobs");
    let status = status_of(&p, "details");
    assert!(
        status["detail"]["held_open"].as_u64().is_some_and(|n| n > 0),
        "{status}"
    );
    let mut seen: HashMap<String, usize> = HashMap::new();
    for line in read_ndjson_dir(&dir.path().join("out")) {
        let payload = &line["payload"];
        assert!(
            payload["conversationEnd"].is_string(),
            "delivered in its final state: {payload}"
        );
        *seen
            .entry(line["key"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    // Every conversation that ended in the day, exactly once (the source
    // goes on past the day: those are left out of the count).
    let first = timeline
        .range(cxrelay::wire::Interval::new(start - timeline.max_duration_ms(), start))
        .start;
    let last = timeline.range(cxrelay::wire::Interval::new(start, day_end)).end;
    let expected: HashSet<String> = (first..last)
        .filter(|n| (start..=day_end).contains(&timeline.end_ms(*n)))
        .map(|n| timeline.conversation_id(n))
        .collect();
    assert!(expected.len() > 1000, "{}", expected.len());
    let long = (first..last)
        .filter(|n| {
            (start..=day_end).contains(&timeline.end_ms(*n)) && timeline.end_ms(*n) - timeline.start_ms(*n) > 1_800_000
        })
        .count();
    assert!(long > 50, "long conversations spanning windows: {long}");
    let seen = || {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for line in read_ndjson_dir(&dir.path().join("out")) {
            let payload = &line["payload"];
            assert!(
                payload["conversationEnd"].is_string(),
                "delivered in its final state: {payload}"
            );
            *seen
                .entry(line["key"].as_str().unwrap_or_default().to_string())
                .or_default() += 1;
        }
        seen
    };
    // The file sink shows closed files only: wait for the last ones.
    wait_until("the day's conversations written", Duration::from_secs(60), || {
        let s = seen();
        expected.iter().all(|id| s.contains_key(id))
    });
    let seen = seen();
    for id in &expected {
        assert_eq!(seen.get(id), Some(&1), "{id} delivered {:?} times", seen.get(id));
    }
    assert!(seen.values().all(|n| *n == 1), "nothing twice");
}

#[test]
fn a_no_longer_subscribed_message_is_followed_by_a_resubscribe_and_a_recorded_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        notifications: NotificationSettings {
            heartbeat_interval: Duration::from_millis(300),
            ..NotificationSettings::default()
        },
        ..EmulatorSettings::default()
    });
    let config = format!(
        "{}{}[[source]]\nname = \"queues\"\nkind = \"notifications\"\ntopics = [\"v2.routing.queues.{{queue}}.conversations\"]\nids = {{ queue = [\"q1\", \"q2\"] }}\n\n{}",
        preamble(dir.path()),
        genesys_section(&e, 6000),
        file_listener(dir.path(), "\">\"")
    );
    let p = Proc::start(dir.path(), &config);
    wait_until("connected", Duration::from_secs(30), || {
        status_of(&p, "queues/channel-0")["state"] == "running" && e.state().notifications.open_sockets() == 1
    });
    let puts = || {
        e.state()
            .log
            .count(|r| r.method == "PUT" && r.path.ends_with("/subscriptions"))
    };
    let before = puts();
    let id = channels_of(&e)[0].clone();
    e.inject(Fault::SystemMessage {
        channel: Some(id.clone()),
        message: SystemTopicType::NoLongerSubscribed,
    });
    wait_until("resubscribed", Duration::from_secs(20), || {
        puts() > before && e.state().notifications.topics_of(&id).unwrap_or_default().len() == 2
    });
    wait_until("a gap recorded", Duration::from_secs(20), || {
        status_of(&p, "queues/channel-0")["detail"]["gaps"]["count"].as_u64() == Some(1)
    });
    let channel = status_of(&p, "queues/channel-0");
    assert!(
        channel["detail"]["gaps"]["recent"][0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("no_longer_subscribed")),
        "{channel}"
    );
    assert_eq!(
        channel["detail"]["counters"]["system_messages"]["no_longer_subscribed"],
        1
    );
    // Events flow again, and the message itself was never an event.
    e.state().notifications.traffic.start(
        e.state(),
        TrafficRequest {
            count: Some(50),
            ..TrafficRequest::default()
        },
    );
    wait_until("events after the resubscribe", Duration::from_secs(20), || {
        read_ndjson_dir(&dir.path().join("out")).len() >= 50
    });
    let lines = read_ndjson_dir(&dir.path().join("out"));
    assert!(lines
        .iter()
        .all(|l| !l["topic"].as_str().unwrap_or("").starts_with("v2.system.")));
    assert_eq!(channels_of(&e).len(), 1, "the same channel, resubscribed");
}

#[test]
fn a_channel_create_whose_answer_is_lost_reuses_the_channel_it_made() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        ..EmulatorSettings::default()
    });
    // The create is carried out, its answer comes after the client gave up.
    e.inject(Fault::Slow {
        count: 1,
        delay_ms: 3000,
        after_handling: true,
        path: Some("/api/v2/notifications/channels".into()),
    });
    let section =
        genesys_section(&e, 6000).replace("requests_per_minute", "request_timeout = \"1s\"\nrequests_per_minute");
    let config = format!(
        "{}{section}[[source]]\nname = \"queues\"\nkind = \"notifications\"\ntopics = [\"v2.routing.queues.{{queue}}.conversations\"]\nids = {{ queue = [\"q1\"] }}\n\n{}",
        preamble(dir.path()),
        file_listener(dir.path(), "\">\"")
    );
    let p = Proc::start(dir.path(), &config);
    wait_until("connected", Duration::from_secs(30), || {
        status_of(&p, "queues/channel-0")["state"] == "running" && e.state().notifications.open_sockets() == 1
    });
    // The late answer is logged once it has gone out.
    let creates = || {
        e.state()
            .log
            .count(|r| r.method == "POST" && r.path == "/api/v2/notifications/channels")
    };
    wait_until("the create answered late", Duration::from_secs(10), || creates() >= 1);
    assert_eq!(creates(), 1, "not created again");
    assert_eq!(channels_of(&e).len(), 1, "no channel leaked towards the limit");
    assert!(
        e.state()
            .log
            .count(|r| r.method == "GET" && r.path == "/api/v2/notifications/channels")
            >= 1
    );
}

#[test]
fn the_genesys_pii_preset_leaves_no_number_address_or_name_in_clear_text() {
    let dir = tempfile::tempdir().expect("tempdir");
    let e = emulator(EmulatorSettings {
        requests_per_minute: 0,
        bulk: BulkSettings {
            conversations_per_hour: 600.0,
            long_conversations: 0.1,
            job_queued: Duration::from_millis(20),
            job_pending: Duration::from_millis(20),
            ..BulkSettings::default()
        },
        ..EmulatorSettings::default()
    });
    let phases = [
        "customer.start",
        "acd.start",
        "acd.end",
        "user.start",
        "user.end",
        "acw",
        "customer.end",
    ];
    let mut topics: Vec<String> = phases
        .iter()
        .map(|p| format!("\"v2.detail.events.conversation.{{conversation}}.{p}\""))
        .collect();
    topics.push("\"v2.routing.queues.{queue}.conversations\"".into());
    topics.push("\"v2.users.{user}.presence\"".into());
    let config = format!(
        r#"{}{}[[source]]
name = "live"
kind = "notifications"
topics = [{}]
ids = {{ conversation = ["c1", "c2"], queue = ["q1"], user = ["u1"] }}

[[source]]
name = "details"
kind = "analytics_job"
interval = "2024-05-01T00:00:00Z/2024-05-01T02:00:00Z"
poll_interval = "20ms"

[[listener]]
name = "files"
topics = [">"]
transform = {{ flatten = true, timestamps = true, mask = ["@genesys-pii"], mask_mode = "redact" }}
sink = {{ kind = "file", path = "{}", fsync = false, batch_interval = "50ms" }}
"#,
        preamble(dir.path()),
        genesys_section(&e, 6000),
        topics.join(", "),
        dir.path().join("out").display()
    );
    let p = Proc::start(dir.path(), &config);
    wait_until("connected", Duration::from_secs(30), || {
        e.state().notifications.open_sockets() == 1
    });
    e.state().notifications.traffic.start(
        e.state(),
        TrafficRequest {
            count: Some(600),
            ..TrafficRequest::default()
        },
    );
    wait_until("events and records written", Duration::from_secs(60), || {
        let lines = read_ndjson_dir(&dir.path().join("out"));
        lines.iter().filter(|l| l["topic"] == "analytics.conversations").count() >= 100
            && lines.iter().filter(|l| l["topic"] != "analytics.conversations").count() >= 500
    });
    drop(p);
    let lines = read_ndjson_dir(&dir.path().join("out"));
    let mut kinds = HashSet::new();
    for l in &lines {
        let topic = l["topic"].as_str().unwrap_or_default();
        kinds.insert(topic.split('.').take(3).collect::<Vec<_>>().join("."));
        let text = l["payload"].to_string();
        for clear in [
            "tel:",
            "+1555",
            "@example.com",
            "Caller ",
            "Customer asked",
            "Address change",
            "Card ending",
            "Complaint",
            "AC-",
            "Alice",
            "Bruno",
            "Fatima",
            "Kowalski",
            "Okafor",
        ] {
            assert!(!text.contains(clear), "`{clear}` in clear text on {topic}: {text}");
        }
    }
    assert!(kinds.len() >= 4, "every kind of event went through: {kinds:?}");
}
