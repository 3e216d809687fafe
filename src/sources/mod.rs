//! Sources: one folder per kind (its typed config, builder, actors),
//! registered in [`registry`]; each runs supervised and hands events to
//! ingest.

pub mod analytics_job;
pub mod builder;
pub mod checkpoint;
pub mod delivery;
pub mod export_download;
pub mod generator;
pub mod notifications;
pub mod recordings;
pub mod registry;
pub mod telemetry;
pub mod webhook;

pub use builder::{BuildError, SourceBuilder, SourceContext};
pub use registry::SourceSpec;
