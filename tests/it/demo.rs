//! `cxrelay demo` as a user runs it from a fresh clone: the shipped
//! config.toml, the bundled emulator in-process, no credentials, events in
//! data/out/ within seconds.

use std::collections::HashSet;
use std::time::Duration;

use crate::common::*;

#[test]
fn the_demo_runs_the_shipped_config_against_the_emulator_and_writes_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let shipped = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml")).unwrap();
    // The only change: a free port, so the test never collides with a
    // cxrelay already running on 8080.
    let config = shipped.replace("listen = \"127.0.0.1:8080\"", "listen = \"127.0.0.1:0\"");
    assert_ne!(config, shipped, "config.toml listens on 127.0.0.1:8080");
    let config = config.replace("log_format = \"human\"", "log_format = \"json\"");
    let p = Proc::start_command(dir, &config, &[("GENESYS_CLIENT_SECRET", "")], "demo");
    let out = dir.join("data/out/warehouse");
    let sources = || -> HashSet<String> {
        read_ndjson_dir(&out)
            .iter()
            .filter_map(|l| l["source"].as_str().map(str::to_string))
            .collect()
    };
    wait_until(
        "real-time events in data/out/warehouse",
        Duration::from_secs(20),
        || sources().contains("queues"),
    );
    wait_until(
        "analytics records in data/out/warehouse",
        Duration::from_secs(40),
        || sources().contains("details"),
    );
    wait_until("ready", Duration::from_secs(10), || {
        p.get("/health/ready").status == 200
    });
    let status = p.get("/status").json();
    assert_eq!(component(&status, "emulator")["state"], "running", "{status}");
    assert_eq!(component(&status, "genesys-auth")["state"], "running", "{status}");
    let lines = read_ndjson_dir(&out);
    for l in &lines {
        let payload = l["payload"].to_string();
        assert!(!payload.contains("\"ani\":\"tel:"), "clear-text ani in {payload}");
        assert!(
            !payload.contains("\"addressFrom\":\"tel:"),
            "clear-text addressFrom in {payload}"
        );
    }
    let record = lines.iter().find(|l| l["source"] == "details").unwrap();
    assert_eq!(record["topic"], "analytics.conversations");
    assert!(record["payload"]["conversationStart"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert!(p.log_text().contains("bundled emulator running in-process"));
    assert!(p.terminate().success());
}

#[test]
fn the_demo_runs_without_any_config_file_and_writes_under_cxrelay_demo() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log = dir.join("demo.log");
    let mut child = std::process::Command::new(binary())
        .arg("demo")
        .current_dir(dir)
        .env_remove("CXRELAY_CONFIG")
        .env_remove("GENESYS_CLIENT_ID")
        .env_remove("GENESYS_CLIENT_SECRET")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let out = dir.join("cxrelay-demo/data/out/warehouse");
    // Closed files only: what a loader would see.
    let closed_lines = || -> usize {
        std::fs::read_dir(&out)
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok())
            .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .map(|t| t.lines().count())
            .sum()
    };
    let text = || std::fs::read_to_string(&log).unwrap_or_default();
    wait_until("events written under ./cxrelay-demo", Duration::from_secs(15), || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("cxrelay demo exited with {status}:\n{}", text());
        }
        closed_lines() > 0
    });
    let banner = text();
    assert!(banner.contains("built-in demo configuration"), "{banner}");
    assert!(
        banner.contains(&dir.join("cxrelay-demo").display().to_string()),
        "{banner}"
    );
    assert!(!dir.join("config.toml").exists() && !dir.join("data").exists());
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success(), "{}", text());
}
