//! The small vocabulary both sides of the Genesys Cloud wire contract
//! (`../shared/docs/genesys-api.md`) speak: the client in [`crate::genesys`]
//! and the sources, and the bundled emulator (the server side). Always
//! compiled; it depends on nothing else in the crate, and it is all the
//! emulator imports from it.
//!
//! - [`interval`]: analytics intervals (`start/end`).
//! - [`time`]: ISO-8601 times with milliseconds <-> ms since the epoch.
//! - [`text`]: UTF-8 checks of whole payloads.
//! - [`duration`]: human durations in configuration (`"200ms"`, `"5m"`).

pub mod duration;
pub mod error;
pub mod interval;
pub mod text;
pub mod time;

pub use duration::parse_duration;
pub use error::IntervalError;
pub use interval::Interval;
pub use time::{iso_ms, parse_iso_ms};
