//! `cxrelay backfill`: an analytics job source of the config run over a
//! given interval against the bundled emulator (in-process), with progress
//! shown, every record delivered, and exit 0.

use std::collections::HashSet;
use std::process::Command;

use crate::common::*;
use cxrelay::emulator::bulk::{BulkSettings, BulkState};
use cxrelay::emulator::records::Timeline;
use cxrelay::genesys::interval::Interval;

/// 10,000 an hour: two hours hold exactly 20,000 conversations.
const PER_HOUR: f64 = 10_000.0;
const INTERVAL: &str = "2024-05-01T00:00:00Z/2024-05-01T02:00:00Z";

#[test]
fn backfill_runs_an_interval_to_completion_with_progress_and_delivers_every_record() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The source is configured for rolling windows; the backfill runs it
    // over the interval given instead, and only it (the generator stays off).
    let config = format!(
        r#"{}[genesys]
environment = "emulator"
requests_per_minute = 6000

[emulator]
seed = 7
requests_per_minute = 0

[emulator.bulk]
conversations_per_hour = {PER_HOUR}
data_lag = "0s"
job_queued = "100ms"
job_pending = "100ms"

[[source]]
name = "noise"
kind = "generator"
topics = ["noise.x"]

[[source]]
name = "details"
kind = "analytics_job"
every = "15m"
poll_interval = "100ms"

[[listener]]
name = "warehouse"
topics = ["analytics.conversations", "noise.>"]
sink = {{ kind = "file", path = "out", batch_events = 5000, batch_interval = "100ms" }}
mailbox = 8192
"#,
        preamble(dir)
    );
    std::fs::write(dir.join("config.toml"), config).unwrap();
    let out = Command::new(binary())
        .args(["backfill", "--source", "details", "--interval", INTERVAL, "--config"])
        .arg(dir.join("config.toml"))
        .current_dir(dir)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    // Not a terminal: plain progress lines, then the result.
    assert!(
        err.contains("backfill details/backfill:") && err.contains("records/s"),
        "{err}"
    );
    let delivered_count = ended_in(&timeline_of_the_config(), Interval::parse(INTERVAL).unwrap()).len();
    assert!(err.contains(&format!("{delivered_count} records")), "{err}");
    assert!(err.contains("every record delivered"), "{err}");

    let timeline = timeline_of_the_config();
    let window = Interval::parse(INTERVAL).unwrap();
    let expected: HashSet<String> = ended_in(&timeline, window).into_iter().collect();
    assert!(expected.len() > 19_900, "{}", expected.len());
    let lines = read_ndjson_dir(&dir.join("out"));
    assert!(
        lines.iter().all(|l| l["source"] == "details/backfill"),
        "only the backfill ran"
    );
    let keys: Vec<String> = lines.iter().map(|l| l["key"].as_str().unwrap().to_string()).collect();
    let delivered: HashSet<String> = keys.iter().cloned().collect();
    assert_eq!(keys.len(), expected.len(), "no duplicates");
    assert_eq!(delivered, expected);

    // An unknown source, or one of the wrong kind, is refused clearly.
    let (code, _, err) = cxrelay_cmd(dir, &["backfill", "--source", "nope", "--interval", INTERVAL], &[]);
    assert_eq!(code, 2);
    assert!(
        err.contains("no source named `nope`") && err.contains("details"),
        "{err}"
    );
    let (code, _, err) = cxrelay_cmd(dir, &["backfill", "--source", "noise", "--interval", INTERVAL], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("`generator` source"), "{err}");
}

/// The conversations of the configuration's emulator (seed 7, PER_HOUR).
fn timeline_of_the_config() -> Timeline {
    let settings = BulkSettings {
        conversations_per_hour: PER_HOUR,
        ..BulkSettings::default()
    };
    BulkState::new(7, &settings).timeline
}
