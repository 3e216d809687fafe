//! Everything a recordings source reports: its metrics and its `/status`
//! details (the transfer of the recording in hand adds the resuming
//! reader's, see [`TransferStatus`](crate::sources::export_download::telemetry::TransferStatus)).

use serde::Serialize;

/// Recordings in their files and announced.
pub const DOWNLOADED_TOTAL: &str = "cxrelay_recordings_downloaded_total";
/// Bytes of those files.
pub const BYTES_TOTAL: &str = "cxrelay_recordings_bytes_total";
/// Recordings the platform could not provide (announced as unavailable).
pub const UNAVAILABLE_TOTAL: &str = "cxrelay_recordings_unavailable_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[DOWNLOADED_TOTAL, BYTES_TOTAL, UNAVAILABLE_TOTAL];

/// A recording is in its file and its event committed.
#[derive(Debug)]
pub struct RecordingDownloaded<'a> {
    /// The source.
    pub source: &'a str,
    /// The file's size.
    pub bytes: u64,
}

impl RecordingDownloaded<'_> {
    /// Counts it and its bytes (no log: `/status` shows the totals).
    pub fn emit(self) {
        metrics::counter!(DOWNLOADED_TOTAL, "source" => self.source.to_string()).increment(1);
        metrics::counter!(BYTES_TOTAL, "source" => self.source.to_string()).increment(self.bytes);
    }
}

/// A recording was announced as unavailable (it is not retried).
#[derive(Debug)]
pub struct RecordingUnavailable<'a> {
    /// The source.
    pub source: &'a str,
    /// `conversationId/recordingId`.
    pub recording: &'a str,
    /// Why.
    pub error: &'a str,
}

impl RecordingUnavailable<'_> {
    /// Counts and logs it.
    pub fn emit(self) {
        metrics::counter!(UNAVAILABLE_TOTAL, "source" => self.source.to_string()).increment(1);
        tracing::warn!(source = %self.source, recording = %self.recording, error = %self.error, "recording unavailable");
    }
}

/// A recordings source's `/status` details, kept by its runner and
/// published whole after each change (a batch, a recording announced).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RecordingsStatus {
    /// Recordings configured.
    pub recordings: usize,
    /// Of those, done before this instance started.
    pub done_before: usize,
    /// `requesting a batch`, `downloading` or `finished`, once started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<&'static str>,
    /// The current batch request.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch: Option<String>,
    /// The recording being downloaded (`conversationId/recordingId`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Recordings downloaded by this instance.
    pub downloaded: u64,
    /// Recordings announced unavailable by this instance.
    pub unavailable: u64,
    /// Bytes downloaded by this instance.
    pub bytes: u64,
    /// Local write failures (disk, permissions) retried by this instance.
    pub local_failures: u64,
    /// Whether every recording is done.
    pub finished: bool,
}
