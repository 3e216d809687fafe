//! Stuck detection: a child that holds work and makes no progress for a
//! while is treated like one that died.
//!
//! The supervisor keeps the clock: the child only bumps a counter and says
//! whether it is busy, and each check compares the counter with the last
//! one seen. Silence therefore counts from the last check that saw
//! progress, or saw the child idle; its precision is one check interval.

use std::time::Duration;

use tokio::time::Instant;

use crate::registry::ProgressSample;

/// When a running child counts as stuck.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StuckCheck {
    /// As the child's component declares with
    /// [`crate::registry::Component::report_progress`]; never for a child
    /// that does not report progress.
    #[default]
    AsReported,
    /// Never.
    Off,
    /// After this long without progress while it has work (whatever the
    /// component declares).
    After(Duration),
}

impl StuckCheck {
    /// The threshold in force, given what the running instance declared.
    pub fn threshold(self, declared: Option<Duration>) -> Option<Duration> {
        match self {
            StuckCheck::AsReported => declared,
            StuckCheck::Off => None,
            StuckCheck::After(d) => Some(d),
        }
    }
}

/// What the supervisor remembers of one child's progress between checks.
#[derive(Debug, Clone, Copy)]
pub(super) struct ProgressWatch {
    last_done: u64,
    /// The last check that saw progress, or saw the child without work.
    quiet_since: Instant,
}

impl ProgressWatch {
    /// A watch for an instance that starts now.
    pub(super) fn new(now: Instant) -> Self {
        ProgressWatch {
            last_done: 0,
            quiet_since: now,
        }
    }

    /// Takes one sample; answers how long the child has been silent while
    /// busy, once that reaches `stuck_after`.
    pub(super) fn observe(
        &mut self,
        sample: ProgressSample,
        now: Instant,
        stuck_after: Option<Duration>,
    ) -> Option<Duration> {
        if sample.done != self.last_done || !sample.busy {
            self.last_done = sample.done;
            self.quiet_since = now;
            return None;
        }
        let silent = now.saturating_duration_since(self.quiet_since);
        stuck_after.filter(|limit| silent >= *limit).map(|_| silent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(done: u64) -> ProgressSample {
        ProgressSample { done, busy: true }
    }

    const LIMIT: Option<Duration> = Some(Duration::from_secs(3));

    #[test]
    fn silence_while_busy_is_stuck_once_it_reaches_the_limit() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = ProgressWatch::new(t0);
        assert_eq!(w.observe(busy(0), at(1), LIMIT), None);
        assert_eq!(w.observe(busy(0), at(2), LIMIT), None);
        assert_eq!(w.observe(busy(0), at(3), LIMIT), Some(Duration::from_secs(3)));
    }

    #[test]
    fn progress_restarts_the_count() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = ProgressWatch::new(t0);
        assert_eq!(w.observe(busy(0), at(2), LIMIT), None);
        assert_eq!(w.observe(busy(1), at(4), LIMIT), None);
        assert_eq!(w.observe(busy(1), at(6), LIMIT), None, "2 s since progress");
        assert_eq!(w.observe(busy(1), at(7), LIMIT), Some(Duration::from_secs(3)));
    }

    #[test]
    fn an_idle_child_is_never_stuck_and_its_silence_counts_from_when_work_came() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut w = ProgressWatch::new(t0);
        let idle = ProgressSample { done: 0, busy: false };
        for s in 1..100 {
            assert_eq!(w.observe(idle, at(s), LIMIT), None);
        }
        // Silence counts from the last check that saw it idle (99).
        assert_eq!(w.observe(busy(0), at(100), LIMIT), None, "just got work");
        assert_eq!(w.observe(busy(0), at(101), LIMIT), None);
        assert_eq!(w.observe(busy(0), at(102), LIMIT), Some(Duration::from_secs(3)));
    }

    #[test]
    fn no_threshold_means_never_stuck() {
        let t0 = Instant::now();
        let mut w = ProgressWatch::new(t0);
        assert_eq!(w.observe(busy(0), t0 + Duration::from_secs(3600), None), None);
        assert_eq!(StuckCheck::AsReported.threshold(None), None);
        assert_eq!(StuckCheck::Off.threshold(LIMIT), None);
        assert_eq!(
            StuckCheck::After(Duration::from_secs(1)).threshold(LIMIT),
            Some(Duration::from_secs(1))
        );
        assert_eq!(StuckCheck::AsReported.threshold(LIMIT), LIMIT);
    }
}
