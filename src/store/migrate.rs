//! Preparing the redb file: tables created, and what a store written by an
//! earlier cxrelay holds moved to the current layout (string idempotency
//! keys become hashes; journal entries in redb become a segment record).

use redb::{Database, Durability, ReadableTable, TableDefinition, TableHandle};

use super::codec;
use super::db::{
    ctx, StoreDb, StoreError, ACKS, CHECKPOINTS, DEAD_LETTERS, KEYS, KEYS_BY_EXPIRY, META, TRUNCATED_UPTO,
};
use super::idempotency::key_hash;

/// Where earlier versions journaled events (one B-tree entry per chunk).
const LEGACY_JOURNAL: TableDefinition<u64, &[u8]> = TableDefinition::new("journal");
/// Earlier versions' idempotency keys, as `"<len>:<source>:<key>"`.
const LEGACY_KEYS: TableDefinition<&str, i64> = TableDefinition::new("idempotency");
const LEGACY_KEYS_BY_EXPIRY: TableDefinition<(i64, &str), ()> = TableDefinition::new("idempotency_by_expiry");

/// The source and key of an earlier version's scoped key.
fn split_scoped(scoped: &str) -> Option<(&str, &str)> {
    let (len, rest) = scoped.split_once(':')?;
    let len: usize = len.parse().ok()?;
    let source = rest.get(..len)?;
    let key = rest.get(len..)?.strip_prefix(':')?;
    Some((source, key))
}

fn has_table(txn: &redb::WriteTransaction, name: &str) -> Result<bool, StoreError> {
    Ok(txn.list_tables().map_err(ctx("list tables"))?.any(|t| t.name() == name))
}

/// Creates missing tables and converts earlier key tables; answers the
/// next position recorded and the position the journal is truncated to.
pub(super) fn prepare(db: &Database) -> Result<(u64, u64), StoreError> {
    let txn = db.begin_write().map_err(ctx("begin"))?;
    let out = {
        txn.open_table(ACKS).map_err(ctx("open acks"))?;
        txn.open_table(CHECKPOINTS).map_err(ctx("open checkpoints"))?;
        let mut keys = txn.open_table(KEYS).map_err(ctx("open idempotency"))?;
        let mut by_exp = txn.open_table(KEYS_BY_EXPIRY).map_err(ctx("open idempotency"))?;
        txn.open_table(DEAD_LETTERS).map_err(ctx("open dead letters"))?;
        super::dead_letter_table::count_existing(&txn)?;
        if has_table(&txn, LEGACY_KEYS.name())? {
            let old = txn.open_table(LEGACY_KEYS).map_err(ctx("open idempotency"))?;
            for row in old.iter().map_err(ctx("read idempotency"))? {
                let (k, v) = row.map_err(ctx("read idempotency"))?;
                if let Some((source, key)) = split_scoped(k.value()) {
                    let h = key_hash(source, key);
                    keys.insert(h, v.value()).map_err(ctx("write idempotency"))?;
                    by_exp.insert((v.value(), h), ()).map_err(ctx("write idempotency"))?;
                }
            }
        }
        let meta = txn.open_table(META).map_err(ctx("open meta"))?;
        let next = meta.get("next_seq").map_err(ctx("read meta"))?.map_or(1, |v| v.value());
        let truncated = meta
            .get(TRUNCATED_UPTO)
            .map_err(ctx("read meta"))?
            .map_or(0, |v| v.value());
        (next.max(1), truncated)
    };
    txn.delete_table(LEGACY_KEYS).map_err(ctx("drop legacy idempotency"))?;
    txn.delete_table(LEGACY_KEYS_BY_EXPIRY)
        .map_err(ctx("drop legacy idempotency"))?;
    txn.commit().map_err(ctx("commit"))?;
    Ok(out)
}

/// Moves the events an earlier version journaled in redb into one segment
/// record (durable), then drops the table: nothing unacknowledged is lost
/// across the upgrade.
pub(super) fn legacy_journal(store: &StoreDb) -> Result<(), StoreError> {
    let db = store.handle()?;
    let mut events = Vec::new();
    {
        let mut txn = db.begin_write().map_err(ctx("begin"))?;
        txn.set_durability(Durability::Immediate)
            .map_err(|e| StoreError::Unavailable(e.to_string()))?;
        if !has_table(&txn, LEGACY_JOURNAL.name())? {
            return Ok(());
        }
        {
            let t = txn.open_table(LEGACY_JOURNAL).map_err(ctx("open journal"))?;
            for row in t.iter().map_err(ctx("read journal"))? {
                let (k, v) = row.map_err(ctx("read journal"))?;
                events.extend(codec::decode_entry(k.value(), v.value()).into_iter().flatten());
            }
        }
        if !events.is_empty() {
            store.write_legacy(&events)?;
            tracing::info!(
                events = events.len(),
                "moved the journal of an earlier cxrelay into segment files"
            );
        }
        txn.delete_table(LEGACY_JOURNAL).map_err(ctx("drop legacy journal"))?;
        txn.commit().map_err(ctx("commit"))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earlier_scoped_keys_split_back_into_source_and_key() {
        assert_eq!(split_scoped("4:hook:c1"), Some(("hook", "c1")));
        assert_eq!(split_scoped("3:a:b:c"), Some(("a:b", "c")));
        assert_eq!(split_scoped("9:short"), None);
        assert_eq!(split_scoped("x:y:z"), None);
    }
}
