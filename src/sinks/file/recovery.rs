//! Start-up after a crash: the state file says which bytes of which
//! temporary files are committed; everything else is undone.
//!
//! - A temporary file longer than recorded holds a batch that was written
//!   but whose state was never saved: it is cut back (that batch was not
//!   acknowledged and will be replayed).
//! - A recorded temporary file that is gone was closed before the state was
//!   saved again (its final file exists), or taken away: it is forgotten.
//! - A temporary file the state does not name cannot exist: a file is
//!   recorded (empty) before it is created.
//! - Nothing is closed early, except files written with other settings
//!   (compression, encoding) than the new ones: they are complete, and are
//!   closed rather than mixed. The others continue, and close by rotation.

use std::fs::{self, OpenOptions};
use std::io::ErrorKind;
use std::path::Path;

use super::compression::Compression;
use super::config::FileSettings;
use super::part_file::PartFile;
use super::state::{state_path, SinkState};
use crate::sinks::SinkError;

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SinkError {
    let what = what.into();
    move |source| SinkError::Io { what, source }
}

/// What a writer starts from.
pub struct Recovered {
    /// The state, its open files being `parts`.
    pub state: SinkState,
    /// The temporary files to continue.
    pub parts: Vec<PartFile>,
    /// Uncommitted bytes cut off temporary files.
    pub cut_bytes: u64,
}

/// Brings the files under `settings.root` back to what the state records
/// as committed, and saves the state as it now is.
pub fn recover(settings: &FileSettings) -> Result<Recovered, SinkError> {
    let root = &settings.root;
    fs::create_dir_all(root).map_err(io(format!("creating {}", root.display())))?;
    std::fs::create_dir_all(&settings.state_dir).map_err(|source| SinkError::Io {
        what: format!("creating {}", settings.state_dir.display()),
        source,
    })?;
    let path = state_path(&settings.state_dir, &settings.listener);
    let mut state = match SinkState::load(&path)? {
        Some(s) if s.listener != settings.listener => {
            return Err(SinkError::Io {
                what: format!("reading {}", path.display()),
                source: std::io::Error::new(
                    ErrorKind::InvalidData,
                    format!(
                        "it belongs to listener `{}`, not `{}`: give the listeners different paths",
                        s.listener, settings.listener
                    ),
                ),
            })
        }
        Some(s) => s,
        None => {
            repair_legacy(root)?;
            SinkState::new(&settings.listener)
        }
    };
    let mut parts = Vec::new();
    let mut cut_bytes = 0;
    for mut rec in std::mem::take(&mut state.open) {
        let part_path = rec.part_path(root);
        let len = match fs::metadata(&part_path) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                tracing::debug!(file = %part_path.display(), "a recorded file was closed or taken away before the state was saved");
                continue;
            }
            Err(e) => return Err(io(format!("inspecting {}", part_path.display()))(e)),
        };
        if len != rec.len {
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .open(&part_path)
                .map_err(io(format!("opening {}", part_path.display())))?;
            let keep = if len > rec.len {
                rec.len
            } else {
                // Shorter than committed: only when fsync is off and the
                // machine (not just the process) stopped. Keep what is
                // whole; the rest is lost.
                let keep = rec
                    .compression
                    .valid_prefix(&f)
                    .map_err(io(format!("reading {}", part_path.display())))?;
                tracing::error!(file = %part_path.display(), recorded = rec.len, found = len, kept = keep,
                    "a file lost committed bytes (fsync is off): events in them are lost");
                keep
            };
            f.set_len(keep)
                .map_err(io(format!("cutting an unfinished batch off {}", part_path.display())))?;
            if settings.fsync {
                f.sync_all().map_err(io(format!("syncing {}", part_path.display())))?;
            }
            if len > keep {
                tracing::warn!(file = %part_path.display(), cut = len - keep,
                    "cut a batch written but not committed before a crash (it is written again)");
                cut_bytes += len - keep;
            }
            rec.len = keep;
        }
        let part = PartFile::reopen(root, rec)?;
        let same = part.rec.compression == settings.compression && part.rec.encoding == settings.encoding;
        if part.rec.len == 0 || !same {
            // Empty: nothing to keep. Other settings: complete as it is,
            // and a file never mixes two formats.
            part.finalize(root, settings.fsync)?;
            continue;
        }
        parts.push(part);
    }
    state.open = parts.iter().map(|p| p.rec.clone()).collect();
    state.save(&path, settings.fsync).map_err(|e| e.error)?;
    Ok(Recovered {
        state,
        parts,
        cut_bytes,
    })
}

/// Before temporary names, files were written under their final names
/// (`events-<ms>-<n>.ndjson`), and a crash could leave a torn last line in
/// the newest. Cut once, when the first state is created: its events were
/// not acknowledged and are written again.
fn repair_legacy(root: &Path) -> Result<(), SinkError> {
    let newest = fs::read_dir(root)
        .map_err(io(format!("listing {}", root.display())))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy())
                .is_some_and(|n| n.starts_with("events-") && n.ends_with(".ndjson"))
        })
        .max();
    let Some(path) = newest else {
        return Ok(());
    };
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io(format!("opening {}", path.display())))?;
    let len = f
        .metadata()
        .map_err(io(format!("inspecting {}", path.display())))?
        .len();
    let keep = Compression::None
        .valid_prefix(&f)
        .map_err(io(format!("reading {}", path.display())))?;
    if keep < len {
        tracing::warn!(file = %path.display(), cut = len - keep, "cutting a torn last line left by a crash");
        f.set_len(keep).map_err(io(format!("truncating {}", path.display())))?;
        f.sync_all().map_err(io(format!("syncing {}", path.display())))?;
    }
    Ok(())
}
