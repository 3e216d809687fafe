//! The embedded store: one redb file under `data_dir`, with the journal,
//! acknowledged positions, source checkpoints, idempotency keys and dead
//! letters. Synchronous; owned by the store actors, which run on their own
//! thread, and used directly by the offline `dlq` commands.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cxrelay_actors::Event;
use parking_lot::RwLock;
use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::codec;
use super::idempotency::IdempotencyCache;

const JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
const ACKS: TableDefinition<&str, u64> = TableDefinition::new("acks");
const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");
const IDEMPOTENCY: TableDefinition<&str, i64> = TableDefinition::new("idempotency");
const IDEMPOTENCY_BY_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("idempotency_by_expiry");
pub(super) const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Most events in one journal entry.
const CHUNK_EVENTS: u32 = 256;

/// The store file's name inside `data_dir`.
pub const FILE_NAME: &str = "cxrelay.redb";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb (and through it, the disk) refused.
    #[error("store {what}: {source}")]
    Redb {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: Box<redb::Error>,
    },
    /// The store is not writable now (disk full, I/O error); it is being
    /// reopened in the background.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    /// Another process holds the store.
    #[error("the store {0} is in use by a running cxrelay")]
    Locked(PathBuf),
    /// There is no store where one was expected (and none is created).
    #[error("no store at {0}: no cxrelay has run with this data_dir (is --config the right file?)")]
    Missing(PathBuf),
}

pub(super) fn ctx<E: Into<redb::Error>>(what: &'static str) -> impl FnOnce(E) -> StoreError {
    move |e| StoreError::Redb {
        what,
        source: Box::new(e.into()),
    }
}

/// One source's contribution to a group commit.
#[derive(Debug, Default)]
pub struct Append {
    /// Events to journal (their `seq` is assigned here).
    pub events: Vec<Event>,
    /// Idempotency keys, one per event (or empty for none).
    pub keys: Vec<Option<String>>,
    /// A source checkpoint committed atomically with the events.
    pub checkpoint: Option<(String, Vec<u8>)>,
    /// Deliver only to this listener (dead letters sent back).
    pub target: Option<String>,
    /// Dead letters removed in the same transaction (they are being sent
    /// back as these events).
    pub delete_dead_letters: Vec<u64>,
}

/// One journal entry read back.
#[derive(Debug)]
pub struct JournalEntry {
    /// The event (its `seq` set).
    pub event: Event,
    /// The only listener it is for, if targeted.
    pub target: Option<String>,
}

/// Journal counters for status.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct JournalStats {
    /// Entries held.
    pub entries: u64,
    /// Bytes held.
    pub bytes: u64,
    /// When the oldest event held was received (ms since the epoch).
    pub oldest_received_ms: Option<i64>,
    /// Next position to be assigned.
    pub next_seq: u64,
    /// Dead letters held.
    pub dead_letters: u64,
}

/// The opened store.
pub struct StoreDb {
    path: PathBuf,
    db: RwLock<Option<Arc<Database>>>,
    available: AtomicBool,
    next_seq: AtomicU64,
    idempotency_window_ms: i64,
    /// Recently seen idempotency keys (the table is the authority).
    pub idempotency: IdempotencyCache,
    last_error: parking_lot::Mutex<Option<String>>,
    /// Dead letters kept per component; more are refused and counted.
    dead_letter_cap: AtomicU64,
    /// Bytes the journal table holds (entries not yet truncated).
    journal_bytes: AtomicU64,
    /// The journal's bound: appends are refused at or past it.
    max_journal_bytes: AtomicU64,
}

impl std::fmt::Debug for StoreDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreDb").field("path", &self.path).finish()
    }
}

/// redb's page cache (its default, 1 GiB, lets RSS grow with every byte
/// journaled until it is reached).
const CACHE_BYTES: usize = 32 << 20;

fn open_database(path: &Path) -> Result<Database, StoreError> {
    match Database::builder().set_cache_size(CACHE_BYTES).create(path) {
        Ok(db) => Ok(db),
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::Locked(path.to_path_buf())),
        Err(e) => Err(ctx("open")(e)),
    }
}

/// The journal holds payloads as received (unmasked): only the user
/// cxrelay runs as may read the data directory and the store.
fn restrict(data_dir: &Path, file: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::PermissionsExt;
    let set = |p: &Path, mode: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(|e| StoreError::Redb {
            what: "restricting permissions",
            source: Box::new(redb::Error::Io(e)),
        })
    };
    set(data_dir, 0o700)?;
    set(file, 0o600)
}

impl StoreDb {
    /// Opens the store in `data_dir` for writing, refusing to create one
    /// (the operator commands act on a store cxrelay made).
    pub fn open_existing(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(FILE_NAME);
        if !path.exists() {
            return Err(StoreError::Missing(path));
        }
        Self::open(data_dir, 0, 1)
    }

    /// Opens (or creates) the store in `data_dir`.
    pub fn open(
        data_dir: &Path,
        idempotency_window_ms: i64,
        idempotency_cache_keys: usize,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| StoreError::Redb {
            what: "creating data_dir",
            source: Box::new(redb::Error::Io(e)),
        })?;
        let path = data_dir.join(FILE_NAME);
        let db = open_database(&path)?;
        restrict(data_dir, &path)?;
        let next = Self::prepare(&db)?;
        let journal_bytes = Self::measure_journal(&db)?;
        Ok(StoreDb {
            path,
            db: RwLock::new(Some(Arc::new(db))),
            available: AtomicBool::new(true),
            next_seq: AtomicU64::new(next),
            idempotency_window_ms,
            idempotency: IdempotencyCache::new(idempotency_cache_keys),
            last_error: parking_lot::Mutex::new(None),
            dead_letter_cap: AtomicU64::new(super::dead_letter_table::DEFAULT_DEAD_LETTER_CAP),
            journal_bytes: AtomicU64::new(journal_bytes),
            max_journal_bytes: AtomicU64::new(u64::MAX),
        })
    }

    /// Sets the journal's bound in bytes.
    pub fn set_max_journal_bytes(&self, max: u64) {
        self.max_journal_bytes.store(max.max(1), Ordering::Relaxed);
    }

    /// The journal's bound in bytes.
    pub fn max_journal_bytes(&self) -> u64 {
        self.max_journal_bytes.load(Ordering::Relaxed)
    }

    /// Bytes the journal holds now.
    pub fn journal_bytes(&self) -> u64 {
        self.journal_bytes.load(Ordering::Relaxed)
    }

    /// Whether the journal is at its bound (appends are refused until
    /// listeners acknowledge and it is truncated).
    pub fn journal_full(&self) -> bool {
        self.journal_bytes() >= self.max_journal_bytes()
    }

    /// Sets how many dead letters each component may keep.
    pub fn set_dead_letter_cap(&self, cap: u64) {
        self.dead_letter_cap.store(cap, Ordering::Relaxed);
    }

    /// How many dead letters each component may keep.
    pub fn dead_letter_cap(&self) -> u64 {
        self.dead_letter_cap.load(Ordering::Relaxed)
    }

    /// Bytes the journal table holds (read once at open: the journal holds
    /// what listeners have not acknowledged, bounded by their queues).
    fn measure_journal(db: &Database) -> Result<u64, StoreError> {
        let r = db.begin_read().map_err(ctx("begin read"))?;
        let j = r.open_table(JOURNAL).map_err(ctx("open journal"))?;
        let mut bytes = 0u64;
        for row in j.iter().map_err(ctx("read journal"))? {
            let (_, v) = row.map_err(ctx("read journal"))?;
            bytes += v.value().len() as u64;
        }
        Ok(bytes)
    }

    /// Creates missing tables; answers the next journal position.
    fn prepare(db: &Database) -> Result<u64, StoreError> {
        let txn = db.begin_write().map_err(ctx("begin"))?;
        let next = {
            txn.open_table(ACKS).map_err(ctx("open acks"))?;
            txn.open_table(CHECKPOINTS).map_err(ctx("open checkpoints"))?;
            txn.open_table(IDEMPOTENCY).map_err(ctx("open idempotency"))?;
            txn.open_table(IDEMPOTENCY_BY_EXPIRY).map_err(ctx("open idempotency"))?;
            txn.open_table(DEAD_LETTERS).map_err(ctx("open dead letters"))?;
            super::dead_letter_table::count_existing(&txn)?;
            let journal = txn.open_table(JOURNAL).map_err(ctx("open journal"))?;
            let meta = txn.open_table(META).map_err(ctx("open meta"))?;
            let from_meta = meta.get("next_seq").map_err(ctx("read meta"))?.map(|v| v.value());
            let from_journal = journal.last().map_err(ctx("read journal"))?.map(|(k, _)| k.value() + 1);
            from_meta.unwrap_or(1).max(from_journal.unwrap_or(1))
        };
        txn.commit().map_err(ctx("commit"))?;
        Ok(next)
    }

    /// The store file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether writes are accepted now.
    pub fn is_available(&self) -> bool {
        self.available.load(Ordering::Acquire)
    }

    /// The most recent write error, while unavailable.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().clone()
    }

    /// How long idempotency keys are remembered.
    pub fn idempotency_window_ms(&self) -> i64 {
        self.idempotency_window_ms
    }

    pub(super) fn handle(&self) -> Result<Arc<Database>, StoreError> {
        self.db
            .read()
            .clone()
            .ok_or_else(|| StoreError::Unavailable(self.last_error().unwrap_or_else(|| "reopening".into())))
    }

    /// Records a write failure: writes are refused until [`StoreDb::recover`]
    /// succeeds.
    pub(super) fn fail(&self, e: StoreError) -> StoreError {
        let msg = e.to_string();
        if self.available.swap(false, Ordering::AcqRel) {
            tracing::error!(error = %msg, "store write failed; refusing new events until it is writable again");
        }
        *self.last_error.lock() = Some(msg.clone());
        StoreError::Unavailable(msg)
    }

    /// Tries to make the store writable again: reopens it (redb requires
    /// that after an I/O error) and makes a small durable write.
    pub fn recover(&self) -> Result<(), StoreError> {
        {
            let mut slot = self.db.write();
            *slot = None;
            let db = open_database(&self.path).map_err(|e| self.fail(e))?;
            *slot = Some(Arc::new(db));
        }
        let db = self.handle()?;
        let probe = (|| {
            // A commit reported failed may still have reached the disk:
            // positions continue after whatever the journal holds.
            let on_disk = Self::prepare(&db)?;
            let next = self.next_seq.fetch_max(on_disk, Ordering::AcqRel).max(on_disk);
            let mut txn = db.begin_write().map_err(ctx("begin"))?;
            txn.set_durability(Durability::Immediate)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            {
                let mut meta = txn.open_table(META).map_err(ctx("open meta"))?;
                meta.insert("next_seq", next).map_err(ctx("write meta"))?;
            }
            txn.commit().map_err(ctx("commit"))
        })();
        match probe {
            Ok(()) => {
                self.available.store(true, Ordering::Release);
                *self.last_error.lock() = None;
                tracing::info!("store is writable again");
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Commits a group of appends in one durable transaction: assigns
    /// positions, drops idempotent duplicates (their `seq` stays 0), writes
    /// checkpoints and removes dead letters being sent back. Returns how many
    /// duplicates each append had.
    pub fn append(&self, batch: &mut [Append], now_ms: i64) -> Result<Vec<usize>, StoreError> {
        if !self.is_available() {
            return Err(StoreError::Unavailable(self.last_error().unwrap_or_default()));
        }
        let db = self.handle()?;
        let mut next = self.next_seq.load(Ordering::Acquire);
        let expires = now_ms + self.idempotency_window_ms;
        let mut new_keys: Vec<String> = Vec::new();
        let mut written = 0u64;
        let result = (|| -> Result<Vec<usize>, StoreError> {
            let mut txn = db.begin_write().map_err(ctx("begin"))?;
            txn.set_durability(Durability::Immediate)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let mut dups = Vec::with_capacity(batch.len());
            {
                let mut journal = txn.open_table(JOURNAL).map_err(ctx("open journal"))?;
                let mut idem = txn.open_table(IDEMPOTENCY).map_err(ctx("open idempotency"))?;
                let mut idem_exp = txn.open_table(IDEMPOTENCY_BY_EXPIRY).map_err(ctx("open idempotency"))?;
                let mut ckpt = txn.open_table(CHECKPOINTS).map_err(ctx("open checkpoints"))?;
                let mut seen_here: HashSet<String> = HashSet::new();
                let mut chunk = codec::ChunkWriter::default();
                for a in batch.iter_mut() {
                    let mut d = 0;
                    for (i, ev) in a.events.iter_mut().enumerate() {
                        if let Some(Some(key)) = a.keys.get(i) {
                            let dup = seen_here.contains(key.as_str())
                                || self.idempotency.seen(key, now_ms)
                                || idem
                                    .get(key.as_str())
                                    .map_err(ctx("read idempotency"))?
                                    .is_some_and(|e| e.value() > now_ms);
                            if dup {
                                ev.seq = 0;
                                d += 1;
                                continue;
                            }
                            idem.insert(key.as_str(), expires).map_err(ctx("write idempotency"))?;
                            idem_exp
                                .insert((expires, key.as_str()), ())
                                .map_err(ctx("write idempotency"))?;
                            seen_here.insert(key.clone());
                            new_keys.push(key.clone());
                        }
                        ev.seq = next;
                        chunk.push(ev, a.target.as_deref());
                        if chunk.count() >= CHUNK_EVENTS {
                            journal.insert(next, chunk.bytes()).map_err(ctx("write journal"))?;
                            written += chunk.bytes().len() as u64;
                            chunk.clear();
                        }
                        next += 1;
                    }
                    if chunk.count() > 0 {
                        journal.insert(next - 1, chunk.bytes()).map_err(ctx("write journal"))?;
                        written += chunk.bytes().len() as u64;
                        chunk.clear();
                    }
                    if let Some((source, value)) = &a.checkpoint {
                        ckpt.insert(source.as_str(), value.as_slice())
                            .map_err(ctx("write checkpoint"))?;
                    }
                    dups.push(d);
                }
                let mut meta = txn.open_table(META).map_err(ctx("open meta"))?;
                meta.insert("next_seq", next).map_err(ctx("write meta"))?;
            }
            // Replayed dead letters leave the table with their events' commit.
            for id in batch.iter().flat_map(|a| &a.delete_dead_letters) {
                super::dead_letter_table::remove_in(&txn, *id)?;
            }
            txn.commit().map_err(ctx("commit"))?;
            Ok(dups)
        })();
        match result {
            Ok(dups) => {
                self.next_seq.store(next, Ordering::Release);
                self.journal_bytes.fetch_add(written, Ordering::Relaxed);
                for k in &new_keys {
                    self.idempotency.remember(k, expires);
                }
                Ok(dups)
            }
            Err(e) => {
                // Positions handed out in the failed transaction are reused.
                for a in batch.iter_mut() {
                    a.events.iter_mut().for_each(|e| e.seq = 0);
                }
                Err(self.fail(e))
            }
        }
    }
}

impl StoreDb {
    /// The next journal position.
    pub fn next_seq(&self) -> u64 {
        self.next_seq.load(Ordering::Acquire)
    }

    /// Acknowledged positions by listener name.
    pub fn acks(&self) -> Result<HashMap<String, u64>, StoreError> {
        let db = self.handle()?;
        let r = db.begin_read().map_err(ctx("begin read"))?;
        let t = r.open_table(ACKS).map_err(ctx("open acks"))?;
        let mut out = HashMap::new();
        for row in t.iter().map_err(ctx("read acks"))? {
            let (k, v) = row.map_err(ctx("read acks"))?;
            out.insert(k.value().to_string(), v.value());
        }
        Ok(out)
    }

    /// Saves acknowledged positions and forgets journal entries at or below
    /// `truncate_upto`. Not made durable by itself: a crash before the next
    /// durable commit only means those events are delivered again.
    pub fn save_acks(&self, acks: &[(String, u64)], truncate_upto: u64) -> Result<u64, StoreError> {
        if !self.is_available() {
            return Err(StoreError::Unavailable(self.last_error().unwrap_or_default()));
        }
        let db = self.handle()?;
        let mut freed = 0u64;
        let result = (|| -> Result<u64, StoreError> {
            let mut txn = db.begin_write().map_err(ctx("begin"))?;
            txn.set_durability(Durability::None)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let removed;
            {
                let mut t = txn.open_table(ACKS).map_err(ctx("open acks"))?;
                for (name, seq) in acks {
                    t.insert(name.as_str(), *seq).map_err(ctx("write acks"))?;
                }
                let mut j = txn.open_table(JOURNAL).map_err(ctx("open journal"))?;
                let before = j.len().map_err(ctx("count journal"))?;
                if truncate_upto > 0 {
                    j.retain_in(..=truncate_upto, |_, v| {
                        freed += v.len() as u64;
                        false
                    })
                    .map_err(ctx("truncate journal"))?;
                }
                removed = before - j.len().map_err(ctx("count journal"))?;
            }
            txn.commit().map_err(ctx("commit"))?;
            Ok(removed)
        })();
        if result.is_ok() {
            let _ = self
                .journal_bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| Some(b.saturating_sub(freed)));
        }
        result.map_err(|e| self.fail(e))
    }

    /// Makes everything committed so far durable (used at shutdown).
    pub fn sync(&self) -> Result<(), StoreError> {
        let db = self.handle()?;
        let mut txn = db.begin_write().map_err(ctx("begin"))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        txn.commit().map_err(ctx("commit")).map_err(|e| self.fail(e))
    }

    /// Removes listeners that are no longer configured from the ack table.
    pub fn forget_listeners(&self, keep: &[String]) -> Result<Vec<String>, StoreError> {
        let gone: Vec<String> = self.acks()?.into_keys().filter(|k| !keep.contains(k)).collect();
        if gone.is_empty() {
            return Ok(gone);
        }
        let db = self.handle()?;
        let txn = db.begin_write().map_err(ctx("begin"))?;
        {
            let mut t = txn.open_table(ACKS).map_err(ctx("open acks"))?;
            for g in &gone {
                t.remove(g.as_str()).map_err(ctx("write acks"))?;
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(gone)
    }

    /// Up to `limit` journal entries after position `after`, in order.
    pub fn scan(&self, after: u64, limit: usize) -> Result<Vec<JournalEntry>, StoreError> {
        let db = self.handle()?;
        let r = db.begin_read().map_err(ctx("begin read"))?;
        let t = r.open_table(JOURNAL).map_err(ctx("open journal"))?;
        let mut out = Vec::new();
        // A chunk's key is its last position: the first entry at or after
        // `after + 1` holds the next event.
        for row in t.range(after.saturating_add(1)..).map_err(ctx("read journal"))? {
            let (k, v) = row.map_err(ctx("read journal"))?;
            for decoded in codec::decode_entry(k.value(), v.value()) {
                match decoded {
                    Ok((event, _)) if event.seq <= after => {}
                    Ok((event, target)) => out.push(JournalEntry { event, target }),
                    Err(e) => tracing::error!(entry = k.value(), error = %e, "skipping an unreadable journal entry"),
                }
            }
            if out.len() >= limit {
                break;
            }
        }
        Ok(out)
    }

    /// Counters for status.
    pub fn stats(&self) -> Result<JournalStats, StoreError> {
        let db = self.handle()?;
        let r = db.begin_read().map_err(ctx("begin read"))?;
        let j = r.open_table(JOURNAL).map_err(ctx("open journal"))?;
        let d = r.open_table(DEAD_LETTERS).map_err(ctx("open dead letters"))?;
        // Positions are consecutive: the events held run from the first
        // entry's first event to the last entry's key.
        let mut oldest_received_ms = None;
        let first = j.first().map_err(ctx("read journal"))?.map(|(k, v)| {
            let decoded = codec::decode_entry(k.value(), v.value());
            let first_in_entry = decoded.first().and_then(|e| e.as_ref().ok().map(|(ev, _)| ev));
            oldest_received_ms = first_in_entry.map(|ev| ev.received_at);
            first_in_entry.map(|ev| ev.seq).unwrap_or(k.value())
        });
        let last = j.last().map_err(ctx("read journal"))?.map(|(k, _)| k.value());
        Ok(JournalStats {
            entries: match (first, last) {
                (Some(f), Some(l)) => l + 1 - f.min(l),
                _ => 0,
            },
            bytes: self.journal_bytes(),
            oldest_received_ms,
            next_seq: self.next_seq(),
            dead_letters: d.len().map_err(ctx("count dead letters"))?,
        })
    }

    /// A source's saved checkpoint.
    pub fn checkpoint(&self, source: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.handle()?;
        let r = db.begin_read().map_err(ctx("begin read"))?;
        let t = r.open_table(CHECKPOINTS).map_err(ctx("open checkpoints"))?;
        Ok(t.get(source)
            .map_err(ctx("read checkpoint"))?
            .map(|v| v.value().to_vec()))
    }

    /// Forgets expired keys in transactions of 10,000 until none is left or
    /// `budget` is spent; answers how many. Called every round, so expiry
    /// keeps up with sustained keyed ingest.
    pub fn expire_idempotency_within(&self, now_ms: i64, budget: Duration) -> Result<usize, StoreError> {
        const CHUNK: usize = 10_000;
        let started = Instant::now();
        let mut total = 0;
        loop {
            let n = self.expire_idempotency(now_ms, CHUNK)?;
            total += n;
            if n < CHUNK || started.elapsed() >= budget {
                return Ok(total);
            }
        }
    }

    /// Forgets idempotency keys that expired before `now_ms` (at most
    /// `limit` per call, to keep each transaction short).
    pub fn expire_idempotency(&self, now_ms: i64, limit: usize) -> Result<usize, StoreError> {
        self.idempotency.expire(now_ms);
        let db = self.handle()?;
        let mut txn = db.begin_write().map_err(ctx("begin"))?;
        txn.set_durability(Durability::None)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        let mut n = 0;
        {
            let mut by_exp = txn.open_table(IDEMPOTENCY_BY_EXPIRY).map_err(ctx("open idempotency"))?;
            let mut keys = txn.open_table(IDEMPOTENCY).map_err(ctx("open idempotency"))?;
            let expired: Vec<(i64, String)> = by_exp
                .range(..(now_ms, ""))
                .map_err(ctx("read idempotency"))?
                .take(limit)
                .filter_map(|r| r.ok().map(|(k, _)| (k.value().0, k.value().1.to_string())))
                .collect();
            for (exp, key) in expired {
                by_exp.remove((exp, key.as_str())).map_err(ctx("expire idempotency"))?;
                // Only if not renewed since.
                let current = keys
                    .get(key.as_str())
                    .map_err(ctx("read idempotency"))?
                    .map(|v| v.value());
                if current == Some(exp) {
                    keys.remove(key.as_str()).map_err(ctx("expire idempotency"))?;
                }
                n += 1;
            }
        }
        txn.commit().map_err(ctx("commit")).map_err(|e| self.fail(e))?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::DeadLetter;

    fn ev(i: u64) -> Event {
        Event::builder("src", "a.b")
            .id(format!("e{i}"))
            .payload(format!("{{\"n\":{i}}}"))
            .build()
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
        let db = open(dir.path());
        let mut batch = vec![
            Append {
                events: vec![ev(1), ev(2)],
                keys: vec![Some("k1".into()), Some("k1".into())],
                ..Append::default()
            },
            Append {
                events: vec![ev(3)],
                keys: vec![Some("k3".into())],
                ..Append::default()
            },
        ];
        assert_eq!(db.append(&mut batch, 0).unwrap(), vec![1, 0]);
        drop(db);
        let db = open(dir.path());
        assert!(!db.idempotency.seen("k1", 0), "the cache starts empty");
        let mut again = vec![Append {
            events: vec![ev(4)],
            keys: vec![Some("k1".into())],
            ..Append::default()
        }];
        assert_eq!(db.append(&mut again, 10).unwrap(), vec![1], "the table remembers");
        // After the window the key is forgotten.
        assert_eq!(db.expire_idempotency(120_000, 100).unwrap(), 2);
        let mut later = vec![Append {
            events: vec![ev(5)],
            keys: vec![Some("k1".into())],
            ..Append::default()
        }];
        assert_eq!(db.append(&mut later, 120_000).unwrap(), vec![0]);
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
            keys: (0..25_000).map(|i| Some(format!("k{i}"))).collect(),
            ..Append::default()
        }];
        db.append(&mut batch, 0).unwrap();
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
        assert_eq!((all[1].event.id.as_str(), all[1].target.as_deref()), ("e2", Some("wh")));
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
        assert_eq!(
            (back[0].event.id.as_str(), back[0].target.as_deref()),
            ("e7", Some("wh"))
        );
        assert_eq!(db.purge_dead_letters(i64::MAX).unwrap(), 1);
        assert_eq!(db.stats().unwrap().dead_letters, 0);
    }

    #[test]
    fn a_second_opener_is_told_the_store_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let _db = open(dir.path());
        assert!(matches!(StoreDb::open(dir.path(), 1, 1), Err(StoreError::Locked(_))));
    }
}
