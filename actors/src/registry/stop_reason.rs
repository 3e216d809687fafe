//! Why a component (or a part of it) last stopped, as a typed value that
//! `/status` shows and tests can match on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why an instance stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum StopReason {
    /// A panic the runtime caught, with its message.
    Panicked {
        /// The panic's message.
        message: String,
    },
    /// No progress while it held work, for this long.
    Stuck {
        /// How long it had been silent when it was given up on (ms).
        silent_for_ms: u64,
    },
    /// It stopped on an error it reported.
    Failed {
        /// The error.
        error: String,
    },
    /// It went away without saying why (an uncaught panic in a handler, or
    /// a stop nobody asked for).
    Exited,
    /// Stopped on purpose.
    Stopped,
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::Panicked { message } => write!(f, "panicked: {message}"),
            StopReason::Stuck { silent_for_ms } => {
                write!(f, "stuck: no progress for {silent_for_ms} ms while holding work")
            }
            StopReason::Failed { error } => write!(f, "failed: {error}"),
            StopReason::Exited => f.write_str("stopped unexpectedly (uncaught panic or stop)"),
            StopReason::Stopped => f.write_str("stopped on purpose"),
        }
    }
}

/// The last stop of a component, as shown in its status entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastStop {
    /// Why.
    #[serde(flatten)]
    pub reason: StopReason,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialises_with_a_snake_case_tag_next_to_its_fields() {
        let stop = LastStop {
            reason: StopReason::Stuck { silent_for_ms: 1500 },
            at_ms: 7,
        };
        let v = serde_json::to_value(&stop).expect("serialisable");
        assert_eq!(
            v,
            serde_json::json!({"reason": "stuck", "silent_for_ms": 1500, "at_ms": 7})
        );
        let back: LastStop = serde_json::from_value(v).expect("round trip");
        assert_eq!(back, stop);
        let v = serde_json::to_value(StopReason::Panicked { message: "x".into() }).expect("serialisable");
        assert_eq!(v, serde_json::json!({"reason": "panicked", "message": "x"}));
        assert_eq!(
            serde_json::to_value(StopReason::Exited).expect("serialisable"),
            serde_json::json!({"reason": "exited"})
        );
    }
}
