use super::*;
use crate::store::DeadLetter;
use std::time::Duration;

fn ev(i: u64) -> Event {
    Event::builder("src", "a.b")
        .id(format!("e{i}"))
        .payload(format!("{{\"n\":{i}}}"))
        .build()
}

fn k(key: &str) -> u128 {
    crate::store::idempotency::key_hash("src", key)
}

fn open(dir: &Path) -> StoreDb {
    StoreDb::open(dir, 60_000, 1000).unwrap()
}

#[test]
fn appends_assign_positions_that_survive_reopening_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut batch = vec![Append {
        events: (0..5).map(ev).collect(),
        checkpoint: Some(("src".into(), b"5".to_vec())),
        ..Append::default()
    }];
    db.append(&mut batch, 0).unwrap();
    let seqs: Vec<u64> = batch[0].events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5]);
    db.save_acks(&[("l".into(), 5)], 5).unwrap();
    db.sync().unwrap();
    assert_eq!(db.stats().unwrap().entries, 0);
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.next_seq(), 6, "positions never go back after truncation");
    assert_eq!(db.checkpoint("src").unwrap().unwrap(), b"5");
    assert_eq!(db.acks().unwrap()["l"], 5);
}

#[test]
fn duplicates_by_key_are_dropped_within_a_batch_and_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = cxrelay_actors::event::now_ms();
    let db = open(dir.path());
    let mut batch = vec![
        Append {
            events: vec![ev(1), ev(2)],
            keys: vec![Some(k("k1")), Some(k("k1"))],
            ..Append::default()
        },
        Append {
            events: vec![ev(3)],
            keys: vec![Some(k("k3"))],
            ..Append::default()
        },
    ];
    assert_eq!(db.append(&mut batch, t0).unwrap(), vec![1, 0]);
    // Gone without a sync (as after kill -9): the keys rode in the record.
    drop(db);
    let db = open(dir.path());
    assert!(db.idempotency.seen(k("k1"), t0), "keys come back at open");
    let mut again = vec![Append {
        events: vec![ev(4)],
        keys: vec![Some(k("k1"))],
        ..Append::default()
    }];
    assert_eq!(db.append(&mut again, t0 + 10).unwrap(), vec![1], "the store remembers");
    drop(db);
    // More keys than memory may hold: the table answers.
    let db = StoreDb::open(dir.path(), 60_000, 1).unwrap();
    let mut third = vec![Append {
        events: vec![ev(5)],
        keys: vec![Some(k("k3"))],
        ..Append::default()
    }];
    assert_eq!(db.append(&mut third, t0 + 20).unwrap(), vec![1], "the table remembers");
    // After the window the key is forgotten.
    assert_eq!(db.expire_idempotency(t0 + 120_000, 100).unwrap(), 2);
    let mut later = vec![Append {
        events: vec![ev(6)],
        keys: vec![Some(k("k1"))],
        ..Append::default()
    }];
    assert_eq!(db.append(&mut later, t0 + 120_000).unwrap(), vec![0]);
}

#[test]
fn a_duplicate_is_caught_when_memory_overflowed_before_keys_reached_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = cxrelay_actors::event::now_ms();
    // Memory holds one key; nothing is acknowledged or synced in between.
    let db = StoreDb::open(dir.path(), 60_000, 1).unwrap();
    let accept = |key: &str, i: u64| {
        let mut a = vec![Append {
            events: vec![ev(i)],
            keys: vec![Some(k(key))],
            ..Append::default()
        }];
        db.append(&mut a, t0).unwrap()
    };
    assert_eq!(accept("k1", 1), vec![0]);
    assert_eq!(accept("k2", 2), vec![0], "memory overflows and holds k2 only");
    assert_eq!(accept("k1", 3), vec![1], "the table answers for k1");
    assert_eq!(accept("k3", 4), vec![0]);
}

#[test]
fn the_data_dir_and_the_store_are_private_to_their_user() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let db = open(&data);
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700);
    assert_eq!(mode(db.path()), 0o600);
}

#[test]
fn recovery_continues_after_what_the_journal_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut batch = vec![Append {
        events: (0..3).map(ev).collect(),
        ..Append::default()
    }];
    db.append(&mut batch, 0).unwrap();
    assert_eq!(db.next_seq(), 4);
    // As if a commit had reached the disk while being reported failed:
    // memory is behind what is on disk.
    db.next_seq.store(2, Ordering::Release);
    db.recover().unwrap();
    assert_eq!(db.next_seq(), 4, "a later append must not reuse positions 2 and 3");
}

#[test]
fn expiry_keeps_up_with_more_than_one_chunk_of_keys() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut batch = vec![Append {
        events: (0..25_000).map(ev).collect(),
        keys: (0..25_000).map(|i| Some(k(&format!("k{i}")))).collect(),
        ..Append::default()
    }];
    db.append(&mut batch, 0).unwrap();
    db.sync().unwrap();
    let n = db.expire_idempotency_within(120_000, Duration::from_secs(30)).unwrap();
    assert_eq!(n, 25_000, "one round forgets every expired key");
}

#[test]
fn scan_reads_back_in_order_with_targets() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let mut batch = vec![
        Append {
            events: vec![ev(1)],
            ..Append::default()
        },
        Append {
            events: vec![ev(2)],
            target: Some("wh".into()),
            ..Append::default()
        },
    ];
    db.append(&mut batch, 0).unwrap();
    let all = db.scan(0, 10).unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!((all[0].event.seq, all[0].target.as_deref()), (1, None));
    assert_eq!((&*all[1].event.id, all[1].target.as_deref()), ("e2", Some("wh")));
    assert_eq!(db.scan(1, 10).unwrap().len(), 1);
}

#[test]
fn dead_letters_are_listed_replayed_atomically_and_purged() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let e = std::sync::Arc::new(ev(7));
    let ids = db
        .put_dead_letters(&[
            DeadLetter::for_event(&e, "sink", Some("wh"), "HTTP 500", 5),
            DeadLetter::for_raw("hook", "webhook", "bad JSON", b"{nope", None),
        ])
        .unwrap();
    assert_eq!(ids, vec![Some(1), Some(2)]);
    let listed = db.dead_letters(0, 10).unwrap();
    assert_eq!(listed[0].error, "HTTP 500");
    let (mut appends, refused) = crate::store::dead_letter_table::replay_appends(listed);
    assert_eq!(refused.len(), 1);
    db.append(&mut appends, 0).unwrap();
    assert_eq!(db.dead_letters(0, 10).unwrap().len(), 1);
    let back = db.scan(0, 10).unwrap();
    assert_eq!((&*back[0].event.id, back[0].target.as_deref()), ("e7", Some("wh")));
    assert_eq!(db.purge_dead_letters(i64::MAX).unwrap(), 1);
    assert_eq!(db.stats().unwrap().dead_letters, 0);
}

#[test]
fn a_second_opener_is_told_the_store_is_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let _db = open(dir.path());
    assert!(matches!(StoreDb::open(dir.path(), 1, 1), Err(StoreError::Locked(_))));
}

#[test]
fn a_crash_mid_write_keeps_every_acknowledged_event_key_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = cxrelay_actors::event::now_ms();
    let db = open(dir.path());
    for i in 0..3u64 {
        let mut batch = vec![Append {
            events: vec![ev(i)],
            keys: vec![Some(k(&format!("k{i}")))],
            checkpoint: Some(("src".into(), i.to_string().into_bytes())),
            ..Append::default()
        }];
        db.append(&mut batch, t0).unwrap();
    }
    drop(db);
    // The next group's write was cut by the crash: a partial frame.
    let seg = dir.path().join("journal").join(format!("{:020}.seg", 1));
    let mut bytes = std::fs::read(&seg).unwrap();
    // The records, without the zeros written ahead of them.
    let len = crate::store::segments::frame::records_len(&bytes) as u64;
    bytes.truncate(len as usize);
    // Records here are a third of that each: this is most of one.
    let torn = bytes[..(len / 3 - 5) as usize].to_vec();
    bytes.extend_from_slice(&torn);
    std::fs::write(&seg, &bytes).unwrap();
    let db = open(dir.path());
    assert_eq!(db.next_seq(), 4, "positions go on after the last intact record");
    let back: Vec<String> = db
        .scan(0, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.event.id.to_string())
        .collect();
    assert_eq!(back, ["e0", "e1", "e2"]);
    assert_eq!(db.checkpoint("src").unwrap().unwrap(), b"2");
    assert!(db.idempotency.seen(k("k2"), t0));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), len, "the torn tail is cut");
    let mut again = vec![Append {
        events: vec![ev(9), ev(10)],
        keys: vec![Some(k("k1")), Some(k("k10"))],
        ..Append::default()
    }];
    assert_eq!(db.append(&mut again, t0).unwrap(), vec![1]);
    assert_eq!(again[0].events[1].seq, 4);
}

#[test]
fn key_batches_expire_their_keys_unless_renewed_and_per_key_entries_still_expire() {
    let dir = tempfile::tempdir().unwrap();
    let db = open(dir.path());
    let accept = |key: &str, at: i64, i: u64| {
        let mut a = vec![Append {
            events: vec![ev(i)],
            keys: vec![Some(k(key))],
            ..Append::default()
        }];
        assert_eq!(db.append(&mut a, at).unwrap(), vec![0], "{key} at {at} is new");
        db.sync().unwrap();
    };
    accept("k1", 0, 1);
    accept("k2", 0, 2);
    // Past its window k1 is new again, with a later expiry.
    accept("k1", 70_000, 3);
    // A key as a store written before key batches holds it.
    {
        let txn = db.handle().unwrap().begin_write().unwrap();
        txn.open_table(KEYS).unwrap().insert(k("old"), 50_000).unwrap();
        txn.open_table(KEYS_BY_EXPIRY)
            .unwrap()
            .insert((50_000, k("old")), ())
            .unwrap();
        txn.commit().unwrap();
    }
    let held = |key: &str| {
        let r = db.handle().unwrap().begin_read().unwrap();
        let t = r.open_table(KEYS).unwrap();
        let v = t.get(k(key)).unwrap().map(|v| v.value());
        v
    };
    assert_eq!(
        (held("k1"), held("k2"), held("old")),
        (Some(130_000), Some(60_000), Some(50_000))
    );
    // k1's first batch is due, k1 itself is not: it stays.
    assert_eq!(db.expire_idempotency(100_000, 100).unwrap(), 2, "k2 and old");
    assert_eq!((held("k1"), held("k2"), held("old")), (Some(130_000), None, None));
    assert_eq!(db.expire_idempotency(100_000, 100).unwrap(), 0, "nothing is due twice");
    assert_eq!(db.expire_idempotency(200_000, 100).unwrap(), 1);
    assert_eq!(held("k1"), None);
    let r = db.handle().unwrap().begin_read().unwrap();
    assert!(
        r.open_table(KEY_BATCHES).unwrap().is_empty().unwrap(),
        "no batch is left"
    );
}

#[test]
fn a_journal_that_goes_round_its_reused_segments_keeps_every_position_key_and_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = cxrelay_actors::event::now_ms();
    let db = open(dir.path());
    // The smallest segments (64 KiB): a few hundred groups go round them
    // several times, each deleted segment coming back as a later one.
    db.set_max_journal_bytes(1);
    let journal = dir.path().join("journal");
    let mut reused = 0;
    let mut spare_before = false;
    for i in 0..600u64 {
        let mut batch = vec![Append {
            events: vec![Event::builder("src", "a.b")
                .id(format!("e{i}"))
                .payload(format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(400)))
                .build()],
            keys: vec![Some(k(&format!("k{i}")))],
            checkpoint: Some(("src".into(), i.to_string().into_bytes())),
            ..Append::default()
        }];
        db.append(&mut batch, t0).unwrap();
        // The listener is always ten events behind.
        let seq = batch[0].events[0].seq;
        if seq > 10 {
            db.save_acks(&[("l".into(), seq - 10)], seq - 10).unwrap();
        }
        let spare = journal.join("spare").exists();
        reused += usize::from(spare_before && !spare);
        spare_before = spare;
    }
    assert!(reused >= 3, "segments were reused {reused} times");
    drop(db);
    let db = open(dir.path());
    assert_eq!(db.next_seq(), 601);
    let back: Vec<u64> = db.scan(0, 100).unwrap().into_iter().map(|e| e.event.seq).collect();
    assert_eq!(
        back,
        (591..=600).collect::<Vec<_>>(),
        "exactly what was not acknowledged"
    );
    assert_eq!(db.checkpoint("src").unwrap().unwrap(), b"599");
    for i in [0, 1, 300, 599] {
        let mut dup = vec![Append {
            events: vec![ev(1000 + i)],
            keys: vec![Some(k(&format!("k{i}")))],
            ..Append::default()
        }];
        assert_eq!(db.append(&mut dup, t0).unwrap(), vec![1], "k{i} is remembered");
    }
}
