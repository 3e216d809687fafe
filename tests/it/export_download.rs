//! `kind = "export"` against the emulator, through the binary: a 2 GB
//! NDJSON export and a 1 GB JSON array inside a ZIP streamed in bounded
//! memory while the transfer is cut twice and resumed by Range; `kill -9`
//! and resume after the last committed record; malformed records in dead
//! letters; expired URLs asked for again.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use cxrelay::emulator::bulk::BulkSettings;
use cxrelay::emulator::exports::{Container, ExportFormat, ExportSpec};
use cxrelay::emulator::{EmulatorHandle, EmulatorSettings, Fault};
use cxrelay::sources::checkpoint::JsonCheckpoint;

const MB: u64 = 1 << 20;

fn shm_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cxrelay-export-")
        .tempdir_in("/dev/shm")
        .unwrap_or_else(|_| tempfile::tempdir().unwrap())
}

fn spec(id: &str, format: ExportFormat, container: Container) -> ExportSpec {
    ExportSpec {
        id: id.into(),
        format,
        container,
        records: None,
        bytes: None,
        record_bytes: 1024,
        malformed_every: 0,
        entry_name: None,
    }
}

fn emulator_with(exports: Vec<ExportSpec>, download_ttl: Duration) -> EmulatorHandle {
    emulator(EmulatorSettings {
        requests_per_minute: 0,
        bulk: BulkSettings {
            exports,
            download_ttl,
            ..BulkSettings::default()
        },
        ..EmulatorSettings::default()
    })
}

fn config(dir: &Path, e: &EmulatorHandle, source: &str) -> String {
    format!(
        r#"{}{}[[source]]
name = "export"
kind = "export"
{source}

[[listener]]
name = "lake"
topics = ["exports.>"]
sink = {{ kind = "file", path = "{}", fsync = false, batch_events = 4000, batch_interval = "50ms", rotate_bytes = 1073741824 }}
"#,
        preamble(dir),
        genesys_section(e, 6000),
        dir.join("out").display()
    )
}

/// Which record numbers the output holds (ids are record numbers), and
/// how many lines.
fn output_ids(dir: &Path, records: u64) -> (Vec<u32>, u64) {
    let mut seen = vec![0u32; records as usize];
    let mut lines = 0;
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    for f in files {
        let Ok(file) = std::fs::File::open(&f) else { continue };
        let mut r = std::io::BufReader::with_capacity(1 << 20, file);
        let mut line = Vec::with_capacity(4096);
        loop {
            line.clear();
            if r.read_until(b'\n', &mut line).unwrap() == 0 || !line.ends_with(b"\n") {
                break;
            }
            let id = line
                .strip_prefix(b"{\"id\":\"")
                .and_then(|rest| rest.iter().position(|b| *b == b'"').map(|end| &rest[..end]))
                .and_then(|digits| std::str::from_utf8(digits).ok()?.parse::<usize>().ok())
                .unwrap_or_else(|| {
                    panic!(
                        "unexpected line {}",
                        String::from_utf8_lossy(&line[..80.min(line.len())])
                    )
                });
            seen[id] += 1;
            lines += 1;
        }
    }
    (seen, lines)
}

fn source_status(p: &Proc) -> serde_json::Value {
    component(&p.get("/status").json(), "export")
}

fn finished(p: &Proc) -> bool {
    source_status(p)["detail"]["finished"] == true
}

/// GET requests of a download path the emulator answered: statuses in order.
fn downloads(e: &EmulatorHandle, path: &str) -> Vec<u16> {
    e.state()
        .log
        .matching(|r| r.method == "GET" && r.path == path)
        .into_iter()
        .map(|r| r.status)
        .collect()
}

/// Runs a big export through cxrelay with two cuts, sampling RSS; answers
/// the peak RSS and the time taken.
fn stream_big_export(spec: ExportSpec, cuts: [u64; 2]) -> (u64, Duration) {
    let started = Instant::now();
    let tmp = shm_dir();
    let dir = tmp.path();
    let id = spec.id.clone();
    let e = emulator_with(vec![spec], Duration::from_secs(3600));
    let file = e.state().bulk.exports.get(&id).unwrap();
    let records = file.payload.records;
    let path = format!("/downloads/exports/{id}");
    for after_bytes in cuts {
        e.inject(Fault::CutDownload {
            count: 1,
            after_bytes,
            path: Some(path.clone()),
        });
    }
    let p = Proc::start(dir, &config(dir, &e, &format!("download_id = \"{id}\"")));
    let pid = p.pid();
    let mut peak = 0;
    wait_until("the export delivered", Duration::from_secs(240), || {
        peak = peak.max(rss_bytes(pid));
        finished(&p)
    });
    let status = source_status(&p);
    let d = &status["detail"];
    assert_eq!(d["records"].as_u64(), Some(records), "{status}");
    assert_eq!(d["resumes"], 2, "{status}");
    assert_eq!(d["bytes_received"].as_u64(), Some(file.len()), "{status}");
    assert_eq!(downloads(&e, &path), [200, 206, 206], "cut twice, resumed by Range");
    assert!(p.terminate().success());
    let (seen, lines) = output_ids(&dir.join("out"), records);
    assert_eq!(lines, records, "each record once");
    assert!(seen.iter().all(|n| *n == 1), "every record delivered exactly once");
    (peak, started.elapsed())
}

#[test]
fn a_2_gb_ndjson_export_streams_in_bounded_memory_through_two_cuts() {
    let spec = ExportSpec {
        bytes: Some(2_000_000_000),
        record_bytes: 2048,
        ..spec("big", ExportFormat::Ndjson, Container::None)
    };
    let (peak, took) = stream_big_export(spec, [700 * MB, 600 * MB]);
    eprintln!("2 GB NDJSON: {:.1} s, peak RSS {} MB", took.as_secs_f64(), peak / MB);
    assert!(peak < 150 * MB, "peak RSS {} MB", peak / MB);
}

#[test]
fn a_1_gb_json_array_inside_a_zip_streams_in_bounded_memory_through_two_cuts() {
    let spec = ExportSpec {
        bytes: Some(1_000_000_000),
        record_bytes: 2048,
        ..spec("zipped", ExportFormat::Json, Container::Zip)
    };
    let (peak, took) = stream_big_export(spec, [300 * MB, 400 * MB]);
    eprintln!(
        "1 GB JSON in ZIP: {:.1} s, peak RSS {} MB",
        took.as_secs_f64(),
        peak / MB
    );
    assert!(peak < 150 * MB, "peak RSS {} MB", peak / MB);
}

#[test]
fn after_kill_9_an_export_resumes_after_its_last_committed_record() {
    for (format, container, by_range) in [
        (ExportFormat::Ndjson, Container::None, true),
        (ExportFormat::Json, Container::None, true),
        (ExportFormat::Json, Container::Zip, false),
    ] {
        let tmp = shm_dir();
        let dir = tmp.path();
        let spec = ExportSpec {
            records: Some(60_000),
            ..spec("resume", format, container)
        };
        let e = emulator_with(vec![spec], Duration::from_secs(3600));
        let path = "/downloads/exports/resume";
        let cfg = config(dir, &e, "download_id = \"resume\"\nbatch_records = 200");
        let p = Proc::start(dir, &cfg);
        wait_until("some records committed", Duration::from_secs(60), || {
            source_status(&p)["detail"]["next_record"].as_u64().unwrap_or(0) >= 10_000
        });
        p.kill9();
        let db = cxrelay::store::StoreDb::open(&dir.join("data"), 86_400_000, 1000).unwrap();
        let cp =
            cxrelay::sources::export_download::ExportCheckpoint::decode(db.checkpoint("export").unwrap().as_deref());
        drop(db);
        assert!(cp.records >= 10_000 && !cp.done, "{cp:?}");
        assert_eq!(cp.resume_at.is_some(), by_range, "{cp:?}");

        let p = Proc::start(dir, &cfg);
        wait_until("the export delivered", Duration::from_secs(60), || finished(&p));
        let statuses = downloads(&e, path);
        assert_eq!(
            statuses.last(),
            Some(if by_range { &206 } else { &200 }),
            "{format:?}: {statuses:?}"
        );
        // The second run delivered only what was not committed.
        assert_eq!(
            source_status(&p)["detail"]["records"].as_u64(),
            Some(60_000 - cp.records),
            "{format:?}"
        );
        assert!(p.terminate().success());
        let (seen, _) = output_ids(&dir.join("out"), 60_000);
        assert!(seen.iter().all(|n| *n >= 1), "{format:?}: every record delivered");
    }
}

#[test]
fn malformed_records_go_to_dead_letters_with_their_position_and_the_rest_are_delivered() {
    for (format, container) in [
        (ExportFormat::Ndjson, Container::None),
        (ExportFormat::Json, Container::None),
        (ExportFormat::Ndjson, Container::Gzip),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let spec = ExportSpec {
            records: Some(5_000),
            malformed_every: 100,
            ..spec("dirty", format, container)
        };
        let e = emulator_with(vec![spec], Duration::from_secs(3600));
        let p = Proc::start(dir, &config(dir, &e, "download_id = \"dirty\""));
        wait_until("delivered", Duration::from_secs(60), || finished(&p));
        let d = source_status(&p)["detail"].clone();
        assert_eq!(
            (d["records"].as_u64(), d["dead_lettered"].as_u64()),
            (Some(4_950), Some(50)),
            "{format:?}"
        );
        assert!(p.terminate().success());
        let (seen, lines) = output_ids(&dir.join("out"), 5_000);
        assert_eq!(lines, 4_950);
        assert!(seen.iter().enumerate().all(|(i, n)| *n == u32::from(i % 100 != 99)));
        let (code, out, err) = cxrelay_cmd(dir, &["dlq", "list", "--json"], &[]);
        assert_eq!(code, 0, "{err}");
        let letters: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
        assert_eq!(letters.len(), 50);
        let first = &letters[0];
        assert_eq!(first["source"], "export");
        let position = first["position"].as_str().unwrap();
        match (format, container) {
            (ExportFormat::Ndjson, Container::None) => {
                assert_eq!(position, "record 99 (bytes 101376-102400)");
                assert!(first["error"].as_str().unwrap().starts_with("malformed JSON"));
            }
            (ExportFormat::Json, _) => {
                // `[`, then 1025 bytes per record with its comma.
                assert_eq!(position, "record 99 (bytes 101476-102500)");
                assert!(first["error"].as_str().unwrap().contains("not an object"));
            }
            _ => assert_eq!(position, "record 99"),
        }
        assert!(first["payload"].as_str().unwrap().contains("corrupted record"));
    }
}

#[test]
fn an_expired_download_url_is_asked_for_again_and_a_fixed_one_fails_clearly() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let e = emulator_with(
        vec![ExportSpec {
            records: Some(60_000),
            ..spec("exp", ExportFormat::Ndjson, Container::Gzip)
        }],
        Duration::from_secs(3600),
    );
    let path = "/downloads/exports/exp";
    e.inject(Fault::CutDownload {
        count: 1,
        after_bytes: 20 * MB,
        path: Some(path.into()),
    });
    let p = Proc::start(dir, &config(dir, &e, "download_id = \"exp\""));
    // Once the transfer that will break has started, every URL handed out
    // so far expires (the resume comes after 20 MB and a backoff).
    wait_until("the download started", Duration::from_secs(30), || {
        e.state()
            .faults
            .applied()
            .iter()
            .any(|f| matches!(f, Fault::CutDownload { .. }))
    });
    e.inject(Fault::ExpireDownloads);
    wait_until("delivered", Duration::from_secs(60), || finished(&p));
    assert_eq!(downloads(&e, path), [200, 403, 206]);
    assert_eq!(
        e.state().log.count(|r| r.path == "/api/v2/downloads/exp"),
        2,
        "a fresh URL was asked for"
    );
    assert_eq!(source_status(&p)["detail"]["records"], 60_000);
    assert!(p.terminate().success());

    // A configured URL cannot be renewed: the source fails, and says why
    // without showing the URL's signature.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let url = e.state().bulk.urls.issue(
        &e.state().faults,
        &format!("http://{}", e.downloads_addr()),
        "/downloads/exports/exp",
    );
    e.inject(Fault::ExpireDownloads);
    let p = Proc::start(dir, &config(dir, &e, &format!("url = \"{url}\"")));
    wait_until("failed", Duration::from_secs(30), || {
        source_status(&p)["state"] == "failed"
    });
    let status = source_status(&p);
    let err = status["last_error"].as_str().unwrap();
    assert!(err.contains("403") && err.contains("download_id"), "{err}");
    assert!(!status.to_string().contains("signature="), "{status}");
    assert!(!p.log_text().contains("signature="));
    assert!(p.terminate().success());
}
