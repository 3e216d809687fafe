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

/// One entry of `batchDownloadRequestList` (BatchDownloadRequest: the
/// recording id is optional; without it the platform answers every
/// recording of the conversation).
#[derive(Debug, Clone, serde::Serialize)]
struct RequestItem<'a> {
    #[serde(rename = "conversationId")]
    conversation_id: &'a str,
    #[serde(rename = "recordingId", skip_serializing_if = "Option::is_none")]
    recording_id: Option<&'a str>,
}

/// A recording's result in a completed batch (BatchDownloadJobResult:
/// every field optional).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct BatchResult {
    /// Its conversation.
    #[serde(rename = "conversationId", default)]
    pub conversation_id: Option<String>,
    /// The recording (absent in some results: those are matched by
    /// conversation, see [`match_results`]).
    #[serde(rename = "recordingId", default)]
    pub recording_id: Option<String>,
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

/// BatchDownloadJobStatusResult. The SDK models have no `status`: a batch
/// is complete once `resultCount` (successes and errors) reaches
/// `expectedResultCount`; a `status` of `Completed`, where sent, says the
/// same.
#[derive(Deserialize)]
struct Status {
    #[serde(default)]
    status: Option<String>,
    #[serde(rename = "expectedResultCount", default)]
    expected_result_count: Option<u64>,
    #[serde(rename = "resultCount", default)]
    result_count: Option<u64>,
    #[serde(default)]
    results: Vec<Lenient>,
}

impl Status {
    fn completed(&self) -> bool {
        match (&self.status, self.expected_result_count, self.result_count) {
            (Some(s), _, _) => s.eq_ignore_ascii_case("completed"),
            (None, Some(expected), Some(got)) => got >= expected,
            (None, _, _) => false,
        }
    }
}

/// One result, or `None` when it is not a result object at all: one odd
/// result must not fail the decoding of every other.
struct Lenient(Option<BatchResult>);

impl<'de> Deserialize<'de> for Lenient {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(d)?;
        Ok(Lenient(serde_json::from_value(value).ok()))
    }
}

/// What a batch's results say about one of its recordings.
#[derive(Debug, Clone, Copy)]
pub enum Matched<'a> {
    /// Its result.
    Result(&'a BatchResult),
    /// The batch has no result for it.
    Missing,
    /// Results without a recording id stand for several recordings of its
    /// conversation in this batch: which is which is unknown. Requested
    /// again with no other recording of its conversation (see
    /// [`batches`]), it is unambiguous.
    Ambiguous,
}

/// The result of each recording of `batch` (in its order): the result
/// naming its recording, else a result without a recording id for its
/// conversation, when it is the only recording of that conversation left
/// without a result.
pub fn match_results<'a>(batch: &[RecordingRef], results: &'a [BatchResult]) -> Vec<Matched<'a>> {
    let by_id: Vec<Option<&BatchResult>> = batch
        .iter()
        .map(|r| {
            results.iter().find(|x| {
                x.recording_id.as_deref() == Some(r.recording_id.as_str())
                    && x.conversation_id.as_deref().is_none_or(|c| c == r.conversation_id)
            })
        })
        .collect();
    batch
        .iter()
        .zip(&by_id)
        .map(|(r, found)| {
            if let Some(x) = found {
                return Matched::Result(x);
            }
            let conversation = Some(r.conversation_id.as_str());
            let unmatched = batch
                .iter()
                .zip(&by_id)
                .filter(|(o, f)| f.is_none() && o.conversation_id == r.conversation_id)
                .count();
            let mut candidates = results
                .iter()
                .filter(|x| x.recording_id.is_none() && x.conversation_id.as_deref() == conversation);
            match (candidates.next(), unmatched) {
                (None, _) => Matched::Missing,
                (Some(first), 1) => {
                    // Alone in its conversation: one with a URL if any.
                    let with_url = std::iter::once(first)
                        .chain(candidates)
                        .find(|x| x.result_url.is_some());
                    Matched::Result(with_url.unwrap_or(first))
                }
                (Some(_), _) => Matched::Ambiguous,
            }
        })
        .collect()
}

/// Splits `todo` into batch requests of at most [`MAX_BATCH`] recordings,
/// none with two recordings of one conversation (so that a result without
/// a recording id still says which recording it is), in order otherwise:
/// how recordings whose results were [`Matched::Ambiguous`] are requested
/// again.
pub fn batches(todo: &[RecordingRef]) -> Vec<Vec<RecordingRef>> {
    let mut out: Vec<Vec<RecordingRef>> = Vec::new();
    // The first batch a conversation's next recording may join (past the
    // one holding its last recording), and the first batch not yet full.
    let mut next_for: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let mut first_open = 0;
    for r in todo {
        let from = next_for
            .get(r.conversation_id.as_str())
            .copied()
            .unwrap_or(0)
            .max(first_open);
        let i = (from..out.len())
            .find(|&i| out[i].len() < MAX_BATCH)
            .unwrap_or(out.len());
        if i == out.len() {
            out.push(Vec::new());
        }
        out[i].push(r.clone());
        next_for.insert(&r.conversation_id, i + 1);
        while out.get(first_open).is_some_and(|b| b.len() >= MAX_BATCH) {
            first_open += 1;
        }
    }
    out
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
    let list: Vec<RequestItem<'_>> = recordings
        .iter()
        .map(|r| RequestItem {
            conversation_id: &r.conversation_id,
            recording_id: Some(&r.recording_id),
        })
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
        if st.completed() {
            let all = st.results.len();
            let results: Vec<BatchResult> = st.results.into_iter().filter_map(|r| r.0).collect();
            if results.len() < all {
                // Their recordings are reported as having no result.
                tracing::warn!(batch = %s.id, skipped = all - results.len(), "recording batch results that are not result objects were skipped");
            }
            return Ok((s.id, results));
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

    fn r(s: &str) -> RecordingRef {
        RecordingRef::parse(s).unwrap()
    }

    #[test]
    fn a_status_decodes_with_results_lacking_a_recording_id_or_malformed() {
        // As the SDK models have it: no `status`, counts, optional fields.
        let body = r#"{"id":"b1","jobId":"j1","expectedResultCount":3,"resultCount":3,"errorCount":1,
            "results":[
              {"conversationId":"c1","recordingId":"r1","resultUrl":"https://x/1","contentType":"audio/ogg"},
              {"conversationId":"c2","resultUrl":"https://x/2"},
              {"conversationId":"c3","recordingId":7},
              {"conversationId":"c4","recordingId":"r4","errorMsg":"Recording not found"}],
            "selfUri":"/api/v2/recording/batchrequests/b1"}"#;
        let st: Status = serde_json::from_str(body).unwrap();
        assert!(st.completed());
        let results: Vec<BatchResult> = st.results.into_iter().filter_map(|x| x.0).collect();
        assert_eq!(results.len(), 3, "the malformed one alone is skipped");
        let batch = [r("c1/r1"), r("c2/r2"), r("c3/r3"), r("c4/r4"), r("c9/r1")];
        let m = match_results(&batch, &results);
        let url = |m: &Matched<'_>| match m {
            Matched::Result(x) => x.result_url.clone(),
            other => Some(format!("{other:?}")),
        };
        assert_eq!(url(&m[0]).as_deref(), Some("https://x/1"));
        // No recording id: matched by its conversation.
        assert_eq!(url(&m[1]).as_deref(), Some("https://x/2"));
        assert_eq!(url(&m[2]).as_deref(), Some("Missing"));
        assert!(matches!(m[3], Matched::Result(x) if x.error_msg.as_deref() == Some("Recording not found")));
        // A recording id of another conversation is not this recording.
        assert_eq!(url(&m[4]).as_deref(), Some("Missing"));
    }

    #[test]
    fn results_without_recording_ids_for_two_recordings_of_one_conversation_are_ambiguous() {
        let results = vec![
            BatchResult {
                conversation_id: Some("c1".into()),
                result_url: Some("https://x/a".into()),
                ..BatchResult::default()
            },
            BatchResult {
                conversation_id: Some("c1".into()),
                result_url: Some("https://x/b".into()),
                ..BatchResult::default()
            },
            BatchResult {
                conversation_id: Some("c1".into()),
                recording_id: Some("r3".into()),
                result_url: Some("https://x/3".into()),
                ..BatchResult::default()
            },
        ];
        let batch = [r("c1/r1"), r("c1/r2"), r("c1/r3")];
        let m = match_results(&batch, &results);
        assert!(matches!(m[0], Matched::Ambiguous) && matches!(m[1], Matched::Ambiguous));
        assert!(matches!(m[2], Matched::Result(x) if x.result_url.as_deref() == Some("https://x/3")));
        // Requested again alone, each is unambiguous.
        let again = batches(&[r("c1/r1"), r("c1/r2")]);
        assert_eq!(again.len(), 2);
        assert!(matches!(match_results(&again[0], &results[..1])[0], Matched::Result(_)));
    }

    #[test]
    fn completion_by_status_or_by_counts() {
        let st = |b: &str| serde_json::from_str::<Status>(b).unwrap().completed();
        assert!(st(r#"{"status":"Completed","results":[]}"#));
        assert!(!st(
            r#"{"status":"InProgress","expectedResultCount":2,"resultCount":2}"#
        ));
        assert!(!st(r#"{"expectedResultCount":2,"resultCount":1}"#));
        assert!(st(r#"{"expectedResultCount":2,"resultCount":2}"#));
        assert!(!st(r#"{"id":"b"}"#));
    }

    #[test]
    fn requests_leave_out_an_absent_recording_id() {
        let item = |c, r| {
            serde_json::to_value(RequestItem {
                conversation_id: c,
                recording_id: r,
            })
            .unwrap()
        };
        assert_eq!(
            item("c1", Some("r1")),
            json!({"conversationId":"c1","recordingId":"r1"})
        );
        assert_eq!(item("c1", None), json!({"conversationId":"c1"}));
    }

    #[test]
    fn a_batch_holds_one_recording_per_conversation_and_at_most_a_hundred() {
        let todo = vec![r("c1/r1"), r("c1/r2"), r("c2/r3"), r("c1/r4"), r("c3/r5")];
        let ids = |b: &Vec<RecordingRef>| b.iter().map(|x| x.recording_id.clone()).collect::<Vec<_>>();
        let got: Vec<Vec<String>> = batches(&todo).iter().map(ids).collect();
        assert_eq!(got, vec![vec!["r1", "r3", "r5"], vec!["r2"], vec!["r4"]]);
        let many: Vec<RecordingRef> = (0..250).map(|i| r(&format!("c{i}/r{i}"))).collect();
        let sizes: Vec<usize> = batches(&many).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![100, 100, 50]);
    }
}
