use std::sync::atomic::{AtomicUsize, Ordering};

use cxrelay_actors::pool::{PoolConfig, Worker, WorkerPool};

/// Counts batches per worker instance; panics on a poisoned batch.
struct Doubler {
    instance: usize,
    seen: usize,
}

static INSTANCES: AtomicUsize = AtomicUsize::new(0);

impl Worker for Doubler {
    type Job = Vec<i64>;
    type Output = (usize, usize, Vec<i64>);
    fn run(&mut self, job: &Vec<i64>) -> Self::Output {
        self.seen += 1;
        if job.contains(&-1) {
            panic!("poisoned batch");
        }
        (self.instance, self.seen, job.iter().map(|x| x * 2).collect())
    }
}

fn pool(workers: usize, recycle_after: u64) -> WorkerPool<Doubler> {
    WorkerPool::start(
        PoolConfig {
            name: "test".into(),
            workers,
            queue_bound: 2,
            recycle_after,
            component: None,
        },
        || Doubler {
            instance: INSTANCES.fetch_add(1, Ordering::SeqCst),
            seen: 0,
        },
    )
}

#[actix::test]
async fn workers_are_recycled_after_exactly_n_batches() {
    let p = pool(1, 3);
    let mut instances = Vec::new();
    for i in 0..9 {
        let (instance, seen, out) = p.submit(Some(0), vec![i]).await.unwrap();
        assert_eq!(out, vec![i * 2]);
        instances.push((instance, seen));
    }
    // Each instance serves batches 1, 2, 3 and is then replaced.
    let seen: Vec<usize> = instances.iter().map(|x| x.1).collect();
    assert_eq!(seen, vec![1, 2, 3, 1, 2, 3, 1, 2, 3]);
    assert_ne!(instances[2].0, instances[3].0);
    assert_ne!(instances[5].0, instances[6].0);
    assert_eq!(instances[0].0, instances[2].0);
    assert_eq!(p.stats().snapshot().recycled, 3);
}

#[actix::test]
async fn a_poisoned_batch_is_retried_once_then_handed_back_and_the_pool_keeps_serving() {
    let p = pool(2, 0);
    let failed = p.submit(Some(1), vec![1, -1, 3]).await.unwrap_err();
    assert_eq!(failed.attempts, 2);
    assert_eq!(*failed.job, vec![1, -1, 3], "the batch comes back intact");
    assert!(failed.reason.contains("poisoned batch"));
    // Fresh workers keep serving, on every slot.
    for k in 0..10u64 {
        let (_, _, out) = p.submit(Some(k), vec![k as i64]).await.unwrap();
        assert_eq!(out, vec![k as i64 * 2]);
    }
    let s = p.stats().snapshot();
    assert_eq!((s.panics, s.replaced, s.failed), (2, 2, 1));
}

#[actix::test]
async fn same_key_keeps_submission_order_under_pipelining() {
    let p = pool(2, 5);
    let mut pending = Vec::new();
    for i in 0..50 {
        pending.push(p.enqueue(Some(7), vec![i]).await);
    }
    let mut last_seen = None;
    for (i, pend) in pending.into_iter().enumerate() {
        let (inst, seen, out) = pend.result().await.unwrap();
        assert_eq!(out, vec![i as i64 * 2]);
        if let Some((pi, ps)) = last_seen {
            assert!(inst != pi || seen == ps + 1, "same worker, in order");
        }
        last_seen = Some((inst, seen));
    }
}
