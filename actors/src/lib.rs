//! The domain-free actor runtime under cxrelay.
//!
//! Events flow from publishers through a [`router::Router`] actor into
//! bounded per-listener queues, and from there to listener actors. The
//! runtime also supervises actors (restart with backoff and an intensity
//! limit) and runs CPU work on a recycling [`pool::WorkerPool`]. Nothing
//! here knows where events come from or where they go.

pub mod event;
pub mod pool;
pub mod queue;
pub mod registry;
pub mod retry;
pub mod router;
pub mod supervision;
pub mod topic;

pub use event::{Event, EventBuilder};
pub use queue::{QueueStats, WhenFull};
pub use registry::{ComponentKind, ComponentState, Registry};
pub use router::{Deliver, ListenerId, Publish, Router, Subscribe, Unsubscribe};
pub use topic::{Pattern, PatternError};
