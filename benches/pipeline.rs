//! End to end: generator -> (journal) -> router -> file sink, in process.
//! Prints events/s with the journal on and off, at full speed and paced at
//! 100k events/s, with the shipped defaults. Set CXRELAY_BENCH_DIR to put
//! data and output on another filesystem (e.g. /dev/shm to measure the
//! software, not the disk).

#[path = "../tests/it/common.rs"]
mod common;

use std::time::Duration;

const EVENTS: u64 = 400_000;

fn run(journal: bool, rate: u64) -> (f64, Duration) {
    let base = std::env::var("CXRELAY_BENCH_DIR").unwrap_or_else(|_| ".".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    let config = format!(
        r#"
[service]
data_dir = "{data}"
journal = {journal}
[http]
listen = "127.0.0.1:0"
[[source]]
name = "gen"
kind = "generator"
topics = ["v2.detail.events.conversation.{{key}}.customer.start"]
rate = {rate}
count = {EVENTS}
payload_bytes = 1024
[[listener]]
name = "files"
topics = ["v2.detail.events.>"]
sink = {{ kind = "file", path = "{out}" }}
"#,
        data = dir.path().join("data").display(),
        out = dir.path().join("out").display(),
    );
    let elapsed = common::run_until_committed(&config, "files", EVENTS);
    (EVENTS as f64 / elapsed.as_secs_f64(), elapsed)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("pipeline: bench");
        return;
    }
    cxrelay::telemetry::init_logging(cxrelay::config::LogFormat::Human, "info");
    println!("end to end, {EVENTS} events of ~1 KB, generator -> file (fsync per batch)");
    // CXRELAY_BENCH_ONLY=off|on runs one configuration at full speed (for
    // profiling).
    if let Ok(only) = std::env::var("CXRELAY_BENCH_ONLY") {
        let (r, _) = run(only == "on", 10_000_000);
        println!("full speed, journal {only}: {r:.0} events/s");
        return;
    }
    for (label, rate) in [("full speed", 10_000_000u64), ("paced 100k/s", 100_000)] {
        let (off, _) = run(false, rate);
        let (on, _) = run(true, rate);
        println!(
            "{label:>13}: journal off {off:>9.0} events/s | journal on {on:>9.0} events/s | journal cost {:>5.1}%",
            (1.0 - on / off) * 100.0
        );
    }
}
