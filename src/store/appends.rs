//! The journal's operations on the store: group commits, truncation by
//! acknowledged position, reading back, counters, and key expiry.
//!
//! A group commit writes one segment record and syncs it; nothing else is
//! on that path. What the record carried for redb is written there later:
//! checkpoints with each save of acknowledged positions; idempotency keys
//! in batches (when enough are pending, when memory dropped some that the
//! key table must then answer for, at shutdown); and both always, durably,
//! before a segment is deleted, so that deleting a segment never loses a
//! key or a checkpoint.

use std::collections::HashSet;
use std::hash::BuildHasherDefault;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use cxrelay_actors::Event;
use redb::{Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata};

use super::db::{
    ctx, io_ctx, Append, Journal, JournalEntry, JournalStats, StoreDb, StoreError, ACKS, CHECKPOINTS, DEAD_LETTERS,
    KEYS, KEYS_BY_EXPIRY, KEY_BATCHES, META, TRUNCATED_UPTO,
};
use super::idempotency::{pack_keys, unpack_keys, KeyHash, PassThrough};
use super::segments::record::RecordWriter;

/// Keys pending for the key table that make a batch worth writing (redb's
/// inserts are cheaper in bulk, and the pending list stays small).
const FLUSH_KEYS: usize = 65_536;

/// Whether a write to redb takes the pending idempotency keys along (it
/// always does when it deletes segments).
#[derive(Clone, Copy, PartialEq, Eq)]
enum PendingKeys {
    Write,
    Keep,
}

impl StoreDb {
    /// Commits a group of appends as one durable journal record: assigns
    /// positions, drops idempotent duplicates (their `seq` stays 0), and
    /// carries the keys and checkpoints. Dead letters being sent back are
    /// removed once their events are committed. Returns how many duplicates
    /// each append had.
    pub fn append(&self, batch: &mut [Append], now_ms: i64) -> Result<Vec<usize>, StoreError> {
        if !self.is_available() {
            return Err(StoreError::Unavailable(self.last_error().unwrap_or_default()));
        }
        let expires = now_ms + self.idempotency_window_ms;
        let mut j = self.journal.lock();
        if j.pending_beyond_memory {
            // The table answers for what memory dropped: it must hold those
            // keys first (once per overflow; later keys are in memory).
            self.persist(&mut j, &[], &[], PendingKeys::Write)
                .map_err(|e| self.fail(e))?;
        }
        let first = self.next_seq.load(Ordering::Acquire);
        let mut next = first;
        let mut new_keys: Vec<KeyHash> = Vec::new();
        let mut seen_here: HashSet<KeyHash, BuildHasherDefault<PassThrough>> = HashSet::default();
        let mut dups = Vec::with_capacity(batch.len());
        let mut table = None;
        for a in batch.iter_mut() {
            let mut d = 0;
            for (i, ev) in a.events.iter_mut().enumerate() {
                if let Some(Some(key)) = a.keys.get(i) {
                    if seen_here.contains(key) || self.seen_in_store(*key, now_ms, &mut table)? {
                        ev.seq = 0;
                        d += 1;
                        continue;
                    }
                    seen_here.insert(*key);
                    new_keys.push(*key);
                }
                ev.seq = next;
                next += 1;
            }
            dups.push(d);
        }
        drop(table);
        let has_checkpoint = batch.iter().any(|a| a.checkpoint.is_some());
        if next == first && !has_checkpoint {
            // Nothing new to make durable (every event a duplicate).
            return Ok(dups);
        }
        {
            let checkpoints: Vec<(&str, &[u8])> = batch
                .iter()
                .filter_map(|a| a.checkpoint.as_ref().map(|(s, v)| (s.as_str(), v.as_slice())))
                .collect();
            let mut w = RecordWriter::begin(j.log.record_buf(), first, expires, &new_keys, &checkpoints);
            for a in batch.iter() {
                for ev in a.events.iter().filter(|e| e.seq != 0) {
                    w.push(ev, a.target.as_deref());
                }
            }
            w.finish();
        }
        if let Err(e) = j.log.write_record() {
            drop(j);
            // Positions handed out in the failed write are reused.
            for a in batch.iter_mut() {
                a.events.iter_mut().for_each(|e| e.seq = 0);
            }
            return Err(self.fail(io_ctx("append")(e)));
        }
        self.next_seq.store(next, Ordering::Release);
        self.journal_bytes.store(j.log.held_bytes(), Ordering::Relaxed);
        if self.idempotency.remember(new_keys.iter().map(|k| (*k, expires))) {
            j.pending_beyond_memory = true;
        }
        j.pending_keys.extend(new_keys.iter().map(|k| (*k, expires)));
        for a in batch.iter_mut() {
            if let Some((source, value)) = a.checkpoint.take() {
                j.pending_checkpoints.insert(source, value);
            }
        }
        if j.pending_keys.len() >= FLUSH_KEYS {
            // Not durable by itself: the segments still hold these keys.
            if let Err(e) = self.persist(&mut j, &[], &[], PendingKeys::Write) {
                tracing::warn!(error = %e, "could not move idempotency keys to the key table; will retry");
            }
        }
        drop(j);
        let replayed: Vec<u64> = batch
            .iter()
            .flat_map(|a| a.delete_dead_letters.iter().copied())
            .collect();
        if !replayed.is_empty() {
            self.remove_replayed(&replayed);
        }
        Ok(dups)
    }

    /// Whether `key` was accepted within the window: memory first, the key
    /// table only when memory does not hold every key.
    fn seen_in_store(
        &self,
        key: KeyHash,
        now_ms: i64,
        table: &mut Option<redb::ReadOnlyTable<u128, i64>>,
    ) -> Result<bool, StoreError> {
        if self.idempotency.seen(key, now_ms) {
            return Ok(true);
        }
        if self.idempotency.is_complete() {
            return Ok(false);
        }
        if table.is_none() {
            let db = self.handle()?;
            let r = db.begin_read().map_err(ctx("begin read"))?;
            *table = Some(r.open_table(KEYS).map_err(ctx("open idempotency"))?);
        }
        let Some(t) = table.as_ref() else {
            return Ok(false);
        };
        Ok(t.get(key)
            .map_err(ctx("read idempotency"))?
            .is_some_and(|e| e.value() > now_ms))
    }

    /// Removes dead letters whose events are now committed. A failure
    /// leaves them in the table: they may be sent back twice, never lost.
    /// Removes dead letters whose events were sent back (a failure only
    /// leaves them listed: replaying them again duplicates, never loses).
    pub fn remove_replayed(&self, ids: &[u64]) {
        let result = (|| {
            let db = self.handle()?;
            let mut txn = db.begin_write().map_err(ctx("begin"))?;
            txn.set_durability(Durability::Immediate)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            for id in ids {
                super::dead_letter_table::remove_in(&txn, *id)?;
            }
            txn.commit().map_err(ctx("commit"))
        })();
        if let Err(e) = result {
            tracing::warn!(error = %e, "dead letters sent back stay listed: they could not be removed");
        }
    }

    /// Writes events read from an earlier version's journal as records, at
    /// their positions.
    pub(super) fn write_legacy(&self, events: &[(Event, Option<String>)]) -> Result<(), StoreError> {
        let mut j = self.journal.lock();
        let mut rest = events;
        while let Some((head, _)) = rest.first() {
            // One record per run of consecutive positions.
            let run = rest
                .windows(2)
                .position(|w| w[1].0.seq != w[0].0.seq + 1)
                .map_or(rest.len(), |i| i + 1);
            let mut w = RecordWriter::begin(j.log.record_buf(), head.seq, 0, &[], &[]);
            for (ev, target) in &rest[..run] {
                w.push(ev, target.as_deref());
            }
            w.finish();
            j.log.write_record().map_err(io_ctx("moving the legacy journal"))?;
            self.next_seq.fetch_max(rest[run - 1].0.seq + 1, Ordering::AcqRel);
            rest = &rest[run..];
        }
        Ok(())
    }

    /// Writes acknowledged positions, the truncation point and what the
    /// journal's records carried (checkpoints, and keys when `keys` says so)
    /// to redb; durably, with every key, and then deleting them, when
    /// segments are to go.
    fn persist(
        &self,
        j: &mut Journal,
        acks: &[(String, u64)],
        dead: &[u64],
        keys: PendingKeys,
    ) -> Result<(), StoreError> {
        let with_keys = (keys == PendingKeys::Write || !dead.is_empty()) && !j.pending_keys.is_empty();
        let db = self.handle()?;
        let mut txn = db.begin_write().map_err(ctx("begin"))?;
        let durability = if dead.is_empty() {
            Durability::None
        } else {
            Durability::Immediate
        };
        txn.set_durability(durability)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        {
            let mut t = txn.open_table(ACKS).map_err(ctx("open acks"))?;
            for (name, seq) in acks {
                t.insert(name.as_str(), *seq).map_err(ctx("write acks"))?;
            }
            if with_keys {
                let mut keys = txn.open_table(KEYS).map_err(ctx("open idempotency"))?;
                let mut packed = Vec::with_capacity(j.pending_keys.len() * 16);
                let mut latest = i64::MIN;
                for (k, exp) in &j.pending_keys {
                    // A key accepted again takes its new expiry; the batch
                    // that listed it first finds it renewed and leaves it.
                    keys.insert(*k, *exp).map_err(ctx("write idempotency"))?;
                    latest = latest.max(*exp);
                }
                pack_keys(&mut packed, j.pending_keys.iter().map(|(k, _)| *k));
                let mut batches = txn.open_table(KEY_BATCHES).map_err(ctx("open idempotency"))?;
                let earlier = batches
                    .get(latest)
                    .map_err(ctx("read idempotency"))?
                    .map(|v| v.value().to_vec());
                if let Some(mut earlier) = earlier {
                    earlier.extend_from_slice(&packed);
                    packed = earlier;
                }
                batches
                    .insert(latest, packed.as_slice())
                    .map_err(ctx("write idempotency"))?;
            }
            let mut ckpt = txn.open_table(CHECKPOINTS).map_err(ctx("open checkpoints"))?;
            for (source, value) in &j.pending_checkpoints {
                ckpt.insert(source.as_str(), value.as_slice())
                    .map_err(ctx("write checkpoint"))?;
            }
            let mut meta = txn.open_table(META).map_err(ctx("open meta"))?;
            meta.insert(TRUNCATED_UPTO, j.log.truncated_upto())
                .map_err(ctx("write meta"))?;
            meta.insert("next_seq", self.next_seq()).map_err(ctx("write meta"))?;
        }
        txn.commit().map_err(ctx("commit"))?;
        if with_keys {
            j.pending_keys.clear();
            j.pending_beyond_memory = false;
        }
        j.pending_checkpoints.clear();
        if !dead.is_empty() {
            if let Err(e) = j.log.remove(dead) {
                // Left on disk, harmless: they are found empty again.
                tracing::warn!(error = %e, "could not delete a journal segment every listener has");
            }
        }
        Ok(())
    }

    /// Makes what the journal's records carried durable in redb and deletes
    /// the segments every listener has (at open, and at shutdown).
    pub(super) fn flush_pending(&self) -> Result<(), StoreError> {
        let mut j = self.journal.lock();
        let upto = j.log.truncated_upto();
        let (_, dead) = j.log.truncate(upto);
        let result = self.persist_durably(&mut j, &[], &dead);
        self.journal_bytes.store(j.log.held_bytes(), Ordering::Relaxed);
        result
    }

    fn persist_durably(&self, j: &mut Journal, acks: &[(String, u64)], dead: &[u64]) -> Result<(), StoreError> {
        if dead.is_empty() {
            // `persist` is durable only when segments go: make it so.
            self.persist(j, acks, &[], PendingKeys::Write)?;
            let db = self.handle()?;
            let mut txn = db.begin_write().map_err(ctx("begin"))?;
            txn.set_durability(Durability::Immediate)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            txn.commit().map_err(ctx("commit"))
        } else {
            self.persist(j, acks, dead, PendingKeys::Write)
        }
    }

    /// Saves acknowledged positions and forgets journal records whose
    /// events are all at or below `truncate_upto`; answers how many events
    /// were forgotten. Not made durable by itself (a crash before the next
    /// durable write only means those events are delivered again), except
    /// when whole segments are deleted.
    pub fn save_acks(&self, acks: &[(String, u64)], truncate_upto: u64) -> Result<u64, StoreError> {
        if !self.is_available() {
            return Err(StoreError::Unavailable(self.last_error().unwrap_or_default()));
        }
        let mut j = self.journal.lock();
        let before = j.log.held_events().0;
        let (_, dead) = j.log.truncate(truncate_upto);
        let removed = before.saturating_sub(j.log.held_events().0);
        self.journal_bytes.store(j.log.held_bytes(), Ordering::Relaxed);
        // Keys stay pending (the segments hold them) until segments go or
        // enough gather: an insert per key per save cost more than the
        // save itself.
        let result = self.persist(&mut j, acks, &dead, PendingKeys::Keep);
        drop(j);
        result.map(|()| removed).map_err(|e| self.fail(e))
    }

    /// Makes everything committed so far durable (used at shutdown).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.flush_pending().map_err(|e| self.fail(e))
    }

    /// Up to about `limit` journal entries after position `after`, in order.
    pub fn scan(&self, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let j = self.journal.lock();
        let entries = j.log.scan(after, limit).map_err(io_ctx("reading segments"))?;
        Ok(entries
            .into_iter()
            .map(|(event, target)| JournalEntry { event, target })
            .collect())
    }

    /// Counters for status.
    pub fn stats(&self) -> Result<JournalStats, StoreError> {
        let (entries, oldest_received_ms, bytes) = {
            let j = self.journal.lock();
            let (n, oldest) = j.log.held_events();
            (n, oldest, j.log.held_bytes())
        };
        let db = self.handle()?;
        let r = db.begin_read().map_err(ctx("begin read"))?;
        let d = r.open_table(DEAD_LETTERS).map_err(ctx("open dead letters"))?;
        Ok(JournalStats {
            entries,
            bytes,
            oldest_received_ms,
            next_seq: self.next_seq(),
            dead_letters: d.len().map_err(ctx("count dead letters"))?,
        })
    }

    /// Forgets expired keys in transactions of 10,000 until none is left or
    /// `budget` is spent; answers how many. Called every round, so expiry
    /// keeps up with sustained keyed ingest.
    pub fn expire_idempotency_within(&self, now_ms: i64, budget: Duration) -> Result<usize, StoreError> {
        const CHUNK: usize = 10_000;
        self.idempotency.expire(now_ms);
        let started = Instant::now();
        let mut total = 0;
        loop {
            let (forgotten, looked_at) = self.expire_round(now_ms, CHUNK)?;
            total += forgotten;
            if looked_at < CHUNK || started.elapsed() >= budget {
                return Ok(total);
            }
        }
    }

    /// Forgets idempotency keys of the key table that expired before
    /// `now_ms` (looking at about `limit` per call, to keep each
    /// transaction short); answers how many were forgotten.
    pub fn expire_idempotency(&self, now_ms: i64, limit: usize) -> Result<usize, StoreError> {
        self.expire_round(now_ms, limit).map(|(forgotten, _)| forgotten)
    }

    /// One expiry transaction: the keys forgotten, and the entries looked
    /// at (a key listed by several moves is looked at once per move).
    fn expire_round(&self, now_ms: i64, limit: usize) -> Result<(usize, usize), StoreError> {
        let db = self.handle()?;
        let mut txn = db.begin_write().map_err(ctx("begin"))?;
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut n = 0;
        let mut forgotten = 0;
        {
            let mut keys = txn.open_table(KEYS).map_err(ctx("open idempotency"))?;
            // Only if not renewed since.
            let mut forget = |keys: &mut redb::Table<u128, i64>, key: u128| -> Result<(), StoreError> {
                let exp = keys.get(key).map_err(ctx("read idempotency"))?.map(|v| v.value());
                if exp.is_some_and(|e| e < now_ms) {
                    keys.remove(key).map_err(ctx("expire idempotency"))?;
                    forgotten += 1;
                }
                Ok(())
            };
            // Keys a store written before key batches holds one by one.
            let mut by_exp = txn.open_table(KEYS_BY_EXPIRY).map_err(ctx("open idempotency"))?;
            let expired: Vec<(i64, u128)> = by_exp
                .range(..(now_ms, 0u128))
                .map_err(ctx("read idempotency"))?
                .take(limit)
                .filter_map(|r| r.ok().map(|(k, _)| k.value()))
                .collect();
            for (exp, key) in expired {
                by_exp.remove((exp, key)).map_err(ctx("expire idempotency"))?;
                forget(&mut keys, key)?;
                n += 1;
            }
            // Whole batches, while under the limit (a batch may pass it).
            let mut batches = txn.open_table(KEY_BATCHES).map_err(ctx("open idempotency"))?;
            while n < limit {
                let due = batches
                    .first()
                    .map_err(ctx("read idempotency"))?
                    .filter(|(latest, _)| latest.value() < now_ms)
                    .map(|(latest, packed)| (latest.value(), packed.value().to_vec()));
                let Some((latest, packed)) = due else { break };
                for key in unpack_keys(&packed) {
                    forget(&mut keys, key)?;
                    n += 1;
                }
                batches.remove(latest).map_err(ctx("expire idempotency"))?;
            }
        }
        txn.commit().map_err(ctx("commit")).map_err(|e| self.fail(e))?;
        Ok((forgotten, n))
    }
}
