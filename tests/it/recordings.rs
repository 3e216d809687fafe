//! The `recordings` source against the emulator: batch requests, files
//! streamed and resumed by Range, expired URLs replaced through a fresh
//! batch, events announcing each recording once durable, restarts that
//! fetch only what is left.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::common::*;
use cxrelay::emulator::bulk::BulkSettings;
use cxrelay::emulator::{EmulatorHandle, EmulatorSettings, Fault};
use sha2::{Digest, Sha256};

const BYTES: u64 = 2 << 20;

fn emulator_for_recordings() -> EmulatorHandle {
    emulator(EmulatorSettings {
        requests_per_minute: 0,
        bulk: BulkSettings {
            recording_delay: Duration::from_millis(300),
            recording_bytes: BYTES,
            ..BulkSettings::default()
        },
        ..EmulatorSettings::default()
    })
}

fn config(dir: &Path, e: &EmulatorHandle, recordings: &[&str]) -> String {
    let list: Vec<String> = recordings.iter().map(|r| format!("\"{r}\"")).collect();
    format!(
        r#"{}{}[[source]]
name = "recs"
kind = "recordings"
recordings = [{}]
output = "{}"
poll_interval = "200ms"

[[listener]]
name = "out"
topics = ["recordings.>"]
sink = {{ kind = "file", path = "{}", batch_interval = "20ms" }}
"#,
        preamble(dir),
        genesys_section(e, 6000),
        list.join(", "),
        dir.join("recordings").display(),
        dir.join("out").display()
    )
}

fn announced(dir: &Path) -> HashMap<String, serde_json::Value> {
    read_ndjson_dir(&dir.join("out"))
        .into_iter()
        .map(|l| (l["id"].as_str().unwrap().to_string(), l["payload"].clone()))
        .collect()
}

fn downloads(e: &EmulatorHandle) -> Vec<(u16, String)> {
    e.state()
        .log
        .matching(|r| r.path.starts_with("/downloads/recordings/"))
        .into_iter()
        .map(|r| (r.status, r.path))
        .collect()
}

#[test]
fn recordings_land_in_files_resumed_by_range_and_through_fresh_batches() {
    let e = emulator_for_recordings();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // The first transfer breaks twice; then every URL handed out so far
    // expires, so the rest needs a fresh batch.
    e.inject(Fault::CutDownload {
        count: 2,
        after_bytes: 700_000,
        path: Some("/downloads/recordings/".into()),
    });
    let recs = ["c1/r1", "c1/r2", "c2/r3", "c3/missing-r4"];
    let p = Proc::start(dir, &config(dir, &e, &recs));
    wait_until("the first recording", Duration::from_secs(30), || {
        announced(dir).contains_key("r1")
    });
    e.inject(Fault::ExpireDownloads);
    wait_until("every recording announced", Duration::from_secs(60), || {
        announced(dir).len() == 4
    });
    let seen = announced(dir);
    for id in ["r1", "r2", "r3"] {
        let meta = &seen[id];
        assert_eq!(meta["status"], "downloaded", "{meta}");
        assert_eq!(meta["bytes"], BYTES);
        let file = std::fs::read(meta["path"].as_str().unwrap()).unwrap();
        assert_eq!(file.len() as u64, BYTES);
        assert_eq!(&file[..4], b"OggS");
        assert_eq!(
            meta["sha256"].as_str().unwrap(),
            hex::encode(Sha256::digest(&file)),
            "{id}"
        );
        assert!(meta["path"].as_str().unwrap().ends_with(&format!("{id}.ogg")));
    }
    assert_eq!(seen["missing-r4"]["status"], "unavailable");
    assert!(seen["missing-r4"]["error"].as_str().unwrap().contains("not found"));
    let statuses: Vec<u16> = downloads(&e).iter().map(|d| d.0).collect();
    assert!(
        statuses.iter().filter(|s| **s == 206).count() >= 2,
        "resumed by Range: {statuses:?}"
    );
    assert!(statuses.contains(&403), "an expired URL was met: {statuses:?}");
    let batches = e
        .state()
        .log
        .count(|r| r.method == "POST" && r.path == "/api/v2/recording/batchrequests");
    assert!(batches >= 2, "a fresh batch after the expiry ({batches})");
    let status = p.get("/status").json();
    let c = component(&status, "recs");
    assert_eq!(
        (c["state"].as_str(), c["detail"]["downloaded"].as_u64()),
        (Some("idle"), Some(3)),
        "{c}"
    );
    assert!(!std::fs::read_dir(dir.join("recordings/c1")).unwrap().any(|f| f
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".part")));
    assert!(p.terminate().success());
}

#[test]
fn a_restart_fetches_only_what_is_left_and_continues_a_half_written_file() {
    let e = emulator_for_recordings();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let recs = ["c1/r1", "c1/r2"];
    // Every transfer stops after 600 KB (and is resumed): files grow in
    // steps, so cxrelay can be stopped with the second one half written.
    e.inject(Fault::CutDownload {
        count: 1000,
        after_bytes: 600_000,
        path: Some("/downloads/recordings/".into()),
    });
    let p = Proc::start(dir, &config(dir, &e, &recs));
    let part = dir.join("recordings/c1/r2.ogg.part");
    wait_until("r1 done and r2 half written", Duration::from_secs(30), || {
        announced(dir).contains_key("r1") && std::fs::metadata(&part).is_ok_and(|m| m.len() > 0)
    });
    p.kill9();
    e.state().faults.clear();
    let kept = std::fs::metadata(&part).unwrap().len();
    assert!(kept > 0 && kept < BYTES, "{kept}");
    let before = downloads(&e).len();
    let batches_before = e
        .state()
        .log
        .count(|r| r.method == "POST" && r.path == "/api/v2/recording/batchrequests");
    let p = Proc::start(dir, &config(dir, &e, &recs));
    wait_until("both recordings", Duration::from_secs(30), || announced(dir).len() == 2);
    let seen = announced(dir);
    let r2 = std::fs::read(seen["r2"]["path"].as_str().unwrap()).unwrap();
    assert_eq!(r2.len() as u64, BYTES);
    assert_eq!(seen["r2"]["sha256"].as_str().unwrap(), hex::encode(Sha256::digest(&r2)));
    // One batch for what was left (r2 alone: index 0), and its transfer
    // continued the part file by Range.
    let batches = e
        .state()
        .log
        .count(|r| r.method == "POST" && r.path == "/api/v2/recording/batchrequests");
    assert_eq!(batches - batches_before, 1);
    let after: Vec<(u16, String)> = downloads(&e).into_iter().skip(before).collect();
    assert!(
        after.iter().all(|(_, path)| path.ends_with("/0")),
        "only r2 fetched: {after:?}"
    );
    assert_eq!(
        after.first().map(|d| d.0),
        Some(206),
        "resumed from byte {kept}: {after:?}"
    );
    // r1's event may be written twice (at least once: it was written but
    // perhaps not yet acknowledged when cxrelay was killed), never lost.
    assert!(read_ndjson_dir(&dir.join("out")).iter().any(|l| l["id"] == "r1"));
    assert!(p.terminate().success());
}

/// A local write failure (here: the recording's directory cannot be
/// created) is transient: the recording is tried again, never announced as
/// unavailable, and lands once the cause is gone.
#[test]
fn a_local_write_failure_is_retried_not_reported_unavailable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let e = emulator_for_recordings();
    // The conversation's directory name is taken by a file.
    std::fs::create_dir_all(dir.join("recordings")).unwrap();
    let blocker = dir.join("recordings").join("conv-local");
    std::fs::write(&blocker, b"in the way").unwrap();
    let p = Proc::start(dir, &config(dir, &e, &["conv-local/rec-1"]));
    wait_until("the failure is reported and retried", Duration::from_secs(30), || {
        let c = component(&p.get("/status").json(), "recs");
        c["state"] == "degraded" && c["detail"]["local_failures"].as_u64().unwrap_or(0) >= 1
    });
    assert!(
        announced(dir).is_empty(),
        "nothing announced while it cannot be written"
    );
    std::fs::remove_file(&blocker).unwrap();
    wait_until("downloaded once the cause is gone", Duration::from_secs(60), || {
        announced(dir).get("rec-1").is_some_and(|v| v["status"] == "downloaded")
    });
    assert!(p.terminate().success());
}
