//! What every sink kind implements, the keys every sink takes, and how a
//! sink actor is started (again at each restart) for a listener.

use std::sync::Arc;
use std::time::Duration;

use actix::dev::ArbiterHandle;
use actix::prelude::*;
use cxrelay_actors::registry::Component;
use cxrelay_actors::supervision::Shutdown;
use cxrelay_actors::Deliver;
use serde::{Deserialize, Serialize};

use super::{FlushSignal, Flusher, SinkActor, SinkError, SinkOptions, SinkWriter};
use crate::config::{duration, KeyProblem, KeyProblems, Secret};

/// Keys every sink takes, whatever its kind.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkCommon {
    /// Write a batch after this many events...
    #[serde(default = "default_batch_events")]
    pub batch_events: usize,
    /// ...or once the oldest pending event is this old.
    #[serde(default = "default_batch_interval", with = "duration")]
    pub batch_interval: Duration,
    /// After this many failed attempts a batch goes to dead letters
    /// (absent: retry for ever, holding the queue).
    pub max_retries: Option<u32>,
}

impl Default for SinkCommon {
    fn default() -> Self {
        SinkCommon {
            batch_events: default_batch_events(),
            batch_interval: default_batch_interval(),
            max_retries: None,
        }
    }
}

fn default_batch_events() -> usize {
    1000
}
fn default_batch_interval() -> Duration {
    Duration::from_millis(200)
}

impl SinkCommon {
    /// Applies a kind's batching defaults to the keys the file left out
    /// (`set` tells which keys were written).
    pub fn with_kind_defaults(mut self, kind: Option<(usize, Duration)>, set: impl Fn(&str) -> bool) -> Self {
        if let Some((events, interval)) = kind {
            if !set("batch_events") {
                self.batch_events = events;
            }
            if !set("batch_interval") {
                self.batch_interval = interval;
            }
        }
        self
    }

    /// Problems of the common keys.
    pub fn check(&self) -> Vec<KeyProblem> {
        let mut p = KeyProblems::new();
        p.check(self.batch_events > 0, "batch_events", "must be at least 1");
        p.check(!self.batch_interval.is_zero(), "batch_interval", "must be more than 0");
        p.into_vec()
    }
}

/// A sink kind's config: checked when the file is loaded, described by
/// `cxrelay check`, and built into a sink actor for its listener.
pub trait SinkBuilder: std::fmt::Debug {
    /// Problems of this table on its own (keys relative to it).
    fn check(&self) -> Vec<KeyProblem>;

    /// The environment variables holding its secrets, by the key naming them.
    fn secret_vars(&self) -> Vec<(&'static str, &str)> {
        Vec::new()
    }

    /// Where it writes, in a few words for `cxrelay check`.
    fn describe(&self) -> String;

    /// Its own defaults for `batch_events` and `batch_interval`, where the
    /// common ones do not suit it (an object store wants an object per few
    /// thousand events, not one every 200 ms). Keys set in the file win.
    fn default_batching(&self) -> Option<(usize, Duration)> {
        None
    }

    /// A local directory it writes into, if any (shown by `cxrelay demo`).
    fn output_dir(&self) -> Option<&std::path::Path> {
        None
    }

    /// Makes its relative paths relative to `base` (the config file's
    /// directory), so that where cxrelay is started from does not matter.
    fn resolve_paths(&mut self, _base: &std::path::Path) {}

    /// Prepares the sink (failing fast on an unusable target) and answers
    /// what starts its actor, at start and at every restart.
    fn build(&self, cx: SinkContext) -> Result<SinkStarter, SinkError>;
}

/// What a sink is built with.
pub struct SinkContext {
    /// The listener it serves.
    pub listener: String,
    /// Batching, retries, dead letters, transforms.
    pub options: SinkOptions,
    /// The listener's health entry.
    pub component: Arc<Component>,
    /// The thread its actor runs on (sinks do blocking I/O).
    pub thread: ArbiterHandle,
    /// Its secrets, by the key naming them.
    pub secrets: Vec<(String, Secret)>,
    /// Where a sink keeps state of its own (`<data_dir>/sinks`), beside the
    /// journal it must agree with.
    pub state_dir: std::path::PathBuf,
}

impl SinkContext {
    /// The secret named by `key`.
    pub fn secret(&self, key: &str) -> Option<Secret> {
        self.secrets.iter().find(|(k, _)| k == key).map(|(_, s)| s.clone())
    }

    /// A starter for a [`SinkActor`] around the writers `make` builds (a
    /// fresh one at every restart, and after a panic inside a write).
    pub fn starter<W: SinkWriter>(
        self,
        make: impl Fn() -> Result<W, SinkError> + Clone + Send + 'static,
    ) -> SinkStarter {
        let SinkContext {
            options,
            component,
            thread,
            ..
        } = self;
        // One per listener: shutdown's flush reaches whichever instance runs.
        let signal = FlushSignal::default();
        Box::new(move || {
            let (options, component, make) = (options.clone(), component.clone(), make.clone());
            let actor_signal = signal.clone();
            let addr = SinkActor::start_in_arbiter(&thread, move |_| {
                SinkActor::new(options, component, make).with_flush_signal(actor_signal)
            });
            SinkHandles::of(addr, signal.clone())
        })
    }
}

/// Starts a listener's sink actor; called again at each restart.
pub type SinkStarter = Box<dyn FnMut() -> SinkHandles + Send>;

/// The addresses of a running sink actor, whatever its writer type.
pub struct SinkHandles {
    /// Where the router delivers batches.
    pub deliver: Recipient<Deliver>,
    /// Commits what is pending (the final flush at shutdown).
    pub flush: Flusher,
    /// Stops it on purpose.
    pub shutdown: Recipient<Shutdown>,
}

impl SinkHandles {
    /// The handles of a started sink actor listening for flushes on
    /// `signal` (see [`SinkActor::with_flush_signal`]).
    pub fn of<W: SinkWriter>(addr: Addr<SinkActor<W>>, signal: FlushSignal) -> Self {
        SinkHandles {
            deliver: addr.clone().recipient(),
            flush: Flusher {
                recipient: addr.clone().recipient(),
                signal,
            },
            shutdown: addr.recipient(),
        }
    }
}
