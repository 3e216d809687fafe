//! The processing side of a node: pulls the partitions assigned to it,
//! routes their events to the listeners, and acknowledges each message to
//! the stream once every durable listener has committed it.
//!
//! Events get a node-local position, in the order they are routed, so the
//! listeners' acknowledgement counters work as they do over the journal:
//! everything at or below the lowest safe position of all durable
//! listeners is committed, and its messages are acknowledged. Positions
//! start at the start time in microseconds, so a restarted node's positions
//! are above any it used before (a file sink skips positions it already
//! wrote).

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use async_nats::jetstream::consumer::PullConsumer;
use async_nats::jetstream::{self, AckKind};
use cxrelay_actors::{QueueStats, Router};
use futures_util::StreamExt;
use parking_lot::Mutex;

use super::nats::{Nats, GROUP};
use super::partition::consumer_name;
use super::telemetry::{PARTITIONS_OWNED, REDELIVERIES_TOTAL};
use super::ClusterSettings;
use crate::store::codec;
use crate::store::routes::Routes;
use crate::store::Store;

/// How often committed positions turn into acknowledgements.
const ACK_EVERY: Duration = Duration::from_millis(50);
/// Most messages routed at once.
const CHUNK: usize = 500;

/// Counters shared with the status.
#[derive(Debug, Default)]
pub struct ProcessCounters {
    /// Events routed from the stream.
    pub consumed: AtomicU64,
    /// Messages acknowledged.
    pub acknowledged: AtomicU64,
    /// Messages received more than once.
    pub redeliveries: AtomicU64,
}

/// What the pulls and the acknowledger share.
struct Shared {
    /// Messages routed, not yet acknowledged, by position, with their
    /// partition.
    held: Mutex<BTreeMap<u64, (u32, jetstream::Message)>>,
    /// Per partition, how many of `held` are its.
    unacked: Vec<AtomicUsize>,
    /// The next position; held while a chunk is routed, so positions reach
    /// the router in order.
    next: tokio::sync::Mutex<u64>,
    /// Everything at or below this has been handed to the router.
    routed: AtomicU64,
    counters: Arc<ProcessCounters>,
}

/// Pulls partitions and acknowledges what listeners committed.
pub struct ProcessNode {
    nats: Nats,
    settings: Arc<ClusterSettings>,
    router: Addr<Router>,
    durable: Vec<Arc<QueueStats>>,
    shared: Arc<Shared>,
    pulls: HashMap<u32, tokio::task::JoinHandle<()>>,
    /// Acknowledgements being sent in the background: an orderly stop
    /// waits for them before it flushes the connection.
    acks: Vec<tokio::task::JoinHandle<()>>,
    /// Stopping: no more pulls.
    stopping: bool,
}

impl ProcessNode {
    /// A processing node routing to `router`; `durable` are the counters of
    /// the listeners whose commits hold acknowledgements back.
    pub fn new(
        nats: Nats,
        settings: Arc<ClusterSettings>,
        router: Addr<Router>,
        durable: Vec<Arc<QueueStats>>,
        counters: Arc<ProcessCounters>,
    ) -> Self {
        let start = u64::try_from(cxrelay_actors::event::now_ms())
            .unwrap_or(0)
            .saturating_mul(1000);
        let unacked = (0..settings.partitions).map(|_| AtomicUsize::new(0)).collect();
        ProcessNode {
            nats,
            settings,
            router,
            durable,
            shared: Arc::new(Shared {
                held: Mutex::default(),
                unacked,
                next: tokio::sync::Mutex::new(start),
                routed: AtomicU64::new(start.saturating_sub(1)),
                counters,
            }),
            pulls: HashMap::new(),
            acks: Vec::new(),
            stopping: false,
        }
    }

    /// Takes every held message at or below what all durable listeners
    /// committed.
    fn committed(&mut self) -> Vec<jetstream::Message> {
        // Read before the listeners' counters (see Store::safe_position).
        let routed = self.shared.routed.load(Ordering::Acquire);
        let safe = self
            .durable
            .iter()
            .map(|s| Store::safe_position(routed, s))
            .min()
            .unwrap_or(routed);
        let mut held = self.shared.held.lock();
        let rest = held.split_off(&safe.saturating_add(1));
        let done = std::mem::replace(&mut *held, rest);
        drop(held);
        done.into_values()
            .map(|(p, m)| {
                if let Some(n) = self.shared.unacked.get(p as usize) {
                    n.fetch_sub(1, Ordering::AcqRel);
                }
                m
            })
            .collect()
    }

    /// Stops every pull for good (an orderly stop, or the actor's end).
    fn stop_pulls(&mut self) {
        self.stopping = true;
        for (_, pull) in self.pulls.drain() {
            pull.abort();
        }
    }

    /// Acknowledges what listeners committed, in the background.
    fn acknowledge(&mut self) {
        self.acks.retain(|a| !a.is_finished());
        let done = self.committed();
        if !done.is_empty() {
            self.acks
                .push(actix::spawn(send_acks(done, self.shared.counters.clone())));
        }
    }
}

/// Sends acknowledgements (each a plain publish: no round trip).
async fn send_acks(done: Vec<jetstream::Message>, counters: Arc<ProcessCounters>) {
    let n = done.len() as u64;
    for m in done {
        // An acknowledgement lost here is a redelivery, not a loss.
        if let Err(e) = m.ack().await {
            tracing::debug!(error = %e, "acknowledgement not sent");
        }
    }
    counters.acknowledged.fetch_add(n, Ordering::Relaxed);
}

/// At an orderly stop, before listeners drain: no more events come in.
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopPulling;

impl Handler<StopPulling> for ProcessNode {
    type Result = ();
    fn handle(&mut self, _: StopPulling, _: &mut Self::Context) {
        self.stop_pulls();
    }
}

/// At an orderly stop, once listeners committed: acknowledges everything
/// committed, so that none of it is delivered again.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Finish;

impl Handler<Finish> for ProcessNode {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Finish, _: &mut Self::Context) -> Self::Result {
        self.stop_pulls();
        let done = self.committed();
        let (counters, client) = (self.shared.counters.clone(), self.nats.client.clone());
        let earlier = std::mem::take(&mut self.acks);
        Box::pin(async move {
            // The flush sends what is written to the connection so far: the
            // acknowledgements sent in the background must be written first,
            // or those still in their loop are lost when the process exits
            // (redelivered then, but an orderly stop leaves nothing behind).
            for a in earlier {
                let _ = a.await;
            }
            send_acks(done, counters).await;
            let _ = client.flush().await;
        })
    }
}

impl Actor for ProcessNode {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_interval(ACK_EVERY, |this, _| this.acknowledge());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        self.stop_pulls();
    }
}

/// The partitions this node processes from now on.
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct Assign(pub Vec<u32>);

impl Handler<Assign> for ProcessNode {
    type Result = ();
    fn handle(&mut self, msg: Assign, _: &mut Self::Context) {
        if self.stopping {
            return;
        }
        // Partitions no longer ours: stop pulling (what is held is still
        // acknowledged once committed; the pin moves when it times out).
        self.pulls.retain(|p, pull| {
            let keep = msg.0.contains(p);
            if !keep {
                pull.abort();
                tracing::info!(partition = p, "partition released");
            }
            keep
        });
        for p in msg.0 {
            if self.pulls.contains_key(&p) {
                continue;
            }
            tracing::info!(
                partition = p,
                "pulling partition (it is processed here once the server pins this node)"
            );
            let pull = pull_partition(
                self.nats.clone(),
                self.settings.clone(),
                p,
                self.router.clone(),
                self.shared.clone(),
            );
            self.pulls.insert(p, actix::spawn(pull));
        }
        metrics::gauge!(PARTITIONS_OWNED).set(self.pulls.len() as f64);
    }
}

/// Pulls partition `p` for ever (again after any error), routing what
/// arrives.
async fn pull_partition(nats: Nats, s: Arc<ClusterSettings>, p: u32, router: Addr<Router>, shared: Arc<Shared>) {
    let (expires, heartbeat) = pull_timing(&s);
    loop {
        // Whatever another pull held of this partition (a node that died,
        // or gave the partition up, or this node's previous pull) is due
        // again `ack_wait` after it was handed out; the server hands due
        // events out before newer ones. Pulling only after that (and a
        // second of slack for the server's timer) keeps each key's events
        // in order across a takeover: the server may unpin a client the
        // moment its connection drops, well before `takeover_after`.
        tokio::time::sleep(s.ack_wait + Duration::from_secs(1)).await;
        let consumer: Result<PullConsumer, _> = match nats.js.get_stream(&s.stream).await {
            Ok(stream) => stream.get_consumer(&consumer_name(p)).await.map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        let pulled = match consumer {
            Ok(c) => c
                .stream()
                .group(GROUP)
                .max_messages_per_batch(s.max_ack_pending.min(1000))
                .expires(expires)
                .heartbeat(heartbeat)
                .messages()
                .await
                .map(|m| (c, m))
                .map_err(|e| e.to_string()),
            Err(e) => Err(e),
        };
        match pulled {
            Ok((consumer, messages)) => {
                let mut chunks = messages.ready_chunks(CHUNK);
                let mut gate = TakeoverGate::new(p);
                let mut recheck = tokio::time::interval(RECHECK_EVERY);
                // The stream carries on after an error (a missed heartbeat
                // on a busy machine, a reconnect): starting a new one would
                // give up this node's pin and stall the partition for
                // `takeover_after`. It ends only when it cannot go on.
                loop {
                    let ready = tokio::select! {
                        chunk = chunks.next() => {
                            let Some(chunk) = chunk else { break };
                            let mut ok = Vec::with_capacity(chunk.len());
                            for m in chunk {
                                match m {
                                    Ok(m) => ok.push(m),
                                    Err(e) => tracing::debug!(partition = p, error = %e, "pulling"),
                                }
                            }
                            let older = gate.admit(ok);
                            route(older, p, &router, &shared).await;
                            gate.release_if_clear(&consumer, &shared).await
                        }
                        _ = recheck.tick(), if gate.holding() => gate.release_if_clear(&consumer, &shared).await,
                    };
                    route(ready, p, &router, &shared).await;
                }
                tracing::warn!(partition = p, "the pull ended; starting over");
            }
            Err(e) => tracing::warn!(partition = p, error = %e, "cannot pull the partition; retrying"),
        }
    }
}

/// How often a held-back partition asks the server whether an earlier
/// holder's events are still unacknowledged.
const RECHECK_EVERY: Duration = Duration::from_millis(250);

/// Keeps per-key order when a partition changes hands.
///
/// Events handed to an earlier holder (a node that died, or this node's
/// previous pull) and not acknowledged are delivered again only when their
/// `ack_wait` runs out, and the server hands newer events to a new holder
/// meanwhile. So from the start of a pull, events delivered for the first
/// time are held back while the consumer counts more unacknowledged
/// messages than this node holds of the partition; redeliveries (the
/// older events) are routed at once. The server stops delivering new
/// events at `max_ack_pending`, which bounds what is held back.
struct TakeoverGate {
    partition: u32,
    /// `None` once nothing older is outstanding elsewhere.
    held_back: Option<Vec<jetstream::Message>>,
}

impl TakeoverGate {
    fn new(partition: u32) -> Self {
        TakeoverGate {
            partition,
            held_back: Some(Vec::new()),
        }
    }

    fn holding(&self) -> bool {
        self.held_back.is_some()
    }

    /// What may be routed now of what arrived; the rest is held back.
    fn admit(&mut self, messages: Vec<jetstream::Message>) -> Vec<jetstream::Message> {
        let Some(held_back) = self.held_back.as_mut() else {
            return messages;
        };
        let (older, first): (Vec<_>, Vec<_>) = messages
            .into_iter()
            .partition(|m| m.info().is_ok_and(|i| i.delivered > 1));
        held_back.extend(first);
        older
    }

    /// Everything held back, once the consumer's unacknowledged messages
    /// are all this node's.
    async fn release_if_clear(&mut self, consumer: &PullConsumer, shared: &Shared) -> Vec<jetstream::Message> {
        let Some(held_back) = self.held_back.as_ref() else {
            return Vec::new();
        };
        let mine = held_back.len()
            + shared
                .unacked
                .get(self.partition as usize)
                .map_or(0, |n| n.load(Ordering::Acquire));
        match consumer.get_info().await {
            // An acknowledgement sent but not yet applied counts as
            // another's for a moment: the release is late, never early.
            Ok(info) if info.num_ack_pending <= mine => self.held_back.take().unwrap_or_default(),
            Ok(_) => Vec::new(),
            Err(e) => {
                tracing::debug!(partition = self.partition, error = %e, "consumer info");
                Vec::new()
            }
        }
    }
}

/// How long a pull request lasts, and the heartbeat within it.
///
/// A message handed to this node is delivered again `ack_wait` after it was
/// handed out, and it was handed out at the latest when this node's last
/// pull request expired; the server moves the pin `takeover_after` after
/// that last request. With requests lasting at most a quarter of the
/// difference between the two (the rest is slack for the server's timers),
/// everything a dead node held is due again (and goes first) before its
/// partition's newer events reach the next node: per-key order holds
/// across a takeover.
pub fn pull_timing(s: &ClusterSettings) -> (Duration, Duration) {
    let room = s.takeover_after.saturating_sub(s.ack_wait) / 4;
    let expires = room.clamp(Duration::from_millis(500), Duration::from_secs(30));
    (expires, expires * 2 / 5)
}

/// Gives messages their positions and routes their events, in order.
async fn route(messages: Vec<jetstream::Message>, partition: u32, router: &Addr<Router>, shared: &Shared) {
    if messages.is_empty() {
        return;
    }
    let mut next = shared.next.lock().await;
    let mut routes = Routes::default();
    let mut n = 0;
    for m in messages {
        if m.info().is_ok_and(|i| i.delivered > 1) {
            shared.counters.redeliveries.fetch_add(1, Ordering::Relaxed);
            metrics::counter!(REDELIVERIES_TOTAL).increment(1);
        }
        match codec::decode(*next, &m.payload) {
            Ok((ev, target)) => {
                shared.held.lock().insert(*next, (partition, m));
                if let Some(n) = shared.unacked.get(partition as usize) {
                    n.fetch_add(1, Ordering::AcqRel);
                }
                // A dead letter sent back goes to its one listener.
                routes.push_one(target, Arc::new(ev));
                n += 1;
                *next += 1;
            }
            Err(e) => {
                // Not an event cxrelay wrote: delivering it again would
                // fail again.
                tracing::error!(subject = %m.subject, error = %e, "a message of the stream is not an event; dropped");
                let _ = m.ack_with(AckKind::Term).await;
            }
        }
    }
    let last = next.saturating_sub(1);
    if routes.deliver(router).await {
        shared.routed.fetch_max(last, Ordering::AcqRel);
        shared.counters.consumed.fetch_add(n, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::{ClusterConfig, ClusterSettings};

    fn settings(ack_wait: u64, takeover_after: u64) -> ClusterSettings {
        let c = ClusterConfig {
            ack_wait: Duration::from_secs(ack_wait),
            takeover_after: Duration::from_secs(takeover_after),
            ..ClusterConfig::default()
        };
        ClusterSettings::new(&c, &crate::config::Secrets::default(), Duration::from_secs(3600))
    }

    #[test]
    fn pull_requests_leave_a_dead_nodes_events_due_before_its_partition_moves() {
        for (ack_wait, takeover) in [(10, 15), (2, 8), (3, 4), (30, 120)] {
            let s = settings(ack_wait, takeover);
            let (expires, heartbeat) = pull_timing(&s);
            // Handed out by the last request at the latest, due again
            // `ack_wait` later, with slack before the pin moves.
            assert!(
                expires + s.ack_wait < s.takeover_after,
                "{ack_wait}s/{takeover}s: {expires:?}"
            );
            assert!(heartbeat < expires / 2);
        }
    }
}
