//! The hardened http sink against a target that throttles, fails,
//! redirects, stalls and rejects on a schedule: nothing lost, no request
//! inside a `Retry-After` window, the rate limit held, memory flat, a
//! rejected batch dead-lettered at once with the answer, an open breaker
//! visible in readiness, secrets never shown.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::common::*;

/// What the target answers one request.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Answer {
    Ok,
    /// 429 with `Retry-After: 1`.
    Throttle,
    /// 503 with `Retry-After` as an HTTP date 2 s ahead.
    BusyUntil,
    /// 503, nothing more.
    Fail,
    /// 503 with `Retry-After: 60`.
    BusyForAMinute,
    /// 302 to elsewhere.
    Redirect,
    /// Reads the request, then says nothing for 3 s (the sink times out
    /// after 1 s), then 200.
    Stall,
    /// 400 with a JSON reason.
    Reject,
}

/// One request as the target saw it.
struct Seen {
    at: Instant,
    head: String,
    answer: Answer,
}

/// A target answering as `plan` says for each request (its number and
/// decoded body), keeping what it committed and when each request came.
struct Target {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// Windows a `Retry-After` opened: no request may arrive before their end.
    windows: Arc<Mutex<Vec<(Instant, SystemTime)>>>,
    /// Lines of batches answered 2xx.
    lines: Arc<Mutex<Vec<String>>>,
}

type Plan = Arc<dyn Fn(usize, &str) -> Answer + Send + Sync>;

/// The body as sent: gunzipped when it says so.
fn decoded(head: &str, body: Vec<u8>) -> String {
    if head.to_ascii_lowercase().contains("content-encoding: gzip") {
        let mut out = String::new();
        flate2::read::GzDecoder::new(&body[..])
            .read_to_string(&mut out)
            .expect("a gzip body");
        out
    } else {
        String::from_utf8_lossy(&body).into_owned()
    }
}

/// The event lines in a body, NDJSON or a JSON array.
fn event_lines(body: &str) -> Vec<String> {
    if body.starts_with('[') {
        let arr: Vec<serde_json::Value> = serde_json::from_str(body).expect("a JSON array");
        arr.iter().map(|v| v.to_string()).collect()
    } else {
        body.lines().map(str::to_string).collect()
    }
}

impl Target {
    fn start(plan: Plan) -> Target {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let t = Target {
            addr,
            seen: Arc::default(),
            windows: Arc::default(),
            lines: Arc::default(),
        };
        let (seen, windows, lines) = (t.seen.clone(), t.windows.clone(), t.lines.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (plan, seen, windows, lines) = (plan.clone(), seen.clone(), windows.clone(), lines.clone());
                std::thread::spawn(move || serve(conn, &*plan, &seen, &windows, &lines));
            }
        });
        t
    }

    fn ids(&self) -> HashSet<String> {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter_map(|v| v["id"].as_str().map(str::to_string))
            .collect()
    }
}

fn serve(
    mut conn: TcpStream,
    plan: &(dyn Fn(usize, &str) -> Answer + Send + Sync),
    seen: &Mutex<Vec<Seen>>,
    windows: &Mutex<Vec<(Instant, SystemTime)>>,
    lines: &Mutex<Vec<String>>,
) {
    let mut buf = Vec::new();
    while let Some((head, body)) = read_request(&mut conn, &mut buf) {
        let at = Instant::now();
        let body = decoded(&head, body);
        let answer = {
            let mut seen = seen.lock().unwrap();
            let answer = plan(seen.len(), &body);
            seen.push(Seen {
                at,
                head: head.clone(),
                answer,
            });
            answer
        };
        let reply: Vec<u8> = match answer {
            Answer::Ok | Answer::Stall => {
                if answer == Answer::Stall {
                    std::thread::sleep(Duration::from_secs(3));
                }
                lines.lock().unwrap().extend(event_lines(&body));
                b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
            }
            Answer::Throttle => {
                // Opened before the answer goes out: the sink cannot see it sooner.
                windows
                    .lock()
                    .unwrap()
                    .push((Instant::now() + Duration::from_secs(1), SystemTime::UNIX_EPOCH));
                b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 4\r\n\r\nslow".to_vec()
            }
            Answer::BusyUntil => {
                // Whole seconds on the wire: the window ends at the date.
                let until = SystemTime::now() + Duration::from_secs(2);
                let date = httpdate::fmt_http_date(until);
                let until = httpdate::parse_http_date(&date).unwrap();
                windows.lock().unwrap().push((Instant::now(), until));
                format!("HTTP/1.1 503 Service Unavailable\r\nRetry-After: {date}\r\nContent-Length: 4\r\n\r\nbusy")
                    .into_bytes()
            }
            Answer::Fail => b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\n\r\ndown".to_vec(),
            Answer::BusyForAMinute => {
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 60\r\nContent-Length: 4\r\n\r\nbusy".to_vec()
            }
            Answer::Redirect => b"HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n".to_vec(),
            Answer::Reject => {
                let reason = b"{\"error\":\"event gen-4242 has no conversation\"}";
                let mut r =
                    format!("HTTP/1.1 400 Bad Request\r\nContent-Length: {}\r\n\r\n", reason.len()).into_bytes();
                r.extend_from_slice(reason);
                r
            }
        };
        if conn.write_all(&reply).is_err() {
            return;
        }
    }
}

fn generator(rate: u64, count: u64) -> String {
    format!(
        "[[source]]\nname = \"gen\"\nkind = \"generator\"\ntopics = [\"calls.{{key}}.start\"]\nrate = {rate}\ncount = {count}\nkeys = 100\npayload_bytes = 300\n\n"
    )
}

fn listener(target: &Target, extra: &str) -> String {
    format!(
        "[[listener]]\nname = \"web\"\ntopics = [\"calls.>\"]\nsink = {{ kind = \"http\", url = \"http://{}/ingest\", batch_events = 100, batch_interval = \"50ms\", timeout = \"1s\"{extra} }}\nmailbox = 1000\nbatch = 100\n\n",
        target.addr
    )
}

#[test]
fn a_throttling_failing_redirecting_stalling_target_gets_everything_within_its_limits() {
    let total = 20_000u64;
    let rps = 25.0;
    // The schedule, by request number; the batch holding gen-4242 is
    // refused for good.
    let plan: Plan = Arc::new(|n, body: &str| {
        if body.contains("\"gen-4242\"") {
            return Answer::Reject;
        }
        match n % 60 {
            3 => Answer::Throttle,
            9 => Answer::Fail,
            14 => Answer::Redirect,
            19 => Answer::BusyUntil,
            24 => Answer::Stall,
            _ => Answer::Ok,
        }
    });
    let target = Target::start(plan);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = format!(
        "{}{}{}",
        preamble(dir),
        // Faster than the limit lets out: the limiter is what holds it back.
        generator(5000, total),
        listener(
            &target,
            &format!(", requests_per_second = {rps}, compression = \"gzip\", format = \"json_array\", headers = {{ \"X-Api-Key\" = \"CXRELAY_TEST_API_KEY\" }}")
        )
    );
    let key = "api-key-7f3a9c";
    let token = ("CXRELAY_ADMIN_TOKEN", "admin-token");
    let p = Proc::start_with(dir, &config, &[("CXRELAY_TEST_API_KEY", key), token]);
    let t = Instant::now();
    let mut rss = Vec::new();
    let dead = |p: &Proc| {
        component(&p.get("/status").json(), "store")["detail"]["dead_letters"]
            .as_u64()
            .unwrap_or(0)
    };
    while (target.ids().len() as u64) + dead(&p) < total {
        assert!(t.elapsed() < Duration::from_secs(240), "not all delivered in 240 s");
        rss.push(rss_bytes(p.pid()));
        std::thread::sleep(Duration::from_millis(250));
    }
    let elapsed = t.elapsed();
    let status = p.get("/status");
    assert!(!status.text().contains(key), "the header's value shows in /status");

    // Dead letters: one batch, refused once, with the target's answer.
    let url = format!("http://{}", p.addr);
    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "list", "--json", "--url", &url], &[token]);
    assert_eq!(code, 0, "{err}");
    let letters: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert!(!letters.is_empty() && letters.len() <= 100, "{}", letters.len());
    assert!(letters.iter().any(|l| l["event_id"] == "gen-4242"), "{out}");
    for l in &letters {
        assert_eq!(l["attempts"], 1, "{l}");
        let e = l["error"].as_str().unwrap();
        assert!(
            e.contains("HTTP 400") && e.contains("has no conversation") && e.contains("not retried"),
            "{e}"
        );
    }
    assert!(p.terminate().success());
    let log = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
        .collect::<String>();
    assert!(!log.contains(key), "the header's value shows in a log");

    // No loss: every event delivered or dead-lettered.
    let ids = target.ids();
    let dead_ids: HashSet<String> = letters
        .iter()
        .map(|l| l["event_id"].as_str().unwrap().to_string())
        .collect();
    let missing: Vec<u64> = (0..total)
        .filter(|i| {
            let id = format!("gen-{i}");
            !ids.contains(&id) && !dead_ids.contains(&id)
        })
        .collect();
    assert!(
        missing.is_empty(),
        "{} events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    let seen = target.seen.lock().unwrap();
    // Every request carried the header, gzipped JSON arrays.
    assert!(seen.iter().all(|s| {
        let h = s.head.to_ascii_lowercase();
        h.contains(&format!("x-api-key: {key}"))
            && h.contains("content-encoding: gzip")
            && h.contains("content-type: application/json")
    }));
    // No request inside a Retry-After window.
    let windows = target.windows.lock().unwrap();
    assert!(windows.len() >= 4, "the schedule ran: {} windows", windows.len());
    let wall = |at: Instant| SystemTime::now() - Instant::now().saturating_duration_since(at);
    for (end, until) in windows.iter() {
        for s in seen.iter() {
            let inside_429 = s.at > *end - Duration::from_secs(1) && s.at < *end && *until == SystemTime::UNIX_EPOCH;
            let inside_date = *until != SystemTime::UNIX_EPOCH && s.at > *end && wall(s.at) < *until;
            assert!(
                !inside_429 && !inside_date,
                "a request came inside a Retry-After window"
            );
        }
    }
    // The rate limit held over every one-second span.
    let times: Vec<Instant> = seen.iter().map(|s| s.at).collect();
    let busiest = times
        .iter()
        .map(|t0| {
            times
                .iter()
                .filter(|t| **t >= *t0 && **t < *t0 + Duration::from_secs(1))
                .count()
        })
        .max()
        .unwrap_or(0);
    assert!(busiest <= rps as usize + 1, "{busiest} requests in one second");
    assert!(
        busiest >= rps as usize - 3,
        "the limit was never reached ({busiest}/s): the test shows nothing"
    );
    // Memory flat: after the first seconds, RSS stays within a few MiB.
    let settled = &rss[rss.len().min(8)..];
    let (lo, hi) = (
        settled.iter().min().copied().unwrap_or(0),
        settled.iter().max().copied().unwrap_or(0),
    );
    let count = |a: Answer| seen.iter().filter(|s| s.answer == a).count();
    eprintln!(
        "http chaos: {total} events in {:.1}s over {} requests (429: {}, 503+date: {}, 503: {}, 302: {}, stalls: {}, 400: {}); \
         busiest second {busiest} requests (limit {rps}); {} delivered lines for {} ids; rss {lo}..{hi} bytes",
        elapsed.as_secs_f64(),
        seen.len(),
        count(Answer::Throttle),
        count(Answer::BusyUntil),
        count(Answer::Fail),
        count(Answer::Redirect),
        count(Answer::Stall),
        count(Answer::Reject),
        target.lines.lock().unwrap().len(),
        ids.len(),
    );
    assert!(hi < lo + 24 * 1024 * 1024, "memory grew: {lo} -> {hi}");
}

/// A target answering `first` to every request until the flag it comes
/// with is cleared, then `Ok`.
fn answering_until_cleared(first: Answer) -> (Target, Arc<std::sync::atomic::AtomicBool>) {
    let flag = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let f = flag.clone();
    let target = Target::start(Arc::new(move |_, _: &str| {
        if f.load(std::sync::atomic::Ordering::SeqCst) {
            first
        } else {
            Answer::Ok
        }
    }));
    (target, flag)
}

/// Waits until `target` has been sent `n` requests (each refused, while
/// it fails).
fn wait_for_attempts(target: &Target, n: usize) {
    wait_until(&format!("{n} attempts"), Duration::from_secs(30), || {
        target.seen.lock().unwrap().len() >= n
    });
}

/// Stops `p`: how it exited, and how long the stop took.
fn timed_stop(p: Proc) -> (std::process::ExitStatus, Duration) {
    let t = Instant::now();
    let status = p.terminate();
    (status, t.elapsed())
}

#[test]
fn an_open_breaker_makes_the_service_not_ready_until_a_trial_succeeds() {
    let (target, failing) = answering_until_cleared(Answer::Fail);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let config = format!(
        "{}{}{}",
        preamble(dir),
        generator(1000, 500),
        listener(&target, ", breaker_failures = 3, breaker_cooldown = \"2s\"")
    );
    let p = Proc::start(dir, &config);
    wait_until("readiness names the open breaker", Duration::from_secs(30), || {
        let r = p.get("/health/ready");
        r.status == 503
            && r.json()["components"]["web"]
                .as_str()
                .is_some_and(|s| s.contains("circuit breaker open"))
    });
    let web = component(&p.get("/status").json(), "web");
    assert_eq!(web["state"], "paused", "{web}");
    assert_eq!(web["detail"]["writer"]["breaker"], "open", "{web}");
    // While open, one trial per cool-down at most.
    let before = target.seen.lock().unwrap().len();
    std::thread::sleep(Duration::from_millis(4500));
    let during = target.seen.lock().unwrap().len() - before;
    assert!(during <= 3, "{during} requests in 4.5 s with a 2 s cool-down");
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    wait_until("ready again and everything delivered", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200 && target.ids().len() == 500
    });
    assert_eq!(
        component(&p.get("/status").json(), "web")["detail"]["writer"]["breaker"],
        "closed"
    );
    assert!(p.terminate().success());
}

#[test]
fn a_stop_during_a_retry_after_wait_ends_at_once_and_the_next_start_delivers_the_batch() {
    let (target, busy) = answering_until_cleared(Answer::BusyForAMinute);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // One batch: the events arrive well within its interval, so the queue
    // in front of the sink is empty when the stop comes.
    let config = format!(
        "{}{}[[listener]]\nname = \"web\"\ntopics = [\"calls.>\"]\nsink = {{ kind = \"http\", url = \"http://{}/ingest\", batch_events = 100, batch_interval = \"1s\" }}\n\n",
        preamble(dir),
        generator(5000, 50),
        target.addr
    );
    let p = Proc::start(dir, &config);
    wait_until("the batch refused for a minute", Duration::from_secs(30), || {
        !target.seen.lock().unwrap().is_empty()
    });
    let log = p.log.clone();
    let t = Instant::now();
    let status = p.terminate();
    let took = t.elapsed();
    // Not the minute the target asked for, nor the 20 s shutdown timeout.
    assert!(took < Duration::from_secs(8), "the stop took {took:?}");
    assert!(!status.success(), "the batch was not committed: exit 1");
    let text = std::fs::read_to_string(&log).unwrap();
    let said = text
        .lines()
        .find(|l| l.contains("final commit failed"))
        .unwrap_or_else(|| panic!("no final commit error in the log:\n{text}"));
    assert!(
        said.contains("waiting as the target asked") && said.contains("503"),
        "{said}"
    );
    // The window the target asked for holds even at a stop: the attempts
    // the flush made were answered by the sink, not sent.
    assert_eq!(target.seen.lock().unwrap().len(), 1);
    assert!(target.ids().is_empty());
    // Never acknowledged, the batch is delivered at the next start.
    busy.store(false, std::sync::atomic::Ordering::SeqCst);
    let p = Proc::start(dir, &config);
    wait_until("the batch delivered", Duration::from_secs(30), || {
        target.ids().len() == 50
    });
    assert!(p.terminate().success());
}

#[test]
fn a_stop_while_the_sink_waits_out_a_backoff_retries_at_once_and_drains_its_queue() {
    let (target, failing) = answering_until_cleared(Answer::Fail);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // More events than one batch: the rest wait in the listener's queue,
    // which the stop must drain.
    let total = 2000;
    let config = format!("{}{}{}", preamble(dir), generator(5000, total), listener(&target, ""));
    let p = Proc::start(dir, &config);
    // Seven refusals in a row: the sink's backoff has grown to about 6 s
    // (0.1 s doubling), and its next wait has just begun.
    wait_for_attempts(&target, 7);
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let (status, took) = timed_stop(p);
    assert!(status.success());
    // Not after the backoff: the stop nudged the sink, and the target,
    // back, took its batch and the queue behind it (a clean exit says all
    // that was journaled is written; the generator, held back, had not
    // made all its events yet).
    assert!(took < Duration::from_secs(3), "the stop took {took:?}");
    assert!(target.ids().len() > 100, "{} delivered", target.ids().len());
}

#[test]
fn a_stop_while_the_target_stays_down_ends_after_one_more_attempt_and_the_next_start_delivers_it_all() {
    let (target, failing) = answering_until_cleared(Answer::Fail);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // More events than one batch: the rest wait in the listener's queue,
    // which cannot drain while the target is down.
    let total = 2000;
    let config = format!("{}{}{}", preamble(dir), generator(5000, total), listener(&target, ""));
    let p = Proc::start(dir, &config);
    wait_for_attempts(&target, 3);
    let log = p.log.clone();
    let (status, took) = timed_stop(p);
    // The nudged attempt fails too: the queue is not waited for until the
    // 20 s shutdown timeout, its events being kept in the journal.
    assert!(took < Duration::from_secs(8), "the stop took {took:?}");
    assert!(!status.success(), "events were left undelivered: exit 1");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .any(|l| l.contains("its target is still down") && l.contains("\"web\"")),
        "no word of the target being down in the log:\n{text}"
    );
    assert!(target.ids().is_empty());
    // Nothing was lost: the next start delivers every event.
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let p = Proc::start(dir, &config);
    wait_until("every event delivered", Duration::from_secs(60), || {
        target.ids().len() == total as usize
    });
    assert!(p.terminate().success());
}

#[test]
fn a_target_down_at_a_stop_holds_neither_the_stop_nor_a_healthy_listener_beside_it() {
    let (target, failing) = answering_until_cleared(Answer::Fail);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let out = dir.join("out");
    let total = 2000;
    // The down target's queue fills and holds routing: the file listener
    // beside it gets only what was routed before.
    let config = format!(
        "{}{}{}[[listener]]\nname = \"files\"\ntopics = [\"calls.>\"]\nsink = {{ kind = \"file\", path = \"{}\" }}\n\n",
        preamble(dir),
        generator(5000, total),
        listener(&target, ""),
        out.display()
    );
    let p = Proc::start(dir, &config);
    wait_for_attempts(&target, 3);
    let (status, took) = timed_stop(p);
    assert!(took < Duration::from_secs(8), "the stop took {took:?}");
    assert!(!status.success(), "events were left undelivered: exit 1");
    let written_before_the_restart = read_ndjson_dir(&out).len();
    assert!(written_before_the_restart > 0, "the file listener got what was routed");
    // The next start: everything reaches both, and the files hold each
    // event once.
    failing.store(false, std::sync::atomic::Ordering::SeqCst);
    let p = Proc::start(dir, &config);
    wait_until("every event in both listeners", Duration::from_secs(60), || {
        target.ids().len() == total as usize && read_ndjson_dir(&out).len() >= total as usize
    });
    assert!(p.terminate().success());
    let lines = read_ndjson_dir(&out);
    let ids: HashSet<String> = lines.iter().map(|l| l["id"].as_str().unwrap().to_string()).collect();
    assert_eq!((lines.len(), ids.len()), (total as usize, total as usize));
}

#[test]
fn without_the_journal_a_stop_waits_for_a_down_targets_queue_until_its_timeout() {
    let (target, _failing) = answering_until_cleared(Answer::Fail);
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    // Nothing would deliver the queue later: the stop keeps trying for its
    // whole timeout (3 s here) instead of giving up after one attempt.
    let preamble = preamble(dir).replace(
        "shutdown_timeout = \"20s\"",
        "shutdown_timeout = \"3s\"\njournal = false",
    );
    assert!(preamble.contains("journal = false"), "{preamble}");
    let config = format!("{preamble}{}{}", generator(5000, 2000), listener(&target, ""));
    let p = Proc::start(dir, &config);
    wait_for_attempts(&target, 3);
    let log = p.log.clone();
    let (status, took) = timed_stop(p);
    assert!(took >= Duration::from_millis(2500), "the stop took {took:?}");
    assert!(!status.success(), "events were left undelivered: exit 1");
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("its target is still down"), "gave up early:\n{text}");
}
