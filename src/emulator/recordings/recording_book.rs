//! The recording batch requests submitted, bounded.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use parking_lot::Mutex;
use serde::Deserialize;

use crate::emulator::ids::uuid;

const BATCH: u64 = 0x0042_4154;
const MAX_BATCHES: usize = 10_000;

#[derive(Debug, Clone, Deserialize)]
/// One recording asked for.
pub struct Item {
    /// Its conversation.
    #[serde(rename = "conversationId")]
    pub conversation_id: String,
    /// The recording.
    #[serde(rename = "recordingId")]
    pub recording_id: String,
}

/// One batch request.
#[derive(Debug, Clone)]
pub struct Batch {
    /// The recordings asked for.
    pub items: Vec<Item>,
    /// When.
    pub submitted: Instant,
}

/// Batch requests submitted, bounded.
#[derive(Debug)]
pub struct RecordingBook {
    seed: u64,
    inner: Mutex<(u64, HashMap<String, Batch>, VecDeque<String>)>,
}

impl RecordingBook {
    /// An empty book.
    pub fn new(seed: u64) -> Self {
        RecordingBook {
            seed,
            inner: Mutex::new((0, HashMap::new(), VecDeque::new())),
        }
    }

    /// Records a batch request; answers its id.
    pub fn add(&self, items: Vec<Item>) -> String {
        let mut g = self.inner.lock();
        let no = g.0;
        g.0 += 1;
        let id = uuid(self.seed, &[BATCH, no]);
        g.1.insert(
            id.clone(),
            Batch {
                items,
                submitted: Instant::now(),
            },
        );
        g.2.push_back(id.clone());
        while g.2.len() > MAX_BATCHES {
            if let Some(old) = g.2.pop_front() {
                g.1.remove(&old);
            }
        }
        id
    }

    /// The batch request `id`, if known.
    pub fn get(&self, id: &str) -> Option<Batch> {
        self.inner.lock().1.get(id).cloned()
    }
}
