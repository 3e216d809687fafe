//! Where a file is downloaded from: a configured URL (absolute, or a
//! path on the API host), a Genesys download id whose time-limited URL is
//! asked for through `GET /api/v2/downloads/{id}`, or a recording whose URL
//! comes from a recording batch request — the last two asked for again
//! when the URL expires.

use std::sync::Arc;

use cxrelay_actors::registry::Progress;
use serde::Deserialize;

use crate::genesys::{ApiClient, ApiError};
use crate::sources::recordings::batch_api::{self, BatchError, PollSettings, RecordingRef};

/// How the URL is obtained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlOrigin {
    /// This URL (absolute, or a path on the API host).
    Direct(String),
    /// The downloads API's URL for this id.
    Downloads(String),
    /// A recording: its URL comes from a recording batch request.
    Recording(RecordingRef),
}

impl UrlOrigin {
    /// How checkpoints name it.
    pub fn name(&self) -> String {
        match self {
            UrlOrigin::Direct(u) => u.clone(),
            UrlOrigin::Downloads(id) => format!("download:{id}"),
            UrlOrigin::Recording(r) => format!("recording:{r}"),
        }
    }
}

#[derive(Deserialize)]
struct DownloadAnswer {
    url: String,
}

/// Why no URL can be had.
#[derive(Debug, thiserror::Error)]
pub enum UrlError {
    /// The downloads API refused or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// A relative URL without an API host to resolve it against.
    #[error("`{0}` is relative and no [genesys] API host is configured")]
    NoApiHost(String),
    /// The recording batch request failed.
    #[error(transparent)]
    Batch(#[from] BatchError),
    /// The platform says the file cannot be had.
    #[error("{0}")]
    Unavailable(String),
}

impl UrlError {
    /// Whether asking again later may succeed.
    pub fn is_transient(&self) -> bool {
        let api = |e: &ApiError| !matches!(e.status(), Some(400 | 403 | 404));
        match self {
            UrlError::Api(e) | UrlError::Batch(BatchError::Api(e)) => api(e),
            UrlError::Batch(BatchError::NotCompleted(..)) => true,
            UrlError::NoApiHost(_) | UrlError::Unavailable(_) => false,
        }
    }
}

/// The current download URL, asked for when needed.
pub struct DownloadUrl {
    origin: UrlOrigin,
    api_base: Option<String>,
    api: Option<ApiClient>,
    current: Option<String>,
    /// URLs asked for so far.
    pub issued: u64,
    /// The downloading instance's progress report, if it reports (a
    /// recording's fresh URL takes a batch request and its polls).
    progress: Option<Arc<Progress>>,
}

impl DownloadUrl {
    /// URLs from `origin`; `api` (with its base URL) resolves relative URLs
    /// and download ids.
    pub fn new(origin: UrlOrigin, api_base: Option<String>, api: Option<ApiClient>) -> Self {
        DownloadUrl {
            origin,
            api_base: api_base.map(|b| b.trim_end_matches('/').to_string()),
            api,
            current: None,
            issued: 0,
            progress: None,
        }
    }

    /// Reports the polls of a recording batch asked for a fresh URL as
    /// progress through `progress`.
    pub fn reporting(&mut self, progress: Arc<Progress>) {
        self.progress = Some(progress);
    }

    /// The origin.
    pub fn origin(&self) -> &UrlOrigin {
        &self.origin
    }

    /// Starts with `url` (already handed out, e.g. by a batch request);
    /// a fresh one is asked for once it expires.
    pub fn with_current(mut self, url: String) -> Self {
        self.current = Some(url);
        self.issued += 1;
        self
    }

    /// Whether an expired URL can be replaced by a fresh one.
    pub fn renewable(&self) -> bool {
        matches!(self.origin, UrlOrigin::Downloads(_) | UrlOrigin::Recording(_))
    }

    /// Forgets the current URL (it expired); the next [`DownloadUrl::get`]
    /// asks for a new one.
    pub fn expire(&mut self) {
        self.current = None;
    }

    /// Whether `url` is on the API host (and so takes the bearer token; a
    /// presigned URL elsewhere must not get it).
    pub fn on_api_host(&self, url: &str) -> bool {
        self.api_base
            .as_deref()
            .is_some_and(|b| crate::urls::same_origin(url, b))
    }

    fn absolute(&self, url: &str) -> Result<String, UrlError> {
        if url.starts_with("http://") || url.starts_with("https://") {
            return Ok(url.to_string());
        }
        match &self.api_base {
            Some(b) => Ok(format!("{b}/{}", url.trim_start_matches('/'))),
            None => Err(UrlError::NoApiHost(url.to_string())),
        }
    }

    /// The URL to download from now.
    pub async fn get(&mut self) -> Result<String, UrlError> {
        if let Some(u) = &self.current {
            return Ok(u.clone());
        }
        let url = match &self.origin {
            UrlOrigin::Direct(u) => self.absolute(u)?,
            UrlOrigin::Downloads(id) => {
                let api = self
                    .api
                    .as_ref()
                    .ok_or_else(|| UrlError::NoApiHost(format!("download {id}")))?;
                let a: DownloadAnswer = api.get(&format!("/api/v2/downloads/{id}?issueRedirect=false")).await?;
                self.absolute(&a.url)?
            }
            UrlOrigin::Recording(r) => {
                let api = self
                    .api
                    .as_ref()
                    .ok_or_else(|| UrlError::NoApiHost(format!("recording {r}")))?;
                let (batch, results) = batch_api::download_batch(
                    api,
                    std::slice::from_ref(r),
                    &PollSettings::default(),
                    self.progress.as_deref(),
                )
                .await?;
                // One recording alone: its result is never ambiguous.
                let result = match batch_api::match_results(std::slice::from_ref(r), &results).first() {
                    Some(batch_api::Matched::Result(x)) => *x,
                    _ => {
                        return Err(UrlError::Unavailable(format!(
                            "recording batch {batch} has no result for {r}"
                        )))
                    }
                };
                match &result.result_url {
                    Some(u) => self.absolute(u)?,
                    None => {
                        return Err(UrlError::Unavailable(format!(
                            "recording {r}: {}",
                            result.error_msg.as_deref().unwrap_or("no result URL")
                        )))
                    }
                }
            }
        };
        self.issued += 1;
        self.current = Some(url.clone());
        Ok(url)
    }
}
