//! The service embedded as a library: supervision, pruning and pools as a
//! user sees them over HTTP.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use cxrelay::config::Loaded;
use cxrelay::service::Service;
use cxrelay_actors::pool::{PoolConfig, Worker, WorkerPool};
use cxrelay_actors::registry::Progress;
use cxrelay_actors::retry::BackoffPolicy;
use cxrelay_actors::supervision::{ChildSpec, RestartPolicy, Shutdown};
use cxrelay_actors::{ComponentKind, Deliver, Subscribe};

use crate::common::eventually;

async fn http_get(addr: std::net::SocketAddr, path: &'static str) -> crate::common::Response {
    tokio::task::spawn_blocking(move || crate::common::get(addr, path))
        .await
        .unwrap()
}

async fn start(dir: &std::path::Path) -> Service {
    let text = format!(
        "[service]\ndata_dir = \"{}\"\n[http]\nlisten = \"127.0.0.1:0\"\n",
        dir.display()
    );
    Service::start(Loaded::from_str(&text, "test.toml").unwrap())
        .await
        .unwrap()
}

struct AlwaysFails;
impl Actor for AlwaysFails {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Self::Context) {
        panic!("cannot connect");
    }
}
impl Handler<Shutdown> for AlwaysFails {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[actix::test]
async fn a_component_that_fails_forever_turns_readiness_503_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = start(tmp.path()).await;
    let addr = svc.http_addr();
    assert_eq!(http_get(addr, "/health/ready").await.status, 200);
    svc.supervise(
        ChildSpec::new("flaky-source", ComponentKind::Source, || AlwaysFails.start()).policy(RestartPolicy {
            max_restarts: 3,
            within: Duration::from_secs(60),
            backoff: BackoffPolicy {
                initial: Duration::from_millis(10),
                multiplier: 2.0,
                max: Duration::from_millis(200),
                randomization: 0.0,
                full_jitter: false,
            },
            reset_after: Duration::from_secs(60),
        }),
    )
    .await;
    // 503 while it is restarting, and still 503 (now "failed") once the
    // intensity limit is reached.
    eventually("marked failed", || async {
        let r = http_get(addr, "/health/ready").await;
        r.status == 503
            && r.json()["components"]["flaky-source"]
                .as_str()
                .is_some_and(|s| s.starts_with("failed"))
    })
    .await;
    let body = http_get(addr, "/health/ready").await.json();
    let reason = body["components"]["flaky-source"].as_str().unwrap();
    assert!(reason.starts_with("failed:"), "{body}");
    let status = http_get(addr, "/status").await.json();
    let c = status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "flaky-source")
        .unwrap()
        .clone();
    assert_eq!((c["state"].as_str(), c["restarts"].as_u64()), (Some("failed"), Some(3)));
    svc.shutdown().await;
}

struct MyListener;
impl Actor for MyListener {
    type Context = Context<Self>;
}
impl Handler<Deliver> for MyListener {
    type Result = ();
    fn handle(&mut self, _: Deliver, _: &mut Self::Context) {}
}
#[derive(Message)]
#[rtype(result = "()")]
struct Die;
impl Handler<Die> for MyListener {
    type Result = ();
    fn handle(&mut self, _: Die, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[actix::test]
async fn a_dead_listener_disappears_from_status() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = start(tmp.path()).await;
    let addr = svc.http_addr();
    let listener = MyListener.start();
    svc.router()
        .send(Subscribe::new(
            "embedded",
            vec!["a.>".into()],
            listener.clone().recipient(),
        ))
        .await
        .unwrap()
        .unwrap();
    let names = |s: serde_json::Value| -> Vec<String> {
        s["listeners"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["name"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(names(http_get(addr, "/status").await.json()), vec!["embedded"]);
    listener.send(Die).await.unwrap();
    drop(listener);
    eventually("pruned", || async {
        names(http_get(addr, "/status").await.json()).is_empty()
    })
    .await;
    assert_eq!(http_get(addr, "/status").await.json()["router"]["pruned"], 1);
    svc.shutdown().await;
}

struct Picky;
impl Worker for Picky {
    type Job = Vec<u32>;
    type Output = usize;
    fn run(&mut self, job: &Vec<u32>) -> usize {
        assert!(!job.contains(&13), "poisoned record");
        job.len()
    }
}

#[actix::test]
async fn a_worker_panic_shows_as_a_restart_in_status_and_the_pool_keeps_serving() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = start(tmp.path()).await;
    let addr = svc.http_addr();
    let component = svc.registry().register("transform-pool", ComponentKind::Pool, false);
    let pool = WorkerPool::start(
        PoolConfig {
            name: "transform-pool".into(),
            workers: 2,
            queue_bound: 2,
            recycle_after: 3,
            component: Some(component),
        },
        || Picky,
    );
    let failed = pool.submit(None, vec![1, 13]).await.unwrap_err();
    assert_eq!((failed.attempts, Arc::strong_count(&failed.job) >= 1), (2, true));
    for _ in 0..7 {
        assert_eq!(pool.submit(None, vec![1, 2, 3]).await.unwrap(), 3);
    }
    let status = http_get(addr, "/status").await.json();
    let c = status["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "transform-pool")
        .unwrap()
        .clone();
    assert_eq!(c["restarts"], 2, "{c}");
    assert!(c["last_error"].as_str().unwrap().contains("poisoned record"));
    assert_eq!(c["last_stop"]["reason"], "panicked", "{c}");
    assert!(c["last_stop"]["message"].as_str().unwrap().contains("poisoned record"));
    assert_eq!(c["detail"]["stats"]["failed"], 1);
    svc.shutdown().await;
}

/// The blackhole sink (a kind added as one folder plus one registry line):
/// every event is counted as committed and nothing is written.
#[actix::test]
async fn a_blackhole_sink_counts_every_event_and_keeps_none() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[service]
data_dir = "{}"
[http]
listen = "127.0.0.1:0"
[[source]]
name = "gen"
kind = "generator"
topics = ["bench.{{key}}"]
rate = 50000
count = 2500
[[listener]]
name = "void"
topics = ["bench.>"]
sink = {{ kind = "blackhole", batch_events = 100 }}
"#,
        tmp.path().display()
    );
    let svc = Service::start(Loaded::from_str(&text, "test.toml").unwrap())
        .await
        .unwrap();
    let addr = svc.http_addr();
    eventually("2500 events committed by the blackhole", || async {
        let status = http_get(addr, "/status").await.json();
        crate::common::component(&status, "void")["detail"]["committed_events"] == 2500
    })
    .await;
    let status = http_get(addr, "/status").await.json();
    assert_eq!(crate::common::component(&status, "void")["detail"]["sink"], "blackhole");
    // Nothing was written but the store (its redb file and the journal's
    // segments).
    let mut files: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    files.sort();
    assert_eq!(files, ["cxrelay.redb", "journal"], "{files:?}");
    assert!(svc.shutdown().await);
}

/// Takes a job and, the first time, never finishes it: busy, no progress.
/// Later instances finish every job at once.
struct Stalls {
    progress: Arc<Progress>,
    hang: bool,
}
impl Actor for Stalls {
    type Context = Context<Self>;
}
impl Handler<Shutdown> for Stalls {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
#[derive(Message)]
#[rtype(result = "()")]
struct Job;
impl Handler<Job> for Stalls {
    type Result = ();
    fn handle(&mut self, _: Job, ctx: &mut Self::Context) {
        self.progress.set_busy(true);
        if self.hang {
            // The mailbox stays closed while this waits (`Shutdown` too).
            ctx.wait(actix::fut::wrap_future(std::future::pending::<()>()));
            return;
        }
        self.progress.advance();
        self.progress.set_busy(false);
    }
}

#[actix::test]
async fn an_actor_holding_work_without_progress_is_restarted_and_status_says_stuck() {
    let tmp = tempfile::tempdir().unwrap();
    let svc = start(tmp.path()).await;
    let addr = svc.http_addr();
    let registry = svc.registry().clone();
    let instances: Arc<parking_lot::Mutex<Vec<Addr<Stalls>>>> = Arc::default();
    let list = instances.clone();
    svc.supervise(
        ChildSpec::new("stalling", ComponentKind::Listener, move || {
            // This instance's handle: the supervisor began a new instance
            // just before calling the factory.
            let progress = registry
                .register("stalling", ComponentKind::Listener, true)
                .report_progress(Duration::from_millis(400));
            let mut list = list.lock();
            let addr = Stalls {
                progress,
                hang: list.is_empty(),
            }
            .start();
            list.push(addr.clone());
            addr
        })
        .policy(RestartPolicy {
            backoff: BackoffPolicy {
                initial: Duration::from_millis(10),
                multiplier: 2.0,
                max: Duration::from_millis(100),
                randomization: 0.0,
                full_jitter: false,
            },
            ..RestartPolicy::default()
        }),
    )
    .await;
    let first = instances.lock()[0].clone();
    first.do_send(Job);
    eventually("restarted as stuck", || async {
        let status = http_get(addr, "/status").await.json();
        let c = crate::common::component(&status, "stalling");
        c["last_stop"]["reason"] == "stuck" && c["state"] == "running"
    })
    .await;
    let status = http_get(addr, "/status").await.json();
    let c = crate::common::component(&status, "stalling");
    assert_eq!(c["restarts"], 1, "{c}");
    assert!(c["last_stop"]["silent_for_ms"].as_u64().unwrap() >= 400, "{c}");
    assert!(c["last_error"].as_str().unwrap().starts_with("stuck"), "{c}");
    // The stuck instance never read its `Shutdown`: it is left behind and
    // status counts it; the replacement does its work.
    assert_eq!(c["detail"]["abandoned_instances"], 1, "{c}");
    assert!(first.connected());
    let second = instances.lock()[1].clone();
    second.send(Job).await.unwrap();
    assert_eq!(http_get(addr, "/health/ready").await.status, 200);
    svc.shutdown().await;
}

/// A listener whose handler waits until the gate opens: with `block`, the
/// router, the journal and then the sources wait behind it.
struct Gated(tokio::sync::watch::Receiver<bool>);
impl Actor for Gated {
    type Context = Context<Self>;
}
impl Handler<Deliver> for Gated {
    type Result = ();
    fn handle(&mut self, _: Deliver, ctx: &mut Self::Context) {
        let mut gate = self.0.clone();
        ctx.wait(actix::fut::wrap_future(async move {
            let _ = gate.wait_for(|open| *open).await;
        }));
    }
}

/// Backpressure is not a stuck source: a generator held back by a full
/// `block` listener reports progress (it declared a threshold) but is not
/// busy while it waits, so its supervisor never gives up on it.
#[actix::test]
async fn a_source_held_back_by_a_full_block_listener_is_not_busy() {
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        r#"[service]
data_dir = "{}"
journal_queue = 4
[http]
listen = "127.0.0.1:0"
[[source]]
name = "gen"
kind = "generator"
topics = ["held.{{key}}"]
rate = 20000
"#,
        tmp.path().display()
    );
    let svc = Service::start(Loaded::from_str(&text, "test.toml").unwrap())
        .await
        .unwrap();
    let (open, gate) = tokio::sync::watch::channel(false);
    svc.router()
        .send(
            Subscribe::new("gated", vec!["held.>".into()], Gated(gate).start().recipient())
                .capacity(100)
                .when_full(cxrelay_actors::WhenFull::Block),
        )
        .await
        .unwrap()
        .unwrap();
    let gen = svc.registry().get("gen").expect("the generator is registered");
    assert_eq!(
        gen.progress_handle().declared_stuck_after(),
        Some(cxrelay::sources::generator::STUCK_AFTER)
    );
    let addr = svc.http_addr();
    // Held: the listener's queue is full, and the generator, which has
    // emitted, waits on ingest without counting as busy.
    eventually("the generator held back and not busy", || async {
        let status = http_get(addr, "/status").await.json();
        let queue = &status["listeners"][0]["queue"];
        let emitted = crate::common::component(&status, "gen")["detail"]["emitted"]
            .as_u64()
            .unwrap_or(0);
        queue["depth"] == queue["capacity"] && emitted > 0 && !gen.progress_handle().sample().busy
    })
    .await;
    let done = gen.progress_handle().sample().done;
    open.send_replace(true);
    eventually("the generator moves again", || async {
        gen.progress_handle().sample().done > done
    })
    .await;
    assert_eq!(gen.snapshot().restarts, 0, "never given up on");
    svc.shutdown().await;
}
