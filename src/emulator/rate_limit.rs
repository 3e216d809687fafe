//! The platform's request limit: a fixed one-minute window per OAuth
//! client, with the `inin-ratelimit-*` headers on every answer and 429 with
//! `Retry-After` once the window's allowance is used.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

const WINDOW: Duration = Duration::from_secs(60);

/// Where a request stands in its client's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateState {
    /// Requests allowed per window.
    pub allowed: u32,
    /// Requests counted in this window, this one included.
    pub count: u32,
    /// Seconds until the window resets.
    pub reset_s: u64,
    /// Whether this request is over the limit.
    pub exceeded: bool,
}

/// Per-client windows.
#[derive(Debug)]
pub struct RateLimiter {
    per_minute: u32,
    windows: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// A limit of `per_minute` (0: none).
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts a request of `client` now.
    pub fn count(&self, client: &str) -> RateState {
        let now = Instant::now();
        let mut w = self.windows.lock();
        let entry = w.entry(client.to_string()).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        let reset = WINDOW.saturating_sub(now.duration_since(entry.0));
        RateState {
            allowed: self.per_minute,
            count: entry.1,
            reset_s: reset.as_secs_f64().ceil() as u64,
            exceeded: self.per_minute > 0 && entry.1 > self.per_minute,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn over_the_allowance_is_exceeded_per_client() {
        let r = RateLimiter::new(2);
        assert!(!r.count("a").exceeded);
        assert!(!r.count("a").exceeded);
        let third = r.count("a");
        assert!(third.exceeded && third.count == 3 && third.reset_s <= 60);
        assert!(!r.count("b").exceeded);
        assert!(!RateLimiter::new(0).count("a").exceeded);
    }
}
