//! Dead-letter commands on the store file, when no cxrelay holds it. What
//! only looks opens the store read-only; nothing creates a store.

use std::path::Path;

use super::{DlqCommand, DlqError, DlqOutput, Filter, Plan};
use crate::store::dead_letter_table::ReplayPages;
use crate::store::read_only::Opened;
use crate::store::store_actor::ReplayReport;
use crate::store::{DeadLetter, StoreDb, StoreReader};

/// Dead letters read or sent back per step (memory holds one page).
const PAGE: usize = 1000;

/// The store, read-only when that is possible.
enum Store {
    Reader(StoreReader),
    Writer(StoreDb),
}

impl Store {
    fn open_for_reading(data_dir: &Path) -> Result<Store, DlqError> {
        Ok(match StoreReader::open(data_dir)? {
            Opened::Reader(r) => Store::Reader(r),
            // Killed cxrelays leave a store that must be repaired before
            // it can be read; it exists, so opening it creates nothing.
            Opened::NeedsRepair => Store::Writer(StoreDb::open_existing(data_dir)?),
        })
    }

    fn letters(
        &self,
        after: u64,
        limit: usize,
        keep: &dyn Fn(&DeadLetter) -> bool,
    ) -> Result<Vec<DeadLetter>, DlqError> {
        Ok(match self {
            Store::Reader(r) => r.dead_letters(after, limit, keep)?,
            Store::Writer(db) => db.dead_letters_matching(after, limit, keep)?,
        })
    }

    fn letter(&self, id: u64) -> Result<Option<DeadLetter>, DlqError> {
        Ok(match self {
            Store::Reader(r) => r.dead_letter(id)?,
            Store::Writer(db) => db.dead_letter(id)?,
        })
    }

    /// Calls `each` for every dead letter `keep` accepts, a page at a time.
    fn each(&self, keep: &dyn Fn(&DeadLetter) -> bool, mut each: impl FnMut(&DeadLetter)) -> Result<(), DlqError> {
        let mut after = 0;
        loop {
            // The page is read unfiltered so that `after` moves on even
            // through pages where nothing passes.
            let page = self.letters(after, PAGE, &|_| true)?;
            let Some(last) = page.last().map(|l| l.id) else {
                return Ok(());
            };
            page.iter().filter(|l| keep(l)).for_each(&mut each);
            after = last;
        }
    }
}

/// Runs a command on the store file in `data_dir`.
pub fn run_offline(data_dir: &Path, cmd: &DlqCommand) -> Result<DlqOutput, DlqError> {
    match cmd {
        DlqCommand::List { after, limit, filter } => {
            let store = Store::open_for_reading(data_dir)?;
            Ok(DlqOutput::Listed(
                store.letters(*after, *limit, &|l| filter.accepts(l))?,
            ))
        }
        DlqCommand::Show(id) => {
            let store = Store::open_for_reading(data_dir)?;
            let letter = store.letter(*id)?.ok_or(DlqError::NotFound(*id))?;
            Ok(DlqOutput::Shown(Box::new(letter)))
        }
        DlqCommand::Replay {
            ids,
            filter,
            dry_run: true,
        } => {
            let store = Store::open_for_reading(data_dir)?;
            let mut plan = Plan::default();
            match ids {
                Some(ids) => {
                    for id in ids {
                        match store.letter(*id)? {
                            Some(l) => plan.replay(&l),
                            None => plan.refused.push((*id, "no such dead letter".into())),
                        }
                    }
                }
                None => store.each(&|l| filter.accepts(l), |l| plan.replay(l))?,
            }
            Ok(DlqOutput::WouldReplay(plan))
        }
        DlqCommand::Replay {
            ids,
            filter,
            dry_run: false,
        } => {
            let db = StoreDb::open_existing(data_dir)?;
            let ids = match ids {
                Some(ids) => Some(ids.clone()),
                None if filter.is_empty() => None,
                None => Some(matching_ids(&db, filter)?),
            };
            // Journaled with their listener as target, a page at a time:
            // delivered when cxrelay next starts.
            let mut pages = ReplayPages::new(ids, PAGE);
            let (mut replayed, mut refused) = (0, Vec::new());
            while let Some((mut appends, not)) = pages.next_page(&db)? {
                refused.extend(not);
                replayed += appends.iter().map(|a| a.events.len()).sum::<usize>();
                db.append(&mut appends, cxrelay_actors::event::now_ms())?;
            }
            Ok(DlqOutput::Replayed(ReplayReport { replayed, refused }))
        }
        DlqCommand::Purge {
            before_ms,
            filter,
            dry_run: true,
        } => {
            let store = Store::open_for_reading(data_dir)?;
            let mut plan = Plan::default();
            store.each(&|l| l.at_ms < *before_ms && filter.accepts(l), |l| plan.purge(l))?;
            Ok(DlqOutput::WouldPurge(plan))
        }
        DlqCommand::Purge {
            before_ms,
            filter,
            dry_run: false,
        } => {
            let db = StoreDb::open_existing(data_dir)?;
            Ok(DlqOutput::Purged(
                db.purge_dead_letters_matching(*before_ms, &|l| filter.accepts(l))?,
            ))
        }
    }
}

/// The ids of every dead letter `filter` accepts (ids only: memory holds
/// eight bytes per dead letter, whatever their payloads).
fn matching_ids(db: &StoreDb, filter: &Filter) -> Result<Vec<u64>, DlqError> {
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let page = db.dead_letters(after, PAGE)?;
        let Some(last) = page.last().map(|l| l.id) else {
            return Ok(ids);
        };
        ids.extend(page.iter().filter(|l| filter.accepts(l)).map(|l| l.id));
        after = last;
    }
}
