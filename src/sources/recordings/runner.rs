//! The download loop of a recordings source: batch by batch, each
//! recording streamed to its file and announced once durable.

use std::sync::Arc;
use std::time::Duration;

use cxrelay_actors::event::now_ms;
use cxrelay_actors::registry::{ComponentState, Progress};
use cxrelay_actors::retry::BackoffPolicy;
use cxrelay_actors::Event;
use serde_json::json;

use super::batch_api::{batches, download_batch, match_results, BatchResult, Matched, RecordingRef, MAX_BATCH};
use super::checkpoint::RecordingsCheckpoint;
use super::recording_file::{final_path, PartFile};
use super::telemetry::{RecordingDownloaded, RecordingUnavailable, RecordingsStatus};
use super::RecordingsSettings;
use crate::genesys::GenesysOrg;
use crate::ingest::IngestBatch;
use crate::sources::checkpoint::JsonCheckpoint;
use crate::sources::delivery::{Delivery, Stopped};
use crate::sources::export_download::download_url::{DownloadUrl, UrlError, UrlOrigin};
use crate::sources::export_download::ranged_body::{BodySettings, RangedBody};

/// How one recording ended.
enum Outcome {
    /// In its file: path, bytes, SHA-256.
    Downloaded(String, u64, String),
    /// The platform cannot provide it (reported, not retried).
    Unavailable(String),
    /// Writing it here failed (disk full, permissions, fsync): transient,
    /// never reported as unavailable; the download is tried again.
    Local(String),
}

/// The longest wait between two batch requests that failed.
pub(super) const BATCH_RETRY_MAX: Duration = Duration::from_secs(60);

pub(super) struct RecordingsRunner {
    s: Arc<RecordingsSettings>,
    org: GenesysOrg,
    out: Delivery,
    cp: RecordingsCheckpoint,
    checkpointing: bool,
    /// This instance's progress report: each batch poll or failed batch
    /// request, each chunk received or failed transfer attempt, each
    /// recording announced is a unit; it is busy until every recording is
    /// done.
    progress: Arc<Progress>,
    status: RecordingsStatus,
}

impl RecordingsRunner {
    pub(super) fn new(
        s: Arc<RecordingsSettings>,
        org: GenesysOrg,
        out: Delivery,
        progress: Arc<Progress>,
        cp: RecordingsCheckpoint,
        checkpointing: bool,
    ) -> Self {
        RecordingsRunner {
            s,
            org,
            out: out.reporting(progress.clone()),
            progress,
            cp,
            checkpointing,
            status: RecordingsStatus::default(),
        }
    }

    /// Shows the status as it now is.
    fn publish(&self) {
        self.out.component.set_status(&self.status);
    }

    fn phase(&mut self, phase: &'static str) {
        self.status.phase = Some(phase);
        self.publish();
    }

    /// Runs until every recording is done or the service stops; then
    /// stays put (its state says why).
    pub(super) async fn run(mut self) {
        let todo: Vec<RecordingRef> = self
            .s
            .recordings
            .iter()
            .filter(|r| !self.cp.done.contains(&r.to_string()))
            .cloned()
            .collect();
        self.status.recordings = self.s.recordings.len();
        self.status.done_before = self.s.recordings.len() - todo.len();
        self.publish();
        self.progress.set_busy(true);
        let api = self.org.client();
        let mut queue: std::collections::VecDeque<Vec<RecordingRef>> =
            todo.chunks(MAX_BATCH).map(<[RecordingRef]>::to_vec).collect();
        while let Some(batch) = queue.pop_front() {
            let results = match self.batch(&api, &batch).await {
                Ok(r) => r,
                Err(Stopped) => return,
            };
            let matched = match_results(&batch, &results);
            let mut again = Vec::new();
            for (r, m) in batch.iter().zip(matched) {
                let result = match m {
                    Matched::Result(x) => Some(x),
                    Matched::Missing => None,
                    Matched::Ambiguous => {
                        again.push(r.clone());
                        continue;
                    }
                };
                let outcome = match result {
                    Some(BatchResult {
                        result_url: Some(url),
                        content_type,
                        ..
                    }) => self.download_retrying(&api, r, url, content_type.as_deref()).await,
                    Some(BatchResult { error_msg, .. }) => {
                        Outcome::Unavailable(error_msg.clone().unwrap_or_else(|| "no result URL".into()))
                    }
                    None => Outcome::Unavailable("the batch has no result for it".into()),
                };
                let content_type = result.and_then(|x| x.content_type.clone());
                if self.announce(r, outcome, content_type).await.is_err() {
                    return;
                }
            }
            // Alone in their conversation, their results say which is which.
            queue.extend(batches(&again));
        }
        self.progress.set_busy(false);
        self.status.finished = true;
        self.status.current = None;
        self.phase("finished");
        self.out.component.set_state(ComponentState::Idle);
        tracing::info!(source = %self.s.name, downloaded = self.status.downloaded, unavailable = self.status.unavailable,
            "recordings source finished");
        std::future::pending::<()>().await;
    }

    /// Requests a batch until it completes, waiting out outages.
    async fn batch(
        &mut self,
        api: &crate::genesys::ApiClient,
        batch: &[RecordingRef],
    ) -> Result<Vec<BatchResult>, Stopped> {
        let mut delays = BackoffPolicy {
            initial: Duration::from_secs(1),
            multiplier: 2.0,
            max: BATCH_RETRY_MAX,
            randomization: 0.3,
            full_jitter: false,
        }
        .schedule();
        loop {
            self.phase("requesting a batch");
            let answer = download_batch(api, batch, &self.s.poll, Some(&self.progress)).await;
            // Completed or failed, a finished request is progress.
            self.progress.advance();
            match answer {
                Ok((id, results)) => {
                    self.status.batch = Some(id);
                    self.publish();
                    if self.out.component.state() != ComponentState::Running {
                        self.out.component.set_state(ComponentState::Running);
                        self.out.component.clear_error();
                    }
                    return Ok(results);
                }
                Err(e) => {
                    let delay = delays.next_delay();
                    tracing::warn!(source = %self.s.name, error = %e, ?delay, "recording batch request failed; retrying");
                    self.out.component.fail(ComponentState::Degraded, e.to_string());
                    tokio::time::sleep(delay).await;
                }
            }
        }
    }

    /// Downloads, waiting out local I/O failures with backoff: the
    /// `.part` file keeps what was written and the transfer resumes there.
    async fn download_retrying(
        &mut self,
        api: &crate::genesys::ApiClient,
        r: &RecordingRef,
        url: &str,
        content_type: Option<&str>,
    ) -> Outcome {
        let mut delays = BackoffPolicy {
            initial: std::time::Duration::from_secs(1),
            multiplier: 2.0,
            max: std::time::Duration::from_secs(60),
            randomization: 0.2,
            full_jitter: false,
        }
        .schedule();
        loop {
            match self.download(api, r, url, content_type).await {
                Outcome::Local(why) => {
                    let delay = delays.next_delay();
                    tracing::warn!(source = %self.s.name, recording = %r, error = %why, ?delay,
                        "writing a recording failed here; trying again");
                    self.out
                        .component
                        .fail(ComponentState::Degraded, format!("{r}: {why} (retrying)"));
                    self.status.local_failures += 1;
                    self.progress.advance();
                    self.publish();
                    tokio::time::sleep(delay).await;
                }
                done => {
                    if self.out.component.state() == ComponentState::Degraded {
                        self.out.component.set_state(ComponentState::Running);
                        self.out.component.clear_error();
                    }
                    return done;
                }
            }
        }
    }

    async fn download(
        &mut self,
        api: &crate::genesys::ApiClient,
        r: &RecordingRef,
        url: &str,
        content_type: Option<&str>,
    ) -> Outcome {
        self.status.current = Some(r.to_string());
        self.phase("downloading");
        let path = final_path(&self.s.output, r, content_type);
        let mut part = match PartFile::open(path) {
            Ok(p) => p,
            Err(e) => return Outcome::Local(e),
        };
        let renewal = DownloadUrl::new(
            UrlOrigin::Recording(r.clone()),
            Some(self.org.hosts.api.clone()),
            Some(api.clone()),
        )
        .with_current(url.to_string());
        let mut body = RangedBody::new(
            renewal,
            Some(self.org.tokens.clone()),
            BodySettings::resuming(self.s.idle_timeout, self.s.max_resumes),
            self.out.component.clone(),
            part.len(),
        )
        .reporting(self.progress.clone());
        loop {
            match body.next().await {
                Ok(Some(chunk)) => {
                    if let Err(e) = part.write(&chunk) {
                        return Outcome::Local(e);
                    }
                }
                Ok(None) => break,
                Err(e) => return Outcome::Unavailable(e.to_string()),
            }
        }
        if let Some(total) = body.total().filter(|t| *t != part.len()) {
            return Outcome::Unavailable(format!("received {} bytes of {total}", part.len()));
        }
        let len = part.len();
        match part.finish() {
            Ok((path, sha)) => Outcome::Downloaded(path.display().to_string(), len, sha),
            Err(e) => Outcome::Local(e),
        }
    }

    /// Commits the recording's event with the checkpoint that marks it done.
    async fn announce(
        &mut self,
        r: &RecordingRef,
        outcome: Outcome,
        content_type: Option<String>,
    ) -> Result<(), Stopped> {
        let payload = match &outcome {
            Outcome::Downloaded(path, bytes, sha) => json!({
                "conversationId": r.conversation_id, "recordingId": r.recording_id, "status": "downloaded",
                "contentType": content_type, "bytes": bytes, "sha256": sha, "path": path,
            }),
            Outcome::Unavailable(why) | Outcome::Local(why) => json!({
                "conversationId": r.conversation_id, "recordingId": r.recording_id, "status": "unavailable",
                "error": UrlError::Unavailable(why.clone()).to_string(),
            }),
        };
        let mut next = self.cp.clone();
        next.done.insert(r.to_string());
        let checkpoint = self.checkpointing.then(|| (self.s.name.clone(), next.encode()));
        let key = format!("recording:{}:{r}", self.s.name);
        let (source, topic) = (self.s.name.clone(), self.s.topic.clone());
        let body = serde_json::to_vec(&payload).unwrap_or_default();
        self.out
            .submit(|| IngestBatch {
                events: vec![Event::builder(source.as_str(), topic.as_str())
                    .id(r.recording_id.clone())
                    .key(r.conversation_id.clone())
                    .event_time(Some(now_ms()))
                    .payload(body.clone())
                    .build()],
                keys: vec![Some(key.clone())],
                hashes: Vec::new(),
                checkpoint: checkpoint.clone(),
            })
            .await?;
        self.cp = next;
        self.progress.advance();
        match outcome {
            Outcome::Downloaded(_, bytes, _) => {
                self.status.downloaded += 1;
                self.status.bytes += bytes;
                RecordingDownloaded {
                    source: &self.s.name,
                    bytes,
                }
                .emit();
            }
            Outcome::Unavailable(why) | Outcome::Local(why) => {
                self.status.unavailable += 1;
                let recording = r.to_string();
                RecordingUnavailable {
                    source: &self.s.name,
                    recording: &recording,
                    error: &why,
                }
                .emit();
                self.out.component.record_error(format!("{recording}: {why}"));
            }
        }
        self.publish();
        Ok(())
    }
}
