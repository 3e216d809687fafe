//! What kind of thing a component is: a closed set, so that `/status`,
//! the `kind` label of readiness metrics and the supervisor's "stop every
//! child of a kind" all agree on the spelling.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The kind of a component, shown in `/status` and as the `kind` label of
/// `cxrelay_component_ready` (serialised in snake_case).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// Something that produces events (and each part it supervises
    /// separately, such as a notification channel).
    Source,
    /// A consumer of routed events (a sink behind a bounded queue).
    Listener,
    /// The router between producers and listeners.
    Router,
    /// Durable storage (the journal and its tables).
    Store,
    /// A pool of CPU workers.
    Pool,
    /// Credentials for an upstream service.
    Auth,
    /// A stand-in for an upstream service run in-process.
    Emulator,
    /// The process as a whole (its start-up, which gates readiness until
    /// every part is in place).
    Service,
}

impl ComponentKind {
    /// Every kind, in declaration order.
    pub const ALL: [ComponentKind; 8] = [
        ComponentKind::Source,
        ComponentKind::Listener,
        ComponentKind::Router,
        ComponentKind::Store,
        ComponentKind::Pool,
        ComponentKind::Auth,
        ComponentKind::Emulator,
        ComponentKind::Service,
    ];

    /// The kind as written in `/status` and metric labels.
    pub const fn as_str(self) -> &'static str {
        match self {
            ComponentKind::Source => "source",
            ComponentKind::Listener => "listener",
            ComponentKind::Router => "router",
            ComponentKind::Store => "store",
            ComponentKind::Pool => "pool",
            ComponentKind::Auth => "auth",
            ComponentKind::Emulator => "emulator",
            ComponentKind::Service => "service",
        }
    }
}

impl fmt::Display for ComponentKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_as_its_label() {
        for k in ComponentKind::ALL {
            assert_eq!(serde_json::to_value(k).ok(), Some(serde_json::Value::from(k.as_str())));
            assert_eq!(k.to_string(), k.as_str());
        }
    }
}
