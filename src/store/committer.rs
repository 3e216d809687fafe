//! Group commits from any thread, handed to the publisher in commit order.
//!
//! The journal writer commits what sources send it; a webhook request
//! commits on its HTTP worker's own thread ([`Committer::append_here`]):
//! every request the worker read in one turn goes in one commit, answered
//! there, with no hand-over to another thread and back (on a machine where
//! a wake costs tens of microseconds, that hand-over cost more than the
//! request's own work). Either way the events then go to one publisher, in
//! the order they were committed, and the appends handed over but not yet
//! routed are bounded: the journal queue's capacity for the writer, as
//! many permits of `room` for commits made here.
//!
//! Committing on the HTTP worker pays only where a commit is quick (a
//! sync that does not wait for a device: tmpfs, a disk that acknowledges
//! from protected cache): while it commits, the worker reads nothing.
//! Where a sync waits for the device, the journal writer's thread waits
//! instead while the worker reads on, and groups grow as it waits.
//! Measured on a virtual disk whose sync takes a few hundred µs: on the
//! worker 10-15% fewer requests a second for the same CPU; on tmpfs,
//! a quarter less CPU per request and a quarter more requests a second.
//! So the webhook commits on its worker only while recent commits took
//! under [`QUICK_COMMIT`] (see [`Committer::commits_quickly`]).

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use cxrelay_actors::registry::{Component, ComponentState};
use cxrelay_actors::Event;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore, TryAcquireError};

use super::db::{Append, StoreDb};
use super::journal_writer::{AppendOutcome, AppendQueue, AppendRequest, Outstanding};
use super::publisher::{InFlight, JournalPublisher, Publication};
use super::routes::Routes;
use super::telemetry::JournalStatus;
use crate::ingest::IngestError;

/// Commits that take less than this, lately, are made on the submitting
/// thread when it asks ([`Committer::append_here`]).
pub const QUICK_COMMIT: Duration = Duration::from_micros(100);

/// Commits groups of appends and hands their events to the publisher.
pub struct Committer {
    db: Arc<StoreDb>,
    /// Held from a commit until its events are handed over: two threads
    /// committing at once hand over in commit order.
    publish: Mutex<mpsc::UnboundedSender<Publication>>,
    component: Arc<Component>,
    /// The way to the journal writer.
    queue: AppendQueue,
    /// Its outstanding count, and room for appends committed in place and
    /// not yet routed (as many as the queue holds).
    in_flight: InFlight,
    commits: AtomicU64,
    in_place: AtomicU64,
    events: AtomicU64,
    /// A commit's duration, in ns, as a moving average (1/8 of each new
    /// one): written under the `publish` lock.
    commit_ns: AtomicU64,
}

impl Committer {
    /// A committer for `queue`'s journal, whose publisher runs on `thread`
    /// (the router's, so that publishing wakes no other thread) and raises
    /// `routed_upto` as it routes.
    pub fn start(
        thread: &ArbiterHandle,
        db: Arc<StoreDb>,
        router: Addr<cxrelay_actors::Router>,
        routed_upto: Arc<AtomicU64>,
        component: Arc<Component>,
        queue: &AppendQueue,
    ) -> Arc<Self> {
        let (tx, rx) = mpsc::unbounded_channel();
        let in_flight = InFlight {
            outstanding: queue.outstanding_count(),
            room: Arc::new(Semaphore::new(queue.capacity())),
        };
        {
            let in_flight = in_flight.clone();
            JournalPublisher::start_in_arbiter(thread, move |_| {
                JournalPublisher::new(router, routed_upto, in_flight, rx)
            });
        }
        Arc::new(Committer {
            db,
            publish: Mutex::new(tx),
            component,
            queue: queue.clone(),
            in_flight,
            commits: AtomicU64::new(0),
            in_place: AtomicU64::new(0),
            events: AtomicU64::new(0),
            commit_ns: AtomicU64::new(0),
        })
    }

    /// Whether recent commits were quick enough to make on a submitting
    /// thread (see the module's documentation).
    pub fn commits_quickly(&self) -> bool {
        self.commit_ns.load(Ordering::Relaxed) < QUICK_COMMIT.as_nanos() as u64
    }

    /// Hands `request` over for a commit: on this thread when `in_place`
    /// is asked and commits are quick ([`Committer::append_here`]), else
    /// by the journal writer.
    pub async fn append(self: &Arc<Self>, request: AppendRequest, in_place: bool) -> Result<(), IngestError> {
        if in_place && self.commits_quickly() {
            self.append_here(request).await
        } else {
            self.queue.send(request).await
        }
    }

    /// Appends handed over whose events are not yet routed.
    pub fn outstanding(&self) -> usize {
        self.queue.outstanding()
    }

    /// The store committed to.
    pub fn db(&self) -> &Arc<StoreDb> {
        &self.db
    }

    /// Commits `requests` in one durable write, answers each, and hands
    /// their events to the publisher; `room` permits go back once they are
    /// routed. The answer resolves (or its sender is gone) once routed.
    pub fn commit(&self, requests: Vec<AppendRequest>, room: usize) -> oneshot::Receiver<()> {
        let (done, routed) = oneshot::channel();
        let count = requests.len();
        let (mut appends, replies): (Vec<Append>, Vec<_>) = requests.into_iter().map(|r| (r.append, r.reply)).unzip();
        let now = cxrelay_actors::event::now_ms();
        let publish = self.publish.lock();
        let started = Instant::now();
        let dups = match self.db.append(&mut appends, now) {
            Ok(d) => d,
            Err(e) => {
                drop(publish);
                let msg = e.to_string();
                self.component.fail(ComponentState::Paused, msg.clone());
                for r in replies {
                    let _ = r.send(Err(IngestError::StoreUnavailable(msg.clone())));
                }
                self.in_flight.settle(count, room);
                return routed;
            }
        };
        let mut routes = Routes::default();
        let mut max_seq = 0;
        let mut outcomes = Vec::with_capacity(count);
        let mut accepted_here = 0;
        for (a, d) in appends.into_iter().zip(dups) {
            let accepted = a.events.len() - d;
            accepted_here += accepted as u64;
            outcomes.push(AppendOutcome {
                accepted,
                duplicates: d,
            });
            let events: Vec<Arc<Event>> = a.events.into_iter().filter(|e| e.seq != 0).map(Arc::new).collect();
            if let Some(last) = events.last() {
                max_seq = max_seq.max(last.seq);
            }
            routes.push(a.target, events);
        }
        if accepted_here > 0 {
            // Only commits that wrote: one of duplicates alone is instant.
            let took = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
            let average = self.commit_ns.load(Ordering::Relaxed);
            let next = average - average / 8 + took / 8;
            self.commit_ns.store(next, Ordering::Relaxed);
        }
        let handed = publish.send(Publication {
            routes,
            max_seq,
            appends: count,
            room,
            done,
        });
        drop(publish);
        if handed.is_err() {
            // The publisher stopped (the service is going): the events are
            // committed and routed from the journal at the next start.
            self.in_flight.settle(count, room);
        }
        for (reply, outcome) in replies.into_iter().zip(outcomes) {
            let _ = reply.send(Ok(outcome));
        }
        let commits = self.commits.fetch_add(1, Ordering::Relaxed) + 1;
        // Room is taken only by commits made in place.
        let in_place = self.in_place.fetch_add(u64::from(room > 0), Ordering::Relaxed) + u64::from(room > 0);
        let events = self.events.fetch_add(accepted_here, Ordering::Relaxed) + accepted_here;
        if self.component.state() != ComponentState::Running {
            self.component.set_state(ComponentState::Running);
            self.component.clear_error();
        }
        self.component.set_status(&JournalStatus {
            commits,
            journaled_events: events,
            commits_in_place: in_place,
            commit_us: self.commit_ns.load(Ordering::Relaxed) / 1000,
        });
        routed
    }

    /// Hands `request` over to be committed on this thread once the tasks
    /// ready here now have run, together with every append they hand over.
    /// Waits while `room` is spent (routing is behind). Must be called on
    /// a thread that runs local tasks (an HTTP worker, an arbiter).
    pub async fn append_here(self: &Arc<Self>, request: AppendRequest) -> Result<(), IngestError> {
        let counted = Outstanding::new(&self.in_flight.outstanding);
        let room = match self.in_flight.room.clone().try_acquire_owned() {
            Ok(p) => p,
            // Rare: boxed, so every request's future stays small.
            Err(TryAcquireError::NoPermits) => Box::pin(self.in_flight.room.clone().acquire_owned())
                .await
                .map_err(|_| IngestError::ShuttingDown)?,
            Err(TryAcquireError::Closed) => return Err(IngestError::ShuttingDown),
        };
        let first = WAITING.with(|w| {
            let mut w = w.borrow_mut();
            w.push(Waiting {
                committer: self.clone(),
                request,
                room,
                counted,
            });
            w.len() == 1
        });
        if first {
            actix_rt::spawn(async { commit_waiting() });
        }
        Ok(())
    }
}

thread_local! {
    /// Appends handed over on this thread and not yet committed.
    static WAITING: RefCell<Vec<Waiting>> = const { RefCell::new(Vec::new()) };
}

/// An append waiting on its thread for the next commit there. Dropped
/// uncommitted (its thread ends), it gives its room and its count back.
struct Waiting {
    committer: Arc<Committer>,
    request: AppendRequest,
    room: OwnedSemaphorePermit,
    counted: Outstanding,
}

/// Commits what waits on this thread, one group per committer.
fn commit_waiting() {
    let mut rest = WAITING.with(|w| std::mem::take(&mut *w.borrow_mut()));
    while let Some(committer) = rest.first().map(|w| w.committer.clone()) {
        let (mine, others): (Vec<Waiting>, Vec<Waiting>) = if rest.iter().all(|w| Arc::ptr_eq(&w.committer, &committer))
        {
            (rest, Vec::new())
        } else {
            rest.into_iter().partition(|w| Arc::ptr_eq(&w.committer, &committer))
        };
        let room = mine.len();
        let requests = mine
            .into_iter()
            .map(|w| {
                // The commit takes both over: given back once routed.
                w.room.forget();
                w.counted.handed_over();
                w.request
            })
            .collect();
        // Nothing here waits for the routing: the room is the bound.
        drop(committer.commit(requests, room));
        rest = others;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError;
    use cxrelay_actors::{ComponentKind, Deliver, Registry, Router, Subscribe};

    /// Hands every position it is delivered to the test.
    struct Collect(mpsc::UnboundedSender<u64>);

    impl Actor for Collect {
        type Context = Context<Self>;
    }

    impl Handler<Deliver> for Collect {
        type Result = ();
        fn handle(&mut self, d: Deliver, _: &mut Self::Context) {
            for e in d.events {
                let _ = self.0.send(e.seq);
            }
        }
    }

    fn request(i: u64) -> (AppendRequest, oneshot::Receiver<Result<AppendOutcome, IngestError>>) {
        let event = Event::builder("hook", "a.b")
            .id(format!("e{i}"))
            .payload(format!("{{\"n\":{i}}}"))
            .build();
        let (reply, answer) = oneshot::channel();
        let append = Append {
            events: vec![event],
            ..Append::default()
        };
        (AppendRequest { append, reply }, answer)
    }

    #[actix_rt::test]
    async fn commits_made_in_place_on_two_threads_and_by_the_writer_are_routed_in_commit_order() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Arc::new(StoreDb::open(tmp.path(), 60_000, 10_000).unwrap());
        let router = Router::new().start();
        let (seen, mut delivered) = mpsc::unbounded_channel();
        router
            .send(Subscribe::new(
                "all",
                vec![">".into()],
                Collect(seen).start().recipient(),
            ))
            .await
            .unwrap()
            .unwrap();
        let (queue, rx) = AppendQueue::new(8);
        let component = Registry::new().register("store", ComponentKind::Store, true);
        let routed_upto = Arc::new(AtomicU64::new(0));
        let committer = Committer::start(
            &actix_rt::Arbiter::current(),
            db,
            router,
            routed_upto.clone(),
            component.clone(),
            &queue,
        );
        let writer_thread = actix_rt::Arbiter::new();
        {
            let c = committer.clone();
            super::super::JournalWriter::start_in_arbiter(&writer_thread.handle(), move |_| {
                super::super::JournalWriter::new(c, rx)
            });
        }
        let other_thread = actix_rt::Arbiter::new();
        let n = 300u64;
        let mut answers = Vec::new();
        for i in 0..n {
            let (req, answer) = request(i);
            answers.push(answer);
            match i % 3 {
                // Here, on this thread.
                0 => {
                    let c = committer.clone();
                    actix_rt::spawn(async move { c.append_here(req).await.unwrap() });
                }
                // In place on another thread.
                1 => {
                    let c = committer.clone();
                    assert!(other_thread.spawn(async move { c.append_here(req).await.unwrap() }));
                }
                // Through the journal writer.
                _ => {
                    let q = queue.clone();
                    actix_rt::spawn(async move { q.send(req).await.unwrap() });
                }
            }
        }
        for answer in answers {
            let outcome = answer.await.unwrap().unwrap();
            assert_eq!(outcome.accepted, 1);
        }
        let mut order = Vec::new();
        while order.len() < n as usize {
            order.push(delivered.recv().await.unwrap());
        }
        assert_eq!(
            order,
            (1..=n).collect::<Vec<_>>(),
            "every position once, in commit order"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while queue.outstanding() > 0 || routed_upto.load(Ordering::Acquire) < n {
            assert!(Instant::now() < deadline, "outstanding {}", queue.outstanding());
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(
            committer.in_flight.room.available_permits(),
            queue.capacity(),
            "all room given back"
        );
        let status = serde_json::Value::Object(component.snapshot().detail);
        assert!(status["commits_in_place"].as_u64().unwrap() > 0, "{status}");
        assert!(
            status["commits"].as_u64().unwrap() > status["commits_in_place"].as_u64().unwrap(),
            "the writer committed too: {status}"
        );
        writer_thread.stop();
        other_thread.stop();
    }

    #[actix_rt::test]
    async fn an_append_asked_in_place_goes_to_the_journal_writer_while_commits_are_slow() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Arc::new(StoreDb::open(tmp.path(), 60_000, 10_000).unwrap());
        let (queue, mut rx) = AppendQueue::new(4);
        let component = Registry::new().register("store", ComponentKind::Store, true);
        let committer = Committer::start(
            &actix_rt::Arbiter::current(),
            db,
            Router::new().start(),
            Arc::new(AtomicU64::new(0)),
            component,
            &queue,
        );
        // As after commits that waited for a device.
        committer
            .commit_ns
            .store(2 * QUICK_COMMIT.as_nanos() as u64, Ordering::Relaxed);
        let (req, _answer) = request(1);
        committer.append(req, true).await.unwrap();
        let queued = rx.try_recv().expect("handed to the journal writer");
        assert_eq!(queued.append.events[0].id.as_ref(), "e1");
        // Quick again: committed here, not queued.
        committer
            .commit_ns
            .store(QUICK_COMMIT.as_nanos() as u64 / 2, Ordering::Relaxed);
        let (req, answer) = request(2);
        committer.append(req, true).await.unwrap();
        assert_eq!(answer.await.unwrap().unwrap().accepted, 1);
        assert!(rx.try_recv().is_err(), "nothing queued");
        assert_eq!(committer.in_place.load(Ordering::Relaxed), 1);
    }

    #[actix_rt::test]
    async fn a_commit_after_the_publisher_stopped_answers_and_gives_its_count_and_room_back() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Arc::new(StoreDb::open(tmp.path(), 60_000, 10_000).unwrap());
        let (queue, _rx) = AppendQueue::new(2);
        let component = Registry::new().register("store", ComponentKind::Store, true);
        // The publisher's thread ends first, as the router's does at the
        // end of a shutdown.
        let publisher_thread = actix_rt::Arbiter::new();
        let committer = Committer::start(
            &publisher_thread.handle(),
            db,
            Router::new().start(),
            Arc::new(AtomicU64::new(0)),
            component,
            &queue,
        );
        publisher_thread.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !committer.publish.lock().is_closed() {
            assert!(Instant::now() < deadline, "the publisher did not stop");
            actix_rt::time::sleep(Duration::from_millis(5)).await;
        }
        let (req, answer) = request(1);
        committer.append_here(req).await.unwrap();
        let outcome = answer.await.unwrap().unwrap();
        assert_eq!(
            outcome.accepted, 1,
            "committed: routed from the journal at the next start"
        );
        assert_eq!(queue.outstanding(), 0, "not left outstanding");
        assert_eq!(
            committer.in_flight.room.available_permits(),
            queue.capacity(),
            "its room given back"
        );
    }

    #[actix_rt::test]
    async fn a_failed_commit_in_place_is_refused_and_gives_its_count_and_room_back() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Arc::new(StoreDb::open(tmp.path(), 60_000, 10_000).unwrap());
        let (queue, _rx) = AppendQueue::new(2);
        let component = Registry::new().register("store", ComponentKind::Store, true);
        let committer = Committer::start(
            &actix_rt::Arbiter::current(),
            db.clone(),
            Router::new().start(),
            Arc::new(AtomicU64::new(0)),
            component.clone(),
            &queue,
        );
        // As after a write that failed (a full disk).
        db.fail(StoreError::Unavailable("disk full".into()));
        let (req, answer) = request(1);
        committer.append_here(req).await.unwrap();
        let refused = answer.await.unwrap().unwrap_err();
        assert!(
            matches!(refused, IngestError::StoreUnavailable(ref m) if m.contains("disk full")),
            "{refused}"
        );
        assert_eq!(component.state(), ComponentState::Paused);
        assert_eq!(queue.outstanding(), 0, "not left outstanding");
        assert_eq!(
            committer.in_flight.room.available_permits(),
            queue.capacity(),
            "its room given back"
        );
    }

    #[actix_rt::test]
    async fn an_append_in_place_waits_for_room_and_gives_its_count_back_if_abandoned() {
        let tmp = tempfile::tempdir().unwrap();
        let db = Arc::new(StoreDb::open(tmp.path(), 60_000, 10_000).unwrap());
        // No listener: nothing holds routing up; room is taken here by hand.
        let router = Router::new().start();
        let (queue, _rx) = AppendQueue::new(1);
        let component = Registry::new().register("store", ComponentKind::Store, true);
        let committer = Committer::start(
            &actix_rt::Arbiter::current(),
            db,
            router,
            Arc::new(AtomicU64::new(0)),
            component,
            &queue,
        );
        let held = committer.in_flight.room.clone().try_acquire_owned().unwrap();
        let (req, _answer) = request(1);
        let waiting = actix_rt::time::timeout(Duration::from_millis(50), committer.append_here(req)).await;
        assert!(waiting.is_err(), "no room: the append waits");
        assert_eq!(queue.outstanding(), 0, "an abandoned append is not outstanding");
        drop(held);
        let (req, answer) = request(2);
        committer.append_here(req).await.unwrap();
        assert_eq!(answer.await.unwrap().unwrap().accepted, 1);
    }
}
