//! Worker pool throughput: batches of 250 1 KB records through 1 and 2
//! workers, with recycling every 100 batches.

use std::time::{Duration, Instant};

use actix::System;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use cxrelay_actors::pool::{PoolConfig, Worker, WorkerPool};

/// Stands in for a transform: touches every byte of every record.
struct Checksum;
impl Worker for Checksum {
    type Job = Vec<Vec<u8>>;
    type Output = u64;
    fn run(&mut self, job: &Vec<Vec<u8>>) -> u64 {
        job.iter()
            .flat_map(|r| r.iter())
            .fold(0u64, |a, &b| a.wrapping_mul(31).wrapping_add(b as u64))
    }
}

const RECORDS: usize = 250;

fn pool(c: &mut Criterion) {
    let mut group = c.benchmark_group("pool_batches");
    group.throughput(Throughput::Elements(RECORDS as u64));
    group.measurement_time(Duration::from_secs(5));
    let job: Vec<Vec<u8>> = (0..RECORDS).map(|i| vec![i as u8; 1024]).collect();
    for workers in [1usize, 2] {
        group.bench_with_input(BenchmarkId::from_parameter(workers), &workers, |b, &workers| {
            let system = System::new();
            let pool = system.block_on(async {
                WorkerPool::start(
                    PoolConfig {
                        name: "bench".into(),
                        workers,
                        queue_bound: 8,
                        recycle_after: 100,
                        component: None,
                    },
                    || Checksum,
                )
            });
            b.iter_custom(|iters| {
                system.block_on(async {
                    let t = Instant::now();
                    let mut pending = std::collections::VecDeque::new();
                    for _ in 0..iters {
                        pending.push_back(pool.enqueue(None, job.clone()).await);
                        if pending.len() > 16 {
                            pending.pop_front().unwrap().result().await.unwrap();
                        }
                    }
                    for p in pending {
                        p.result().await.unwrap();
                    }
                    t.elapsed()
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, pool);
criterion_main!(benches);
