//! Backoff schedules, in one place.
//!
//! The `backoff` crate is unmaintained (RUSTSEC-2025-0012); only its
//! `ExponentialBackoff` schedule is used, and only here, so it can be
//! replaced in this one file.

use std::time::Duration;

use backoff::backoff::Backoff as _;

/// Parameters of an exponential backoff with jitter.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffPolicy {
    /// First delay.
    pub initial: Duration,
    /// Growth factor between attempts.
    pub multiplier: f64,
    /// Largest delay.
    pub max: Duration,
    /// Jitter: each delay is drawn from `d * [1 - j, 1 + j]` (0 = none).
    /// With `full_jitter`, this is ignored and delays are drawn from `[0, d]`.
    pub randomization: f64,
    /// Draw each delay uniformly from zero to the exponential value.
    pub full_jitter: bool,
}

impl Default for BackoffPolicy {
    fn default() -> Self {
        BackoffPolicy {
            initial: Duration::from_millis(500),
            multiplier: 2.0,
            max: Duration::from_secs(30),
            randomization: 0.3,
            full_jitter: false,
        }
    }
}

impl BackoffPolicy {
    /// Exponential backoff with full jitter (AWS style) from `base` to `cap`.
    pub fn full_jitter(base: Duration, cap: Duration) -> Self {
        BackoffPolicy {
            initial: base,
            multiplier: 2.0,
            max: cap,
            randomization: 0.0,
            full_jitter: true,
        }
    }

    /// A fresh schedule.
    pub fn schedule(&self) -> Backoff {
        Backoff::new(*self)
    }
}

/// A running backoff schedule; never gives up by itself (limits are the
/// caller's, so they can be reported).
#[derive(Debug)]
pub struct Backoff {
    policy: BackoffPolicy,
    inner: backoff::ExponentialBackoff,
    attempts: u32,
}

impl Backoff {
    fn new(policy: BackoffPolicy) -> Self {
        let inner = backoff::ExponentialBackoff {
            current_interval: policy.initial,
            initial_interval: policy.initial,
            randomization_factor: if policy.full_jitter { 0.0 } else { policy.randomization },
            multiplier: policy.multiplier,
            max_interval: policy.max,
            max_elapsed_time: None,
            ..backoff::ExponentialBackoff::default()
        };
        Backoff {
            policy,
            inner,
            attempts: 0,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        self.attempts += 1;
        let d = self
            .inner
            .next_backoff()
            .unwrap_or(self.policy.max)
            .min(self.policy.max);
        if self.policy.full_jitter {
            let ms = d.as_millis() as u64;
            Duration::from_millis(if ms == 0 { 0 } else { rand::random::<u64>() % (ms + 1) })
        } else {
            d
        }
    }

    /// The un-jittered upper bound of the next delay (for tests and status).
    pub fn next_ceiling(&self) -> Duration {
        self.inner.current_interval.min(self.policy.max)
    }

    /// Delays handed out since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// Starts over from the initial delay.
    pub fn reset(&mut self) {
        self.inner.reset();
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_within_jitter_bounds_and_caps() {
        let p = BackoffPolicy {
            initial: Duration::from_millis(100),
            multiplier: 2.0,
            max: Duration::from_millis(1000),
            randomization: 0.5,
            full_jitter: false,
        };
        let mut b = p.schedule();
        let mut ceiling = 100.0;
        for _ in 0..10 {
            let d = b.next_delay().as_millis() as f64;
            assert!(
                d >= ceiling * 0.5 - 1.0 && d <= (ceiling * 1.5f64).min(1000.0) + 1.0,
                "{d} vs {ceiling}"
            );
            ceiling = (ceiling * 2.0f64).min(1000.0);
        }
        b.reset();
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn full_jitter_stays_under_the_exponential_ceiling() {
        let mut b = BackoffPolicy::full_jitter(Duration::from_secs(1), Duration::from_secs(30)).schedule();
        let mut ceiling = 1000u128;
        for _ in 0..12 {
            let d = b.next_delay().as_millis();
            assert!(d <= ceiling, "{d} > {ceiling}");
            ceiling = (ceiling * 2).min(30_000);
        }
    }
}
