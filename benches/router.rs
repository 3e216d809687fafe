//! Router fan-out: events/s from one publisher to 1, 4 and 16 listeners,
//! 1 KB payloads, everything on one thread (one core).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxrelay_actors::{Deliver, Event, Publish, Router, Subscribe, WhenFull};

struct Count(Arc<AtomicU64>);
impl Actor for Count {
    type Context = Context<Self>;
}
impl Handler<Deliver> for Count {
    type Result = ();
    fn handle(&mut self, msg: Deliver, _: &mut Self::Context) {
        self.0.fetch_add(msg.events.len() as u64, Ordering::Relaxed);
    }
}

const BATCH: usize = 1000;

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("router_fan_out");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.measurement_time(Duration::from_secs(5));
    let payload = bytes::Bytes::from(vec![b'x'; 1024]);
    let batch: Vec<Arc<Event>> = (0..BATCH)
        .map(|i| {
            Arc::new(
                Event::builder(
                    "bench",
                    format!("v2.detail.events.conversation.c{}.customer.start", i % 64),
                )
                .id(i.to_string())
                .payload(payload.clone())
                .build(),
            )
        })
        .collect();
    for listeners in [1usize, 4, 16] {
        group.bench_with_input(BenchmarkId::from_parameter(listeners), &listeners, |b, &listeners| {
            let system = System::new();
            let (router, counters) = system.block_on(async {
                let router = Router::new().start();
                let mut counters = Vec::new();
                for i in 0..listeners {
                    let n = Arc::new(AtomicU64::new(0));
                    let addr = Count(n.clone()).start();
                    router
                        .send(
                            Subscribe::new(format!("l{i}"), vec!["v2.detail.events.>".into()], addr.recipient())
                                .capacity(8192)
                                .when_full(WhenFull::Block)
                                .batch_max(1024),
                        )
                        .await
                        .unwrap()
                        .unwrap();
                    counters.push(n);
                }
                (router, counters)
            });
            b.iter_custom(|iters| {
                system.block_on(async {
                    let start_counts: Vec<u64> = counters.iter().map(|c| c.load(Ordering::Relaxed)).collect();
                    let t = Instant::now();
                    for _ in 0..iters {
                        router.send(Publish { events: batch.clone() }).await.unwrap();
                    }
                    let want = iters * BATCH as u64;
                    for (c, s) in counters.iter().zip(&start_counts) {
                        while c.load(Ordering::Relaxed) - s < want {
                            tokio::task::yield_now().await;
                        }
                    }
                    t.elapsed()
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
