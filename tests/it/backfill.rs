//! `backfill = true`: the conversations of a notification gap (events lost
//! while a socket was down, which Genesys never queues) are covered by an
//! analytics details job once the data lake has them.

use std::collections::HashMap;
use std::time::Duration;

use crate::common::*;
use cxrelay::emulator::bulk::BulkSettings;
use cxrelay::emulator::notifications::{NotificationSettings, TrafficRequest};
use cxrelay::emulator::{EmulatorSettings, Fault};
use cxrelay::genesys::interval::Interval;

/// A dense data lake (100 conversations a second) without lag, so that a
/// gap of a few hundred milliseconds holds conversations to backfill.
const PER_HOUR: f64 = 360_000.0;

fn emulator_for_backfill(data_lag: Duration) -> cxrelay::emulator::EmulatorHandle {
    emulator(EmulatorSettings {
        requests_per_minute: 0,
        notifications: NotificationSettings {
            heartbeat_interval: Duration::from_millis(200),
            traffic: Some(TrafficRequest {
                rate: Some(200.0),
                ..TrafficRequest::default()
            }),
            ..NotificationSettings::default()
        },
        bulk: BulkSettings {
            conversations_per_hour: PER_HOUR,
            data_lag,
            job_queued: Duration::from_millis(100),
            job_pending: Duration::from_millis(100),
            ..BulkSettings::default()
        },
        ..EmulatorSettings::default()
    })
}

fn config(dir: &std::path::Path, e: &cxrelay::emulator::EmulatorHandle) -> String {
    format!(
        r#"{}{}[[source]]
name = "rt"
kind = "notifications"
topics = ["v2.routing.queues.{{queue}}.conversations", "v2.users.u1.presence"]
ids = {{ queue = ["q1"] }}
reconnect_base = "300ms"
reconnect_cap = "300ms"
backfill = true

[[listener]]
name = "out"
topics = ["v2.>", "analytics.conversations"]
sink = {{ kind = "file", path = "{}", batch_interval = "50ms" }}
"#,
        preamble(dir),
        genesys_section(e, 6000),
        dir.join("out").display()
    )
}

/// Drops the socket once events flow; answers the conversations the
/// recorded gap holds.
fn make_a_gap(p: &Proc, e: &cxrelay::emulator::EmulatorHandle, dir: &std::path::Path) -> Vec<String> {
    let channel = || component(&p.get("/status").json(), "rt/channel-0");
    wait_until("real-time events flowing", Duration::from_secs(30), || {
        read_ndjson_dir(&dir.join("out")).iter().any(|l| l["source"] == "rt")
    });
    let id = e.state().notifications.channel_ids()[0].clone();
    e.inject(Fault::DropSocket { channel: Some(id) });
    wait_until("the gap recorded", Duration::from_secs(20), || {
        channel()["detail"]["gaps"]["count"] == 1
    });
    let gap = channel()["detail"]["gaps"]["recent"][0].clone();
    let window = Interval::new(gap["from_ms"].as_i64().unwrap(), gap["to_ms"].as_i64().unwrap());
    let timeline = e.state().bulk.timeline;
    let expected: Vec<String> = ended_in(&timeline, window).into_iter().collect();
    assert!(
        expected.len() >= 5,
        "a gap of {window} holds {} conversations",
        expected.len()
    );
    expected
}

/// Backfilled conversations in the output, with how often each came.
fn backfilled(dir: &std::path::Path) -> HashMap<String, usize> {
    let mut seen = HashMap::new();
    for l in read_ndjson_dir(&dir.join("out")) {
        if l["topic"] == "analytics.conversations" {
            assert_eq!(l["source"], "rt/backfill");
            *seen.entry(l["key"].as_str().unwrap().to_string()).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn the_conversations_of_a_gap_are_backfilled_exactly_once_from_analytics() {
    let e = emulator_for_backfill(Duration::ZERO);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = Proc::start(dir, &config(dir, &e));
    let expected = make_a_gap(&p, &e, dir);
    let backfilled = || backfilled(dir);
    wait_until("the gap's conversations backfilled", Duration::from_secs(30), || {
        backfilled().len() >= expected.len()
    });
    let seen = backfilled();
    for c in &expected {
        assert_eq!(seen.get(c), Some(&1), "conversation {c} of the gap");
    }
    assert_eq!(seen.len(), expected.len(), "only the gap's conversations");
    wait_until("the backfill idle again", Duration::from_secs(10), || {
        component(&p.get("/status").json(), "rt/backfill")["state"] == "idle"
    });
    let status = p.get("/status").json();
    let backfill = component(&status, "rt/backfill");
    assert_eq!(backfill["detail"]["phase"], "waiting for gaps", "{backfill}");
    // The job asked for exactly the gap.
    let jobs = e
        .state()
        .log
        .matching(|r| r.method == "POST" && r.path.ends_with("/details/jobs"));
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert!(p.terminate().success());
}

#[test]
fn a_gap_waiting_for_the_data_lake_survives_kill_9() {
    // The data lake lags by 10 s: the gap waits, durable, for it (long
    // enough for a loaded machine to see the wait before it ends).
    let e = emulator_for_backfill(Duration::from_secs(10));
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = Proc::start(dir, &config(dir, &e));
    let expected = make_a_gap(&p, &e, dir);
    wait_until(
        "the gap saved, waiting for the data lake",
        Duration::from_secs(20),
        || {
            let b = component(&p.get("/status").json(), "rt/backfill");
            b["detail"]["pending_gaps"] == 1
                && b["detail"]["phase"]
                    .as_str()
                    .is_some_and(|s| s.contains("availability"))
        },
    );
    assert!(backfilled(dir).is_empty());
    p.kill9();
    let p = Proc::start(dir, &config(dir, &e));
    wait_until(
        "the gap's conversations backfilled after the restart",
        Duration::from_secs(120),
        || {
            let seen = backfilled(dir);
            expected.iter().all(|c| seen.contains_key(c))
        },
    );
    let seen = backfilled(dir);
    for c in &expected {
        assert_eq!(seen.get(c), Some(&1), "conversation {c} of the gap");
    }
    assert!(p.terminate().success());
}

#[test]
fn the_time_cxrelay_was_stopped_is_a_gap_and_is_backfilled() {
    let e = emulator_for_backfill(Duration::ZERO);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = Proc::start(dir, &config(dir, &e));
    wait_until("real-time events flowing", Duration::from_secs(30), || {
        read_ndjson_dir(&dir.join("out")).iter().any(|l| l["source"] == "rt")
    });
    assert!(p.terminate().success());
    let stopped_ms = cxrelay_actors::event::now_ms();
    let last_heard = read_ndjson_dir(&dir.join("out"))
        .iter()
        .filter(|l| l["source"] == "rt")
        .filter_map(|l| l["received_at"].as_i64())
        .max()
        .unwrap();
    // The downtime a user would have during a deploy: the emulator goes on
    // sending, and nobody is listening.
    std::thread::sleep(Duration::from_millis(500));
    let restarted_ms = cxrelay_actors::event::now_ms();
    let p = Proc::start(dir, &config(dir, &e));
    let channel = || component(&p.get("/status").json(), "rt/channel-0");
    wait_until("the downtime recorded as a gap", Duration::from_secs(20), || {
        channel()["detail"]["gaps"]["count"] == 1
    });
    let gap = channel()["detail"]["gaps"]["recent"][0].clone();
    assert_eq!(gap["reason"], "cxrelay was not running", "{gap}");
    let (from, to) = (gap["from_ms"].as_i64().unwrap(), gap["to_ms"].as_i64().unwrap());
    assert!(
        (last_heard..=stopped_ms).contains(&from),
        "the gap starts at the last frame committed ({last_heard}..={stopped_ms}): {gap}"
    );
    assert!(to >= restarted_ms, "{gap}");
    let window = Interval::new(from, to);
    let timeline = e.state().bulk.timeline;
    let expected: Vec<String> = ended_in(&timeline, window).into_iter().collect();
    assert!(expected.len() >= 20, "{window} holds {} conversations", expected.len());
    wait_until(
        "the downtime's conversations backfilled",
        Duration::from_secs(30),
        || {
            let seen = backfilled(dir);
            expected.iter().all(|c| seen.contains_key(c))
        },
    );
    let seen = backfilled(dir);
    for c in &expected {
        assert_eq!(seen.get(c), Some(&1), "conversation {c} of the downtime");
    }
    assert_eq!(seen.len(), expected.len(), "only the downtime's conversations");
    assert!(p.terminate().success());
}
