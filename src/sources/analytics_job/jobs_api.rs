//! The analytics details jobs API (genesys-api.md §3) as typed calls over
//! the shared [`ApiClient`] (rate budget, Retry-After, retries, tokens).

use awc::http::Method;
use serde::Deserialize;
use serde_json::json;
use serde_json::value::RawValue;

use crate::genesys::interval::{parse_iso_ms, Interval};
use crate::genesys::{ApiClient, ApiError};

const BASE: &str = "/api/v2/analytics/conversations/details/jobs";

/// A job's state as the API reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    /// QUEUED or PENDING: not ready yet.
    Running(String),
    /// FULFILLED: results can be paged.
    Fulfilled,
    /// FAILED, with the job's `errorMessage`.
    Failed(String),
    /// EXPIRED, CANCELLED, or no longer known (404): its results are gone.
    Gone(String),
}

#[derive(Deserialize)]
struct StatusBody {
    state: String,
    #[serde(rename = "errorMessage")]
    error_message: Option<String>,
}

/// One page of results.
#[derive(Debug, Deserialize)]
pub struct ResultsPage {
    /// The records, raw.
    #[serde(default)]
    pub conversations: Vec<Box<RawValue>>,
    /// The next page's cursor; none on the last page.
    pub cursor: Option<String>,
}

#[derive(Deserialize)]
struct Submitted {
    #[serde(rename = "jobId")]
    job_id: String,
}

#[derive(Deserialize)]
struct Availability {
    #[serde(rename = "dataAvailabilityDate")]
    date: String,
}

/// Percent-encodes a query value (cursors are opaque and may hold `+`,
/// `/` or `=`).
fn encode_query_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The details jobs API of one org.
#[derive(Clone)]
pub struct JobsApi {
    api: ApiClient,
}

impl JobsApi {
    /// Calls through `api`.
    pub fn new(api: ApiClient) -> Self {
        JobsApi { api }
    }

    /// Submits a job for `interval`, oldest conversations first. A
    /// submission that went out without an answer is not sent again here:
    /// it answers `Ok(Err(..))` (the job may exist, and there is no call
    /// that finds it), and the caller decides.
    pub async fn submit(&self, interval: Interval) -> Result<Result<String, ApiError>, ApiError> {
        let body = json!({
            "interval": interval.to_string(),
            "order": "asc",
            "orderBy": "conversationStart",
        });
        match self.api.create::<Submitted>(BASE, &body).await {
            Ok(s) => Ok(Ok(s.job_id)),
            Err(e) if e.is_unanswered() => Ok(Err(e)),
            Err(e) => Err(e),
        }
    }

    /// The job's state.
    pub async fn status(&self, job: &str) -> Result<JobStatus, ApiError> {
        let body: StatusBody = match self.api.get(&format!("{BASE}/{job}")).await {
            Ok(b) => b,
            Err(e) if e.status() == Some(404) => return Ok(JobStatus::Gone("no longer known (404)".into())),
            Err(e) => return Err(e),
        };
        Ok(match body.state.as_str() {
            "FULFILLED" => JobStatus::Fulfilled,
            "FAILED" => JobStatus::Failed(body.error_message.unwrap_or_else(|| "no errorMessage given".into())),
            "EXPIRED" | "CANCELLED" => JobStatus::Gone(body.state),
            _ => JobStatus::Running(body.state),
        })
    }

    /// A page of results, from `cursor` (the first page without).
    pub async fn results(&self, job: &str, cursor: Option<&str>, page_size: u32) -> Result<ResultsPage, ApiError> {
        let mut path = format!("{BASE}/{job}/results?pageSize={page_size}");
        if let Some(c) = cursor {
            path.push_str("&cursor=");
            path.push_str(&encode_query_value(c));
        }
        self.api.get(&path).await
    }

    /// Deletes a job whose results are no longer needed.
    pub async fn delete(&self, job: &str) -> Result<(), ApiError> {
        self.api
            .call(Method::DELETE, &format!("{BASE}/{job}"), None)
            .await
            .map(|_| ())
    }

    /// Until when the data lake holds complete data (ms since the epoch).
    pub async fn availability(&self) -> Result<i64, ApiError> {
        let path = format!("{BASE}/availability");
        let a: Availability = self.api.get(&path).await?;
        parse_iso_ms(&a.date).map_err(|e| ApiError::Decode {
            method: "GET".into(),
            path,
            message: e.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_are_encoded_for_the_query() {
        assert_eq!(encode_query_value("a+b/c=="), "a%2Bb%2Fc%3D%3D");
        assert_eq!(encode_query_value("MTIz.-_~"), "MTIz.-_~");
    }
}
