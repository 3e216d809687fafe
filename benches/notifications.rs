//! Notifications end to end: the bundled emulator sends ~1.5 KB
//! conversation events over its sockets, the release binary reads them,
//! journals them and writes them to a file sink. Both run on this machine's
//! cores, so the emulator's work is included in every figure. cxrelay runs
//! with its shipped defaults but for the sink's batch interval in the
//! latency run (1 ms: the default 200 ms would be the figure).
//!
//! Prints events/s for 1 and 4 channels, with and without a transform
//! (flatten + mask + timestamps), with the journal on and off; latency from
//! the emulator's send to the line appearing in the file at a paced 10k
//! events/s; and cxrelay's RSS while its only listener is slow.
//!
//! `CXRELAY_BENCH_DIR` picks where data and output go (default /dev/shm, so
//! the figures are the software's); `CXRELAY_BENCH_EVENTS` the events per
//! throughput run (default 400000).

#[path = "../tests/it/common.rs"]
mod common;

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{emulator, genesys_section, wait_until, Proc};
use cxrelay::emulator::notifications::{NotificationSettings, TrafficRequest};
use cxrelay::emulator::{EmulatorHandle, EmulatorSettings};

const PAYLOAD_BYTES: usize = 1500;

fn bench_dir() -> PathBuf {
    PathBuf::from(std::env::var("CXRELAY_BENCH_DIR").unwrap_or_else(|_| "/dev/shm".into()))
}

fn events_per_run() -> u64 {
    std::env::var("CXRELAY_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400_000)
}

fn start_emulator() -> EmulatorHandle {
    emulator(EmulatorSettings {
        requests_per_minute: 0,
        notifications: NotificationSettings {
            record_limit: 5_000_000,
            ..NotificationSettings::default()
        },
        ..EmulatorSettings::default()
    })
}

struct Setup<'a> {
    channels: usize,
    transform: bool,
    journal: bool,
    /// Sink batching (`batch_interval`).
    interval: &'a str,
    /// A listener that takes this long per batch of 100 (an HTTP sink).
    slow_sink: Option<std::net::SocketAddr>,
}

fn config(dir: &Path, e: &EmulatorHandle, s: &Setup<'_>) -> String {
    let ids: Vec<String> = (0..s.channels * 1000).map(|i| format!("\"q{i}\"")).collect();
    let transform = if s.transform {
        "transform = { flatten = true, timestamps = true, mask = [\"ani\", \"dnis\", \"addressFrom\", \"addressTo\"], mask_key_env = \"BENCH_MASK_KEY\" }\n"
    } else {
        ""
    };
    let sink = match s.slow_sink {
        Some(addr) => format!(
            "sink = {{ kind = \"http\", url = \"http://{addr}/\", batch_events = 100 }}\nmailbox = 1000\nbatch = 100\n"
        ),
        None => format!(
            "sink = {{ kind = \"file\", path = \"{}\", batch_interval = \"{}\" }}\n",
            dir.join("out").display(),
            s.interval
        ),
    };
    format!(
        "[service]\ndata_dir = \"{}\"\nlog_format = \"json\"\nlog_level = \"info\"\njournal = {}\nshutdown_timeout = \"60s\"\n\n[http]\nlisten = \"127.0.0.1:0\"\n\n{}\
         [[source]]\nname = \"queues\"\nkind = \"notifications\"\ntopics = [\"v2.routing.queues.{{queue}}.conversations\"]\nids = {{ queue = [{}] }}\n\n\
         [transform]\nworkers = 2\nchunk_size = 250\n\n\
         [[listener]]\nname = \"files\"\ntopics = [\"v2.>\"]\n{transform}{sink}",
        dir.join("data").display(),
        s.journal,
        genesys_section(e, 6000),
        ids.join(", "),
    )
}

fn committed(p: &Proc) -> u64 {
    let status = p.get("/status").json();
    common::component(&status, "files")["detail"]["committed_events"]
        .as_u64()
        .unwrap_or(0)
}

fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    // utime and stime are fields 14 and 15 (1-based) of the whole line.
    fields.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + fields.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

fn traffic(e: &EmulatorHandle, rate: Option<f64>, count: u64) {
    e.state().notifications.traffic.start(
        e.state(),
        TrafficRequest {
            rate,
            count: Some(count),
            payload_bytes: Some(PAYLOAD_BYTES),
            ..TrafficRequest::default()
        },
    );
}

fn launch(dir: &Path, e: &EmulatorHandle, s: &Setup<'_>) -> Proc {
    let p = Proc::start_with(dir, &config(dir, e, s), &[("BENCH_MASK_KEY", "bench-mask-key")]);
    wait_until("channels connected", Duration::from_secs(60), || {
        e.state().notifications.open_sockets() == s.channels
    });
    p
}

/// Events/s from the first send to the last commit of the file sink, and
/// the share of a core cxrelay and the emulator process used meanwhile.
fn throughput(s: Setup<'_>) -> (f64, f64, f64) {
    let e = start_emulator();
    let tmp = tempfile::tempdir_in(bench_dir()).unwrap();
    let p = launch(tmp.path(), &e, &s);
    let warmup = 20_000;
    traffic(&e, None, warmup);
    wait_until("warm-up committed", Duration::from_secs(120), || {
        committed(&p) >= warmup
    });
    let n = events_per_run();
    let (cx0, em0, t0) = (cpu_ticks(p.pid()), cpu_ticks(std::process::id()), Instant::now());
    traffic(&e, None, n);
    wait_until("run committed", Duration::from_secs(600), || {
        committed(&p) >= warmup + n
    });
    let elapsed = t0.elapsed().as_secs_f64();
    let ticks = 100.0; // USER_HZ
    let cx = (cpu_ticks(p.pid()) - cx0) as f64 / ticks / elapsed;
    let em = (cpu_ticks(std::process::id()) - em0) as f64 / ticks / elapsed;
    assert!(p.terminate().success());
    (n as f64 / elapsed, cx, em)
}

fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Watches the sink's files and notes when each correlation id appears.
/// Files are told apart by inode: a finished part file is renamed, and is
/// read on from where it was, not again from its start.
fn tail(dir: PathBuf, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Vec<(String, u64)>> {
    std::thread::spawn(move || {
        use std::os::unix::fs::MetadataExt;
        let mut seen: std::collections::HashMap<String, u64> = Default::default();
        let mut offsets: std::collections::HashMap<u64, usize> = Default::default();
        let mut partial: std::collections::HashMap<u64, Vec<u8>> = Default::default();
        while !stop.load(Ordering::Relaxed) {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
                .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
                .unwrap_or_default();
            files.sort();
            for f in files {
                let Ok(mut file) = std::fs::File::open(&f) else {
                    continue;
                };
                let Ok(inode) = file.metadata().map(|m| m.ino()) else {
                    continue;
                };
                let off = offsets.entry(inode).or_default();
                let mut buf = Vec::new();
                use std::io::Seek;
                if file.seek(std::io::SeekFrom::Start(*off as u64)).is_err() || file.read_to_end(&mut buf).is_err() {
                    continue;
                }
                if buf.is_empty() {
                    continue;
                }
                let at = now_us();
                *off += buf.len();
                let pending = partial.entry(inode).or_default();
                pending.extend_from_slice(&buf);
                let mut start = 0;
                while let Some(nl) = pending[start..].iter().position(|b| *b == b'\n') {
                    let line = &pending[start..start + nl];
                    // The id field is the correlation id.
                    if let Some(i) = line.windows(7).position(|w| w == b"{\"id\":\"") {
                        let rest = &line[i + 7..];
                        if let Some(end) = rest.iter().position(|b| *b == b'"') {
                            seen.entry(String::from_utf8_lossy(&rest[..end]).into_owned())
                                .or_insert(at);
                        }
                    }
                    start += nl + 1;
                }
                pending.drain(..start);
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        seen.into_iter().collect()
    })
}

/// Latency percentiles (ms) from the emulator's send to the file, paced.
fn latency(rate: f64, seconds: u64) -> (f64, f64, f64, usize) {
    let e = start_emulator();
    let tmp = tempfile::tempdir_in(bench_dir()).unwrap();
    let s = Setup {
        channels: 1,
        transform: false,
        journal: true,
        interval: "1ms",
        slow_sink: None,
    };
    let p = launch(tmp.path(), &e, &s);
    std::fs::create_dir_all(tmp.path().join("out")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = tail(tmp.path().join("out"), stop.clone());
    let n = (rate * seconds as f64) as u64;
    traffic(&e, Some(rate), n);
    wait_until("paced run committed", Duration::from_secs(seconds + 60), || {
        committed(&p) >= n
    });
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    let seen = watcher.join().unwrap();
    let notif = &e.state().notifications;
    let seed = e.state().settings.seed;
    let mut sent: std::collections::HashMap<String, u64> = Default::default();
    for r in notif.records() {
        for (i, at) in r.delivered.iter().zip(&r.delivered_at_us) {
            sent.insert(notif.traffic.correlation_id(seed, r.run, *i), *at);
        }
    }
    let mut lat: Vec<f64> = seen
        .iter()
        .filter_map(|(id, at)| sent.get(id).map(|s| at.saturating_sub(*s) as f64 / 1000.0))
        .collect();
    lat.sort_by(|a, b| a.total_cmp(b));
    assert!(p.terminate().success());
    let pct = |q: f64| lat[((lat.len() as f64 * q) as usize).min(lat.len() - 1)];
    (pct(0.5), pct(0.99), pct(0.999), lat.len())
}

/// An HTTP target that answers each request after `delay`.
fn slow_target(delay: Duration) -> std::net::SocketAddr {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            std::thread::spawn(move || {
                let mut have = Vec::new();
                loop {
                    if common::read_request(&mut conn, &mut have).is_none() {
                        return;
                    }
                    std::thread::sleep(delay);
                    if conn
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// cxrelay's peak RSS while its listener takes 200 ms per 100 events and
/// the emulator offers 20k events/s for `seconds`.
fn rss_with_a_slow_listener(seconds: u64) -> (u64, u64, u64) {
    let e = start_emulator();
    let tmp = tempfile::tempdir_in(bench_dir()).unwrap();
    let s = Setup {
        channels: 1,
        transform: false,
        journal: true,
        interval: "200ms",
        slow_sink: Some(slow_target(Duration::from_millis(200))),
    };
    let p = launch(tmp.path(), &e, &s);
    let start_rss = common::rss_bytes(p.pid());
    traffic(&e, Some(20_000.0), 20_000 * seconds);
    let mut peak = 0;
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(seconds) {
        peak = peak.max(common::rss_bytes(p.pid()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let done = committed(&p);
    e.state().notifications.traffic.stop();
    p.kill9();
    (start_rss, peak, done)
}

/// The emulator alone: events/s it sends to a bare awc client that only
/// counts frames (the ceiling any client can reach on this machine).
fn wire(channels: usize, n: u64) -> f64 {
    use futures_util::StreamExt;
    let e = start_emulator();
    let url = e.url();
    let state = e.state().clone();
    let system = actix::System::new();
    system.block_on(async move {
        let http = awc::Client::default();
        let token = {
            use base64::Engine;
            let basic = base64::engine::general_purpose::STANDARD.encode(format!(
                "{}:{}",
                cxrelay::emulator::DEFAULT_CLIENT_ID,
                cxrelay::emulator::DEFAULT_CLIENT_SECRET
            ));
            let v: serde_json::Value = http
                .post(format!("{url}/oauth/token"))
                .insert_header(("authorization", format!("Basic {basic}")))
                .insert_header(("content-type", "application/x-www-form-urlencoded"))
                .send_body("grant_type=client_credentials")
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            v["access_token"].as_str().unwrap().to_string()
        };
        let mut counters = Vec::new();
        for c in 0..channels {
            let ch: serde_json::Value = http
                .post(format!("{url}/api/v2/notifications/channels"))
                .bearer_auth(&token)
                .send_json(&serde_json::json!({}))
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let topics: Vec<serde_json::Value> = (0..1000)
                .map(|i| serde_json::json!({"id": format!("v2.routing.queues.c{c}q{i}.conversations")}))
                .collect();
            http.put(format!(
                "{url}/api/v2/notifications/channels/{}/subscriptions",
                ch["id"].as_str().unwrap()
            ))
            .bearer_auth(&token)
            .send_json(&topics)
            .await
            .unwrap();
            let (_, mut socket) = http
                .ws(ch["connectUri"].as_str().unwrap())
                .max_frame_size(4 << 20)
                .connect()
                .await
                .unwrap();
            let count = Arc::new(std::sync::atomic::AtomicU64::new(0));
            let k = count.clone();
            actix_rt::spawn(async move {
                while let Some(Ok(_)) = socket.next().await {
                    k.fetch_add(1, Ordering::Relaxed);
                }
            });
            counters.push(count);
        }
        let total = || counters.iter().map(|c| c.load(Ordering::Relaxed)).sum::<u64>();
        let t = Instant::now();
        state.notifications.traffic.start(
            &state,
            TrafficRequest {
                count: Some(n),
                payload_bytes: Some(PAYLOAD_BYTES),
                ..TrafficRequest::default()
            },
        );
        while total() < n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        n as f64 / t.elapsed().as_secs_f64()
    })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("notifications: bench");
        return;
    }
    let dir = bench_dir();
    println!(
        "notifications: emulator sockets -> cxrelay (release binary) -> file sink; ~{PAYLOAD_BYTES} B conversation events; data and sink in {}",
        dir.display()
    );
    println!(
        "{} events per throughput run; CPU as cores used (cxrelay / emulator + bench)",
        events_per_run()
    );
    // CXRELAY_BENCH_CASE=throughput|latency|rss runs one part only.
    let case = std::env::var("CXRELAY_BENCH_CASE").unwrap_or_default();
    let runs = |c: &str| case.is_empty() || case == c;
    let journals: &[bool] = match std::env::var("CXRELAY_BENCH_JOURNAL").as_deref() {
        Ok("on") => &[true],
        Ok("off") => &[false],
        _ => &[true, false],
    };
    let transforms: &[bool] = match std::env::var("CXRELAY_BENCH_TRANSFORM").as_deref() {
        Ok("on") => &[true],
        Ok("off") => &[false],
        _ => &[false, true],
    };
    let channel_counts: Vec<usize> = match std::env::var("CXRELAY_BENCH_CHANNELS") {
        Ok(v) => v.split(',').filter_map(|c| c.trim().parse().ok()).collect(),
        Err(_) => vec![1, 4],
    };
    for (journal, transform) in [(true, false), (true, true), (false, false), (false, true)] {
        if !runs("throughput") || !journals.contains(&journal) || !transforms.contains(&transform) {
            continue;
        }
        for &channels in &channel_counts {
            let (rate, cx, em) = throughput(Setup {
                channels,
                transform,
                journal,
                interval: "200ms",
                slow_sink: None,
            });
            println!(
                "  journal {:<3} | transform {:<3} | {channels} channel{} | {rate:>9.0} events/s | cpu cxrelay {cx:.2} emulator {em:.2}",
                if journal { "on" } else { "off" },
                if transform { "on" } else { "off" },
                if channels == 1 { " " } else { "s" },
            );
        }
    }
    if runs("wire") {
        for channels in [1, 4] {
            let n = events_per_run();
            println!(
                "  emulator -> bare socket reader, {channels} channel(s): {:>9.0} events/s",
                wire(channels, n)
            );
        }
    }
    if runs("latency") {
        let (p50, p99, p999, n) = latency(10_000.0, 10);
        println!("  latency at 10k events/s (send -> line in the file), {n} events: p50 {p50:.2} ms | p99 {p99:.2} ms | p99.9 {p999:.2} ms");
    }
    if runs("rss") {
        let (start, peak, done) = rss_with_a_slow_listener(15);
        println!(
            "  slow listener (500 events/s) under 20k events/s offered for 15 s: RSS {} MB at start, {} MB peak; {done} events committed",
            start / 1_000_000,
            peak / 1_000_000
        );
    }
}
