//! What a generator shows in `/status` (it has no metrics of its own: its
//! events are counted by the router and the listeners).

use serde::Serialize;

/// A generator's `/status` details, published after each batch ingest
/// accepts and when it has emitted its `count`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct GeneratorStatus {
    /// The number of the next event: every event below it is committed.
    pub emitted: u64,
    /// Whether it has emitted its `count` and stopped.
    pub finished: bool,
}
