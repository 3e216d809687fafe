use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use actix::dev::ToEnvelope;
use actix::prelude::*;
// tokio's clock, not std's: tests pause and advance it.
use tokio::time::Instant;

use super::intensity::RestartIntensity;
use super::stuck::{ProgressWatch, StuckCheck};
use crate::registry::{Component, ComponentKind, ComponentState, Registry, StopReason};
use crate::retry::{Backoff, BackoffPolicy};

/// Asks a supervised actor to stop on purpose.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub struct Shutdown;

/// A running child as the supervisor sees it.
pub trait Child: Send + 'static {
    /// Whether the child is still running.
    fn is_alive(&self) -> bool;
    /// Asks the child to stop.
    fn stop(&self);
}

impl<A> Child for Addr<A>
where
    A: Actor + Handler<Shutdown>,
    A::Context: ToEnvelope<A, Shutdown>,
{
    fn is_alive(&self) -> bool {
        self.connected()
    }
    fn stop(&self) {
        // Control path, not data: an unbounded send is right here.
        self.do_send(Shutdown);
    }
}

/// How a child is restarted.
#[derive(Debug, Clone)]
pub struct RestartPolicy {
    /// Most restarts allowed within `within`.
    pub max_restarts: u32,
    /// The intensity window.
    pub within: Duration,
    /// Delay schedule between a failure and the restart.
    pub backoff: BackoffPolicy,
    /// A child that stayed up this long starts its backoff over.
    pub reset_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            max_restarts: 5,
            within: Duration::from_secs(60),
            backoff: BackoffPolicy::default(),
            reset_after: Duration::from_secs(30),
        }
    }
}

type Factory = Box<dyn FnMut() -> Box<dyn Child> + Send>;

/// What to supervise: a name for status, and how to start it.
///
/// The factory should start each instance on an arbiter that is not
/// blocked: an instance given up on as stuck is left where it is, and if it
/// blocks its thread, a replacement started on that thread never runs.
pub struct ChildSpec {
    name: String,
    kind: ComponentKind,
    gates_readiness: bool,
    start: Factory,
    policy: RestartPolicy,
    stuck: StuckCheck,
}

impl ChildSpec {
    /// A child named `name` of `kind`, started (and restarted) by `start`.
    pub fn new<C, F>(name: impl Into<String>, kind: ComponentKind, mut start: F) -> Self
    where
        C: Child,
        F: FnMut() -> C + Send + 'static,
    {
        ChildSpec {
            name: name.into(),
            kind,
            gates_readiness: true,
            start: Box::new(move || Box::new(start()) as Box<dyn Child>),
            policy: RestartPolicy::default(),
            stuck: StuckCheck::default(),
        }
    }

    /// Sets the restart policy.
    pub fn policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// When the child counts as stuck (default: as its component reports).
    /// A stuck child is stopped, left behind if it does not stop, and
    /// restarted like one that failed.
    pub fn stuck_check(mut self, stuck: StuckCheck) -> Self {
        self.stuck = stuck;
        self
    }

    /// Whether the child's state gates readiness (default: yes).
    pub fn gates_readiness(mut self, gates: bool) -> Self {
        self.gates_readiness = gates;
        self
    }
}

/// Starts supervising a child (and starts it now).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Supervise(pub ChildSpec);

/// Stops one child on purpose; it is not restarted.
#[derive(Message)]
#[rtype(result = "bool")]
pub struct StopChild(pub String);

/// Stops every child of a kind (or all, with `None`) on purpose.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct StopChildren(pub Option<ComponentKind>);

/// How many children stopped on purpose are still finishing (a child may
/// take a while: a source commits what it read before it goes).
#[derive(Message)]
#[rtype(result = "usize")]
pub struct StillStopping;

enum Phase {
    Running { since: Instant },
    WaitingRestart,
    Failed,
    Stopped,
}

struct Slot {
    spec: ChildSpec,
    current: Option<Box<dyn Child>>,
    phase: Phase,
    intensity: RestartIntensity,
    backoff: Backoff,
    component: Arc<Component>,
    watch: ProgressWatch,
}

/// An instance given up on as stuck that had not stopped yet.
struct Abandoned {
    name: String,
    child: Box<dyn Child>,
    since: Instant,
}

/// The supervisor's part of a child's `/status` details: instances given
/// up on as stuck that have not stopped yet (absent when none).
#[derive(Debug, serde::Serialize)]
struct AbandonedStatus {
    #[serde(skip_serializing_if = "is_zero")]
    abandoned_instances: usize,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// Watches children and restarts those that die or get stuck.
pub struct Supervisor {
    registry: Registry,
    children: BTreeMap<String, Slot>,
    check_every: Duration,
    /// Children stopped on purpose that may still be running.
    stopping: Vec<Box<dyn Child>>,
    /// Stuck instances that were asked to stop and may never do so (one
    /// blocked inside a handler never reads its mailbox). Kept apart from
    /// `stopping` so that a shutdown does not wait for them.
    abandoned: Vec<Abandoned>,
}

impl Supervisor {
    /// A supervisor reporting into `registry`, checking children every
    /// `check_every`.
    pub fn new(registry: Registry, check_every: Duration) -> Self {
        Supervisor {
            registry,
            children: BTreeMap::new(),
            check_every,
            stopping: Vec::new(),
            abandoned: Vec::new(),
        }
    }

    fn start_child(slot: &mut Slot) {
        // Before the factory runs: the new instance picks up a fresh
        // progress handle, and the one it replaces is retired.
        slot.component.begin_instance();
        let now = Instant::now();
        slot.watch = ProgressWatch::new(now);
        // Marked running before it starts: a child on another thread may
        // report its own state (failed, paused) before the factory returns,
        // and that report must not be overwritten.
        slot.component.set_state(ComponentState::Running);
        slot.current = Some((slot.spec.start)());
        slot.phase = Phase::Running { since: now };
    }

    /// Why a running child has to be restarted, if it does: it is gone, or
    /// it is alive but stuck.
    fn failure(slot: &mut Slot, now: Instant) -> Option<StopReason> {
        let alive = slot.current.as_ref().is_some_and(|c| c.is_alive());
        if !alive {
            return Some(slot.component.take_reported_stop().unwrap_or(StopReason::Exited));
        }
        let progress = slot.component.progress_handle();
        let limit = slot.spec.stuck.threshold(progress.declared_stuck_after());
        let silent = slot.watch.observe(progress.sample(), now, limit)?;
        Some(StopReason::Stuck {
            silent_for_ms: u64::try_from(silent.as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// Asks a stuck instance to stop and stops waiting for it: a handler
    /// blocked on its thread never reads `Shutdown`, so the restart cannot
    /// depend on it. Retiring its progress handle lets an instance that is
    /// only waiting on a future (its thread free) cancel that wait and go.
    fn abandon(&mut self, name: &str, child: Box<dyn Child>, component: &Component, now: Instant) {
        child.stop();
        component.retire_instance();
        self.abandoned.push(Abandoned {
            name: name.to_string(),
            child,
            since: now,
        });
        self.publish_abandoned(name, component);
    }

    fn publish_abandoned(&self, name: &str, component: &Component) {
        let n = self.abandoned.iter().filter(|a| a.name == name).count();
        component.set_status(&AbandonedStatus { abandoned_instances: n });
    }

    /// Forgets abandoned instances that have finally stopped.
    fn sweep_abandoned(&mut self, now: Instant) {
        let (gone, left): (Vec<_>, Vec<_>) = std::mem::take(&mut self.abandoned)
            .into_iter()
            .partition(|a| !a.child.is_alive());
        self.abandoned = left;
        for a in gone {
            tracing::info!(component = %a.name, after = ?now.saturating_duration_since(a.since),
                "an instance given up on as stuck has stopped");
            if let Some(slot) = self.children.get(&a.name) {
                self.publish_abandoned(&a.name, &slot.component);
            }
        }
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        self.sweep_abandoned(now);
        let mut to_restart = Vec::new();
        let mut to_abandon = Vec::new();
        for (name, slot) in self.children.iter_mut() {
            let Phase::Running { since } = slot.phase else {
                continue;
            };
            let Some(reason) = Self::failure(slot, now) else {
                continue;
            };
            let child = slot.current.take();
            if let (StopReason::Stuck { .. }, Some(c)) = (&reason, child) {
                // Still running: it has to be stopped, or left behind.
                to_abandon.push((name.clone(), c, slot.component.clone()));
            }
            slot.component.record_stop(reason.clone());
            if now.duration_since(since) >= slot.spec.policy.reset_after {
                slot.backoff.reset();
            }
            if !slot.intensity.allow_restart(now.into_std()) {
                let why = format!(
                    "failed {} times within {:?}; not restarting",
                    slot.spec.policy.max_restarts + 1,
                    slot.spec.policy.within
                );
                tracing::error!(component = %name, "{why}");
                slot.component.fail(ComponentState::Failed, why);
                slot.phase = Phase::Failed;
                continue;
            }
            let delay = slot.backoff.next_delay();
            tracing::warn!(component = %name, ?delay, %reason, "restarting");
            slot.component.set_state(ComponentState::Restarting);
            slot.phase = Phase::WaitingRestart;
            to_restart.push((name.clone(), delay));
        }
        for (name, child, component) in to_abandon {
            tracing::error!(component = %name, "stuck: asked to stop and left behind; a new instance replaces it");
            self.abandon(&name, child, &component, now);
        }
        for (name, delay) in to_restart {
            ctx.run_later(delay, move |this, _| {
                if let Some(slot) = this.children.get_mut(&name) {
                    if matches!(slot.phase, Phase::WaitingRestart) {
                        slot.component.count_restart();
                        Self::start_child(slot);
                    }
                }
            });
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(self.check_every, |this, ctx| this.check(ctx));
    }

    fn stopping(&mut self, _: &mut Self::Context) -> Running {
        for slot in self.children.values_mut() {
            if let Some(c) = slot.current.take() {
                c.stop();
            }
        }
        Running::Stop
    }
}

impl Handler<Supervise> for Supervisor {
    type Result = ();

    fn handle(&mut self, msg: Supervise, _: &mut Self::Context) {
        let spec = msg.0;
        let component = self.registry.register(&spec.name, spec.kind, spec.gates_readiness);
        let mut slot = Slot {
            intensity: RestartIntensity::new(spec.policy.max_restarts, spec.policy.within),
            backoff: spec.policy.backoff.schedule(),
            spec,
            current: None,
            phase: Phase::Stopped,
            component,
            watch: ProgressWatch::new(Instant::now()),
        };
        Self::start_child(&mut slot);
        if let Some(old) = self.children.insert(slot.spec.name.clone(), slot) {
            if let Some(c) = old.current {
                c.stop();
            }
        }
    }
}

impl Handler<StopChild> for Supervisor {
    type Result = bool;

    fn handle(&mut self, msg: StopChild, _: &mut Self::Context) -> bool {
        let Some(slot) = self.children.get_mut(&msg.0) else {
            return false;
        };
        if let Some(c) = slot.current.take() {
            c.stop();
            keep_until_stopped(&mut self.stopping, c);
        }
        slot.phase = Phase::Stopped;
        slot.component.record_stop(StopReason::Stopped);
        slot.component.set_state(ComponentState::Stopped);
        true
    }
}

impl Handler<StopChildren> for Supervisor {
    type Result = usize;

    fn handle(&mut self, msg: StopChildren, _: &mut Self::Context) -> usize {
        let mut n = 0;
        for slot in self.children.values_mut() {
            if msg.0.is_some_and(|k| k != slot.spec.kind) {
                continue;
            }
            if let Some(c) = slot.current.take() {
                c.stop();
                keep_until_stopped(&mut self.stopping, c);
                n += 1;
            }
            slot.phase = Phase::Stopped;
            slot.component.record_stop(StopReason::Stopped);
            slot.component.set_state(ComponentState::Stopped);
        }
        n
    }
}

/// Tracks a child stopped on purpose until it has gone; those that have are
/// forgotten here too, so children stopped over months do not pile up.
fn keep_until_stopped(stopping: &mut Vec<Box<dyn Child>>, child: Box<dyn Child>) {
    stopping.retain(|c| c.is_alive());
    stopping.push(child);
}

impl Handler<StillStopping> for Supervisor {
    type Result = usize;

    fn handle(&mut self, _: StillStopping, _: &mut Self::Context) -> usize {
        self.stopping.retain(|c| c.is_alive());
        self.stopping.len()
    }
}
