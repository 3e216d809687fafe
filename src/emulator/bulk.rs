//! The state of the emulator's bulk side (analytics details jobs and
//! queries, recording batch downloads, export files): one field of the
//! emulator's world. Its settings are the `[emulator.bulk]` section
//! ([`BulkSettings`]); its endpoints are in [`crate::emulator::analytics`],
//! [`crate::emulator::recordings`] and [`crate::emulator::exports`].

use crate::emulator::analytics::job_book::JobBook;
use crate::emulator::downloads::UrlSigner;
use crate::emulator::exports::catalog::ExportCatalog;
use crate::emulator::recordings::recording_book::RecordingBook;
use crate::emulator::records::{Durations, Timeline};
pub use crate::emulator::settings::bulk::BulkSettings;

/// The bulk side's state.
#[derive(Debug)]
pub struct BulkState {
    /// Where conversations are on the timeline.
    pub timeline: Timeline,
    /// Submitted details jobs and the pages served.
    pub jobs: JobBook,
    /// Recording batch requests.
    pub recordings: RecordingBook,
    /// Export files and their layouts.
    pub exports: ExportCatalog,
    /// Signs and checks download URLs.
    pub urls: UrlSigner,
}

impl BulkState {
    /// A fresh state for `seed` and `settings`.
    pub fn new(seed: u64, settings: &BulkSettings) -> Self {
        BulkState {
            timeline: Timeline::with_durations(
                seed,
                settings.conversations_per_hour,
                Durations {
                    long_share: settings.long_conversations.clamp(0.0, 1.0),
                    long_max_ms: settings.long_conversation_max.as_millis() as i64,
                },
            ),
            jobs: JobBook::new(seed),
            recordings: RecordingBook::new(seed),
            exports: ExportCatalog::new(seed, &settings.exports),
            urls: UrlSigner::new(seed, settings.download_ttl),
        }
    }
}
