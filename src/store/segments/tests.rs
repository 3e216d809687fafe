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
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (mut log, _) = SegmentLog::open(&dir, 0).unwrap();
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (mut log, _) = SegmentLog::open(&dir, 0).unwrap();
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (mut log, _) = SegmentLog::open(&dir, 0).unwrap();
    log.size_for(0); // the smallest segments: every record past 64 KiB rotates
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
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (mut log, _) = SegmentLog::open(&dir, 0).unwrap();
    log.size_for(0);
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
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    drop(log);
    // Reopened with what was truncated, nothing is held, positions go on.
    let (log, rec) = SegmentLog::open(&dir, next - 1).unwrap();
    assert_eq!((log.held_bytes(), rec.next_seq), (0, next));
    assert!(seqs(&log, 0).is_empty());
}

#[test]
fn scans_start_anywhere_and_stop_near_their_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("journal");
    let (mut log, _) = SegmentLog::open(&dir, 0).unwrap();
    log.size_for(0);
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
