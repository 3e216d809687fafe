//! The API client: awc with a shared request budget, `Retry-After`
//! honoured, retries with exponential backoff and jitter on 429, 5xx and
//! timeouts, and one token refresh on a 401.
//!
//! awc's client is not `Send`: build one [`ApiClient`] per arbiter; they
//! share the [`RequestBudget`] and the token provider.

use std::num::NonZeroU32;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::Method;
use cxrelay_actors::retry::BackoffPolicy;
use governor::clock::DefaultClock;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use parking_lot::Mutex;
use serde::de::DeserializeOwned;

use super::error::{ApiError, GenesysError};
use super::rate_window::{adjust, Adjust, PlatformWindow};
use super::token_provider::{GetToken, TokenRejected, Tokens};
use crate::config::Secret;

/// The request budget shared by every client of one OAuth client: a steady
/// rate (token bucket, no burst) plus a gate closed during a `Retry-After`
/// window, so that no request at all goes out inside it, plus the pace the
/// platform's `inin-ratelimit-*` headers call for when fewer requests are
/// left in its window than our rate would send.
pub struct RequestBudget {
    limiter: RateLimiter<NotKeyed, InMemoryState, DefaultClock>,
    closed_until: Mutex<Option<Instant>>,
    pace: Mutex<Option<Pace>>,
    per_minute: u32,
}

/// A slower pace the platform asked for, until its window resets.
#[derive(Debug, Clone, Copy)]
struct Pace {
    spacing: Duration,
    next: Instant,
    until: Instant,
}

impl RequestBudget {
    /// At most `per_minute` requests per minute, evenly spaced, kept
    /// [`BUDGET_MARGIN`] under the limit so that network jitter never
    /// bunches two requests into the platform's window.
    pub fn new(per_minute: u32) -> Arc<Self> {
        let spacing = Duration::from_secs_f64(60.0 / (f64::from(per_minute.max(1)) * BUDGET_MARGIN));
        let quota = Quota::with_period(spacing)
            .unwrap_or_else(|| Quota::per_minute(NonZeroU32::MIN))
            .allow_burst(NonZeroU32::MIN);
        Arc::new(RequestBudget {
            limiter: RateLimiter::direct(quota),
            closed_until: Mutex::new(None),
            pace: Mutex::new(None),
            per_minute,
        })
    }

    /// The configured rate.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    fn closed(&self) -> Option<Instant> {
        let until = *self.closed_until.lock();
        until.filter(|t| *t > Instant::now())
    }

    /// Waits until a request may go out.
    pub async fn acquire(&self) {
        loop {
            while let Some(t) = self.closed() {
                tokio::time::sleep_until(t.into()).await;
            }
            self.limiter.until_ready().await;
            if let Some(slot) = self.paced_slot() {
                tokio::time::sleep_until(slot.into()).await;
            }
            // A window closed while this caller waited for its turn: its turn
            // is void, or every such caller would fire together when the
            // window opens.
            if self.closed().is_none() {
                return;
            }
        }
    }

    /// This caller's turn under the platform's pace, when one is in force
    /// and the turn is later than now.
    fn paced_slot(&self) -> Option<Instant> {
        let now = Instant::now();
        let mut g = self.pace.lock();
        let p = g.as_mut()?;
        if p.until <= now {
            *g = None;
            return None;
        }
        let slot = p.next.max(now);
        p.next = slot + p.spacing;
        (slot > now).then_some(slot)
    }

    /// The pace in force: time between two requests (for `/status` and
    /// tests).
    pub fn platform_pace(&self) -> Option<Duration> {
        let now = Instant::now();
        self.pace.lock().filter(|p| p.until > now).map(|p| p.spacing)
    }

    /// Takes in the platform's account of the window (from an answer's
    /// headers): where it says fewer requests are left than our own rate
    /// would send before it resets, requests slow down to what is left,
    /// spread evenly; with none left, none go out until it resets. Never
    /// faster than the configured rate.
    pub fn observe(&self, window: PlatformWindow) {
        let per_second = f64::from(self.per_minute.max(1)) * BUDGET_MARGIN / 60.0;
        let now = Instant::now();
        match adjust(window, per_second, MAX_RETRY_AFTER) {
            Adjust::Free => *self.pace.lock() = None,
            Adjust::Close(d) => self.close_for(d),
            Adjust::Pace { spacing, for_ } => {
                let mut g = self.pace.lock();
                let was_free = g.is_none_or(|p| p.until <= now);
                // The request just answered was the last one out: the next
                // waits one spacing (an earlier reservation stands).
                let next = g.filter(|p| p.until > now).map_or(now + spacing, |p| p.next);
                *g = Some(Pace {
                    spacing,
                    next,
                    until: now + for_,
                });
                if was_free {
                    tracing::info!(
                        remaining = window.remaining(),
                        reset_s = window.reset.as_secs(),
                        spacing_ms = spacing.as_millis() as u64,
                        "the platform reports fewer requests left in its window than our budget would send: slowing down until it resets"
                    );
                }
            }
        }
    }

    /// Closes the gate for `d` (a 429's `Retry-After`, already capped).
    pub fn close_for(&self, d: Duration) {
        let now = Instant::now();
        let until = now.checked_add(d.min(MAX_RETRY_AFTER)).unwrap_or(now);
        let mut g = self.closed_until.lock();
        if g.is_none_or(|t| t < until) {
            *g = Some(until);
        }
    }
}

/// Fraction of the configured rate actually used.
pub const BUDGET_MARGIN: f64 = 0.98;

/// Longest `Retry-After` honoured: Genesys asks for seconds to a minute; a
/// larger value is a broken answer and must not close the shared budget
/// for hours (or overflow the clock).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

/// A `Retry-After` in seconds, capped at [`MAX_RETRY_AFTER`].
fn retry_after(header: Option<&[u8]>) -> Option<Duration> {
    let secs = std::str::from_utf8(header?).ok()?.trim().parse::<u64>().ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

/// Retry settings of API calls.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts per call (the first included).
    pub max_attempts: u32,
    /// Backoff between attempts without a `Retry-After`.
    pub backoff: BackoffPolicy,
    /// Timeout of one attempt (headers and body).
    pub timeout: Duration,
    /// Largest response body accepted.
    pub max_body: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 6,
            backoff: BackoffPolicy {
                initial: Duration::from_millis(500),
                multiplier: 2.0,
                max: Duration::from_secs(30),
                randomization: 0.5,
                full_jitter: false,
            },
            timeout: Duration::from_secs(30),
            max_body: 64 << 20,
        }
    }
}

struct Inner {
    http: awc::Client,
    api: String,
    tokens: Tokens,
    budget: Arc<RequestBudget>,
    policy: RetryPolicy,
}

/// A successful answer.
#[derive(Debug)]
pub struct ApiResponse {
    /// Status.
    pub status: u16,
    /// Body.
    pub body: bytes::Bytes,
}

impl ApiResponse {
    /// The body as `T`.
    pub fn json<T: DeserializeOwned>(&self, method: &Method, path: &str) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(|e| ApiError::Decode {
            method: method.to_string(),
            path: path.to_string(),
            message: e.to_string(),
        })
    }
}

/// Calls the Genesys API. Cheap to clone; not `Send` (one per arbiter).
#[derive(Clone)]
pub struct ApiClient {
    inner: Rc<Inner>,
}

enum Attempt {
    Done(Result<ApiResponse, ApiError>),
    Retry(ApiError, Option<Duration>),
    /// Sent, and no answer came (a transport error after the request went
    /// out, or a timeout).
    Unanswered(ApiError),
    Unauthorized(Secret, ApiError),
}

impl ApiClient {
    /// A client of the API at `api` (base URL).
    pub fn new(api: &str, tokens: Tokens, budget: Arc<RequestBudget>, policy: RetryPolicy) -> Self {
        ApiClient {
            inner: Rc::new(Inner {
                http: awc::Client::builder().timeout(policy.timeout).finish(),
                api: api.trim_end_matches('/').to_string(),
                tokens,
                budget,
                policy,
            }),
        }
    }

    /// GET `path`, decoding JSON.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ApiError> {
        self.call(Method::GET, path, None).await?.json(&Method::GET, path)
    }

    /// POST `body` to `path`, decoding JSON.
    pub async fn post<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T, ApiError> {
        self.call(Method::POST, path, Some(body))
            .await?
            .json(&Method::POST, path)
    }

    /// POST `body` to `path` to create something (a channel, a job),
    /// decoding JSON. Retried like any call while the platform answers
    /// 429/5xx, but a request that went out without an answer (a timeout,
    /// a connection cut mid-answer) is not sent again: it fails with
    /// [`ApiError::Unanswered`] and the caller looks for what it may have
    /// created before creating another.
    pub async fn create<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T, ApiError> {
        self.call_with(Method::POST, path, Some(body), false)
            .await?
            .json(&Method::POST, path)
    }

    /// PUT `body` to `path`, decoding JSON.
    pub async fn put<T: DeserializeOwned>(&self, path: &str, body: &serde_json::Value) -> Result<T, ApiError> {
        self.call(Method::PUT, path, Some(body)).await?.json(&Method::PUT, path)
    }

    /// A call with retries; answers the first 2xx (or the error that ended
    /// the retries). A 401 refreshes the token once and tries again once.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<ApiResponse, ApiError> {
        self.call_with(method, path, body, true).await
    }

    async fn call_with(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        resend_unanswered: bool,
    ) -> Result<ApiResponse, ApiError> {
        let inner = &self.inner;
        let mut backoff = inner.policy.backoff.schedule();
        let mut refreshed = false;
        let mut token = inner
            .tokens
            .send(GetToken)
            .await
            .map_err(|_| super::error::TokenError::Stopped)??;
        let mut attempt = 0;
        loop {
            attempt += 1;
            inner.budget.acquire().await;
            match self.attempt(&method, path, body, &token.value).await {
                Attempt::Done(r) => return r,
                Attempt::Unanswered(err) if !resend_unanswered => {
                    let (method, path) = (method.to_string(), path.to_string());
                    return Err(ApiError::Unanswered {
                        method,
                        path,
                        message: err.to_string(),
                    });
                }
                Attempt::Unanswered(err) => {
                    if attempt >= inner.policy.max_attempts {
                        return Err(err);
                    }
                    let delay = backoff.next_delay();
                    tracing::debug!(%method, path, attempt, ?delay, error = %err, "retrying Genesys call");
                    tokio::time::sleep(delay).await;
                }
                Attempt::Unauthorized(used, err) => {
                    if refreshed {
                        return Err(err);
                    }
                    refreshed = true;
                    token = inner
                        .tokens
                        .send(TokenRejected(used))
                        .await
                        .map_err(|_| super::error::TokenError::Stopped)??;
                }
                Attempt::Retry(err, retry_after) => {
                    if attempt >= inner.policy.max_attempts {
                        return Err(err);
                    }
                    let delay = match retry_after {
                        // Everyone sharing the budget waits out the window.
                        Some(d) => {
                            inner.budget.close_for(d);
                            d
                        }
                        None => backoff.next_delay(),
                    };
                    tracing::debug!(%method, path, attempt, ?delay, error = %err, "retrying Genesys call");
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    async fn attempt(&self, method: &Method, path: &str, body: Option<&serde_json::Value>, token: &Secret) -> Attempt {
        let inner = &self.inner;
        let url = format!("{}{path}", inner.api);
        let req = inner
            .http
            .request(method.clone(), &url)
            .insert_header(("authorization", format!("Bearer {}", token.expose())));
        let transport = |message: String| ApiError::Transport {
            method: method.to_string(),
            path: path.to_string(),
            message,
        };
        let sent = match body {
            Some(b) => req.send_json(b).await,
            None => req.send().await,
        };
        let mut res = match sent {
            Ok(r) => r,
            // Not connected: nothing went out.
            Err(e @ awc::error::SendRequestError::Connect(_)) => return Attempt::Retry(transport(e.to_string()), None),
            Err(e) => return Attempt::Unanswered(transport(e.to_string())),
        };
        let status = res.status().as_u16();
        let retry_after = retry_after(res.headers().get("retry-after").map(|v| v.as_bytes()));
        if let Some(w) = PlatformWindow::from_headers(|name| res.headers().get(name).map(|v| v.as_bytes())) {
            inner.budget.observe(w);
        }
        // awc's timeout covers the response head only; a body that stalls
        // must not hang the caller.
        let body = match tokio::time::timeout(inner.policy.timeout, res.body().limit(inner.policy.max_body)).await {
            Ok(Ok(b)) => b,
            Ok(Err(e)) => return Attempt::Unanswered(transport(e.to_string())),
            Err(_) => return Attempt::Unanswered(transport("timed out reading the answer".into())),
        };
        if (200..300).contains(&status) {
            return Attempt::Done(Ok(ApiResponse { status, body }));
        }
        let error: GenesysError = serde_json::from_slice(&body).unwrap_or_else(|_| GenesysError {
            message: String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned(),
            status,
            ..GenesysError::default()
        });
        let err = ApiError::Status {
            method: method.to_string(),
            path: path.to_string(),
            status,
            error: Box::new(error),
        };
        match status {
            401 => Attempt::Unauthorized(token.clone(), err),
            // Without Retry-After, the caller backs off exponentially.
            429 => Attempt::Retry(err, retry_after),
            408 | 500..=599 => Attempt::Retry(err, None),
            _ => Attempt::Done(Err(err)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_capped_and_never_overflows_the_clock() {
        assert_eq!(retry_after(Some(b" 42 ")), Some(Duration::from_secs(42)));
        assert_eq!(retry_after(Some(b"18446744073709551615")), Some(MAX_RETRY_AFTER));
        assert_eq!(retry_after(Some(b"soon")), None);
        let budget = RequestBudget::new(300);
        budget.close_for(Duration::MAX);
        let until = budget.closed().expect("closed");
        assert!(
            until <= Instant::now() + MAX_RETRY_AFTER,
            "closed for more than the cap"
        );
    }

    fn window(allowed: u32, count: u32, reset_s: u64) -> PlatformWindow {
        PlatformWindow {
            allowed,
            count,
            reset: Duration::from_secs(reset_s),
        }
    }

    #[actix_rt::test]
    async fn the_platforms_window_slows_the_budget_and_lifts_when_it_has_room() {
        let budget = RequestBudget::new(600);
        budget.acquire().await;
        assert_eq!(budget.platform_pace(), None);
        // 10/s would send ~590 before the reset; 2 are left: one per 30 s.
        budget.observe(window(100, 98, 60));
        assert_eq!(budget.platform_pace(), Some(Duration::from_secs(30)));
        let waited = tokio::time::timeout(Duration::from_millis(300), budget.acquire()).await;
        assert!(waited.is_err(), "the next request waits for its paced turn");
        // The platform has room again (1000 left, we would send ~590): our
        // own rate, never faster.
        budget.observe(window(1000, 0, 60));
        assert_eq!(budget.platform_pace(), None);
        tokio::time::timeout(Duration::from_secs(2), budget.acquire())
            .await
            .expect("our own rate again");
        // Nothing left: closed until the reset.
        budget.observe(window(100, 100, 20));
        let until = budget.closed().expect("closed until the window resets");
        assert!(until > Instant::now() + Duration::from_secs(19));
        // No limit stated, or more left than we would send: no change.
        let budget = RequestBudget::new(60);
        budget.observe(window(1000, 10, 60));
        assert_eq!((budget.platform_pace(), budget.closed()), (None, None));
    }
}
