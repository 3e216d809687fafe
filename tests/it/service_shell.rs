//! The service as a user runs it: the binary, a config file, HTTP.

use std::collections::HashSet;
use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn generator_config(dir: &std::path::Path, count: Option<u64>, rate: u64) -> String {
    let count = count.map(|c| format!("count = {c}\n")).unwrap_or_default();
    format!(
        r#"{}
[[source]]
name = "gen"
kind = "generator"
topics = ["v2.detail.events.conversation.{{key}}.customer.start", "v2.users.u1.presence"]
rate = {rate}
{count}keys = 50
payload_bytes = 300

[[listener]]
name = "out"
topics = ["v2.detail.events.>"]
sink = {{ kind = "file", path = "{}", batch_events = 500, batch_interval = "50ms" }}
mailbox = 2048
when_full = "block"
"#,
        preamble(dir),
        dir.join("out").display()
    )
}

#[test]
fn events_flow_to_files_and_every_endpoint_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Proc::start(tmp.path(), &generator_config(tmp.path(), Some(6000), 20_000));
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    assert_eq!(p.get("/health/live").status, 200);
    // Half the topics match the listener; the other half are counted as
    // unrouted, not silently lost.
    wait_until("3000 events in files", Duration::from_secs(60), || {
        read_ndjson_dir(&tmp.path().join("out")).len() >= 3000
    });
    let lines = read_ndjson_dir(&tmp.path().join("out"));
    let ids: HashSet<String> = lines.iter().map(|l| l["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids.len(), 3000, "no duplicates");
    let expected: HashSet<String> = (0..6000).step_by(2).map(|n| format!("gen-{n}")).collect();
    assert_eq!(ids, expected);
    assert!(lines.iter().all(|l| l["payload"]["conversationId"].is_string()));

    let status = p.get("/status").json();
    let names: Vec<&str> = status["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"gen") && names.contains(&"out") && names.contains(&"router"),
        "{names:?}"
    );
    let l = &status["listeners"][0];
    assert_eq!(l["name"], "out");
    assert_eq!(l["queue"]["capacity"], 2048);
    assert_eq!(l["queue"]["delivered"], 3000);
    assert_eq!(status["router"]["unrouted"], 3000);

    let metrics = p.get("/metrics").text();
    assert_eq!(
        metric(&metrics, "cxrelay_listener_delivered_total{listener=\"out\"}"),
        Some(3000.0),
        "{metrics}"
    );
    assert_eq!(metric(&metrics, "cxrelay_router_unrouted_total"), Some(3000.0));
    assert_eq!(
        metric(
            &metrics,
            "cxrelay_listener_dropped_total{listener=\"out\",reason=\"queue_full\"}"
        ),
        Some(0.0)
    );
    assert!(metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .all(|l| l.starts_with("cxrelay_")));
    let status = p.terminate();
    assert!(status.success(), "exit {status:?}");
}

#[test]
fn sigterm_drains_queues_and_commits_before_exiting_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let p = Proc::start(tmp.path(), &generator_config(tmp.path(), None, 50_000));
    wait_until("events flowing", Duration::from_secs(30), || {
        read_ndjson_dir(&tmp.path().join("out")).len() > 5000
    });
    let log = p.log.clone();
    let status = p.terminate();
    assert!(status.success(), "exit {status:?}");
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("\"clean\":true"), "{text}");
    // Everything the generator handed over was written: ids are contiguous
    // (matching events are the even numbers), nothing missing at the end.
    let mut nums: Vec<u64> = read_ndjson_dir(&tmp.path().join("out"))
        .iter()
        .map(|l| l["id"].as_str().unwrap()[4..].parse().unwrap())
        .collect();
    nums.sort();
    let expected: Vec<u64> = (0..nums.len() as u64).map(|i| i * 2).collect();
    assert_eq!(nums, expected);
}

fn check(config: &str) -> (i32, String, String) {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let out = Command::new(binary())
        .arg("check")
        .arg("--config")
        .arg(&path)
        .env_remove("GENESYS_CLIENT_SECRET")
        .env("GENESYS_CLIENT_ID", "someone")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).replace(&path.display().to_string(), "bad.toml");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    )
}

#[test]
fn check_names_a_typo_with_file_line_and_key() {
    let (code, _, err) = check(
        "[service]\ndata_dir = \"d\"\n\n[[listener]]\nname = \"a\"\ntopics = [\"x.>\"]\nwhen_ful = \"block\"\nsink = { kind = \"stdout\" }\n",
    );
    assert_eq!(code, 2);
    assert!(err.contains("bad.toml:7:1:"), "{err}");
    assert!(err.contains("unknown field `when_ful`"), "{err}");
}

#[test]
fn check_names_a_missing_secret_variable() {
    let (code, _, err) = check("[genesys]\nenvironment = \"mypurecloud.com\"\n");
    assert_eq!(code, 2);
    assert!(
        err.contains(
            "bad.toml:1:1: `genesys.client_secret_env`: environment variable `GENESYS_CLIENT_SECRET` is not set"
        ) || err.contains("`genesys.client_secret_env`: environment variable `GENESYS_CLIENT_SECRET` is not set"),
        "{err}"
    );
    assert!(!err.contains("someone"), "never print a secret value");
}

#[test]
fn check_prints_the_topology_of_the_shipped_config() {
    let out = Command::new(binary())
        .arg("check")
        .arg("--config")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("listeners:") && stdout.contains("OK"), "{stdout}");
}

/// The admin token is checked before a request is looked at: a caller
/// without it learns nothing of the schema and makes cxrelay decode nothing.
#[test]
fn admin_requests_are_authenticated_before_any_extractor_runs() {
    use std::io::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = Proc::start_with(dir, &preamble(dir), &[("CXRELAY_ADMIN_TOKEN", "adm1n")]);
    // A malformed query would be a 400 naming the field if parsed first.
    let r = p.get("/admin/dead-letters?limit=lots");
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(!r.text().contains("limit"), "{}", r.text());
    // 100 KB of gzip that decodes to 100 MB: refused unread.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b' '; 100 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    let rss_before = rss_bytes(p.pid());
    for _ in 0..3 {
        let r = request(
            p.addr,
            "POST",
            "/admin/dead-letters/replay",
            &[("Content-Type", "application/json"), ("Content-Encoding", "gzip")],
            &bomb,
        )
        .unwrap();
        assert_eq!(r.status, 401);
    }
    let rss_after = rss_bytes(p.pid());
    assert!(rss_after < rss_before + (8 << 20), "rss {rss_before} -> {rss_after}");
    // With the token the API answers.
    let r = request(
        p.addr,
        "GET",
        "/admin/dead-letters",
        &[("Authorization", "Bearer adm1n")],
        b"",
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(p.terminate().success());
}
