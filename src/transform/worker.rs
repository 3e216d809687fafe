//! The pool worker that runs transforms on chunks of events.

use std::sync::Arc;

use cxrelay_actors::pool::Worker;
use cxrelay_actors::Event;

use super::TransformSpec;

/// A chunk of one listener's events and what to do to them.
pub struct TransformJob {
    /// The listener's transforms.
    pub spec: Arc<TransformSpec>,
    /// The events, in order.
    pub events: Vec<Arc<Event>>,
}

/// Per event: the transformed event, or why it was refused.
pub type TransformOutput = Vec<Result<Arc<Event>, String>>;

/// Runs transforms; holds no state worth keeping, but is recycled like any
/// worker so that whatever a transform leaks is bounded.
#[derive(Default)]
pub struct TransformWorker;

impl Worker for TransformWorker {
    type Job = TransformJob;
    type Output = TransformOutput;

    fn run(&mut self, job: &TransformJob) -> TransformOutput {
        job.events
            .iter()
            .map(|ev| {
                job.spec
                    .apply(&ev.payload)
                    .map(|p| Arc::new(ev.with_payload(p.into())))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }
}
