//! The store opened read-only, for the operator commands that only look
//! (`cxrelay dlq list|show`, dry runs): nothing is created or changed, and
//! a store that a running cxrelay holds is reported as such.

use std::path::Path;

use redb::{ReadOnlyDatabase, ReadableDatabase};

use super::db::{ctx, StoreError, FILE_NAME};
use super::dead_letter_table::{read_dead_letter, scan_dead_letters};
use super::dead_letters::DeadLetter;

/// A store opened read-only.
pub struct StoreReader {
    db: ReadOnlyDatabase,
}

/// How opening read-only went.
pub enum Opened {
    /// Open.
    Reader(StoreReader),
    /// The store was not closed cleanly (cxrelay was killed): it must be
    /// repaired, which only opening it for writing does.
    NeedsRepair,
}

impl StoreReader {
    /// Opens the store in `data_dir` read-only.
    pub fn open(data_dir: &Path) -> Result<Opened, StoreError> {
        let path = data_dir.join(FILE_NAME);
        if !path.exists() {
            return Err(StoreError::Missing(path));
        }
        match redb::Builder::new().open_read_only(&path) {
            Ok(db) => Ok(Opened::Reader(StoreReader { db })),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => Err(StoreError::Locked(path)),
            Err(redb::DatabaseError::RepairAborted) => Ok(Opened::NeedsRepair),
            Err(e) => Err(ctx("open read-only")(e)),
        }
    }

    /// Dead letters with id above `after` that `keep` accepts, oldest
    /// first, at most `limit`.
    pub fn dead_letters(
        &self,
        after: u64,
        limit: usize,
        keep: &dyn Fn(&DeadLetter) -> bool,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        scan_dead_letters(&self.db as &dyn ReadableDatabaseRef, after, limit, keep)
    }

    /// One dead letter by id.
    pub fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>, StoreError> {
        read_dead_letter(&self.db as &dyn ReadableDatabaseRef, id)
    }
}

/// Either kind of redb database, for the readers shared by the store and
/// this read-only view.
pub(super) trait ReadableDatabaseRef {
    /// A read transaction.
    fn read(&self) -> Result<redb::ReadTransaction, StoreError>;
}

impl<D: ReadableDatabase> ReadableDatabaseRef for D {
    fn read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.begin_read().map_err(ctx("begin read"))
    }
}
