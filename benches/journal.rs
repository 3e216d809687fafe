//! Journal append throughput: 1 KB events through the journal writer
//! (durable group commit, fsync) into a router with no listeners.
//! Two shapes: large batches (a polling source) and many concurrent
//! single-event appends (webhooks), where group commit matters.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxrelay::ingest::{Ingest, IngestBatch};
use cxrelay::store::{AppendQueue, Committer, JournalWriter, StoreDb};
use cxrelay_actors::{ComponentKind, Event, Registry, Router};

fn event(i: u64, payload: &bytes::Bytes) -> Event {
    Event::builder("bench", "calls.queue.start")
        .id(i.to_string())
        .key(format!("conv-{}", i % 100))
        .payload(payload.clone())
        .build()
}

fn journal(c: &mut Criterion) {
    let mut group = c.benchmark_group("journal_append");
    group.measurement_time(Duration::from_secs(8));
    group.sample_size(10);
    let payload = bytes::Bytes::from(format!("{{\"pad\":\"{}\"}}", "x".repeat(1010)));
    let dir = tempfile::tempdir_in(std::env::var("CXRELAY_BENCH_DIR").unwrap_or_else(|_| ".".into())).unwrap();
    let system = System::new();
    let ingest = system.block_on(async {
        let db = Arc::new(StoreDb::open(dir.path(), 60_000, 10_000).unwrap());
        let router = Router::new().start();
        let (queue, rx) = AppendQueue::new(4096);
        let component = Registry::new().register("store", ComponentKind::Store, true);
        let (db2, q2) = (db.clone(), queue.clone());
        let arbiter = Arbiter::new();
        let committer = Committer::start(
            &arbiter.handle(),
            db2,
            router,
            Arc::new(AtomicU64::new(0)),
            component,
            &q2,
        );
        let writer = committer.clone();
        JournalWriter::start_in_arbiter(&arbiter.handle(), move |_| JournalWriter::new(writer, rx));
        std::mem::forget(arbiter);
        Ingest::journaled(committer)
    });
    for (name, per_append, concurrent) in [("batches_of_1000", 1000u64, 4usize), ("single_events_x256", 1, 256)] {
        let per_iter = per_append * concurrent as u64;
        group.throughput(Throughput::Bytes(per_iter * 1024));
        group.bench_with_input(BenchmarkId::from_parameter(name), &(), |b, _| {
            b.iter_custom(|iters| {
                system.block_on(async {
                    let t = Instant::now();
                    for it in 0..iters {
                        let mut tasks = Vec::new();
                        for c in 0..concurrent {
                            let ingest = ingest.clone();
                            let payload = payload.clone();
                            let base = (it * concurrent as u64 + c as u64) * per_append;
                            tasks.push(actix_rt::spawn(async move {
                                let events = (base..base + per_append).map(|i| event(i, &payload)).collect();
                                ingest.submit(IngestBatch::of(events)).await.unwrap();
                            }));
                        }
                        for t in tasks {
                            t.await.unwrap();
                        }
                    }
                    t.elapsed()
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, journal);
criterion_main!(benches);
