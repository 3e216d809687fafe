//! The `notifications` source against the bundled emulator, over real
//! sockets, with the cxrelay binary: what users see in the file sink,
//! `/status`, `/health/ready`, `/metrics` and the admin API.

mod common;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use cxrelay::emulator::notifications::{NotificationSettings, TrafficRequest};
use cxrelay::emulator::{EmulatorHandle, EmulatorSettings, Fault};
use serde_json::Value;

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

fn traffic_done(e: &EmulatorHandle) -> bool {
    !e.state().notifications.traffic.status().running
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
        channel_status(&p, 0)["detail"]["counters"]["events"] == 1000
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
