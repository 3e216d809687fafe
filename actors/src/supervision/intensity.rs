use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// At most `max_restarts` restarts within `within`; one more failure in that
/// window means the child is failing for good.
#[derive(Debug, Clone)]
pub struct RestartIntensity {
    max_restarts: u32,
    within: Duration,
    recent: VecDeque<Instant>,
}

impl RestartIntensity {
    /// A limit of `max_restarts` in `within`.
    pub fn new(max_restarts: u32, within: Duration) -> Self {
        RestartIntensity {
            max_restarts,
            within,
            recent: VecDeque::new(),
        }
    }

    /// Records a failure at `now`; answers whether a restart is allowed.
    pub fn allow_restart(&mut self, now: Instant) -> bool {
        while let Some(first) = self.recent.front() {
            if now.duration_since(*first) > self.within {
                self.recent.pop_front();
            } else {
                break;
            }
        }
        if self.recent.len() as u32 >= self.max_restarts {
            return false;
        }
        self.recent.push_back(now);
        true
    }

    /// Restarts counted in the current window.
    pub fn recent(&self) -> usize {
        self.recent.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_n_restarts_in_the_window_then_refuses() {
        let t0 = Instant::now();
        let mut i = RestartIntensity::new(3, Duration::from_secs(10));
        for k in 0..3 {
            assert!(i.allow_restart(t0 + Duration::from_secs(k)));
        }
        assert!(!i.allow_restart(t0 + Duration::from_secs(4)));
    }

    #[test]
    fn old_failures_leave_the_window() {
        let t0 = Instant::now();
        let mut i = RestartIntensity::new(2, Duration::from_secs(5));
        assert!(i.allow_restart(t0));
        assert!(i.allow_restart(t0 + Duration::from_secs(1)));
        assert!(!i.allow_restart(t0 + Duration::from_secs(4)));
        // Both early failures are older than 5 s at t0 + 7.
        assert!(i.allow_restart(t0 + Duration::from_secs(7)));
        assert_eq!(i.recent(), 1);
    }
}
