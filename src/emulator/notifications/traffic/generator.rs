//! Running traffic: a thread per run renders events at the run's rate and
//! hands each channel's socket its batch, following subscription and
//! socket changes; events for a channel without an open socket are noted
//! as missed.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use cxrelay_actors::event::now_ms;

use super::control::{Progress, Run, TrafficControl};
use super::lifecycles::Lifecycles;
use super::render::Renderer;
use crate::emulator::notifications::channel_table::Routing;
use crate::emulator::notifications::socket_messages::Outgoing;
use crate::emulator::settings::notifications::TrafficRequest;
use crate::emulator::state::EmulatorState;

/// Events rendered per generator step (and at most per socket batch).
const BATCH: usize = 256;
/// Lifecycles in flight at once unless the request says otherwise.
const DEFAULT_IN_FLIGHT: usize = 8;

impl TrafficControl {
    /// Starts a run (stopping the current one); answers its number.
    pub fn start(&self, state: &Arc<EmulatorState>, request: TrafficRequest) -> u64 {
        let id = self.runs.fetch_add(1, Ordering::AcqRel) + 1;
        let start_ms = request.start_ms.unwrap_or_else(now_ms);
        let progress = Arc::new(Progress::default());
        let run = Run {
            id,
            request: request.clone(),
            start_ms,
            progress: progress.clone(),
        };
        if let Some(old) = self.current.lock().replace(run) {
            old.progress.stop.store(true, Ordering::Release);
        }
        let weak = Arc::downgrade(state);
        let spawned = std::thread::Builder::new()
            .name("emulator-traffic".into())
            .spawn(move || generate(weak, id, request, start_ms, progress));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "emulator: cannot start the traffic generator");
        }
        tracing::info!(run = id, "emulator: traffic started");
        id
    }

    /// Starts the configured traffic once, when the first channel exists.
    pub(in crate::emulator::notifications) fn start_configured(&self, state: &Arc<EmulatorState>) {
        let Some(request) = state.notifications.settings.traffic.clone() else {
            return;
        };
        if !self.configured_started.swap(true, Ordering::AcqRel) && self.current.lock().is_none() {
            self.start(state, request);
        }
    }
}

/// The generator thread: renders events at the run's rate and hands each
/// socket its batch; follows subscription and socket changes.
fn generate(state: Weak<EmulatorState>, run: u64, request: TrafficRequest, start_ms: i64, progress: Arc<Progress>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "emulator: cannot run the traffic generator");
            progress.finished.store(true, Ordering::Release);
            return;
        }
    };
    rt.block_on(generate_async(state, run, request, start_ms, progress.clone()));
    progress.finished.store(true, Ordering::Release);
    tracing::info!(
        run,
        emitted = progress.emitted.load(Ordering::Acquire),
        "emulator: traffic run ended"
    );
}

async fn generate_async(
    state: Weak<EmulatorState>,
    run: u64,
    request: TrafficRequest,
    start_ms: i64,
    progress: Arc<Progress>,
) {
    let Some(seed) = state.upgrade().map(|s| s.settings.seed) else {
        return;
    };
    let rate = request.rate.filter(|r| *r > 0.0 && r.is_finite());
    let limit = request.count.unwrap_or(u64::MAX);
    let mut lifecycles = Lifecycles::new(seed, start_ms, request.in_flight.unwrap_or(DEFAULT_IN_FLIGHT));
    let renderer = Renderer {
        seed,
        run,
        pad_to: request.payload_bytes,
    };
    let mut routing = Routing::default();
    let mut generation = u64::MAX;
    let mut emitted = 0u64;
    // Pacing: event `n` is due `n / rate` after `clock`, which stands still
    // while nobody is subscribed (no burst of backlog when someone is).
    let mut clock = Instant::now();
    let mut paced_from = 0u64;
    let mut frame = Vec::with_capacity(4096);
    let mut batches: Vec<Vec<(u64, String)>> = Vec::new();
    while emitted < limit && !progress.stop.load(Ordering::Acquire) {
        let Some(st) = state.upgrade() else { break };
        let n = &st.notifications;
        let g = n.generation();
        if g != generation {
            generation = g;
            routing = n.routing(request.channel.as_deref(), request.topics.as_deref());
            lifecycles.set_universe(&routing.topics);
            batches = routing.targets.iter().map(|_| Vec::new()).collect();
        }
        drop(st);
        let any_socket = routing.targets.iter().any(|t| t.events.is_some());
        if lifecycles.universe.is_empty() || (rate.is_none() && !any_socket) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            clock = Instant::now();
            paced_from = emitted;
            continue;
        }
        let due = match rate {
            Some(r) => paced_from + (clock.elapsed().as_secs_f64() * r) as u64,
            None => emitted + BATCH as u64,
        }
        .min(limit);
        if due <= emitted {
            let r = rate.unwrap_or(1000.0);
            let next_at = clock + Duration::from_secs_f64((emitted + 1 - paced_from) as f64 / r);
            tokio::time::sleep_until(next_at.into()).await;
            continue;
        }
        let k = ((due - emitted) as usize).min(BATCH);
        for _ in 0..k {
            let Some((slot, step, topic, at)) = lifecycles.next() else {
                break;
            };
            let Some(life) = lifecycles.slots[slot].as_ref() else {
                continue;
            };
            renderer.render(emitted, life, step, &routing.topics[topic], at, &mut frame);
            let capacity = frame.len() + 64;
            let text = String::from_utf8(std::mem::replace(&mut frame, Vec::with_capacity(capacity)))
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            if let Some((last, others)) = routing.routes[topic].split_last() {
                for t in others {
                    batches[*t].push((emitted, text.clone()));
                }
                batches[*last].push((emitted, text));
            }
            emitted += 1;
        }
        progress.emitted.store(emitted, Ordering::Release);
        for (target, batch) in routing.targets.iter().zip(batches.iter_mut()) {
            if batch.is_empty() {
                continue;
            }
            let events = std::mem::replace(batch, Vec::with_capacity(BATCH));
            match &target.events {
                Some(tx) => {
                    if let Err(e) = tx.send(Outgoing { run, events }).await {
                        target.record.missed(run, e.0.events.iter().map(|e| e.0));
                    }
                }
                None => target.record.missed(run, events.iter().map(|e| e.0)),
            }
        }
    }
    progress.emitted.store(emitted, Ordering::Release);
}
