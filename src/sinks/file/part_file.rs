//! One file being written under its temporary name: appended to batch by
//! batch, undone to its last commit on failure, renamed to its final name
//! once complete.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use super::state::{sync_dir, OpenPart};
use crate::sinks::SinkError;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SinkError {
    let what = what.into();
    move |source| SinkError::Io { what, source }
}

/// An open temporary file and what of it is committed.
pub struct PartFile {
    /// Its record in the state; `rec.len` is the committed length.
    pub rec: OpenPart,
    file: File,
    path: PathBuf,
    /// Bytes written, committed or not.
    written: u64,
    /// A write failed part way: the file may hold more than `written`.
    torn: bool,
    /// When it was last written, on the writer's use counter (for closing
    /// the least recently used).
    pub last_used: u64,
}

impl PartFile {
    /// Creates the file `rec` names (it must not exist), with any missing
    /// directories; with `fsync`, the new entries are made durable before
    /// any byte in it is counted as committed.
    pub fn create(root: &Path, rec: OpenPart, fsync: bool) -> Result<Self, SinkError> {
        let dir = root.join(&rec.partition);
        create_dirs(root, &dir, fsync)?;
        let path = rec.part_path(root);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io(format!("creating {}", path.display())))?;
        if fsync {
            sync_dir(&dir)?;
        }
        Ok(PartFile {
            written: 0,
            torn: false,
            rec,
            file,
            path,
            last_used: 0,
        })
    }

    /// Opens an existing temporary file to continue it; its length must
    /// already be `rec.len` (recovery cut it).
    pub fn reopen(root: &Path, rec: OpenPart) -> Result<Self, SinkError> {
        let path = rec.part_path(root);
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(io(format!("opening {}", path.display())))?;
        Ok(PartFile {
            written: rec.len,
            torn: false,
            rec,
            file,
            path,
            last_used: 0,
        })
    }

    /// Appends bytes (uncommitted until [`PartFile::committed`]).
    pub fn append(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        if let Err(e) = self.file.write_all(bytes) {
            // Some of it may be in the file: only a rollback says where
            // the file ends.
            self.torn = true;
            return Err(io(format!("writing {}", self.path.display()))(e));
        }
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Makes what was written durable.
    pub fn sync(&mut self) -> Result<(), SinkError> {
        self.file
            .sync_data()
            .map_err(io(format!("syncing {}", self.path.display())))
    }

    /// Bytes written, committed or not.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Whether bytes were written since the last commit.
    pub fn is_dirty(&self) -> bool {
        self.torn || self.written != self.rec.len
    }

    /// Counts everything written as committed.
    pub fn committed(&mut self) {
        self.rec.len = self.written;
    }

    /// Cuts what was written since the last commit, so that the batch can
    /// be written again without a duplicate.
    pub fn rollback(&mut self) -> Result<(), SinkError> {
        if !self.is_dirty() {
            return Ok(());
        }
        self.file
            .set_len(self.rec.len)
            .map_err(io(format!("undoing a failed batch in {}", self.path.display())))?;
        self.written = self.rec.len;
        self.torn = false;
        Ok(())
    }

    /// Gives the (committed, synced) file its final name and makes the
    /// rename durable. A file that holds nothing is removed instead: a
    /// loader gets no empty files. Answers the final path, if any. On an
    /// error the file is where it was and can be closed again later.
    pub fn finalize(&self, root: &Path, fsync: bool) -> Result<Option<PathBuf>, SinkError> {
        if self.rec.len == 0 {
            fs::remove_file(&self.path).map_err(io(format!("removing empty {}", self.path.display())))?;
            return Ok(None);
        }
        let target = self.rec.final_path(root);
        // Never replace a file a loader may be reading.
        if target.exists() {
            return Err(SinkError::Io {
                what: format!("closing {}", self.path.display()),
                source: std::io::Error::new(
                    std::io::ErrorKind::AlreadyExists,
                    format!("{} already exists", target.display()),
                ),
            });
        }
        fs::rename(&self.path, &target).map_err(io(format!(
            "renaming {} to {}",
            self.path.display(),
            target.display()
        )))?;
        if fsync {
            // The content is durable already and the rename is done: only a
            // power cut could still undo it (the data would then stay under
            // its temporary name). Nothing to retry here; say so.
            if let Err(e) = sync_dir(&root.join(&self.rec.partition)) {
                tracing::warn!(file = %target.display(), error = %e, "closed a file but could not sync its directory");
            }
        }
        Ok(Some(target))
    }
}

/// Creates `dir` (under `root`) and its missing parents; with `fsync`, each
/// new entry is made durable in its parent.
fn create_dirs(root: &Path, dir: &Path, fsync: bool) -> Result<(), SinkError> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut missing = Vec::new();
    let mut d = dir;
    while !d.is_dir() && d != root {
        missing.push(d.to_path_buf());
        match d.parent() {
            Some(p) => d = p,
            None => break,
        }
    }
    fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
    if fsync {
        for m in missing.iter().rev() {
            if let Some(parent) = m.parent() {
                sync_dir(parent)?;
            }
        }
    }
    Ok(())
}
