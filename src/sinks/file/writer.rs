//! The file sink's writer: batches into per-partition temporary files,
//! committed through the state file, closed by size, age or pressure.
//!
//! A commit, in order:
//! 1. events at or below the recorded journal position are skipped (they
//!    are in files already: a replay after a crash);
//! 2. files this batch needs are recorded (empty) in the state, then
//!    created, so recovery knows every temporary file that can exist;
//! 3. each partition's lines are appended as one unit (a gzip member, a
//!    zstd frame, or plain lines) and every touched file is fsynced;
//! 4. the state is saved with the batch's highest position and the new
//!    lengths: this is the commit point;
//! 5. only then are files closed (renamed): a closed file never holds a
//!    byte that is not committed, or a crash could make it a duplicate.
//!
//! Any failure before 4 cuts the touched files back to their committed
//! lengths, so the retried batch is written once.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use cxrelay_actors::event::now_ms;
use cxrelay_actors::Event;
use futures_util::future::LocalBoxFuture;

use super::compression::Compression;
use super::config::FileSettings;
use super::part_file::PartFile;
use super::partition::sanitised;
use super::recovery::recover;
use super::state::{state_path, OpenPart, SaveError, SinkState};
use crate::sinks::encode::write_in_pieces;
use crate::sinks::{SinkError, SinkWriter};

/// Writes events into NDJSON files under a root directory, each file under
/// a temporary name until it is complete, and never writes an event twice
/// (with the journal on).
pub struct FileWriter {
    settings: FileSettings,
    state_path: PathBuf,
    /// The durable state; its `open` list is rebuilt from `parts` at each
    /// save.
    state: SinkState,
    /// The open file of each partition (`""`: the root).
    parts: HashMap<String, PartFile>,
    /// Counts batches, to find the least recently written file.
    uses: u64,
    /// Files were closed since the state was last saved.
    state_stale: bool,
    lines: Vec<u8>,
    unit: Vec<u8>,
    stats: Stats,
}

#[derive(Default)]
struct Stats {
    files_opened: u64,
    files_closed: u64,
    events_written: u64,
    bytes_written: u64,
    skipped_replayed: u64,
    cut_at_start: u64,
    last_close_error: Option<String>,
}

/// The error of a batch for a partition whose file is not open.
fn not_open(key: &str) -> SinkError {
    SinkError::Io {
        what: format!("writing partition `{key}`"),
        source: std::io::Error::other("its file is not open"),
    }
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SinkError {
    let what = what.into();
    move |source| SinkError::Io { what, source }
}

impl FileWriter {
    /// A writer on `settings`, after recovering the root directory from
    /// whatever a crash left (see `recovery`).
    pub fn open(settings: FileSettings) -> Result<Self, SinkError> {
        let recovered = recover(&settings)?;
        let mut parts: HashMap<String, PartFile> = HashMap::new();
        let mut state_stale = false;
        for p in recovered.parts {
            if parts.contains_key(&p.rec.partition) {
                // Two files of one partition (never written so, but a
                // state is data): the second is complete as it is.
                p.finalize(&settings.root, settings.fsync)?;
                state_stale = true;
            } else {
                parts.insert(p.rec.partition.clone(), p);
            }
        }
        Ok(FileWriter {
            state_path: state_path(&settings.state_dir, &settings.listener),
            state: recovered.state,
            parts,
            uses: 0,
            state_stale,
            lines: Vec::with_capacity(1 << 20),
            unit: Vec::with_capacity(1 << 20),
            stats: Stats {
                cut_at_start: recovered.cut_bytes,
                ..Stats::default()
            },
            settings,
        })
    }

    /// Writes a batch and makes it durable (steps 1 to 5 above).
    pub fn write_batch(&mut self, events: &[Arc<Event>]) -> Result<(), SinkError> {
        let durable = self.state.seq;
        // With `order_by = "time"` the batch is not in journal order: its
        // highest position is what it covers.
        let batch_max = events.iter().map(|e| e.seq).max().unwrap_or(0);
        let fresh: Vec<&Event> = events
            .iter()
            .map(|e| &**e)
            .filter(|e| e.seq == 0 || e.seq > durable)
            .collect();
        let skipped = events.len() - fresh.len();
        if skipped > 0 {
            self.stats.skipped_replayed += skipped as u64;
            tracing::info!(listener = %self.settings.listener, skipped, durable_seq = durable,
                "skipped replayed events already in files");
        }
        if fresh.is_empty() {
            return Ok(());
        }
        // An earlier failure that could not be undone must be undone
        // before anything is appended, or its bytes would be committed.
        self.rollback()?;
        self.close_expired();
        let groups = self.group(&fresh);
        let touched: HashSet<&str> = groups.iter().map(|(k, _)| k.as_str()).collect();
        let new: Vec<&str> = groups
            .iter()
            .map(|(k, _)| k.as_str())
            .filter(|k| !self.parts.contains_key(*k))
            .collect();
        if !new.is_empty() {
            // Room first: a file this batch does not touch is committed
            // entirely, so closing it now is safe.
            let keep = self.settings.max_open_files.saturating_sub(new.len());
            self.close_least_recent(keep, &touched);
            self.open_new(&new)?;
        }
        self.uses += 1;
        if let Err(e) = self.append_and_sync(&groups) {
            self.rollback_logged();
            return Err(e);
        }
        let before = self.state.seq;
        self.state.seq = before.max(batch_max);
        match self.save_state(&[], true) {
            Ok(()) => {}
            Err(SaveError { replaced: false, error }) => {
                self.state.seq = before;
                self.rollback_logged();
                return Err(error);
            }
            Err(SaveError { replaced: true, error }) => {
                // The new state may be the one on disk: what it records
                // stays written (a retry finds the batch in files).
                self.mark_committed();
                return Err(error);
            }
        }
        self.mark_committed();
        self.stats.events_written += fresh.len() as u64;
        // Past the size limit: complete.
        let full: Vec<String> = groups
            .iter()
            .map(|(k, _)| k)
            .filter(|k| {
                self.parts
                    .get(k.as_str())
                    .is_some_and(|p| p.rec.len >= self.settings.rotate_bytes)
            })
            .cloned()
            .collect();
        for k in full {
            self.close_logged(&k);
        }
        // A batch wider than the bound opened more files than it allows.
        self.close_least_recent(self.settings.max_open_files, &HashSet::new());
        Ok(())
    }

    /// The batch's events by partition directory, in order of first
    /// appearance, each group in batch order.
    fn group<'e>(&self, events: &[&'e Event]) -> Vec<(String, Vec<&'e Event>)> {
        let Some(template) = &self.settings.partition else {
            return vec![(String::new(), events.to_vec())];
        };
        let mut groups: Vec<(String, Vec<&Event>)> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for &ev in events {
            let key = template.render(ev, &self.settings.listener);
            match index.get(&key) {
                Some(&i) => groups[i].1.push(ev),
                None => {
                    index.insert(key.clone(), groups.len());
                    groups.push((key, vec![ev]));
                }
            }
        }
        groups
    }

    /// Records the new files in the state (empty), then creates them.
    fn open_new(&mut self, partitions: &[&str]) -> Result<(), SinkError> {
        let now = now_ms();
        let mut recs = Vec::with_capacity(partitions.len());
        for &partition in partitions {
            recs.push(self.new_record(partition, now));
        }
        self.save_state(&recs, false).map_err(|e| e.error)?;
        for rec in recs {
            let part = PartFile::create(&self.settings.root, rec, self.settings.fsync)?;
            self.stats.files_opened += 1;
            self.parts.insert(part.rec.partition.clone(), part);
        }
        Ok(())
    }

    /// A fresh file's record: names that sort by creation and exist
    /// nowhere yet (the number is never reused, even across restarts).
    fn new_record(&mut self, partition: &str, now: i64) -> OpenPart {
        let listener = sanitised(&self.settings.listener);
        let dir = self.settings.root.join(partition);
        loop {
            let n = self.state.next_file;
            self.state.next_file += 1;
            let stem = format!("{listener}-{:013}-{n:06}", now.max(0));
            let rec = OpenPart {
                partition: partition.to_string(),
                // Hidden, and without the final extension: a loader's
                // `*.ndjson*` never matches it.
                part: format!(".{stem}.part"),
                name: format!("{stem}.{}", self.settings.compression.extension()),
                len: 0,
                opened_ms: now,
                compression: self.settings.compression,
                encoding: self.settings.encoding,
            };
            if !dir.join(&rec.part).exists() && !dir.join(&rec.name).exists() {
                return rec;
            }
        }
    }

    fn append_and_sync(&mut self, groups: &[(String, Vec<&Event>)]) -> Result<(), SinkError> {
        for (key, events) in groups {
            self.lines.clear();
            if self.settings.compression == Compression::None {
                // Uncompressed lines are their own unit: written as they
                // are, a piece at a time.
                let part = self.parts.get_mut(key).ok_or_else(|| not_open(key))?;
                let encoding = self.settings.encoding;
                let stats = &mut self.stats;
                write_in_pieces(
                    events.iter().copied(),
                    &mut self.lines,
                    |ev, out| encoding.encode(ev, out),
                    |piece| {
                        part.append(piece)?;
                        stats.bytes_written += piece.len() as u64;
                        Ok::<(), SinkError>(())
                    },
                )?;
                part.last_used = self.uses;
                continue;
            }
            for ev in events {
                self.settings.encoding.encode(ev, &mut self.lines);
            }
            self.unit.clear();
            self.settings
                .compression
                .encode_unit(&self.lines, &mut self.unit)
                .map_err(io("compressing a batch"))?;
            let part = self.parts.get_mut(key).ok_or_else(|| not_open(key))?;
            part.append(&self.unit)?;
            part.last_used = self.uses;
            self.stats.bytes_written += self.unit.len() as u64;
        }
        if self.settings.fsync {
            for part in self.parts.values_mut().filter(|p| p.is_dirty()) {
                part.sync()?;
            }
        }
        Ok(())
    }

    /// Cuts every file back to its committed length; answers the first
    /// file that could not be cut (the others are still tried).
    fn rollback(&mut self) -> Result<(), SinkError> {
        let mut first = None;
        for part in self.parts.values_mut() {
            if let Err(e) = part.rollback() {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }

    /// [`FileWriter::rollback`] after a failed batch, whose error is the
    /// one to report. A file not cut now is cut before the next batch (and
    /// by recovery, since the state records its committed length).
    fn rollback_logged(&mut self) {
        if let Err(e) = self.rollback() {
            tracing::error!(listener = %self.settings.listener, error = %e, "could not undo a failed batch yet");
        }
    }

    fn mark_committed(&mut self) {
        for part in self.parts.values_mut() {
            part.committed();
        }
    }

    /// Saves the state with the open files (at their written lengths when
    /// `written`, else committed ones) plus `intents`.
    fn save_state(&mut self, intents: &[OpenPart], written: bool) -> Result<(), SaveError> {
        let mut open: Vec<OpenPart> = self
            .parts
            .values()
            .map(|p| {
                let mut rec = p.rec.clone();
                if written {
                    rec.len = p.written();
                }
                rec
            })
            .chain(intents.iter().cloned())
            .collect();
        open.sort_by(|a, b| a.part.cmp(&b.part));
        self.state.open = open;
        self.state.save(&self.state_path, self.settings.fsync)?;
        self.state_stale = false;
        Ok(())
    }

    /// Closes the file of `partition`.
    fn close(&mut self, partition: &str) -> Result<(), SinkError> {
        let Some(part) = self.parts.get_mut(partition) else {
            return Ok(());
        };
        // A closed file holds committed bytes only.
        part.rollback()?;
        match part.finalize(&self.settings.root, self.settings.fsync) {
            Ok(closed) => {
                if let Some(path) = closed {
                    tracing::debug!(file = %path.display(), "closed");
                    self.stats.files_closed += 1;
                }
                self.parts.remove(partition);
                self.state_stale = true;
                Ok(())
            }
            Err(e) => {
                self.stats.last_close_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// Closes a file where failing is not the batch's problem: it stays
    /// open, and closing it is tried again at the next tick.
    fn close_logged(&mut self, partition: &str) {
        if let Err(e) = self.close(partition) {
            tracing::warn!(listener = %self.settings.listener, error = %e, "could not close a file; retrying later");
        }
    }

    /// Closes least recently written files, except `spare`, until at most
    /// `keep` are open.
    fn close_least_recent(&mut self, keep: usize, spare: &HashSet<&str>) {
        while self.parts.len() > keep {
            let oldest = self
                .parts
                .iter()
                .filter(|(k, _)| !spare.contains(k.as_str()))
                .min_by_key(|(_, p)| (p.last_used, p.rec.opened_ms))
                .map(|(k, _)| k.clone());
            let Some(k) = oldest else {
                return;
            };
            if self.close(&k).is_err() {
                return;
            }
        }
    }

    /// Closes files at least `rotate_interval` old; answers the first
    /// failure (the others are still tried).
    fn close_expired(&mut self) -> Option<SinkError> {
        let max_age = i64::try_from(self.settings.rotate_interval.as_millis()).unwrap_or(i64::MAX);
        let now = now_ms();
        let expired: Vec<String> = self
            .parts
            .iter()
            .filter(|(_, p)| now.saturating_sub(p.rec.opened_ms) >= max_age)
            .map(|(k, _)| k.clone())
            .collect();
        let mut first = None;
        for k in expired {
            if let Err(e) = self.close(&k) {
                first.get_or_insert(e);
            }
        }
        first
    }
}

impl FileWriter {
    /// Closes every open file and records it.
    pub(super) fn close_all(&mut self) -> Result<(), SinkError> {
        let keys: Vec<String> = self.parts.keys().cloned().collect();
        for k in keys {
            self.close(&k)?;
        }
        self.save_state(&[], false).map_err(|e| e.error)
    }
}

#[cfg(test)]
impl FileWriter {
    /// How many files are open.
    pub(super) fn open_files(&self) -> usize {
        self.parts.len()
    }

    /// The highest journal position recorded as written.
    pub(super) fn durable_seq(&self) -> u64 {
        self.state.seq
    }
}

impl SinkWriter for FileWriter {
    fn commit(&mut self, events: &[Arc<Event>]) -> LocalBoxFuture<'static, Result<(), SinkError>> {
        let r = self.write_batch(events);
        Box::pin(std::future::ready(r))
    }

    /// Closes files that reached `rotate_interval`, so a quiet listener's
    /// data reaches loaders in time, and records closings in the state.
    fn tick(&mut self) -> Result<(), SinkError> {
        let failed = self.close_expired();
        if self.state_stale {
            self.save_state(&[], false).map_err(|e| e.error)?;
        }
        failed.map_or(Ok(()), Err)
    }

    /// At shutdown every open file holds only committed lines: close them
    /// all, so a service stopped for good leaves nothing hidden.
    fn close(&mut self) -> Result<(), SinkError> {
        self.close_all()
    }

    fn describe(&self) -> serde_json::Value {
        let mut open: Vec<String> = self
            .parts
            .values()
            .map(|p| p.rec.part_path(&self.settings.root).display().to_string())
            .collect();
        open.sort();
        open.truncate(8);
        serde_json::json!({
            "dir": self.settings.root.display().to_string(),
            "open_files": self.parts.len(),
            "open": open,
            "files_opened": self.stats.files_opened,
            "files_closed": self.stats.files_closed,
            "events_written": self.stats.events_written,
            "bytes_written": self.stats.bytes_written,
            "durable_seq": self.state.seq,
            "skipped_replayed": self.stats.skipped_replayed,
            "cut_at_start_bytes": self.stats.cut_at_start,
            "last_close_error": self.stats.last_close_error,
        })
    }
}
