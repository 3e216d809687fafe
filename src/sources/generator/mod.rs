//! A built-in source of synthetic events at a configured rate, so that a
//! fresh install shows events flowing and load can be generated on demand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use cxrelay_actors::event::now_ms;
use cxrelay_actors::registry::{Component, ComponentState, Progress};
use cxrelay_actors::supervision::Shutdown;
use cxrelay_actors::Event;

use crate::ingest::{Ingest, IngestBatch};

mod config;
pub mod telemetry;
pub use config::GeneratorConfig;
use telemetry::GeneratorStatus;

/// The checkpoint a generator saved: the number of the next event.
pub fn parse_checkpoint(raw: Option<Vec<u8>>) -> u64 {
    raw.and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// Most events handed to ingest in one batch.
const MAX_BATCH: usize = 2000;
const TICK: Duration = Duration::from_millis(10);
/// A generator owing events that hands none over (and has none refused)
/// for this long is stuck. Between ticks of 10 ms it only builds a batch in
/// memory; its waits on ingest do not count (a slow sink holds it back
/// legitimately, for as long as it takes), so a minute means its ticks
/// stopped.
pub const STUCK_AFTER: Duration = Duration::from_secs(60);

/// Settings of a generator.
#[derive(Debug, Clone)]
pub struct GeneratorSettings {
    /// Source name.
    pub name: String,
    /// Topic templates; `{key}` becomes the event's key.
    pub topics: Vec<String>,
    /// Events per second.
    pub rate: f64,
    /// Stop after this many events (None: never).
    pub count: Option<u64>,
    /// Approximate payload size.
    pub payload_bytes: usize,
    /// Distinct keys.
    pub keys: u64,
}

/// Emits events numbered from 0: id `<source>-<n>`, key `conv-<n % keys>`,
/// topics in rotation. Numbering is deterministic so that a test can tell
/// exactly which events must come out.
///
/// Progress: each batch ingest accepts or refuses is a unit; the
/// generator is busy while it owes events and is not waiting on ingest.
pub struct Generator {
    s: GeneratorSettings,
    source: Arc<str>,
    ingest: Ingest,
    component: Arc<Component>,
    progress: Arc<Progress>,
    next: u64,
    started: Instant,
    start_at: u64,
    /// A batch is with ingest.
    in_flight: bool,
    padding: String,
    checkpoint: bool,
}

impl Generator {
    /// A generator starting at event number `start_at`. With `checkpoint`,
    /// each batch commits the next number as the source's checkpoint, so a
    /// restart resumes exactly after the last committed event.
    /// It reports progress through `progress` (its instance's handle).
    pub fn new(
        s: GeneratorSettings,
        ingest: Ingest,
        component: Arc<Component>,
        progress: Arc<Progress>,
        start_at: u64,
        checkpoint: bool,
    ) -> Self {
        Generator {
            source: Arc::from(s.name.as_str()),
            padding: "x".repeat(s.payload_bytes.saturating_sub(160)),
            s,
            ingest,
            component,
            progress,
            next: start_at,
            started: Instant::now(),
            start_at,
            in_flight: false,
            checkpoint,
        }
    }

    fn publish(&self, finished: bool) {
        self.component.set_status(&GeneratorStatus {
            emitted: self.next,
            finished,
        });
    }

    fn event(&self, n: u64) -> Event {
        let key = format!("conv-{}", n % self.s.keys.max(1));
        let template = &self.s.topics[(n % self.s.topics.len() as u64) as usize];
        let topic = template.replace("{key}", &key);
        let now = now_ms();
        let payload = format!(
            "{{\"eventId\":\"{}-{n}\",\"conversationId\":\"{key}\",\"sequence\":{n},\"eventTime\":{now},\"padding\":\"{}\"}}",
            self.s.name, self.padding
        );
        Event::builder(self.source.clone(), topic)
            .id(format!("{}-{n}", self.s.name))
            .key(key)
            .event_time(Some(now))
            .received_at(now)
            .payload(payload)
            .build()
    }

    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight {
            return;
        }
        let due_total = (self.started.elapsed().as_secs_f64() * self.s.rate) as u64 + self.start_at;
        let limit = self.s.count.unwrap_or(u64::MAX);
        let due = due_total.min(limit);
        if self.next >= limit {
            if self.component.state() != ComponentState::Idle {
                self.component.set_state(ComponentState::Idle);
                self.publish(true);
            }
            self.progress.set_busy(false);
            return;
        }
        self.progress.set_busy(due > self.next);
        if due <= self.next {
            return;
        }
        let n = ((due - self.next) as usize).min(MAX_BATCH);
        let events: Vec<Event> = (self.next..self.next + n as u64).map(|i| self.event(i)).collect();
        let checkpoint = self
            .checkpoint
            .then(|| (self.s.name.clone(), (self.next + n as u64).to_string().into_bytes()));
        self.in_flight = true;
        // In cluster mode an event's id is its message id: a standby that
        // takes the source over from an older checkpoint publishes the
        // same events again, and the stream keeps one of each.
        let keys = if self.ingest.as_cluster().is_some() {
            events.iter().map(|e| Some(e.id.to_string())).collect()
        } else {
            Vec::new()
        };
        let ingest = self.ingest.clone();
        let progress = self.progress.clone();
        ctx.spawn(
            async move {
                // Backpressure from a slow sink is not the generator's to
                // resolve: it is not busy while it waits.
                let _waiting = progress.waiting_on_others();
                ingest
                    .submit(IngestBatch {
                        events,
                        keys,
                        hashes: Vec::new(),
                        checkpoint,
                    })
                    .await
            }
            .into_actor(self)
            .map(move |res, this, _| {
                this.in_flight = false;
                // Accepted or refused, the batch is a finished attempt.
                this.progress.advance();
                match res {
                    Ok(_) => {
                        this.next += n as u64;
                        this.publish(false);
                        if this.component.state() == ComponentState::Paused {
                            this.component.set_state(ComponentState::Running);
                            this.component.clear_error();
                        }
                    }
                    // Paused until ingest takes events again; the same
                    // numbers are offered next time.
                    Err(e) => this.component.fail(ComponentState::Paused, e.to_string()),
                }
            }),
        );
    }
}

impl Actor for Generator {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.started = Instant::now();
        self.component.set_state(ComponentState::Running);
        ctx.run_interval(TICK, |this, ctx| this.tick(ctx));
    }
}

impl Handler<Shutdown> for Generator {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}
