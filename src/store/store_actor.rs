//! The store actor: turns listener acknowledgements into durable positions,
//! forgets journal entries every durable listener has, keeps dead letters,
//! expires idempotency keys, and brings the store back after a write error
//! (disk full).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use cxrelay_actors::registry::{Component, ComponentState};
use cxrelay_actors::QueueStats;
use serde::Serialize;
use tokio::sync::oneshot;

use super::db::{JournalStats, StoreDb};
use super::dead_letter_table::ReplayPages;

/// Dead letters sent back per page (memory holds one page).
const REPLAY_PAGE: usize = 1000;
use super::dead_letters::DeadLetter;
use super::journal_writer::{AppendQueue, AppendRequest};
use super::telemetry::{DeadLetterRefused, DeadLettersStored, JournalBacklog, StoreStatus};

/// A listener whose acknowledgements hold the journal back.
#[derive(Debug, Clone)]
pub struct DurableListener {
    /// Its name (the key of its saved position).
    pub name: String,
    /// Its queue counters (acknowledged and last pushed positions).
    pub stats: Arc<QueueStats>,
}

struct Tracked {
    listener: DurableListener,
    /// Everything at or below this position is safe for this listener.
    safe: u64,
}

/// How often positions are saved and the journal truncated.
const TICK: Duration = Duration::from_millis(100);
/// How often a broken store is reopened.
const RECOVER_EVERY: Duration = Duration::from_millis(500);
/// How often expired idempotency keys are removed.
/// Time the store thread may spend expiring keys per round: enough to keep
/// up with any ingest rate the journal sustains, short enough not to stall
/// commits behind it.
const EXPIRE_BUDGET: Duration = Duration::from_millis(100);
const EXPIRE_EVERY: Duration = Duration::from_secs(1);

/// The store's housekeeping actor.
pub struct Store {
    db: Arc<StoreDb>,
    routed_upto: Arc<AtomicU64>,
    listeners: Vec<Tracked>,
    component: Arc<Component>,
    appends: AppendQueue,
    last_recover: Option<Instant>,
    last_expire: Instant,
    truncated: u64,
    /// The journal's counters at the last look that succeeded.
    stats: Option<JournalStats>,
    /// The journal against its bound, at the last tick.
    backlog: Option<JournalBacklog>,
    /// The store's file, as shown.
    path: String,
}

impl Store {
    /// The store actor for `db`; `appends` is the journal writer's queue
    /// (dead letters sent back go through it).
    pub fn new(
        db: Arc<StoreDb>,
        routed_upto: Arc<AtomicU64>,
        listeners: Vec<DurableListener>,
        saved: &std::collections::HashMap<String, u64>,
        component: Arc<Component>,
        appends: AppendQueue,
    ) -> Self {
        let listeners = listeners
            .into_iter()
            .map(|l| Tracked {
                safe: saved.get(&l.name).copied().unwrap_or(0),
                listener: l,
            })
            .collect();
        Store {
            path: db.path().display().to_string(),
            db,
            routed_upto,
            listeners,
            component,
            appends,
            last_recover: None,
            last_expire: Instant::now(),
            truncated: 0,
            stats: None,
            backlog: None,
        }
    }

    /// The position up to which a listener has everything it matched.
    ///
    /// `routed` is read before the listener's last pushed position: if the
    /// listener acknowledged everything ever pushed to it, every event up
    /// to `routed` that it matched is safe; otherwise only what it
    /// acknowledged is.
    pub(crate) fn safe_position(routed: u64, stats: &QueueStats) -> u64 {
        let pushed = stats.last_pushed_seq();
        let acked = stats.acked_seq();
        if acked >= pushed {
            acked.max(routed)
        } else {
            acked
        }
    }

    fn save_positions(&mut self) {
        let routed = self.routed_upto.load(Ordering::Acquire);
        let mut changed = Vec::new();
        for t in &mut self.listeners {
            let p = Self::safe_position(routed, &t.listener.stats).max(t.safe);
            if p != t.safe {
                t.safe = p;
                changed.push((t.listener.name.clone(), p));
            }
        }
        if changed.is_empty() {
            return;
        }
        // With no durable listener, nothing holds the journal back beyond
        // what has been routed.
        let upto = self.listeners.iter().map(|t| t.safe).min().unwrap_or(routed);
        match self.db.save_acks(&changed, upto) {
            Ok(n) => self.truncated += n,
            Err(e) => self.component.fail(ComponentState::Paused, e.to_string()),
        }
    }

    fn tick(&mut self) {
        if !self.db.is_available() {
            self.component.fail(
                ComponentState::Paused,
                self.db.last_error().unwrap_or_else(|| "store unavailable".into()),
            );
            if self.last_recover.is_none_or(|t| t.elapsed() >= RECOVER_EVERY) {
                self.last_recover = Some(Instant::now());
                if self.db.recover().is_ok() {
                    self.component.set_state(ComponentState::Running);
                    self.component.clear_error();
                }
            }
            return;
        }
        if self.listeners.is_empty() {
            // Nothing durable listens: keep only what is not yet routed.
            let routed = self.routed_upto.load(Ordering::Acquire);
            if routed > 0 {
                if let Ok(n) = self.db.save_acks(&[], routed) {
                    self.truncated += n;
                }
            }
        } else {
            self.save_positions();
        }
        if self.last_expire.elapsed() >= EXPIRE_EVERY {
            self.last_expire = Instant::now();
            let _ = self
                .db
                .expire_idempotency_within(cxrelay_actors::event::now_ms(), EXPIRE_BUDGET);
        }
        // Counters first, so that the backlog and the detail published
        // this tick both describe the journal as it is now.
        self.refresh_stats();
        self.publish_backlog();
        self.publish_detail();
    }

    fn refresh_stats(&mut self) {
        // A failed look leaves the last good counters shown.
        if let Ok(s) = self.db.stats() {
            self.stats = Some(s);
        }
    }

    /// The journal's backlog against its bound: metrics, status, and the
    /// store's readiness (degraded from 80% of the bound, not ready at it:
    /// intake is then refused until listeners catch up).
    fn publish_backlog(&mut self) {
        let (bytes, max) = (self.db.journal_bytes(), self.db.max_journal_bytes());
        let oldest_age_s = self
            .stats
            .and_then(|s| s.oldest_received_ms)
            .map_or(0.0, |t| (cxrelay_actors::event::now_ms() - t).max(0) as f64 / 1000.0);
        let backlog = JournalBacklog {
            journal_bytes: bytes,
            max_journal_bytes: max,
            journal_events: self.stats.map_or(0, |s| s.entries),
            journal_oldest_age_s: oldest_age_s,
        };
        backlog.emit();
        self.backlog = Some(backlog);
        let state = if bytes >= max {
            ComponentState::Paused
        } else if bytes.saturating_mul(5) >= max.saturating_mul(4) {
            ComponentState::Degraded
        } else {
            ComponentState::Running
        };
        if state == ComponentState::Running {
            if self.component.state() != ComponentState::Running {
                self.component.set_state(ComponentState::Running);
                self.component.clear_error();
            }
        } else {
            let refused = if state == ComponentState::Paused {
                "; intake is refused until they do"
            } else {
                ""
            };
            self.component.fail(
                state,
                format!("the journal holds {bytes} of its {max} bytes: listeners are not keeping up{refused}"),
            );
        }
    }

    fn publish_detail(&mut self) {
        self.component.set_status(&StoreStatus {
            path: &self.path,
            journal_entries: self.stats.map(|s| s.entries),
            next_seq: self.stats.map(|s| s.next_seq),
            dead_letters: self.stats.map(|s| s.dead_letters),
            truncated: self.truncated,
            routed_upto: self.routed_upto.load(Ordering::Acquire),
            idempotency_cached_keys: self.db.idempotency.len(),
            acked_positions: self
                .listeners
                .iter()
                .map(|t| (t.listener.name.as_str(), t.safe))
                .collect(),
            backlog: self.backlog,
        });
    }
}

impl Actor for Store {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.refresh_stats();
        self.publish_detail();
        self.component.set_state(ComponentState::Running);
        ctx.run_interval(TICK, |this, _| this.tick());
    }
}

/// Stores dead letters durably; answers the ids of those kept (a
/// component over its cap has the rest refused, counted and logged).
#[derive(Message)]
#[rtype(result = "Result<Vec<u64>, String>")]
pub struct PutDeadLetters(pub Vec<DeadLetter>);

impl Handler<PutDeadLetters> for Store {
    type Result = Result<Vec<u64>, String>;
    fn handle(&mut self, msg: PutDeadLetters, _: &mut Self::Context) -> Self::Result {
        let ids = self.db.put_dead_letters(&msg.0).map_err(|e| e.to_string())?;
        for (letter, id) in msg.0.iter().zip(&ids) {
            if id.is_none() {
                DeadLetterRefused {
                    component: &letter.component,
                    cap: self.db.dead_letter_cap(),
                }
                .emit();
            }
        }
        let kept: Vec<u64> = ids.into_iter().flatten().collect();
        DeadLettersStored { count: kept.len() }.emit();
        Ok(kept)
    }
}

/// Lists dead letters after an id.
#[derive(Message)]
#[rtype(result = "Result<Vec<DeadLetter>, String>")]
pub struct ListDeadLetters {
    /// Only ids above this.
    pub after: u64,
    /// At most this many.
    pub limit: usize,
}

impl Handler<ListDeadLetters> for Store {
    type Result = Result<Vec<DeadLetter>, String>;
    fn handle(&mut self, msg: ListDeadLetters, _: &mut Self::Context) -> Self::Result {
        self.db.dead_letters(msg.after, msg.limit).map_err(|e| e.to_string())
    }
}

/// What a replay of dead letters did.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead letters sent back (and removed from the table).
    pub replayed: usize,
    /// Dead letters that could not be sent back, with why.
    pub refused: Vec<(u64, String)>,
}

/// Sends dead letters back through the journal to the listener they were
/// meant for (or through the router when they had none).
#[derive(Message)]
#[rtype(result = "Result<ReplayReport, String>")]
pub struct ReplayDeadLetters {
    /// These ids, or all with `None`.
    pub ids: Option<Vec<u64>>,
}

impl Handler<ReplayDeadLetters> for Store {
    type Result = ResponseFuture<Result<ReplayReport, String>>;
    fn handle(&mut self, msg: ReplayDeadLetters, _: &mut Self::Context) -> Self::Result {
        let (db, appends) = (self.db.clone(), self.appends.clone());
        Box::pin(async move {
            let mut pages = ReplayPages::new(msg.ids, REPLAY_PAGE);
            let (mut replayed, mut refused) = (0, Vec::new());
            while let Some((batches, not)) = pages.next_page(&db).map_err(|e| e.to_string())? {
                refused.extend(not);
                for append in batches {
                    let (reply, rx) = oneshot::channel();
                    let n = append.events.len();
                    appends
                        .send(AppendRequest { append, reply })
                        .await
                        .map_err(|e| e.to_string())?;
                    rx.await
                        .map_err(|_| "cxrelay is shutting down".to_string())?
                        .map_err(|e| e.to_string())?;
                    replayed += n;
                }
            }
            Ok(ReplayReport { replayed, refused })
        })
    }
}

/// Removes dead letters recorded before a time.
#[derive(Message)]
#[rtype(result = "Result<usize, String>")]
pub struct PurgeDeadLetters {
    /// Milliseconds since the epoch.
    pub before_ms: i64,
}

impl Handler<PurgeDeadLetters> for Store {
    type Result = Result<usize, String>;
    fn handle(&mut self, msg: PurgeDeadLetters, _: &mut Self::Context) -> Self::Result {
        self.db.purge_dead_letters(msg.before_ms).map_err(|e| e.to_string())
    }
}

/// Saves positions now and makes everything durable (shutdown).
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct SyncStore;

impl Handler<SyncStore> for Store {
    type Result = Result<(), String>;
    fn handle(&mut self, _: SyncStore, _: &mut Self::Context) -> Self::Result {
        self.save_positions();
        self.db.sync().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxrelay_actors::queue::ListenerQueue;
    use cxrelay_actors::WhenFull;

    #[test]
    fn safe_position_follows_acks_and_routing() {
        let q = ListenerQueue::<u64>::new(10, WhenFull::Block);
        let s = q.stats().clone();
        // Nothing ever pushed: everything routed is safe.
        assert_eq!(Store::safe_position(50, &s), 50);
        q.try_push(60);
        q.try_push(70);
        // Pushed but not acknowledged: only what was acknowledged.
        assert_eq!(Store::safe_position(80, &s), 0);
        s.ack(60);
        assert_eq!(Store::safe_position(80, &s), 60);
        // Everything pushed acknowledged: what it did not match is safe too.
        s.ack(70);
        assert_eq!(Store::safe_position(80, &s), 80);
    }
}
