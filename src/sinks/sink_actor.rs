use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use cxrelay_actors::registry::{Component, ComponentState};
use cxrelay_actors::retry::{Backoff, BackoffPolicy};
use cxrelay_actors::router::AckHandle;
use cxrelay_actors::supervision::Shutdown;
use cxrelay_actors::{Deliver, Event};

use super::{SinkError, SinkWriter};

/// Batching and retry settings of a sink.
#[derive(Debug, Clone)]
pub struct SinkOptions {
    /// Commit after this many events...
    pub batch_events: usize,
    /// ...or once the oldest pending event is this old.
    pub batch_interval: Duration,
    /// Delays between failed commits.
    pub retry: BackoffPolicy,
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
        }
    }
}

/// Commits pending events now; answers once they are durable or the
/// attempt failed.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct FlushNow;

type Factory<W> = Box<dyn FnMut() -> Result<W, SinkError>>;

/// A listener actor around a [`SinkWriter`]: batches events, commits them,
/// acknowledges after the commit, and retries failed commits with backoff
/// while holding the batch (which backs the listener's queue up, and with
/// `block` the sources too).
///
/// A panic in the writer is caught: the writer is rebuilt from its factory
/// and the batch retried, so a sink bug never costs the listener its queue.
pub struct SinkActor<W: SinkWriter> {
    opts: SinkOptions,
    factory: Factory<W>,
    writer: Option<Box<W>>,
    pending: Vec<Arc<Event>>,
    pending_since: Option<Instant>,
    ack: Option<AckHandle>,
    backoff: Backoff,
    component: Arc<Component>,
    committed_events: u64,
    commits: u64,
    failures: u64,
}

impl<W: SinkWriter> SinkActor<W> {
    /// A sink reporting as `component`, building its writer with `factory`.
    pub fn new(
        opts: SinkOptions,
        component: Arc<Component>,
        factory: impl FnMut() -> Result<W, SinkError> + 'static,
    ) -> Self {
        SinkActor {
            backoff: opts.retry.schedule(),
            opts,
            factory: Box::new(factory),
            writer: None,
            pending: Vec::new(),
            pending_since: None,
            ack: None,
            component,
            committed_events: 0,
            commits: 0,
            failures: 0,
        }
    }

    fn try_commit(&mut self) -> Result<(), String> {
        let result = catch_unwind(AssertUnwindSafe(|| -> Result<(), SinkError> {
            if self.writer.is_none() {
                self.writer = Some(Box::new((self.factory)()?));
            }
            let w = self.writer.as_mut().expect("built above");
            w.write(&self.pending)?;
            w.commit()
        }));
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.to_string()),
            Err(panic) => {
                // The writer's state is suspect after a panic: rebuild it.
                self.writer = None;
                self.component.count_restart();
                let msg = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".into());
                Err(format!("sink panicked: {msg}"))
            }
        }
    }

    /// Commits once; on success acknowledges and clears the batch.
    fn commit_once(&mut self) -> Result<(), String> {
        if self.pending.is_empty() {
            return Ok(());
        }
        self.try_commit()?;
        if let Some(ack) = &self.ack {
            ack.ack_batch(&self.pending);
        }
        self.committed_events += self.pending.len() as u64;
        self.commits += 1;
        self.pending.clear();
        self.pending_since = None;
        self.backoff.reset();
        if self.component.state() != ComponentState::Running {
            self.component.set_state(ComponentState::Running);
            self.component.clear_error();
        }
        Ok(())
    }

    /// Commits, and on failure keeps retrying with backoff while holding
    /// the actor (no new batches are taken meanwhile).
    fn commit(&mut self, ctx: &mut Context<Self>) {
        if let Err(e) = self.commit_once() {
            self.failures += 1;
            let delay = self.backoff.next_delay();
            tracing::warn!(listener = %self.component.name(), error = %e, ?delay, "sink commit failed; retrying");
            self.component.fail(ComponentState::Degraded, e);
            ctx.wait(
                tokio::time::sleep(delay)
                    .into_actor(self)
                    .map(|_, this, ctx| this.commit(ctx)),
            );
        }
    }

    fn publish_detail(&self) {
        self.component
            .set_detail("committed_events", self.committed_events);
        self.component.set_detail("commits", self.commits);
        self.component.set_detail("commit_failures", self.failures);
        self.component.set_detail("pending", self.pending.len());
        if let Some(w) = &self.writer {
            self.component.set_detail("writer", w.describe());
        }
    }
}

impl<W: SinkWriter> Actor for SinkActor<W> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.component.set_state(ComponentState::Running);
        let tick = (self.opts.batch_interval / 2).max(Duration::from_millis(5));
        ctx.run_interval(tick, |this, ctx| {
            if this
                .pending_since
                .is_some_and(|t| t.elapsed() >= this.opts.batch_interval)
            {
                this.commit(ctx);
            }
            this.publish_detail();
        });
    }
}

impl<W: SinkWriter> Handler<Deliver> for SinkActor<W> {
    type Result = ();

    fn handle(&mut self, msg: Deliver, ctx: &mut Self::Context) {
        self.ack = Some(msg.ack);
        if self.pending.is_empty() {
            self.pending_since = Some(Instant::now());
        }
        self.pending.extend(msg.events);
        if self.pending.len() >= self.opts.batch_events {
            self.commit(ctx);
        }
    }
}

impl<W: SinkWriter> Handler<FlushNow> for SinkActor<W> {
    type Result = Result<(), String>;

    fn handle(&mut self, _: FlushNow, _: &mut Self::Context) -> Self::Result {
        let r = self.commit_once();
        self.publish_detail();
        r
    }
}

impl<W: SinkWriter> Handler<Shutdown> for SinkActor<W> {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        if let Err(e) = self.commit_once() {
            tracing::error!(listener = %self.component.name(), error = %e, "final commit failed");
        }
        ctx.stop();
    }
}
