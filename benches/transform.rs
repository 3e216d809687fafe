//! Transform pipeline throughput: flatten + mask (keyed hash) + timestamps
//! on realistic ~3 KB conversation-detail records, 1 and 2 workers.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::System;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxrelay::transform::{MaskMode, Masker, TransformSpec, TransformWorker, Transformer};
use cxrelay_actors::pool::{PoolConfig, WorkerPool};
use cxrelay_actors::Event;

/// A conversation detail record shaped like genesys-api.md §3.
fn record(i: u64) -> String {
    let segments: Vec<String> = (0..2)
        .map(|s| {
            format!(
                r#"{{"segmentStart":"2024-05-01T14:0{s}:03.120Z","segmentEnd":"2024-05-01T14:0{s}:59.001Z","segmentType":"interact","queueId":"6f1b2c3d-0000-4000-8000-{i:012}","wrapUpCode":"resolved","disconnectType":"client"}}"#
            )
        })
        .collect();
    let participants: Vec<String> = ["customer", "acd", "agent"]
        .iter()
        .map(|purpose| {
            format!(
                r#"{{"participantId":"p-{purpose}-{i}","participantName":"Customer Name {i}","purpose":"{purpose}","userId":"u-{i}","sessions":[{{"sessionId":"s-{i}","mediaType":"voice","direction":"inbound","ani":"tel:+1555{:07}","dnis":"tel:+18005550100","addressFrom":"tel:+1555{:07}","addressTo":"tel:+18005550100","segments":[{}],"metrics":[{{"name":"tTalk","value":240000,"emitDate":"2024-05-01T14:05:00.000Z"}},{{"name":"tHandle","value":300000,"emitDate":"2024-05-01T14:06:00.000Z"}}]}}]}}"#,
                i % 10_000_000,
                i % 10_000_000,
                segments.join(",")
            )
        })
        .collect();
    format!(
        r#"{{"conversationId":"c-{i:012}","conversationStart":"2024-05-01T14:02:03.120Z","conversationEnd":"2024-05-01T14:09:03.120Z","originatingDirection":"inbound","divisionIds":["d-1"],"participants":[{}]}}"#,
        participants.join(",")
    )
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
    let mut group = c.benchmark_group("transform_flatten_mask_timestamps");
    group.throughput(Throughput::Bytes(bytes));
    group.measurement_time(Duration::from_secs(8));
    group.sample_size(20);
    eprintln!("records: 1000 x {} bytes on average", bytes / 1000);
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
                let fields: Vec<String> = ["ani", "dnis", "addressFrom", "addressTo", "participantName"]
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

criterion_group!(benches, transform);
criterion_main!(benches);
