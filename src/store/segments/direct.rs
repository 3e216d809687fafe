//! Segment writes that bypass the page cache (`O_DIRECT`).
//!
//! A group commit written through the page cache is copied into it, then
//! written back by `fdatasync`; written directly, the device reads it from
//! our buffer and the sync only flushes the device's cache. Measured here
//! (12 KB commits into a file's existing blocks, each followed by
//! `fdatasync`): 35 us of CPU per commit buffered, 23-27 us direct, and
//! 55 against 27 us for 150 KB commits.
//!
//! Direct writes must start and end on block boundaries and come from
//! aligned memory. A commit therefore writes from the start of the block
//! its record begins in: the bytes of earlier records in that block (kept
//! here, the *tail*) are written again, unchanged, then the frame, its
//! end header and zeros to the block's end. Rewriting a block that holds
//! acknowledged bytes is what the page cache does on every commit too: a
//! device writes a sector whole or not at all, and each sector holds the
//! same acknowledged bytes before and after, so a torn write can damage
//! only the new record (which recovery cuts off, as before).
//!
//! A file system that refuses `O_DIRECT` (at open, or at the first write)
//! gets buffered writes, as before.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

/// The alignment of direct writes: a page, a multiple of every device's
/// logical block size cxrelay will meet (512 or 4096).
pub const BLOCK: usize = 4096;

/// Zeros for extending a segment, aligned for direct writes.
#[repr(C, align(4096))]
struct Zeros([u8; 64 << 10]);

/// What a new segment is extended with.
static ZEROS: Zeros = Zeros([0; 64 << 10]);

/// Most pieces of [`ZEROS`] handed to one `pwritev` (Linux's `IOV_MAX`).
const ZERO_PIECES: usize = 1024;

/// Writes zeros into `f` from `at` up to `upto` (both block boundaries for
/// a direct file). The zeros go in one `pwritev` of many pieces of
/// [`ZEROS`], not a write per piece: on a virtual machine each direct
/// write is a wait for the device, and a wait costs the thread a sleep and
/// a wake-up (measured: see `benches/HISTORY.md`).
pub fn write_zeros(f: &File, mut at: u64, upto: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let piece = ZEROS.0.len() as u64;
    while at < upto {
        let left = upto - at;
        let count = left.div_ceil(piece).min(ZERO_PIECES as u64) as usize;
        let iov: Vec<libc::iovec> = (0..count)
            .map(|i| libc::iovec {
                iov_base: ZEROS.0.as_ptr().cast_mut().cast(),
                iov_len: (left - i as u64 * piece).min(piece) as usize,
            })
            .collect();
        let offset = libc::off_t::try_from(at).map_err(|_| std::io::Error::other("journal offset out of range"))?;
        // SAFETY: every iovec points into the static `ZEROS` with a length
        // within it, and a write only reads from them.
        let n = unsafe { libc::pwritev(f.as_raw_fd(), iov.as_ptr(), count as libc::c_int, offset) };
        match n {
            n if n > 0 => at += n as u64,
            0 => return Err(std::io::ErrorKind::WriteZero.into()),
            _ => {
                let e = std::io::Error::last_os_error();
                if e.kind() != std::io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
        }
    }
    Ok(())
}

/// Opens a segment for appending, directly when `direct` is asked and the
/// file system allows it; answers whether it is direct.
pub fn open(path: &Path, create: bool, direct: bool) -> std::io::Result<(File, bool)> {
    let mut options = OpenOptions::new();
    options.write(true);
    if create {
        options.create(true).truncate(true);
    }
    if direct {
        let mut with = options.clone();
        with.custom_flags(libc::O_DIRECT);
        match with.open(path) {
            Ok(f) => return Ok((f, true)),
            // Not supported here: buffered, as everything else.
            Err(e) if refused(&e) => {}
            Err(e) => return Err(e),
        }
    }
    Ok((options.open(path)?, false))
}

/// Whether a direct write or open failed because the file system or device
/// does not take it (alignment or support), so buffered writes should be
/// used.
pub fn refused(e: &std::io::Error) -> bool {
    e.raw_os_error() == Some(libc::EINVAL)
}

/// The start of `buf`'s first aligned block within its capacity.
fn aligned_start(buf: &Vec<u8>) -> Option<usize> {
    let at = buf.as_ptr().align_offset(BLOCK);
    (at < buf.capacity()).then_some(at)
}

/// The bytes of the block the next record starts in: the end of the
/// records before it, which a direct write of that block writes again.
#[derive(Debug, Default)]
pub struct Tail {
    /// Where in the file the block starts.
    start: u64,
    bytes: Vec<u8>,
}

impl Tail {
    /// Positions at `end`, the end of a segment's records, with the bytes
    /// of its last block read from the file at `path`.
    pub fn resume(&mut self, path: &Path, end: u64) -> std::io::Result<()> {
        self.start = end - end % BLOCK as u64;
        self.bytes.resize((end - self.start) as usize, 0);
        if !self.bytes.is_empty() {
            File::open(path)?.read_exact_at(&mut self.bytes, self.start)?;
        }
        Ok(())
    }

    /// Positions at the start of an empty segment.
    pub fn reset(&mut self) {
        self.start = 0;
        self.bytes.clear();
    }

    /// Clears `buf` and lays out the start of a direct write in it: the
    /// tail from an aligned address on. Answers where the frame goes.
    pub fn begin(&self, buf: &mut Vec<u8>) -> usize {
        buf.clear();
        let at = aligned_start(buf).unwrap_or(0);
        buf.resize(at, 0);
        buf.extend_from_slice(&self.bytes);
        buf.len()
    }

    /// Writes the frame at `buf[*frame_at..]` (a record's frame and the end
    /// header after it) at `offset`, which must be where the records end;
    /// `records` bytes of it are the frame, the rest the end header. The
    /// frame is moved in `buf` (and `frame_at` with it) when `buf` was not
    /// laid out for this tail: it grew, or the segment changed since
    /// [`Tail::begin`]. Answers the end in the file of what was written (a
    /// block boundary).
    pub fn write(
        &mut self,
        f: &File,
        buf: &mut Vec<u8>,
        frame_at: &mut usize,
        offset: u64,
        records: usize,
    ) -> std::io::Result<u64> {
        let held = self.start + self.bytes.len() as u64;
        if offset != held {
            return Err(std::io::Error::other(format!(
                "journal write at {offset} but the block held ends at {held}"
            )));
        }
        let tail = self.bytes.len();
        // Room for the padding, so that nothing below moves the buffer.
        buf.reserve(2 * BLOCK + tail);
        let Some(start) = aligned_start(buf) else {
            return Err(std::io::Error::from_raw_os_error(libc::EINVAL));
        };
        let moved_to = start + tail;
        if moved_to != *frame_at {
            let len = buf.len() - *frame_at;
            if moved_to > *frame_at {
                buf.resize(moved_to + len, 0);
            }
            buf.copy_within(*frame_at..*frame_at + len, moved_to);
            buf.truncate(moved_to + len);
            *frame_at = moved_to;
        }
        buf[start..moved_to].copy_from_slice(&self.bytes);
        let used = buf.len() - start;
        let padded = used.next_multiple_of(BLOCK);
        buf.resize(start + padded, 0);
        let written = if refusal_injected() {
            Err(std::io::Error::from_raw_os_error(libc::EINVAL))
        } else {
            f.write_all_at(&buf[start..], self.start)
        };
        buf.truncate(start + used);
        written?;
        // The next record starts after this one: keep the partial block
        // that ends there.
        let end = tail + records;
        let keep_from = end - end % BLOCK;
        self.bytes.clear();
        self.bytes.extend_from_slice(&buf[start + keep_from..start + end]);
        let written_to = self.start + padded as u64;
        self.start += keep_from as u64;
        Ok(written_to)
    }
}

#[cfg(test)]
thread_local! {
    /// Refuse this thread's next direct write, as a device that does not
    /// take direct I/O does (tests of the fallback).
    static REFUSE_NEXT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Makes this thread's next direct write fail with `EINVAL` (tests).
#[cfg(test)]
pub fn refuse_next_write() {
    REFUSE_NEXT.with(|r| r.set(true));
}

#[cfg(test)]
fn refusal_injected() -> bool {
    REFUSE_NEXT.with(|r| r.replace(false))
}

#[cfg(not(test))]
fn refusal_injected() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes `record` (with an end header) as the next record.
    fn append(tail: &mut Tail, f: &File, buf: &mut Vec<u8>, offset: u64, record: &[u8], misplace: usize) {
        let mut at = tail.begin(buf);
        if misplace > 0 {
            // As if the buffer had been laid out for another tail.
            buf.resize(at + misplace, 7);
            at += misplace;
        }
        buf.extend_from_slice(record);
        buf.extend_from_slice(&[0; 8]);
        let end = tail.write(f, buf, &mut at, offset, record.len()).unwrap();
        assert_eq!(end % BLOCK as u64, 0);
        assert_eq!(
            &buf[at..at + record.len()],
            record,
            "the frame is where it is said to be"
        );
    }

    #[test]
    fn zeros_cover_exactly_the_range_asked_in_one_call_of_many_pieces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let ones = vec![0xffu8; 400 << 10];
        std::fs::write(&path, &ones).unwrap();
        let (f, direct) = open(&path, false, true).unwrap();
        // Pieces of 64 KiB and a shorter last one, from inside the file to
        // past its end.
        let (at, upto) = (BLOCK as u64, (BLOCK + (450 << 10)) as u64);
        write_zeros(&f, at, upto).unwrap();
        let back = std::fs::read(&path).unwrap();
        assert_eq!(back.len() as u64, upto, "direct: {direct}");
        assert!(back[..BLOCK].iter().all(|&b| b == 0xff), "nothing before `at` changes");
        assert!(back[BLOCK..].iter().all(|&b| b == 0), "zeros up to `upto`");
    }

    #[test]
    fn commits_rewrite_the_partial_block_they_start_in_and_the_file_reads_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("seg");
        let (f, _direct) = open(&path, true, true).unwrap();
        let mut tail = Tail::default();
        let mut buf = Vec::new();
        let mut expected = Vec::new();
        let mut offset = 0u64;
        // Records of sizes that end inside, at and across block edges, in
        // a buffer that has to grow, some laid out for another tail.
        for (i, size) in [10usize, 4086, 4096, 5000, 1, 12_000, 3, 70_000]
            .into_iter()
            .enumerate()
        {
            let record = vec![b'a' + i as u8; size];
            append(&mut tail, &f, &mut buf, offset, &record, i % 3 * 100);
            expected.extend_from_slice(&record);
            offset += size as u64;
            let data = std::fs::read(&path).unwrap();
            assert_eq!(&data[..expected.len()], &expected[..], "after record {i}");
            assert!(data[expected.len()..].iter().all(|&b| b == 0), "after record {i}");
        }
        // Picking up where the file ends (as after a restart).
        let mut again = Tail::default();
        again.resume(&path, offset).unwrap();
        let (f, _) = open(&path, false, true).unwrap();
        append(&mut again, &f, &mut buf, offset, b"zz", 0);
        expected.extend_from_slice(b"zz");
        let data = std::fs::read(&path).unwrap();
        assert_eq!(&data[..expected.len()], &expected[..]);
        // A write anywhere but at the records' end is refused.
        let mut at = again.begin(&mut buf);
        buf.push(1);
        assert!(again.write(&f, &mut buf, &mut at, 0, 1).is_err());
    }
}
