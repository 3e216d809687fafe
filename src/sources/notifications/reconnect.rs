//! What a closed socket means (genesys-api.md §2, close codes), and when
//! to try again: exponential backoff with full jitter, so that many
//! channels dropped at once do not come back in lockstep, and a limit of
//! failed attempts in a row after which the channel is marked failed.

use std::time::Duration;

use cxrelay_actors::retry::{Backoff, BackoffPolicy};

/// How a socket ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Closed {
    /// Genesys sent a close frame with this code and reason.
    Code(u16, String),
    /// The connection ended without a close frame (what RFC 6455 calls
    /// 1006), or broke (protocol or network error).
    Abnormal(String),
    /// Nothing arrived for the silence timeout: a dead connection.
    Silent(Duration),
    /// cxrelay closed it (released after a handoff, or shutting down).
    ByUs,
}

impl Closed {
    /// The close code as reported (1006 for an abnormal end).
    pub fn code(&self) -> Option<u16> {
        match self {
            Closed::Code(c, _) => Some(*c),
            Closed::Abnormal(_) => Some(1006),
            _ => None,
        }
    }

    /// A short label for metrics (`1011`, `abnormal`, `silent`, ...).
    pub fn label(&self) -> String {
        match self {
            Closed::Code(c, _) => c.to_string(),
            Closed::Abnormal(_) => "abnormal".into(),
            Closed::Silent(_) => "silent".into(),
            Closed::ByUs => "by_us".into(),
        }
    }
}

impl std::fmt::Display for Closed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Closed::Code(code, reason) if reason.is_empty() => write!(f, "closed by Genesys with {code}"),
            Closed::Code(code, reason) => write!(f, "closed by Genesys with {code} ({reason})"),
            Closed::Abnormal(why) => write!(f, "connection lost without a close frame (1006): {why}"),
            Closed::Silent(d) => write!(f, "no frame for {d:?}: the connection is dead"),
            Closed::ByUs => f.write_str("closed by cxrelay"),
        }
    }
}

/// What to do about a closed socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reaction {
    /// Transient: reconnect to the same channel after a backoff.
    Reconnect,
    /// 1008: refresh the token, check the channel (HEAD), recreate and
    /// resubscribe it if it is gone, then reconnect.
    Revalidate,
    /// 1003, 1009: a configuration fault; retrying cannot help.
    Stop(String),
    /// cxrelay closed it on purpose.
    Nothing,
}

/// The reaction to `closed`.
pub fn reaction(closed: &Closed) -> Reaction {
    match closed {
        Closed::Code(1008, _) => Reaction::Revalidate,
        Closed::Code(1003, reason) => Reaction::Stop(format!(
            "Genesys closed the socket with 1003 (unsupported data){}: this is a configuration fault, not retrying",
            detail(reason)
        )),
        Closed::Code(1009, reason) => Reaction::Stop(format!(
            "Genesys closed the socket with 1009 (message too big){}: this is a configuration fault, not retrying",
            detail(reason)
        )),
        // 1000, 1001, 1011, 1012, 1013 and codes Genesys does not document:
        // the platform went away for a while.
        Closed::Code(_, _) | Closed::Abnormal(_) | Closed::Silent(_) => Reaction::Reconnect,
        Closed::ByUs => Reaction::Nothing,
    }
}

fn detail(reason: &str) -> String {
    if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    }
}

/// Failed attempts in a row, their delays and their limit.
#[derive(Debug)]
pub struct Retries {
    backoff: Backoff,
    limit: u32,
    reset_after: Duration,
    attempts: u32,
}

/// The next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextAttempt {
    /// Its number in the current run of failures (1 is the first retry).
    pub attempt: u32,
    /// The jittered delay before it.
    pub delay: Duration,
    /// The delay's upper bound (full jitter draws from zero to this).
    pub ceiling: Duration,
}

impl Retries {
    /// Full-jitter backoff from `base` to `cap`; at most `limit` failed
    /// attempts in a row; a socket up for `reset_after` starts over.
    pub fn new(base: Duration, cap: Duration, limit: u32, reset_after: Duration) -> Self {
        Retries {
            backoff: BackoffPolicy::full_jitter(base, cap).schedule(),
            limit,
            reset_after,
            attempts: 0,
        }
    }

    /// A socket ends after being up for `up`: long enough, and the
    /// failures before it are forgiven.
    pub fn socket_lasted(&mut self, up: Duration) {
        if up >= self.reset_after {
            self.reset();
        }
    }

    /// The next attempt, or `None` once the limit is reached.
    pub fn next_attempt(&mut self) -> Option<NextAttempt> {
        if self.attempts >= self.limit {
            return None;
        }
        self.attempts += 1;
        let ceiling = self.backoff.next_ceiling();
        let delay = self.backoff.next_delay();
        Some(NextAttempt {
            attempt: self.attempts,
            delay,
            ceiling,
        })
    }

    /// Failed attempts in a row so far.
    pub fn attempts(&self) -> u32 {
        self.attempts
    }

    /// The limit.
    pub fn limit(&self) -> u32 {
        self.limit
    }

    /// Starts over (an operator restarted the channel).
    pub fn reset(&mut self) {
        self.backoff.reset();
        self.attempts = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_close_code_has_its_reaction() {
        for code in [1000, 1001, 1011, 1012, 1013, 4000] {
            assert_eq!(
                reaction(&Closed::Code(code, String::new())),
                Reaction::Reconnect,
                "{code}"
            );
        }
        assert_eq!(reaction(&Closed::Abnormal("eof".into())), Reaction::Reconnect);
        assert_eq!(reaction(&Closed::Silent(Duration::from_secs(35))), Reaction::Reconnect);
        assert_eq!(reaction(&Closed::Code(1008, String::new())), Reaction::Revalidate);
        for code in [1003, 1009] {
            match reaction(&Closed::Code(code, "x".into())) {
                Reaction::Stop(why) => {
                    assert!(why.contains(&code.to_string()) && why.contains("not retrying"), "{why}")
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        assert_eq!(reaction(&Closed::ByUs), Reaction::Nothing);
        assert_eq!(Closed::Abnormal(String::new()).code(), Some(1006));
    }

    #[test]
    fn delays_stay_under_a_doubling_ceiling_up_to_the_limit() {
        let mut r = Retries::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            8,
            Duration::from_secs(60),
        );
        let mut expected = 1;
        for i in 1..=8 {
            let a = r.next_attempt().unwrap();
            assert_eq!(a.attempt, i);
            assert_eq!(a.ceiling, Duration::from_secs(expected));
            assert!(a.delay <= a.ceiling);
            expected = (expected * 2).min(30);
        }
        assert_eq!(r.next_attempt(), None);
        r.socket_lasted(Duration::from_secs(5));
        assert_eq!(r.next_attempt(), None, "a short-lived socket forgives nothing");
        r.socket_lasted(Duration::from_secs(60));
        assert_eq!(r.next_attempt().unwrap().ceiling, Duration::from_secs(1));
    }
}
