//! The router actor: fans published events out to listeners by topic.

mod directory;
mod messages;
mod pump;
#[allow(clippy::module_inception)]
mod router;

pub use directory::ListenerDirectory;
pub use messages::{
    AckHandle, Deliver, Drain, ListListeners, ListenerGone, ListenerId, ListenerInfo, Publish, PublishOutcome,
    PublishTo, Subscribe, Subscription, Unsubscribe,
};
pub use router::{Router, RouterStats, RouterStatsSnapshot};
