//! Topic patterns in NATS subject syntax and a trie index over them.
//!
//! `*` matches exactly one dot-separated segment, `>` matches one or more
//! trailing segments. Patterns are compiled once; matching a topic walks the
//! trie along its segments, so its cost depends on the topic's length and on
//! the patterns that can still match, never on the number of listeners whose
//! patterns do not.

mod index;
mod pattern;

pub use index::TopicIndex;
pub use pattern::{Pattern, PatternError, Segment};
