//! What the channel table, the traffic generator and faults hand a
//! channel's socket.

use std::time::Duration;

/// Traffic events for one socket: `(index in the run, frame)`.
pub(super) struct Outgoing {
    /// The traffic run.
    pub run: u64,
    /// The events.
    pub events: Vec<(u64, String)>,
}

/// What the table or a fault tells a socket to do.
#[derive(Debug, Clone)]
pub(super) enum SocketOrder {
    /// Close with this code.
    Close(u16),
    /// End without a close frame.
    Drop,
    /// Send nothing more (no events, heartbeats or pongs).
    Silence,
    /// Announce maintenance, close after the grace.
    Closing(Duration),
    /// The channel expired or was expired by a fault: close with 1008.
    Expired,
    /// The channel was evicted (client over its channel limit): 1008.
    Evicted,
    /// Another socket connected to the channel.
    Replaced,
    /// Interleave this many malformed frames.
    Malformed(u32),
    /// Send this many events fragmented.
    Fragment(u32),
    /// Send this `v2.system.*` frame.
    System(String),
}
