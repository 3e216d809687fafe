//! The shared table of component health, read by status and readiness.
//!
//! Components write their own entry; HTTP handlers read all of them without
//! messaging any actor, so a stuck actor can never hide the status page.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;
use serde::Serialize;

use crate::event::now_ms;

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
    kind: String,
    gates_readiness: bool,
    inner: Mutex<ComponentInner>,
    restarts: AtomicU64,
}

#[derive(Debug)]
struct ComponentInner {
    state: ComponentState,
    since_ms: i64,
    last_error: Option<String>,
    detail: serde_json::Map<String, serde_json::Value>,
}

/// A serialisable copy of a component's entry.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentSnapshot {
    /// Component name.
    pub name: String,
    /// What kind of component it is (source, sink, store, ...).
    pub kind: String,
    /// Current state.
    pub state: ComponentState,
    /// Since when (ms since the epoch).
    pub since_ms: i64,
    /// Restarts so far.
    pub restarts: u64,
    /// Most recent error message.
    pub last_error: Option<String>,
    /// Whether this component's state gates readiness.
    pub gates_readiness: bool,
    /// Component-specific details.
    pub detail: serde_json::Map<String, serde_json::Value>,
}

impl Component {
    /// The component's name.
    pub fn name(&self) -> &str {
        &self.name
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

    /// Sets one detail field shown in status.
    pub fn set_detail(&self, key: &str, value: impl Into<serde_json::Value>) {
        self.inner.lock().detail.insert(key.to_string(), value.into());
    }

    /// Removes one detail field.
    pub fn remove_detail(&self, key: &str) {
        self.inner.lock().detail.remove(key);
    }

    /// A copy for serialisation.
    pub fn snapshot(&self) -> ComponentSnapshot {
        let inner = self.inner.lock();
        ComponentSnapshot {
            name: self.name.clone(),
            kind: self.kind.clone(),
            state: inner.state,
            since_ms: inner.since_ms,
            restarts: self.restarts.load(Ordering::Relaxed),
            last_error: inner.last_error.clone(),
            gates_readiness: self.gates_readiness,
            detail: inner.detail.clone(),
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
    pub fn register(&self, name: &str, kind: &str, gates_readiness: bool) -> Arc<Component> {
        self.components
            .entry(name.to_string())
            .or_insert_with(|| {
                Arc::new(Component {
                    name: name.to_string(),
                    kind: kind.to_string(),
                    gates_readiness,
                    restarts: AtomicU64::new(0),
                    inner: Mutex::new(ComponentInner {
                        state: ComponentState::Starting,
                        since_ms: now_ms(),
                        last_error: None,
                        detail: serde_json::Map::new(),
                    }),
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
    fn readiness_follows_gating_components_only() {
        let r = Registry::new();
        let a = r.register("a", "source", true);
        let b = r.register("b", "sink", false);
        assert_eq!(r.not_ready().len(), 1);
        a.set_state(ComponentState::Running);
        b.fail(ComponentState::Failed, "x");
        assert!(r.not_ready().is_empty());
        a.fail(ComponentState::Failed, "gave up after 5 restarts");
        let nr = r.not_ready();
        assert_eq!(nr[0].0, "a");
        assert!(nr[0].1.contains("failed: gave up"));
    }
}
