//! The listener's state file: what the file sink has made durable.
//!
//! `<path>/.cxrelay-<listener>.state` records, after each durable batch, the
//! highest journal position written and, for every file still open, its
//! committed length. Saves alternate between two fixed slots of one file,
//! each with a generation and a checksum, written in place and synced: one
//! `fdatasync` per batch, no rename, the same file (a reader following the
//! directory sees no churn). A torn save leaves the other slot, the last
//! good state, so after a crash it says exactly which bytes of which
//! temporary files are committed and which events are already in files.

use std::fs::{self, File, OpenOptions};
use std::io::ErrorKind;
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::compression::Compression;
use super::config::Encoding;
use super::partition::sanitised;
use crate::sinks::SinkError;

/// The state file format's version.
const VERSION: u32 = 2;
/// Bytes of one slot: the header and the state as JSON (a state with the
/// most open files allowed fits many times over).
pub const SLOT_BYTES: usize = 64 << 10;
/// A slot's header: magic, generation, length, CRC-32 of the JSON.
const HEADER: usize = 4 + 8 + 4 + 4;
const MAGIC: &[u8; 4] = b"CXFS";

/// What a listener's file sink has made durable.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkState {
    /// The format's version.
    pub version: u32,
    /// The listener it belongs to.
    pub listener: String,
    /// The highest journal position in a committed file (0: none, or the
    /// journal is off).
    pub seq: u64,
    /// The number of the next file opened (never reused).
    pub next_file: u64,
    /// The files open for writing, with their committed lengths.
    pub open: Vec<OpenPart>,
    /// Which save this is (the slot written is the generation's parity).
    #[serde(skip)]
    pub generation: u64,
}

/// A temporary file being written, as recorded in the state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenPart {
    /// Its directory relative to the root (`""`: the root itself).
    pub partition: String,
    /// The temporary file's name in that directory.
    pub part: String,
    /// The name it gets once complete.
    pub name: String,
    /// Bytes committed (everything after is an unfinished batch).
    pub len: u64,
    /// When it was opened, in milliseconds since the epoch (its age decides
    /// `rotate_interval`, across restarts too).
    pub opened_ms: i64,
    /// How its content is compressed.
    pub compression: Compression,
    /// How its lines are encoded.
    pub encoding: Encoding,
}

impl OpenPart {
    /// The temporary file's path under `root`.
    pub fn part_path(&self, root: &Path) -> PathBuf {
        root.join(&self.partition).join(&self.part)
    }

    /// The final file's path under `root`.
    pub fn final_path(&self, root: &Path) -> PathBuf {
        root.join(&self.partition).join(&self.name)
    }

    /// Whether its paths stay under the root: the file is ours, but a path
    /// that leaves the root is never followed, whoever wrote it.
    fn is_confined(&self) -> bool {
        let plain = |name: &str| !name.is_empty() && !name.contains('/') && name != "." && name != "..";
        plain(&self.part)
            && plain(&self.name)
            && Path::new(&self.partition)
                .components()
                .all(|c| matches!(c, Component::Normal(_)))
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SinkError {
    let what = what.into();
    move |source| SinkError::Io { what, source }
}

/// Where `listener`'s state lives under `root`.
pub fn state_path(root: &Path, listener: &str) -> PathBuf {
    root.join(format!(".cxrelay-{}.state", sanitised(listener)))
}

impl SinkState {
    /// A fresh state for `listener`.
    pub fn new(listener: &str) -> Self {
        SinkState {
            version: VERSION,
            listener: listener.to_string(),
            ..SinkState::default()
        }
    }

    /// Reads the state at `path`; `None` when there is none yet. A state
    /// that cannot be read is an error: guessing could duplicate or skip
    /// events.
    pub fn load(path: &Path) -> Result<Option<Self>, SinkError> {
        let bytes = match fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io(format!("reading {}", path.display()))(e)),
        };
        let invalid = |why: String| SinkError::Io {
            what: format!(
                "reading {} (the file sink's record of what is durable; move it away to start afresh, \
                 at the cost of duplicates or stray temporary files)",
                path.display()
            ),
            source: std::io::Error::new(ErrorKind::InvalidData, why),
        };
        // The newest slot that is whole; the other is the one before it.
        let newest = bytes
            .chunks(SLOT_BYTES)
            .take(2)
            .filter_map(read_slot)
            .max_by_key(|(generation, _)| *generation);
        let Some((generation, json)) = newest else {
            return Err(invalid("no complete state in either slot".into()));
        };
        let mut state: SinkState = serde_json::from_slice(json).map_err(|e| invalid(e.to_string()))?;
        if state.version != VERSION {
            return Err(invalid(format!(
                "version {} (this cxrelay reads {VERSION})",
                state.version
            )));
        }
        if let Some(p) = state.open.iter().find(|p| !p.is_confined()) {
            return Err(invalid(format!("a file outside the directory: {p:?}")));
        }
        state.generation = generation;
        Ok(Some(state))
    }

    /// Saves the state into the slot after the last one written; with
    /// `fsync`, durably. The first save creates the file and syncs its
    /// directory.
    pub fn save(&mut self, path: &Path, fsync: bool) -> Result<(), SaveError> {
        let before = |e| SaveError {
            replaced: false,
            error: e,
        };
        let json = serde_json::to_vec(self).map_err(|e| {
            before(SinkError::Io {
                what: "encoding the file sink state".into(),
                source: std::io::Error::other(e),
            })
        })?;
        if json.len() > SLOT_BYTES - HEADER {
            return Err(before(SinkError::Io {
                what: format!("saving {}", path.display()),
                source: std::io::Error::other(format!(
                    "the state is {} bytes, more than a slot holds (fewer open files: max_open_files)",
                    json.len()
                )),
            }));
        }
        let created = !path.exists();
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| before(io(format!("opening {}", path.display()))(e)))?;
        let generation = self.generation + 1;
        let mut slot = Vec::with_capacity(HEADER + json.len());
        slot.extend_from_slice(MAGIC);
        slot.extend_from_slice(&generation.to_le_bytes());
        slot.extend_from_slice(&(json.len() as u32).to_le_bytes());
        slot.extend_from_slice(&crc32fast::hash(&json).to_le_bytes());
        slot.extend_from_slice(&json);
        let offset = (generation % 2) * SLOT_BYTES as u64;
        f.write_all_at(&slot, offset)
            .map_err(|e| before(io(format!("writing {}", path.display()))(e)))?;
        // Written: from here the new state may be what a restart reads.
        self.generation = generation;
        if fsync {
            f.sync_data().map_err(|e| SaveError {
                replaced: true,
                error: io(format!("syncing {}", path.display()))(e),
            })?;
            if created {
                let dir = path.parent().unwrap_or(Path::new("."));
                sync_dir(dir).map_err(|error| SaveError { replaced: true, error })?;
            }
        }
        Ok(())
    }
}

/// A slot's generation and JSON, when it is whole.
fn read_slot(slot: &[u8]) -> Option<(u64, &[u8])> {
    if slot.len() < HEADER || &slot[..4] != MAGIC {
        return None;
    }
    let generation = u64::from_le_bytes(slot[4..12].try_into().ok()?);
    let len = u32::from_le_bytes(slot[12..16].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(slot[16..20].try_into().ok()?);
    let json = slot.get(HEADER..HEADER + len)?;
    (crc32fast::hash(json) == crc).then_some((generation, json))
}

/// Why a state could not be saved, and whether the new one may be in
/// place anyway (written, but not synced): then what it records must not
/// be undone.
#[derive(Debug)]
pub struct SaveError {
    /// The new state was written into its slot.
    pub replaced: bool,
    /// What failed.
    pub error: SinkError,
}

/// fsyncs a directory, so that the entries created, renamed or removed in
/// it are durable.
pub fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(format!("syncing directory {}", dir.display())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_torn_save_leaves_the_state_before_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path(), "files");
        let mut state = SinkState::new("files");
        state.seq = 10;
        state.save(&path, true).unwrap();
        state.seq = 20;
        state.save(&path, true).unwrap();
        assert_eq!(SinkState::load(&path).unwrap().unwrap().seq, 20);
        // The newest save was torn: its slot fails its checksum.
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(b"garbage", (state.generation % 2) * SLOT_BYTES as u64 + HEADER as u64)
            .unwrap();
        let back = SinkState::load(&path).unwrap().unwrap();
        assert_eq!(back.seq, 10);
        // Saving goes on from there without losing the good slot.
        let mut back = back;
        back.seq = 30;
        back.save(&path, true).unwrap();
        assert_eq!(SinkState::load(&path).unwrap().unwrap().seq, 30);
    }

    fn part(partition: &str, part: &str) -> OpenPart {
        OpenPart {
            partition: partition.into(),
            part: part.into(),
            name: "f.ndjson".into(),
            len: 12,
            opened_ms: 5,
            compression: Compression::Gzip,
            encoding: Encoding::Payload,
        }
    }

    #[test]
    fn saves_atomically_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path(), "ware/house");
        assert_eq!(path.file_name().unwrap(), ".cxrelay-ware_house.state");
        assert_eq!(SinkState::load(&path).unwrap(), None);
        let mut s = SinkState::new("ware/house");
        s.seq = 42;
        s.next_file = 3;
        s.open.push(part("a/b", ".x.part"));
        s.save(&path, true).unwrap();
        assert_eq!(SinkState::load(&path).unwrap(), Some(s.clone()));
        s.seq = 43;
        s.save(&path, false).unwrap();
        assert_eq!(SinkState::load(&path).unwrap().unwrap().seq, 43);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn an_unreadable_or_escaping_state_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = state_path(dir.path(), "l");
        fs::write(&path, b"{\"version\":1,").unwrap();
        let e = SinkState::load(&path).unwrap_err().to_string();
        assert!(e.contains("move it away"), "{e}");
        for bad in [part("../x", ".p"), part("/abs", ".p"), part("a", "../p"), part("a", "")] {
            let mut s = SinkState::new("l");
            s.open.push(bad.clone());
            s.save(&path, false).unwrap();
            let e = SinkState::load(&path).unwrap_err().to_string();
            assert!(e.contains("outside the directory"), "{bad:?}: {e}");
        }
    }
}
