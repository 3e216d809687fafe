//! The writer against an in-memory store: objects named by position, and a
//! replay after a crash (whole, larger, smaller, across partitions) stores
//! each event once.

use std::collections::HashMap;
use std::io::Read;
use std::sync::Arc;
use std::time::Duration;

use ::object_store::memory::InMemory;
use ::object_store::{ObjectStore, ObjectStoreExt};
use cxrelay_actors::Event;
use futures_util::TryStreamExt;

use super::naming::Naming;
use super::{ObjectSettings, ObjectStoreWriter};
use crate::sinks::file::partition::PartitionTemplate;
use crate::sinks::file::{Compression, Encoding};
use crate::sinks::SinkWriter;

const HOUR_MS: i64 = 3_600_000;

fn settings(compression: Compression) -> Arc<ObjectSettings> {
    Arc::new(ObjectSettings {
        listener: "lake".into(),
        bucket: "b".into(),
        region: "us-east-1".into(),
        endpoint: None,
        allow_http: false,
        access_key_id: None,
        secret_access_key: None,
        session_token: None,
        compression,
        encoding: Encoding::Envelope,
        part_bytes: 8 << 20,
        timeout: Duration::from_secs(10),
        tag: "0a1b2c3d".into(),
        naming: Naming {
            prefix: "raw".into(),
            partition: PartitionTemplate::parse("{date}/{hour}").unwrap(),
            listener: "lake".into(),
            extension: compression.extension(),
        },
    })
}

/// Events at positions `range`; the first `in_first_hour` in one hour, the
/// rest in the next.
fn events(range: std::ops::RangeInclusive<u64>, in_first_hour: u64) -> Vec<Arc<Event>> {
    range
        .map(|seq| {
            let hour = if seq <= in_first_hour { 0 } else { HOUR_MS };
            Arc::new(
                Event::builder("gen", "t")
                    .id(format!("e{seq}"))
                    .seq(seq)
                    .event_time(Some(1_714_564_800_000 + hour))
                    .payload(format!("{{\"n\":{seq}}}").into_bytes())
                    .build(),
            )
        })
        .collect()
}

fn run<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(f)
}

/// Every stored object: its key and its events' positions.
fn stored(store: &Arc<dyn ObjectStore>) -> Vec<(String, Vec<u64>)> {
    run(async {
        let metas: Vec<_> = store.list(None).try_collect().await.unwrap();
        let mut out = Vec::new();
        for m in metas {
            let body = store.get(&m.location).await.unwrap().bytes().await.unwrap();
            let mut text = String::new();
            flate2::read::MultiGzDecoder::new(&body[..])
                .read_to_string(&mut text)
                .unwrap();
            let seqs = text
                .lines()
                .map(|l| {
                    serde_json::from_str::<serde_json::Value>(l).unwrap()["seq"]
                        .as_u64()
                        .unwrap()
                })
                .collect();
            out.push((m.location.to_string(), seqs));
        }
        out.sort();
        out
    })
}

fn commit(w: &mut ObjectStoreWriter, evs: &[Arc<Event>]) {
    run(w.commit(evs)).unwrap();
}

fn counts(store: &Arc<dyn ObjectStore>) -> HashMap<u64, usize> {
    let mut c = HashMap::new();
    for (_, seqs) in stored(store) {
        for s in seqs {
            *c.entry(s).or_insert(0) += 1;
        }
    }
    c
}

#[test]
fn a_batch_is_an_object_per_partition_named_by_its_positions() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut w = ObjectStoreWriter::with_store(settings(Compression::Gzip), store.clone());
    commit(&mut w, &events(1..=10, 6));
    let objects = stored(&store);
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "raw/2024-05-01/12/lake-0a1b2c3d-00000000000000000001-00000000000000000006.ndjson.gz",
            "raw/2024-05-01/13/lake-0a1b2c3d-00000000000000000007-00000000000000000010.ndjson.gz",
        ]
    );
    assert_eq!(objects[1].1, vec![7, 8, 9, 10]);
    let status = w.describe();
    assert_eq!(
        (status["objects"].as_u64(), status["events"].as_u64()),
        (Some(2), Some(10))
    );
}

#[test]
fn a_replay_after_a_crash_stores_each_event_once_whatever_its_batches() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let s = settings(Compression::Gzip);
    // The crashed process stored 1..=10 and 11..=20 (across the hour at 15)
    // without their acknowledgement reaching the journal.
    let mut first = ObjectStoreWriter::with_store(s.clone(), store.clone());
    commit(&mut first, &events(1..=10, 15));
    commit(&mut first, &events(11..=20, 15));
    // The replay comes in different batches: smaller, then larger.
    let mut second = ObjectStoreWriter::with_store(s.clone(), store.clone());
    commit(&mut second, &events(1..=4, 15));
    commit(&mut second, &events(5..=13, 15));
    commit(&mut second, &events(14..=30, 15));
    commit(&mut second, &events(31..=40, 15));
    let c = counts(&store);
    assert_eq!(c.len(), 40);
    assert!(c.values().all(|&n| n == 1), "{c:?}");
    let status = second.describe();
    assert_eq!(status["already_stored"].as_u64(), Some(20), "{status}");
    // A failed attempt that stored after all (its answer lost: the writer
    // forgets what it knew) is found on the retry.
    let mut third = ObjectStoreWriter::with_store(s.clone(), store.clone());
    commit(&mut third, &events(41..=50, 15));
    third.state.borrow_mut().stored.clear();
    commit(&mut third, &events(41..=55, 15));
    let c = counts(&store);
    assert_eq!((c.len(), c.values().all(|&n| n == 1)), (55, true), "{c:?}");
    // Uploads that finished out of order before a crash (61..=70 stored,
    // 56..=60 not): the replay stores the gap and skips the rest, wherever
    // its batches start and end.
    let mut fourth = ObjectStoreWriter::with_store(s.clone(), store.clone());
    commit(&mut fourth, &events(61..=70, 15));
    let mut fifth = ObjectStoreWriter::with_store(s, store.clone());
    commit(&mut fifth, &events(56..=63, 15));
    commit(&mut fifth, &events(64..=75, 15));
    let c = counts(&store);
    assert_eq!((c.len(), c.values().all(|&n| n == 1)), (75, true), "{c:?}");
}

#[test]
fn without_the_journal_objects_are_counted_and_never_looked_for() {
    let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
    let mut w = ObjectStoreWriter::with_store(settings(Compression::Gzip), store.clone());
    let unpositioned: Vec<Arc<Event>> = (0..3)
        .map(|i| Arc::new(Event::builder("s", "t").id(format!("x{i}")).received_at(0).build()))
        .collect();
    commit(&mut w, &unpositioned);
    commit(&mut w, &unpositioned);
    let objects = stored(&store);
    assert_eq!(objects.len(), 2);
    let tag = w.state.borrow().run_tag.clone();
    assert!(objects[1].0.ends_with(&format!(
        "lake-{tag}-00000000000000000002-00000000000000000002.ndjson.gz"
    )));
}
