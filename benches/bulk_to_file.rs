//! End to end, in process, against the bundled emulator: an analytics job
//! (submit, poll, cursor pages with prefetch, journal, file sink) and an
//! NDJSON export download (stream, parse, journal, file sink). Prints
//! records/s and MB/s of records from the start of the service to the last
//! record written. Set CXRELAY_BENCH_DIR to put data and output on another
//! filesystem (e.g. /dev/shm to measure the software, not the disk).

#[path = "../tests/it/common.rs"]
mod common;

use std::time::Duration;

use cxrelay::emulator::bulk::BulkSettings;
use cxrelay::emulator::exports::{Container, ExportFormat, ExportSpec};
use cxrelay::emulator::EmulatorSettings;

/// Conversations in the analytics job (10,000 an hour for 10 hours).
const CONVERSATIONS: u64 = 100_000;
/// Records of the export (2 KB each: about 400 MB).
const EXPORT_RECORDS: u64 = 200_000;

fn emulator() -> cxrelay::emulator::EmulatorHandle {
    cxrelay::emulator::start_in_thread(
        EmulatorSettings {
            requests_per_minute: 0,
            bulk: BulkSettings {
                conversations_per_hour: 10_000.0,
                job_queued: Duration::from_millis(10),
                job_pending: Duration::from_millis(10),
                exports: vec![ExportSpec {
                    id: "bench".into(),
                    format: ExportFormat::Ndjson,
                    container: Container::None,
                    records: Some(EXPORT_RECORDS),
                    bytes: None,
                    record_bytes: 2048,
                    malformed_every: 0,
                    entry_name: None,
                }],
                ..BulkSettings::default()
            },
            ..EmulatorSettings::default()
        },
        "127.0.0.1:0",
    )
    .expect("emulator")
}

/// Runs `source` until the listener committed `expected` records; answers
/// the time taken.
fn run(api: &str, source: &str, expected: u64, fsync: bool) -> Duration {
    let base = std::env::var("CXRELAY_BENCH_DIR").unwrap_or_else(|_| ".".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    let config = format!(
        r#"
[service]
data_dir = "{data}"
log_level = "warn"
[http]
listen = "127.0.0.1:0"
[genesys]
environment = "emulator"
api_url = "{api}"
requests_per_minute = 100000
[[source]]
name = "bulk"
{source}
[[listener]]
name = "files"
topics = [">"]
sink = {{ kind = "file", path = "{out}", batch_events = 2000, fsync = {fsync} }}
mailbox = 8192
batch = 2000
"#,
        data = dir.path().join("data").display(),
        out = dir.path().join("out").display(),
    );
    common::run_until_committed(&config, "files", expected)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("bulk_to_file: bench");
        return;
    }
    cxrelay::telemetry::init_logging(cxrelay::config::LogFormat::Human, "warn");
    let e = emulator();
    let record = e.state().bulk.timeline.record(0).len() as f64;
    let job = "kind = \"analytics_job\"\ninterval = \"2024-05-01T00:00:00Z/2024-05-01T10:00:00Z\"\npage_size = 1000\nprefetch = 2\npoll_interval = \"20ms\"";
    let export = "kind = \"export\"\ndownload_id = \"bench\"\nbatch_records = 1000";
    println!("end to end in process, journal on, file sink");
    for fsync in [true, false] {
        let took = run(&e.url(), job, CONVERSATIONS, fsync);
        let per_s = CONVERSATIONS as f64 / took.as_secs_f64();
        println!(
            "analytics job, {CONVERSATIONS} conversations of ~{:.1} KB, fsync {fsync:>5}: {:>8.0} records/s, {:>6.1} MB/s ({:.2} s)",
            record / 1024.0,
            per_s,
            per_s * record / 1e6,
            took.as_secs_f64()
        );
        let took = run(&e.url(), export, EXPORT_RECORDS, fsync);
        let per_s = EXPORT_RECORDS as f64 / took.as_secs_f64();
        println!(
            "NDJSON export, {EXPORT_RECORDS} records of 2 KB,          fsync {fsync:>5}: {:>8.0} records/s, {:>6.1} MB/s ({:.2} s)",
            per_s,
            per_s * 2048.0 / 1e6,
            took.as_secs_f64()
        );
    }
}
