//! What the emulator did on each channel (events sent and missed, socket
//! connects and closes, fault frames), kept after the channel is gone.

use std::sync::atomic::{AtomicU64, Ordering};

use cxrelay_actors::event::now_ms;
use parking_lot::Mutex;
use serde::Serialize;

/// Socket closes remembered per channel.
const CLOSES_KEPT: usize = 1000;

/// How a socket ended, as the emulator ended it (or saw it end).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct CloseRecord {
    /// Close code sent (`None`: dropped without a close frame, or closed by
    /// the client).
    pub code: Option<u16>,
    /// Why.
    pub reason: String,
    /// When (ms since the epoch).
    pub at_ms: i64,
}

#[derive(Debug, Default)]
struct RecordInner {
    run: u64,
    delivered: Vec<(u64, u64)>,
    delivered_count: u64,
    missed: Vec<u64>,
    missed_count: u64,
    truncated: bool,
    closes: Vec<CloseRecord>,
    connected_at_ms: Vec<i64>,
}

/// What the emulator did on one channel: which traffic events it sent on
/// an open socket (with the send time) and which it could not send, socket
/// connects and closes, and the frames its faults produced. Tests assert
/// on it ("every event sent while a socket was up arrived exactly once").
#[derive(Debug)]
pub struct ChannelRecord {
    /// The channel id.
    pub id: String,
    limit: usize,
    inner: Mutex<RecordInner>,
    connects: AtomicU64,
    heartbeats: AtomicU64,
    pongs: AtomicU64,
    malformed: AtomicU64,
    fragmented: AtomicU64,
    orders: AtomicU64,
}

/// A copy of a [`ChannelRecord`] for the current traffic run.
#[derive(Debug, Clone, Serialize)]
pub struct RecordSnapshot {
    /// The channel id.
    pub id: String,
    /// The traffic run these events belong to.
    pub run: u64,
    /// Indices (in the run) of events sent on an open socket, in order.
    pub delivered: Vec<u64>,
    /// Send time of each, in µs since the epoch.
    pub delivered_at_us: Vec<u64>,
    /// How many were sent (also beyond `record_limit`).
    pub delivered_count: u64,
    /// Indices of events for this channel that found no open socket (or a
    /// silenced one, or one that closed before sending them).
    pub missed: Vec<u64>,
    /// How many were missed.
    pub missed_count: u64,
    /// True once `record_limit` was reached (lists are incomplete).
    pub truncated: bool,
    /// Sockets accepted.
    pub connects: u64,
    /// Heartbeats sent.
    pub heartbeats: u64,
    /// Pongs sent.
    pub pongs: u64,
    /// Malformed frames sent.
    pub malformed_sent: u64,
    /// Events sent fragmented.
    pub fragmented_sent: u64,
    /// Fault orders (close, silence, malformed or fragmented frames, ...)
    /// this channel's sockets have taken: a test waits on it, not on time,
    /// for an injected fault to reach the socket.
    pub orders_taken: u64,
    /// How sockets ended.
    pub closes: Vec<CloseRecord>,
    /// When sockets were accepted (ms since the epoch).
    pub connected_at_ms: Vec<i64>,
}

impl ChannelRecord {
    pub(super) fn new(id: &str, limit: usize) -> Self {
        ChannelRecord {
            id: id.to_string(),
            limit,
            inner: Mutex::new(RecordInner::default()),
            connects: AtomicU64::new(0),
            heartbeats: AtomicU64::new(0),
            pongs: AtomicU64::new(0),
            malformed: AtomicU64::new(0),
            fragmented: AtomicU64::new(0),
            orders: AtomicU64::new(0),
        }
    }

    fn inner_for(&self, run: u64) -> parking_lot::MutexGuard<'_, RecordInner> {
        let mut g = self.inner.lock();
        if g.run != run {
            // A new run starts a new record (indices are per run).
            let closes = std::mem::take(&mut g.closes);
            let connected_at_ms = std::mem::take(&mut g.connected_at_ms);
            *g = RecordInner {
                run,
                closes,
                connected_at_ms,
                ..RecordInner::default()
            };
        }
        g
    }

    /// Events of `run` sent on an open socket: `(index, sent at µs)`.
    pub(super) fn delivered(&self, run: u64, sent: &[(u64, u64)]) {
        let mut g = self.inner_for(run);
        g.delivered_count += sent.len() as u64;
        let room = self.limit.saturating_sub(g.delivered.len());
        if room < sent.len() {
            g.truncated = true;
        }
        g.delivered.extend_from_slice(&sent[..room.min(sent.len())]);
    }

    /// Events of `run` that could not be sent.
    pub(super) fn missed(&self, run: u64, indices: impl IntoIterator<Item = u64>) {
        let mut g = self.inner_for(run);
        for i in indices {
            g.missed_count += 1;
            if g.missed.len() < self.limit {
                g.missed.push(i);
            } else {
                g.truncated = true;
            }
        }
    }

    pub(super) fn closed(&self, code: Option<u16>, reason: &str) {
        let mut g = self.inner.lock();
        if g.closes.len() >= CLOSES_KEPT {
            g.closes.remove(0);
        }
        g.closes.push(CloseRecord {
            code,
            reason: reason.to_string(),
            at_ms: now_ms(),
        });
    }

    pub(super) fn connected(&self) {
        self.connects.fetch_add(1, Ordering::Relaxed);
        let mut g = self.inner.lock();
        if g.connected_at_ms.len() >= CLOSES_KEPT {
            g.connected_at_ms.remove(0);
        }
        g.connected_at_ms.push(now_ms());
    }

    pub(super) fn count_heartbeat(&self) {
        self.heartbeats.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn count_pong(&self) {
        self.pongs.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn count_malformed(&self) {
        self.malformed.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn count_fragmented(&self) {
        self.fragmented.fetch_add(1, Ordering::Relaxed);
    }
    pub(super) fn count_order(&self) {
        self.orders.fetch_add(1, Ordering::Relaxed);
    }

    /// A copy, for the current run.
    pub fn snapshot(&self) -> RecordSnapshot {
        let g = self.inner.lock();
        RecordSnapshot {
            id: self.id.clone(),
            run: g.run,
            delivered: g.delivered.iter().map(|d| d.0).collect(),
            delivered_at_us: g.delivered.iter().map(|d| d.1).collect(),
            delivered_count: g.delivered_count,
            missed: g.missed.clone(),
            missed_count: g.missed_count,
            truncated: g.truncated,
            connects: self.connects.load(Ordering::Relaxed),
            heartbeats: self.heartbeats.load(Ordering::Relaxed),
            pongs: self.pongs.load(Ordering::Relaxed),
            malformed_sent: self.malformed.load(Ordering::Relaxed),
            fragmented_sent: self.fragmented.load(Ordering::Relaxed),
            orders_taken: self.orders.load(Ordering::Relaxed),
            closes: g.closes.clone(),
            connected_at_ms: g.connected_at_ms.clone(),
        }
    }
}
