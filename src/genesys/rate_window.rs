//! The platform's own account of a client's request window, from the
//! `inin-ratelimit-allowed`, `-count` and `-reset` headers of every API
//! answer, and what the shared budget does with it: the platform counts
//! every request of the OAuth client (other processes, other tools with the
//! same client), which our budget cannot see.

use std::time::Duration;

/// Where the client stands in the platform's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlatformWindow {
    /// Requests allowed per window.
    pub allowed: u32,
    /// Requests counted in the window so far.
    pub count: u32,
    /// Time until the window resets.
    pub reset: Duration,
}

impl PlatformWindow {
    /// Reads the three headers (`header` looks one up by name); `None`
    /// unless all three are numbers and a limit is stated (an `allowed` of
    /// 0 states none).
    pub fn from_headers<'h>(header: impl Fn(&str) -> Option<&'h [u8]>) -> Option<Self> {
        let number = |name: &str| -> Option<u64> { std::str::from_utf8(header(name)?).ok()?.trim().parse().ok() };
        let allowed = u32::try_from(number("inin-ratelimit-allowed")?).ok()?;
        // A count past u32 is simply "everything used".
        let count = u32::try_from(number("inin-ratelimit-count")?).unwrap_or(u32::MAX);
        let reset = Duration::from_secs(number("inin-ratelimit-reset")?);
        (allowed > 0).then_some(PlatformWindow { allowed, count, reset })
    }

    /// Requests left in the window.
    pub fn remaining(&self) -> u32 {
        self.allowed.saturating_sub(self.count)
    }
}

/// What the budget does after an answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Adjust {
    /// The platform allows at least what our budget would send before the
    /// window resets: our own rate holds.
    Free,
    /// Fewer requests are left than our budget would send: at most one per
    /// `spacing` until `for_` has passed (the window's reset).
    Pace {
        /// Time between two requests.
        spacing: Duration,
        /// How long.
        for_: Duration,
    },
    /// Nothing is left: no request until the window resets.
    Close(Duration),
}

/// What a window means for a budget sending `per_second` requests: slow
/// down to what the platform says is left, never faster than our own rate
/// (the budget's own limiter still applies on top).
pub fn adjust(window: PlatformWindow, per_second: f64, longest: Duration) -> Adjust {
    let reset = window.reset.min(longest);
    if reset.is_zero() {
        // The window is resetting now: whatever it said is stale.
        return Adjust::Free;
    }
    let remaining = window.remaining();
    if remaining == 0 {
        return Adjust::Close(reset);
    }
    let ours = per_second * reset.as_secs_f64();
    if f64::from(remaining) >= ours {
        return Adjust::Free;
    }
    Adjust::Pace {
        spacing: reset / remaining,
        for_: reset,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(allowed: &str, count: &str, reset: &str) -> Option<PlatformWindow> {
        PlatformWindow::from_headers(|name| match name {
            "inin-ratelimit-allowed" => Some(allowed.as_bytes()),
            "inin-ratelimit-count" => Some(count.as_bytes()),
            "inin-ratelimit-reset" => Some(reset.as_bytes()),
            _ => None,
        })
    }

    #[test]
    fn headers_are_read_only_when_all_three_are_numbers_and_a_limit_is_stated() {
        let w = window("300", "12", "41").unwrap();
        assert_eq!(
            (w.allowed, w.count, w.reset, w.remaining()),
            (300, 12, Duration::from_secs(41), 288)
        );
        assert_eq!(window("300", "400", "5").unwrap().remaining(), 0);
        assert_eq!(window("300", "99999999999", "5").unwrap().remaining(), 0);
        assert_eq!(window("0", "12", "41"), None, "no limit stated");
        assert_eq!(window("300", "x", "41"), None);
        assert_eq!(window("300", "1", "-1"), None);
        assert_eq!(PlatformWindow::from_headers(|_| None), None);
    }

    #[test]
    fn the_budget_slows_to_what_the_platform_says_and_never_speeds_up() {
        let cap = Duration::from_secs(300);
        let w = |allowed, count, reset| PlatformWindow {
            allowed,
            count,
            reset: Duration::from_secs(reset),
        };
        // 5/s for 60 s is 300: 288 left is fewer, so 288 spread over 60 s.
        assert_eq!(
            adjust(w(300, 12, 60), 5.0, cap),
            Adjust::Pace {
                spacing: Duration::from_secs(60) / 288,
                for_: Duration::from_secs(60)
            }
        );
        // More left than we would send: our rate holds (never faster).
        assert_eq!(adjust(w(300, 12, 30), 5.0, cap), Adjust::Free);
        assert_eq!(adjust(w(1000, 0, 60), 5.0, cap), Adjust::Free);
        // Someone else used the window up: closed until it resets.
        assert_eq!(
            adjust(w(300, 300, 17), 5.0, cap),
            Adjust::Close(Duration::from_secs(17))
        );
        // A reset past any sane window is capped; a zero reset is stale.
        assert_eq!(adjust(w(300, 300, 100_000), 5.0, cap), Adjust::Close(cap));
        assert_eq!(adjust(w(300, 300, 0), 5.0, cap), Adjust::Free);
        // A few left for a long wait: long spacing, never zero.
        assert_eq!(
            adjust(w(300, 298, 60), 5.0, cap),
            Adjust::Pace {
                spacing: Duration::from_secs(30),
                for_: Duration::from_secs(60)
            }
        );
    }
}
