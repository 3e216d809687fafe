//! What the emulator was asked, kept so that tests can assert on the
//! server side (rates, retry windows, which pages were fetched).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use serde::Serialize;

/// Entries kept; older ones are forgotten (and counted).
const CAPACITY: usize = 200_000;

/// One request as the emulator saw it.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedRequest {
    /// Time since the emulator started.
    #[serde(serialize_with = "as_ms")]
    pub at: Duration,
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// Query string (may be empty).
    pub query: String,
    /// Status answered.
    pub status: u16,
    /// The OAuth client that made it, when authenticated.
    pub client_id: Option<String>,
}

fn as_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64() * 1000.0)
}

/// Request bodies kept (for contract tests of what clients send).
const BODIES_KEPT: usize = 2000;

/// A request body as the emulator received it.
#[derive(Debug, Clone, Serialize)]
pub struct LoggedBody {
    /// HTTP method.
    pub method: String,
    /// Path, without the query.
    pub path: String,
    /// The body, as sent.
    pub body: String,
}

/// A bounded log of requests.
#[derive(Debug)]
pub struct RequestLog {
    started: Instant,
    entries: Mutex<VecDeque<LoggedRequest>>,
    forgotten: Mutex<u64>,
    bodies: Mutex<VecDeque<LoggedBody>>,
    leaks: Mutex<Vec<String>>,
}

impl RequestLog {
    /// An empty log whose times count from `started`.
    pub fn new(started: Instant) -> Self {
        RequestLog {
            started,
            entries: Mutex::new(VecDeque::new()),
            forgotten: Mutex::new(0),
            bodies: Mutex::new(VecDeque::new()),
            leaks: Mutex::new(Vec::new()),
        }
    }

    /// Keeps the body of a request an endpoint parsed.
    pub fn record_body(&self, method: &str, path: &str, body: &[u8]) {
        let mut b = self.bodies.lock();
        if b.len() >= BODIES_KEPT {
            b.pop_front();
        }
        b.push_back(LoggedBody {
            method: method.to_string(),
            path: path.to_string(),
            body: String::from_utf8_lossy(body).into_owned(),
        });
    }

    /// The bodies kept, oldest first.
    pub fn bodies(&self) -> Vec<LoggedBody> {
        self.bodies.lock().iter().cloned().collect()
    }

    /// Notes a bearer token sent to a host whose URLs carry their own
    /// authorisation (a client leaking its token).
    pub fn record_leak(&self, method: &str, path: &str, host: impl std::fmt::Debug) {
        self.leaks.lock().push(format!("{method} {path} on the {host:?} host"));
    }

    /// Requests that carried a bearer token where none belongs.
    pub fn leaks(&self) -> Vec<String> {
        self.leaks.lock().clone()
    }

    /// Records a request answered now.
    pub fn record(&self, method: &str, path: &str, query: &str, status: u16, client_id: Option<String>) {
        let entry = LoggedRequest {
            at: self.started.elapsed(),
            method: method.to_string(),
            path: path.to_string(),
            query: query.to_string(),
            status,
            client_id,
        };
        let mut e = self.entries.lock();
        if e.len() >= CAPACITY {
            e.pop_front();
            *self.forgotten.lock() += 1;
        }
        e.push_back(entry);
    }

    /// Every entry kept, oldest first.
    pub fn entries(&self) -> Vec<LoggedRequest> {
        self.entries.lock().iter().cloned().collect()
    }

    /// Entries `pick` accepts, oldest first.
    pub fn matching(&self, pick: impl Fn(&LoggedRequest) -> bool) -> Vec<LoggedRequest> {
        self.entries.lock().iter().filter(|e| pick(e)).cloned().collect()
    }

    /// How many entries `pick` accepts.
    pub fn count(&self, pick: impl Fn(&LoggedRequest) -> bool) -> usize {
        self.entries.lock().iter().filter(|e| pick(e)).count()
    }

    /// Forgets everything.
    pub fn clear(&self) {
        self.entries.lock().clear();
    }
}

/// The most requests seen in any window of `window` (sliding, anchored at
/// each request), for rate assertions.
pub fn max_in_window(times: &[Duration], window: Duration) -> usize {
    let mut sorted = times.to_vec();
    sorted.sort();
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..sorted.len() {
        while sorted[hi] - sorted[lo] >= window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window_counts() {
        let ms = |v: &[u64]| v.iter().map(|m| Duration::from_millis(*m)).collect::<Vec<_>>();
        assert_eq!(
            max_in_window(&ms(&[0, 100, 200, 999, 1000, 1001]), Duration::from_secs(1)),
            5
        );
        assert_eq!(max_in_window(&ms(&[]), Duration::from_secs(1)), 0);
    }
}
