//! Sources: one actor each, supervised, handing events to ingest.

pub mod generator;
pub mod notifications;
pub mod webhook;
