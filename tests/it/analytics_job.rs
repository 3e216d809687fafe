//! `kind = "analytics_job"` against the emulator, through the binary: a
//! 200,000-conversation job under 429s and a stale cursor (exactly once,
//! within the rate, Retry-After honoured), `kill -9` and resume from the
//! saved cursor, FAILED jobs, and rolling windows that never include now
//! (with masking of the PII).

use std::collections::{HashMap, HashSet};
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::*;
use cxrelay::emulator::bulk::BulkSettings;
use cxrelay::emulator::{max_in_window, EmulatorHandle, EmulatorSettings, Fault};
use cxrelay::genesys::interval::Interval;
use cxrelay::sources::analytics_job::Checkpoint;
use cxrelay::sources::checkpoint::JsonCheckpoint;
use serde::Deserialize;

const JOBS: &str = "/api/v2/analytics/conversations/details/jobs";

fn shm_dir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("cxrelay-analytics-")
        .tempdir_in("/dev/shm")
        .unwrap_or_else(|_| tempfile::tempdir().unwrap())
}

fn emulator_with(bulk: BulkSettings) -> EmulatorHandle {
    emulator(EmulatorSettings {
        requests_per_minute: 0,
        bulk,
        ..EmulatorSettings::default()
    })
}

fn bulk(per_hour: f64) -> BulkSettings {
    BulkSettings {
        conversations_per_hour: per_hour,
        job_queued: Duration::from_millis(200),
        job_pending: Duration::from_millis(300),
        ..BulkSettings::default()
    }
}

fn config(dir: &Path, e: &EmulatorHandle, rpm: u32, source: &str, transform: &str) -> String {
    format!(
        r#"{}{}[[source]]
name = "details"
kind = "analytics_job"
{source}

[[listener]]
name = "warehouse"
topics = ["analytics.conversations"]
{transform}
sink = {{ kind = "file", path = "{}", fsync = false, batch_events = 2000, batch_interval = "50ms" }}
"#,
        preamble(dir),
        genesys_section(e, rpm),
        dir.join("out").display()
    )
}

#[derive(Deserialize)]
struct Line {
    key: Option<String>,
}

/// The key of every complete output line, in file order.
fn output_keys(dir: &Path) -> Vec<String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    files.sort();
    let mut keys = Vec::new();
    for f in files {
        let Ok(file) = std::fs::File::open(&f) else { continue };
        for line in std::io::BufReader::new(file).split(b'\n') {
            let line = line.unwrap();
            if let Ok(l) = serde_json::from_slice::<Line>(&line) {
                keys.extend(l.key);
            }
        }
    }
    keys
}

fn source_status(p: &Proc) -> serde_json::Value {
    component(&p.get("/status").json(), "details")
}

fn finished(p: &Proc) -> bool {
    source_status(p)["detail"]["finished"] == true
}

fn expected_ids(e: &EmulatorHandle, interval: &str) -> Vec<String> {
    conversations_ended_in(e, interval)
}

/// API requests the emulator logged: (time, path, status).
fn api_log(e: &EmulatorHandle) -> Vec<(Duration, String, u16)> {
    e.state()
        .log
        .matching(|r| r.path.starts_with("/api/"))
        .into_iter()
        .map(|r| (r.at, r.path, r.status))
        .collect()
}

#[test]
fn two_hundred_thousand_conversations_arrive_exactly_once_within_the_rate_despite_429s_and_a_stale_cursor() {
    let started = Instant::now();
    let tmp = shm_dir();
    let dir = tmp.path();
    // 10,000 an hour for 20 hours: exactly 200,000 conversations.
    let e = emulator_with(bulk(10_000.0));
    let interval = "2024-05-01T00:00:00Z/2024-05-01T20:00:00Z";
    // 10 requests a second: the budget, not the emulator, sets the pace.
    let rpm = 600;
    let source = format!(
        "interval = \"{interval}\"\npage_size = 1000\nprefetch = 2\npoll_interval = \"100ms\"\npoll_max_interval = \"500ms\""
    );
    let p = Proc::start(dir, &config(dir, &e, rpm, &source, ""));
    let served = || e.state().bulk.jobs.served_pages().len();
    wait_until("20 pages served", Duration::from_secs(60), || served() >= 20);
    e.inject(Fault::RateLimit {
        count: 3,
        retry_after_s: 2,
        path: Some(JOBS.into()),
    });
    wait_until("80 pages served", Duration::from_secs(60), || served() >= 80);
    e.inject(Fault::StaleCursor { count: 1 });
    wait_until("the job delivered", Duration::from_secs(150), || finished(&p));

    let status = source_status(&p);
    let d = &status["detail"];
    assert_eq!(d["resubmissions"], 1, "{status}");
    let dups = d["duplicates"].as_u64().unwrap();
    // The resubmitted rest of the interval also holds the conversations
    // still going at the high-water mark (activity overlap): at most a page
    // plus those.
    let tl = e.state().bulk.timeline;
    let going = (10_000 * tl.max_duration_ms() / 3_600_000) as u64;
    assert!(
        (1..=1000 + going).contains(&dups),
        "at most a page and the conversations then going of duplicates, dropped: {dups}"
    );
    let want = conversations_ended_in(&e, interval).len();
    assert!(want > 199_000, "{want}");
    assert_eq!(d["records"], want, "{status}");
    let metrics = p.get("/metrics").text();
    assert_eq!(
        metric(&metrics, "cxrelay_analytics_records_total{source=\"details\"}"),
        Some(want as f64)
    );
    assert_eq!(undeclared_metrics(&metrics), Vec::<String>::new());
    assert_eq!(
        metric(
            &metrics,
            "cxrelay_analytics_resubmissions_total{source=\"details\",reason=\"stale_cursor\"}"
        ),
        Some(1.0)
    );

    // Every conversation exactly once in the output.
    wait_until("everything written", Duration::from_secs(60), || {
        output_keys(&dir.join("out")).len() >= want
    });
    let keys = output_keys(&dir.join("out"));
    assert_eq!(keys.len(), want, "no duplicate in the output");
    let got: HashSet<&str> = keys.iter().map(String::as_str).collect();
    let want = expected_ids(&e, interval);
    assert!(
        want.iter().all(|id| got.contains(id.as_str())),
        "every conversationId delivered"
    );

    // The emulator's view: two jobs (the resubmission), the rate, the windows.
    let log = api_log(&e);
    let posts = e.state().log.count(|r| r.method == "POST" && r.path == JOBS);
    assert_eq!(posts, 2);
    let times: Vec<Duration> = log.iter().map(|(t, _, _)| *t).collect();
    let per_minute = max_in_window(&times, Duration::from_secs(60));
    let per_5s = max_in_window(&times, Duration::from_secs(5));
    let per_s = max_in_window(&times, Duration::from_secs(1));
    // Times are logged when answered, so one request of slack for jitter.
    assert!(per_minute <= rpm as usize, "{per_minute} requests in a minute");
    assert!(per_5s <= (rpm / 12) as usize + 1, "{per_5s} requests in 5 s");
    assert!(per_s <= (rpm / 60) as usize + 1, "{per_s} requests in 1 s");
    let limited: Vec<Duration> = log.iter().filter(|(_, _, s)| *s == 429).map(|(t, _, _)| *t).collect();
    assert_eq!(limited.len(), 3);
    for t in &limited {
        let inside = log
            .iter()
            .filter(|(u, _, _)| *u > *t && *u < *t + Duration::from_secs(2))
            .count();
        assert_eq!(
            inside, 0,
            "a request inside the Retry-After window after the 429 at {t:?}"
        );
    }
    assert!(p.terminate().success());
    eprintln!(
        "200,000 conversations ({} pages, {} API requests) in {:.1} s",
        d["pages"],
        log.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn after_kill_9_the_job_resumes_from_the_saved_cursor_without_fetching_committed_pages_again() {
    let tmp = shm_dir();
    let dir = tmp.path();
    let e = emulator_with(bulk(10_000.0));
    let interval = "2024-05-01T00:00:00Z/2024-05-01T03:00:00Z";
    let source = format!(
        "interval = \"{interval}\"\npage_size = 500\nprefetch = 3\npoll_interval = \"100ms\"\npoll_max_interval = \"300ms\""
    );
    let cfg = config(dir, &e, 600, &source, "");
    let p = Proc::start(dir, &cfg);
    wait_until("20 pages committed", Duration::from_secs(60), || {
        source_status(&p)["detail"]["pages"].as_u64().unwrap_or(0) >= 20
    });
    p.kill9();
    let served_before = e.state().bulk.jobs.served_pages().len();
    let posts_before = e.state().log.count(|r| r.method == "POST" && r.path == JOBS);
    assert_eq!(posts_before, 1);

    // What was committed when it died.
    let db = cxrelay::store::StoreDb::open(&dir.join("data"), 86_400_000, 1000).unwrap();
    let cp = Checkpoint::decode(db.checkpoint("details").unwrap().as_deref());
    drop(db);
    let job = cp.job.clone().expect("a job in progress");
    assert!(job.pages >= 20, "{cp:?}");
    let cursor = job.cursor.clone().expect("the next page's cursor");
    let resume_at = cxrelay::emulator::analytics::decode_cursor(e.state().settings.seed, &cursor)
        .unwrap()
        .offset;
    assert_eq!(resume_at, job.pages * 500);

    let p = Proc::start(dir, &cfg);
    wait_until("the job delivered", Duration::from_secs(90), || finished(&p));
    let after: Vec<_> = e.state().bulk.jobs.served_pages()[served_before..].to_vec();
    assert!(!after.is_empty());
    assert!(after.iter().all(|pg| pg.job == job.id), "the same job, not a new one");
    // (A page asked for just before the kill may be answered after it: it
    // is past the saved cursor too.)
    assert!(
        after.iter().any(|pg| pg.offset == resume_at && pg.with_cursor),
        "the saved cursor's page was asked for: {after:?}"
    );
    let refetched: Vec<u64> = after.iter().map(|pg| pg.offset).filter(|o| *o < resume_at).collect();
    assert!(refetched.is_empty(), "committed pages fetched again: {refetched:?}");
    assert_eq!(e.state().log.count(|r| r.method == "POST" && r.path == JOBS), 1);

    let want = expected_ids(&e, interval);
    wait_until("everything written", Duration::from_secs(60), || {
        output_keys(&dir.join("out")).iter().collect::<HashSet<_>>().len() >= want.len()
    });
    let keys = output_keys(&dir.join("out"));
    let got: HashSet<&str> = keys.iter().map(String::as_str).collect();
    assert_eq!(got.len(), want.len());
    assert!(want.iter().all(|id| got.contains(id.as_str())));
    assert!(p.terminate().success());
}

#[test]
fn a_job_that_keeps_failing_is_retried_then_the_source_fails_with_its_message() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let e = emulator_with(bulk(600.0));
    e.inject(Fault::FailJob {
        count: 2,
        message: "Query exceeded resource limits".into(),
    });
    let source =
        "interval = \"2024-05-01T00:00:00Z/2024-05-01T01:00:00Z\"\npoll_interval = \"100ms\"\nmax_job_attempts = 2";
    let p = Proc::start(dir, &config(dir, &e, 6000, source, ""));
    wait_until("the source failed", Duration::from_secs(30), || {
        source_status(&p)["state"] == "failed"
    });
    let status = source_status(&p);
    let err = status["last_error"].as_str().unwrap();
    assert!(
        err.contains("FAILED 2 times") && err.contains("Query exceeded resource limits"),
        "{err}"
    );
    assert_eq!(e.state().log.count(|r| r.method == "POST" && r.path == JOBS), 2);
    let ready = p.get("/health/ready");
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("details"), "{}", ready.text());
    assert!(p.terminate().success());

    // A job that fails once is submitted again and delivers everything.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    e.inject(Fault::FailJob {
        count: 1,
        message: "transient".into(),
    });
    let p = Proc::start(dir, &config(dir, &e, 6000, source, ""));
    wait_until("delivered", Duration::from_secs(30), || finished(&p));
    assert_eq!(
        source_status(&p)["detail"]["records"],
        conversations_ended_in(&e, "2024-05-01T00:00:00Z/2024-05-01T01:00:00Z").len()
    );
    assert!(p.terminate().success());
}

#[test]
fn conversations_ending_exactly_on_the_intervals_ends_are_delivered() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let e = emulator_with(bulk(6_000.0));
    // An interval that starts where one conversation ends and ends where
    // another ends: both had activity in it, and neither is held back.
    let tl = e.state().bulk.timeline;
    let hour = Interval::parse("2024-05-01T10:00:00Z/2024-05-01T11:00:00Z").unwrap();
    let mut ends: Vec<(i64, u64)> = tl.range(hour).map(|n| (tl.end_ms(n), n)).collect();
    ends.sort();
    let (first, last) = (ends[10], ends[ends.len() - 10]);
    let interval = Interval::new(first.0, last.0);
    let source = format!("interval = \"{interval}\"\npoll_interval = \"100ms\"");
    let p = Proc::start(dir, &config(dir, &e, 6000, &source, ""));
    wait_until("delivered", Duration::from_secs(30), || finished(&p));
    let keys: HashSet<String> = output_keys(&dir.join("out")).into_iter().collect();
    for n in [first.1, last.1] {
        assert!(
            keys.contains(&tl.conversation_id(n)),
            "conversation {n} ending on a boundary"
        );
    }
    let want: HashSet<String> = ended_in(&tl, interval).into_iter().collect();
    assert_eq!(keys, want);
    assert!(p.terminate().success());
}

#[test]
fn rolling_windows_stay_behind_now_and_availability_and_pii_is_masked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Ten conversations a second, a data lake one second behind.
    let e = emulator_with(BulkSettings {
        data_lag: Duration::from_secs(1),
        job_queued: Duration::from_millis(50),
        job_pending: Duration::from_millis(50),
        ..bulk(36_000.0)
    });
    let source = "every = \"2s\"\nlag = \"1s\"\npoll_interval = \"50ms\"\npoll_max_interval = \"100ms\"";
    let transform = r#"transform = { flatten = true, mask = ["ani", "dnis", "addressFrom", "addressTo", "participantName"], mask_mode = "hash", mask_key_env = "MASK_KEY" }"#;
    let p = Proc::start_with(dir, &config(dir, &e, 6000, source, transform), &[("MASK_KEY", "k-1")]);
    wait_until("three windows delivered", Duration::from_secs(30), || {
        e.state().bulk.jobs.all().len() >= 3 && source_status(&p)["detail"]["done_until"].is_string()
    });
    let jobs = e.state().bulk.jobs.all();
    for j in &jobs {
        // Never "now", never past the data lake (lag 1 s, availability 1 s).
        assert!(
            j.interval.end_ms <= j.submitted_ms() - 1000,
            "window {} submitted at {}",
            j.interval,
            j.submitted_ms()
        );
        assert_eq!(j.interval.len_ms() % 2000, 0, "whole windows of `every`");
    }
    for w in jobs.windows(2) {
        assert_eq!(w[0].interval.end_ms, w[1].interval.start_ms, "contiguous windows");
    }
    let delivered = jobs.len() - 1;
    let covered = Interval::new(jobs[0].interval.start_ms, jobs[delivered - 1].interval.end_ms);
    // Each conversation is delivered once, in its final state, with the
    // window in which it ended.
    let tl = e.state().bulk.timeline;
    let back = Interval::new(covered.start_ms - tl.max_duration_ms(), covered.end_ms);
    let want: Vec<String> = tl
        .range(back)
        .filter(|n| (covered.start_ms..=covered.end_ms).contains(&tl.end_ms(*n)))
        .map(|n| tl.conversation_id(n))
        .collect();
    assert!(!want.is_empty());
    wait_until("delivered windows written", Duration::from_secs(30), || {
        let got: HashSet<String> = output_keys(&dir.join("out")).into_iter().collect();
        want.iter().all(|id| got.contains(id))
    });
    assert!(p.terminate().success());

    // Masked: no clear text, and the same number gives the same hash.
    let text: String = std::fs::read_dir(dir.join("out"))
        .unwrap()
        .map(|f| std::fs::read_to_string(f.unwrap().path()).unwrap())
        .collect();
    assert!(!text.contains("tel:+1"), "a phone number in clear text");
    let mut hashes: HashMap<String, String> = HashMap::new();
    for line in read_ndjson_dir(&dir.join("out")) {
        let customer = &line["payload"]["participants"][0];
        let session = &customer["sessions"][0];
        let ani = session["ani"].as_str().unwrap();
        assert!(ani.starts_with("sha256:"), "{ani}");
        assert_eq!(session["addressFrom"], session["ani"], "same input, same hash");
        assert!(customer["participantName"].as_str().unwrap().starts_with("sha256:"));
        hashes.insert(line["key"].as_str().unwrap().to_string(), ani.to_string());
    }
    assert!(hashes.len() >= want.len());
}

#[test]
fn a_job_that_expires_while_paged_is_resubmitted_from_the_high_water_mark() {
    let tmp = shm_dir();
    let dir = tmp.path();
    let e = emulator_with(bulk(10_000.0));
    let interval = "2024-05-01T00:00:00Z/2024-05-01T02:00:00Z";
    let source = format!("interval = \"{interval}\"\npage_size = 500\npoll_interval = \"100ms\"");
    let p = Proc::start(dir, &config(dir, &e, 6000, &source, ""));
    wait_until("10 pages served", Duration::from_secs(60), || {
        e.state().bulk.jobs.served_pages().len() >= 10
    });
    e.inject(Fault::ExpireJob { job: None });
    wait_until("the job delivered", Duration::from_secs(90), || finished(&p));
    let status = source_status(&p);
    assert_eq!(status["detail"]["resubmissions"], 1, "{status}");
    let jobs = e.state().bulk.jobs.all();
    assert_eq!(jobs.len(), 2);
    assert!(
        jobs[1].interval.start_ms > jobs[0].interval.start_ms,
        "the rest of the interval only"
    );
    let metrics = p.get("/metrics").text();
    assert_eq!(
        metric(
            &metrics,
            "cxrelay_analytics_resubmissions_total{source=\"details\",reason=\"gone\"}"
        ),
        Some(1.0),
        "{metrics}"
    );
    let want = expected_ids(&e, interval);
    wait_until("everything written", Duration::from_secs(60), || {
        output_keys(&dir.join("out")).len() >= want.len()
    });
    let keys = output_keys(&dir.join("out"));
    assert_eq!(keys.len(), want.len(), "each conversation once");
    let got: HashSet<&str> = keys.iter().map(String::as_str).collect();
    assert!(want.iter().all(|id| got.contains(id.as_str())));
    assert!(p.terminate().success());
}
