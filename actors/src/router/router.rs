use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use tokio::sync::watch;

use super::directory::{Entry as DirectoryEntry, ListenerDirectory};
use super::messages::*;
use super::pump::pump;
use crate::event::Event;
use crate::queue::{ListenerQueue, Pushed};
use crate::topic::{Pattern, TopicIndex};

type Queue = Arc<ListenerQueue<Arc<Event>>>;
/// The queues a topic is routed to, by the listeners they belong to.
type QueueSet = (Box<[ListenerId]>, Arc<[Queue]>);

/// How many distinct topics the route cache remembers before starting over.
/// Small on purpose: where every event has a topic of its own (a
/// conversation's detail events) the cache cannot help and must not hold
/// thousands of topics; where topics repeat, a few hundred cover them.
const ROUTE_CACHE_LIMIT: usize = 4_096;
/// How many distinct listener sets are shared before starting over.
const ROUTE_SETS_LIMIT: usize = 256;
/// How often dead listener actors are looked for while no events flow.
const SWEEP_INTERVAL: Duration = Duration::from_millis(200);

struct Entry {
    name: String,
    patterns: Vec<Pattern>,
    queue: Queue,
    recipient: watch::Sender<Option<Recipient<Deliver>>>,
    keep_when_gone: bool,
    orphaned: bool,
}

impl Entry {
    fn alive(&self) -> bool {
        self.recipient.borrow().as_ref().is_some_and(|r| r.connected())
    }
}

/// Router-wide counters.
#[derive(Debug, Default)]
pub struct RouterStats {
    published: AtomicU64,
    unrouted: AtomicU64,
    pruned: AtomicU64,
    published_upto: AtomicU64,
}

/// A copy of [`RouterStats`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RouterStatsSnapshot {
    /// Events published.
    pub published: u64,
    /// Events that matched no listener.
    pub unrouted: u64,
    /// Listeners removed because their actor died.
    pub pruned: u64,
    /// Highest journal position fully routed.
    pub published_upto: u64,
}

impl RouterStats {
    /// Copies the counters.
    pub fn snapshot(&self) -> RouterStatsSnapshot {
        RouterStatsSnapshot {
            published: self.published.load(Ordering::Relaxed),
            unrouted: self.unrouted.load(Ordering::Relaxed),
            pruned: self.pruned.load(Ordering::Relaxed),
            published_upto: self.published_upto.load(Ordering::Acquire),
        }
    }

    /// Highest journal position whose routing has completed: every listener
    /// that matched an event at or below it has that event in its queue (or
    /// dropped it by policy).
    pub fn published_upto(&self) -> u64 {
        self.published_upto.load(Ordering::Acquire)
    }
}

/// Fans events out to listeners by topic pattern.
///
/// The subscription table is owned here; publishers talk to the router only
/// through messages. Matching goes through a trie plus a cache of recent
/// topics, so routing cost does not grow with non-matching listeners.
pub struct Router {
    index: TopicIndex<ListenerId>,
    listeners: BTreeMap<ListenerId, Entry>,
    // Topics come from senders, so the hasher is seeded per process;
    // foldhash because the cache is consulted once per event.
    cache: HashMap<Arc<str>, Arc<[Queue]>, foldhash::fast::RandomState>,
    // The queue sets routed to since the table last changed, by their
    // listeners: topics that reach the same listeners share one set, so a
    // cache miss allocates nothing once its set is known.
    sets: Vec<QueueSet>,
    next_id: ListenerId,
    stats: Arc<RouterStats>,
    scratch: Vec<ListenerId>,
    directory: ListenerDirectory,
}

impl Default for Router {
    fn default() -> Self {
        Self::new()
    }
}

impl Router {
    /// An empty router.
    pub fn new() -> Self {
        Router {
            index: TopicIndex::new(),
            listeners: BTreeMap::new(),
            cache: HashMap::default(),
            sets: Vec::new(),
            next_id: 1,
            stats: Arc::new(RouterStats::default()),
            scratch: Vec::new(),
            directory: ListenerDirectory::default(),
        }
    }

    /// The router's counters (shared, readable from anywhere).
    pub fn stats(&self) -> Arc<RouterStats> {
        self.stats.clone()
    }

    /// The listener directory (shared, readable from anywhere, never
    /// blocked by the router being busy).
    pub fn directory(&self) -> ListenerDirectory {
        self.directory.clone()
    }

    fn set_orphaned(&self, id: ListenerId, orphaned: bool) {
        if let Some(e) = self.directory.entries.get(&id) {
            e.orphaned.store(orphaned, Ordering::Relaxed);
        }
    }

    fn route(&mut self, topic: &Arc<str>) -> Arc<[Queue]> {
        if let Some(hit) = self.cache.get(&**topic) {
            return hit.clone();
        }
        self.scratch.clear();
        self.index.matches(topic, &mut self.scratch);
        let queues = match self.sets.iter().find(|(ids, _)| **ids == *self.scratch) {
            Some((_, queues)) => queues.clone(),
            None => {
                let queues: Arc<[Queue]> = self
                    .scratch
                    .iter()
                    .filter_map(|id| self.listeners.get(id).map(|e| e.queue.clone()))
                    .collect();
                if self.sets.len() >= ROUTE_SETS_LIMIT {
                    self.sets.clear();
                }
                self.sets.push((self.scratch.as_slice().into(), queues.clone()));
                queues
            }
        };
        if self.cache.len() >= ROUTE_CACHE_LIMIT {
            self.cache.clear();
        }
        self.cache.insert(topic.clone(), queues.clone());
        queues
    }

    /// Forgets every route: the listener table changed.
    fn forget_routes(&mut self) {
        self.cache.clear();
        self.sets.clear();
    }

    fn remove(&mut self, id: ListenerId) -> Option<Entry> {
        let entry = self.listeners.remove(&id)?;
        self.directory.entries.remove(&id);
        for p in &entry.patterns {
            self.index.remove(p, id);
        }
        self.forget_routes();
        Some(entry)
    }

    /// A listener's actor is gone: keep its queue for a replacement, or
    /// prune it.
    fn gone(&mut self, id: ListenerId) {
        match self.listeners.get_mut(&id) {
            // The pump's send failed to an actor that has since been
            // replaced (or that refused the batch because it was): the
            // current one is alive, and the pump sends to it.
            Some(e) if e.keep_when_gone && e.alive() => {}
            Some(e) if e.keep_when_gone && !e.orphaned => {
                e.orphaned = true;
                tracing::warn!(listener = %e.name, id, "listener actor is gone; its queue waits for a replacement");
                self.set_orphaned(id, true);
            }
            Some(e) if e.keep_when_gone => {}
            Some(_) => self.prune(id),
            None => {}
        }
    }

    fn prune(&mut self, id: ListenerId) {
        if let Some(entry) = self.remove(id) {
            entry.queue.close_and_discard();
            self.stats.pruned.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(listener = %entry.name, id, "listener actor is gone; subscription removed");
        }
    }

    fn sweep(&mut self) {
        let dead: Vec<ListenerId> = self
            .listeners
            .iter()
            .filter(|(_, e)| !e.orphaned && !e.alive())
            .map(|(id, _)| *id)
            .collect();
        for id in dead {
            self.gone(id);
        }
    }

    fn find(&self, r: &ListenerRef) -> Option<&Entry> {
        match r {
            ListenerRef::Id(id) => self.listeners.get(id),
            ListenerRef::Name(n) => self.listeners.values().find(|e| e.name == *n),
        }
    }

    /// Pushes `(queue, event)` pairs in order, waiting where a `block`
    /// queue is full. Used after the fast path found a full queue.
    async fn push_in_order(pending: Vec<(Queue, Arc<Event>)>) {
        for (q, ev) in pending {
            q.push(ev).await;
        }
    }
}

impl Actor for Router {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(SWEEP_INTERVAL, |this, _| this.sweep());
    }
}

impl Handler<Subscribe> for Router {
    type Result = Result<Subscription, crate::topic::PatternError>;

    fn handle(&mut self, msg: Subscribe, ctx: &mut Self::Context) -> Self::Result {
        let patterns = msg
            .patterns
            .iter()
            .map(|p| Pattern::parse(p))
            .collect::<Result<Vec<_>, _>>()?;
        if msg.keep_when_gone {
            // The same name again is a replacement, even while the old actor
            // is still alive: a supervisor replaces an actor it found stuck
            // without waiting for it to go. A second queue would get every
            // event twice and, with `block`, the stuck one's full queue
            // would hold the router up.
            let existing = self
                .listeners
                .iter_mut()
                .find(|(_, e)| e.name == msg.name && e.keep_when_gone);
            if let Some((id, e)) = existing {
                // A replacement actor takes over the queue and the batch that
                // was in flight.
                if !e.orphaned && e.alive() {
                    tracing::warn!(listener = %e.name, id, "listener actor replaced while still running");
                }
                e.orphaned = false;
                e.recipient.send_replace(Some(msg.recipient));
                tracing::info!(listener = %e.name, id, "listener actor replaced; queue handed over");
                let sub = Subscription {
                    id: *id,
                    stats: e.queue.stats().clone(),
                };
                self.set_orphaned(sub.id, false);
                return Ok(sub);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let queue: Queue = Arc::new(match msg.stats {
            Some(stats) => ListenerQueue::with_stats(msg.when_full, stats),
            None => ListenerQueue::new(msg.capacity, msg.when_full),
        });
        for p in &patterns {
            self.index.insert(p, id);
        }
        self.forget_routes();
        let stats = queue.stats().clone();
        let (recipient, watch_rx) = watch::channel(Some(msg.recipient));
        actix_rt::spawn(pump(
            id,
            queue.clone(),
            watch_rx,
            msg.batch_max.max(1),
            msg.keep_when_gone,
            ctx.address(),
        ));
        tracing::debug!(listener = %msg.name, id, patterns = ?msg.patterns, "listener subscribed");
        self.directory.entries.insert(
            id,
            DirectoryEntry {
                name: msg.name.clone(),
                patterns: msg.patterns.clone(),
                when_full: msg.when_full,
                stats: stats.clone(),
                orphaned: AtomicBool::new(false),
            },
        );
        self.listeners.insert(
            id,
            Entry {
                name: msg.name,
                patterns,
                queue,
                recipient,
                keep_when_gone: msg.keep_when_gone,
                orphaned: false,
            },
        );
        Ok(Subscription { id, stats })
    }
}

impl Handler<Unsubscribe> for Router {
    type Result = bool;

    fn handle(&mut self, msg: Unsubscribe, _: &mut Self::Context) -> bool {
        match self.remove(msg.0) {
            Some(entry) => {
                entry.queue.close();
                true
            }
            None => false,
        }
    }
}

impl Handler<ListenerGone> for Router {
    type Result = ();

    fn handle(&mut self, msg: ListenerGone, _: &mut Self::Context) {
        self.gone(msg.0);
    }
}

impl Handler<Publish> for Router {
    type Result = AtomicResponse<Self, PublishOutcome>;

    fn handle(&mut self, msg: Publish, _: &mut Self::Context) -> Self::Result {
        let mut outcome = PublishOutcome::default();
        let mut pending: Vec<(Queue, Arc<Event>)> = Vec::new();
        let mut waiting: Vec<Queue> = Vec::new();
        let mut max_seq = 0;
        // One clock read for the batch: its events arrived together, and
        // the queue wait is measured from here.
        let now = Instant::now();
        for ev in msg.events {
            max_seq = max_seq.max(ev.seq);
            let queues = self.route(&ev.topic);
            if queues.is_empty() {
                outcome.unrouted += 1;
                continue;
            }
            outcome.routed += 1;
            for q in queues.iter() {
                // Once a queue is waiting, later events for it wait behind
                // the first so that its order is kept.
                if waiting.iter().any(|w| Arc::ptr_eq(w, q)) {
                    pending.push((q.clone(), ev.clone()));
                    continue;
                }
                if let Pushed::Full(ev) = q.try_push_at(ev.clone(), now) {
                    waiting.push(q.clone());
                    pending.push((q.clone(), ev));
                }
            }
        }
        self.stats
            .published
            .fetch_add((outcome.routed + outcome.unrouted) as u64, Ordering::Relaxed);
        self.stats
            .unrouted
            .fetch_add(outcome.unrouted as u64, Ordering::Relaxed);
        let stats = self.stats.clone();
        if pending.is_empty() {
            stats.published_upto.fetch_max(max_seq, Ordering::AcqRel);
            return AtomicResponse::new(Box::pin(actix::fut::ready(outcome)));
        }
        AtomicResponse::new(Box::pin(
            async move {
                Router::push_in_order(pending).await;
                stats.published_upto.fetch_max(max_seq, Ordering::AcqRel);
                outcome
            }
            .into_actor(self),
        ))
    }
}

impl Handler<PublishTo> for Router {
    type Result = AtomicResponse<Self, bool>;

    fn handle(&mut self, msg: PublishTo, _: &mut Self::Context) -> Self::Result {
        let Some(entry) = self.find(&msg.listener) else {
            return AtomicResponse::new(Box::pin(actix::fut::ready(false)));
        };
        let q = entry.queue.clone();
        let pending = msg.events.into_iter().map(|e| (q.clone(), e)).collect();
        AtomicResponse::new(Box::pin(
            async move {
                Router::push_in_order(pending).await;
                true
            }
            .into_actor(self),
        ))
    }
}

impl Handler<ListListeners> for Router {
    type Result = Vec<ListenerInfo>;

    fn handle(&mut self, _: ListListeners, _: &mut Self::Context) -> Self::Result {
        self.sweep();
        self.listeners
            .iter()
            .map(|(id, e)| ListenerInfo {
                id: *id,
                name: e.name.clone(),
                patterns: e.patterns.iter().map(|p| p.as_str().to_string()).collect(),
                when_full: e.queue.policy(),
                orphaned: e.orphaned,
                queue: e.queue.stats().snapshot(),
            })
            .collect()
    }
}

impl Handler<Drain> for Router {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: Drain, _: &mut Self::Context) -> Self::Result {
        let directory = self.directory.clone();
        Box::pin(async move { directory.drained(msg.timeout).await })
    }
}
