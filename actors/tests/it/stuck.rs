//! Stuck detection, on tokio's paused clock: the supervisor, its children
//! and their timers all run on the test's System arbiter, so virtual time
//! drives `run_interval` and `run_later` (verified: 100 one-second ticks
//! take a few real milliseconds). Waiting on the paused clock here is the
//! experiment (how long a child stays silent), not synchronisation.

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use cxrelay_actors::registry::{Component, ComponentKind, ComponentState, Progress, Registry, StopReason};
use cxrelay_actors::retry::BackoffPolicy;
use cxrelay_actors::supervision::{ChildSpec, RestartPolicy, Shutdown, StuckCheck, Supervise, Supervisor};
use parking_lot::Mutex;
use tokio::time::Instant;

use crate::common::wait_for;

const CHECK: Duration = Duration::from_secs(1);
const STUCK_AFTER: Duration = Duration::from_secs(5);

/// What a test child does once started.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    /// Takes work and never finishes it, ignoring retirement (like a
    /// handler blocked on its thread: nothing reaches it).
    HangForEver,
    /// Takes work and never finishes it, but lets go when retired.
    HangUntilRetired,
    /// Takes work and finishes a unit every second.
    Steady,
    /// Has nothing to do.
    Idle,
}

struct Child {
    behaviour: Behaviour,
    progress: Arc<Progress>,
}

impl Actor for Child {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let progress = self.progress.clone();
        match self.behaviour {
            Behaviour::Idle => {}
            Behaviour::Steady => {
                progress.set_busy(true);
                ctx.run_interval(Duration::from_secs(1), |this, _| this.progress.advance());
            }
            Behaviour::HangForEver => {
                progress.set_busy(true);
                // The mailbox is paused while this waits: `Shutdown` is
                // never handled.
                ctx.wait(actix::fut::wrap_future(std::future::pending::<()>()));
            }
            Behaviour::HangUntilRetired => {
                progress.set_busy(true);
                ctx.wait(
                    actix::fut::wrap_future::<_, Self>(async move { progress.retired().await })
                        .map(|_, _, ctx: &mut Context<Self>| ctx.stop()),
                );
            }
        }
    }
}

impl Handler<Shutdown> for Child {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

fn policy(max_restarts: u32) -> RestartPolicy {
    RestartPolicy {
        max_restarts,
        within: Duration::from_secs(3600),
        backoff: BackoffPolicy {
            initial: Duration::from_millis(500),
            multiplier: 1.0,
            max: Duration::from_millis(500),
            randomization: 0.0,
            full_jitter: false,
        },
        reset_after: Duration::from_secs(3600),
    }
}

/// Every instance started, with when.
type Instances = Arc<Mutex<Vec<(Instant, Addr<Child>)>>>;

struct Setup {
    registry: Registry,
    instances: Instances,
}

impl Setup {
    fn component(&self) -> Arc<Component> {
        self.registry.get("child").expect("registered")
    }
    fn starts(&self) -> usize {
        self.instances.lock().len()
    }
    fn instance(&self, i: usize) -> (Instant, Addr<Child>) {
        self.instances.lock()[i].clone()
    }
}

/// Supervises one child named "child" that declares `STUCK_AFTER` and
/// behaves as `behaviours` says, one per start (the last one repeats).
/// Call on a paused clock.
async fn supervise(behaviours: Vec<Behaviour>, stuck: StuckCheck, max_restarts: u32) -> Setup {
    let registry = Registry::new();
    let sup = Supervisor::new(registry.clone(), CHECK).start();
    let instances: Instances = Arc::default();
    let (r, list) = (registry.clone(), instances.clone());
    let spec = ChildSpec::new("child", ComponentKind::Listener, move || {
        let n = list.lock().len();
        let behaviour = behaviours[n.min(behaviours.len() - 1)];
        // The factory runs after the supervisor began a new instance: this
        // is the new instance's handle.
        let progress = r
            .register("child", ComponentKind::Listener, true)
            .report_progress(STUCK_AFTER);
        let addr = Child { behaviour, progress }.start();
        list.lock().push((Instant::now(), addr.clone()));
        addr
    })
    .policy(policy(max_restarts))
    .stuck_check(stuck);
    sup.send(Supervise(spec)).await.expect("supervisor runs");
    Setup { registry, instances }
}

#[actix::test]
async fn a_child_holding_work_without_progress_is_restarted_and_left_behind_if_it_cannot_stop() {
    tokio::time::pause();
    let s = supervise(vec![Behaviour::HangForEver, Behaviour::Idle], StuckCheck::AsReported, 5).await;
    wait_for("restarted", Duration::from_secs(10), || async { s.starts() == 2 }).await;
    let (first_at, first) = s.instance(0);
    let (second_at, _) = s.instance(1);
    let waited = second_at - first_at;
    // Stuck after 5 s of silence (seen within one 1 s check), then the
    // 500 ms backoff.
    assert!(
        waited >= STUCK_AFTER + Duration::from_millis(500) && waited <= STUCK_AFTER + Duration::from_millis(2600),
        "restarted after {waited:?}"
    );
    let c = s.component().snapshot();
    assert_eq!((c.state, c.restarts), (ComponentState::Running, 1));
    match c.last_stop.map(|l| l.reason) {
        Some(StopReason::Stuck { silent_for_ms }) => assert!((5000..=6000).contains(&silent_for_ms), "{silent_for_ms}"),
        other => panic!("expected stuck, got {other:?}"),
    }
    assert!(c.last_error.unwrap_or_default().starts_with("stuck"));
    // The old instance never read its `Shutdown`: it is left running, and
    // status says so.
    assert!(first.connected());
    assert_eq!(c.detail["abandoned_instances"], 1);
    // The idle replacement is never stuck, however long it waits.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(s.starts(), 2);
}

#[actix::test]
async fn a_stuck_child_that_watches_for_retirement_lets_go_and_is_forgotten() {
    tokio::time::pause();
    let s = supervise(
        vec![Behaviour::HangUntilRetired, Behaviour::Idle],
        StuckCheck::AsReported,
        5,
    )
    .await;
    wait_for("restarted", Duration::from_secs(10), || async { s.starts() == 2 }).await;
    let (_, first) = s.instance(0);
    wait_for("old instance gone", Duration::from_secs(10), || async {
        !first.connected()
    })
    .await;
    let component = s.component();
    wait_for("no instance left behind", Duration::from_secs(10), || async {
        component.snapshot().detail.get("abandoned_instances").is_none()
    })
    .await;
    assert_eq!(component.snapshot().restarts, 1);
}

#[actix::test]
async fn a_busy_child_that_makes_progress_or_an_idle_one_is_never_stuck() {
    tokio::time::pause();
    for behaviour in [Behaviour::Steady, Behaviour::Idle] {
        let s = supervise(vec![behaviour], StuckCheck::AsReported, 5).await;
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(s.starts(), 1);
        assert_eq!(s.component().snapshot().last_stop, None);
    }
}

#[actix::test]
async fn the_spec_overrides_what_the_child_declares() {
    tokio::time::pause();
    // Off: a silent busy child is left alone.
    let s = supervise(vec![Behaviour::HangForEver], StuckCheck::Off, 5).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(s.starts(), 1);
    // A shorter threshold than declared applies.
    let s = supervise(
        vec![Behaviour::HangForEver, Behaviour::Idle],
        StuckCheck::After(Duration::from_secs(2)),
        5,
    )
    .await;
    wait_for("restarted", Duration::from_secs(10), || async { s.starts() == 2 }).await;
    let waited = s.instance(1).0 - s.instance(0).0;
    assert!(waited < STUCK_AFTER, "restarted after {waited:?}");
}

#[actix::test]
async fn a_child_stuck_every_time_hits_the_intensity_limit() {
    tokio::time::pause();
    let s = supervise(vec![Behaviour::HangUntilRetired], StuckCheck::AsReported, 2).await;
    let component = s.component();
    wait_for("failed", Duration::from_secs(10), || async {
        component.state() == ComponentState::Failed
    })
    .await;
    let c = component.snapshot();
    assert_eq!((s.starts(), c.restarts), (3, 2));
    assert!(matches!(c.last_stop.map(|l| l.reason), Some(StopReason::Stuck { .. })));
    assert!(c.last_error.unwrap_or_default().contains("not restarting"));
    // Nothing restarts it later.
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(s.starts(), 3);
}
