//! End to end, in process, against the bundled emulator: an analytics job
//! (submit, poll, cursor pages with prefetch, journal, file sink) and an
//! NDJSON export download (stream, parse, journal, file sink). Prints
//! records/s and MB/s of records from the start of the service to the last
//! record written, with the shipped defaults (but for the request budget,
//! the emulator granting more than an org's 300 a minute, and the job's
//! poll interval, matched to the emulator's 10 ms job states). Set
//! CXRELAY_BENCH_DIR to put data and output on another filesystem (e.g.
//! /dev/shm to measure the software, not the disk).

#[path = "../tests/it/common.rs"]
mod common;

use std::time::Duration;

use cxrelay::emulator::bulk::BulkSettings;
use cxrelay::emulator::exports::{Container, ExportFormat, ExportSpec};
use cxrelay::emulator::EmulatorSettings;

/// The analytics job's interval: 10 hours of 10,000 conversations an hour
/// (the ones still open at its end are left for a later interval).
const INTERVAL: &str = "2024-05-01T00:00:00Z/2024-05-01T10:00:00Z";
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

/// Runs `source` until it has finished and the listener has committed every
/// record it took in; answers the time taken and the records.
fn run(e: &cxrelay::emulator::EmulatorHandle, source: &str, fsync: bool) -> (Duration, u64) {
    let base = std::env::var("CXRELAY_BENCH_DIR").unwrap_or_else(|_| ".".into());
    let dir = tempfile::tempdir_in(base).unwrap();
    let config = format!(
        r#"
[service]
data_dir = "{data}"
[http]
listen = "127.0.0.1:0"
{genesys}[[source]]
name = "bulk"
{source}
[[listener]]
name = "files"
topics = [">"]
sink = {{ kind = "file", path = "{out}", fsync = {fsync} }}
"#,
        data = dir.path().join("data").display(),
        out = dir.path().join("out").display(),
        genesys = common::genesys_section(e, 100_000),
    );
    common::run_until(&config, |detail| {
        let source = detail("bulk");
        let records = common::count(&source, "records");
        let finished = source.get("finished").and_then(|v| v.as_bool()) == Some(true);
        (finished && common::count(&detail("files"), "committed_events") >= records).then_some(records)
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("bulk_to_file: bench");
        return;
    }
    cxrelay::telemetry::init_logging(cxrelay::config::LogFormat::Human, "info");
    let e = emulator();
    let record = e.state().bulk.timeline.record(0).len() as f64;
    let job = format!(
        "kind = \"analytics_job\"\ninterval = \"{INTERVAL}\"\npage_size = 1000\nprefetch = 2\npoll_interval = \"20ms\""
    );
    let export = "kind = \"export\"\ndownload_id = \"bench\"\nbatch_records = 1000";
    println!("end to end in process, journal on, file sink");
    for fsync in [true, false] {
        let (took, conversations) = run(&e, &job, fsync);
        let per_s = conversations as f64 / took.as_secs_f64();
        println!(
            "analytics job, {conversations} conversations of ~{:.1} KB, fsync {fsync:>5}: {:>8.0} records/s, {:>6.1} MB/s ({:.2} s)",
            record / 1024.0,
            per_s,
            per_s * record / 1e6,
            took.as_secs_f64()
        );
        let (took, records) = run(&e, export, fsync);
        assert_eq!(records, EXPORT_RECORDS, "every record of the export");
        let per_s = records as f64 / took.as_secs_f64();
        println!(
            "NDJSON export, {EXPORT_RECORDS} records of 2 KB,          fsync {fsync:>5}: {:>8.0} records/s, {:>6.1} MB/s ({:.2} s)",
            per_s,
            per_s * 2048.0 / 1e6,
            took.as_secs_f64()
        );
    }
}
