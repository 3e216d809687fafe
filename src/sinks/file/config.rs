//! `kind = "file"`: its keys, their defaults and checks, and the settings
//! its writer runs on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cxrelay_actors::Event;
use serde::{Deserialize, Serialize};

use super::compression::Compression;
use super::partition::PartitionTemplate;
use super::FileWriter;
use crate::config::{duration, KeyProblem, KeyProblems};
use crate::sinks::builder::{SinkBuilder, SinkContext, SinkStarter};
use crate::sinks::encode::{encode_ndjson, encode_payload_line};
use crate::sinks::SinkError;

/// What each line of a file is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The event with its metadata:
    /// `{"id","seq","source","topic","key","event_time","received_at","payload"}`.
    #[default]
    Envelope,
    /// The record alone (the payload, transformed if the listener
    /// transforms).
    Payload,
}

impl Encoding {
    /// Appends `ev` as one line.
    pub fn encode(self, ev: &Event, out: &mut Vec<u8>) {
        match self {
            Encoding::Envelope => encode_ndjson(ev, out),
            Encoding::Payload => encode_payload_line(ev, out),
        }
    }
}

/// A file sink's keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Root output directory.
    pub path: PathBuf,
    /// Close a file once it reaches this size on disk.
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    /// Close a file once it is this old, even if no event comes.
    #[serde(default = "default_rotate_interval", with = "duration")]
    pub rotate_interval: Duration,
    /// fsync each batch before acknowledging.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
    /// `none`, `gzip` or `zstd`.
    #[serde(default)]
    pub compression: Compression,
    /// `envelope` or `payload`.
    #[serde(default)]
    pub encoding: Encoding,
    /// Subdirectory template under `path` (absent: files directly in it).
    pub partition: Option<String>,
    /// At most this many files open at once (least recently written closed
    /// first).
    #[serde(default = "default_max_open_files")]
    pub max_open_files: usize,
}

fn default_rotate_bytes() -> u64 {
    128 << 20
}
fn default_rotate_interval() -> Duration {
    Duration::from_secs(300)
}
fn default_fsync() -> bool {
    true
}
fn default_max_open_files() -> usize {
    64
}

/// What a file writer runs on: the keys, checked and resolved.
#[derive(Debug, Clone)]
pub struct FileSettings {
    /// Root output directory.
    pub root: PathBuf,
    /// The listener written for (state file name, `{listener}`, file names).
    pub listener: String,
    /// Close a file at this size on disk.
    pub rotate_bytes: u64,
    /// Close a file at this age.
    pub rotate_interval: Duration,
    /// fsync files, directories and the state.
    pub fsync: bool,
    /// Compression of new files.
    pub compression: Compression,
    /// Line encoding of new files.
    pub encoding: Encoding,
    /// Subdirectory template, if any.
    pub partition: Option<PartitionTemplate>,
    /// Bound on open files.
    pub max_open_files: usize,
    /// Where the sink's state file lives: with the journal (`data_dir`),
    /// so the two are kept or wiped together, and the output directory
    /// holds nothing but output.
    pub state_dir: PathBuf,
}

impl FileSettings {
    /// Settings for `listener` writing into `root` with the defaults (tests
    /// and library users change fields from there).
    pub fn new(root: impl Into<PathBuf>, listener: &str) -> Self {
        let root = root.into();
        FileSettings {
            state_dir: root.clone(),
            root,
            listener: listener.to_string(),
            rotate_bytes: default_rotate_bytes(),
            rotate_interval: default_rotate_interval(),
            fsync: default_fsync(),
            compression: Compression::None,
            encoding: Encoding::Envelope,
            partition: None,
            max_open_files: default_max_open_files(),
        }
    }
}

impl FileSinkConfig {
    /// The settings a writer for `listener` runs on.
    pub fn settings(&self, listener: &str) -> Result<FileSettings, String> {
        let partition = self
            .partition
            .as_deref()
            .map(PartitionTemplate::parse)
            .transpose()
            .map_err(|e| format!("partition: {e}"))?;
        Ok(FileSettings {
            root: self.path.clone(),
            listener: listener.to_string(),
            rotate_bytes: self.rotate_bytes.max(1),
            rotate_interval: self.rotate_interval,
            fsync: self.fsync,
            compression: self.compression,
            encoding: self.encoding,
            partition,
            max_open_files: self.max_open_files.max(1),
            state_dir: self.path.clone(),
        })
    }
}

impl SinkBuilder for FileSinkConfig {
    fn check(&self) -> Vec<KeyProblem> {
        let mut p = KeyProblems::new();
        p.check(!self.path.as_os_str().is_empty(), "path", "must not be empty");
        p.check(self.rotate_bytes > 0, "rotate_bytes", "must be at least 1");
        p.check(
            !self.rotate_interval.is_zero(),
            "rotate_interval",
            "must be more than 0",
        );
        p.check(self.max_open_files > 0, "max_open_files", "must be at least 1");
        if let Some(Err(e)) = self.partition.as_deref().map(PartitionTemplate::parse) {
            p.at("partition", e);
        }
        p.into_vec()
    }

    fn describe(&self) -> String {
        let mut s = format!("files in {}", self.path.display());
        if let Some(t) = &self.partition {
            s.push_str(&format!("/{t}"));
        }
        let lines = match self.encoding {
            Encoding::Envelope => "events with their metadata",
            Encoding::Payload => "payloads alone",
        };
        s.push_str(&format!(" ({lines}"));
        if self.compression != Compression::None {
            s.push_str(&format!(", {:?}", self.compression).to_lowercase());
        }
        s.push_str(&format!(
            "), closed at {} bytes or after {}",
            self.rotate_bytes,
            humantime::format_duration(self.rotate_interval)
        ));
        if !self.fsync {
            s.push_str(", NOT fsynced");
        }
        s
    }

    fn output_dir(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn resolve_paths(&mut self, base: &Path) {
        crate::sources::builder::resolve_path(&mut self.path, base);
    }

    fn build(&self, cx: SinkContext) -> Result<SinkStarter, SinkError> {
        let mut settings = self.settings(&cx.listener).map_err(|e| SinkError::Io {
            what: format!("file sink of `{}`", cx.listener),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
        })?;
        settings.state_dir = cx.state_dir.clone();
        // Fail fast on an unusable directory or state rather than at the
        // first write (this also recovers from a crash before any event).
        FileWriter::open(settings.clone())?;
        Ok(cx.starter(move || FileWriter::open(settings.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> FileSinkConfig {
        toml::from_str(&format!("path = 'out'\n{extra}")).unwrap()
    }

    #[test]
    fn defaults_and_keys() {
        let c = parse("");
        assert_eq!(c.rotate_interval, Duration::from_secs(300));
        assert_eq!((c.compression, c.encoding), (Compression::None, Encoding::Envelope));
        assert_eq!((c.partition.as_deref(), c.max_open_files), (None, 64));
        let c =
            parse("compression = 'zstd'\nencoding = 'payload'\npartition = '{topic}/{date}'\nrotate_interval = '1s'");
        assert_eq!((c.compression, c.encoding), (Compression::Zstd, Encoding::Payload));
        assert_eq!(c.rotate_interval, Duration::from_secs(1));
        assert!(c.check().is_empty());
        assert!(c.settings("l").unwrap().partition.is_some());
        assert!(toml::from_str::<FileSinkConfig>("path = 'o'\ncompression = 'lz4'").is_err());
    }

    #[test]
    fn a_bad_partition_is_reported_at_its_key() {
        let c = parse("partition = '{topic}/../x'\nrotate_interval = '0s'");
        let keys: Vec<String> = c.check().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["rotate_interval", "partition"]);
    }
}
