//! The file writer end to end on a real directory: rotation, partitions,
//! encodings, compression, and recovery from every point a crash can
//! leave (simulated by dropping a writer and editing what it left).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cxrelay_actors::Event;

use super::partition::PartitionTemplate;
use super::state::{state_path, SinkState};
use super::*;
use crate::sinks::SinkWriter;

fn ev(seq: u64) -> Arc<Event> {
    ev_on(seq, "calls.a")
}

fn ev_on(seq: u64, topic: &str) -> Arc<Event> {
    Arc::new(
        Event::builder("gen", topic)
            .id(format!("e{seq}"))
            .seq(seq)
            .event_time(Some(1_714_571_999_000))
            .payload(format!("{{\"n\":{seq},\"pad\":\"{}\"}}", "x".repeat(40)).into_bytes())
            .build(),
    )
}

fn evs(seqs: std::ops::RangeInclusive<u64>) -> Vec<Arc<Event>> {
    seqs.map(ev).collect()
}

fn settings(root: &Path) -> FileSettings {
    FileSettings::new(root, "files")
}

/// Every file under `root`, recursively, but the state.
fn files(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if !p.file_name().unwrap().to_string_lossy().starts_with(".cxrelay-") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn is_final(p: &Path) -> bool {
    p.to_string_lossy().contains(".ndjson")
}

/// The decoded lines of one file.
fn lines_of(p: &Path, c: Compression) -> Vec<serde_json::Value> {
    let bytes = fs::read(p).unwrap();
    let mut text = Vec::new();
    match c {
        Compression::None => text = bytes,
        Compression::Gzip => {
            flate2::read::MultiGzDecoder::new(&bytes[..])
                .read_to_end(&mut text)
                .unwrap();
        }
        Compression::Zstd => {
            zstd::stream::read::Decoder::new(&bytes[..])
                .unwrap()
                .read_to_end(&mut text)
                .unwrap();
        }
    }
    assert!(
        text.is_empty() || text.ends_with(b"\n"),
        "{} ends mid-line",
        p.display()
    );
    text.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// The `seq` of every line in every file (final files first), envelope
/// encoding.
fn seqs(root: &Path, c: Compression) -> Vec<u64> {
    let (finals, parts): (Vec<_>, Vec<_>) = files(root).into_iter().partition(|p| is_final(p));
    finals
        .iter()
        .chain(&parts)
        .flat_map(|f| lines_of(f, c))
        .map(|v| v["seq"].as_u64().unwrap())
        .collect()
}

fn commit(w: &mut FileWriter, events: &[Arc<Event>]) {
    w.write_batch(events).unwrap();
}

#[test]
fn rotates_by_size_into_final_names_and_keeps_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.rotate_bytes = 600;
    let mut w = FileWriter::open(s).unwrap();
    for i in 0..20 {
        commit(&mut w, &evs(i * 3 + 1..=i * 3 + 3));
    }
    let all = files(dir.path());
    let finals: Vec<_> = all.iter().filter(|p| is_final(p)).collect();
    assert!(finals.len() > 5, "{all:?}");
    for f in &finals {
        let name = f.file_name().unwrap().to_string_lossy().to_string();
        assert!(name.starts_with("files-") && name.ends_with(".ndjson"), "{name}");
    }
    // The rest is in at most one temporary file, hidden and not `*.ndjson*`.
    let parts: Vec<_> = all.iter().filter(|p| !is_final(p)).collect();
    assert!(parts.len() <= 1, "{parts:?}");
    for p in parts {
        let name = p.file_name().unwrap().to_string_lossy().to_string();
        assert!(name.starts_with(".files-") && name.ends_with(".part"), "{name}");
    }
    assert_eq!(seqs(dir.path(), Compression::None), (1..=60).collect::<Vec<_>>());
}

#[test]
fn a_file_is_closed_by_age_on_tick_even_with_no_new_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.rotate_interval = Duration::from_millis(150);
    let mut w = FileWriter::open(s).unwrap();
    commit(&mut w, &evs(1..=5));
    w.tick().unwrap();
    assert_eq!(w.open_files(), 1, "not old enough yet");
    let deadline = Instant::now() + Duration::from_secs(10);
    while w.open_files() > 0 {
        assert!(Instant::now() < deadline, "never closed");
        std::thread::sleep(Duration::from_millis(10));
        w.tick().unwrap();
    }
    let all = files(dir.path());
    assert!(all.len() == 1 && is_final(&all[0]), "{all:?}");
    // The state no longer lists it.
    let state = SinkState::load(&state_path(dir.path(), "files")).unwrap().unwrap();
    assert!(state.open.is_empty(), "{state:?}");
}

#[test]
fn payload_encoding_writes_the_record_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.encoding = Encoding::Payload;
    let mut w = FileWriter::open(s).unwrap();
    commit(&mut w, &evs(1..=3));
    w.close_all().unwrap();
    let lines = lines_of(&files(dir.path())[0], Compression::None);
    let ns: Vec<u64> = lines.iter().map(|l| l["n"].as_u64().unwrap()).collect();
    assert_eq!(ns, [1, 2, 3]);
    assert!(lines
        .iter()
        .all(|l| l.get("payload").is_none() && l.get("seq").is_none()));
}

#[test]
fn partitions_have_their_own_files_and_the_open_bound_holds() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.partition = Some(PartitionTemplate::parse("{topic}/{date}/{hour}").unwrap());
    s.max_open_files = 2;
    let mut w = FileWriter::open(s).unwrap();
    let topics = ["a", "b", "c", "../up", "e"];
    let mut seq = 0;
    for round in 0..4 {
        for t in topics.iter().cycle().skip(round).take(3) {
            let batch: Vec<_> = (0..4)
                .map(|_| {
                    seq += 1;
                    ev_on(seq, t)
                })
                .collect();
            commit(&mut w, &batch);
            assert!(w.open_files() <= 2, "{} open", w.open_files());
        }
    }
    w.close_all().unwrap();
    let all = files(dir.path());
    for f in &all {
        let rel = f.strip_prefix(dir.path()).unwrap().to_string_lossy().to_string();
        let topic = rel.split('/').next().unwrap();
        assert!(["a", "b", "c", "_._up", "e"].contains(&topic), "{rel}");
        assert!(rel.contains("/2024-05-01/13/files-"), "{rel}");
        for l in lines_of(f, Compression::None) {
            assert_eq!(super::partition::sanitised(l["topic"].as_str().unwrap()), topic);
        }
    }
    let mut got = seqs(dir.path(), Compression::None);
    got.sort();
    assert_eq!(got, (1..=seq).collect::<Vec<_>>());
}

#[test]
fn compressed_files_are_valid_after_every_commit_and_after_a_torn_tail() {
    for c in [Compression::Gzip, Compression::Zstd] {
        let dir = tempfile::tempdir().unwrap();
        let mut s = settings(dir.path());
        s.compression = c;
        let mut w = FileWriter::open(s.clone()).unwrap();
        for b in 0..4 {
            commit(&mut w, &evs(b * 10 + 1..=b * 10 + 10));
            let part = &files(dir.path())[0];
            assert_eq!(lines_of(part, c).len() as u64, b * 10 + 10, "{c:?}");
        }
        // A crash in the middle of writing the next unit.
        drop(w);
        let part = files(dir.path())[0].clone();
        let mut unit = Vec::new();
        c.encode_unit(b"{\"seq\":41}\n{\"seq\":42}\n", &mut unit).unwrap();
        let mut bytes = fs::read(&part).unwrap();
        bytes.extend_from_slice(&unit[..unit.len() / 2]);
        fs::write(&part, &bytes).unwrap();
        let mut w = FileWriter::open(s).unwrap();
        commit(&mut w, &evs(41..=50));
        w.close_all().unwrap();
        let all = files(dir.path());
        let want_ext = format!(".{}", c.extension());
        assert!(
            all.len() == 1 && all[0].to_string_lossy().ends_with(&want_ext),
            "{all:?}"
        );
        assert_eq!(seqs(dir.path(), c), (1..=50).collect::<Vec<_>>(), "{c:?}");
    }
}

#[test]
fn a_batch_larger_than_a_write_piece_lands_whole_and_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = FileWriter::open(settings(dir.path())).unwrap();
    let batch = evs(1..=3000);
    let mut expected = Vec::new();
    for e in &batch {
        crate::sinks::encode_ndjson(e, &mut expected);
    }
    assert!(
        expected.len() > 4 * crate::sinks::encode::WRITE_PIECE,
        "{}",
        expected.len()
    );
    commit(&mut w, &batch);
    commit(&mut w, &evs(3001..=3002));
    let part = files(dir.path())[0].clone();
    let bytes = fs::read(&part).unwrap();
    assert_eq!(&bytes[..expected.len()], &expected[..]);
    assert_eq!(seqs(dir.path(), Compression::None), (1..=3002).collect::<Vec<_>>());
}

#[test]
fn a_batch_written_but_not_recorded_is_cut_then_written_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = FileWriter::open(settings(dir.path())).unwrap();
    commit(&mut w, &evs(1..=10));
    // The process dies after appending (and maybe fsyncing) batch 11..20
    // but before saving the state: its bytes are in the file, unrecorded.
    let part = files(dir.path())[0].clone();
    let mut torn = Vec::new();
    for e in evs(11..=20) {
        crate::sinks::encode_ndjson(&e, &mut torn);
    }
    drop(w);
    let mut bytes = fs::read(&part).unwrap();
    bytes.extend_from_slice(&torn[..torn.len() - 7]);
    fs::write(&part, &bytes).unwrap();
    // The journal replays 11..20, unacknowledged.
    let mut w = FileWriter::open(settings(dir.path())).unwrap();
    assert_eq!(w.durable_seq(), 10);
    commit(&mut w, &evs(11..=20));
    assert_eq!(seqs(dir.path(), Compression::None), (1..=20).collect::<Vec<_>>());
    assert_eq!(w.describe()["cut_at_start_bytes"], torn.len() as u64 - 7);
}

#[test]
fn replayed_events_already_in_files_are_skipped_even_reordered_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = FileWriter::open(settings(dir.path())).unwrap();
    // Reordered by time, as `order_by = "time"` does: the batch covers up
    // to its highest position.
    let mut batch = evs(1..=20);
    batch.reverse();
    commit(&mut w, &batch);
    assert_eq!(w.durable_seq(), 20);
    // Killed before the acknowledgement reached the journal (saved up to
    // 8): the restart replays 9..20, then new events come.
    drop(w);
    let mut w = FileWriter::open(settings(dir.path())).unwrap();
    commit(&mut w, &evs(9..=14));
    commit(&mut w, &evs(15..=25));
    assert_eq!(w.describe()["skipped_replayed"], 12);
    let mut got = seqs(dir.path(), Compression::None);
    got.sort();
    assert_eq!(got, (1..=25).collect::<Vec<_>>());
}

#[test]
fn with_the_journal_off_nothing_is_skipped() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = FileWriter::open(settings(dir.path())).unwrap();
    let unjournaled: Vec<_> = (0..3).map(|_| ev(0)).collect();
    commit(&mut w, &unjournaled);
    commit(&mut w, &unjournaled);
    assert_eq!(seqs(dir.path(), Compression::None), [0; 6]);
}

#[test]
fn recovery_forgets_closed_files_and_removes_files_never_committed() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = settings(dir.path());
    s.partition = Some(PartitionTemplate::parse("{topic}").unwrap());
    let mut w = FileWriter::open(s.clone()).unwrap();
    commit(&mut w, &[ev_on(1, "a"), ev_on(2, "b")]);
    drop(w);
    let path = state_path(dir.path(), "files");
    let mut state = SinkState::load(&path).unwrap().unwrap();
    assert_eq!(state.open.len(), 2);
    // `a` was closed (renamed) just before the crash, the state not yet
    // saved again; `c` was recorded (empty) and created, and its first
    // batch written but not recorded.
    let a = state.open.iter().find(|p| p.partition == "a").unwrap().clone();
    fs::rename(a.part_path(dir.path()), a.final_path(dir.path())).unwrap();
    let mut c = a.clone();
    c.partition = "c".into();
    c.part = ".files-c.part".into();
    c.name = "files-c.ndjson".into();
    c.len = 0;
    fs::create_dir_all(dir.path().join("c")).unwrap();
    fs::write(c.part_path(dir.path()), b"{\"seq\":3}\n").unwrap();
    state.open.push(c.clone());
    state.save(&path, false).unwrap();

    let w = FileWriter::open(s).unwrap();
    assert_eq!(w.open_files(), 1, "only b continues");
    let state = SinkState::load(&path).unwrap().unwrap();
    assert_eq!(
        state.open.iter().map(|p| p.partition.as_str()).collect::<Vec<_>>(),
        ["b"]
    );
    assert!(a.final_path(dir.path()).exists());
    assert!(!c.part_path(dir.path()).exists() && !c.final_path(dir.path()).exists());
    let mut got = seqs(dir.path(), Compression::None);
    got.sort();
    assert_eq!(got, [1, 2]);
}

#[test]
fn files_written_with_other_settings_are_closed_not_mixed() {
    let dir = tempfile::tempdir().unwrap();
    let mut w = FileWriter::open(settings(dir.path())).unwrap();
    commit(&mut w, &evs(1..=5));
    drop(w);
    let mut s = settings(dir.path());
    s.compression = Compression::Gzip;
    let mut w = FileWriter::open(s).unwrap();
    assert_eq!(w.open_files(), 0);
    commit(&mut w, &evs(6..=10));
    w.close_all().unwrap();
    let all = files(dir.path());
    let names: Vec<String> = all
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into())
        .collect();
    assert!(
        names[0].ends_with(".ndjson") && names[1].ends_with(".ndjson.gz"),
        "{names:?}"
    );
    assert_eq!(lines_of(&all[0], Compression::None).len(), 5);
    assert_eq!(lines_of(&all[1], Compression::Gzip).len(), 5);
}

#[test]
fn another_listeners_state_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    FileWriter::open(FileSettings::new(dir.path(), "a/b")).unwrap();
    let e = FileWriter::open(FileSettings::new(dir.path(), "a_b"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("belongs to listener `a/b`"), "{e}");
}

#[test]
fn a_torn_last_line_in_a_file_of_an_earlier_version_is_cut_once() {
    let dir = tempfile::tempdir().unwrap();
    let old = dir.path().join("events-0000000000001-0000.ndjson");
    let newest = dir.path().join("events-0000000000002-0000.ndjson");
    fs::write(&old, b"{\"id\":\"0\"}\n").unwrap();
    fs::write(&newest, b"{\"id\":\"1\"}\n{\"id\":\"2\",\"pay").unwrap();
    FileWriter::open(settings(dir.path())).unwrap();
    assert_eq!(fs::read_to_string(&newest).unwrap(), "{\"id\":\"1\"}\n");
    // Once a state exists, the directory is the sink's: nothing is cut.
    fs::write(&newest, b"{\"id\":\"1\"}\n{\"id\":\"2\",\"pay").unwrap();
    FileWriter::open(settings(dir.path())).unwrap();
    assert!(fs::read_to_string(&newest).unwrap().ends_with("pay"));
}
