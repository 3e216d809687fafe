//! `kind = "file"`: NDJSON files a warehouse loader can trust.
//!
//! - Each file is written under a hidden temporary name (`.<stem>.part`)
//!   and renamed to its final name (`<stem>.ndjson`, `.ndjson.gz`,
//!   `.ndjson.zst`) once complete: by size (`rotate_bytes`), by age
//!   (`rotate_interval`, also when no event comes), or to keep at most
//!   `max_open_files` open. A loader listing final names only ever sees
//!   complete files that never change.
//! - Compressed files are made of one gzip member or zstd frame per
//!   commit, so every commit leaves a valid file and a torn tail is cut at
//!   a unit boundary.
//! - `partition` places files in subdirectories from each event.
//! - A state file per listener records what is durable, so that after a
//!   crash the batch written but not acknowledged is neither lost nor
//!   written twice (with the journal on).
//!
//! One file per concern: [`config`] (keys and settings), [`partition`],
//! [`compression`], [`state`] (the state file), `recovery` (start-up),
//! `part_file` (one temporary file), `writer` (the commit protocol).

pub mod compression;
pub mod config;
mod part_file;
pub mod partition;
mod recovery;
pub mod state;
#[cfg(test)]
mod tests;
mod writer;

pub use compression::Compression;
pub use config::{Encoding, FileSettings, FileSinkConfig};
pub use writer::FileWriter;
