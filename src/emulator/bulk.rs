//! The emulator's bulk side: analytics details jobs and queries,
//! recording batch downloads and export files. Its settings are the
//! `[emulator.bulk]` section; its state is one field of the emulator's
//! world.

use actix_web::web;

use super::analytics::JobBook;
use super::exports::{ExportCatalog, UrlSigner};
use super::recordings::RecordingBook;
use super::records::Timeline;
pub use super::settings::bulk::BulkSettings;

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
            timeline: Timeline::new(seed, settings.conversations_per_hour),
            jobs: JobBook::new(seed),
            recordings: RecordingBook::new(seed),
            exports: ExportCatalog::new(seed, &settings.exports),
            urls: UrlSigner::new(seed, settings.download_ttl),
        }
    }
}

/// Registers the bulk routes (before any catch-all).
pub fn routes(cfg: &mut web::ServiceConfig) {
    super::analytics::routes(cfg);
    super::recordings::routes(cfg);
    super::exports::routes(cfg);
}
