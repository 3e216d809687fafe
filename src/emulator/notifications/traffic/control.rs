//! The current traffic run, as the notifications world holds it: what was
//! asked for, how far it got, and how to stop it. Runs are started by
//! [`TrafficControl::start`] (in the traffic generator).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use serde::Serialize;

use crate::emulator::ids::uuid;
use crate::emulator::settings::notifications::TrafficRequest;

/// Namespace of correlation ids in [`uuid`].
pub(super) const RUN_IDS: u64 = 0x7A4F;

#[derive(Debug, Default)]
/// How far a run got; shared with its generator thread.
pub(super) struct Progress {
    pub(super) emitted: AtomicU64,
    pub(super) stop: AtomicBool,
    pub(super) finished: AtomicBool,
}

/// The run under way (or the last one).
#[derive(Debug)]
pub(super) struct Run {
    pub(super) id: u64,
    pub(super) request: TrafficRequest,
    pub(super) start_ms: i64,
    pub(super) progress: Arc<Progress>,
}

/// The current traffic run.
#[derive(Debug, Default)]
pub struct TrafficControl {
    pub(super) current: Mutex<Option<Run>>,
    pub(super) runs: AtomicU64,
    pub(super) configured_started: AtomicBool,
}

/// What `GET /_emulator/traffic` answers.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficStatus {
    /// The run (0: none yet).
    pub run: u64,
    /// Whether it is still sending.
    pub running: bool,
    /// Events emitted so far.
    pub emitted: u64,
    /// How it was asked for.
    pub request: Option<TrafficRequest>,
    /// Time of its first lifecycle.
    pub start_ms: Option<i64>,
}

impl TrafficControl {
    /// Stops the current run.
    pub fn stop(&self) {
        if let Some(run) = self.current.lock().as_ref() {
            run.progress.stop.store(true, Ordering::Release);
        }
    }

    /// The current run.
    pub fn status(&self) -> TrafficStatus {
        match self.current.lock().as_ref() {
            Some(r) => TrafficStatus {
                run: r.id,
                running: !r.progress.finished.load(Ordering::Acquire),
                emitted: r.progress.emitted.load(Ordering::Acquire),
                request: Some(r.request.clone()),
                start_ms: Some(r.start_ms),
            },
            None => TrafficStatus {
                run: 0,
                running: false,
                emitted: 0,
                request: None,
                start_ms: None,
            },
        }
    }

    /// The `CorrelationId` of event `index` of run `run`.
    pub fn correlation_id(&self, seed: u64, run: u64, index: u64) -> String {
        uuid(seed, &[RUN_IDS, run, index])
    }
}
