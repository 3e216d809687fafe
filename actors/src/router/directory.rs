//! A shared, read-only view of the router's listeners, for status and
//! shutdown. The router owns and updates it; readers never message the
//! router, so they get an answer even while the router waits on a full
//! `block` listener.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;

use super::messages::{ListenerId, ListenerInfo};
use crate::queue::{QueueStats, WhenFull};

pub(super) struct Entry {
    pub(super) name: String,
    pub(super) patterns: Vec<String>,
    pub(super) when_full: WhenFull,
    pub(super) stats: Arc<QueueStats>,
    pub(super) orphaned: AtomicBool,
}

/// The listeners of a router, by id.
#[derive(Clone, Default)]
pub struct ListenerDirectory {
    pub(super) entries: Arc<DashMap<ListenerId, Entry>>,
}

impl ListenerDirectory {
    /// Every listener, ordered by id.
    pub fn list(&self) -> Vec<ListenerInfo> {
        let mut out: Vec<ListenerInfo> = self
            .entries
            .iter()
            .map(|e| ListenerInfo {
                id: *e.key(),
                name: e.name.clone(),
                patterns: e.patterns.clone(),
                when_full: e.when_full,
                orphaned: e.orphaned.load(Ordering::Relaxed),
                queue: e.stats.snapshot(),
            })
            .collect();
        out.sort_by_key(|l| l.id);
        out
    }

    /// Waits until every queue is empty and nothing is in flight, or
    /// `timeout` passes; answers whether everything drained.
    pub async fn drained(&self, timeout: Duration) -> bool {
        self.drained_where(timeout, |_| true).await
    }

    /// Waits until every `block` queue has drained (lossy listeners may
    /// give up what they hold: they declared so).
    pub async fn lossless_drained(&self, timeout: Duration) -> bool {
        self.drained_where(timeout, |p| p.is_lossless()).await
    }

    async fn drained_where(&self, timeout: Duration, which: impl Fn(WhenFull) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let stats: Vec<Arc<QueueStats>> = self
                .entries
                .iter()
                .filter(|e| which(e.when_full))
                .map(|e| e.stats.clone())
                .collect();
            if stats.iter().all(|s| s.is_idle()) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
