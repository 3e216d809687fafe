//! Crash safety of the segment files: whatever a crash leaves at the end
//! of the last segment (a torn frame, garbage, a bad checksum), opening
//! keeps every intact record before it, cuts the rest, and appends carry
//! on at the right positions.

use super::record::RecordWriter;
use super::*;

fn ev(i: u64) -> Event {
    Event::builder("src", "a.b")
        .id(format!("e{i}"))
        .received_at(1000 + i as i64)
        .payload(format!("{{\"n\":{i}}}"))
        .build()
}

/// Appends a record of `n` events starting at `first`, with one key and a
/// checkpoint naming its last position.
fn append(log: &mut SegmentLog, first: u64, n: u64) -> u64 {
    let ckpt = (first + n - 1).to_string();
    let mut w = RecordWriter::begin(
        log.record_buf(),
        first,
        99,
        &[u128::from(first)],
        &[("src", ckpt.as_bytes())],
    );
    for i in first..first + n {
        w.push(&ev(i), None);
    }
    w.finish();
    log.write_record().unwrap()
}

/// A journal in a fresh directory, which lives as long as the `TempDir`.
fn fresh_log() -> (tempfile::TempDir, PathBuf, SegmentLog) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (log, _) = SegmentLog::open(&dir, 0).unwrap();
    (tmp, dir, log)
}

/// The same with the smallest segments: every record past 64 KiB rotates.
fn small_log() -> (tempfile::TempDir, PathBuf, SegmentLog) {
    let (tmp, dir, mut log) = fresh_log();
    log.size_for(0);
    (tmp, dir, log)
}

fn seqs(log: &SegmentLog, after: u64) -> Vec<u64> {
    log.scan(after, usize::MAX)
        .unwrap()
        .iter()
        .map(|(e, _)| e.seq)
        .collect()
}

fn segment_file(dir: &Path, id: u64) -> PathBuf {
    path_of(dir, id)
}

#[test]
fn a_torn_tail_is_cut_and_appends_carry_on_after_the_last_intact_record() {
    let (_tmp, dir, mut log) = fresh_log();
    append(&mut log, 1, 3);
    append(&mut log, 4, 2);
    let third = append(&mut log, 6, 4);
    drop(log);
    let file = segment_file(&dir, 1);
    let written = std::fs::read(&file).unwrap();
    let full = frame::records_len(&written) as u64;
    assert!(
        written[full as usize..].iter().all(|&b| b == 0),
        "zeros ahead of the records"
    );
    // Every possible tear inside the third record: it is gone, the first
    // two are whole.
    for cut in [1, 7, 8, 9, third / 2, third - 1] {
        std::fs::write(&file, &written[..(full - third + cut) as usize]).unwrap();
        let (log, rec) = SegmentLog::open(&dir, 0).unwrap();
        assert_eq!(seqs(&log, 0), [1, 2, 3, 4, 5], "cut {cut}");
        assert_eq!(rec.next_seq, 6);
        assert_eq!(rec.checkpoints["src"], b"5", "the last intact record's checkpoint");
        assert_eq!(rec.keys.iter().map(|k| k.0).collect::<Vec<_>>(), [1, 4]);
        assert_eq!(rec.repairs.len(), 1, "the repair is reported");
        assert_eq!(std::fs::metadata(&file).unwrap().len(), full - third, "the tail is cut");
    }
    // Garbage, then zeros (a torn write into the zeros written ahead):
    // cut as well.
    let mut torn = written[..(full - third + 9) as usize].to_vec();
    torn.extend_from_slice(&[0; 4096]);
    std::fs::write(&file, &torn).unwrap();
    let (log, rec) = SegmentLog::open(&dir, 0).unwrap();
    assert_eq!((rec.next_seq, rec.repairs.len()), (6, 1));
    drop(log);
    // Zeros alone after the last record are its end, not damage; appends
    // go on over them.
    let mut zeros = written[..(full - third) as usize].to_vec();
    zeros.extend_from_slice(&[0; 4096]);
    std::fs::write(&file, &zeros).unwrap();
    let (mut log, rec) = SegmentLog::open(&dir, 0).unwrap();
    assert_eq!(rec.next_seq, 6);
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
    append(&mut log, 6, 1);
    drop(log);
    let (log, rec) = SegmentLog::open(&dir, 0).unwrap();
    assert_eq!(seqs(&log, 3), [4, 5, 6]);
    assert!(rec.repairs.is_empty(), "a clean reopen repairs nothing");
}

#[test]
fn a_checksum_mismatch_at_the_tail_drops_that_record_only() {
    let (_tmp, dir, mut log) = fresh_log();
    append(&mut log, 1, 2);
    append(&mut log, 3, 2);
    drop(log);
    let file = segment_file(&dir, 1);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = frame::records_len(&bytes) - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&file, &bytes).unwrap();
    let (log, rec) = SegmentLog::open(&dir, 0).unwrap();
    assert_eq!(seqs(&log, 0), [1, 2]);
    assert_eq!(rec.next_seq, 3);
    assert!(rec.repairs[0].contains("checksum"), "{:?}", rec.repairs);
}

#[test]
fn damage_in_an_older_segment_skips_its_rest_and_keeps_the_later_ones() {
    let (_tmp, dir, mut log) = small_log();
    let mut next = 1;
    while log.segment_count() < 3 {
        append(&mut log, next, 100);
        next += 100;
    }
    drop(log);
    let first = segment_file(&dir, 1);
    let mut bytes = std::fs::read(&first).unwrap();
    let at = bytes.len() / 2;
    bytes[at] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let (log, rec) = SegmentLog::open(&dir, 0).unwrap();
    assert_eq!(rec.next_seq, next);
    assert!(rec.repairs[0].contains("skipped"), "{:?}", rec.repairs);
    let got = seqs(&log, 0);
    assert!(got.len() < (next - 1) as usize, "the damaged record is not read");
    assert_eq!(got.last(), Some(&(next - 1)), "later segments are read whole");
    assert_eq!(
        std::fs::metadata(&first).unwrap().len(),
        bytes.len() as u64,
        "an older segment is not cut"
    );
}

#[test]
fn truncation_frees_bytes_and_deletes_whole_segments_only() {
    let (_tmp, dir, mut log) = small_log();
    let mut next = 1;
    while log.segment_count() < 4 {
        append(&mut log, next, 50);
        next += 50;
    }
    let held = log.held_bytes();
    assert_eq!(log.held_events().0, next - 1);
    assert_eq!(log.held_events().1, Some(1001), "the oldest event's arrival");
    let (freed, dead) = log.truncate(120);
    assert!(freed > 0 && log.held_bytes() == held - freed);
    assert!(dead.is_empty(), "the first segment still holds 121..");
    let (_, dead) = log.truncate(next - 1);
    assert_eq!(log.held_bytes(), 0);
    assert_eq!(dead.len(), 3, "every segment but the current one can go");
    log.remove(&dead).unwrap();
    assert_eq!(
        names(&dir),
        [path_of(&dir, 4).file_name().unwrap().to_str().unwrap(), SPARE],
        "one kept as the spare"
    );
    drop(log);
    // Reopened with what was truncated, nothing is held, positions go on.
    let (log, rec) = SegmentLog::open(&dir, next - 1).unwrap();
    assert_eq!((log.held_bytes(), rec.next_seq), (0, next));
    assert!(seqs(&log, 0).is_empty());
}

#[test]
fn scans_start_anywhere_and_stop_near_their_limit() {
    let (_tmp, _, mut log) = small_log();
    let mut next = 1;
    while log.segment_count() < 3 {
        append(&mut log, next, 40);
        next += 40;
    }
    let all = seqs(&log, 0);
    assert_eq!(all, (1..next).collect::<Vec<_>>());
    assert_eq!(seqs(&log, 77)[0], 78);
    let some = log.scan(10, 5).unwrap();
    assert_eq!(some[0].0.seq, 11);
    assert!(
        some.len() >= 5 && some.len() <= 40,
        "a record is read whole: {}",
        some.len()
    );
}

#[test]
fn direct_and_buffered_writes_follow_each_other_in_one_segment_and_across_a_reopen() {
    let (_tmp, dir, mut log) = small_log();
    // Where the file system takes direct writes (ext4 here), the first
    // segment is written directly.
    let mut next = 1;
    for i in 0..12u64 {
        // A switch to buffered writes (as when a write is refused), and a
        // record laid out for the other kind than the file is opened for.
        if i == 5 {
            log.direct = false;
        }
        if i == 6 {
            log.file = None;
        }
        if i == 9 {
            log.direct = true;
            log.file = None;
        }
        append(&mut log, next, 1 + i * 40);
        next += 1 + i * 40;
    }
    assert!(log.segment_count() > 1, "rotated at least once");
    assert_eq!(seqs(&log, 0), (1..next).collect::<Vec<_>>());
    drop(log);
    let (mut log, rec) = SegmentLog::open(&dir, 0).unwrap();
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
    assert_eq!(rec.next_seq, next);
    // Appends carry on after the records the reopened segment holds.
    append(&mut log, next, 3);
    drop(log);
    let (log, rec) = SegmentLog::open(&dir, 0).unwrap();
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
    assert_eq!(seqs(&log, 0), (1..next + 3).collect::<Vec<_>>());
}

#[test]
fn a_direct_write_refused_goes_through_the_page_cache_and_so_does_everything_after() {
    let (_tmp, dir, mut log) = fresh_log();
    let mut next = 1;
    for n in [3, 50] {
        append(&mut log, next, n);
        next += n;
    }
    if !log.file_direct {
        // A property of the machine, not something a test can install.
        eprintln!("SKIPPED: the file system under the temporary directory takes no direct writes: the fallback from a refused write is not exercised here");
        return;
    }
    // The device refuses a direct write only now (a file system that
    // accepts O_DIRECT at open but not the write).
    direct::refuse_next_write();
    append(&mut log, next, 7);
    next += 7;
    assert!(!log.direct && !log.file_direct, "buffered from the refusal on");
    for n in [1, 200] {
        append(&mut log, next, n);
        next += n;
    }
    assert_eq!(seqs(&log, 0), (1..next).collect::<Vec<_>>());
    drop(log);
    let (log, rec) = SegmentLog::open(&dir, 0).unwrap();
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
    assert_eq!(rec.next_seq, next);
    assert_eq!(seqs(&log, 0), (1..next).collect::<Vec<_>>());
}

/// Appends records of ten events whose encoding has the same size whatever
/// their positions (four-digit ids, times and checkpoints), so that records
/// of a reused file and of its earlier use line up.
fn append_even(log: &mut SegmentLog, next: &mut u64) -> u64 {
    assert!((1000..9990).contains(next));
    let n = append(log, *next, 10);
    *next += 10;
    n
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn a_deleted_segment_is_reused_and_its_old_records_never_come_back() {
    let (_tmp, dir, mut log) = small_log();
    let mut next = 1000;
    let frame_len = append_even(&mut log, &mut next) as usize;
    while log.segment_count() < 3 {
        append_even(&mut log, &mut next);
    }
    let truncated = next - 1;
    let (_, dead) = log.truncate(truncated);
    log.remove(&dead).unwrap();
    assert_eq!(names(&dir).last().map(String::as_str), Some(SPARE));
    assert_eq!(names(&dir).len(), 2, "the other deleted segment is gone");
    let old = std::fs::read(dir.join(SPARE)).unwrap();
    assert_eq!(old[..frame::HEADER], frame::END, "the spare's first header is zeroed");
    assert!(
        old[frame::HEADER..].iter().any(|&b| b != 0),
        "its old records stay in place"
    );
    // Appends go on until a rotation takes the spare: the new segment is
    // the old file, its first records written over the old ones.
    while dir.join(SPARE).exists() {
        append_even(&mut log, &mut next);
    }
    let reused = log.segments.back().unwrap().id;
    append_even(&mut log, &mut next);
    append_even(&mut log, &mut next);
    drop(log);
    let file = segment_file(&dir, reused);
    let bytes = std::fs::read(&file).unwrap();
    let end = frame::records_len(&bytes);
    assert_eq!(bytes.len(), old.len(), "the file was reused, not recreated");
    assert_eq!(
        &bytes[end..end + frame::HEADER],
        frame::END,
        "an end header follows the records"
    );
    // A direct write pads its last block with zeros.
    let padded = (end + frame::HEADER).next_multiple_of(direct::BLOCK);
    assert!(
        bytes[end + frame::HEADER..padded]
            .iter()
            .zip(&old[end + frame::HEADER..padded])
            .all(|(b, o)| *b == 0 || b == o),
        "zeros to the block's end, or the old bytes"
    );
    assert_eq!(&bytes[padded..], &old[padded..], "then the old bytes");
    let (log, rec) = SegmentLog::open(&dir, truncated).unwrap();
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
    assert_eq!(rec.next_seq, next);
    assert_eq!(seqs(&log, 0), (truncated + 1..next).collect::<Vec<_>>());
    assert_eq!(rec.checkpoints["src"], (next - 1).to_string().as_bytes());
    drop(log);

    // A crash tore what followed the last record (its end header, and a
    // direct write's padding): the old record at its place is whole
    // again, with its checksum. Its positions go back, so it is not read:
    // neither its events nor its checkpoint return.
    assert_eq!(end % frame_len, 0, "old and new records line up");
    assert!(end / frame_len >= 3, "the records written since the reuse");
    let mut torn = bytes.clone();
    torn[end..].copy_from_slice(&old[end..]);
    assert!(
        matches!(frame::next(&torn[end..]), frame::Next::Frame(..)),
        "an intact old frame"
    );
    std::fs::write(&file, &torn).unwrap();
    let (mut log, rec) = SegmentLog::open(&dir, truncated).unwrap();
    assert_eq!(rec.next_seq, next);
    assert_eq!(rec.checkpoints["src"], (next - 1).to_string().as_bytes());
    assert_eq!(seqs(&log, 0), (truncated + 1..next).collect::<Vec<_>>());
    // Appends go on after the last record (over the old one), and once
    // the reused segment is closed it ends at its records: opening finds
    // nothing to repair.
    log.size_for(0);
    let closed = log.segment_count() + 1;
    while log.segment_count() < closed {
        append_even(&mut log, &mut next);
    }
    drop(log);
    let (log, rec) = SegmentLog::open(&dir, truncated).unwrap();
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
    assert_eq!(seqs(&log, 0), (truncated + 1..next).collect::<Vec<_>>());
    let closed_bytes = std::fs::read(&file).unwrap();
    assert_eq!(
        closed_bytes.len(),
        frame::records_len(&closed_bytes),
        "a closed segment is cut to its records"
    );
    drop(log);
    // So old bytes after an older segment's end header are damage, told
    // and skipped, not a reused file's rest.
    let mut damaged = closed_bytes;
    damaged.extend_from_slice(&frame::END);
    damaged.extend_from_slice(&old[..64]);
    std::fs::write(&file, &damaged).unwrap();
    let (log, rec) = SegmentLog::open(&dir, truncated).unwrap();
    assert_eq!(rec.repairs.len(), 1, "{:?}", rec.repairs);
    assert!(rec.repairs[0].contains("old bytes") && rec.repairs[0].contains("skipped"));
    assert_eq!(seqs(&log, 0), (truncated + 1..next).collect::<Vec<_>>());
}

#[test]
fn a_spare_left_with_its_old_records_is_zeroed_before_reuse() {
    let (_tmp, dir, mut log) = fresh_log();
    let mut next = 1000;
    for _ in 0..3 {
        append_even(&mut log, &mut next);
    }
    drop(log);
    // A crash between the rename and the zeroing: the spare holds intact
    // records of positions already truncated.
    std::fs::rename(segment_file(&dir, 1), dir.join(SPARE)).unwrap();
    let (mut log, rec) = SegmentLog::open(&dir, next - 1).unwrap();
    assert_eq!(rec.next_seq, 1, "no segment is left");
    let spare = std::fs::read(dir.join(SPARE)).unwrap();
    assert_eq!(spare[..frame::HEADER], frame::END, "zeroed at open");
    // It becomes the first segment, and holds only what is written to it.
    append_even(&mut log, &mut next);
    assert!(!dir.join(SPARE).exists());
    drop(log);
    let (log, rec) = SegmentLog::open(&dir, next - 11).unwrap();
    assert_eq!(seqs(&log, 0), (next - 10..next).collect::<Vec<_>>());
    assert_eq!(rec.checkpoints["src"], (next - 1).to_string().as_bytes());
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
}

#[test]
fn a_spare_too_short_to_hold_a_header_is_removed_and_never_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(SPARE), [1, 2, 3]).unwrap();
    let (mut log, _) = SegmentLog::open(&dir, 0).unwrap();
    assert!(!dir.join(SPARE).exists(), "removed at open");
    append(&mut log, 1, 2);
    drop(log);
    let (log, rec) = SegmentLog::open(&dir, 0).unwrap();
    assert_eq!(seqs(&log, 0), [1, 2]);
    assert!(rec.repairs.is_empty(), "{:?}", rec.repairs);
}
