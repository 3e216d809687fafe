//! Recording batch downloads (genesys-api.md §4): `POST
//! /api/v2/recording/batchrequests` with at most 100 recordings, then
//! `GET .../batchrequests/{id}` until `Completed`, each result with a
//! time-limited `resultUrl` (or an `errorMsg`).

use std::time::Duration;

use cxrelay_actors::registry::Progress;
use cxrelay_actors::retry::BackoffPolicy;
use serde::Deserialize;
use serde_json::json;

use crate::genesys::{ApiClient, ApiError};

/// Most recordings in one batch request.
pub const MAX_BATCH: usize = 100;

/// One recording.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, Deserialize)]
pub struct RecordingRef {
    /// Its conversation.
    pub conversation_id: String,
    /// The recording.
    pub recording_id: String,
}

impl RecordingRef {
    /// Parses `conversationId/recordingId`.
    pub fn parse(s: &str) -> Option<Self> {
        let (c, r) = s.split_once('/')?;
        let ok = |p: &str| !p.is_empty() && !p.contains(['/', ' ']);
        (ok(c) && ok(r)).then(|| RecordingRef {
            conversation_id: c.to_string(),
            recording_id: r.to_string(),
        })
    }
}

impl std::fmt::Display for RecordingRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.conversation_id, self.recording_id)
    }
}

/// A recording's result in a completed batch.
#[derive(Debug, Clone, Deserialize)]
pub struct BatchResult {
    /// Its conversation.
    #[serde(rename = "conversationId")]
    pub conversation_id: String,
    /// The recording.
    #[serde(rename = "recordingId")]
    pub recording_id: String,
    /// Where to download it (time-limited).
    #[serde(rename = "resultUrl", default)]
    pub result_url: Option<String>,
    /// Its media type, e.g. `audio/ogg`.
    #[serde(rename = "contentType", default)]
    pub content_type: Option<String>,
    /// Why it cannot be had.
    #[serde(rename = "errorMsg", default)]
    pub error_msg: Option<String>,
}

#[derive(Deserialize)]
struct Submitted {
    id: String,
}

#[derive(Deserialize)]
struct Status {
    status: String,
    #[serde(default)]
    results: Vec<BatchResult>,
}

/// Why a batch gave no results.
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// The API refused or failed.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The batch did not complete in time.
    #[error("recording batch {0} did not complete after {1} polls")]
    NotCompleted(String, u32),
}

/// How long to wait for a batch.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Delays between polls.
    pub backoff: BackoffPolicy,
    /// Polls before giving up on the batch.
    pub max_polls: u32,
}

impl Default for PollSettings {
    fn default() -> Self {
        PollSettings {
            backoff: BackoffPolicy {
                initial: Duration::from_millis(500),
                multiplier: 1.5,
                max: Duration::from_secs(15),
                randomization: 0.25,
                full_jitter: false,
            },
            max_polls: 120,
        }
    }
}

/// Requests `recordings` (at most [`MAX_BATCH`]) and waits for the batch
/// to complete; answers its id and results. Each answered poll advances
/// `progress`: a batch that takes minutes to complete is not stuck.
pub async fn download_batch(
    api: &ApiClient,
    recordings: &[RecordingRef],
    poll: &PollSettings,
    progress: Option<&Progress>,
) -> Result<(String, Vec<BatchResult>), BatchError> {
    let list: Vec<serde_json::Value> = recordings
        .iter()
        .map(|r| json!({"conversationId": r.conversation_id, "recordingId": r.recording_id}))
        .collect();
    let s: Submitted = api
        .post(
            "/api/v2/recording/batchrequests",
            &json!({"batchDownloadRequestList": list}),
        )
        .await?;
    let mut delays = poll.backoff.schedule();
    for _ in 0..poll.max_polls {
        tokio::time::sleep(delays.next_delay()).await;
        let st: Status = api.get(&format!("/api/v2/recording/batchrequests/{}", s.id)).await?;
        if let Some(p) = progress {
            p.advance();
        }
        if st.status.eq_ignore_ascii_case("completed") {
            return Ok((s.id, st.results));
        }
    }
    Err(BatchError::NotCompleted(s.id, poll.max_polls))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_are_conversation_slash_recording() {
        let r = RecordingRef::parse("c-1/r-2").unwrap();
        assert_eq!((r.conversation_id.as_str(), r.recording_id.as_str()), ("c-1", "r-2"));
        assert_eq!(r.to_string(), "c-1/r-2");
        for bad in ["c-1", "/r", "c/", "c/r/x", "c /r"] {
            assert!(RecordingRef::parse(bad).is_none(), "{bad}");
        }
    }
}
