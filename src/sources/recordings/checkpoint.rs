//! What a recordings source commits with each recording's event: which
//! recordings are done (downloaded, or reported unavailable), so that a
//! restart downloads only the rest. A recording half downloaded resumes
//! from its `.part` file.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The saved state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingsCheckpoint {
    /// `conversationId/recordingId` of the recordings delivered.
    pub done: BTreeSet<String>,
}

impl RecordingsCheckpoint {
    /// Reads a saved checkpoint (a fresh one when none or unreadable).
    pub fn decode(raw: Option<&[u8]>) -> Self {
        match raw.map(serde_json::from_slice::<RecordingsCheckpoint>) {
            Some(Ok(c)) => c,
            Some(Err(e)) => {
                tracing::warn!(error = %e, "recordings checkpoint unreadable; starting over");
                RecordingsCheckpoint::default()
            }
            None => RecordingsCheckpoint::default(),
        }
    }

    /// The bytes to commit.
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let mut c = RecordingsCheckpoint::default();
        c.done.insert("c/r".into());
        assert_eq!(RecordingsCheckpoint::decode(Some(&c.encode())), c);
        assert_eq!(
            RecordingsCheckpoint::decode(Some(b"{")),
            RecordingsCheckpoint::default()
        );
    }
}
