use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::ToEnvelope;
use actix::prelude::*;

use super::intensity::RestartIntensity;
use crate::registry::{Component, ComponentState, Registry};
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
pub struct ChildSpec {
    name: String,
    kind: String,
    gates_readiness: bool,
    start: Factory,
    policy: RestartPolicy,
}

impl ChildSpec {
    /// A child named `name` of `kind`, started (and restarted) by `start`.
    pub fn new<C, F>(name: impl Into<String>, kind: impl Into<String>, mut start: F) -> Self
    where
        C: Child,
        F: FnMut() -> C + Send + 'static,
    {
        ChildSpec {
            name: name.into(),
            kind: kind.into(),
            gates_readiness: true,
            start: Box::new(move || Box::new(start()) as Box<dyn Child>),
            policy: RestartPolicy::default(),
        }
    }

    /// Sets the restart policy.
    pub fn policy(mut self, policy: RestartPolicy) -> Self {
        self.policy = policy;
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
pub struct StopChildren(pub Option<String>);

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
}

/// Watches children and restarts those that die.
pub struct Supervisor {
    registry: Registry,
    children: BTreeMap<String, Slot>,
    check_every: Duration,
    /// Children stopped on purpose that may still be running.
    stopping: Vec<Box<dyn Child>>,
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
        }
    }

    fn start_child(slot: &mut Slot) {
        slot.current = Some((slot.spec.start)());
        slot.phase = Phase::Running { since: Instant::now() };
        slot.component.set_state(ComponentState::Running);
    }

    fn check(&mut self, ctx: &mut Context<Self>) {
        let now = Instant::now();
        let mut to_restart = Vec::new();
        for (name, slot) in self.children.iter_mut() {
            let Phase::Running { since } = slot.phase else {
                continue;
            };
            if slot.current.as_ref().is_some_and(|c| c.is_alive()) {
                continue;
            }
            slot.current = None;
            if now.duration_since(since) >= slot.spec.policy.reset_after {
                slot.backoff.reset();
            }
            if !slot.intensity.allow_restart(now) {
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
            tracing::warn!(component = %name, ?delay, "actor stopped unexpectedly; restarting");
            slot.component
                .fail(ComponentState::Restarting, "stopped unexpectedly (panic or stop)");
            slot.phase = Phase::WaitingRestart;
            to_restart.push((name.clone(), delay));
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
        let component = self.registry.register(&spec.name, &spec.kind, spec.gates_readiness);
        let mut slot = Slot {
            intensity: RestartIntensity::new(spec.policy.max_restarts, spec.policy.within),
            backoff: spec.policy.backoff.schedule(),
            spec,
            current: None,
            phase: Phase::Stopped,
            component,
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
        slot.component.set_state(ComponentState::Stopped);
        true
    }
}

impl Handler<StopChildren> for Supervisor {
    type Result = usize;

    fn handle(&mut self, msg: StopChildren, _: &mut Self::Context) -> usize {
        let mut n = 0;
        for slot in self.children.values_mut() {
            if msg.0.as_ref().is_some_and(|k| *k != slot.spec.kind) {
                continue;
            }
            if let Some(c) = slot.current.take() {
                c.stop();
                keep_until_stopped(&mut self.stopping, c);
                n += 1;
            }
            slot.phase = Phase::Stopped;
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
