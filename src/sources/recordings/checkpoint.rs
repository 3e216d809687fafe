//! What a recordings source commits with each recording's event: which
//! recordings are done (downloaded, or reported unavailable), so that a
//! restart downloads only the rest. A recording half downloaded resumes
//! from its `.part` file.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::sources::checkpoint::JsonCheckpoint;

/// The saved state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingsCheckpoint {
    /// `conversationId/recordingId` of the recordings delivered.
    pub done: BTreeSet<String>,
}

impl JsonCheckpoint for RecordingsCheckpoint {
    const KIND: &'static str = "recordings";
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
