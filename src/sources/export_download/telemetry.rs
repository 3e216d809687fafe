//! Everything an export source reports: its metrics, the `/status` details
//! of its runner, and those of the resuming body reader (which recordings
//! downloads share).

use serde::Serialize;

use super::ExportSettings;

/// Records of export files committed as events.
pub const RECORDS_TOTAL: &str = "cxrelay_export_records_total";
/// Broken transfers resumed (exports and recordings alike).
pub const RESUMES_TOTAL: &str = "cxrelay_export_resumes_total";

/// Every metric named here.
pub const METRICS: &[&str] = &[RECORDS_TOTAL, RESUMES_TOTAL];

/// A batch of an export's records is committed (no log: there are many,
/// and `/status` shows the totals).
#[derive(Debug)]
pub struct ExportBatchCommitted<'a> {
    /// The source.
    pub source: &'a str,
    /// Records ingest accepted.
    pub records: usize,
}

impl ExportBatchCommitted<'_> {
    /// Counts the records.
    pub fn emit(self) {
        metrics::counter!(RECORDS_TOTAL, "source" => self.source.to_string()).increment(self.records as u64);
    }
}

/// A broken transfer is resumed (the reader logs the attempt's failure).
#[derive(Debug)]
pub struct TransferResumed<'a> {
    /// The source downloading.
    pub source: &'a str,
}

impl TransferResumed<'_> {
    /// Counts it.
    pub fn emit(self) {
        metrics::counter!(RESUMES_TOTAL, "source" => self.source.to_string()).increment(1);
    }
}

/// An export source's `/status` details, kept by its runner and published
/// whole after each committed batch and at the end.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExportStatus {
    /// Where the file comes from (a URL without its query, or the
    /// download id).
    pub origin: String,
    /// `downloading`, `finished` or `failed`, once started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub phase: Option<&'static str>,
    /// The format found (or configured), once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<&'static str>,
    /// Records committed by this instance.
    pub records: u64,
    /// Records sent to dead letters by this instance.
    pub dead_lettered: u64,
    /// The number of the next record to commit (all before it are).
    pub next_record: u64,
    /// Records in the whole file, once it is delivered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub records_in_file: Option<u64>,
    /// Whether the file is delivered.
    pub finished: bool,
}

impl ExportStatus {
    /// The status of an export that has not started downloading.
    pub fn new(settings: &ExportSettings) -> Self {
        let origin = settings.origin.name();
        ExportStatus {
            // A presigned URL carries credentials in its query.
            origin: super::ranged_body::redact(&origin).to_string(),
            ..ExportStatus::default()
        }
    }
}

/// The resuming body reader's `/status` details: how much of the file came
/// and how often it had to be asked for again (published every 64 chunks,
/// on every resume and at the end).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TransferStatus {
    /// Bytes of the file received (the next byte's offset).
    pub bytes_received: u64,
    /// The file's size, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total_bytes: Option<u64>,
    /// Times the transfer broke and was resumed.
    pub resumes: u64,
    /// Download URLs obtained (more than one: the first expired).
    pub urls_issued: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn statuses_leave_out_what_is_not_known_yet() {
        let export = ExportStatus {
            origin: "download:d1".into(),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&export).unwrap(),
            json!({"origin": "download:d1", "records": 0, "dead_lettered": 0, "next_record": 0, "finished": false})
        );
        let transfer = TransferStatus {
            bytes_received: 10,
            total_bytes: Some(20),
            resumes: 1,
            urls_issued: 2,
        };
        assert_eq!(
            serde_json::to_value(transfer).unwrap(),
            json!({"bytes_received": 10, "total_bytes": 20, "resumes": 1, "urls_issued": 2})
        );
    }
}
