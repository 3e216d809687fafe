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
        self.undrained(timeout, |_| true, |_| false).await.is_empty()
    }

    /// Waits until every `block` queue has drained (lossy listeners may
    /// give up what they hold: they declared so).
    pub async fn lossless_drained(&self, timeout: Duration) -> bool {
        self.lossless_undrained(timeout, |_| false).await.is_empty()
    }

    /// Waits until every `block` queue has drained or `timeout` passes,
    /// no longer waiting for a listener once `give_up` says so of its name
    /// (asked as it waits); answers the `block` listeners left with events,
    /// by name.
    pub async fn lossless_undrained(&self, timeout: Duration, give_up: impl Fn(&str) -> bool) -> Vec<String> {
        self.undrained(timeout, |p| p.is_lossless(), give_up).await
    }

    async fn undrained(
        &self,
        timeout: Duration,
        which: impl Fn(WhenFull) -> bool,
        give_up: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let busy: Vec<String> = self
                .entries
                .iter()
                .filter(|e| which(e.when_full) && !e.stats.is_idle())
                .map(|e| e.name.clone())
                .collect();
            if busy.iter().all(|name| give_up(name)) || Instant::now() >= deadline {
                return busy;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}
