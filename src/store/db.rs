//! The embedded store under `data_dir`: the journal's segment files
//! (`journal/`, see [`super::segments`]) and one redb file with
//! acknowledged positions, source checkpoints, idempotency keys, dead
//! letters and metadata. Synchronous; owned by the store actors, which run
//! on their own thread, and used directly by the offline `dlq` commands.
//!
//! The journal's hot path writes only the segments: a group commit is one
//! record and one `fdatasync`. Keys and checkpoints ride in the record and
//! reach redb later, in batches, always before the segment carrying them
//! is deleted (see [`super::appends`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use cxrelay_actors::Event;
use parking_lot::{Mutex, RwLock};
use redb::{Database, Durability, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};

use super::idempotency::{IdempotencyCache, KeyHash};
use super::segments::SegmentLog;

pub(super) const ACKS: TableDefinition<&str, u64> = TableDefinition::new("acks");
pub(super) const CHECKPOINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("checkpoints");
/// Idempotency key hashes -> expiry.
pub(super) const KEYS: TableDefinition<u128, i64> = TableDefinition::new("idempotency_keys");
/// The same by expiry, one entry per key, as stores written before
/// [`KEY_BATCHES`] hold them: only drained now.
pub(super) const KEYS_BY_EXPIRY: TableDefinition<(i64, u128), ()> = TableDefinition::new("idempotency_keys_by_expiry");
/// For expiring: the keys moved to [`KEYS`] together, packed (16 bytes
/// each), under the latest expiry among them. One entry per move instead
/// of one B-tree insert per key.
pub(super) const KEY_BATCHES: TableDefinition<i64, &[u8]> = TableDefinition::new("idempotency_key_batches");
pub(super) const DEAD_LETTERS: TableDefinition<u64, &[u8]> = TableDefinition::new("dead_letters");
pub(super) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// The journal position every durable listener had, as last saved.
pub(super) const TRUNCATED_UPTO: &str = "journal_truncated_upto";

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
    /// The journal's segment files could not be read or written.
    #[error("store journal {what}: {source}")]
    Journal {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
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

pub(super) fn io_ctx(what: &'static str) -> impl FnOnce(std::io::Error) -> StoreError {
    move |source| StoreError::Journal { what, source }
}

/// One source's contribution to a group commit.
#[derive(Debug, Default)]
pub struct Append {
    /// Events to journal (their `seq` is assigned here).
    pub events: Vec<Event>,
    /// Idempotency keys (hashed, scoped to their source: see
    /// [`super::idempotency::key_hash`]), one per event (or empty for none).
    pub keys: Vec<Option<KeyHash>>,
    /// A source checkpoint committed atomically with the events.
    pub checkpoint: Option<(String, Vec<u8>)>,
    /// Deliver only to this listener (dead letters sent back).
    pub target: Option<String>,
    /// Dead letters removed once the events are committed (they are being
    /// sent back as these events).
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
    /// Events held.
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

/// The journal's segments and what its records carried that redb does not
/// hold yet.
#[derive(Debug)]
pub(super) struct Journal {
    pub log: SegmentLog,
    /// Keys committed in segments, not yet in the key table.
    pub pending_keys: Vec<(KeyHash, i64)>,
    /// Memory overflowed and dropped keys that are only pending: the key
    /// table must receive them before it answers a lookup.
    pub pending_beyond_memory: bool,
    /// The latest checkpoint of each source committed in segments, not yet
    /// in the checkpoint table.
    pub pending_checkpoints: HashMap<String, Vec<u8>>,
}

/// The opened store.
pub struct StoreDb {
    pub(super) path: PathBuf,
    pub(super) db: RwLock<Option<Arc<Database>>>,
    /// Boxed: the store is passed around by value before it is shared.
    pub(super) journal: Mutex<Box<Journal>>,
    pub(super) available: AtomicBool,
    pub(super) next_seq: AtomicU64,
    pub(super) idempotency_window_ms: i64,
    /// Recently seen idempotency keys (with the key table, the authority).
    pub idempotency: IdempotencyCache,
    last_error: Mutex<Option<String>>,
    /// Dead letters kept per component; more are refused and counted.
    dead_letter_cap: AtomicU64,
    /// Bytes the journal holds (records not yet truncated).
    pub(super) journal_bytes: AtomicU64,
    /// The journal's bound: appends are refused at or past it.
    max_journal_bytes: AtomicU64,
}

impl std::fmt::Debug for StoreDb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreDb").field("path", &self.path).finish()
    }
}

/// redb's page cache (its default, 1 GiB, lets RSS grow with every byte
/// written until it is reached). The journal is not in redb: a small cache
/// holds what is.
const CACHE_BYTES: usize = 8 << 20;

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
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).map_err(io_ctx("restricting permissions"))
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

    /// Opens (or creates) the store in `data_dir`: repairs the journal's
    /// tail, makes what its records carried durable in redb, and loads the
    /// idempotency keys.
    pub fn open(
        data_dir: &Path,
        idempotency_window_ms: i64,
        idempotency_cache_keys: usize,
    ) -> Result<Self, StoreError> {
        std::fs::create_dir_all(data_dir).map_err(io_ctx("creating data_dir"))?;
        let path = data_dir.join(FILE_NAME);
        let db = open_database(&path)?;
        restrict(data_dir, &path)?;
        let (meta_next, truncated_upto) = super::migrate::prepare(&db)?;
        let (log, recovered) = SegmentLog::open(&data_dir.join(super::segments::DIR_NAME), truncated_upto)
            .map_err(io_ctx("opening segments"))?;
        for r in &recovered.repairs {
            tracing::warn!("{r}");
        }
        let store = StoreDb {
            path,
            db: RwLock::new(Some(Arc::new(db))),
            journal: Mutex::new(Box::new(Journal {
                log,
                pending_keys: recovered.keys,
                pending_beyond_memory: false,
                pending_checkpoints: recovered.checkpoints,
            })),
            available: AtomicBool::new(true),
            next_seq: AtomicU64::new(meta_next.max(recovered.next_seq)),
            idempotency_window_ms,
            idempotency: IdempotencyCache::new(idempotency_cache_keys),
            last_error: Mutex::new(None),
            dead_letter_cap: AtomicU64::new(super::dead_letter_table::DEFAULT_DEAD_LETTER_CAP),
            journal_bytes: AtomicU64::new(0),
            max_journal_bytes: AtomicU64::new(u64::MAX),
        };
        super::migrate::legacy_journal(&store)?;
        // What the segments carried goes to redb now, durably; then the
        // segments every listener had can go.
        store.flush_pending()?;
        store.load_keys(idempotency_cache_keys)?;
        let bytes = store.journal.lock().log.held_bytes();
        store.journal_bytes.store(bytes, Ordering::Relaxed);
        Ok(store)
    }

    /// Loads the unexpired keys of the table into memory when they fit;
    /// otherwise lookups that miss in memory ask the table.
    fn load_keys(&self, max: usize) -> Result<(), StoreError> {
        let db = self.handle()?;
        let r = db.begin_read().map_err(ctx("begin read"))?;
        let t = r.open_table(KEYS).map_err(ctx("open idempotency"))?;
        if t.len().map_err(ctx("count idempotency"))? > max as u64 {
            self.idempotency.set_incomplete();
            return Ok(());
        }
        let now = cxrelay_actors::event::now_ms();
        let mut keys = Vec::new();
        for row in t.iter().map_err(ctx("read idempotency"))? {
            let (k, v) = row.map_err(ctx("read idempotency"))?;
            if v.value() > now {
                keys.push((k.value(), v.value()));
            }
        }
        // Whatever memory drops here is in the table (it was just flushed).
        self.idempotency.remember(keys);
        Ok(())
    }

    /// Sets the journal's bound in bytes (and sizes segments for it).
    pub fn set_max_journal_bytes(&self, max: u64) {
        self.max_journal_bytes.store(max.max(1), Ordering::Relaxed);
        self.journal.lock().log.size_for(max);
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

    /// Tries to make the store writable again: reopens redb (it requires
    /// that after an I/O error), re-reads the journal's last segment, and
    /// makes a small durable write.
    pub fn recover(&self) -> Result<(), StoreError> {
        {
            let mut slot = self.db.write();
            *slot = None;
            let db = open_database(&self.path).map_err(|e| self.fail(e))?;
            *slot = Some(Arc::new(db));
        }
        let db = self.handle()?;
        let probe = (|| {
            // A write reported failed may still have reached the disk:
            // positions continue after whatever the journal holds.
            let on_disk = {
                let mut j = self.journal.lock();
                let next = j.log.reopen().map_err(io_ctx("re-reading the last segment"))?;
                self.journal_bytes.store(j.log.held_bytes(), Ordering::Relaxed);
                next
            };
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

    /// A source's saved checkpoint: the latest committed with its events.
    pub fn checkpoint(&self, source: &str) -> Result<Option<Vec<u8>>, StoreError> {
        if let Some(v) = self.journal.lock().pending_checkpoints.get(source) {
            return Ok(Some(v.clone()));
        }
        let db = self.handle()?;
        let r = db.begin_read().map_err(ctx("begin read"))?;
        let t = r.open_table(CHECKPOINTS).map_err(ctx("open checkpoints"))?;
        Ok(t.get(source)
            .map_err(ctx("read checkpoint"))?
            .map(|v| v.value().to_vec()))
    }
}

#[cfg(test)]
mod tests;
