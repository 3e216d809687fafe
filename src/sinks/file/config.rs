//! `kind = "file"`: its keys, their defaults and checks, and how it is built.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::FileWriter;
use crate::config::KeyProblem;
use crate::sinks::builder::{SinkBuilder, SinkContext, SinkStarter};
use crate::sinks::SinkError;

/// A file sink's keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FileSinkConfig {
    /// Output directory.
    pub path: PathBuf,
    /// Start a new file past this size.
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    /// fsync each batch before acknowledging.
    #[serde(default = "default_fsync")]
    pub fsync: bool,
}

fn default_rotate_bytes() -> u64 {
    128 << 20
}
fn default_fsync() -> bool {
    true
}

impl SinkBuilder for FileSinkConfig {
    fn check(&self) -> Vec<KeyProblem> {
        let mut p = crate::config::KeyProblems::new();
        p.check(!self.path.as_os_str().is_empty(), "path", "must not be empty");
        p.check(self.rotate_bytes > 0, "rotate_bytes", "must be at least 1");
        p.into_vec()
    }

    fn describe(&self) -> String {
        format!("file {}", self.path.display())
    }

    fn output_dir(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn build(&self, cx: SinkContext) -> Result<SinkStarter, SinkError> {
        let (dir, rotate, fsync) = (self.path.clone(), self.rotate_bytes, self.fsync);
        // Fail fast on an unusable directory rather than at the first write.
        FileWriter::open(&dir, rotate, fsync)?;
        Ok(cx.starter(move || FileWriter::open(&dir, rotate, fsync)))
    }
}
