//! The journal: append-only segment files of framed records.
//!
//! Each group commit is one record ([`record`]) in one frame ([`frame`]:
//! length + CRC), appended to the current segment (`journal/<n>.seg`) and
//! made durable with one `fdatasync`; a segment past its size is closed and
//! the next one created (the directory is synced so the new file survives
//! a crash). Positions are consecutive across records.
//!
//! Truncation is logical first: records every durable listener has are
//! forgotten from the in-memory index (and from the byte count the bound
//! is checked against); a segment whose records are all forgotten is
//! deleted once the store has made the keys and checkpoints it carried
//! durable elsewhere (see [`crate::store::StoreDb`]).
//!
//! Commits should overwrite blocks the file already has: their `fdatasync`
//! then writes the data alone, without a metadata commit for a new file
//! size or new blocks (measured here: 35 instead of 75 us of CPU, and half
//! the wall time, per sync). So a deleted segment is kept as the spare
//! (`journal/spare`) and becomes the next segment, its old bytes
//! overwritten in place (cached pages, no allocation); a new file is
//! extended with zeros ahead of its records, a few MiB at a time, each
//! extension synced with the record that made it. Every record is written
//! with a zero header after it ([`frame::END`]): what follows the last
//! record, zeros or the spare's old bytes, is never read as a record. A
//! spare's first header is zeroed and synced before it can become a
//! segment, and a segment is cut to its records when it is closed, so only
//! the last segment has old bytes after its end.
//!
//! Records are written past the page cache where the file system allows
//! it (`direct.rs`: each commit rewrites the partial block it starts in).
//!
//! Crash safety: a record is acknowledged (a webhook's 202, a source's
//! checkpoint) only after its frame and everything before it are synced.
//! A crash can therefore leave at most the frames of unacknowledged groups
//! damaged, and only at the end of the last segment. Opening reads every
//! frame, checks its CRC, and cuts the last segment back to its last
//! intact frame; damage anywhere else (bad sectors) skips the rest of that
//! segment, loudly.

mod direct;
pub mod frame;
pub mod record;

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use cxrelay_actors::Event;

use crate::store::idempotency::KeyHash;
use record::Record;

/// The directory of segment files inside `data_dir`.
pub const DIR_NAME: &str = "journal";

/// The deleted segment kept for reuse, inside the journal's directory.
const SPARE: &str = "spare";

/// One segment file.
#[derive(Debug, Clone, Copy)]
struct Segment {
    id: u64,
    len: u64,
}

/// Consecutive records of one segment, as one index entry: the index stays
/// small (entries of up to `granule` bytes) and truncation frees whole
/// entries.
#[derive(Debug, Clone, Copy)]
struct Span {
    segment: u64,
    offset: u64,
    first_seq: u64,
    last_seq: u64,
    bytes: u64,
    first_received_ms: Option<i64>,
}

/// What the index keeps of a record.
#[derive(Debug, Clone, Copy)]
struct Summary {
    first_seq: u64,
    last_seq: u64,
    first_received_ms: Option<i64>,
}

impl Summary {
    fn of(r: &Record<'_>) -> Self {
        Summary {
            first_seq: r.first_seq,
            last_seq: r.last_seq(),
            first_received_ms: r.first_received_ms(),
        }
    }
}

/// An event read back, with its target listener.
pub type Entry = (Event, Option<String>);

/// What opening found in the segments besides the events.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The position after the last event held.
    pub next_seq: u64,
    /// Idempotency keys carried by the records, with their expiry.
    pub keys: Vec<(KeyHash, i64)>,
    /// The last checkpoint of each source carried by the records.
    pub checkpoints: HashMap<String, Vec<u8>>,
    /// Damage found and repaired, for the log.
    pub repairs: Vec<String>,
}

/// The segment files and their index.
#[derive(Debug)]
pub struct SegmentLog {
    dir: PathBuf,
    segments: VecDeque<Segment>,
    /// The last segment, open for writing at its end.
    file: Option<File>,
    /// The last segment's size on disk: after its records, zeros or a reused
    /// file's old bytes up to this.
    allocated: u64,
    spans: VecDeque<Span>,
    held_bytes: u64,
    truncated_upto: u64,
    segment_bytes: u64,
    granule: u64,
    /// The frame being built (reused: a commit allocates nothing here).
    buf: Vec<u8>,
    /// Whether `journal/spare` is ready to become the next segment.
    spare: bool,
    /// Whether to try direct writes (off once the file system refused).
    direct: bool,
    /// Whether the open segment is written directly.
    file_direct: bool,
    /// The end of the segment's records that a direct write rewrites.
    tail: direct::Tail,
    /// Where the frame being built starts in `buf` (after a direct write's
    /// alignment and tail).
    frame_at: usize,
}

fn path_of(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes the spare safe to reuse (its first header zeroed, durably):
/// one just renamed, or one left by a crash before that; answers whether
/// there is one (a file too short to hold a header is removed).
fn prepare_spare(path: &Path) -> std::io::Result<bool> {
    let f = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    let mut head = [0u8; frame::HEADER];
    if f.read_exact_at(&mut head, 0).is_err() {
        drop(f);
        std::fs::remove_file(path)?;
        return Ok(false);
    }
    if head != frame::END {
        f.write_all_at(&frame::END, 0)?;
        f.sync_data()?;
    }
    Ok(true)
}

/// Asks the kernel to read a reused segment into the page cache ahead of
/// the writes: a write that ends inside a page the cache no longer holds
/// would otherwise wait for that page to be read.
fn read_ahead(f: &File) {
    use std::os::fd::AsRawFd;
    // SAFETY: the descriptor is open for the duration of the call; the
    // advice changes no memory of ours.
    let _ = unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_WILLNEED) };
}

impl SegmentLog {
    /// Opens the segments in `dir` (creating it), forgetting what is at or
    /// below `truncated_upto`, and repairing a torn tail.
    pub fn open(dir: &Path, truncated_upto: u64) -> std::io::Result<(Self, Recovered)> {
        std::fs::create_dir_all(dir)?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        }
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name();
                let name = name.to_str()?;
                name.strip_suffix(".seg")?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut log = SegmentLog {
            dir: dir.to_path_buf(),
            segments: VecDeque::new(),
            file: None,
            allocated: 0,
            spans: VecDeque::new(),
            held_bytes: 0,
            truncated_upto,
            segment_bytes: 64 << 20,
            granule: 256 << 10,
            buf: Vec::with_capacity(1 << 20),
            spare: false,
            direct: true,
            file_direct: false,
            tail: direct::Tail::default(),
            frame_at: 0,
        };
        let mut rec = Recovered {
            next_seq: 1,
            ..Recovered::default()
        };
        for (i, &id) in ids.iter().enumerate() {
            let last = i + 1 == ids.len();
            let len = log.load_segment(id, last, &mut rec)?;
            log.segments.push_back(Segment { id, len });
        }
        if let Some(seg) = log.segments.back().copied() {
            log.open_last(seg.id)?;
        }
        log.spare = prepare_spare(&dir.join(SPARE))?;
        Ok((log, rec))
    }

    /// Opens the last segment for writing after its records.
    fn open_last(&mut self, id: u64) -> std::io::Result<()> {
        let path = path_of(&self.dir, id);
        let (f, direct) = direct::open(&path, false, self.direct)?;
        if direct {
            let end = self.segments.back().map_or(0, |s| s.len);
            self.tail.resume(&path, end)?;
        }
        self.allocated = f.metadata()?.len();
        self.file = Some(f);
        self.file_direct = direct;
        Ok(())
    }

    /// Reads one segment into the index; answers its good length (the last
    /// segment is cut back to it).
    fn load_segment(&mut self, id: u64, last: bool, rec: &mut Recovered) -> std::io::Result<u64> {
        let path = path_of(&self.dir, id);
        let data = std::fs::read(&path)?;
        let mut at = 0usize;
        let mut next_seq = 0;
        let damage = loop {
            match frame::next(&data[at..]) {
                frame::Next::Frame(payload, n) => {
                    let Ok(r) = Record::parse(payload) else {
                        break Some("a record it cannot read");
                    };
                    if r.first_seq < next_seq {
                        // Positions only grow: this is a record of the
                        // file's earlier use, after a crash tore the
                        // end header written with the last record.
                        break None;
                    }
                    next_seq = r.first_seq + u64::from(r.count);
                    rec.next_seq = rec.next_seq.max(r.first_seq + u64::from(r.count));
                    rec.keys.extend(r.keys().map(|k| (k, r.keys_expire_ms)));
                    for (source, value) in &r.checkpoints {
                        rec.checkpoints.insert((*source).to_string(), value.to_vec());
                    }
                    self.index(id, at as u64, n as u64, Summary::of(&r));
                    at += n;
                }
                frame::Next::End => break None,
                frame::Next::Torn => break Some("a frame cut short"),
                frame::Next::Corrupt => break Some("a frame that fails its checksum"),
            }
        };
        if data[at..].iter().all(|&b| b == 0) || (last && damage.is_none()) {
            // The records' end: zeros written ahead of them, or (only in
            // the last segment) the old bytes of a reused file.
            return Ok(at as u64);
        }
        let what = damage.unwrap_or("old bytes after the end of its records");
        let cut = data.len() - at;
        if last {
            // Only the group being written when cxrelay stopped can be
            // damaged here, and it was never acknowledged.
            let f = OpenOptions::new().write(true).open(&path)?;
            f.set_len(at as u64)?;
            f.sync_all()?;
            rec.repairs.push(format!(
                "journal segment {}: {what} at byte {at}; cut the {cut} bytes from there (a write torn by a crash, never acknowledged)",
                path.display()
            ));
            Ok(at as u64)
        } else {
            rec.repairs.push(format!(
                "journal segment {}: {what} at byte {at}; the {cut} bytes after it are skipped (damaged storage?)",
                path.display()
            ));
            Ok(data.len() as u64)
        }
    }

    /// Adds a record to the index (unless it is truncated already).
    fn index(&mut self, segment: u64, offset: u64, bytes: u64, r: Summary) {
        if r.last_seq <= self.truncated_upto {
            return;
        }
        self.held_bytes += bytes;
        if let Some(s) = self.spans.back_mut() {
            if s.segment == segment && s.bytes < self.granule {
                s.last_seq = s.last_seq.max(r.last_seq);
                s.bytes += bytes;
                s.first_received_ms = s.first_received_ms.or(r.first_received_ms);
                return;
            }
        }
        self.spans.push_back(Span {
            segment,
            offset,
            first_seq: r.first_seq,
            last_seq: r.last_seq,
            bytes,
            first_received_ms: r.first_received_ms,
        });
    }

    /// Sizes segments and index entries for a journal bound of `max_bytes`:
    /// a small bound gets small segments, so that truncation frees space
    /// at its scale.
    pub fn size_for(&mut self, max_bytes: u64) {
        self.segment_bytes = (max_bytes / 4).clamp(64 << 10, 64 << 20);
        self.granule = (max_bytes / 64).clamp(1 << 10, 1 << 20);
    }

    /// The buffer to encode the next record into (after [`frame::HEADER`]
    /// bytes left for the frame header); then [`SegmentLog::write_record`].
    pub fn record_buf(&mut self) -> &mut Vec<u8> {
        self.frame_at = if self.direct {
            self.tail.begin(&mut self.buf)
        } else {
            self.buf.clear();
            0
        };
        self.buf.extend_from_slice(&[0; frame::HEADER]);
        &mut self.buf
    }

    /// Appends the record built in [`SegmentLog::record_buf`] and makes it
    /// durable. Answers the bytes it takes. On an error nothing of it is
    /// acknowledged, and the segment is reopened (cut back) before the next
    /// write.
    pub fn write_record(&mut self) -> std::io::Result<u64> {
        frame::seal(&mut self.buf, self.frame_at);
        let result = self.write_frame();
        if result.is_err() {
            // Whatever part of the frame reached the file is not a record:
            // cut it off now if the file lets us (recovery re-checks).
            let prev = self.segments.back().map_or(0, |s| s.len);
            if let Some(f) = self.file.take() {
                let _ = f.set_len(prev);
            }
            self.allocated = prev;
        }
        result
    }

    fn write_frame(&mut self) -> std::io::Result<u64> {
        let rotate = self.segments.back().is_none_or(|s| s.len >= self.segment_bytes);
        if rotate || self.file.is_none() {
            if rotate {
                if let (Some(f), Some(seg)) = (&self.file, self.segments.back()) {
                    // Closed at its records' end: only the last segment
                    // may have a spare's old bytes after them.
                    f.set_len(seg.len)?;
                    f.sync_all()?;
                }
                let id = self.segments.back().map_or(1, |s| s.id + 1);
                let f = self.new_segment(id)?;
                // The new file's name must survive a crash with its data.
                sync_dir(&self.dir)?;
                self.allocated = f.metadata()?.len();
                self.segments.push_back(Segment { id, len: 0 });
                self.file = Some(f);
            } else {
                let id = self.segments.back().map_or(1, |s| s.id);
                self.open_last(id)?;
            }
        }
        let (id, offset) = self
            .segments
            .back()
            .map(|s| (s.id, s.len))
            .ok_or_else(|| std::io::Error::other("no segment"))?;
        let bytes = (self.buf.len() - self.frame_at) as u64;
        let end = offset + bytes;
        // The end header goes with the record (one write), and the next
        // record overwrites it.
        self.buf.extend_from_slice(&frame::END);
        let written = self.put_frame(id, offset, bytes as usize);
        self.buf.truncate(self.frame_at + bytes as usize);
        let written_to = written?;
        let f = self
            .file
            .as_ref()
            .ok_or_else(|| std::io::Error::other("no segment open"))?;
        let written_end = end + frame::HEADER as u64;
        if written_end > self.allocated {
            // Zeros ahead, synced with this record (one sync for both).
            // A direct write ends on a block boundary, as these must.
            let chunk = (self.segment_bytes / 4).clamp(64 << 10, 4 << 20);
            let upto = written_end.div_ceil(chunk) * chunk;
            direct::write_zeros(f, written_to, upto)?;
            self.allocated = upto.max(written_to);
        }
        f.sync_data()?;
        if let Some(seg) = self.segments.back_mut() {
            seg.len = end;
        }
        if let Ok(r) = Record::parse(&self.buf[self.frame_at + frame::HEADER..]).map(|r| Summary::of(&r)) {
            self.index(id, offset, bytes, r);
        }
        Ok(bytes)
    }

    /// Writes the frame in `buf` (with its end header) at `offset`, the
    /// end of segment `id`'s records; answers where what it wrote ends.
    fn put_frame(&mut self, id: u64, offset: u64, records: usize) -> std::io::Result<u64> {
        let no_file = || std::io::Error::other("no segment open");
        if self.file_direct {
            let f = self.file.as_ref().ok_or_else(no_file)?;
            match self.tail.write(f, &mut self.buf, &mut self.frame_at, offset, records) {
                Err(e) if direct::refused(&e) => {
                    tracing::info!("journal: direct writes refused here ({e}); writing through the page cache");
                    self.direct = false;
                    self.open_last(id)?;
                }
                other => return other,
            }
        }
        let f = self.file.as_ref().ok_or_else(no_file)?;
        f.write_all_at(&self.buf[self.frame_at..], offset)?;
        Ok(offset + (self.buf.len() - self.frame_at) as u64)
    }

    /// Re-reads the last segment after a write error: its good length (a
    /// failed write may have reached the disk whole, or in part), and the
    /// position after the last event it holds.
    pub fn reopen(&mut self) -> std::io::Result<u64> {
        self.file = None;
        let Some(seg) = self.segments.back().copied() else {
            return Ok(0);
        };
        self.spans.retain(|s| s.segment != seg.id);
        self.held_bytes = self.spans.iter().map(|s| s.bytes).sum();
        let mut rec = Recovered::default();
        let len = self.load_segment(seg.id, true, &mut rec)?;
        for r in &rec.repairs {
            tracing::warn!("{r}");
        }
        if let Some(s) = self.segments.back_mut() {
            s.len = len;
        }
        self.open_last(seg.id)?;
        Ok(rec.next_seq)
    }

    /// Forgets records whose events are all at or below `upto`. Answers the
    /// bytes freed and the segments that hold nothing any more (they may be
    /// deleted once what they carried is durable elsewhere).
    pub fn truncate(&mut self, upto: u64) -> (u64, Vec<u64>) {
        let mut freed = 0;
        self.truncated_upto = self.truncated_upto.max(upto);
        while self.spans.front().is_some_and(|s| s.last_seq <= upto) {
            if let Some(s) = self.spans.pop_front() {
                freed += s.bytes;
            }
        }
        self.held_bytes -= freed;
        let current = self.segments.back().map(|s| s.id);
        let keep_from = self.spans.front().map(|s| s.segment).or(current).unwrap_or(0);
        let dead = self
            .segments
            .iter()
            .map(|s| s.id)
            .filter(|&id| id < keep_from && Some(id) != current)
            .collect();
        (freed, dead)
    }

    /// Deletes segments [`SegmentLog::truncate`] found empty, keeping one
    /// as the spare when there is none.
    pub fn remove(&mut self, ids: &[u64]) -> std::io::Result<()> {
        for id in ids {
            let path = path_of(&self.dir, *id);
            if !self.spare && self.keep_as_spare(&path).unwrap_or(false) {
                self.spare = true;
            } else {
                match std::fs::remove_file(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e),
                }
            }
            self.segments.retain(|s| s.id != *id);
        }
        Ok(())
    }

    /// Renames a deleted segment to the spare, durably, then zeroes its
    /// first header, durably: a crash before the zeroing leaves no segment
    /// of that name, and opening zeroes the spare again. Answers whether
    /// the spare is ready.
    fn keep_as_spare(&self, path: &Path) -> std::io::Result<bool> {
        let spare = self.dir.join(SPARE);
        std::fs::rename(path, &spare)?;
        let ready = sync_dir(&self.dir).and_then(|()| prepare_spare(&spare));
        if ready.is_err() {
            // Never reused unzeroed (opening would zero it, but there is
            // no need to keep it).
            let _ = std::fs::remove_file(&spare);
        }
        ready
    }

    /// Creates segment `id`, from the spare when there is one.
    fn new_segment(&mut self, id: u64) -> std::io::Result<File> {
        let path = path_of(&self.dir, id);
        self.tail.reset();
        if std::mem::take(&mut self.spare) && std::fs::rename(self.dir.join(SPARE), &path).is_ok() {
            let (f, direct) = direct::open(&path, false, self.direct)?;
            if !direct {
                read_ahead(&f);
            }
            self.file_direct = direct;
            return Ok(f);
        }
        // A file of that name can only be left by a rotation that failed
        // before it was synced: nothing in it was ever acknowledged, so it
        // starts over.
        let (f, direct) = direct::open(&path, true, self.direct)?;
        self.file_direct = direct;
        Ok(f)
    }

    /// Bytes of the records not yet truncated.
    pub fn held_bytes(&self) -> u64 {
        self.held_bytes
    }

    /// Everything at or below this position is forgotten.
    pub fn truncated_upto(&self) -> u64 {
        self.truncated_upto
    }

    /// Events held (positions are consecutive), and when the oldest was
    /// received.
    pub fn held_events(&self) -> (u64, Option<i64>) {
        let (Some(first), Some(last)) = (self.spans.front(), self.spans.back()) else {
            return (0, None);
        };
        let first_seq = first.first_seq.max(self.truncated_upto + 1);
        let events = (last.last_seq + 1).saturating_sub(first_seq);
        (events, self.spans.iter().find_map(|s| s.first_received_ms))
    }

    /// Segment files on disk.
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Up to about `limit` events after position `after`, in order.
    pub fn scan(&self, after: u64, limit: usize) -> std::io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        let Some(start) = self.spans.iter().position(|s| s.last_seq > after) else {
            return Ok(out);
        };
        let (first_segment, first_offset) = (self.spans[start].segment, self.spans[start].offset);
        for seg in self.segments.iter().filter(|s| s.id >= first_segment) {
            let offset = if seg.id == first_segment { first_offset } else { 0 };
            if !self.scan_segment(seg, offset, after, limit, &mut out)? || out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Reads the events of one segment from `offset`; answers whether the
    /// scan may go on to the next segment.
    fn scan_segment(
        &self,
        seg: &Segment,
        offset: u64,
        after: u64,
        limit: usize,
        out: &mut Vec<Entry>,
    ) -> std::io::Result<bool> {
        let mut f = std::io::BufReader::with_capacity(256 << 10, File::open(path_of(&self.dir, seg.id))?);
        f.seek(SeekFrom::Start(offset))?;
        let mut at = offset;
        let mut payload = Vec::new();
        while at < seg.len && out.len() < limit {
            let mut head = [0u8; frame::HEADER];
            f.read_exact(&mut head)?;
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
            if len == 0 || len > frame::MAX_PAYLOAD || at + (frame::HEADER + len) as u64 > seg.len {
                tracing::error!(
                    segment = seg.id,
                    at,
                    "unreadable journal frame; skipping the rest of the segment"
                );
                return Ok(true);
            }
            payload.resize(len, 0);
            f.read_exact(&mut payload)?;
            at += (frame::HEADER + len) as u64;
            let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
            let record = (crc32fast::hash(&payload) == crc)
                .then(|| Record::parse(&payload).ok())
                .flatten();
            let Some(r) = record else {
                tracing::error!(
                    segment = seg.id,
                    at,
                    "damaged journal record; skipping the rest of the segment"
                );
                return Ok(true);
            };
            if r.last_seq() <= after {
                continue;
            }
            for item in r.events() {
                match item {
                    Ok((ev, _)) if ev.seq <= after => {}
                    Ok(entry) => out.push(entry),
                    Err(e) => tracing::error!(segment = seg.id, error = %e, "skipping an unreadable journal event"),
                }
            }
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests;
