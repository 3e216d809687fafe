//! Everything a webhook source reports: its request metric and its
//! `/status` details.

use serde::Serialize;

use super::WebhookCounters;

/// Requests answered, by HTTP status.
pub const REQUESTS_TOTAL: &str = "cxrelay_webhook_requests_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[REQUESTS_TOTAL];

/// A request was answered (no log: the counters and `/status` say it, and
/// a sender retrying in a loop must not flood the log).
#[derive(Debug)]
pub struct RequestAnswered<'a> {
    /// The source.
    pub source: &'a str,
    /// The HTTP status sent.
    pub status: u16,
}

impl RequestAnswered<'_> {
    /// Counts it.
    pub fn emit(self) {
        self.counter().increment(1);
    }

    /// The counter of this source and status (a registry lookup, with its
    /// label strings built: callers on the hot path keep the handle).
    pub fn counter(&self) -> metrics::Counter {
        metrics::counter!(REQUESTS_TOTAL, "source" => self.source.to_string(), "status" => self.status.to_string())
    }
}

/// A webhook source's `/status` details, published when `/status` is read
/// (the counters are atomics bumped on the request path).
#[derive(Debug, Serialize)]
pub struct WebhookStatus<'a> {
    /// The route.
    pub path: &'a str,
    /// How callers authenticate: `hmac`, `api_key`, `basic`, or `none`
    /// (`allow_unsigned`).
    pub auth: &'static str,
    /// What the bodies are: `events` or `open_messaging`.
    pub body: &'static str,
    /// What its requests came to.
    pub counters: &'a WebhookCounters,
}
