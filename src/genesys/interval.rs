//! Analytics intervals and the ISO-8601 times in them. They live in
//! [`crate::wire`], shared with the bundled emulator; this path is kept
//! for the client code that names it.

pub use crate::wire::error::IntervalError;
pub use crate::wire::interval::Interval;
pub use crate::wire::time::{iso_ms, parse_iso_ms};
