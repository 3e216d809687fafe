//! The shared table of component health, read by status and readiness.
//!
//! Components write their own entry; HTTP handlers read all of them without
//! messaging any actor, so a stuck actor can never hide the status page.

mod carried;
mod kind;
mod progress;
mod status;
mod stop_reason;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::Serialize;

use crate::event::now_ms;
use carried::Carried;
pub use kind::ComponentKind;
pub use progress::{Progress, ProgressSample, WaitingOnOthers};
pub use status::StatusError;
use status::StatusParts;
pub use stop_reason::{LastStop, StopReason};

/// Lifecycle state of a component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentState {
    /// Starting up; not ready yet.
    Starting,
    /// Working.
    Running,
    /// Nothing to do, and that is fine (counts as ready).
    Idle,
    /// Working with a problem worth attention (still counts as ready).
    Degraded,
    /// Paused by something outside it (e.g. an open breaker); not ready.
    Paused,
    /// Failed and waiting for a restart.
    Restarting,
    /// Gave up: needs an operator.
    Failed,
    /// Stopped on purpose.
    Stopped,
}

impl ComponentState {
    /// Every state, in declaration order.
    pub const ALL: [ComponentState; 8] = [
        ComponentState::Starting,
        ComponentState::Running,
        ComponentState::Idle,
        ComponentState::Degraded,
        ComponentState::Paused,
        ComponentState::Restarting,
        ComponentState::Failed,
        ComponentState::Stopped,
    ];

    /// The state as written in `/status` and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            ComponentState::Starting => "starting",
            ComponentState::Running => "running",
            ComponentState::Idle => "idle",
            ComponentState::Degraded => "degraded",
            ComponentState::Paused => "paused",
            ComponentState::Restarting => "restarting",
            ComponentState::Failed => "failed",
            ComponentState::Stopped => "stopped",
        }
    }

    /// Whether this state lets `/health/ready` answer 200.
    pub fn is_ready(self) -> bool {
        matches!(
            self,
            ComponentState::Running | ComponentState::Idle | ComponentState::Degraded | ComponentState::Stopped
        )
    }
}

/// One component's entry.
#[derive(Debug)]
pub struct Component {
    name: String,
    kind: ComponentKind,
    gates_readiness: bool,
    inner: Mutex<ComponentInner>,
    restarts: AtomicU64,
    /// The running instance's progress (replaced at each restart).
    instance: Mutex<Arc<Progress>>,
    carried: Carried,
}

#[derive(Debug)]
struct ComponentInner {
    state: ComponentState,
    since_ms: i64,
    last_error: Option<String>,
    last_stop: Option<LastStop>,
    /// Why the running instance says it is stopping, for its supervisor.
    reported_stop: Option<StopReason>,
    status: StatusParts,
}

/// A serialisable copy of a component's entry.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentSnapshot {
    /// Component name.
    pub name: String,
    /// What kind of component it is (source, listener, store, ...).
    pub kind: ComponentKind,
    /// Current state.
    pub state: ComponentState,
    /// Since when (ms since the epoch).
    pub since_ms: i64,
    /// Restarts so far.
    pub restarts: u64,
    /// Most recent error message.
    pub last_error: Option<String>,
    /// Why it (or a part it restarts itself) last stopped, and when.
    pub last_stop: Option<LastStop>,
    /// Whether this component's state gates readiness.
    pub gates_readiness: bool,
    /// Component-specific details: the fields of every status part it
    /// published.
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl Component {
    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The component's kind.
    pub fn kind(&self) -> ComponentKind {
        self.kind
    }

    /// Sets the state (and clears the error when it becomes healthy).
    pub fn set_state(&self, state: ComponentState) {
        let mut inner = self.inner.lock();
        if inner.state != state {
            inner.state = state;
            inner.since_ms = now_ms();
        }
    }

    /// Current state.
    pub fn state(&self) -> ComponentState {
        self.inner.lock().state
    }

    /// Records an error message (the state is left to the caller).
    pub fn record_error(&self, error: impl Into<String>) {
        self.inner.lock().last_error = Some(error.into());
    }

    /// Sets the state and the error together.
    pub fn fail(&self, state: ComponentState, error: impl Into<String>) {
        let mut inner = self.inner.lock();
        inner.last_error = Some(error.into());
        if inner.state != state {
            inner.state = state;
            inner.since_ms = now_ms();
        }
    }

    /// Clears the recorded error.
    pub fn clear_error(&self) {
        self.inner.lock().last_error = None;
    }

    /// Counts one restart.
    pub fn count_restart(&self) -> u64 {
        self.restarts.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Records why the component (or a part of it that it restarts itself,
    /// such as a writer or a worker) stopped; unless it stopped on purpose,
    /// the text also becomes the last error. The state is left to the
    /// caller.
    pub fn record_stop(&self, reason: StopReason) {
        let mut inner = self.inner.lock();
        if reason != StopReason::Stopped {
            inner.last_error = Some(reason.to_string());
        }
        inner.last_stop = Some(LastStop {
            reason,
            at_ms: now_ms(),
        });
    }

    /// Records a stop and counts the restart that follows it; answers the
    /// restart count.
    pub fn restarted(&self, reason: StopReason) -> u64 {
        self.record_stop(reason);
        self.count_restart()
    }

    /// The running instance says why it is about to stop (before it calls
    /// `ctx.stop()`); its supervisor records that instead of
    /// [`StopReason::Exited`] when it finds the instance gone.
    pub fn report_stop(&self, reason: StopReason) {
        self.inner.lock().reported_stop = Some(reason);
    }

    /// What the current instance reported with [`Component::report_stop`].
    pub(crate) fn take_reported_stop(&self) -> Option<StopReason> {
        self.inner.lock().reported_stop.take()
    }

    /// The last recorded stop.
    pub fn last_stop(&self) -> Option<LastStop> {
        self.inner.lock().last_stop.clone()
    }

    /// The running instance reports progress: answers its handle, and asks
    /// a supervisor left at [`crate::supervision::StuckCheck::AsReported`]
    /// to treat `stuck_after` without progress while busy as stuck.
    /// Call it once per instance (when it is built or started), then use
    /// the handle on the hot path.
    pub fn report_progress(&self, stuck_after: Duration) -> Arc<Progress> {
        let p = self.progress_handle();
        p.declare(stuck_after);
        p
    }

    /// The running instance's progress handle.
    pub fn progress_handle(&self) -> Arc<Progress> {
        self.instance.lock().clone()
    }

    /// A new instance is about to start: the previous one is retired, the
    /// new one gets a fresh progress handle and no reported stop. Called by
    /// whatever (re)starts the component, before it builds the instance.
    pub fn begin_instance(&self) -> Arc<Progress> {
        let fresh = Arc::new(Progress::default());
        let old = std::mem::replace(&mut *self.instance.lock(), fresh.clone());
        old.retire();
        self.inner.lock().reported_stop = None;
        fresh
    }

    /// Gives up on the running instance (it is stuck): it sees
    /// [`Progress::retired`] resolve and should let go of what it holds.
    pub fn retire_instance(&self) {
        self.instance.lock().retire();
    }

    /// State that outlives one instance of the component: every instance
    /// asking for a `T` gets the same value, so a replacement can take over
    /// what the instance before it held (a sink's unacknowledged batch).
    pub fn carried<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        self.carried.get_or_default()
    }

    /// Publishes one part of the component's `/status` details: the
    /// fields `status` serialises to replace those the previous value of
    /// the same type published (a field it no longer writes disappears).
    /// Parts of different types (a source's runner and the reader of its
    /// download, say) are kept side by side and shown as one object.
    ///
    /// Serialises on the caller's thread: publish on a schedule (a tick, a
    /// committed batch), not per event.
    pub fn set_status<S: Serialize + ?Sized>(&self, status: &S) {
        if let Err(e) = self.try_set_status(status) {
            tracing::warn!(component = %self.name, part = std::any::type_name::<S>(), error = %e,
                "status not published");
        }
    }

    /// [`Component::set_status`], answering why a status was refused.
    pub fn try_set_status<S: Serialize + ?Sized>(&self, status: &S) -> Result<(), StatusError> {
        let fields = status::fields_of(status)?;
        self.inner.lock().status.set(std::any::type_name::<S>(), fields);
        Ok(())
    }

    /// A copy for serialisation.
    pub fn snapshot(&self) -> ComponentSnapshot {
        let inner = self.inner.lock();
        ComponentSnapshot {
            name: self.name.clone(),
            kind: self.kind,
            state: inner.state,
            since_ms: inner.since_ms,
            restarts: self.restarts.load(Ordering::Relaxed),
            last_error: inner.last_error.clone(),
            last_stop: inner.last_stop.clone(),
            gates_readiness: self.gates_readiness,
            detail: inner.status.merged(),
        }
    }
}

/// All components of a running service, by name.
#[derive(Debug, Default, Clone)]
pub struct Registry {
    components: Arc<DashMap<String, Arc<Component>>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers (or returns the existing) component `name`. Components that
    /// gate readiness make `/health/ready` fail while they are not ready.
    pub fn register(&self, name: &str, kind: ComponentKind, gates_readiness: bool) -> Arc<Component> {
        self.components
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Component {
                    name: name.to_string(),
                    kind,
                    gates_readiness,
                    restarts: AtomicU64::new(0),
                    inner: Mutex::new(ComponentInner {
                        state: ComponentState::Starting,
                        since_ms: now_ms(),
                        last_error: None,
                        last_stop: None,
                        reported_stop: None,
                        status: StatusParts::default(),
                    }),
                    instance: Mutex::new(Arc::new(Progress::default())),
                    carried: Carried::default(),
                })
            })
            .clone()
    }

    /// Looks a component up.
    pub fn get(&self, name: &str) -> Option<Arc<Component>> {
        self.components.get(name).map(|c| c.clone())
    }

    /// Removes a component.
    pub fn remove(&self, name: &str) {
        self.components.remove(name);
    }

    /// Copies every entry, sorted by name.
    pub fn snapshot(&self) -> Vec<ComponentSnapshot> {
        let comps: Vec<Arc<Component>> = self.components.iter().map(|c| c.value().clone()).collect();
        let mut out: Vec<ComponentSnapshot> = comps.iter().map(|c| c.snapshot()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Components that keep the service from being ready, with the reason.
    pub fn not_ready(&self) -> Vec<(String, String)> {
        self.snapshot()
            .into_iter()
            .filter(|c| c.gates_readiness && !c.state.is_ready())
            .map(|c| {
                let state = serde_json::to_value(c.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default();
                let reason = match c.last_error {
                    Some(e) => format!("{state}: {e}"),
                    None => state,
                };
                (c.name, reason)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_serialise_as_their_labels() {
        for s in ComponentState::ALL {
            assert_eq!(serde_json::to_value(s).ok(), Some(serde_json::Value::from(s.as_str())));
        }
    }

    #[test]
    fn readiness_follows_gating_components_only() {
        let r = Registry::new();
        let a = r.register("a", ComponentKind::Source, true);
        let b = r.register("b", ComponentKind::Listener, false);
        assert_eq!(r.not_ready().len(), 1);
        a.set_state(ComponentState::Running);
        b.fail(ComponentState::Failed, "x");
        assert!(r.not_ready().is_empty());
        a.fail(ComponentState::Failed, "gave up after 5 restarts");
        let nr = r.not_ready();
        assert_eq!(nr[0].0, "a");
        assert!(nr[0].1.contains("failed: gave up"));
    }

    #[test]
    fn each_instance_reports_through_its_own_handle_and_the_old_one_is_retired() {
        let c = Registry::new().register("sink", ComponentKind::Listener, true);
        let first = c.report_progress(Duration::from_secs(5));
        first.set_busy(true);
        assert!(Arc::ptr_eq(&first, &c.progress_handle()));
        c.report_stop(StopReason::Failed { error: "x".into() });
        let second = c.begin_instance();
        assert!(first.is_retired() && !second.is_retired());
        assert_eq!(c.take_reported_stop(), None, "a new instance has reported nothing");
        // The old instance's writes no longer reach the supervisor.
        first.set_busy(false);
        first.advance();
        assert_eq!(c.progress_handle().sample(), ProgressSample { done: 0, busy: false });
        assert_eq!(second.declared_stuck_after(), None, "declared per instance");
    }

    #[test]
    fn stops_are_recorded_typed_with_the_restart_count() {
        let r = Registry::new();
        let c = r.register("pool", ComponentKind::Pool, false);
        assert_eq!(c.restarted(StopReason::Panicked { message: "boom".into() }), 1);
        let snap = &r.snapshot()[0];
        assert_eq!(snap.restarts, 1);
        assert_eq!(
            snap.last_stop.as_ref().map(|s| &s.reason),
            Some(&StopReason::Panicked { message: "boom".into() })
        );
        assert_eq!(snap.last_error.as_deref(), Some("panicked: boom"));
        c.record_stop(StopReason::Stopped);
        assert_eq!(
            c.snapshot().last_error.as_deref(),
            Some("panicked: boom"),
            "not an error"
        );
        assert_eq!(c.last_stop().map(|s| s.reason), Some(StopReason::Stopped));
    }

    #[test]
    fn status_parts_of_different_types_show_as_one_object() {
        #[derive(Serialize)]
        struct Runner {
            phase: &'static str,
            #[serde(skip_serializing_if = "Option::is_none")]
            job: Option<u32>,
        }
        #[derive(Serialize)]
        struct Transfer {
            bytes_received: u64,
        }
        let c = Registry::new().register("s", ComponentKind::Source, true);
        c.set_status(&Runner {
            phase: "paging",
            job: Some(7),
        });
        c.set_status(&Transfer { bytes_received: 10 });
        c.set_status(&Runner {
            phase: "finished",
            job: None,
        });
        assert_eq!(
            serde_json::Value::Object(c.snapshot().detail),
            serde_json::json!({"phase": "finished", "bytes_received": 10})
        );
        assert!(c.try_set_status(&1).is_err(), "a number has no fields");
        assert_eq!(c.snapshot().kind, ComponentKind::Source);
    }

    #[test]
    fn carried_values_are_shared_by_type() {
        let c = Registry::new().register("sink", ComponentKind::Listener, true);
        let a = c.carried::<Mutex<Vec<u32>>>();
        a.lock().push(1);
        assert_eq!(*c.carried::<Mutex<Vec<u32>>>().lock(), vec![1]);
        assert!(c.carried::<Mutex<Vec<u64>>>().lock().is_empty());
    }
}
