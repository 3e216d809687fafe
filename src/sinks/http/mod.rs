//! `kind = "http"`: batches POSTed to a URL; a 2xx is the commit.
//!
//! What the target answers decides what happens to the batch: a 2xx
//! commits it; 429 and 503 with `Retry-After` hold every request back for
//! that long; other 4xx (but 408) reject it for good (dead letters at once,
//! with the answer); anything else is retried with backoff. Around that: an
//! outgoing rate limit and, when configured, a circuit breaker that stops
//! sending after failures in a row and shows the listener as paused.

mod body;
mod breaker;
mod config;
mod retry_after;
#[cfg(test)]
mod tests;

pub use body::{BodyFormat, Compression};
pub use config::HttpSinkConfig;

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use awc::http::header::{HeaderName, HeaderValue};
use cxrelay_actors::Event;
use futures_util::future::LocalBoxFuture;
use futures_util::StreamExt;
use governor::clock::{Clock, DefaultClock};
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;

use self::breaker::Breaker;
use crate::sinks::{SinkError, SinkWriter};

/// Most of an error answer's body kept (in status, logs and dead letters).
const ANSWER_BYTES: usize = 512;

/// What an http sink sends, fixed when it is built.
pub struct HttpSettings {
    /// Where.
    pub url: String,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Headers sent with every request (`authorization` and the configured
    /// ones), values marked sensitive.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// Body layout.
    pub format: BodyFormat,
    /// Body compression.
    pub compression: Compression,
    /// Longest `Retry-After` honoured.
    pub retry_after_max: Duration,
}

/// What successive writers of one listener share: the breaker, the window
/// a `Retry-After` asked for, and the rate limit.
pub struct Shared {
    breaker: Mutex<Breaker>,
    /// No request before then, and the answer that asked for it.
    not_before: Mutex<Option<(Instant, String)>>,
    limiter: Option<RateLimiter<NotKeyed, InMemoryState, DefaultClock>>,
}

impl Shared {
    /// No window, a closed breaker opening after `breaker_failures` in a
    /// row (never when 0), and at most `requests_per_second` if given.
    pub fn new(requests_per_second: Option<f64>, breaker_failures: u32, breaker_cooldown: Duration) -> Self {
        // One request per period, no burst: the limit holds over any second.
        let limiter = requests_per_second
            .filter(|r| r.is_finite() && *r > 0.0)
            .and_then(|r| Quota::with_period(Duration::from_secs_f64(1.0 / r)))
            .map(|q| RateLimiter::direct(q.allow_burst(NonZeroU32::MIN)));
        Shared {
            breaker: Mutex::new(Breaker::new(breaker_failures, breaker_cooldown)),
            not_before: Mutex::new(None),
            limiter,
        }
    }

    /// Why no request may go out now, if so: inside a `Retry-After` window
    /// or while the breaker is open. Only reached when a writer is asked to
    /// write early (a rebuilt writer, a restarted sink): the sink actor
    /// itself waits as told.
    fn hold_off(&self, now: Instant, url: &str) -> Option<SinkError> {
        if let Some((until, answer)) = self.not_before.lock().as_ref().filter(|(until, _)| *until > now) {
            return Some(SinkError::RetryAfter {
                wait: *until - now,
                error: Box::new(SinkError::Transport {
                    url: url.to_string(),
                    message: format!("not sent: waiting as the target asked ({answer})"),
                }),
            });
        }
        let breaker = self.breaker.lock();
        breaker.blocked_for(now).map(|wait| SinkError::Paused {
            wait,
            reason: format!(
                "circuit breaker open after {} failed requests in a row; next trial in {}s",
                breaker.failures(),
                wait.as_secs_f64().ceil()
            ),
        })
    }

    /// Waits for the rate limit to let one request out.
    async fn take_turn(&self) {
        let Some(limiter) = &self.limiter else { return };
        while let Err(not_until) = limiter.check() {
            tokio::time::sleep(not_until.wait_time_from(DefaultClock::default().now())).await;
        }
    }

    /// Records how a request ended and answers what the sink actor should
    /// do about it.
    fn settle(&self, outcome: Outcome, now: Instant) -> Result<(), SinkError> {
        let (error, wait) = match outcome {
            Outcome::Committed => {
                if self.breaker.lock().success() {
                    tracing::info!("http sink: trial request succeeded; circuit breaker closed");
                }
                return Ok(());
            }
            Outcome::Rejected(e) => {
                // The target is up and answering: not a breaker failure.
                self.breaker.lock().success();
                return Err(SinkError::Rejected(Box::new(e)));
            }
            Outcome::Throttled(e, wait) => {
                if let Some(wait) = wait {
                    *self.not_before.lock() = Some((now + wait, e.to_string()));
                    return Err(SinkError::RetryAfter {
                        wait,
                        error: Box::new(e),
                    });
                }
                return Err(e);
            }
            Outcome::Failed(e, wait) => (e, wait),
        };
        if let Some(wait) = wait {
            *self.not_before.lock() = Some((now + wait, error.to_string()));
        }
        let mut breaker = self.breaker.lock();
        if let Some(cooldown) = breaker.failure(now) {
            let wait = wait.unwrap_or_default().max(cooldown);
            tracing::warn!(failures = breaker.failures(), ?wait, %error,
                "http sink: circuit breaker open; one trial request after the cool-down");
            return Err(SinkError::Paused {
                wait,
                reason: format!(
                    "circuit breaker open after {} failed requests in a row (last: {error}); next trial in {}s",
                    breaker.failures(),
                    wait.as_secs_f64().ceil()
                ),
            });
        }
        match wait {
            Some(wait) => Err(SinkError::RetryAfter {
                wait,
                error: Box::new(error),
            }),
            None => Err(error),
        }
    }
}

/// How one request ended.
enum Outcome {
    /// 2xx.
    Committed,
    /// A 4xx other than 408 and 429: the batch will never be taken.
    Rejected(SinkError),
    /// 429, with the wait it asked for.
    Throttled(SinkError, Option<Duration>),
    /// Anything else (5xx, 408, a redirect, no answer), with the wait a
    /// 503 asked for.
    Failed(SinkError, Option<Duration>),
}

/// POSTs each batch as one body; a 2xx answer is the commit.
pub struct HttpWriter {
    client: awc::Client,
    settings: Arc<HttpSettings>,
    shared: Arc<Shared>,
    sent_batches: u64,
}

impl HttpWriter {
    /// A writer sending as `settings` say, honouring the waits in `shared`.
    /// Must be built on the thread that uses it (the HTTP client is per
    /// thread).
    pub fn new(settings: Arc<HttpSettings>, shared: Arc<Shared>) -> Self {
        // A redirect is a failed commit: awc would turn the POST into a GET
        // whose 2xx would acknowledge a batch nobody received.
        let client = awc::Client::builder()
            .timeout(settings.timeout)
            .disable_redirects()
            .finish();
        HttpWriter {
            client,
            settings,
            shared,
            sent_batches: 0,
        }
    }
}

/// The wait a 429 or 503 asks for, capped; `None` when it names none (or
/// none at all: a `Retry-After: 0` is retried with backoff).
fn asked_wait(res: &awc::ClientResponse<impl Sized>, cap: Duration) -> Option<Duration> {
    let value = res.headers().get("retry-after")?.to_str().ok()?;
    retry_after::parse(value, SystemTime::now())
        .filter(|w| !w.is_zero())
        .map(|w| w.min(cap))
}

/// The first [`ANSWER_BYTES`] of an error answer's body (as text), read
/// within `timeout`: enough to say why, and never a whole large page.
async fn answer_start<S>(res: &mut awc::ClientResponse<S>, timeout: Duration) -> String
where
    S: futures_util::Stream<Item = Result<bytes::Bytes, awc::error::PayloadError>> + Unpin,
{
    let mut start = Vec::new();
    let _ = tokio::time::timeout(timeout, async {
        while start.len() < ANSWER_BYTES {
            match res.next().await {
                Some(Ok(chunk)) => start.extend_from_slice(&chunk),
                _ => break,
            }
        }
    })
    .await;
    start.truncate(ANSWER_BYTES);
    String::from_utf8_lossy(&start).into_owned()
}

impl SinkWriter for HttpWriter {
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        let s = &self.settings;
        let url = crate::urls::redacted(&s.url);
        if let Some(e) = self.shared.hold_off(Instant::now(), &url) {
            return Box::pin(std::future::ready(Err(e)));
        }
        let body = match body::encode(events, s.format, s.compression) {
            Ok(b) => b,
            Err(source) => {
                return Box::pin(std::future::ready(Err(SinkError::Io {
                    what: "compressing the batch".into(),
                    source,
                })))
            }
        };
        let mut req = self
            .client
            .post(&s.url)
            .insert_header(("content-type", s.format.content_type()));
        if s.compression == Compression::Gzip {
            req = req.insert_header(("content-encoding", "gzip"));
        }
        for (name, value) in &s.headers {
            req = req.insert_header((name.clone(), value.clone()));
        }
        self.sent_batches += 1;
        let (shared, cap, timeout) = (self.shared.clone(), s.retry_after_max, s.timeout);
        Box::pin(async move {
            shared.take_turn().await;
            let outcome = match req.send_body(body).await {
                Err(e) => Outcome::Failed(
                    SinkError::Transport {
                        url,
                        message: e.to_string(),
                    },
                    None,
                ),
                Ok(res) if res.status().is_success() => Outcome::Committed,
                Ok(mut res) => {
                    let status = res.status().as_u16();
                    let wait = matches!(status, 429 | 503).then(|| asked_wait(&res, cap)).flatten();
                    let body = answer_start(&mut res, timeout).await;
                    let e = SinkError::Http { status, url, body };
                    match status {
                        429 => Outcome::Throttled(e, wait),
                        408 => Outcome::Failed(e, None),
                        400..=499 => Outcome::Rejected(e),
                        _ => Outcome::Failed(e, wait),
                    }
                }
            };
            shared.settle(outcome, Instant::now())
        })
    }

    fn describe(&self) -> serde_json::Value {
        let breaker = self.shared.breaker.lock();
        serde_json::json!({
            "url": crate::urls::redacted(&self.settings.url),
            "batches_sent": self.sent_batches,
            "breaker": if breaker.is_open() { "open" } else { "closed" },
            "failures_in_a_row": breaker.failures(),
            // Names only: the values are secrets.
            "headers": self.settings.headers.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
        })
    }
}
