//! The dead-letter table: what could not be processed, kept with its
//! payload, at most `dead_letter_cap` per component (a sender that only
//! sends garbage cannot fill the disk), listed, sent back and purged.

use redb::{ReadableTable, ReadableTableMetadata, Table, TableDefinition, WriteTransaction};

use super::db::{ctx, Append, StoreDb, StoreError, DEAD_LETTERS, META};
use super::dead_letters::DeadLetter;
use super::read_only::ReadableDatabaseRef;
use redb::Durability;

/// Dead letters kept per component, maintained with the table.
pub(super) const DEAD_LETTER_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("dead_letter_counts");

/// Dead letters kept per component unless configured otherwise.
pub const DEFAULT_DEAD_LETTER_CAP: u64 = 100_000;

/// Counts one dead letter of `component` as gone.
pub(super) fn forget_one(counts: &mut Table<'_, &str, u64>, component: &str) -> Result<(), StoreError> {
    let kept = counts
        .get(component)
        .map_err(ctx("read dead letters"))?
        .map_or(0, |v| v.value());
    counts
        .insert(component, kept.saturating_sub(1))
        .map_err(ctx("write dead letters"))?;
    Ok(())
}

/// Removes dead letter `id` in `txn` (a replay committing), keeping the
/// counts right.
pub(super) fn remove_in(txn: &WriteTransaction, id: u64) -> Result<(), StoreError> {
    let mut t = txn.open_table(DEAD_LETTERS).map_err(ctx("open dead letters"))?;
    let component = t
        .remove(id)
        .map_err(ctx("remove dead letter"))?
        .and_then(|v| serde_json::from_slice::<DeadLetter>(v.value()).ok())
        .map(|l| l.component);
    if let Some(component) = component {
        let mut counts = txn.open_table(DEAD_LETTER_COUNTS).map_err(ctx("open dead letters"))?;
        forget_one(&mut counts, &component)?;
    }
    Ok(())
}

/// Counts the dead letters a store kept before counts existed.
pub(super) fn count_existing(txn: &WriteTransaction) -> Result<(), StoreError> {
    let mut counts = txn.open_table(DEAD_LETTER_COUNTS).map_err(ctx("open dead letters"))?;
    if !counts.is_empty().map_err(ctx("read dead letters"))? {
        return Ok(());
    }
    let t = txn.open_table(DEAD_LETTERS).map_err(ctx("open dead letters"))?;
    let mut by_component: std::collections::HashMap<String, u64> = Default::default();
    for row in t.iter().map_err(ctx("read dead letters"))? {
        let (_, v) = row.map_err(ctx("read dead letters"))?;
        if let Ok(l) = serde_json::from_slice::<DeadLetter>(v.value()) {
            *by_component.entry(l.component).or_default() += 1;
        }
    }
    for (component, n) in by_component {
        counts
            .insert(component.as_str(), n)
            .map_err(ctx("write dead letters"))?;
    }
    Ok(())
}

/// Dead letters with id above `after` that `keep` accepts, oldest first,
/// at most `limit` (read by the store and by its read-only view alike).
pub(super) fn scan_dead_letters(
    db: &dyn ReadableDatabaseRef,
    after: u64,
    limit: usize,
    keep: &dyn Fn(&DeadLetter) -> bool,
) -> Result<Vec<DeadLetter>, StoreError> {
    let r = db.read()?;
    let t = r.open_table(DEAD_LETTERS).map_err(ctx("open dead letters"))?;
    let mut out = Vec::new();
    if limit == 0 {
        return Ok(out);
    }
    for row in t.range(after.saturating_add(1)..).map_err(ctx("read dead letters"))? {
        let (_, v) = row.map_err(ctx("read dead letters"))?;
        if let Ok(l) = serde_json::from_slice::<DeadLetter>(v.value()) {
            if keep(&l) {
                out.push(l);
            }
        }
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// One dead letter by id.
pub(super) fn read_dead_letter(db: &dyn ReadableDatabaseRef, id: u64) -> Result<Option<DeadLetter>, StoreError> {
    let r = db.read()?;
    let t = r.open_table(DEAD_LETTERS).map_err(ctx("open dead letters"))?;
    Ok(t.get(id)
        .map_err(ctx("read dead letters"))?
        .and_then(|v| serde_json::from_slice(v.value()).ok()))
}

impl StoreDb {
    /// Stores dead letters durably; answers their ids, `None` for each one
    /// refused because its component already keeps `dead_letter_cap`.
    pub fn put_dead_letters(&self, letters: &[DeadLetter]) -> Result<Vec<Option<u64>>, StoreError> {
        if !self.is_available() {
            return Err(StoreError::Unavailable(self.last_error().unwrap_or_default()));
        }
        let db = self.handle()?;
        let result = (|| -> Result<Vec<Option<u64>>, StoreError> {
            let mut txn = db.begin_write().map_err(ctx("begin"))?;
            txn.set_durability(Durability::Immediate)
                .map_err(|e| StoreError::Unavailable(e.to_string()))?;
            let mut ids = Vec::with_capacity(letters.len());
            {
                let mut meta = txn.open_table(META).map_err(ctx("open meta"))?;
                let mut next = meta
                    .get("next_dead_letter")
                    .map_err(ctx("read meta"))?
                    .map_or(1, |v| v.value());
                let mut t = txn.open_table(DEAD_LETTERS).map_err(ctx("open dead letters"))?;
                let mut counts = txn.open_table(DEAD_LETTER_COUNTS).map_err(ctx("open dead letters"))?;
                for l in letters {
                    let kept = counts
                        .get(l.component.as_str())
                        .map_err(ctx("read dead letters"))?
                        .map_or(0, |v| v.value());
                    if kept >= self.dead_letter_cap() {
                        ids.push(None);
                        continue;
                    }
                    counts
                        .insert(l.component.as_str(), kept + 1)
                        .map_err(ctx("write dead letters"))?;
                    let mut l = l.clone();
                    l.id = next;
                    let json = serde_json::to_vec(&l).unwrap_or_default();
                    t.insert(next, json.as_slice()).map_err(ctx("write dead letter"))?;
                    ids.push(Some(next));
                    next += 1;
                }
                meta.insert("next_dead_letter", next).map_err(ctx("write meta"))?;
            }
            txn.commit().map_err(ctx("commit"))?;
            Ok(ids)
        })();
        result.map_err(|e| self.fail(e))
    }

    /// Dead letters with id above `after`, oldest first, at most `limit`.
    pub fn dead_letters(&self, after: u64, limit: usize) -> Result<Vec<DeadLetter>, StoreError> {
        self.dead_letters_matching(after, limit, &|_| true)
    }

    /// Dead letters with id above `after` that `keep` accepts, oldest
    /// first, at most `limit`.
    pub fn dead_letters_matching(
        &self,
        after: u64,
        limit: usize,
        keep: &dyn Fn(&DeadLetter) -> bool,
    ) -> Result<Vec<DeadLetter>, StoreError> {
        let db = self.handle()?;
        scan_dead_letters(&*db, after, limit, keep)
    }

    /// One dead letter by id.
    pub fn dead_letter(&self, id: u64) -> Result<Option<DeadLetter>, StoreError> {
        let db = self.handle()?;
        read_dead_letter(&*db, id)
    }

    /// Removes dead letters recorded before `before_ms`; answers how many.
    pub fn purge_dead_letters(&self, before_ms: i64) -> Result<usize, StoreError> {
        self.purge_dead_letters_matching(before_ms, &|_| true)
    }

    /// Removes the dead letters recorded before `before_ms` that `also`
    /// accepts; answers how many.
    pub fn purge_dead_letters_matching(
        &self,
        before_ms: i64,
        also: &dyn Fn(&DeadLetter) -> bool,
    ) -> Result<usize, StoreError> {
        let db = self.handle()?;
        let txn = db.begin_write().map_err(ctx("begin"))?;
        let mut n = 0;
        {
            let mut t = txn.open_table(DEAD_LETTERS).map_err(ctx("open dead letters"))?;
            let mut gone: Vec<String> = Vec::new();
            t.retain(|_, v| match serde_json::from_slice::<DeadLetter>(v) {
                Ok(l) if l.at_ms < before_ms && also(&l) => {
                    n += 1;
                    gone.push(l.component);
                    false
                }
                _ => true,
            })
            .map_err(ctx("purge dead letters"))?;
            let mut counts = txn.open_table(DEAD_LETTER_COUNTS).map_err(ctx("open dead letters"))?;
            for component in gone {
                forget_one(&mut counts, &component)?;
            }
        }
        txn.commit().map_err(ctx("commit"))?;
        Ok(n)
    }
}

/// Dead letters to send back, `page` at a time (all of them, or these
/// ids): memory holds one page, whatever the table holds.
pub struct ReplayPages {
    ids: Option<Vec<u64>>,
    page: usize,
    /// All: the last id taken. Ids: how many were taken.
    cursor: u64,
}

/// One page: the appends that send it back, and what cannot be.
pub type ReplayPage = (Vec<Append>, Vec<(u64, String)>);

impl ReplayPages {
    /// Pages over `ids`, or every dead letter with `None`.
    pub fn new(ids: Option<Vec<u64>>, page: usize) -> Self {
        ReplayPages {
            ids,
            page: page.max(1),
            cursor: 0,
        }
    }

    /// The next page, `None` when done.
    pub fn next_page(&mut self, db: &StoreDb) -> Result<Option<ReplayPage>, StoreError> {
        let mut refused = Vec::new();
        let letters = match &self.ids {
            None => {
                let letters = db.dead_letters(self.cursor, self.page)?;
                let Some(last) = letters.last().map(|l| l.id) else {
                    return Ok(None);
                };
                self.cursor = last;
                letters
            }
            Some(ids) => {
                let from = self.cursor as usize;
                if from >= ids.len() {
                    return Ok(None);
                }
                let chunk = &ids[from..(from + self.page).min(ids.len())];
                self.cursor += chunk.len() as u64;
                let mut letters = Vec::with_capacity(chunk.len());
                for id in chunk {
                    match db.dead_letter(*id)? {
                        Some(l) => letters.push(l),
                        None => refused.push((*id, "no such dead letter".to_string())),
                    }
                }
                letters
            }
        };
        let (appends, not_replayable) = replay_appends(letters);
        refused.extend(not_replayable);
        Ok(Some((appends, refused)))
    }
}

/// The appends that send dead letters back: one per target listener, each
/// removing its dead letters in the same transaction. Dead letters that do
/// not hold a whole event are reported as not replayable.
pub fn replay_appends(letters: Vec<DeadLetter>) -> (Vec<Append>, Vec<(u64, String)>) {
    let mut by_target: std::collections::BTreeMap<Option<String>, Append> = Default::default();
    let mut refused = Vec::new();
    for l in letters {
        match l.to_event() {
            Some(ev) => {
                let a = by_target.entry(l.listener.clone()).or_insert_with(|| Append {
                    target: l.listener.clone(),
                    ..Append::default()
                });
                a.events.push(ev);
                a.delete_dead_letters.push(l.id);
            }
            None => refused.push((
                l.id,
                "not replayable: it does not hold a whole event (see its payload)".to_string(),
            )),
        }
    }
    (by_target.into_values().collect(), refused)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use cxrelay_actors::Event;

    use super::*;

    fn letter(i: u64, component: &str) -> DeadLetter {
        let ev = Arc::new(Event::builder("src", "a.b").id(format!("e{i}")).payload("{}").build());
        DeadLetter::for_event(&ev, component, Some("out"), "HTTP 500", 1)
    }

    fn kept(db: &StoreDb, component: &str) -> usize {
        db.dead_letters(0, usize::MAX)
            .unwrap()
            .iter()
            .filter(|l| l.component == component)
            .count()
    }

    #[test]
    fn each_component_keeps_at_most_its_cap_and_room_comes_back_as_letters_leave() {
        let dir = tempfile::tempdir().unwrap();
        let db = StoreDb::open(dir.path(), 60_000, 10).unwrap();
        db.set_dead_letter_cap(3);
        let ids = db
            .put_dead_letters(&(0..5).map(|i| letter(i, "hook")).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(ids.iter().filter(|i| i.is_some()).count(), 3, "{ids:?}");
        // Another component has its own room.
        assert!(db.put_dead_letters(&[letter(9, "sink")]).unwrap()[0].is_some());
        assert_eq!(kept(&db, "hook"), 3);
        // Replaying one makes room for one.
        let mut pages = ReplayPages::new(Some(vec![1]), 10);
        let (mut appends, refused) = pages.next_page(&db).unwrap().unwrap();
        assert!(refused.is_empty());
        db.append(&mut appends, 0).unwrap();
        assert!(db.put_dead_letters(&[letter(5, "hook")]).unwrap()[0].is_some());
        assert!(db.put_dead_letters(&[letter(6, "hook")]).unwrap()[0].is_none());
        // Purging makes room too, and the counts survive reopening.
        assert_eq!(db.purge_dead_letters(i64::MAX).unwrap(), 4);
        drop(db);
        let db = StoreDb::open(dir.path(), 60_000, 10).unwrap();
        db.set_dead_letter_cap(3);
        let ids = db
            .put_dead_letters(&(0..4).map(|i| letter(i, "hook")).collect::<Vec<_>>())
            .unwrap();
        assert_eq!(ids.iter().filter(|i| i.is_some()).count(), 3);
    }

    #[test]
    fn replaying_everything_goes_page_by_page() {
        let dir = tempfile::tempdir().unwrap();
        let db = StoreDb::open(dir.path(), 60_000, 10).unwrap();
        let letters: Vec<DeadLetter> = (0..2500).map(|i| letter(i, "sink")).collect();
        db.put_dead_letters(&letters).unwrap();
        db.put_dead_letters(&[DeadLetter::for_raw("hook", "webhook", "bad", b"{x", None)])
            .unwrap();
        let mut pages = ReplayPages::new(None, 1000);
        let (mut sizes, mut refused) = (Vec::new(), 0);
        while let Some((mut appends, not)) = pages.next_page(&db).unwrap() {
            refused += not.len();
            sizes.push(appends.iter().map(|a| a.events.len()).sum::<usize>());
            db.append(&mut appends, 0).unwrap();
        }
        assert_eq!(sizes, [1000, 1000, 500]);
        assert_eq!(refused, 1, "the raw body is not replayable and stays");
        assert_eq!(db.dead_letters(0, 10).unwrap().len(), 1);
        assert_eq!(db.scan(0, usize::MAX).unwrap().len(), 2500);
    }
}
