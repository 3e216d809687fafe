//! Progress reports: what lets a supervisor tell a component that is slow
//! from one that is stuck.
//!
//! The component writes (one relaxed atomic per call, no clock read); the
//! supervisor samples on its own tick and keeps the time itself. Each
//! running instance of a component gets its own [`Progress`], so an
//! instance that was given up on and wakes later cannot report for its
//! replacement.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;

/// One instance's progress: units of work done, whether it has work, and
/// whether its supervisor has given up on it.
#[derive(Debug, Default)]
pub struct Progress {
    done: AtomicU64,
    busy: AtomicBool,
    /// Declared threshold in ms; 0 while the instance does not report.
    stuck_after_ms: AtomicU64,
    retired: AtomicBool,
    on_retire: Notify,
}

/// What a supervisor reads on each check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgressSample {
    /// Units of work done so far.
    pub done: u64,
    /// Whether the instance has work it has not finished.
    pub busy: bool,
}

impl Progress {
    /// One unit of work done (a batch committed, an attempt finished).
    pub fn advance(&self) {
        self.done.fetch_add(1, Ordering::Relaxed);
    }

    /// Says whether the instance holds work. An instance that is not busy
    /// is never stuck, however long it stays silent.
    pub fn set_busy(&self, busy: bool) {
        self.busy.store(busy, Ordering::Relaxed);
    }

    /// Marks the instance not busy until the guard is dropped, then puts
    /// back what it was: for waits on work that another component has to
    /// make progress on (a full queue downstream, a store that cannot
    /// write). That component is watched for being stuck; this one is only
    /// held back by it, and replacing it would not help.
    pub fn waiting_on_others(&self) -> WaitingOnOthers<'_> {
        let was_busy = self.busy.swap(false, Ordering::Relaxed);
        WaitingOnOthers {
            progress: self,
            was_busy,
        }
    }

    /// The current counters.
    pub fn sample(&self) -> ProgressSample {
        ProgressSample {
            done: self.done.load(Ordering::Relaxed),
            busy: self.busy.load(Ordering::Relaxed),
        }
    }

    /// The threshold this instance declared, if it reports progress.
    pub fn declared_stuck_after(&self) -> Option<Duration> {
        match self.stuck_after_ms.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        }
    }

    pub(super) fn declare(&self, stuck_after: Duration) {
        // At least 1 ms: 0 means "does not report".
        let ms = u64::try_from(stuck_after.as_millis()).unwrap_or(u64::MAX).max(1);
        self.stuck_after_ms.store(ms, Ordering::Relaxed);
    }

    /// Whether the supervisor has given up on this instance (it was found
    /// stuck, or a newer instance replaced it).
    pub fn is_retired(&self) -> bool {
        self.retired.load(Ordering::Acquire)
    }

    /// Resolves once the instance is retired. A component races its
    /// long waits against this, so that an instance given up on lets go of
    /// what it holds (a hung request, an open file) instead of lingering.
    pub async fn retired(&self) {
        loop {
            // Created before the flag is read: `notify_waiters` reaches a
            // `Notified` from its creation on, so no wake-up is missed.
            let notified = self.on_retire.notified();
            if self.is_retired() {
                return;
            }
            notified.await;
        }
    }

    pub(super) fn retire(&self) {
        self.retired.store(true, Ordering::Release);
        self.on_retire.notify_waiters();
    }
}

/// A wait on other components' work; see [`Progress::waiting_on_others`].
#[derive(Debug)]
#[must_use = "the instance is busy again as soon as the guard is dropped"]
pub struct WaitingOnOthers<'a> {
    progress: &'a Progress,
    was_busy: bool,
}

impl Drop for WaitingOnOthers<'_> {
    fn drop(&mut self) {
        self.progress.set_busy(self.was_busy);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_busy_are_sampled_as_written() {
        let p = Progress::default();
        assert_eq!(p.sample(), ProgressSample { done: 0, busy: false });
        p.set_busy(true);
        p.advance();
        p.advance();
        assert_eq!(p.sample(), ProgressSample { done: 2, busy: true });
        assert_eq!(p.declared_stuck_after(), None);
        p.declare(Duration::ZERO);
        assert_eq!(p.declared_stuck_after(), Some(Duration::from_millis(1)));
    }

    #[test]
    fn a_wait_on_others_is_not_busy_and_puts_busy_back_after() {
        let p = Progress::default();
        p.set_busy(true);
        {
            let _outer = p.waiting_on_others();
            assert!(!p.sample().busy);
            {
                let _inner = p.waiting_on_others();
                assert!(!p.sample().busy);
            }
            assert!(!p.sample().busy, "still inside the outer wait");
        }
        assert!(p.sample().busy);
        p.set_busy(false);
        drop(p.waiting_on_others());
        assert!(!p.sample().busy, "not busy before, not busy after");
    }

    #[tokio::test]
    async fn retired_wakes_a_waiter_and_returns_at_once_afterwards() {
        let p = std::sync::Arc::new(Progress::default());
        let waiter = tokio::spawn({
            let p = p.clone();
            async move { p.retired().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        p.retire();
        waiter.await.expect("waiter ends");
        p.retired().await;
        assert!(p.is_retired());
    }
}
