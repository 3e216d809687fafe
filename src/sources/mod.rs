//! Sources: one actor each, supervised, handing events to ingest.

pub mod analytics_job;
pub mod checkpoint;
pub mod delivery;
pub mod export_download;
pub mod generator;
pub mod notifications;
pub mod recordings;
pub mod webhook;
