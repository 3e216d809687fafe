//! JSON read and written by hand where it is on every event's path: a
//! validating cursor (the transform's rewriter and the notification frame
//! reader), and the text of strings (scanned eight bytes at a time,
//! unescaped, written as serde_json writes them).

pub mod cursor;
pub mod strings;

pub use cursor::{Cursor, JsonError, Str, MAX_DEPTH};
