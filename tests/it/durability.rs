//! Durability as a user sees it: kill -9, failing sinks, dead letters,
//! lossy listeners, a full disk.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::*;
use cxrelay::store::StoreDb;

fn generator(rate: u64, count: Option<u64>, payload: usize) -> String {
    let count = count.map(|c| format!("count = {c}\n")).unwrap_or_default();
    format!(
        "[[source]]\nname = \"gen\"\nkind = \"generator\"\ntopics = [\"calls.{{key}}.start\"]\nrate = {rate}\n{count}keys = 100\npayload_bytes = {payload}\n\n"
    )
}

fn file_listener(dir: &Path) -> String {
    format!(
        "[[listener]]\nname = \"files\"\ntopics = [\"calls.>\"]\nsink = {{ kind = \"file\", path = \"{}\", batch_events = 500, batch_interval = \"50ms\" }}\nmailbox = 2048\n\n",
        dir.join("out").display()
    )
}

/// The generator's committed checkpoint (events 0..n are committed), read
/// from the store of a stopped cxrelay.
fn committed(dir: &Path) -> u64 {
    let db = StoreDb::open(&dir.join("data"), 1, 1).unwrap();
    cxrelay::sources::generator::parse_checkpoint(db.checkpoint("gen").unwrap())
}

fn ids_and_lines(dir: &Path) -> (HashSet<u64>, usize) {
    let lines = read_ndjson_dir(&dir.join("out"));
    let ids = lines
        .iter()
        .map(|l| l["id"].as_str().unwrap()[4..].parse().unwrap())
        .collect();
    (ids, lines.len())
}

#[test]
fn kill_9_at_random_moments_loses_nothing_committed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let total = 60_000;
    let config = format!(
        "{}{}{}",
        preamble(dir),
        generator(15_000, Some(total), 300),
        file_listener(dir)
    );
    let mut committed_at_kill = Vec::new();
    let seed = kill_9_at_random_moments(dir, &config, 5, || committed_at_kill.push(committed(dir)));
    let p = Proc::start(dir, &config);
    wait_until("every event delivered", Duration::from_secs(120), || {
        ids_and_lines(dir).0.len() as u64 == total
    });
    assert!(p.terminate().success());
    let (ids, lines) = ids_and_lines(dir);
    assert_eq!(ids, (0..total).collect::<HashSet<u64>>());
    let duplicates = lines - ids.len();
    eprintln!(
        "kill -9 test (seed {seed}): committed at each kill {committed_at_kill:?}; {duplicates} duplicate lines in {lines}"
    );
    assert!(
        committed_at_kill.windows(2).all(|w| w[1] >= w[0]),
        "{committed_at_kill:?}"
    );
    // The file sink skips what it already made durable: no duplicate even
    // for events written but not yet acknowledged when the process died.
    assert_eq!(duplicates, 0, "{duplicates} duplicates");
}

fn http_listener(target: &TargetServer, extra: &str, when_full: &str, mailbox: usize) -> String {
    format!(
        "[[listener]]\nname = \"web\"\ntopics = [\"calls.>\"]\nsink = {{ kind = \"http\", url = \"http://{}/ingest\", batch_events = 200, batch_interval = \"50ms\", timeout = \"2s\"{extra} }}\nmailbox = {mailbox}\nwhen_full = \"{when_full}\"\n\n",
        target.addr
    )
}

/// A POST answered 302 is a failed commit: awc would follow it with a GET
/// whose 2xx would acknowledge a batch nobody received.
#[test]
fn an_http_sink_answered_with_a_redirect_keeps_its_batch_until_the_target_takes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = TargetServer::start();
    target.set_redirecting(true);
    let listener = http_listener(&target, "", "block", 1000).replace("/ingest", "/ingest?token=hunter2");
    let config = format!("{}{}{listener}", preamble(dir), generator(2000, Some(300), 50));
    let p = Proc::start(dir, &config);
    wait_until("the sink reports the redirect", Duration::from_secs(30), || {
        component(&p.get("/status").json(), "web")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 302"))
    });
    let status = p.get("/status").json();
    assert_eq!(component(&status, "web")["detail"]["committed_events"], 0, "{status}");
    assert_eq!(
        target.landings.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect was followed"
    );
    assert!(target.ids().0.is_empty());
    // The URL's query may carry a credential: status never shows it.
    assert!(!status.to_string().contains("hunter2"), "{status}");
    target.set_redirecting(false);
    wait_until("all 300 delivered", Duration::from_secs(30), || {
        target.ids().0.len() == 300
    });
    assert!(p.terminate().success());
}

#[test]
fn a_failing_sink_holds_events_in_the_journal_with_flat_memory_then_delivers_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = TargetServer::start();
    let config = format!(
        "{}{}{}",
        preamble(dir),
        generator(5000, None, 500),
        http_listener(&target, "", "block", 1000)
    );
    let p = Proc::start(dir, &config);
    wait_until("events arrive", Duration::from_secs(30), || target.ids().0.len() > 2000);
    target.set_failing(true);
    wait_until("sink reports the failure", Duration::from_secs(30), || {
        component(&p.get("/status").json(), "web")["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("HTTP 503"))
    });
    let emitted = |p: &Proc| {
        component(&p.get("/status").json(), "gen")["detail"]["emitted"]
            .as_u64()
            .unwrap_or(0)
    };
    let rss_start = rss_bytes(p.pid());
    let emitted_start = emitted(&p);
    let t = Instant::now();
    let mut rss_max = rss_start;
    while t.elapsed() < Duration::from_secs(4) {
        rss_max = rss_max.max(rss_bytes(p.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let held_back = emitted(&p) - emitted_start;
    eprintln!("while failing: rss {rss_start} -> max {rss_max} bytes; generator advanced {held_back} events in 4 s");
    // Backpressure reached the source: at 5000/s it would have made 20000.
    assert!(held_back < 5000, "source not held back: {held_back}");
    assert!(
        rss_max < rss_start + 16 * 1024 * 1024,
        "memory grew: {rss_start} -> {rss_max}"
    );
    let status = p.get("/status").json();
    assert!(
        component(&status, "store")["detail"]["journal_entries"]
            .as_u64()
            .unwrap()
            > 0
    );
    target.set_failing(false);
    let emitted_now = emitted(&p);
    wait_until("everything emitted so far delivered", Duration::from_secs(60), || {
        let ids = target.ids().0;
        (0..emitted_now).all(|n| ids.contains(&format!("gen-{n}")))
    });
    assert!(p.terminate().success());
    let n = committed(dir);
    let ids = target.ids().0;
    let missing: Vec<u64> = (0..n).filter(|i| !ids.contains(&format!("gen-{i}"))).collect();
    assert!(
        missing.is_empty(),
        "{} committed events never delivered, e.g. {:?}",
        missing.len(),
        &missing[..5.min(missing.len())]
    );
}

#[test]
fn with_a_retry_limit_events_go_to_dead_letters_and_dlq_replay_delivers_them() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = TargetServer::start();
    target.set_failing(true);
    let config = format!(
        "{}{}{}",
        preamble(dir),
        generator(2000, Some(300), 200),
        http_listener(&target, ", max_retries = 2", "block", 1000)
    );
    let token = [("CXRELAY_ADMIN_TOKEN", "s3cret-token")];
    let p = Proc::start_with(dir, &config, &token);
    wait_until("300 dead letters", Duration::from_secs(60), || {
        component(&p.get("/status").json(), "store")["detail"]["dead_letters"] == 300
    });
    // The CLI finds the store in use and goes through the admin API.
    let url = format!("http://{}", p.addr);
    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "list", "--json", "--url", &url], &token);
    assert_eq!(code, 0, "{err}");
    let listed: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.len(), 300);
    assert_eq!(listed[0]["listener"], "web");
    assert_eq!(listed[0]["attempts"], 3);
    assert!(listed[0]["error"].as_str().unwrap().contains("HTTP 503"));
    assert!(listed[0]["payload"].as_str().unwrap().contains("\"eventId\""));
    let (code, out, _) = cxrelay_cmd(dir, &["dlq", "list", "--url", &url], &token);
    assert_eq!(code, 0);
    assert!(out.contains("300 dead letter(s)") && out.contains("sink:web"), "{out}");
    // Without the token the admin API refuses.
    let (code, _, err) = cxrelay_cmd(
        dir,
        &["dlq", "list", "--url", &url],
        &[("CXRELAY_ADMIN_TOKEN", "wrong")],
    );
    assert_eq!(code, 1);
    assert!(err.contains("401"), "{err}");

    target.set_failing(false);
    let (code, out, err) = cxrelay_cmd(dir, &["dlq", "replay", "--all", "--url", &url], &token);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("300 dead letter(s) sent back"), "{out}");
    wait_until("replayed events delivered", Duration::from_secs(30), || {
        target.ids().0.len() == 300
    });
    wait_until("dead letters gone from status", Duration::from_secs(10), || {
        component(&p.get("/status").json(), "store")["detail"]["dead_letters"] == 0
    });
    assert!(p.terminate().success());
    // Offline now: the store file is used directly.
    let (code, out, _) = cxrelay_cmd(dir, &["dlq", "list"], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("0 dead letter(s)"), "{out}");
}

#[test]
fn a_lossy_listener_does_not_hold_the_journal_back() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let stuck = TargetServer::start();
    stuck.set_failing(true);
    let config = format!(
        "{}{}{}{}",
        preamble(dir),
        generator(10_000, Some(30_000), 200),
        file_listener(dir),
        http_listener(&stuck, "", "drop_newest", 100)
    );
    let p = Proc::start(dir, &config);
    wait_until("all events in files", Duration::from_secs(60), || {
        ids_and_lines(dir).0.len() == 30_000
    });
    wait_until("journal truncated", Duration::from_secs(10), || {
        component(&p.get("/status").json(), "store")["detail"]["journal_entries"].as_u64() == Some(0)
    });
    let status = p.get("/status").json();
    let lossy = status["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == "web")
        .unwrap()
        .clone();
    assert!(
        lossy["queue"]["dropped_queue_full"].as_u64().unwrap() > 25_000,
        "{lossy}"
    );
    let metrics = p.get("/metrics").text();
    assert!(
        metric(
            &metrics,
            "cxrelay_listener_dropped_total{listener=\"web\",reason=\"queue_full\"}"
        )
        .unwrap()
            > 25_000.0
    );
    // The lossy listener's target never recovers: shutdown gives it a short
    // grace and still exits cleanly.
    assert!(p.terminate().success());
}

/// Sets (or lifts, with `None`) the file-size limit of a process.
fn limit_file_size(pid: u32, bytes: Option<u64>) {
    let lim = libc::rlimit {
        rlim_cur: bytes.unwrap_or(libc::RLIM_INFINITY),
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: prlimit reads `lim` and writes nothing when old is null.
    let rc = unsafe { libc::prlimit(pid as libc::pid_t, libc::RLIMIT_FSIZE, &lim, std::ptr::null_mut()) };
    assert_eq!(rc, 0, "prlimit failed: {}", std::io::Error::last_os_error());
}

#[test]
fn a_full_disk_is_reported_refuses_work_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let target = TargetServer::start();
    let config = format!(
        "{}{}{}",
        preamble(dir),
        generator(3000, None, 2000),
        http_listener(&target, "", "block", 1000)
    );
    let p = Proc::start(dir, &config);
    wait_until("ready and flowing", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200 && target.ids().0.len() > 1000
    });
    // No file of the process may extend past 4 KiB: the store's writes fail
    // as on a full disk.
    limit_file_size(p.pid(), Some(4096));
    wait_until("readiness fails naming the store", Duration::from_secs(30), || {
        let r = p.get("/health/ready");
        r.status == 503
            && r.json()["components"]["store"]
                .as_str()
                .is_some_and(|s| s.contains("too large"))
    });
    let status = p.get("/status").json();
    let gen = component(&status, "gen");
    assert_eq!(gen["state"], "paused", "{gen}");
    assert!(gen["last_error"].as_str().unwrap().contains("store"), "{gen}");
    assert!(p.log_text().contains("store write failed"), "a clear error in the log");
    let delivered_while_full = target.ids().0.len();
    limit_file_size(p.pid(), None);
    wait_until("ready again", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    wait_until("events flow again", Duration::from_secs(30), || {
        target.ids().0.len() > delivered_while_full + 1000
    });
    assert!(p.terminate().success());
    let n = committed(dir);
    let ids = target.ids().0;
    assert!(
        (0..n).all(|i| ids.contains(&format!("gen-{i}"))),
        "every committed event delivered"
    );
}
