use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use cxrelay_actors::event::now_ms;
use cxrelay_actors::registry::{Component, ComponentState, Progress, StopReason};
use cxrelay_actors::retry::{Backoff, BackoffPolicy};
use cxrelay_actors::router::AckHandle;
use cxrelay_actors::supervision::Shutdown;
use cxrelay_actors::{Deliver, Event};
use futures_util::future::LocalBoxFuture;
use futures_util::FutureExt;

use super::flush::{FlushNow, FlushSignal};
use super::held::{Claim, HeldEvents};
use super::telemetry::{SinkMetrics, SinkStatus};
use super::{SinkError, SinkWriter};
use crate::store::{DeadLetter, PutDeadLetters};
use crate::transform::{Transformed, Transformer};

/// Batching and retry settings of a sink.
#[derive(Clone)]
pub struct SinkOptions {
    /// Commit after this many events...
    pub batch_events: usize,
    /// ...or once the oldest pending event is this old.
    pub batch_interval: Duration,
    /// Delays between failed commits.
    pub retry: BackoffPolicy,
    /// After this many failed attempts, a batch goes to dead letters (when
    /// a dead-letter store is given); `None` retries for ever.
    pub max_retries: Option<u32>,
    /// Where dead letters go.
    pub dead_letters: Option<Recipient<PutDeadLetters>>,
    /// Sort each batch by event time (then key, then id) before writing.
    pub order_by_time: bool,
    /// The listener's transforms, run on the worker pool before writing.
    pub transformer: Option<Transformer>,
    /// A sink holding events that finishes no write attempt for this long
    /// is stuck: its supervisor replaces it. Longer than any write may
    /// legitimately take (the HTTP timeout, a slow fsync) plus the longest
    /// retry delay, since a finished attempt, failed or not, is progress.
    pub stuck_after: Duration,
    /// How often a sink with nothing pending and no commit under way looks
    /// after its writer and republishes its status. A service runs idle for
    /// long stretches: four sinks waking ten times a second with nothing to
    /// do were most of its idle CPU.
    pub idle_tick: Duration,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            batch_events: 1000,
            batch_interval: Duration::from_millis(200),
            retry: BackoffPolicy {
                initial: Duration::from_millis(100),
                multiplier: 2.0,
                max: Duration::from_secs(10),
                randomization: 0.2,
                full_jitter: false,
            },
            max_retries: None,
            dead_letters: None,
            order_by_time: false,
            transformer: None,
            stuck_after: Duration::from_secs(120),
            idle_tick: Duration::from_secs(1),
        }
    }
}

type Factory<W> = Box<dyn FnMut() -> Result<W, SinkError>>;

/// A listener actor around a [`SinkWriter`]: batches events, commits them,
/// acknowledges after the commit, and retries failed commits with backoff
/// while holding the batch (which backs the listener's queue up, and with
/// `block` the sources too). With a retry limit, a batch that keeps failing
/// goes to dead letters and the listener moves on.
///
/// A panic in the writer is caught: the writer is rebuilt from its factory
/// and the batch retried, so a sink bug never costs the listener its queue.
///
/// The sink reports progress for stuck detection (a finished attempt is a
/// unit of work; it is busy while it holds events), and records what it
/// holds in its component's [`HeldEvents`]: an instance replaced because
/// its write hung hands those events to its successor, and stops without
/// acknowledging anything if it ever wakes.
pub struct SinkActor<W: SinkWriter> {
    opts: SinkOptions,
    factory: Factory<W>,
    writer: Option<Box<W>>,
    /// Events received and not yet acknowledged.
    pending: Vec<Arc<Event>>,
    /// What is written for them: transformed and ordered, once prepared
    /// (kept across write retries so a batch is transformed once).
    prepared: Option<Vec<Arc<Event>>>,
    pending_since: Option<Instant>,
    ack: Option<AckHandle>,
    backoff: Backoff,
    attempts: u32,
    /// A commit (or its retry wait) is under way: a tick, a full batch or
    /// a flush arriving meanwhile must not start another (the batch would
    /// be written twice).
    committing: bool,
    component: Arc<Component>,
    /// This instance's progress report (fresh for every instance).
    progress: Arc<Progress>,
    /// This instance's ownership of the listener's held events.
    claim: Claim,
    /// The events taken over from the previous instance, by address. If
    /// that instance was stopped inside its `Deliver` handler, the router
    /// sends that batch again, and the events are already pending here.
    taken_over: HashSet<usize>,
    committed_events: u64,
    commits: u64,
    failures: u64,
    dead_lettered: u64,
    transform_rejected: u64,
    /// The last tick's error, if it failed (reported once, not each tick).
    tick_error: Option<String>,
    /// The next tick, and whether it comes at the busy pace.
    next_tick: Option<(SpawnHandle, bool)>,
    metrics: SinkMetrics,
    /// A final flush on its way: retry waits end and are not started.
    flush_signal: FlushSignal,
}

fn panic_text(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

/// An event's identity for the life of its allocation (a resent batch
/// holds the same `Arc`s).
fn address(e: &Arc<Event>) -> usize {
    Arc::as_ptr(e) as usize
}

/// Why a commit attempt did not succeed.
enum AttemptError {
    /// The writer reported an error, and what it asks of the next attempt.
    Failed(String, Next),
    /// The writer panicked (its message): it must be rebuilt.
    Panicked(String),
}

impl AttemptError {
    fn failed(e: &SinkError) -> Self {
        AttemptError::Failed(e.to_string(), Next::after(e))
    }

    fn into_message(self) -> String {
        match self {
            AttemptError::Failed(e, _) => e,
            AttemptError::Panicked(m) => format!("sink panicked: {m}"),
        }
    }
}

/// When a failed batch is tried again: the writer's error can say more
/// than "it failed" (see the [`SinkError`] variants).
#[derive(Clone, Copy, Debug)]
enum Next {
    /// After the backoff delay.
    Backoff,
    /// Not before this long: the target asked.
    Wait(Duration),
    /// Not before this long, and the listener is not ready meanwhile.
    Paused(Duration),
    /// Never: the batch goes to dead letters now.
    DeadLetter,
}

impl Next {
    fn after(e: &SinkError) -> Next {
        match e {
            SinkError::Rejected(_) => Next::DeadLetter,
            SinkError::RetryAfter { wait, .. } => Next::Wait(*wait),
            SinkError::Paused { wait, .. } => Next::Paused(*wait),
            SinkError::Io { .. } | SinkError::Http { .. } | SinkError::Transport { .. } => Next::Backoff,
        }
    }
}

impl<W: SinkWriter> SinkActor<W> {
    /// A sink reporting as `component`, building its writer with `factory`.
    /// It takes over the events an earlier instance of the same component
    /// held and had not acknowledged, and writes them first.
    pub fn new(
        opts: SinkOptions,
        component: Arc<Component>,
        factory: impl FnMut() -> Result<W, SinkError> + 'static,
    ) -> Self {
        let progress = component.report_progress(opts.stuck_after);
        let taken = component.carried::<HeldEvents>().claim();
        if !taken.events.is_empty() {
            tracing::warn!(listener = %component.name(), events = taken.events.len(),
                "taking over events the previous sink instance held unacknowledged");
        }
        progress.set_busy(!taken.events.is_empty());
        let taken_over = taken.events.iter().map(address).collect();
        SinkActor {
            backoff: opts.retry.schedule(),
            opts,
            factory: Box::new(factory),
            writer: None,
            pending_since: (!taken.events.is_empty()).then(Instant::now),
            pending: taken.events,
            prepared: None,
            ack: taken.ack,
            attempts: 0,
            committing: false,
            progress,
            claim: taken.claim,
            taken_over,
            committed_events: 0,
            commits: 0,
            failures: 0,
            dead_lettered: 0,
            transform_rejected: 0,
            tick_error: None,
            next_tick: None,
            metrics: SinkMetrics::new(component.name()),
            component,
            flush_signal: FlushSignal::default(),
        }
    }

    /// Listens for flushes on `signal` (its listener's, shared by every
    /// instance) besides its mailbox.
    pub fn with_flush_signal(mut self, signal: FlushSignal) -> Self {
        self.flush_signal = signal;
        self
    }

    /// Starts writing the pending batch; a panic anywhere in the writer is
    /// turned into an error (the writer is then rebuilt next time).
    fn begin_commit(&mut self) -> LocalBoxFuture<'static, Result<(), AttemptError>> {
        let started = catch_unwind(AssertUnwindSafe(|| -> Result<_, SinkError> {
            if self.writer.is_none() {
                self.writer = Some(Box::new((self.factory)()?));
            }
            let w = self.writer.as_mut().expect("built above");
            Ok(w.commit(self.prepared.as_deref().unwrap_or(&self.pending)))
        }));
        let fut = match started {
            Ok(Ok(fut)) => fut,
            Ok(Err(e)) => return Box::pin(std::future::ready(Err(AttemptError::failed(&e)))),
            Err(p) => return Box::pin(std::future::ready(Err(AttemptError::Panicked(panic_text(p))))),
        };
        Box::pin(AssertUnwindSafe(fut).catch_unwind().map(|r| match r {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(AttemptError::failed(&e)),
            Err(p) => Err(AttemptError::Panicked(panic_text(p))),
        }))
    }

    /// Waits for `fut` unless this instance is retired first (`None`): an
    /// instance its supervisor gave up on drops a hung write (and the
    /// connection or file under it) instead of holding it for ever.
    fn unless_retired<T: 'static>(
        &self,
        fut: impl std::future::Future<Output = T> + 'static,
    ) -> impl std::future::Future<Output = Option<T>> + 'static {
        let progress = self.progress.clone();
        async move {
            tokio::select! {
                biased;
                out = fut => Some(out),
                () = progress.retired() => None,
            }
        }
    }

    /// Whether a newer instance has taken this one's place (after its
    /// supervisor found it stuck, or because one was built anyway).
    fn superseded(&self) -> bool {
        self.progress.is_retired() || !self.claim.is_current()
    }

    /// Stops a superseded instance. It writes and acknowledges nothing
    /// more, and leaves the component's state alone: the events it held are
    /// its successor's now.
    fn bow_out(&mut self, ctx: &mut Context<Self>) {
        tracing::warn!(listener = %self.component.name(), events = self.pending.len(),
            "sink instance replaced; stopping and leaving its events to the new one");
        ctx.stop();
    }

    /// The batch is durable: acknowledge it and start a new one.
    fn committed(&mut self, ctx: &mut Context<Self>) {
        // Releasing first: if a newer instance owns the events, it writes
        // and acknowledges them, and this one must not.
        if !self.claim.release(self.pending.len()) {
            return self.bow_out(ctx);
        }
        if let Some(ack) = &self.ack {
            ack.ack_batch(&self.pending);
        }
        self.committed_events += self.pending.len() as u64;
        self.commits += 1;
        self.pending.clear();
        self.prepared = None;
        self.pending_since = None;
        self.backoff.reset();
        self.attempts = 0;
        self.progress.advance();
        self.progress.set_busy(false);
        if self.component.state() != ComponentState::Running {
            self.component.set_state(ComponentState::Running);
            self.component.clear_error();
        }
    }

    /// Commits the pending batch, holding the actor (no new batches are
    /// taken) until it is durable, retried to its limit, or dead-lettered.
    fn commit(&mut self, ctx: &mut Context<Self>) {
        if self.pending.is_empty() || self.committing {
            return;
        }
        self.committing = true;
        self.prepare(ctx);
    }

    /// Transforms (on the pool) and orders the batch, once; then writes it.
    fn prepare(&mut self, ctx: &mut Context<Self>) {
        if self.prepared.is_some() {
            return self.attempt(ctx);
        }
        let Some(t) = self.opts.transformer.clone() else {
            self.prepared = Some(self.ordered(self.pending.clone()));
            return self.attempt(ctx);
        };
        let batch = self.pending.clone();
        ctx.wait(
            self.unless_retired(async move { t.run(&batch).await })
                .into_actor(self)
                .map(|t, this, ctx| match t {
                    Some(t) if !this.superseded() => this.transformed(t, ctx),
                    _ => this.bow_out(ctx),
                }),
        );
    }

    fn ordered(&self, mut events: Vec<Arc<Event>>) -> Vec<Arc<Event>> {
        if self.opts.order_by_time {
            // Stable and total: the same batch always comes out the same.
            events.sort_by(|a, b| {
                a.event_time
                    .unwrap_or(a.received_at)
                    .cmp(&b.event_time.unwrap_or(b.received_at))
                    .then_with(|| a.key.cmp(&b.key))
                    .then_with(|| a.id.cmp(&b.id))
            });
        }
        events
    }

    /// Records a transform refused go to dead letters before the batch is
    /// written: they are acknowledged with it, so they must be kept first.
    fn transformed(&mut self, t: Transformed, ctx: &mut Context<Self>) {
        let events = self.ordered(t.events);
        if t.rejected.is_empty() {
            self.prepared = Some(events);
            return self.attempt(ctx);
        }
        let name = self.component.name().to_string();
        let n = t.rejected.len();
        self.transform_rejected += n as u64;
        tracing::warn!(listener = %name, records = n, first = %t.rejected[0].1, "transform refused records");
        let Some(store) = self.opts.dead_letters.clone() else {
            tracing::error!(listener = %name, records = n, "journal off: refused records are dropped (no dead letters)");
            self.prepared = Some(events);
            return self.attempt(ctx);
        };
        let letters = t
            .rejected
            .iter()
            .map(|(ev, why)| DeadLetter::for_event(ev, &format!("transform:{name}"), Some(&name), why, 1))
            .collect();
        ctx.wait(
            store
                .send(PutDeadLetters(letters))
                .into_actor(self)
                .map(move |res, this, ctx| {
                    if matches!(res, Ok(Ok(_))) {
                        this.dead_lettered += n as u64;
                        this.metrics.dead_lettered(n);
                        this.prepared = Some(events);
                        this.attempt(ctx);
                    } else {
                        let delay = this.backoff.next_delay();
                        // A finished attempt: the actor is turning, not stuck.
                        this.progress.advance();
                        this.component.fail(
                            ComponentState::Degraded,
                            "cannot keep refused records in dead letters; retrying",
                        );
                        this.retry_later(delay, ctx, Self::prepare);
                    }
                }),
        );
    }

    fn attempt(&mut self, ctx: &mut Context<Self>) {
        if self.superseded() {
            return self.bow_out(ctx);
        }
        let started = Instant::now();
        let write = self.begin_commit();
        let fut = self.unless_retired(write);
        ctx.wait(fut.into_actor(self).map(move |res, this, ctx| match res {
            None => this.bow_out(ctx),
            Some(Ok(())) => {
                this.metrics.attempt_finished(started.elapsed(), true);
                this.metrics
                    .batch_committed(this.pending.iter().map(|e| e.received_at), now_ms());
                this.committing = false;
                this.committed(ctx);
            }
            Some(Err(e)) => {
                this.metrics.attempt_finished(started.elapsed(), false);
                this.attempt_failed(e, ctx);
            }
        }));
    }

    fn attempt_failed(&mut self, e: AttemptError, ctx: &mut Context<Self>) {
        match e {
            AttemptError::Panicked(message) => {
                // The writer's state may be half-updated: never reuse it.
                self.writer = None;
                self.component.restarted(StopReason::Panicked {
                    message: message.clone(),
                });
                self.failed(AttemptError::Panicked(message).into_message(), Next::Backoff, ctx);
            }
            AttemptError::Failed(error, next) => self.failed(error, next, ctx),
        }
    }

    fn failed(&mut self, error: String, next: Next, ctx: &mut Context<Self>) {
        // A finished attempt, even a failed one, is progress: a sink that
        // keeps failing is degraded and retrying, not stuck, and replacing
        // it would not help.
        self.progress.advance();
        self.failures += 1;
        self.attempts += 1;
        self.flush_signal.attempt_failed();
        if let Some(store) = self.opts.dead_letters.clone() {
            let exhausted = self.opts.max_retries.is_some_and(|max| self.attempts > max);
            if exhausted || matches!(next, Next::DeadLetter) {
                self.dead_letter(store, error, ctx);
                return;
            }
        }
        let (delay, state) = match next {
            Next::Wait(wait) => (wait, ComponentState::Degraded),
            Next::Paused(wait) => (wait, ComponentState::Paused),
            // Without a dead-letter store (journal off) a refused batch can
            // only be held and retried: nothing is dropped silently.
            Next::Backoff | Next::DeadLetter => (self.backoff.next_delay(), ComponentState::Degraded),
        };
        tracing::warn!(listener = %self.component.name(), %error, attempt = self.attempts, ?delay,
            "sink commit failed; retrying");
        self.metrics.retrying();
        self.component.fail(state, error);
        // The wait holds the actor (its status tick too): show the counts
        // and the writer's state (an open breaker) now.
        self.publish_detail();
        self.retry_later(delay, ctx, Self::attempt);
    }

    /// Runs `then` after `delay`, holding the actor (no new batch is taken)
    /// meanwhile; unless a flush is coming: then the commit ends here with
    /// its batch still pending, and the flush tries once more and answers
    /// rather than wait out the delay.
    fn retry_later(&mut self, delay: Duration, ctx: &mut Context<Self>, then: fn(&mut Self, &mut Context<Self>)) {
        if self.flush_signal.is_requested() {
            self.committing = false;
            return;
        }
        ctx.wait(
            self.waiting(delay)
                .into_actor(self)
                .map(move |_, this, ctx| then(this, ctx)),
        );
    }

    /// Sleeps for `delay`, reporting progress along the way: a wait the
    /// target asked for (a `Retry-After` of minutes) is not a hung write,
    /// and must not get the sink replaced as stuck. A flush or a nudge
    /// ends it early.
    fn waiting(&self, delay: Duration) -> impl std::future::Future<Output = ()> + 'static {
        let progress = self.progress.clone();
        let signal = self.flush_signal.clone();
        let slice = (self.opts.stuck_after / 4).max(Duration::from_millis(1));
        async move {
            let end = tokio::time::Instant::now() + delay;
            while tokio::time::Instant::now() < end {
                let left = end.saturating_duration_since(tokio::time::Instant::now());
                let cut_short = signal.sleep(left.min(slice)).await;
                progress.advance();
                if cut_short {
                    break;
                }
            }
        }
    }

    /// Moves the pending batch to dead letters, then acknowledges it. If
    /// the store cannot take it either, the batch is kept and retried.
    fn dead_letter(&mut self, store: Recipient<PutDeadLetters>, error: String, ctx: &mut Context<Self>) {
        let name = self.component.name().to_string();
        let letters: Vec<DeadLetter> = self
            .pending
            .iter()
            .map(|ev| DeadLetter::for_event(ev, &format!("sink:{name}"), Some(&name), &error, self.attempts))
            .collect();
        let n = letters.len();
        tracing::error!(listener = %name, events = n, %error, attempts = self.attempts,
            "sink gave up on a batch; moving it to dead letters");
        ctx.wait(
            store
                .send(PutDeadLetters(letters))
                .into_actor(self)
                .map(move |res, this, ctx| match res {
                    _ if this.superseded() => this.bow_out(ctx),
                    Ok(Ok(_)) => {
                        this.dead_lettered += n as u64;
                        this.metrics.dead_lettered(n);
                        this.committing = false;
                        this.committed(ctx);
                        this.component.set_state(ComponentState::Degraded);
                        this.component
                            .record_error(format!("{n} events moved to dead letters: {error}"));
                    }
                    _ => {
                        let delay = this.backoff.next_delay();
                        this.retry_later(delay, ctx, Self::attempt);
                    }
                }),
        );
    }

    /// Gives the writer its periodic turn ([`SinkWriter::tick`]) between
    /// commits, building it if needed (so that, say, files left open by a
    /// previous run are closed on time even if no event comes). A panic is
    /// handled as in a commit: the writer is rebuilt next time.
    fn tick_writer(&mut self) {
        if self.committing {
            return;
        }
        let ticked = catch_unwind(AssertUnwindSafe(|| -> Result<(), SinkError> {
            if self.writer.is_none() {
                self.writer = Some(Box::new((self.factory)()?));
            }
            self.writer.as_mut().expect("built above").tick()
        }));
        let error = match ticked {
            Ok(Ok(())) => {
                self.tick_error = None;
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(p) => {
                self.writer = None;
                let message = panic_text(p);
                self.component.restarted(StopReason::Panicked {
                    message: message.clone(),
                });
                format!("sink panicked: {message}")
            }
        };
        // Said once per distinct error: the next tick is a tenth of a
        // second away.
        if self.tick_error.as_deref() != Some(error.as_str()) {
            tracing::warn!(listener = %self.component.name(), %error, "sink tick failed");
            self.component.record_error(error.clone());
            self.tick_error = Some(error);
        }
    }

    fn publish_detail(&self) {
        self.component.set_status(&SinkStatus {
            committed_events: self.committed_events,
            commits: self.commits,
            commit_failures: self.failures,
            dead_lettered: self.dead_lettered,
            transform_rejected: self.transform_rejected,
            pending: self.pending.len(),
            writer: self.writer.as_ref().map(|w| w.describe()),
        });
    }
}

impl<W: SinkWriter> Actor for SinkActor<W> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.component.set_state(ComponentState::Running);
        self.arm_tick(ctx);
    }
}

impl<W: SinkWriter> SinkActor<W> {
    /// Schedules the next tick: at half the batch interval while events are
    /// pending or a commit is under way (a batch is committed once its
    /// oldest event is that old), else at the idle pace.
    fn arm_tick(&mut self, ctx: &mut Context<Self>) {
        let busy = !self.pending.is_empty() || self.committing;
        let pace = (self.opts.batch_interval / 2).max(Duration::from_millis(5));
        let delay = if busy { pace } else { self.opts.idle_tick.max(pace) };
        let handle = ctx.run_later(delay, |this, ctx| {
            this.next_tick = None;
            this.tick(ctx);
            if ctx.state() == ActorState::Running {
                this.arm_tick(ctx);
            }
        });
        self.next_tick = Some((handle, busy));
    }

    /// Brings an idle-paced tick forward once events are pending.
    fn hasten_tick(&mut self, ctx: &mut Context<Self>) {
        if let Some((handle, false)) = self.next_tick {
            ctx.cancel_future(handle);
            self.arm_tick(ctx);
        }
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.superseded() {
            return self.bow_out(ctx);
        }
        if self
            .pending_since
            .is_some_and(|t| t.elapsed() >= self.opts.batch_interval)
        {
            self.commit(ctx);
        }
        self.tick_writer();
        self.publish_detail();
    }
}

/// A sink's answer to a batch. A replaced instance refuses it: the router's
/// send then fails and the router hands the batch to the replacement,
/// instead of counting it delivered to an instance that will not write it.
pub enum Taken {
    /// Taken: the sink holds the events.
    Yes,
    /// Refused: the sink has been replaced.
    Refused,
}

impl<W: SinkWriter> actix::dev::MessageResponse<SinkActor<W>, Deliver> for Taken {
    fn handle(self, _: &mut Context<SinkActor<W>>, tx: Option<actix::dev::OneshotSender<()>>) {
        if let (Taken::Yes, Some(tx)) = (self, tx) {
            // The router may have stopped waiting; nothing to do then.
            let _ = tx.send(());
        }
        // Refused: dropping `tx` fails the router's send.
    }
}

impl<W: SinkWriter> Handler<Deliver> for SinkActor<W> {
    type Result = Taken;

    fn handle(&mut self, mut msg: Deliver, ctx: &mut Self::Context) -> Taken {
        if !self.taken_over.is_empty() {
            // Only the first batch can be a resend: the router sends the
            // one it was handing over before any other.
            let taken_over = std::mem::take(&mut self.taken_over);
            msg.events.retain(|e| !taken_over.contains(&address(e)));
        }
        // A replaced instance may still find a batch in its mailbox (its
        // thread was blocked, then freed): it must not take it.
        if self.progress.is_retired() || !self.claim.hold(&msg.events, &msg.ack) {
            self.bow_out(ctx);
            return Taken::Refused;
        }
        if let Some(waited) = msg.waited() {
            self.metrics.batch_taken(waited);
        }
        self.ack = Some(msg.ack);
        if msg.events.is_empty() {
            return Taken::Yes;
        }
        let was_idle = self.pending.is_empty();
        if was_idle {
            self.pending_since = Some(Instant::now());
        }
        self.pending.extend(msg.events);
        // A batch prepared for a commit a flush cut short no longer covers
        // what is pending (records its transform refused are refused, and
        // kept in dead letters, again).
        self.prepared = None;
        self.progress.set_busy(true);
        if was_idle {
            self.hasten_tick(ctx);
        }
        if self.pending.len() >= self.opts.batch_events {
            self.commit(ctx);
        }
        Taken::Yes
    }
}

impl<W: SinkWriter> Handler<FlushNow> for SinkActor<W> {
    type Result = ResponseActFuture<Self, Result<(), String>>;

    fn handle(&mut self, _: FlushNow, ctx: &mut Self::Context) -> Self::Result {
        self.commit(ctx);
        // Runs once the commit (a wait) has finished: answers whether
        // everything received is now written.
        Box::pin(ActorFutureExt::map(actix::fut::ready(()), |_, this: &mut Self, _| {
            this.flush_signal.clear();
            this.publish_detail();
            if this.pending.is_empty() {
                Ok(())
            } else {
                Err(this
                    .component
                    .snapshot()
                    .last_error
                    .unwrap_or_else(|| "commit failed".into()))
            }
        }))
    }
}

impl<W: SinkWriter> Handler<Shutdown> for SinkActor<W> {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        // A stopped sink leaves nothing half-finished for its readers (the
        // final flush came first; anything not committed is replayed).
        if let Some(w) = self.writer.as_mut() {
            let failed = match catch_unwind(AssertUnwindSafe(|| w.close())) {
                Ok(Ok(())) => None,
                Ok(Err(e)) => Some(e.to_string()),
                Err(_) => Some("the writer panicked while closing".to_string()),
            };
            if let Some(e) = failed {
                tracing::warn!(listener = %self.component.name(), error = %e, "closing the sink at shutdown failed");
            }
        }
        ctx.stop();
    }
}
