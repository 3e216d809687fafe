//! The HTTP sink's circuit breaker: after `threshold` consecutive failed
//! requests the sink stops sending for a cool-down, then lets one trial
//! request through; its success closes the breaker, its failure opens it
//! for another cool-down. A small named policy with the clock passed in,
//! so that it is tested without waiting.

use std::time::{Duration, Instant};

/// Consecutive failures and whether the breaker is open.
#[derive(Debug)]
pub struct Breaker {
    /// Failures in a row that open it (0: never opens).
    threshold: u32,
    cooldown: Duration,
    failures: u32,
    /// Open until then; a request after it is the trial.
    open_until: Option<Instant>,
}

impl Breaker {
    /// A closed breaker opening after `threshold` failures in a row
    /// (never when 0) for `cooldown`.
    pub fn new(threshold: u32, cooldown: Duration) -> Self {
        Breaker {
            threshold,
            cooldown,
            failures: 0,
            open_until: None,
        }
    }

    /// How long requests must still wait (`None`: one may go now; after a
    /// cool-down, that one is the trial).
    pub fn blocked_for(&self, now: Instant) -> Option<Duration> {
        self.open_until.filter(|until| *until > now).map(|until| until - now)
    }

    /// Whether it is open (or half-open, waiting for its trial's answer).
    pub fn is_open(&self) -> bool {
        self.open_until.is_some()
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }

    /// A request succeeded (or got an answer that says the target is up):
    /// closes the breaker. Answers whether it was open.
    pub fn success(&mut self) -> bool {
        self.failures = 0;
        self.open_until.take().is_some()
    }

    /// A request failed: answers the cool-down when this failure opens the
    /// breaker (the threshold reached, or the trial failed).
    pub fn failure(&mut self, now: Instant) -> Option<Duration> {
        self.failures = self.failures.saturating_add(1);
        if self.threshold == 0 || (self.failures < self.threshold && self.open_until.is_none()) {
            return None;
        }
        self.open_until = Some(now + self.cooldown);
        Some(self.cooldown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_lets_one_trial_through_and_closes_on_its_success() {
        let t0 = Instant::now();
        let cool = Duration::from_secs(30);
        let mut b = Breaker::new(3, cool);
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.failure(t0), None);
        assert_eq!(b.blocked_for(t0), None);
        assert_eq!(b.failure(t0), Some(cool), "third failure in a row opens it");
        assert!(b.is_open());
        assert_eq!(
            b.blocked_for(t0 + Duration::from_secs(10)),
            Some(Duration::from_secs(20))
        );
        // Cool-down over: the trial may go; it fails and opens it again.
        let t1 = t0 + cool;
        assert_eq!(b.blocked_for(t1), None);
        assert_eq!(b.failure(t1), Some(cool));
        assert_eq!(
            b.blocked_for(t1 + Duration::from_secs(1)),
            Some(Duration::from_secs(29))
        );
        // The next trial succeeds: closed, count reset.
        assert!(b.success());
        assert!(!b.is_open());
        assert_eq!(b.failure(t1 + cool), None);
        assert!(!b.success(), "was closed");
    }

    #[test]
    fn a_success_in_between_resets_the_count_and_zero_never_opens() {
        let t0 = Instant::now();
        let mut b = Breaker::new(2, Duration::from_secs(1));
        assert_eq!(b.failure(t0), None);
        b.success();
        assert_eq!(b.failure(t0), None);
        let mut off = Breaker::new(0, Duration::from_secs(1));
        for _ in 0..100 {
            assert_eq!(off.failure(t0), None);
        }
        assert_eq!(off.failures(), 100);
    }
}
