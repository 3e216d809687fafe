//! Webhook ingress under load: signed 1 KB events from 32 keep-alive
//! connections to the release binary, journal on, file sink, shipped
//! defaults (one HTTP worker; two are measured beside it). Prints
//! requests/s and latency percentiles. The load generator runs on the same
//! 2 cores. CXRELAY_BENCH_DIR picks where data and output go (e.g.
//! /dev/shm to leave the disk out of the figure).

#[path = "../tests/it/common.rs"]
mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cxrelay::sources::webhook::{SignatureEncoding, Verifier};

const CONNECTIONS: usize = 32;
const WARMUP: Duration = Duration::from_secs(2);
const MEASURE: Duration = Duration::from_secs(10);

fn body(n: u64) -> String {
    format!(
        r#"{{"topicName":"v2.detail.events.conversation.c{c}.customer.start","version":"2","eventBody":{{"eventTime":{t},"conversationId":"c{c}","pad":"{pad}"}},"metadata":{{"CorrelationId":"load-{n}"}}}}"#,
        c = n % 1000,
        t = 1_714_572_000_000u64 + n,
        pad = "x".repeat(860)
    )
}

fn run(workers: usize) {
    let base = std::env::var("CXRELAY_BENCH_DIR").unwrap_or_else(|_| ".".into());
    let tmp = tempfile::tempdir_in(base).unwrap();
    let dir = tmp.path();
    let config = format!(
        "[service]\ndata_dir = \"{}\"\nlog_format = \"json\"\n[http]\nlisten = \"127.0.0.1:0\"\nworkers = {workers}\n\n[[source]]\nname = \"hook\"\nkind = \"webhook\"\npath = \"/ingest\"\nsecret_env = \"HOOK_SECRET\"\n\n[[listener]]\nname = \"files\"\ntopics = [\"v2.>\"]\nsink = {{ kind = \"file\", path = \"{}\" }}\n",
        dir.join("data").display(),
        dir.join("out").display()
    );
    let p = common::Proc::start_with(dir, &config, &[("HOOK_SECRET", "bench-secret")]);
    common::wait_until("ready", Duration::from_secs(30), || {
        p.get("/health/ready").status == 200
    });
    let verifier = Verifier::new(b"bench-secret", "sha256=", SignatureEncoding::Base64);
    let next = Arc::new(AtomicU64::new(0));
    let measuring = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let addr = p.addr;
    let handles: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (next, measuring, stop, verifier) = (next.clone(), measuring.clone(), stop.clone(), verifier.clone());
            std::thread::spawn(move || {
                let mut conn = common::KeepAlive::new(addr);
                let mut latencies = Vec::with_capacity(200_000);
                let mut errors = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    let b = body(n);
                    let sig = verifier.sign(b.as_bytes());
                    let t = Instant::now();
                    let r = conn.send(
                        "POST",
                        "/ingest",
                        &[("X-Hub-Signature-256", &sig), ("Content-Type", "application/json")],
                        b.as_bytes(),
                    );
                    let us = t.elapsed().as_micros() as u32;
                    match r {
                        Ok(r) if r.status == 202 => {
                            if measuring.load(Ordering::Relaxed) {
                                latencies.push(us);
                            }
                        }
                        _ => errors += 1,
                    }
                }
                (latencies, errors)
            })
        })
        .collect();
    std::thread::sleep(WARMUP);
    measuring.store(true, Ordering::Relaxed);
    let started = Instant::now();
    std::thread::sleep(MEASURE);
    measuring.store(false, Ordering::Relaxed);
    let elapsed = started.elapsed();
    stop.store(true, Ordering::Relaxed);
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles {
        let (l, e) = h.join().unwrap();
        all.extend(l);
        errors += e;
    }
    all.sort_unstable();
    let pct = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)] as f64 / 1000.0;
    println!(
        "workers={workers}: {:>8.0} requests/s (202) | p50 {:.2} ms | p99 {:.2} ms | p99.9 {:.2} ms | non-202 {errors}",
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        pct(0.999)
    );
    assert!(p.terminate().success());
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        println!("webhook_load: bench");
        return;
    }
    println!("webhook ingress: signed ~1 KB events, {CONNECTIONS} keep-alive connections, journal on, file sink");
    for workers in [1, 2] {
        run(workers);
    }
}
