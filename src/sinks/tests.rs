//! The sink actor under supervision, wired as the service wires a `block`
//! listener (router, kept queue, shared counters, one arbiter thread):
//! hung writes, dying instances and writer panics.
//!
//! Real time with short intervals: the sink times its batches with std's
//! clock, which tokio's paused clock does not move.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use cxrelay_actors::queue::QueueStats;
use cxrelay_actors::registry::{Component, ComponentKind, ComponentState, Registry, StopReason};
use cxrelay_actors::retry::BackoffPolicy;
use cxrelay_actors::supervision::{ChildSpec, RestartPolicy, Shutdown, Supervise, Supervisor};
use cxrelay_actors::{Event, Publish, Router, Subscribe};
use futures_util::future::LocalBoxFuture;
use parking_lot::Mutex;

use super::{SinkActor, SinkError, SinkOptions, SinkWriter};

/// What the next writer built does on every commit.
#[derive(Clone, Copy, Debug)]
enum Mode {
    Write,
    /// Never resolves.
    Hang,
    /// Blocks its thread until the harness's gate opens, then writes.
    BlockThread,
    /// Panics while starting the commit.
    PanicNow,
    /// Panics inside the commit's future.
    PanicLater,
}

struct TestWriter {
    mode: Mode,
    out: Arc<Mutex<Vec<u64>>>,
    gate: Arc<Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl SinkWriter for TestWriter {
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
        let out = self.out.clone();
        match self.mode {
            Mode::Write => Box::pin(async move {
                out.lock().extend(seqs);
                Ok(())
            }),
            Mode::Hang => Box::pin(std::future::pending()),
            Mode::BlockThread => {
                // Blocking on purpose: this is the thread-blocked case.
                let _ = self.gate.lock().recv();
                Box::pin(async move {
                    out.lock().extend(seqs);
                    Ok(())
                })
            }
            Mode::PanicNow => panic!("writer bug"),
            Mode::PanicLater => Box::pin(async { panic!("writer bug in flight") }),
        }
    }
}

/// How a test sets its listener up.
struct Setup {
    /// What each writer built does, in order (then `Write`).
    modes: Vec<Mode>,
    batch_interval: Duration,
    stuck_after: Duration,
    /// Each instance on a thread of its own (else all on one, as the
    /// service does).
    thread_per_instance: bool,
    idle_tick: Duration,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            modes: Vec::new(),
            batch_interval: Duration::from_millis(20),
            stuck_after: Duration::from_millis(300),
            thread_per_instance: false,
            idle_tick: SinkOptions::default().idle_tick,
        }
    }
}

struct Harness {
    router: Addr<Router>,
    component: Arc<Component>,
    stats: Arc<QueueStats>,
    written: Arc<Mutex<Vec<u64>>>,
    instances: Arc<Mutex<Vec<Addr<SinkActor<TestWriter>>>>>,
    /// Opens a `BlockThread` writer's gate.
    open_gate: std::sync::mpsc::Sender<()>,
    _threads: Arc<Mutex<Vec<Arbiter>>>,
}

impl Harness {
    /// A supervised `block` listener "files" set up as `setup` says.
    async fn start(setup: Setup) -> Harness {
        let Setup {
            modes,
            batch_interval,
            stuck_after,
            thread_per_instance,
            idle_tick,
        } = setup;
        let registry = Registry::new();
        let router = Router::new().start();
        let supervisor = Supervisor::new(registry.clone(), Duration::from_millis(20)).start();
        let component = registry.register("files", ComponentKind::Listener, true);
        let stats = QueueStats::new(100);
        let written: Arc<Mutex<Vec<u64>>> = Arc::default();
        let modes = Arc::new(Mutex::new(VecDeque::from(modes)));
        let instances: Arc<Mutex<Vec<Addr<SinkActor<TestWriter>>>>> = Arc::default();
        let threads = Arc::new(Mutex::new(vec![Arbiter::new()]));
        let (open_gate, gate) = std::sync::mpsc::channel();
        let gate = Arc::new(Mutex::new(gate));
        let opts = SinkOptions {
            batch_events: 10,
            batch_interval,
            stuck_after,
            idle_tick,
            retry: BackoffPolicy {
                initial: Duration::from_millis(10),
                multiplier: 1.0,
                max: Duration::from_millis(10),
                randomization: 0.0,
                full_jitter: false,
            },
            ..SinkOptions::default()
        };
        let (arbiters, c, r, s, w, list) = (
            threads.clone(),
            component.clone(),
            router.clone(),
            stats.clone(),
            written.clone(),
            instances.clone(),
        );
        let spec = ChildSpec::new("files", ComponentKind::Listener, move || {
            let (opts, c, w, modes, gate) = (opts.clone(), c.clone(), w.clone(), modes.clone(), gate.clone());
            let handle = {
                let mut arbiters = arbiters.lock();
                if thread_per_instance && !list.lock().is_empty() {
                    arbiters.push(Arbiter::new());
                }
                arbiters.last().expect("one at least").handle()
            };
            let addr = SinkActor::start_in_arbiter(&handle, move |_| {
                SinkActor::new(opts, c, move || {
                    let mode = modes.lock().pop_front().unwrap_or(Mode::Write);
                    Ok(TestWriter {
                        mode,
                        out: w.clone(),
                        gate: gate.clone(),
                    })
                })
            });
            r.do_send(
                Subscribe::new("files", vec!["calls.>".into()], addr.clone().recipient())
                    .capacity(100)
                    .batch_max(10)
                    .keep_when_gone(true)
                    .with_stats(s.clone()),
            );
            list.lock().push(addr.clone());
            addr
        })
        .policy(RestartPolicy {
            backoff: BackoffPolicy {
                initial: Duration::from_millis(10),
                multiplier: 1.0,
                max: Duration::from_millis(10),
                randomization: 0.0,
                full_jitter: false,
            },
            ..RestartPolicy::default()
        });
        supervisor.send(Supervise(spec)).await.expect("supervisor runs");
        Harness {
            router,
            component,
            stats,
            written,
            instances,
            open_gate,
            _threads: threads,
        }
    }

    async fn publish(&self, seqs: std::ops::RangeInclusive<u64>) {
        let events = seqs
            .map(|i| Arc::new(Event::builder("test", "calls.x").id(format!("e{i}")).seq(i).build()))
            .collect();
        self.router.send(Publish { events }).await.expect("router runs");
    }

    fn instance(&self, i: usize) -> Option<Addr<SinkActor<TestWriter>>> {
        self.instances.lock().get(i).cloned()
    }
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(std::time::Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[actix::test]
async fn a_batch_short_of_full_reaching_an_idle_sink_is_committed_at_the_busy_pace() {
    // Idle, the sink would next look at its batch a minute from now (and
    // would not be found stuck sooner).
    let h = Harness::start(Setup {
        idle_tick: Duration::from_secs(60),
        stuck_after: Duration::from_secs(60),
        ..Setup::default()
    })
    .await;
    for round in 0..3u64 {
        let seq = round * 2 + 1;
        h.publish(seq..=seq + 1).await;
        wait_until("the short batch is written", || {
            h.written.lock().len() as u64 == seq + 1
        })
        .await;
    }
    assert_eq!(*h.written.lock(), (1..=6).collect::<Vec<_>>());
}

#[actix::test]
async fn a_sink_whose_write_hangs_is_replaced_and_the_new_one_writes_everything_once_in_order() {
    let h = Harness::start(Setup {
        modes: vec![Mode::Hang],
        ..Setup::default()
    })
    .await;
    h.publish(1..=100).await;
    wait_until("everything written", || h.written.lock().len() >= 100).await;
    // The hung writer wrote nothing; its batch was taken over, then the
    // batch waiting in its mailbox, then the queue.
    assert_eq!(*h.written.lock(), (1..=100).collect::<Vec<u64>>());
    wait_until("everything acknowledged", || h.stats.acked_seq() == 100).await;
    let snap = h.component.snapshot();
    assert_eq!((snap.state, snap.restarts), (ComponentState::Running, 1));
    match snap.last_stop.map(|s| s.reason) {
        Some(StopReason::Stuck { silent_for_ms }) => assert!(silent_for_ms >= 300, "{silent_for_ms}"),
        other => panic!("expected stuck, got {other:?}"),
    }
    // Retired, the old instance dropped its hung write and stopped; its
    // thread was never blocked.
    let old = h.instance(0).expect("first instance");
    wait_until("old instance gone", || !old.connected()).await;
    wait_until("nothing left behind", || {
        h.component.snapshot().detail.get("abandoned_instances").is_none()
    })
    .await;
}

#[actix::test]
async fn a_sink_stopped_while_holding_events_hands_them_to_its_replacement() {
    // A long batch interval: the first instance holds what it takes.
    let h = Harness::start(Setup {
        batch_interval: Duration::from_secs(3600),
        stuck_after: Duration::from_secs(3600),
        ..Setup::default()
    })
    .await;
    h.publish(1..=5).await;
    let first = h.instance(0).expect("first instance");
    wait_until("events held", || h.component.progress_handle().sample().busy).await;
    first.send(Shutdown).await.expect("first instance runs");
    wait_until("replaced", || h.instance(1).is_some()).await;
    // Ten more fill a batch: the replacement writes what its predecessor
    // held first, in the same batch, so acknowledging it covers both.
    h.publish(6..=15).await;
    wait_until("written", || h.written.lock().len() >= 15).await;
    assert_eq!(*h.written.lock(), (1..=15).collect::<Vec<u64>>());
    assert_eq!(h.stats.acked_seq(), 15);
    assert_eq!(h.component.last_stop().map(|s| s.reason), Some(StopReason::Exited));
}

#[actix::test]
async fn writer_panics_are_recorded_as_panicked_and_the_batch_is_written_by_a_fresh_writer() {
    // Stuck detection off in effect: with RUST_BACKTRACE set, printing a
    // panic's first backtrace can hold the thread for a second.
    let h = Harness::start(Setup {
        modes: vec![Mode::PanicNow, Mode::PanicLater],
        stuck_after: Duration::from_secs(3600),
        ..Setup::default()
    })
    .await;
    h.publish(1..=10).await;
    wait_until("written", || h.written.lock().len() >= 10).await;
    assert_eq!(*h.written.lock(), (1..=10).collect::<Vec<u64>>());
    let snap = h.component.snapshot();
    assert_eq!(snap.restarts, 2, "each panicked writer counts as a restart");
    assert_eq!(
        snap.last_stop.map(|s| s.reason),
        Some(StopReason::Panicked {
            message: "writer bug in flight".into()
        })
    );
    assert_eq!(h.instances.lock().len(), 1, "the actor itself kept running");
}

#[actix::test]
async fn a_sink_blocking_its_thread_is_replaced_elsewhere_and_fenced_out_when_it_wakes() {
    let h = Harness::start(Setup {
        modes: vec![Mode::BlockThread],
        thread_per_instance: true,
        ..Setup::default()
    })
    .await;
    // A full batch: the first instance writes inside its `Deliver` handler
    // and blocks there, so the router is still waiting to hear it took the
    // batch.
    h.publish(1..=10).await;
    wait_until("replaced", || h.instance(1).is_some()).await;
    wait_until("written by the replacement", || h.written.lock().len() >= 10).await;
    assert_eq!(
        *h.written.lock(),
        (1..=10).collect::<Vec<u64>>(),
        "the batch taken over and the batch sent again are one batch"
    );
    wait_until("acknowledged", || h.stats.acked_seq() == 10).await;
    let old = h.instance(0).expect("first instance");
    assert!(old.connected(), "blocked, it cannot stop");
    assert_eq!(h.component.snapshot().detail["abandoned_instances"], 1);
    // Unblocked, its write lands (at least once), and it stops without
    // acknowledging or reporting anything.
    h.open_gate.send(()).expect("the writer waits");
    wait_until("old instance gone", || !old.connected()).await;
    wait_until("nothing left behind", || {
        h.component.snapshot().detail.get("abandoned_instances").is_none()
    })
    .await;
    let snap = h.component.snapshot();
    assert_eq!((snap.state, snap.restarts), (ComponentState::Running, 1));
    h.publish(11..=20).await;
    wait_until("more written", || h.written.lock().contains(&20)).await;
    assert_eq!(h.stats.acked_seq(), 20);
}

#[actix::test]
async fn an_instance_built_after_another_fences_it_out_and_the_old_one_refuses_batches() {
    let component = Registry::new().register("files", ComponentKind::Listener, true);
    let written: Arc<Mutex<Vec<u64>>> = Arc::default();
    let gate = Arc::new(Mutex::new(std::sync::mpsc::channel::<()>().1));
    let start = || {
        let (out, gate) = (written.clone(), gate.clone());
        SinkActor::new(SinkOptions::default(), component.clone(), move || {
            Ok(TestWriter {
                mode: Mode::Write,
                out: out.clone(),
                gate: gate.clone(),
            })
        })
        .start()
    };
    let old = start();
    let new = start();
    let deliver = || cxrelay_actors::Deliver {
        listener: 1,
        events: vec![Arc::new(Event::builder("test", "calls.x").seq(1).build())],
        ack: cxrelay_actors::router::AckHandle::new(QueueStats::new(10)),
    };
    // A failed send is what makes the router hand the batch on.
    assert!(old.send(deliver()).await.is_err(), "the old instance refuses");
    wait_until("old instance stopped", || !old.connected()).await;
    assert!(new.send(deliver()).await.is_ok(), "the new one takes it");
}

/// Fails every commit while `failing` is set; counts its attempts.
struct Flaky {
    failing: Arc<std::sync::atomic::AtomicBool>,
    attempts: Arc<std::sync::atomic::AtomicUsize>,
    out: Arc<Mutex<Vec<u64>>>,
}

impl SinkWriter for Flaky {
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        use std::sync::atomic::Ordering;
        self.attempts.fetch_add(1, Ordering::SeqCst);
        let result = if self.failing.load(Ordering::SeqCst) {
            Err(SinkError::Transport {
                url: "http://target/".into(),
                message: "connection refused".into(),
            })
        } else {
            self.out.lock().extend(events.iter().map(|e| e.seq));
            Ok(())
        };
        Box::pin(async move { result })
    }
}

/// A sink holding one full batch of three that its writer failed to write,
/// with its next attempt an hour away.
struct WaitingSink {
    /// What shutdown flushes and nudges it with.
    flusher: super::Flusher,
    /// Its writer fails while this is set.
    failing: Arc<std::sync::atomic::AtomicBool>,
    /// Commits its writer was asked for.
    attempts: Arc<std::sync::atomic::AtomicUsize>,
    /// What its writer wrote (the events' `seq`).
    out: Arc<Mutex<Vec<u64>>>,
    /// Its queue's counters (what it acknowledged).
    stats: Arc<QueueStats>,
}

async fn failing_sink_waiting_an_hour() -> WaitingSink {
    let component = Registry::new().register("web", ComponentKind::Listener, true);
    let failing = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let attempts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let out: Arc<Mutex<Vec<u64>>> = Arc::default();
    let hour = Duration::from_secs(3600);
    let opts = SinkOptions {
        batch_events: 3,
        retry: BackoffPolicy {
            initial: hour,
            multiplier: 1.0,
            max: hour,
            randomization: 0.0,
            full_jitter: false,
        },
        stuck_after: hour,
        ..SinkOptions::default()
    };
    let signal = super::FlushSignal::default();
    let (f, a, o) = (failing.clone(), attempts.clone(), out.clone());
    let sink = SinkActor::new(opts, component, move || {
        Ok(Flaky {
            failing: f.clone(),
            attempts: a.clone(),
            out: o.clone(),
        })
    })
    .with_flush_signal(signal.clone())
    .start();
    let stats = QueueStats::new(10);
    sink.do_send(cxrelay_actors::Deliver {
        listener: 1,
        events: (1..=3)
            .map(|i| Arc::new(Event::builder("test", "calls.x").seq(i).build()))
            .collect(),
        ack: cxrelay_actors::router::AckHandle::new(stats.clone()),
    });
    wait_until("the first attempt failed", || {
        attempts.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    WaitingSink {
        flusher: super::Flusher {
            recipient: sink.recipient(),
            signal,
        },
        failing,
        attempts,
        out,
        stats,
    }
}

impl WaitingSink {
    /// The writer's target answers again.
    fn target_back(&self) {
        self.failing.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// The batch was written once, and acknowledged.
    fn assert_written_once(&self) {
        assert_eq!(*self.out.lock(), vec![1, 2, 3]);
        assert_eq!(self.stats.acked_seq(), 3);
    }
}

#[actix::test]
async fn a_final_flush_cuts_a_retry_wait_short_and_commits_at_once() {
    let sink = failing_sink_waiting_an_hour().await;
    // The target is back, and the retry is an hour away.
    sink.target_back();
    let answer = tokio::time::timeout(Duration::from_secs(10), sink.flusher.flush()).await;
    assert_eq!(answer, Ok(Ok(())), "the flush waited out the retry delay");
    sink.assert_written_once();
}

#[actix::test]
async fn a_final_flush_to_a_target_still_down_answers_its_error_at_once_and_keeps_the_batch() {
    let sink = failing_sink_waiting_an_hour().await;
    let answer = tokio::time::timeout(Duration::from_secs(10), sink.flusher.flush())
        .await
        .expect("the flush waited out the retry delay");
    let error = answer.expect_err("nothing was written");
    assert!(error.contains("connection refused"), "{error}");
    // After the first: one attempt for the cut-short wait, one for the
    // flush (and perhaps a batch tick's between them), no retry loop.
    let tried = sink.attempts.load(std::sync::atomic::Ordering::SeqCst);
    assert!((3..=4).contains(&tried), "{tried} attempts");
    assert!(sink.out.lock().is_empty());
    assert_eq!(sink.stats.acked_seq(), 0, "nothing acknowledged");
    // The batch is still held: a later flush, with the target back, writes
    // it once.
    sink.target_back();
    let answer = tokio::time::timeout(Duration::from_secs(10), sink.flusher.flush()).await;
    assert_eq!(answer, Ok(Ok(())));
    sink.assert_written_once();
}

#[actix::test]
async fn a_nudge_makes_a_sink_waiting_to_retry_try_again_now() {
    let sink = failing_sink_waiting_an_hour().await;
    sink.target_back();
    // Nudged again until it lands: one that comes before the sink starts
    // its wait has nothing to end.
    wait_until("written without waiting the hour", || {
        sink.flusher.nudge();
        sink.out.lock().len() == 3
    })
    .await;
    sink.assert_written_once();
}
