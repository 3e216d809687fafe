//! What an export source commits with every batch (atomically with the
//! batch's events): how far into the file it is, and what the file was, so
//! that a restart resumes after the last committed record of the same file.

use serde::{Deserialize, Serialize};

use crate::sources::checkpoint::JsonCheckpoint;

use super::format::Detected;

/// The saved state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportCheckpoint {
    /// The URL or download id the records came from.
    pub origin: String,
    /// The file's ETag, when the server gave one.
    pub etag: Option<String>,
    /// The file's size, when the server gave it.
    pub total: Option<u64>,
    /// What the file turned out to be.
    pub detected: Option<Detected>,
    /// Number of the next record (every record before it is committed or
    /// dead-lettered).
    pub records: u64,
    /// Plain NDJSON or JSON: byte offset right after the last committed
    /// record (a restart asks for the rest with `Range`); for containers
    /// the file is read again from the start and the committed records
    /// skipped.
    pub resume_at: Option<u64>,
    /// Every record is delivered.
    pub done: bool,
}

impl ExportCheckpoint {
    /// Whether a file with `etag` and `total` is the one this checkpoint
    /// was saved for (unknown values do not contradict).
    pub fn same_file(&self, etag: Option<&str>, total: Option<u64>) -> bool {
        let etag_ok = match (self.etag.as_deref(), etag) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        let total_ok = match (self.total, total) {
            (Some(a), Some(b)) => a == b,
            _ => true,
        };
        etag_ok && total_ok
    }
}

impl JsonCheckpoint for ExportCheckpoint {
    const KIND: &'static str = "export";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_recognises_its_file() {
        let c = ExportCheckpoint {
            origin: "big".into(),
            etag: Some("\"e1\"".into()),
            total: Some(100),
            detected: Some(Detected::Ndjson),
            records: 7,
            resume_at: Some(70),
            done: false,
        };
        assert_eq!(ExportCheckpoint::decode(Some(&c.encode())), c);
        assert!(c.same_file(Some("\"e1\""), Some(100)));
        assert!(c.same_file(None, Some(100)));
        assert!(!c.same_file(Some("\"e2\""), Some(100)));
        assert!(!c.same_file(Some("\"e1\""), Some(101)));
    }
}
