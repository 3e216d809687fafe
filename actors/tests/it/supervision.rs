use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use cxrelay_actors::registry::{Component, ComponentKind, ComponentState, Registry, StopReason};
use cxrelay_actors::retry::BackoffPolicy;
use cxrelay_actors::supervision::{
    ChildSpec, RestartPolicy, Shutdown, StillStopping, StopChild, StopChildren, Supervise, Supervisor,
};
use parking_lot::Mutex;

use crate::common::wait_for;

struct Flaky {
    panic_on_start: bool,
}
impl Actor for Flaky {
    type Context = Context<Self>;
    fn started(&mut self, _: &mut Self::Context) {
        if self.panic_on_start {
            panic!("cannot start");
        }
    }
}
impl Handler<Shutdown> for Flaky {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
#[derive(Message)]
#[rtype(result = "()")]
struct Boom;
impl Handler<Boom> for Flaky {
    type Result = ();
    fn handle(&mut self, _: Boom, _: &mut Self::Context) {
        panic!("handler panicked");
    }
}

fn policy(max_restarts: u32) -> RestartPolicy {
    RestartPolicy {
        max_restarts,
        within: Duration::from_secs(60),
        backoff: BackoffPolicy {
            initial: Duration::from_millis(20),
            multiplier: 2.0,
            max: Duration::from_secs(1),
            randomization: 0.0,
            full_jitter: false,
        },
        reset_after: Duration::from_secs(60),
    }
}

#[actix::test]
async fn a_child_failing_forever_backs_off_then_is_marked_failed() {
    let registry = Registry::new();
    let sup = Supervisor::new(registry.clone(), Duration::from_millis(2)).start();
    let starts = Arc::new(Mutex::new(Vec::<Instant>::new()));
    let s2 = starts.clone();
    sup.send(Supervise(
        ChildSpec::new("flaky", ComponentKind::Source, move || {
            s2.lock().push(Instant::now());
            Flaky { panic_on_start: true }.start()
        })
        .policy(policy(4)),
    ))
    .await
    .unwrap();
    wait_for("marked failed", Duration::from_secs(10), || async {
        registry.get("flaky").unwrap().state() == ComponentState::Failed
    })
    .await;
    let starts = starts.lock().clone();
    assert_eq!(starts.len(), 5, "first start + 4 restarts");
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    // Delays follow 20, 40, 80, 160 ms (plus the detection interval).
    for (i, gap) in gaps.iter().enumerate() {
        let expected = Duration::from_millis(20 << i);
        assert!(
            *gap >= expected,
            "restart {i} came after {gap:?}, expected at least {expected:?}"
        );
    }
    // Only lower bounds: the first panic of a process can take tens of
    // milliseconds longer when a backtrace is captured.
    let snap = registry.get("flaky").unwrap().snapshot();
    assert_eq!(snap.restarts, 4);
    assert!(snap.last_error.unwrap().contains("not restarting"));
    assert_eq!(registry.not_ready()[0].0, "flaky");
}

#[actix::test]
async fn a_handler_panic_is_a_failure_and_the_child_is_rebuilt() {
    let registry = Registry::new();
    let sup = Supervisor::new(registry.clone(), Duration::from_millis(2)).start();
    let current: Arc<Mutex<Option<Addr<Flaky>>>> = Arc::default();
    let starts = Arc::new(AtomicUsize::new(0));
    let (c2, s2) = (current.clone(), starts.clone());
    sup.send(Supervise(
        ChildSpec::new("worker", ComponentKind::Listener, move || {
            s2.fetch_add(1, Ordering::SeqCst);
            let addr = Flaky { panic_on_start: false }.start();
            *c2.lock() = Some(addr.clone());
            addr
        })
        .policy(policy(3)),
    ))
    .await
    .unwrap();
    let first = current.lock().clone().unwrap();
    let _ = first.send(Boom).await;
    wait_for("restarted", Duration::from_secs(5), || async {
        starts.load(Ordering::SeqCst) == 2
    })
    .await;
    let c = registry.get("worker").unwrap();
    assert_eq!(c.snapshot().restarts, 1);
    assert_eq!(c.state(), ComponentState::Running);
    // actix swallows an uncaught panic: the supervisor only sees it gone.
    assert_eq!(c.last_stop().map(|s| s.reason), Some(StopReason::Exited));
    assert!(current.lock().as_ref().unwrap().connected());
    // Stopping on purpose is not a failure.
    assert!(sup.send(StopChild("worker".into())).await.unwrap());
    wait_for("stopped", Duration::from_secs(5), || async {
        !current.lock().as_ref().unwrap().connected()
    })
    .await;
    assert_eq!(c.state(), ComponentState::Stopped);
    assert_eq!(c.last_stop().map(|s| s.reason), Some(StopReason::Stopped));
    assert_eq!(starts.load(Ordering::SeqCst), 2);
}

/// Stops itself on an error it reports first.
struct GivesUp(Arc<Component>);
impl Actor for GivesUp {
    type Context = Context<Self>;
    fn started(&mut self, ctx: &mut Self::Context) {
        self.0.report_stop(StopReason::Failed {
            error: "credentials revoked".into(),
        });
        ctx.stop();
    }
}
impl Handler<Shutdown> for GivesUp {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

#[actix::test]
async fn a_child_that_says_why_it_stops_is_recorded_with_that_reason() {
    let registry = Registry::new();
    let sup = Supervisor::new(registry.clone(), Duration::from_millis(2)).start();
    let r = registry.clone();
    sup.send(Supervise(
        ChildSpec::new("quitter", ComponentKind::Source, move || {
            GivesUp(r.register("quitter", ComponentKind::Source, true)).start()
        })
        .policy(policy(1)),
    ))
    .await
    .unwrap();
    let c = registry.get("quitter").unwrap();
    wait_for("given up", Duration::from_secs(5), || async {
        c.state() == ComponentState::Failed
    })
    .await;
    assert_eq!(
        c.last_stop().map(|s| s.reason),
        Some(StopReason::Failed {
            error: "credentials revoked".into()
        })
    );
    assert_eq!(c.snapshot().restarts, 1);
}

#[actix::test]
async fn a_state_the_child_reports_while_starting_is_not_overwritten() {
    // A child on another thread can fail (a refused URL, a bad credential)
    // before the supervisor's start call returns; here the factory itself
    // reports, which is that race at its worst.
    let registry = Registry::new();
    let sup = Supervisor::new(registry.clone(), Duration::from_millis(2)).start();
    let r = registry.clone();
    sup.send(Supervise(
        ChildSpec::new("early", ComponentKind::Source, move || {
            r.register("early", ComponentKind::Source, true)
                .fail(ComponentState::Failed, "refused at once");
            Flaky { panic_on_start: false }.start()
        })
        .policy(policy(1)),
    ))
    .await
    .unwrap();
    let c = registry.get("early").unwrap();
    assert_eq!(c.state(), ComponentState::Failed);
    assert_eq!(c.snapshot().last_error.as_deref(), Some("refused at once"));
}

/// A child that finishes its work before it goes when asked to stop.
struct Slow {
    finished: Arc<AtomicUsize>,
}
impl Actor for Slow {
    type Context = Context<Self>;
}
impl Handler<Shutdown> for Slow {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        let finished = self.finished.clone();
        ctx.run_later(Duration::from_millis(150), move |_, ctx| {
            finished.fetch_add(1, Ordering::SeqCst);
            ctx.stop();
        });
    }
}

#[actix::test]
async fn children_stopped_on_purpose_are_counted_until_they_have_finished() {
    let sup = Supervisor::new(Registry::new(), Duration::from_millis(5)).start();
    let finished = Arc::new(AtomicUsize::new(0));
    // A listener too: stopping the sources leaves it running.
    for (name, kind) in [
        ("a", ComponentKind::Source),
        ("b", ComponentKind::Source),
        ("c", ComponentKind::Listener),
    ] {
        let f = finished.clone();
        sup.send(Supervise(ChildSpec::new(name, kind, move || {
            Slow { finished: f.clone() }.start()
        })))
        .await
        .unwrap();
    }
    assert_eq!(sup.send(StillStopping).await.unwrap(), 0);
    assert_eq!(sup.send(StopChildren(Some(ComponentKind::Source))).await.unwrap(), 2);
    assert_eq!(sup.send(StillStopping).await.unwrap(), 2, "both still finishing");
    wait_for("both finished", Duration::from_secs(5), || async {
        sup.send(StillStopping).await.unwrap() == 0
    })
    .await;
    assert_eq!(finished.load(Ordering::SeqCst), 2, "none was cut short");
}
