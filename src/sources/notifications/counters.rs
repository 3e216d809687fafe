//! Counters of one channel, shared by its sockets (which count) and its
//! actor (which publishes them to `/status` and `/metrics` once a second),
//! so the hot path pays an atomic add, not a message.

use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use serde_json::{json, Value};

use super::frames::{MalformedReason, SystemMessage};

/// What a channel's sockets saw and did.
#[derive(Debug, Default)]
pub struct ChannelCounters {
    /// Frames read (any kind).
    pub frames: AtomicU64,
    /// Bytes of frames read.
    pub bytes: AtomicU64,
    /// Events handed to ingest.
    pub events: AtomicU64,
    /// Events ingest accepted (durable, with the journal on).
    pub committed: AtomicU64,
    /// Events ingest dropped as duplicates.
    pub duplicates: AtomicU64,
    /// Events ingest refused after they were read (the store failed while
    /// holding them, or cxrelay was stopping): lost.
    pub lost: AtomicU64,
    /// Heartbeats consumed.
    pub heartbeats: AtomicU64,
    /// Pongs consumed.
    pub pongs: AtomicU64,
    /// Pings sent.
    pub pings: AtomicU64,
    /// `v2.system.socket_closing` announcements.
    pub socket_closing: AtomicU64,
    /// Malformed frames, by [`MalformedReason::index`].
    pub malformed: [AtomicU64; MalformedReason::ALL.len()],
    /// `v2.system.*` messages, by kind.
    pub system: [AtomicU64; SystemMessage::ALL.len()],
    /// Malformed frames kept in dead letters.
    pub dead_lettered: AtomicU64,
    /// Malformed frames that could not be kept (no journal, or the store
    /// refused them): counted and logged only.
    pub dead_letters_failed: AtomicU64,
    /// The last ingest or dead-letter error.
    pub last_error: Mutex<Option<String>>,
}

impl ChannelCounters {
    /// Adds `n` to a counter.
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Reads a counter.
    pub fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }

    /// Counts a malformed frame.
    pub fn malformed(&self, reason: MalformedReason) {
        Self::add(&self.malformed[reason.index()], 1);
    }

    /// Malformed frames, all reasons.
    pub fn malformed_total(&self) -> u64 {
        self.malformed.iter().map(Self::get).sum()
    }

    /// For `/status`.
    pub fn to_json(&self) -> Value {
        let malformed: serde_json::Map<String, Value> = MalformedReason::ALL
            .iter()
            .map(|r| (r.as_str().to_string(), json!(Self::get(&self.malformed[r.index()]))))
            .collect();
        json!({
            "frames": Self::get(&self.frames),
            "bytes": Self::get(&self.bytes),
            "events": Self::get(&self.events),
            "committed": Self::get(&self.committed),
            "duplicates": Self::get(&self.duplicates),
            "lost": Self::get(&self.lost),
            "heartbeats": Self::get(&self.heartbeats),
            "pongs": Self::get(&self.pongs),
            "pings": Self::get(&self.pings),
            "socket_closing": Self::get(&self.socket_closing),
            "malformed": malformed,
            "system_messages": SystemMessage::ALL
                .iter()
                .map(|k| (k.as_str().to_string(), json!(Self::get(&self.system[k.index()]))))
                .collect::<serde_json::Map<String, Value>>(),
            "malformed_total": self.malformed_total(),
            "dead_lettered": Self::get(&self.dead_lettered),
            "dead_letters_failed": Self::get(&self.dead_letters_failed),
        })
    }
}
