use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use actix::prelude::*;

/// CPU work done in batches on the pool.
pub trait Worker: 'static {
    /// A batch of input.
    type Job: Send + Sync + 'static;
    /// The result of a batch.
    type Output: Send + 'static;
    /// Processes one batch. A panic here is caught: the worker is replaced
    /// by a fresh one and the batch is retried once.
    fn run(&mut self, job: &Self::Job) -> Self::Output;
}

/// The actor that owns one worker's state.
pub(super) struct WorkerActor<W: Worker> {
    // Boxed so that worker types need not be `Unpin`.
    worker: Box<W>,
}

impl<W: Worker> WorkerActor<W> {
    pub(super) fn new(worker: W) -> Self {
        WorkerActor {
            worker: Box::new(worker),
        }
    }
}

impl<W: Worker> Actor for WorkerActor<W> {
    type Context = Context<Self>;
}

/// Runs one batch.
pub(super) struct Run<W: Worker>(pub(super) Arc<W::Job>);

impl<W: Worker> Message for Run<W> {
    type Result = Result<W::Output, String>;
}

impl<W: Worker> Handler<Run<W>> for WorkerActor<W> {
    type Result = Result<W::Output, String>;

    fn handle(&mut self, msg: Run<W>, _: &mut Self::Context) -> Self::Result {
        let worker = &mut *self.worker;
        catch_unwind(AssertUnwindSafe(|| worker.run(&msg.0))).map_err(panic_message)
    }
}

pub(super) fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}
