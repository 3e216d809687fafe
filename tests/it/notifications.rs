//! The `notifications` source against the bundled emulator, over real
//! sockets, with the cxrelay binary: what users see in the file sink,
//! `/status`, `/health/ready`, `/metrics` and the admin API.
//! Reconnects, close codes, backoff and tokens are in
//! `notifications/reconnects.rs`.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::Duration;

use cxrelay::emulator::notifications::RecordSnapshot;

use crate::common::*;
use cxrelay::emulator::notifications::{NotificationSettings, TrafficRequest};
use cxrelay::emulator::{EmulatorHandle, EmulatorSettings, Fault};
use serde_json::Value;

mod reconnects;

const ADMIN: &str = "test-admin-token";

fn emulator_with(n: NotificationSettings) -> EmulatorHandle {
    emulator(EmulatorSettings {
        requests_per_minute: 0,
        notifications: n,
        ..EmulatorSettings::default()
    })
}

fn quick() -> NotificationSettings {
    NotificationSettings {
        heartbeat_interval: Duration::from_millis(500),
        ..NotificationSettings::default()
    }
}

/// Queue topics for `n` queue ids, as a `[[source]]` block.
fn source(n: usize, extra: &str) -> String {
    let ids: Vec<String> = (0..n).map(|i| format!("\"q{i}\"")).collect();
    format!(
        "[[source]]\nname = \"queues\"\nkind = \"notifications\"\ntopics = [\"v2.routing.queues.{{queue}}.conversations\"]\nids = {{ queue = [{}] }}\n{extra}\n",
        ids.join(", ")
    )
}

fn listener(dir: &Path) -> String {
    format!(
        "[[listener]]\nname = \"files\"\ntopics = [\"v2.>\"]\nsink = {{ kind = \"file\", path = \"{}\", batch_events = 5000, batch_interval = \"50ms\" }}\nmailbox = 20000\nbatch = 5000\n",
        dir.join("out").display()
    )
}

fn start(dir: &Path, e: &EmulatorHandle, source_block: &str) -> Proc {
    let config = format!(
        "{}{}{source_block}{}",
        preamble(dir),
        genesys_section(e, 6000),
        listener(dir)
    );
    Proc::start_with(dir, &config, &[("CXRELAY_ADMIN_TOKEN", ADMIN)])
}

fn status(p: &Proc) -> Value {
    p.get("/status").json()
}

fn channel_status(p: &Proc, i: usize) -> Value {
    component(&status(p), &format!("queues/channel-{i}"))
}

fn wait_connected(p: &Proc, e: &EmulatorHandle, channels: usize) {
    wait_until("every channel connected", Duration::from_secs(30), || {
        e.state().notifications.open_sockets() == channels
            && (0..channels).all(|i| channel_status(p, i)["state"] == "running")
    });
}

/// Correlation ids of events the emulator sent on a socket, by channel.
fn sent_ids(e: &EmulatorHandle) -> HashMap<String, Vec<String>> {
    let n = &e.state().notifications;
    let seed = e.state().settings.seed;
    n.records()
        .into_iter()
        .map(|r| {
            let ids = r
                .delivered
                .iter()
                .map(|i| n.traffic.correlation_id(seed, r.run, *i))
                .collect();
            (r.id.clone(), ids)
        })
        .collect()
}

/// Correlation ids in the file sink, with how many times each appears.
fn written_ids(dir: &Path) -> HashMap<String, usize> {
    let mut out = HashMap::new();
    for line in read_ndjson_dir(&dir.join("out")) {
        let id = line["payload"]["metadata"]["CorrelationId"]
            .as_str()
            .unwrap_or_else(|| panic!("no correlation id: {line}"))
            .to_string();
        assert_eq!(line["id"], id.as_str(), "the event id is the correlation id");
        *out.entry(id).or_default() += 1;
    }
    out
}

fn traffic(e: &EmulatorHandle, rate: Option<f64>, count: u64) {
    e.state().notifications.traffic.start(
        e.state(),
        TrafficRequest {
            rate,
            count: Some(count),
            ..TrafficRequest::default()
        },
    );
}

/// The run is over and every event it emitted was sent or missed (the
/// sockets may still be writing when the generator is done).
fn traffic_done(e: &EmulatorHandle) -> bool {
    let n = &e.state().notifications;
    let status = n.traffic.status();
    !status.running
        && n.records()
            .iter()
            .filter(|r| r.run == status.run)
            .map(|r| r.delivered_count + r.missed_count)
            .sum::<u64>()
            >= status.emitted
}

fn admin(p: &Proc, method: &str, path: &str, body: &str) -> Response {
    request(
        p.addr,
        method,
        path,
        &[
            ("Authorization", &format!("Bearer {ADMIN}")),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    )
    .unwrap()
}

fn record(e: &EmulatorHandle, id: &str) -> RecordSnapshot {
    e.state().notifications.record(id).unwrap()
}

fn only_channel(e: &EmulatorHandle) -> String {
    let ids = e.state().notifications.channel_ids();
    assert_eq!(ids.len(), 1, "{ids:?}");
    ids[0].clone()
}

#[test]
fn events_flow_from_the_socket_to_the_file_sink_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(quick());
    let p = start(tmp.path(), &e, &source(3, ""));
    wait_connected(&p, &e, 1);
    traffic(&e, Some(2000.0), 1000);
    wait_until("traffic sent", Duration::from_secs(30), || traffic_done(&e));
    let sent: Vec<String> = sent_ids(&e).into_values().flatten().collect();
    assert_eq!(sent.len(), 1000);
    wait_until("events written", Duration::from_secs(30), || {
        written_ids(tmp.path()).len() >= 1000
    });
    let written = written_ids(tmp.path());
    assert_eq!(written.len(), 1000);
    assert!(written.values().all(|n| *n == 1), "duplicates in the sink");
    assert_eq!(
        written.keys().collect::<HashSet<_>>(),
        sent.iter().collect::<HashSet<_>>()
    );
    // Keys and event times come from the frames.
    let lines = read_ndjson_dir(&tmp.path().join("out"));
    assert!(lines.iter().all(|l| l["key"].is_string() && l["event_time"].is_i64()));
    wait_until("status published", Duration::from_secs(5), || {
        let c = channel_status(&p, 0);
        c["detail"]["counters"]["events"] == 1000 && c["detail"]["counters"]["committed"] == 1000
    });
    let c = channel_status(&p, 0);
    assert_eq!(c["detail"]["counters"]["committed"], 1000);
    assert_eq!(c["detail"]["topics"]["permitted"], 3);
    assert_eq!(p.get("/health/ready").status, 200);
    assert_eq!(
        metric(
            &p.get("/metrics").text(),
            "cxrelay_notification_events_total{source=\"queues\",channel=\"queues/channel-0\"}"
        ),
        Some(1000.0)
    );
    assert!(p.terminate().success());
}

#[test]
fn five_thousand_topics_on_five_channels_deliver_100k_events_exactly_once() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(quick());
    let p = start(tmp.path(), &e, &source(5000, ""));
    wait_connected(&p, &e, 5);
    let ids = e.state().notifications.channel_ids();
    for id in &ids {
        assert_eq!(e.state().notifications.topics_of(id).unwrap().len(), 1000);
    }
    traffic(&e, None, 100_000);
    wait_until("traffic sent", Duration::from_secs(120), || traffic_done(&e));
    let sent = sent_ids(&e);
    let sent_total: usize = sent.values().map(Vec::len).sum();
    assert_eq!(sent_total, 100_000);
    assert!(sent.values().all(|v| v.len() > 10_000), "every channel carried traffic");
    for id in &ids {
        assert_eq!(record(&e, id).missed_count, 0, "every socket stayed up");
    }
    wait_until("events written", Duration::from_secs(120), || {
        written_ids(tmp.path()).len() >= 100_000
    });
    let written = written_ids(tmp.path());
    assert_eq!(written.len(), 100_000);
    assert!(written.values().all(|n| *n == 1), "duplicates in the sink");
    let sent: HashSet<String> = sent.into_values().flatten().collect();
    assert!(written.keys().all(|k| sent.contains(k)));
    // Every topic got events.
    let topics: HashSet<String> = read_ndjson_dir(&tmp.path().join("out"))
        .into_iter()
        .map(|l| l["topic"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(topics.len(), 5000);
    assert!(p.terminate().success());
}

#[test]
fn malformed_and_fragmented_frames_among_good_ones() {
    const WARM_UP: u64 = 30_000;
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(NotificationSettings {
        oversized_frame_bytes: 200_000,
        fragment_bytes: 300,
        ..quick()
    });
    let p = start(tmp.path(), &e, &source(10, "max_frame_bytes = 65536\n"));
    wait_connected(&p, &e, 1);
    let id = only_channel(&e);
    // Warm up: the store's page cache (32 MiB) fills with journaled events
    // (30,000 of about 1.5 KB), so the floods measure the source alone.
    traffic(&e, Some(10_000.0), WARM_UP);
    wait_until("traffic sent", Duration::from_secs(30), || traffic_done(&e));
    wait_until("warm-up written", Duration::from_secs(30), || {
        written_ids(tmp.path()).len() >= WARM_UP as usize
    });
    let warm = rss_bytes(p.pid());
    // Three floods of 500 malformed frames (a third of them 200 KB) and
    // 250 fragmented events among 4000 good ones each.
    let mut rss = Vec::new();
    for half in 1..=3u64 {
        e.inject(Fault::MalformedFrames {
            channel: Some(id.clone()),
            count: 500,
        });
        e.inject(Fault::FragmentFrames {
            channel: Some(id.clone()),
            count: 250,
        });
        std::thread::sleep(Duration::from_millis(100));
        traffic(&e, Some(4000.0), 4000);
        wait_until("traffic sent", Duration::from_secs(30), || traffic_done(&e));
        wait_until("malformed frames counted", Duration::from_secs(20), || {
            channel_status(&p, 0)["detail"]["counters"]["malformed_total"] == 500 * half
        });
        wait_until("good events written", Duration::from_secs(30), || {
            written_ids(tmp.path()).len() as u64 >= WARM_UP + 4000 * half
        });
        rss.push(rss_bytes(p.pid()));
    }
    let r = record(&e, &id);
    assert_eq!((r.malformed_sent, r.fragmented_sent), (1500, 750));
    let written = written_ids(tmp.path());
    assert_eq!(
        written.len(),
        WARM_UP as usize + 12_000,
        "every good event, fragmented or not, exactly once"
    );
    assert!(written.values().all(|n| *n == 1));
    let c = channel_status(&p, 0);
    let m = &c["detail"]["counters"]["malformed"];
    assert_eq!(
        (
            m["invalid_json"].as_u64(),
            m["no_topic"].as_u64(),
            m["oversized"].as_u64()
        ),
        (Some(500), Some(500), Some(500))
    );
    assert_eq!(c["state"], "running");
    assert_eq!(record(&e, &id).connects, 1, "malformed frames never cost the socket");
    wait_until("dead letters kept", Duration::from_secs(20), || {
        channel_status(&p, 0)["detail"]["counters"]["dead_lettered"] == 1500
    });
    let dl = admin(&p, "GET", "/admin/dead-letters?limit=5000", "").json();
    let letters = dl["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 1500);
    assert!(letters.iter().all(|l| l["component"] == "queues/channel-0"
        && l["source"] == "queues"
        && l["error"].as_str().unwrap().starts_with("malformed frame: ")));
    let big = letters
        .iter()
        .find(|l| l["error"] == "malformed frame: oversized")
        .unwrap();
    assert_eq!(big["truncated"], true);
    assert!(big["payload"].as_str().unwrap().len() <= 16 * 1024);
    assert!(
        big["position"].as_str().unwrap().contains("200000 bytes"),
        "{}",
        big["position"]
    );
    let m = p.get("/metrics").text();
    assert_eq!(
        metric(
            &m,
            "cxrelay_notification_malformed_total{source=\"queues\",channel=\"queues/channel-0\",reason=\"oversized\"}"
        ),
        Some(500.0)
    );
    // 100 MB of oversized frames went through. What stays is bounded: the
    // dead letters' pages in the store's 32 MiB cache, plus allocator slack.
    assert!(
        rss.iter().all(|r| *r < warm + 48 * 1024 * 1024),
        "RSS after warm-up {warm}, after each flood: {rss:?}"
    );
    assert!(p.terminate().success());
}

#[test]
fn topics_are_added_and_removed_at_run_time_and_rejections_are_shown() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(NotificationSettings {
        denied_topics: vec!["v2.routing.queues.secret.>".into()],
        ..quick()
    });
    let p = start(tmp.path(), &e, &source(2, "max_topics_per_channel = 3\n"));
    wait_connected(&p, &e, 1);
    let id = only_channel(&e);
    // Two fit on the first channel; the third opens a second channel; a
    // denied one is rejected with Genesys's reason.
    let r = admin(
        &p,
        "POST",
        "/admin/notifications/queues/topics",
        r#"{"topics":["v2.routing.queues.q7.conversations","v2.routing.queues.secret.conversations","v2.routing.queues.q8.conversations","v2.routing.queues.q0.conversations","not-a-topic"]}"#,
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let changes = r.json()["topics"].as_array().unwrap().clone();
    let state = |t: &str| {
        changes
            .iter()
            .find(|c| c["topic"] == t)
            .map(|c| c["state"].as_str().unwrap().to_string())
            .unwrap_or_default()
    };
    assert_eq!(state("v2.routing.queues.q7.conversations"), "permitted");
    assert_eq!(
        state("v2.routing.queues.secret.conversations"),
        "pending",
        "{changes:?}"
    );
    assert_eq!(state("v2.routing.queues.q0.conversations"), "permitted");
    assert_eq!(state("not-a-topic"), "refused");
    wait_connected(&p, &e, 2);
    assert_eq!(record(&e, &id).connects, 1, "the first channel was not restarted");
    let mut topics = e.state().notifications.topics_of(&id).unwrap();
    topics.sort();
    assert_eq!(topics.len(), 3);
    let c1 = component(&status(&p), "queues/channel-1");
    assert_eq!(c1["detail"]["topics"]["rejected"], 1, "{c1}");
    assert!(c1["detail"]["rejected_topics"][0]["reason"]
        .as_str()
        .unwrap()
        .starts_with("missing.permissions"));
    // Events on an added topic arrive.
    traffic(&e, Some(2000.0), 500);
    wait_until("traffic sent", Duration::from_secs(20), || traffic_done(&e));
    wait_until("events written", Duration::from_secs(20), || {
        written_ids(tmp.path()).len() >= 500
    });
    let lines = read_ndjson_dir(&tmp.path().join("out"));
    assert!(lines.iter().any(|l| l["topic"] == "v2.routing.queues.q7.conversations"));
    // The list shows both channels and their state.
    let list = admin(&p, "GET", "/admin/notifications/queues/channels", "").json();
    let channels = list["channels"].as_array().unwrap();
    assert_eq!(channels.len(), 2);
    assert!(channels
        .iter()
        .all(|c| c["state"] == "connected" && c["socket_up"] == true));
    assert_eq!(
        channels[1]["rejected"][0]["topic"],
        "v2.routing.queues.secret.conversations"
    );
    // Removing a topic unsubscribes it on its channel, without a reconnect.
    let r = admin(
        &p,
        "DELETE",
        "/admin/notifications/queues/topics",
        r#"{"topics":["v2.routing.queues.q1.conversations","v2.routing.queues.nope.conversations"]}"#,
    );
    let removed = r.json()["topics"].as_array().unwrap().clone();
    assert_eq!(removed[0]["state"], "removed");
    assert_eq!(removed[1]["state"], "unknown");
    assert!(!e
        .state()
        .notifications
        .topics_of(&id)
        .unwrap()
        .contains(&"v2.routing.queues.q1.conversations".to_string()));
    assert_eq!(record(&e, &id).connects, 1);
    // Without the token: refused.
    assert_eq!(p.get("/admin/notifications").status, 401);
    assert_eq!(admin(&p, "GET", "/admin/notifications/nope/channels", "").status, 404);
    assert!(p.terminate().success());
}

#[test]
fn a_config_that_needs_more_than_twenty_channels_is_refused_with_the_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    let e = emulator_with(quick());
    let config = format!(
        "{}{}{}{}",
        preamble(tmp.path()),
        genesys_section(&e, 300),
        source(20_001, ""),
        listener(tmp.path())
    );
    std::fs::write(tmp.path().join("config.toml"), &config).unwrap();
    let (code, _, err) = cxrelay_cmd(tmp.path(), &["check"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("20001 topics need 21 channels at 1000 topics per channel, but at most 20 channels are allowed"),
        "{err}"
    );
    assert!(err.contains("`source[0].topics`"), "{err}");
    // Two sources sharing the OAuth client's 20 channels.
    let two = format!(
        "{}{}{}{}{}",
        preamble(tmp.path()),
        genesys_section(&e, 300),
        source(12_000, ""),
        source(9_000, "").replace("name = \"queues\"", "name = \"more\""),
        listener(tmp.path())
    );
    std::fs::write(tmp.path().join("config.toml"), &two).unwrap();
    let (code, _, err) = cxrelay_cmd(tmp.path(), &["check"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`source[1].topics`") && err.contains("need 21 channels"),
        "{err}"
    );
    // Keys of other kinds are refused on a notifications source, and its
    // keys on others.
    let wrong = config
        .replace(&source(20_001, ""), &source(3, "path = \"/x\"\n"))
        .replace(
            "[[listener]]",
            "[[source]]\nname = \"gen\"\nkind = \"generator\"\ntopics = [\"a.b\"]\nretry_limit = 3\n\n[[listener]]",
        );
    std::fs::write(tmp.path().join("config.toml"), &wrong).unwrap();
    let (code, _, err) = cxrelay_cmd(tmp.path(), &["check"], &[]);
    assert_eq!(code, 2);
    // Each names the keys its own kind takes.
    assert!(
        err.contains("`source[0].path`: unknown field `path`; a `notifications` source takes")
            && err.contains("`max_channels`"),
        "{err}"
    );
    assert!(
        err.contains("`source[1].retry_limit`: unknown field `retry_limit`; a `generator` source takes"),
        "{err}"
    );
}

#[test]
fn the_in_process_emulator_with_configured_traffic_feeds_a_notifications_source() {
    let tmp = tempfile::tempdir().unwrap();
    // What `cxrelay demo` runs: no credentials, the emulator in-process,
    // its traffic starting with the first channel.
    let config = format!(
        "{}[genesys]\nenvironment = \"emulator\"\n\n[emulator.notifications]\ntraffic = {{ rate = 200 }}\n\n{}{}",
        preamble(tmp.path()),
        source(5, ""),
        listener(tmp.path())
    );
    let p = Proc::start(tmp.path(), &config);
    wait_until("events written", Duration::from_secs(30), || {
        read_ndjson_dir(&tmp.path().join("out")).len() >= 100
    });
    let lines = read_ndjson_dir(&tmp.path().join("out"));
    assert!(lines
        .iter()
        .all(|l| l["topic"].as_str().unwrap().starts_with("v2.routing.queues.q")));
    assert_eq!(p.get("/health/ready").status, 200);
    assert!(p.terminate().success());
}
