//! Transform pipeline throughput: flatten + mask (keyed hash) + timestamps
//! on realistic ~3 KB conversation-detail records, 1 and 2 workers, as MB/s
//! of records and as records/s.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::System;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxrelay::transform::{MaskMode, Masker, TransformSpec, TransformWorker, Transformer};
use cxrelay_actors::pool::{PoolConfig, WorkerPool};
use cxrelay_actors::Event;

/// A conversation detail record as the emulator serves them (genesys-api.md
/// §3): about 3 KB, four participants with sessions, segments, metrics and
/// PII in ani, dnis, addressFrom, addressTo, participantName, wrapUpNote and
/// attributes.
fn record(i: u64) -> String {
    cxrelay::emulator::records::Timeline::new(1, 600.0).record(i)
}

fn transform(c: &mut Criterion) {
    let records: Vec<Arc<Event>> = (0..1000)
        .map(|i| {
            Arc::new(
                Event::builder("bench", "analytics.conversations")
                    .id(i.to_string())
                    .key(format!("c{i}"))
                    .payload(record(i))
                    .build(),
            )
        })
        .collect();
    let bytes: u64 = records.iter().map(|e| e.payload.len() as u64).sum();
    eprintln!("records: 1000 x {} bytes on average", bytes / 1000);
    for (name, throughput) in [
        ("transform_flatten_mask_timestamps_bytes", Throughput::Bytes(bytes)),
        ("transform_flatten_mask_timestamps_records", Throughput::Elements(1000)),
    ] {
        let mut group = c.benchmark_group(name);
        group.throughput(throughput);
        group.measurement_time(Duration::from_secs(6));
        group.sample_size(20);
        for workers in [1usize, 2] {
            group.bench_with_input(BenchmarkId::from_parameter(workers), &workers, |b, &workers| {
                let system = System::new();
                let t = system.block_on(async {
                    let pool = WorkerPool::start(
                        PoolConfig {
                            name: "bench".into(),
                            workers,
                            queue_bound: 8,
                            recycle_after: 100,
                            component: None,
                        },
                        TransformWorker::default,
                    );
                    let fields: Vec<String> = [
                        "ani",
                        "dnis",
                        "addressFrom",
                        "addressTo",
                        "participantName",
                        "wrapUpNote",
                        "attributes",
                    ]
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                    Transformer::new(
                        pool,
                        TransformSpec {
                            flatten: true,
                            timestamps: true,
                            mask: Some(Masker::new(MaskMode::Hash, &fields, Some(b"bench-key"))),
                            ..Default::default()
                        },
                        250,
                    )
                });
                b.iter_custom(|iters| {
                    system.block_on(async {
                        let start = Instant::now();
                        for _ in 0..iters {
                            let out = t.run(&records).await;
                            assert_eq!(out.events.len(), 1000);
                        }
                        start.elapsed()
                    })
                });
            });
        }
        group.finish();
    }
}

criterion_group!(benches, transform);
criterion_main!(benches);
