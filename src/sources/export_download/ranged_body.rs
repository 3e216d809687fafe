//! Reads a download's body chunk by chunk (no size limit: the body is
//! never collected) and survives broken transfers: when the connection
//! drops, goes silent for `idle_timeout`, or ends before `Content-Length`,
//! the rest is asked for with `Range: bytes=<next>-` (and `If-Range`, so a
//! changed file is noticed), and the reader above sees one continuous
//! stream. An expired URL (403/404/410) is asked for again when the source
//! has a download id. A server that ignores `Range` is read from the start
//! again, skipping what was already received.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use awc::error::PayloadError;
use bytes::{Buf, Bytes};
use cxrelay_actors::registry::{Component, Progress};
use cxrelay_actors::retry::{Backoff, BackoffPolicy};
use futures_util::{Stream, StreamExt};

use super::download_url::DownloadUrl;
use super::telemetry::{TransferResumed, TransferStatus};
use crate::genesys::token_provider::Tokens;
use crate::genesys::GetToken;

/// Why a download cannot go on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BodyError(pub String);

/// How patient the reader is.
#[derive(Debug, Clone)]
pub struct BodySettings {
    /// Longest wait for the next bytes before resuming.
    pub idle_timeout: Duration,
    /// Longest wait for response headers.
    pub connect_timeout: Duration,
    /// Failed attempts in a row (no byte received in between) before
    /// giving up.
    pub max_failures: u32,
    /// Delays between attempts.
    pub backoff: BackoffPolicy,
}

type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, PayloadError>>>>;

/// The longest `Retry-After` the reader honours before its next attempt.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

impl BodySettings {
    /// A reader that resumes a silent transfer after `idle_timeout`, gives
    /// up after `max_failures` attempts in a row without progress, and
    /// waits 200 ms doubling to 10 s between attempts.
    pub fn resuming(idle_timeout: Duration, max_failures: u32) -> Self {
        BodySettings {
            idle_timeout,
            connect_timeout: Duration::from_secs(30),
            max_failures,
            backoff: BackoffPolicy {
                initial: Duration::from_millis(200),
                multiplier: 2.0,
                max: Duration::from_secs(10),
                randomization: 0.3,
                full_jitter: false,
            },
        }
    }
}

/// A URL without its query (presigned URLs carry credentials there).
pub fn redact(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn parse_content_range(v: &str) -> Option<(u64, u64, Option<u64>)> {
    let rest = v.trim().strip_prefix("bytes ")?;
    let (range, total) = rest.split_once('/')?;
    let (a, b) = range.split_once('-')?;
    let total = match total.trim() {
        "*" => None,
        t => Some(t.parse().ok()?),
    };
    Some((a.trim().parse().ok()?, b.trim().parse().ok()?, total))
}

/// The resuming body reader.
pub struct RangedBody {
    http: awc::Client,
    url: DownloadUrl,
    tokens: Option<Tokens>,
    s: BodySettings,
    component: Arc<Component>,
    pos: u64,
    total: Option<u64>,
    etag: Option<String>,
    stream: Option<BodyStream>,
    skip: u64,
    done: bool,
    failures: u32,
    backoff: Backoff,
    /// Times the transfer broke and was resumed.
    pub resumes: u64,
    chunks: u64,
    /// The downloading instance's progress report, if it reports.
    progress: Option<Arc<Progress>>,
}

impl RangedBody {
    /// A reader of `url`, starting at byte `pos` of the file.
    pub fn new(url: DownloadUrl, tokens: Option<Tokens>, s: BodySettings, component: Arc<Component>, pos: u64) -> Self {
        RangedBody {
            http: awc::Client::builder().timeout(s.connect_timeout).finish(),
            backoff: s.backoff.schedule(),
            url,
            tokens,
            s,
            component,
            pos,
            total: None,
            etag: None,
            stream: None,
            skip: 0,
            done: false,
            failures: 0,
            resumes: 0,
            chunks: 0,
            progress: None,
        }
    }

    /// Reports progress through `progress`: every chunk received and every
    /// failed attempt (a silence cut off at `idle_timeout`, a refused
    /// request) is a unit, so a transfer that keeps resuming is not stuck.
    pub fn reporting(mut self, progress: Arc<Progress>) -> Self {
        self.url.reporting(progress.clone());
        self.progress = Some(progress);
        self
    }

    fn advanced(&self) {
        if let Some(p) = &self.progress {
            p.advance();
        }
    }

    /// The file's size, once known.
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    /// The file's ETag, once known.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// Bytes of the file received (the next byte's offset).
    pub fn position(&self) -> u64 {
        self.pos
    }

    fn publish(&self) {
        self.component.set_status(&TransferStatus {
            bytes_received: self.pos,
            total_bytes: self.total,
            resumes: self.resumes,
            urls_issued: self.url.issued,
        });
    }

    /// One more failed attempt: waits, or gives up past the limit.
    async fn failed(&mut self, why: String) -> Result<(), BodyError> {
        self.advanced();
        self.failures += 1;
        if self.failures > self.s.max_failures {
            return Err(BodyError(format!(
                "{why}; gave up after {} attempts in a row without progress",
                self.failures
            )));
        }
        let delay = self.backoff.next_delay();
        tracing::warn!(source = %self.component.name(), error = %why, attempt = self.failures, ?delay,
            "export download interrupted; resuming");
        self.component.record_error(why);
        tokio::time::sleep(delay).await;
        Ok(())
    }

    async fn broken(&mut self, why: String) -> Result<(), BodyError> {
        self.stream = None;
        self.resumes += 1;
        TransferResumed {
            source: self.component.name(),
        }
        .emit();
        self.publish();
        self.failed(why).await
    }

    /// Learns the file's size and validator, refusing a file that changed.
    fn validate(&mut self, total: Option<u64>, etag: Option<String>) -> Result<(), BodyError> {
        if let (Some(known), Some(now)) = (self.total, total) {
            if known != now {
                return Err(BodyError(format!(
                    "the export changed during the download: its size went from {known} to {now} bytes"
                )));
            }
        }
        if let (Some(known), Some(now)) = (&self.etag, &etag) {
            if known != now {
                return Err(BodyError(format!(
                    "the export changed during the download (ETag {known} became {now})"
                )));
            }
        }
        self.total = self.total.or(total);
        self.etag = self.etag.take().or(etag);
        Ok(())
    }

    /// Sends the request for the bytes from `pos`, until a usable answer.
    pub async fn open(&mut self) -> Result<(), BodyError> {
        loop {
            let url = match self.url.get().await {
                Ok(u) => u,
                Err(e) if e.is_transient() => {
                    self.failed(format!("asking for the download URL: {e}")).await?;
                    continue;
                }
                Err(e) => return Err(BodyError(format!("cannot get the download URL: {e}"))),
            };
            let shown = redact(&url).to_string();
            let mut req = self
                .http
                .get(&url)
                .no_decompress()
                .insert_header(("accept-encoding", "identity"));
            if self.pos > 0 {
                req = req.insert_header(("range", format!("bytes={}-", self.pos)));
                if let Some(e) = &self.etag {
                    req = req.insert_header(("if-range", e.clone()));
                }
            }
            if self.url.on_api_host(&url) {
                if let Some(tokens) = &self.tokens {
                    if let Ok(Ok(t)) = tokens.send(GetToken).await {
                        req = req.insert_header(("authorization", format!("Bearer {}", t.value.expose())));
                    }
                }
            }
            let res = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    self.failed(format!("GET {shown}: {e}")).await?;
                    continue;
                }
            };
            let status = res.status().as_u16();
            let header = |name: &str| {
                res.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            let etag = header("etag");
            match status {
                200 => {
                    let len = header("content-length").and_then(|v| v.trim().parse::<u64>().ok());
                    self.validate(len, etag)?;
                    // Without Range support the file comes again from its
                    // start: skip what was received.
                    self.skip = self.pos;
                    self.stream = Some(Box::pin(res));
                    return Ok(());
                }
                206 => {
                    let Some((first, _, total)) = header("content-range").as_deref().and_then(parse_content_range)
                    else {
                        return Err(BodyError(format!("GET {shown}: 206 without a usable Content-Range")));
                    };
                    if first > self.pos {
                        return Err(BodyError(format!(
                            "GET {shown}: asked for bytes from {} and got them from {first}",
                            self.pos
                        )));
                    }
                    self.validate(total, etag)?;
                    self.skip = self.pos - first;
                    self.stream = Some(Box::pin(res));
                    return Ok(());
                }
                416 => {
                    let total = header("content-range")
                        .and_then(|v| v.trim().strip_prefix("bytes */").and_then(|t| t.parse::<u64>().ok()))
                        .or(self.total);
                    if total.is_some_and(|t| self.pos >= t) {
                        self.validate(total, None)?;
                        self.done = true;
                        return Ok(());
                    }
                    return Err(BodyError(format!(
                        "GET {shown}: range from byte {} refused (416)",
                        self.pos
                    )));
                }
                403 | 404 | 410 => {
                    if !self.url.renewable() {
                        return Err(BodyError(format!(
                            "GET {shown}: HTTP {status}: the download URL is no longer valid and cannot be asked for again (configure `download_id` so that cxrelay can request fresh URLs)"
                        )));
                    }
                    tracing::info!(source = %self.component.name(), status, "download URL refused; asking for a new one");
                    self.url.expire();
                    self.failed(format!("GET {shown}: HTTP {status} (URL expired)")).await?;
                }
                401 | 408 | 429 | 500..=599 => {
                    let retry_after = header("retry-after").and_then(|v| v.trim().parse::<u64>().ok());
                    if let Some(s) = retry_after {
                        tokio::time::sleep(Duration::from_secs(s).min(MAX_RETRY_AFTER)).await;
                    }
                    self.failed(format!("GET {shown}: HTTP {status}")).await?;
                }
                other => return Err(BodyError(format!("GET {shown}: unexpected HTTP {other}"))),
            }
        }
    }

    /// The next bytes of the file; `None` once it is complete.
    pub async fn next(&mut self) -> Result<Option<Bytes>, BodyError> {
        loop {
            if self.done {
                self.publish();
                return Ok(None);
            }
            let Some(stream) = self.stream.as_mut() else {
                self.open().await?;
                continue;
            };
            match tokio::time::timeout(self.s.idle_timeout, stream.next()).await {
                Err(_) => {
                    let why = format!("no data for {:?} at byte {}", self.s.idle_timeout, self.pos);
                    self.broken(why).await?;
                }
                Ok(None) => {
                    self.stream = None;
                    match self.total {
                        Some(t) if self.pos < t => {
                            let why = format!("the transfer ended at byte {} of {t}", self.pos);
                            self.broken(why).await?;
                        }
                        _ => self.done = true,
                    }
                }
                Ok(Some(Err(e))) => {
                    let why = format!("the transfer broke at byte {}: {e}", self.pos);
                    self.broken(why).await?;
                }
                Ok(Some(Ok(mut b))) => {
                    if self.skip > 0 {
                        let n = (self.skip as usize).min(b.len());
                        b.advance(n);
                        self.skip -= n as u64;
                        if b.is_empty() {
                            continue;
                        }
                    }
                    self.pos += b.len() as u64;
                    self.chunks += 1;
                    self.advanced();
                    if self.chunks.is_multiple_of(64) {
                        self.publish();
                    }
                    if self.failures > 0 {
                        self.failures = 0;
                        self.backoff.reset();
                    }
                    if let Some(t) = self.total.filter(|t| self.pos > *t) {
                        return Err(BodyError(format!(
                            "received {} bytes, more than the file's {t}",
                            self.pos
                        )));
                    }
                    return Ok(Some(b));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_rt::test]
    async fn a_file_that_changes_between_attempts_is_refused() {
        let registry = cxrelay_actors::Registry::new();
        let url = DownloadUrl::new(super::super::UrlOrigin::Direct("http://x/f".into()), None, None);
        let mut b = RangedBody::new(
            url,
            None,
            BodySettings {
                idle_timeout: Duration::from_secs(1),
                connect_timeout: Duration::from_secs(1),
                max_failures: 1,
                backoff: BackoffPolicy::default(),
            },
            registry.register("export", cxrelay_actors::ComponentKind::Source, true),
            0,
        );
        b.validate(Some(100), Some("\"a\"".into())).unwrap();
        b.validate(Some(100), None).unwrap();
        assert!(b
            .validate(Some(101), None)
            .unwrap_err()
            .0
            .contains("size went from 100 to 101"));
        assert!(b.validate(None, Some("\"b\"".into())).unwrap_err().0.contains("ETag"));
        assert_eq!((b.total(), b.etag()), (Some(100), Some("\"a\"")));
    }

    #[test]
    fn content_ranges_and_redaction() {
        assert_eq!(parse_content_range("bytes 10-19/100"), Some((10, 19, Some(100))));
        assert_eq!(parse_content_range("bytes 0-0/*"), Some((0, 0, None)));
        assert_eq!(parse_content_range("items 0-1/2"), None);
        assert_eq!(redact("https://x/y?signature=secret"), "https://x/y");
    }
}
