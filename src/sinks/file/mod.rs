//! `kind = "file"`: NDJSON files in a directory, rotated by size, fsynced
//! before acknowledging.

mod config;
pub use config::FileSinkConfig;

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use cxrelay_actors::event::now_ms;
use cxrelay_actors::Event;
use futures_util::future::LocalBoxFuture;

use crate::sinks::{encode_ndjson, SinkError, SinkWriter};

/// Writes NDJSON files into a directory, one event per line, rotating by
/// size. A commit is flush + fsync, so acknowledged events survive a crash.
pub struct FileWriter {
    dir: PathBuf,
    rotate_bytes: u64,
    fsync: bool,
    current: Option<Current>,
    /// Bytes of the current file that are committed (for undoing a failed
    /// write).
    committed_len: u64,
    buf: Vec<u8>,
    files_opened: u64,
}

struct Current {
    file: File,
    path: PathBuf,
    len: u64,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SinkError {
    let what = what.into();
    move |source| SinkError::Io { what, source }
}

impl FileWriter {
    /// A writer into `dir` (created if missing). A torn last line left by a
    /// crash in the newest file is cut off: its event was never
    /// acknowledged and will be delivered again.
    pub fn open(dir: &Path, rotate_bytes: u64, fsync: bool) -> Result<Self, SinkError> {
        fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        repair_newest(dir)?;
        Ok(FileWriter {
            dir: dir.to_path_buf(),
            rotate_bytes: rotate_bytes.max(1),
            fsync,
            current: None,
            committed_len: 0,
            buf: Vec::with_capacity(1 << 20),
            files_opened: 0,
        })
    }

    fn open_next(&mut self) -> Result<(), SinkError> {
        // Names sort by creation: a millisecond timestamp, then a counter for
        // files opened within one millisecond.
        let path = self.dir.join(format!(
            "events-{:013}-{:04}.ndjson",
            now_ms(),
            self.files_opened % 10_000
        ));
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&path)
            .map_err(io(format!("creating {}", path.display())))?;
        if self.fsync {
            // The new directory entry must be durable too.
            File::open(&self.dir)
                .and_then(|d| d.sync_all())
                .map_err(io(format!("syncing directory {}", self.dir.display())))?;
        }
        self.files_opened += 1;
        self.committed_len = 0;
        self.current = Some(Current { file, path, len: 0 });
        Ok(())
    }
}

impl SinkWriter for FileWriter {
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        let r = self.write(events).and_then(|_| self.sync());
        Box::pin(std::future::ready(r))
    }

    fn describe(&self) -> serde_json::Value {
        serde_json::json!({
            "dir": self.dir.display().to_string(),
            "file": self.current.as_ref().map(|c| c.path.display().to_string()),
            "file_bytes": self.current.as_ref().map_or(0, |c| c.len),
            "files_opened": self.files_opened,
        })
    }
}

impl FileWriter {
    /// Appends a batch to the current file (opening one if needed).
    pub fn write(&mut self, events: &[Arc<Event>]) -> Result<(), SinkError> {
        if self.current.is_none() {
            self.open_next()?;
        }
        self.buf.clear();
        for ev in events {
            encode_ndjson(ev, &mut self.buf);
        }
        let cur = self.current.as_mut().expect("opened above");
        if let Err(e) = cur.file.write_all(&self.buf) {
            // Undo the partial batch so that a retry does not duplicate it.
            let _ = cur.file.set_len(self.committed_len);
            cur.len = self.committed_len;
            return Err(io(format!("writing {}", cur.path.display()))(e));
        }
        cur.len += self.buf.len() as u64;
        Ok(())
    }

    /// Makes what was written durable; rotates past the size limit.
    pub fn sync(&mut self) -> Result<(), SinkError> {
        let Some(cur) = self.current.as_mut() else {
            return Ok(());
        };
        if self.fsync {
            if let Err(e) = cur.file.sync_data() {
                let _ = cur.file.set_len(self.committed_len);
                cur.len = self.committed_len;
                return Err(io(format!("syncing {}", cur.path.display()))(e));
            }
        }
        self.committed_len = cur.len;
        if cur.len >= self.rotate_bytes {
            self.current = None;
        }
        Ok(())
    }
}

/// Cuts a torn last line off the newest `.ndjson` file in `dir`.
fn repair_newest(dir: &Path) -> Result<(), SinkError> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(io(format!("listing {}", dir.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ndjson"))
        .collect();
    files.sort();
    let Some(newest) = files.pop() else {
        return Ok(());
    };
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&newest)
        .map_err(io(format!("opening {}", newest.display())))?;
    let len = f.metadata().map_err(io("reading file size"))?.len();
    if len == 0 {
        return Ok(());
    }
    // Scan back from the end for the last newline.
    let mut pos = len;
    let mut chunk = vec![0u8; 64 * 1024];
    let keep = loop {
        let start = pos.saturating_sub(chunk.len() as u64);
        let n = (pos - start) as usize;
        f.seek(SeekFrom::Start(start)).map_err(io("seeking"))?;
        f.read_exact(&mut chunk[..n]).map_err(io("reading"))?;
        if let Some(i) = chunk[..n].iter().rposition(|&c| c == b'\n') {
            break start + i as u64 + 1;
        }
        if start == 0 {
            break 0;
        }
        pos = start;
    };
    if keep < len {
        tracing::warn!(file = %newest.display(), cut = len - keep, "cutting a torn last line left by a crash");
        f.set_len(keep).map_err(io("truncating a torn line"))?;
        f.sync_all().map_err(io("syncing"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(i: u64) -> Arc<Event> {
        Arc::new(
            Event::builder("s", "t")
                .id(i.to_string())
                .seq(i)
                .payload(&b"{}"[..])
                .build(),
        )
    }

    fn lines(dir: &Path) -> Vec<String> {
        let mut files: Vec<_> = fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        files
            .iter()
            .flat_map(|f| {
                fs::read_to_string(f)
                    .unwrap()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    #[test]
    fn writes_rotates_and_keeps_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = FileWriter::open(dir.path(), 300, true).unwrap();
        for i in 0..10 {
            w.write(&[ev(i)]).unwrap();
            w.sync().unwrap();
        }
        let files = fs::read_dir(dir.path()).unwrap().count();
        assert!(files > 1, "rotated into {files} files");
        let ids: Vec<String> = lines(dir.path())
            .iter()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["id"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(ids, (0..10).map(|i| i.to_string()).collect::<Vec<_>>());
    }

    #[test]
    fn a_torn_last_line_is_cut_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events-0000000000001-0000.ndjson");
        fs::write(&path, b"{\"id\":\"1\"}\n{\"id\":\"2\",\"pay").unwrap();
        FileWriter::open(dir.path(), 1 << 20, true).unwrap();
        assert_eq!(fs::read_to_string(&path).unwrap(), "{\"id\":\"1\"}\n");
    }
}
