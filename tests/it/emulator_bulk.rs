//! Conformance of the emulator's bulk side with genesys-api.md §3-5:
//! analytics details jobs (states, cursor pages, expiry, faults), the
//! synchronous query, availability, recording batch downloads and export
//! files (formats, Range, signed URLs, cut transfers), over real HTTP.

use std::collections::HashSet;
use std::io::Read;
use std::net::SocketAddr;
use std::time::Duration;

use crate::common::*;
use cxrelay::emulator::bulk::BulkSettings;
use cxrelay::emulator::exports::{Container, ExportFormat, ExportSpec};
use cxrelay::emulator::{EmulatorHandle, EmulatorSettings, Fault};
use cxrelay::wire::parse_iso_ms;
use serde_json::{json, Value};

fn settings(bulk: BulkSettings) -> EmulatorSettings {
    EmulatorSettings {
        requests_per_minute: 0,
        bulk,
        ..EmulatorSettings::default()
    }
}

fn quick() -> BulkSettings {
    BulkSettings {
        conversations_per_hour: 3600.0,
        job_queued: Duration::from_millis(150),
        job_pending: Duration::from_millis(150),
        data_lag: Duration::from_secs(60),
        ..BulkSettings::default()
    }
}

struct Api {
    addr: SocketAddr,
    bearer: String,
}

impl Api {
    fn new(e: &EmulatorHandle) -> Api {
        Api {
            addr: e.addr(),
            bearer: format!("Bearer {}", emulator_token(e)),
        }
    }
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Response {
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        request(
            self.addr,
            method,
            path,
            &[("Authorization", &self.bearer), ("Content-Type", "application/json")],
            body.as_bytes(),
        )
        .unwrap()
    }
    fn get(&self, path: &str) -> Response {
        self.call("GET", path, None)
    }
    fn post(&self, path: &str, body: Value) -> Response {
        self.call("POST", path, Some(&body))
    }
}

const JOBS: &str = "/api/v2/analytics/conversations/details/jobs";

fn assert_genesys_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let b = r.json();
    assert_eq!(b["status"], status);
    assert_eq!(b["code"], code, "{b}");
    assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()));
    assert!(b["contextId"].as_str().is_some_and(|c| c.len() == 36));
}

fn submit(api: &Api, interval: &str) -> String {
    let r = api.post(
        JOBS,
        json!({"interval": interval, "order": "asc", "orderBy": "conversationStart"}),
    );
    assert_eq!(r.status, 202, "{}", r.text());
    r.json()["jobId"].as_str().unwrap().to_string()
}

fn state(api: &Api, job: &str) -> Value {
    let r = api.get(&format!("{JOBS}/{job}"));
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

fn fulfilled(api: &Api, job: &str) {
    wait_until("job FULFILLED", Duration::from_secs(10), || {
        state(api, job)["state"] == "FULFILLED"
    });
}

/// Every record of a job, page by page; answers the records and the page sizes.
fn all_pages(api: &Api, job: &str, page_size: u32) -> (Vec<Value>, Vec<usize>) {
    let mut records = Vec::new();
    let mut sizes = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("{JOBS}/{job}/results?pageSize={page_size}");
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let r = api.get(&path);
        assert_eq!(r.status, 200, "{}", r.text());
        let b = r.json();
        assert!(b["dataAvailabilityDate"].is_string());
        let page = b["conversations"].as_array().cloned().unwrap_or_default();
        sizes.push(page.len());
        records.extend(page);
        match b["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => return (records, sizes),
        }
    }
}

#[test]
fn a_details_job_goes_queued_pending_fulfilled_and_pages_its_records_by_cursor() {
    let e = emulator(settings(quick()));
    let api = Api::new(&e);
    let interval = "2024-05-01T10:00:00Z/2024-05-01T10:10:00Z";
    let job = submit(&api, interval);
    let first = state(&api, &job);
    assert_eq!(first["state"], "QUEUED");
    assert!(first["submissionDate"].is_string() && first["expirationDate"].is_string());
    wait_until("PENDING", Duration::from_secs(5), || {
        state(&api, &job)["state"] == "PENDING"
    });
    let r = api.get(&format!("{JOBS}/{job}/results"));
    assert_genesys_error(&r, 400, "bad.request");
    fulfilled(&api, &job);
    assert!(state(&api, &job)["completionDate"].is_string());

    let (records, sizes) = all_pages(&api, &job, 250);
    let (from, to) = (
        parse_iso_ms("2024-05-01T10:00:00Z").unwrap(),
        parse_iso_ms("2024-05-01T10:10:00Z").unwrap(),
    );
    let starts: Vec<i64> = records
        .iter()
        .map(|r| parse_iso_ms(r["conversationStart"].as_str().unwrap()).unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] <= w[1]), "sorted by conversationStart");
    // The platform selects conversations with activity in the interval:
    // 3600 an hour start 600 in ten minutes, and those started earlier
    // that were still going come first.
    assert_eq!(starts.iter().filter(|s| (from..to).contains(*s)).count(), 600);
    let early = starts.iter().filter(|s| **s < from).count();
    assert!(early > 0, "conversations still going at the interval's start");
    assert_eq!(early + 600, records.len());
    let mut expected_sizes: Vec<usize> = vec![250; records.len() / 250];
    if records.len() % 250 > 0 {
        expected_sizes.push(records.len() % 250);
    }
    assert_eq!(sizes, expected_sizes, "no cursor on the last page");
    let ids: HashSet<&str> = records.iter().map(|r| r["conversationId"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), records.len());
    let r0 = &records[0];
    for pii in ["ani", "dnis", "addressFrom", "addressTo"] {
        assert!(r0["participants"][0]["sessions"][0][pii]
            .as_str()
            .unwrap()
            .starts_with("tel:+1"));
    }
    assert!(r0["participants"][0]["participantName"].is_string());
    assert!(r0["participants"][0]["attributes"].is_object());
    assert!(r0.to_string().contains("wrapUpNote"));

    // Part of the interval gives exactly its part of the records, and the
    // same records again (deterministic).
    let half = submit(&api, "2024-05-01T10:05:00Z/2024-05-01T10:10:00Z");
    fulfilled(&api, &half);
    let (second_half, _) = all_pages(&api, &half, 1000);
    let cut = starts.iter().position(|s| *s >= from + 300_000).unwrap();
    let started_in = |r: &&Value| parse_iso_ms(r["conversationStart"].as_str().unwrap()).unwrap() >= from + 300_000;
    let late: Vec<Value> = second_half.iter().filter(started_in).cloned().collect();
    assert_eq!(late, records[cut..]);
    assert!(
        second_half.iter().all(|r| records.contains(r)),
        "what was still going in the second half is part of the whole"
    );

    // Headers of an API answer.
    let r = api.get(&format!("{JOBS}/{job}"));
    for h in [
        "inin-ratelimit-allowed",
        "inin-ratelimit-count",
        "inin-ratelimit-reset",
        "inin-correlation-id",
    ] {
        assert!(r.header(h).is_some(), "{h} missing");
    }
    // Availability.
    let r = api.get(&format!("{JOBS}/availability"));
    assert_eq!(r.status, 200);
    let available = parse_iso_ms(r.json()["dataAvailabilityDate"].as_str().unwrap()).unwrap();
    let lag = cxrelay_actors::event::now_ms() - available;
    assert!((59_000..70_000).contains(&lag), "availability lags by data_lag: {lag}");
    // Delete: CANCELLED; unknown jobs are 404 with the Genesys body.
    assert_eq!(api.call("DELETE", &format!("{JOBS}/{job}"), None).status, 204);
    assert_eq!(state(&api, &job)["state"], "CANCELLED");
    assert_genesys_error(&api.get(&format!("{JOBS}/nope")), 404, "not.found");
    assert_genesys_error(&api.post(JOBS, json!({"interval": "yesterday"})), 400, "bad.request");
    assert_genesys_error(
        &api.get(&format!("{JOBS}/{half}/results?pageSize=1001")),
        400,
        "bad.request",
    );
    // Without a token: 401.
    let r = request(e.addr(), "GET", &format!("{JOBS}/{half}"), &[], b"").unwrap();
    assert_genesys_error(&r, 401, "authentication.required");
}

#[test]
fn cursors_expire_go_stale_on_demand_and_jobs_expire_or_fail_by_fault() {
    let e = emulator(settings(BulkSettings {
        cursor_ttl: Duration::from_millis(400),
        ..quick()
    }));
    let api = Api::new(&e);
    let job = submit(&api, "2024-05-01T10:00:00Z/2024-05-01T10:10:00Z");
    fulfilled(&api, &job);
    let first = api.get(&format!("{JOBS}/{job}/results?pageSize=100")).json();
    let cursor = first["cursor"].as_str().unwrap().to_string();
    let next = |c: &str| api.get(&format!("{JOBS}/{job}/results?pageSize=100&cursor={c}"));
    assert_eq!(next(&cursor).status, 200);
    // Stale on demand, once.
    e.inject(Fault::StaleCursor { count: 1 });
    assert_genesys_error(&next(&cursor), 400, "bad.request");
    assert_eq!(next(&cursor).status, 200);
    // The emulator keeps which pages it served.
    let served = e.state().bulk.jobs.served_pages();
    assert_eq!(served.iter().filter(|p| p.job == job).count(), 3);
    assert_eq!(
        (served[1].offset, served[1].count, served[1].with_cursor),
        (100, 100, true)
    );
    // A forged cursor, and one past its lifetime (400 ms).
    assert_genesys_error(&next("bm90IGEgY3Vyc29y"), 400, "bad.request");
    wait_until("the cursor expires", Duration::from_secs(5), || {
        next(&cursor).status == 400
    });
    assert_genesys_error(&next(&cursor), 400, "bad.request");

    // expire_job: EXPIRED, results refused.
    e.inject(Fault::ExpireJob { job: Some(job.clone()) });
    assert_eq!(state(&api, &job)["state"], "EXPIRED");
    assert_genesys_error(&api.get(&format!("{JOBS}/{job}/results")), 400, "bad.request");
    // fail_job: the next job ends FAILED with its message.
    e.inject(Fault::FailJob {
        count: 1,
        message: "disk on fire".into(),
    });
    let failed = submit(&api, "2024-05-01T10:00:00Z/2024-05-01T10:01:00Z");
    wait_until("FAILED", Duration::from_secs(5), || {
        state(&api, &failed)["state"] == "FAILED"
    });
    assert_eq!(state(&api, &failed)["errorMessage"], "disk on fire");
    let ok = submit(&api, "2024-05-01T10:00:00Z/2024-05-01T10:01:00Z");
    fulfilled(&api, &ok);
    // Through the control endpoint too.
    let r = request(e.addr(), "POST", "/_emulator/faults", &[], br#"{"kind":"expire_job"}"#).unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(state(&api, &ok)["state"], "EXPIRED");
}

#[test]
fn the_synchronous_query_pages_by_number_with_total_hits() {
    let e = emulator(settings(quick()));
    let api = Api::new(&e);
    let q = |page: u32, size: u32, order: &str| {
        api.post(
            "/api/v2/analytics/conversations/details/query",
            json!({"interval": "2024-05-01T10:00:00Z/2024-05-01T10:05:00Z", "order": order,
                   "orderBy": "conversationStart", "paging": {"pageSize": size, "pageNumber": page}}),
        )
    };
    let r = q(1, 100, "asc");
    assert_eq!(r.status, 200, "{}", r.text());
    let b = r.json();
    // 300 start in the five minutes; those started before and still going
    // had activity in them too.
    let total = b["totalHits"].as_u64().unwrap();
    assert!(total > 300, "{total}");
    assert_eq!(b["conversations"].as_array().unwrap().len(), 100);
    let pages = total.div_ceil(100) as u32;
    let last = q(pages, 100, "asc").json();
    let last_len = last["conversations"].as_array().unwrap().len() as u64;
    assert_eq!(last_len, total - 100 * (total.div_ceil(100) - 1));
    let past = q(pages + 1, 100, "asc").json();
    assert!(past.get("conversations").is_none(), "empty pages leave the array out");
    assert_eq!(past["totalHits"], total);
    let desc = q(1, 1, "desc").json();
    assert_eq!(desc["conversations"][0], last["conversations"][last_len as usize - 1]);
    assert_genesys_error(&q(1, 101, "asc"), 400, "bad.request");
    assert_genesys_error(
        &api.post("/api/v2/analytics/conversations/details/query", json!({"paging": {}})),
        400,
        "bad.request",
    );
}

fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers, b"").unwrap()
}

/// A download URL as the API handed it out (the request helper connects
/// to the download host it names).
fn local(url: &str) -> String {
    url.to_string()
}

#[test]
fn recording_batches_complete_with_ranged_time_limited_downloads() {
    let e = emulator(settings(BulkSettings {
        recording_delay: Duration::from_millis(200),
        recording_bytes: 100_000,
        ..quick()
    }));
    let api = Api::new(&e);
    let too_many: Vec<Value> = (0..101)
        .map(|i| json!({"conversationId": format!("c{i}"), "recordingId": format!("r{i}")}))
        .collect();
    assert_genesys_error(
        &api.post(
            "/api/v2/recording/batchrequests",
            json!({"batchDownloadRequestList": too_many}),
        ),
        400,
        "bad.request",
    );
    let r = api.post(
        "/api/v2/recording/batchrequests",
        json!({"batchDownloadRequestList": [
            {"conversationId": "c1", "recordingId": "r1"},
            {"conversationId": "c2", "recordingId": "missing-r2"}]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let id = r.json()["id"].as_str().unwrap().to_string();
    let path = format!("/api/v2/recording/batchrequests/{id}");
    let first = api.get(&path).json();
    assert_eq!(first["status"], "InProgress");
    assert_eq!(first["expectedResultCount"], 2);
    wait_until("Completed", Duration::from_secs(5), || {
        api.get(&path).json()["status"] == "Completed"
    });
    let done = api.get(&path).json();
    assert_eq!(
        (done["resultCount"].as_u64(), done["errorCount"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(done["results"][1]["errorMsg"], "Recording not found");
    let url = local(done["results"][0]["resultUrl"].as_str().unwrap());
    assert_eq!(done["results"][0]["contentType"], "audio/ogg");

    let full = get_with(e.addr(), &url, &[]);
    assert_eq!(full.status, 200);
    assert_eq!(full.body.len(), 100_000);
    assert_eq!(full.header("content-length"), Some("100000"));
    assert_eq!(full.header("accept-ranges"), Some("bytes"));
    assert_eq!(&full.body[..4], b"OggS");
    let part = get_with(e.addr(), &url, &[("Range", "bytes=5000-")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.header("content-range"), Some("bytes 5000-99999/100000"));
    assert!(part.body == full.body[5000..]);
    let head = request(e.addr(), "HEAD", &url, &[], b"").unwrap();
    assert_eq!((head.status, head.header("content-length")), (200, Some("100000")));
    assert!(head.body.is_empty());
    let out = get_with(e.addr(), &url, &[("Range", "bytes=100000-")]);
    assert_eq!((out.status, out.header("content-range")), (416, Some("bytes */100000")));
    // Unsigned, then revoked URLs: 403.
    assert_genesys_error(
        &get_with(e.addr(), url.split('?').next().unwrap(), &[]),
        403,
        "missing.permissions",
    );
    e.inject(Fault::ExpireDownloads);
    assert_genesys_error(&get_with(e.addr(), &url, &[]), 403, "missing.permissions");
    // Asking again hands out URLs that work.
    let again = api.get(&path).json();
    let fresh = local(again["results"][0]["resultUrl"].as_str().unwrap());
    let again = get_with(e.addr(), &fresh, &[]);
    assert_eq!(again.status, 200, "{}", again.text());
    assert!(again.body == full.body);
}

fn export(id: &str, format: ExportFormat, container: Container, records: u64) -> ExportSpec {
    ExportSpec {
        id: id.into(),
        format,
        container,
        records: Some(records),
        bytes: None,
        record_bytes: 1024,
        malformed_every: 0,
        entry_name: None,
    }
}

fn export_url(api: &Api, id: &str) -> String {
    let r = api.get(&format!("/api/v2/downloads/{id}?issueRedirect=false"));
    assert_eq!(r.status, 200, "{}", r.text());
    local(r.json()["url"].as_str().unwrap())
}

#[test]
fn exports_are_served_in_every_format_with_range_and_signed_urls() {
    let e = emulator(settings(BulkSettings {
        download_ttl: Duration::from_secs(600),
        exports: vec![
            export("nd", ExportFormat::Ndjson, Container::None, 300),
            export("js", ExportFormat::Json, Container::None, 300),
            export("zj", ExportFormat::Json, Container::Zip, 300),
            export("gz", ExportFormat::Ndjson, Container::Gzip, 300),
            ExportSpec {
                bytes: Some(1_000_000),
                records: None,
                ..export("sized", ExportFormat::Ndjson, Container::None, 0)
            },
        ],
        ..quick()
    }));
    let api = Api::new(&e);
    // The downloads API redirects by default.
    let r = api.get("/api/v2/downloads/nd");
    assert_eq!(r.status, 303);
    assert!(r.header("location").unwrap().contains("/downloads/exports/nd?expires="));
    assert_genesys_error(&api.get("/api/v2/downloads/nope?issueRedirect=false"), 404, "not.found");

    let fetch = |id: &str| {
        let url = export_url(&api, id);
        let r = get_with(e.addr(), &url, &[]);
        assert_eq!(r.status, 200, "{id}: {}", r.text());
        assert_eq!(
            r.header("content-length").unwrap().parse::<usize>().unwrap(),
            r.body.len()
        );
        assert!(r.header("etag").is_some());
        (url, r)
    };
    let (nd_url, nd) = fetch("nd");
    assert_eq!(nd.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = nd.text().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 300);
    assert_eq!(lines[7]["recordNumber"], 7);
    assert!(lines[7]["participants"][0]["sessions"][0]["ani"].is_string());

    let (_, js) = fetch("js");
    let arr: Vec<Value> = serde_json::from_slice(&js.body).unwrap();
    assert_eq!(arr.len(), 300);

    let (_, zj) = fetch("zj");
    assert_eq!(zj.header("content-type"), Some("application/zip"));
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(zj.body.clone())).unwrap();
    let mut inner = Vec::new();
    zip.by_name("zj.json").unwrap().read_to_end(&mut inner).unwrap();
    assert_eq!(serde_json::from_slice::<Vec<Value>>(&inner).unwrap().len(), 300);

    let (_, gz) = fetch("gz");
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz.body[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain.iter().filter(|b| **b == b'\n').count(), 300);

    let (_, sized) = fetch("sized");
    assert!(
        (1_000_000..1_001_024).contains(&sized.body.len()),
        "{}",
        sized.body.len()
    );

    // Range from anywhere, and If-Range against the ETag.
    let etag = nd.header("etag").unwrap().to_string();
    let part = get_with(e.addr(), &nd_url, &[("Range", "bytes=123456-"), ("If-Range", &etag)]);
    assert_eq!(part.status, 206);
    assert!(part.body == nd.body[123_456..]);
    let changed = get_with(e.addr(), &nd_url, &[("Range", "bytes=10-"), ("If-Range", "\"other\"")]);
    assert_eq!(changed.status, 200, "a changed file is served whole");
    // A cut transfer: fewer bytes than announced, then the connection ends.
    e.inject(Fault::CutDownload {
        count: 1,
        after_bytes: 100_000,
        path: Some("/downloads/exports/nd".into()),
    });
    let cut = request(e.addr(), "GET", &nd_url, &[], b"");
    match cut {
        Ok(r) => {
            assert_eq!(r.header("content-length"), Some("307200"));
            assert!(r.body.len() < 307_200 && r.body.len() >= 100_000, "{}", r.body.len());
        }
        Err(err) => assert_eq!(err.kind(), std::io::ErrorKind::ConnectionReset, "{err}"),
    }
    assert_eq!(
        get_with(e.addr(), &nd_url, &[]).body.len(),
        307_200,
        "the fault is spent"
    );
    // Unsigned and expired URLs.
    assert_genesys_error(
        &get_with(e.downloads_addr(), "/downloads/exports/nd", &[]),
        403,
        "missing.permissions",
    );
    e.inject(Fault::ExpireDownloads);
    assert_genesys_error(&get_with(e.addr(), &nd_url, &[]), 403, "missing.permissions");
    let fresh = get_with(e.addr(), &export_url(&api, "nd"), &[]);
    assert_eq!(fresh.status, 200, "{}", fresh.text());
}

#[test]
fn download_urls_stop_working_when_they_expire() {
    let e = emulator(settings(BulkSettings {
        download_ttl: Duration::from_millis(300),
        exports: vec![export("nd", ExportFormat::Ndjson, Container::None, 10)],
        ..quick()
    }));
    let api = Api::new(&e);
    let url = export_url(&api, "nd");
    assert_eq!(get_with(e.addr(), &url, &[]).status, 200);
    wait_until("the URL expires", Duration::from_secs(5), || {
        get_with(e.addr(), &url, &[]).status == 403
    });
}
