//! Webhook ingress: events pushed to us (EventBridge API destinations,
//! signed Open Messaging outbound webhooks), authenticated, deduplicated,
//! and acknowledged only once durable.
//!
//! The HTTP route (`src/http/webhook.rs`) hands each request to
//! [`WebhookSource::receive`] on the HTTP worker threads: the hot path takes
//! no actor hop besides the journal's group commit.

pub mod auth;
mod config;
mod envelope;
mod ip_allow;
mod open_messaging;
mod route;
pub mod signature;
pub mod telemetry;

use std::io::Read;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use actix_web::http::header::HeaderMap;
use cxrelay_actors::registry::{Component, ComponentState};
use serde::Serialize;

pub use auth::{AuthMode, Authenticator, SecretDigest};
pub use config::{BodyFormat, WebhookConfig};
pub use envelope::{parse_body, EnvelopeError, Pushed};
pub use ip_allow::IpAllowList;
pub use open_messaging::parse_open_messaging;
pub use signature::{SignatureEncoding, Verifier};

use crate::ingest::{Ingest, IngestBatch, IngestError};
use crate::store::idempotency::KeyHash;
use crate::store::{DeadLetter, PutDeadLetters};
use telemetry::WebhookStatus;

/// How a webhook source is set up.
#[derive(Clone)]
pub struct WebhookSettings {
    /// Source name.
    pub name: String,
    /// Route path.
    pub path: String,
    /// Who may call; `None` only with `allow_unsigned`.
    pub auth: Option<Authenticator>,
    /// What the bodies are.
    pub body: BodyFormat,
    /// Largest body accepted (raw, and decoded when gzip).
    pub max_body_bytes: usize,
    /// Sources allowed to call (empty: everyone).
    pub allow: IpAllowList,
    /// Longest wait for the journal before answering 503.
    pub ack_timeout: Duration,
    /// Longest time a request's body may take to arrive (408 after it).
    pub body_timeout: Duration,
    /// Requests handled at once; more are answered 503 with Retry-After
    /// (bodies held in memory are bounded by this times `max_body_bytes`).
    pub max_concurrent_requests: usize,
}

/// Counters of a webhook source.
#[derive(Debug, Default, Serialize)]
pub struct WebhookCounters {
    /// Requests answered 202.
    pub accepted_requests: AtomicU64,
    /// Events committed.
    pub accepted_events: AtomicU64,
    /// Events dropped as duplicates.
    pub duplicate_events: AtomicU64,
    /// Requests refused for their signature or credentials (401).
    pub bad_signature: AtomicU64,
    /// Requests refused for their source address (403).
    pub forbidden: AtomicU64,
    /// Bodies over the limit (413).
    pub too_large: AtomicU64,
    /// Bodies that were not valid events (400).
    pub malformed: AtomicU64,
    /// Requests answered 503 (store unavailable or saturated).
    pub unavailable: AtomicU64,
    /// Requests answered 503 because `max_concurrent_requests` were in hand.
    pub busy: AtomicU64,
    /// Bodies that did not arrive within `body_timeout` (408).
    pub body_timeouts: AtomicU64,
}

/// What the route answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// 202: committed (or already committed before).
    Accepted {
        /// Events committed now.
        accepted: usize,
        /// Events seen before.
        duplicates: usize,
    },
    /// 401, with no detail.
    Unauthorized,
    /// 403: source address not allowed.
    Forbidden,
    /// 413.
    TooLarge,
    /// 400 with a short machine-readable reason.
    BadRequest(&'static str),
    /// 503 with `Retry-After`.
    Unavailable {
        /// Seconds.
        retry_after: u64,
        /// Why (for the log and the body).
        reason: String,
    },
}

/// A webhook source: settings, counters, and where events go.
pub struct WebhookSource {
    settings: WebhookSettings,
    ingest: Ingest,
    dead_letters: Option<Recipient<PutDeadLetters>>,
    component: Arc<Component>,
    counters: WebhookCounters,
    /// Closed until listeners are subscribed and the journal replayed, and
    /// again from the start of shutdown: events accepted then could reach
    /// no listener.
    open: AtomicBool,
    /// One permit per request in hand.
    slots: tokio::sync::Semaphore,
    /// The request counter of 202 answers, taken from the registry on the
    /// first one (after the metrics recorder is installed): nearly every
    /// request ends there, and a lookup builds its label strings.
    accepted_metric: std::sync::OnceLock<metrics::Counter>,
    /// The source's name as every event carries it (shared, not copied per
    /// request).
    source_name: Arc<str>,
}

impl WebhookSource {
    /// A source handing events to `ingest`; malformed bodies go to
    /// `dead_letters` (when the journal is on).
    pub fn new(
        settings: WebhookSettings,
        ingest: Ingest,
        dead_letters: Option<Recipient<PutDeadLetters>>,
        component: Arc<Component>,
    ) -> Arc<Self> {
        if settings.auth.is_none() {
            // Loud in status, but not a readiness failure: it was asked for.
            component.fail(
                ComponentState::Degraded,
                "accepting UNSIGNED, unauthenticated requests (allow_unsigned = true): anyone who can reach this path can inject events",
            );
        } else {
            component.set_state(ComponentState::Running);
        }
        let slots = tokio::sync::Semaphore::new(settings.max_concurrent_requests);
        let source_name = Arc::from(settings.name.as_str());
        let source = Arc::new(WebhookSource {
            source_name,
            settings,
            ingest,
            dead_letters,
            component,
            counters: WebhookCounters::default(),
            open: AtomicBool::new(false),
            slots,
            accepted_metric: std::sync::OnceLock::new(),
        });
        source.publish_detail();
        source
    }

    /// Starts accepting events.
    pub fn open(&self) {
        self.open.store(true, Ordering::Release);
    }

    /// Stops accepting events (answers 503 with Retry-After).
    pub fn close(&self) {
        self.open.store(false, Ordering::Release);
    }

    /// The route path.
    pub fn path(&self) -> &str {
        &self.settings.path
    }

    /// The largest body accepted.
    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    /// The source's name.
    pub fn name(&self) -> &str {
        &self.settings.name
    }

    /// The counters.
    pub fn counters(&self) -> &WebhookCounters {
        &self.counters
    }

    fn count(&self, c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts a request answered with `status`.
    pub fn answered(&self, status: u16) {
        let answered = telemetry::RequestAnswered {
            source: &self.settings.name,
            status,
        };
        if status == 202 {
            self.accepted_metric.get_or_init(|| answered.counter()).increment(1);
        } else {
            answered.emit();
        }
    }

    /// Whether a caller at `peer` may call at all (checked before reading
    /// the body).
    pub fn admits(&self, peer: Option<IpAddr>) -> bool {
        let ok = self.settings.allow.admits(peer);
        if !ok {
            self.count(&self.counters.forbidden, 1);
        }
        ok
    }

    /// Records a body refused for its size.
    pub fn refused_too_large(&self) -> Outcome {
        self.count(&self.counters.too_large, 1);
        Outcome::TooLarge
    }

    /// A slot for one request, or `None` (answer 503) when
    /// `max_concurrent_requests` are already in hand.
    pub fn try_slot(&self) -> Option<tokio::sync::SemaphorePermit<'_>> {
        let permit = self.slots.try_acquire().ok();
        if permit.is_none() {
            self.count(&self.counters.busy, 1);
        }
        permit
    }

    /// Whether a request may have its body read: its credentials (API
    /// key, Basic) are right, or its signature header could be valid
    /// (always, for a source without authentication).
    pub fn admits_head(&self, headers: &HeaderMap) -> bool {
        let ok = self.settings.auth.as_ref().is_none_or(|a| a.admits_head(headers));
        if !ok {
            self.count(&self.counters.bad_signature, 1);
        }
        ok
    }

    /// Longest time a body may take to arrive.
    pub fn body_timeout(&self) -> Duration {
        self.settings.body_timeout
    }

    /// Records a body that did not arrive in time.
    pub fn body_timed_out(&self) {
        self.count(&self.counters.body_timeouts, 1);
    }

    /// Handles one request body (raw bytes as received) with the request's
    /// headers (credentials, signature) and content encoding.
    pub async fn receive(&self, headers: &HeaderMap, gzip: bool, raw: &[u8]) -> Outcome {
        if !self.open.load(Ordering::Acquire) {
            self.count(&self.counters.unavailable, 1);
            return Outcome::Unavailable {
                retry_after: 5,
                reason: "not accepting events right now (starting or stopping)".into(),
            };
        }
        if let Some(a) = &self.settings.auth {
            if !a.admits(headers, raw) {
                self.count(&self.counters.bad_signature, 1);
                return Outcome::Unauthorized;
            }
        }
        let decoded;
        let body: &[u8] = if gzip {
            match gunzip(raw, self.settings.max_body_bytes) {
                Ok(b) => {
                    decoded = b;
                    &decoded
                }
                Err(GunzipError::TooLarge) => return self.refused_too_large(),
                Err(GunzipError::Invalid) => return self.malformed("invalid_gzip", raw).await,
            }
        } else {
            raw
        };
        let parsed = match self.settings.body {
            BodyFormat::Events => envelope::parse_body_from(body, &self.source_name),
            BodyFormat::OpenMessaging => parse_open_messaging(body, &self.settings.name),
        };
        let pushed = match parsed {
            Ok(p) => p,
            Err(e) => return self.malformed(e.reason(), body).await,
        };
        let n = pushed.events.len();
        // The hot duplicate case (a sender retrying) needs no commit.
        // Each key is hashed once, for this check and for the commit.
        let hashes = self.ingest.key_hashes(&self.settings.name, &pushed.keys);
        let seen = |h: &Option<KeyHash>| h.is_some_and(|h| self.ingest.seen_recently_hashed(h));
        if !hashes.is_empty() && hashes.iter().all(seen) {
            self.count(&self.counters.duplicate_events, n as u64);
            self.count(&self.counters.accepted_requests, 1);
            return Outcome::Accepted {
                accepted: 0,
                duplicates: n,
            };
        }
        let batch = IngestBatch {
            events: pushed.events,
            keys: pushed.keys,
            hashes,
            checkpoint: None,
        };
        // Committed on this HTTP worker, with the requests it read in the
        // same turn. The submit's future is boxed on its own: small enough
        // for the allocator's per-thread cache, as is then this request's.
        let submit = Box::pin(self.ingest.submit_here(batch));
        match tokio::time::timeout(self.settings.ack_timeout, submit).await {
            Ok(Ok(r)) => {
                self.count(&self.counters.accepted_requests, 1);
                self.count(&self.counters.accepted_events, r.accepted as u64);
                self.count(&self.counters.duplicate_events, r.duplicates as u64);
                Outcome::Accepted {
                    accepted: r.accepted,
                    duplicates: r.duplicates,
                }
            }
            Ok(Err(IngestError::StoreUnavailable(reason))) => {
                self.count(&self.counters.unavailable, 1);
                Outcome::Unavailable { retry_after: 5, reason }
            }
            Ok(Err(IngestError::ShuttingDown)) => {
                self.count(&self.counters.unavailable, 1);
                Outcome::Unavailable {
                    retry_after: 5,
                    reason: "shutting down".into(),
                }
            }
            Err(_) => {
                // Saturated: the sender retries; if this batch still commits,
                // the retry is recognised as a duplicate.
                self.count(&self.counters.unavailable, 1);
                Outcome::Unavailable {
                    retry_after: 1,
                    reason: "ingest saturated".into(),
                }
            }
        }
    }

    /// A 400: counted, and the body kept (truncated) in dead letters so an
    /// operator can see what was sent.
    async fn malformed(&self, reason: &'static str, body: &[u8]) -> Outcome {
        self.count(&self.counters.malformed, 1);
        if let Some(dl) = &self.dead_letters {
            let letter = DeadLetter::for_raw(
                &self.settings.name,
                &format!("webhook:{}", self.settings.name),
                reason,
                body,
                None,
            );
            // Best effort, bounded: the answer to the sender does not wait
            // on the dead-letter table for long.
            let sent = tokio::time::timeout(Duration::from_secs(2), dl.send(PutDeadLetters(vec![letter]))).await;
            if !matches!(sent, Ok(Ok(Ok(_)))) {
                tracing::warn!(source = %self.settings.name, reason, "could not keep a malformed body in dead letters");
            }
        }
        Outcome::BadRequest(reason)
    }

    /// Publishes the source's status (its path and counters).
    pub fn publish_detail(&self) {
        self.component.set_status(&WebhookStatus {
            path: &self.settings.path,
            auth: self.settings.auth.as_ref().map_or("none", |a| a.mode().name()),
            body: self.settings.body.name(),
            counters: &self.counters,
        });
    }
}

enum GunzipError {
    TooLarge,
    Invalid,
}

/// Decodes gzip, refusing to produce more than `limit` bytes (a small body
/// can expand without bound).
fn gunzip(raw: &[u8], limit: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::with_capacity(raw.len() * 4);
    let mut decoder = flate2::read::GzDecoder::new(raw).take(limit as u64 + 1);
    decoder.read_to_end(&mut out).map_err(|_| GunzipError::Invalid)?;
    if out.len() > limit {
        return Err(GunzipError::TooLarge);
    }
    Ok(out)
}
