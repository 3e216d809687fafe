//! Webhook ingress as a sender sees it: signed pushes over HTTP, the
//! documented status codes, exactly-once output, kill -9, a stalled sink.
//! Authentication (signatures, API keys, Basic) is in `webhook/auth.rs`.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::*;
use cxrelay::sources::webhook::{SignatureEncoding, Verifier};

mod auth;

const SECRET: &str = "whsec-test-123";

pub(crate) fn verifier() -> Verifier {
    Verifier::new(SECRET.as_bytes(), "sha256=", SignatureEncoding::Base64)
}

pub(crate) fn bare(n: u64) -> String {
    format!(
        r#"{{"topicName":"v2.detail.events.conversation.c{c}.customer.start","version":"2","eventBody":{{"eventTime":{t},"conversationId":"c{c}","participantId":"p{n}","ani":"tel:+15550100{n}","pad":"{pad}"}},"metadata":{{"CorrelationId":"evt-{n}"}}}}"#,
        c = n % 500,
        t = 1_714_572_000_000 + n as i64,
        pad = "x".repeat(700)
    )
}

fn bridge(n: u64) -> String {
    format!(
        r#"{{"version":"0","id":"eb-{n}","detail-type":"v2.detail.events.conversation.{{id}}.customer.start","source":"aws.partner/genesys.com/cloud/org/x","time":"2024-05-01T14:02:03Z","detail":{}}}"#,
        bare(n)
    )
}

fn gzip(body: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(body).unwrap();
    e.finish().unwrap()
}

pub(crate) fn webhook_config(dir: &std::path::Path, extra_source: &str, listener: &str) -> String {
    format!(
        "{}[http]\nworkers = 2\n\n[[source]]\nname = \"hook\"\nkind = \"webhook\"\npath = \"/ingest/eventbridge\"\nsecret_env = \"HOOK_SECRET\"\nmax_body_bytes = 16384\n{extra_source}\n{listener}",
        preamble(dir).replace("[http]\n", "[http]\nworkers = 2\n").replace("\n[http]\nworkers = 2\n\n", "\n"),
    )
    .replacen("[http]\nworkers = 2\n\n[[source]]", "[[source]]", 1)
}

pub(crate) fn file_listener(dir: &std::path::Path) -> String {
    format!(
        "[[listener]]\nname = \"files\"\ntopics = [\"v2.detail.events.>\"]\nsink = {{ kind = \"file\", path = \"{}\", batch_events = 500, batch_interval = \"20ms\" }}\nmailbox = 4096\n",
        dir.join("out").display()
    )
}

pub(crate) fn env() -> [(&'static str, &'static str); 1] {
    [("HOOK_SECRET", SECRET)]
}

/// One planned request.
#[derive(Clone)]
struct Planned {
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    expect: u16,
    /// Event ids this request carries when it is good.
    ids: Vec<String>,
}

fn signed(body: Vec<u8>, gz: bool) -> Planned {
    let sig = verifier().sign(&body);
    let mut headers = vec![
        ("X-Hub-Signature-256".to_string(), sig),
        ("Content-Type".into(), "application/json".into()),
    ];
    if gz {
        headers.push(("Content-Encoding".into(), "gzip".into()));
    }
    Planned {
        headers,
        body,
        expect: 202,
        ids: Vec::new(),
    }
}

/// 20,000 requests: good ones in several shapes, 10% duplicates, 1% bad
/// signatures, 1% malformed, 1% oversized, some gzip.
fn plan() -> (Vec<Planned>, HashSet<String>, usize) {
    let mut out = Vec::new();
    let mut unique = HashSet::new();
    let mut malformed = 0;
    let mut sent_good: Vec<Planned> = Vec::new();
    for i in 0..20_000u64 {
        let p = match i % 100 {
            0 => {
                let mut p = signed(bare(i).into_bytes(), false);
                p.headers[0].1 = verifier().sign(b"something else");
                p.expect = 401;
                p
            }
            1 => {
                malformed += 1;
                let body = if i % 200 == 1 {
                    b"{\"topicName\": oops".to_vec()
                } else {
                    b"{\"hello\":\"world\"}".to_vec()
                };
                let mut p = signed(body, false);
                p.expect = 400;
                p
            }
            2 => {
                let big = format!("[{}]", vec![bare(i); 25].join(","));
                let mut p = signed(big.into_bytes(), false);
                p.expect = 413;
                p
            }
            n if n % 10 == 3 && !sent_good.is_empty() => {
                // A sender retrying an event already sent.
                let mut p = sent_good[(i as usize * 7919) % sent_good.len()].clone();
                p.ids.clear();
                p
            }
            n => {
                let (body, ids) = if n.is_multiple_of(5) {
                    (bridge(i), vec![format!("eb-{i}")])
                } else if n % 50 == 7 {
                    (
                        format!("[{},{}]", bare(i), bridge(i + 1_000_000)),
                        vec![format!("evt-{i}"), format!("eb-{}", i + 1_000_000)],
                    )
                } else {
                    (bare(i), vec![format!("evt-{i}")])
                };
                let gz = n % 7 == 4;
                let raw = if gz { gzip(body.as_bytes()) } else { body.into_bytes() };
                let mut p = signed(raw, gz);
                unique.extend(ids.iter().cloned());
                p.ids = ids;
                sent_good.push(p.clone());
                p
            }
        };
        out.push(p);
    }
    (out, unique, malformed)
}

/// Sends the plan from `clients` keep-alive connections; returns the
/// status of every request (by index) and the ids of 2xx-answered ones.
fn send_all(
    addr: std::net::SocketAddr,
    plan: &[Planned],
    clients: usize,
    stop_on_error: bool,
) -> (HashMap<usize, u16>, HashSet<String>) {
    let statuses = Arc::new(Mutex::new(HashMap::new()));
    let acked = Arc::new(Mutex::new(HashSet::new()));
    std::thread::scope(|s| {
        for c in 0..clients {
            let (statuses, acked) = (statuses.clone(), acked.clone());
            s.spawn(move || {
                let mut conn = KeepAlive::new(addr);
                for (i, p) in plan.iter().enumerate().filter(|(i, _)| i % clients == c) {
                    let headers: Vec<(&str, &str)> = p.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
                    match conn.send("POST", "/ingest/eventbridge", &headers, &p.body) {
                        Ok(r) => {
                            if r.status == 202 {
                                acked.lock().unwrap().extend(p.ids.iter().cloned());
                            }
                            statuses.lock().unwrap().insert(i, r.status);
                        }
                        Err(_) if stop_on_error => return,
                        Err(e) => panic!("request {i}: {e}"),
                    }
                }
            });
        }
    });
    let s = statuses.lock().unwrap().clone();
    let a = acked.lock().unwrap().clone();
    (s, a)
}

pub(crate) fn output_ids(dir: &std::path::Path) -> Vec<String> {
    read_ndjson_dir(&dir.join("out"))
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_mixed_load_gives_each_good_event_exactly_once_and_documented_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = Proc::start_with(dir, &webhook_config(dir, "", &file_listener(dir)), &env());
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let (plan, unique, malformed) = plan();
    let t = Instant::now();
    let (statuses, _) = send_all(p.addr, &plan, 32, false);
    eprintln!("20,000 requests from 32 clients in {:?}", t.elapsed());
    for (i, planned) in plan.iter().enumerate() {
        assert_eq!(statuses[&i], planned.expect, "request {i}");
    }
    wait_until("every unique event in the file sink", Duration::from_secs(60), || {
        output_ids(dir).len() >= unique.len()
    });
    let ids = output_ids(dir);
    let distinct: HashSet<String> = ids.iter().cloned().collect();
    if ids.len() != distinct.len() {
        let mut files: Vec<_> = std::fs::read_dir(dir.join("out"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        files.sort();
        let mut where_: HashMap<String, Vec<String>> = HashMap::new();
        for f in &files {
            for (ln, line) in std::fs::read_to_string(f).unwrap().lines().enumerate() {
                let v: serde_json::Value = serde_json::from_str(line).unwrap();
                where_
                    .entry(v["id"].as_str().unwrap().to_string())
                    .or_default()
                    .push(format!(
                        "{}:{ln} seq {}",
                        f.file_name().unwrap().to_string_lossy(),
                        v["seq"]
                    ));
            }
        }
        let mut dups: Vec<_> = where_.into_iter().filter(|(_, v)| v.len() > 1).collect();
        dups.sort();
        eprintln!(
            "{} duplicated ids, files {:?}; e.g. {:?}",
            dups.len(),
            files.len(),
            &dups[..dups.len().min(4)]
        );
    }
    assert_eq!(distinct, unique);
    assert_eq!(ids.len(), unique.len(), "no event twice");
    // Malformed bodies are kept for an operator.
    wait_until("malformed bodies in dead letters", Duration::from_secs(10), || {
        component(&p.get("/status").json(), "store")["detail"]["dead_letters"] == malformed
    });
    let hook = component(&p.get("/status").json(), "hook");
    let counters = &hook["detail"]["counters"];
    assert_eq!(counters["bad_signature"], 200);
    assert_eq!(counters["malformed"], malformed);
    assert_eq!(counters["too_large"], 200);
    assert!(counters["duplicate_events"].as_u64().unwrap() >= 1700, "{counters}");
    let metrics = p.get("/metrics").text();
    assert_eq!(
        metric(
            &metrics,
            "cxrelay_webhook_requests_total{source=\"hook\",status=\"401\"}"
        ),
        Some(200.0)
    );
    assert_eq!(undeclared_metrics(&metrics), Vec::<String>::new());
    assert!(p.terminate().success());
}

#[test]
fn kill_9_during_load_loses_no_event_that_got_a_2xx() {
    kill_9_during_load(None, None);
}

/// The same with the data on tmpfs, where a commit takes microseconds and
/// the webhook's appends are committed on the HTTP worker itself.
#[test]
fn kill_9_during_load_with_commits_on_the_http_worker_loses_nothing_acknowledged() {
    let shm = std::path::Path::new("/dev/shm");
    if !shm.is_dir() {
        eprintln!("SKIPPED: no /dev/shm here, so no quick commits to make on the HTTP worker");
        return;
    }
    kill_9_during_load(None, Some(shm));
}

/// The same with a journal of 1 MiB segments: under load, deleted segments
/// come back as new ones all the time, and the kill lands in one of them.
#[test]
fn kill_9_during_load_with_reused_journal_segments_loses_nothing_acknowledged() {
    kill_9_during_load(Some(4 << 20), None);
}

/// Kills the service mid-load; with `base`, its directory is there (and
/// the journal's commits must then have been made on the HTTP worker).
fn kill_9_during_load(max_journal_bytes: Option<u64>, base: Option<&std::path::Path>) {
    let tmp = match base {
        Some(b) => tempfile::tempdir_in(b).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    let dir = tmp.path();
    let mut config = webhook_config(dir, "", &file_listener(dir));
    if let Some(bound) = max_journal_bytes {
        config = config.replace("[service]\n", &format!("[service]\nmax_journal_bytes = {bound}\n"));
    }
    let p = Proc::start_with(dir, &config, &env());
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let plan: Vec<Planned> = (0..30_000u64)
        .map(|i| {
            let mut pl = signed(bare(i).into_bytes(), false);
            pl.ids = vec![format!("evt-{i}")];
            pl
        })
        .collect();
    let addr = p.addr;
    let journal = dir.join("data/journal");
    let killer = std::thread::spawn(move || {
        // Mid-load (the moment is the experiment); with small segments,
        // once they have gone round.
        if max_journal_bytes.is_some() {
            wait_until("segments went round", Duration::from_secs(60), || {
                newest_segment(&journal) >= Some(4)
            });
        } else {
            std::thread::sleep(Duration::from_millis(700));
        }
        let store = component(&p.get("/status").json(), "store");
        p.kill9();
        store["detail"]["commits_in_place"].as_u64().unwrap_or(0)
    });
    let (_, acked) = send_all(addr, &plan, 16, true);
    let in_place = killer.join().unwrap();
    if base.is_some() {
        assert!(in_place > 0, "commits were made on the HTTP worker");
    }
    assert!(
        !acked.is_empty() && acked.len() < 30_000,
        "the kill landed mid-load ({} acked)",
        acked.len()
    );
    let p = Proc::start_with(dir, &config, &env());
    wait_until("every acknowledged event delivered", Duration::from_secs(60), || {
        let out: HashSet<String> = output_ids(dir).into_iter().collect();
        acked.iter().all(|id| out.contains(id))
    });
    eprintln!(
        "kill -9 mid-load: {} events acknowledged, all delivered after restart",
        acked.len()
    );
    assert!(p.terminate().success());
}

/// The id of the newest journal segment file.
fn newest_segment(journal: &std::path::Path) -> Option<u64> {
    std::fs::read_dir(journal)
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.strip_suffix(".seg")?.parse::<u64>().ok())
        .max()
}

#[test]
fn a_stalled_sink_makes_the_ingress_answer_503_in_time_with_flat_memory_then_recover() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = TargetServer::start();
    target.set_failing(true);
    let listener = format!(
        "[[listener]]\nname = \"web\"\ntopics = [\"v2.>\"]\nsink = {{ kind = \"http\", url = \"http://{}/in\", batch_events = 10, batch_interval = \"10ms\" }}\nmailbox = 50\nbatch = 10\nwhen_full = \"block\"\n",
        target.addr
    );
    let config = webhook_config(dir, "ack_timeout = \"1s\"\n", &listener)
        .replace("journal = true", "")
        .replace("[service]\n", "[service]\njournal_queue = 4\n");
    let p = Proc::start_with(dir, &config, &env());
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let rss_start = rss_bytes(p.pid());
    let mut conn = KeepAlive::new(p.addr);
    let mut acked = HashSet::new();
    let mut saw_503 = 0;
    let mut slowest = Duration::ZERO;
    for i in 0..400u64 {
        let pl = signed(bare(i).into_bytes(), false);
        let headers: Vec<(&str, &str)> = pl.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let t = Instant::now();
        let r = conn.send("POST", "/ingest/eventbridge", &headers, &pl.body).unwrap();
        slowest = slowest.max(t.elapsed());
        match r.status {
            202 => {
                acked.insert(format!("evt-{i}"));
            }
            503 => {
                assert_eq!(r.header("retry-after"), Some("1"));
                saw_503 += 1;
                if saw_503 >= 5 {
                    break;
                }
            }
            other => panic!("unexpected {other}"),
        }
    }
    let rss_end = rss_bytes(p.pid());
    eprintln!(
        "stalled sink: {} accepted, then 503s; slowest answer {slowest:?}; rss {rss_start} -> {rss_end}",
        acked.len()
    );
    assert!(saw_503 >= 5, "the ingress must answer 503 when saturated");
    // Never hang the sender (its own timeout is 10 s): the bound is the
    // configured 1 s plus scheduling.
    assert!(slowest < Duration::from_millis(2500), "{slowest:?}");
    assert!(rss_end < rss_start + 16 * 1024 * 1024);
    target.set_failing(false);
    wait_until("accepting again", Duration::from_secs(30), || {
        let pl = signed(bare(100_000).into_bytes(), false);
        let headers: Vec<(&str, &str)> = pl.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        conn.send("POST", "/ingest/eventbridge", &headers, &pl.body)
            .unwrap()
            .status
            == 202
    });
    wait_until("every 2xx event delivered", Duration::from_secs(30), || {
        let got = target.ids().0;
        acked.iter().all(|id| got.contains(id))
    });
    // Requests that gave up while the journal's queue was full are not
    // waited for: the stop is prompt, not the 20 s shutdown timeout.
    let t = Instant::now();
    assert!(p.terminate().success());
    assert!(t.elapsed() < Duration::from_secs(10), "the stop took {:?}", t.elapsed());
}

#[test]
fn order_by_time_writes_each_conversation_in_event_time_order() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let listener = format!(
        "[[listener]]\nname = \"files\"\ntopics = [\"v2.detail.events.>\"]\nsink = {{ kind = \"file\", path = \"{}\", batch_interval = \"300ms\" }}\norder_by = \"time\"\n",
        dir.join("out").display()
    );
    let p = Proc::start_with(dir, &webhook_config(dir, "", &listener), &env());
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    // Two conversations, their events pushed newest first.
    let events: Vec<String> = (0..40u64)
        .rev()
        .map(|n| {
            format!(
                r#"{{"topicName":"v2.detail.events.conversation.c{c}.acd.start","eventBody":{{"eventTime":{t},"conversationId":"c{c}"}},"metadata":{{"CorrelationId":"o-{n}"}}}}"#,
                c = n % 2,
                t = 1_000 + n
            )
        })
        .collect();
    let body = format!("[{}]", events.join(","));
    let sig = verifier().sign(body.as_bytes());
    let r = request(
        p.addr,
        "POST",
        "/ingest/eventbridge",
        &[("X-Hub-Signature-256", &sig)],
        body.as_bytes(),
    )
    .unwrap();
    assert_eq!(r.status, 202);
    wait_until("written", Duration::from_secs(10), || {
        read_ndjson_dir(&dir.join("out")).len() == 40
    });
    let lines = read_ndjson_dir(&dir.join("out"));
    for c in ["c0", "c1"] {
        let times: Vec<i64> = lines
            .iter()
            .filter(|l| l["key"] == c)
            .map(|l| l["event_time"].as_i64().unwrap())
            .collect();
        assert!(times.windows(2).all(|w| w[0] < w[1]), "{c}: {times:?}");
    }
    assert!(p.terminate().success());
}

/// 100 connections that declare 500 KB, send 400 KB and go silent, beside
/// normal signed traffic: the normal requests are not held behind them (a
/// p99 far below `body_timeout`), memory stays within the documented bound
/// (requests in hand times `max_body_bytes`, plus the process's own
/// working set), and each slow body is cut off at `body_timeout` (408).
#[test]
fn slow_bodies_cost_bounded_memory_and_time_and_normal_traffic_keeps_its_latency() {
    use std::io::Read;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = webhook_config(dir, "body_timeout = \"3s\"\n", &file_listener(dir))
        .replace("max_body_bytes = 16384", "max_body_bytes = 600000");
    let p = Proc::start_with(dir, &config, &env());
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let rss_start = rss_bytes(p.pid());
    // A signature of the right form (not the right value): it passes the
    // check made before the body is read.
    let fake = verifier().sign(b"some other body");
    let head = format!(
        "POST /ingest/eventbridge HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\nX-Hub-Signature-256: {fake}\r\n\r\n"
    );
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = std::net::TcpStream::connect(p.addr).unwrap();
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(&vec![b' '; 400_000]).unwrap();
        slow.push(s);
    }
    // Normal traffic meanwhile.
    let mut conn = KeepAlive::new(p.addr);
    let mut latencies = Vec::new();
    let mut rss_max = rss_bytes(p.pid());
    for i in 0..300u64 {
        let pl = signed(bare(i).into_bytes(), false);
        let headers: Vec<(&str, &str)> = pl.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let t = Instant::now();
        let r = conn.send("POST", "/ingest/eventbridge", &headers, &pl.body).unwrap();
        latencies.push(t.elapsed());
        assert_eq!(r.status, 202, "{}", r.text());
        if i.is_multiple_of(25) {
            rss_max = rss_max.max(rss_bytes(p.pid()));
        }
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    eprintln!("slow-body attack: normal p99 {p99:?}; rss {rss_start} -> max {rss_max}");
    // A request queued behind the slow bodies would wait out the 3 s
    // timeout; a loaded test machine adds tens of milliseconds at most.
    assert!(p99 < Duration::from_millis(300), "p99 {p99:?}");
    // 100 bodies in hand of at most `max_body_bytes` each, and 32 MiB for
    // connection buffers, allocator slack and the normal traffic's work.
    let bound = 100 * 600_000 + (32 << 20);
    assert!(
        rss_max.saturating_sub(rss_start) < bound,
        "rss {rss_start} -> {rss_max}, more than {bound} bytes of growth"
    );
    // Each slow body is answered 408 once its time is up.
    let mut timed_out = 0;
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut answer = [0u8; 64];
        let n = s.read(&mut answer).unwrap_or(0);
        if String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 408") {
            timed_out += 1;
        }
    }
    assert_eq!(timed_out, 100);
    let status = p.get("/status").json();
    assert_eq!(component(&status, "hook")["detail"]["counters"]["body_timeouts"], 100);
    // Without a signature header nothing of the body is read: 401 at once.
    let mut s = std::net::TcpStream::connect(p.addr).unwrap();
    s.write_all(b"POST /ingest/eventbridge HTTP/1.1\r\nHost: x\r\nContent-Length: 500000\r\n\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut answer = [0u8; 64];
    let n = s.read(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer[..n]).starts_with("HTTP/1.1 401"));
    assert!(p.terminate().success());
}

#[test]
fn a_webhook_source_without_the_journal_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = webhook_config(dir, "", &file_listener(dir)).replace("[service]\n", "[service]\njournal = false\n");
    std::fs::write(dir.join("config.toml"), config.replace("journal = true\n", "")).unwrap();
    let (code, _, err) = cxrelay_cmd(dir, &["check"], &env());
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("`source[0].kind`") && err.contains("needs `[service] journal = true`"),
        "{err}"
    );
}

/// A sink down while ten times the journal's bound is offered: the bound
/// holds (intake is refused with 503 + Retry-After, readiness says why),
/// nothing answered 202 is lost, and it all drains once the sink is back.
#[test]
fn a_sink_down_keeps_the_journal_within_its_bound_and_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = TargetServer::start();
    target.set_failing(true);
    let bound = 64 * 1024;
    let listener = format!(
        "[[listener]]\nname = \"web\"\ntopics = [\"v2.>\"]\nsink = {{ kind = \"http\", url = \"http://{}/in\", batch_events = 50, batch_interval = \"10ms\" }}\nmailbox = 2000\nbatch = 50\nwhen_full = \"block\"\n",
        target.addr
    );
    let config = webhook_config(dir, "ack_timeout = \"1s\"\n", &listener)
        .replace("[service]\n", &format!("[service]\nmax_journal_bytes = {bound}\n"));
    let p = Proc::start_with(dir, &config, &env());
    wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let mut conn = KeepAlive::new(p.addr);
    let mut acked = HashSet::new();
    let (mut refused, mut offered_bytes) = (0, 0);
    let mut i = 0u64;
    // Offer ten times the bound.
    while offered_bytes < 10 * bound {
        let pl = signed(bare(i).into_bytes(), false);
        offered_bytes += pl.body.len();
        let headers: Vec<(&str, &str)> = pl.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let r = conn.send("POST", "/ingest/eventbridge", &headers, &pl.body).unwrap();
        match r.status {
            202 => {
                acked.insert(format!("evt-{i}"));
            }
            503 => {
                assert!(r.header("retry-after").is_some());
                refused += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
        i += 1;
    }
    // Readiness says why within one store round.
    wait_until("readiness reports the bound", Duration::from_secs(10), || {
        let ready = p.get("/health/ready");
        ready.status == 503 && ready.text().contains("journal")
    });
    let status = p.get("/status").json();
    let store = component(&status, "store");
    let held = store["detail"]["journal_bytes"].as_u64().unwrap();
    eprintln!(
        "sink down: offered {offered_bytes} bytes, {} acknowledged, {refused} refused; journal holds {held} of {bound}",
        acked.len()
    );
    assert!(refused > 0, "intake must be refused at the bound");
    // One group commit may cross the bound; none may start past it.
    assert!(held < (bound + 16 * 1024) as u64, "journal {held} bytes, bound {bound}");
    target.set_failing(false);
    wait_until("every acknowledged event delivered", Duration::from_secs(60), || {
        let ids = target.ids().0;
        acked.iter().all(|id| ids.contains(id))
    });
    wait_until("ready again", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    assert!(p.terminate().success());
}
