//! Listeners: each a sink actor on its own thread, supervised, subscribed
//! to the router under its name, with its transforms on the shared pool.

use std::sync::Arc;

use actix::prelude::*;
use cxrelay_actors::pool::{PoolConfig, WorkerPool};
use cxrelay_actors::supervision::{Child, ChildSpec, Shutdown, Supervise, Supervisor};
use cxrelay_actors::{ComponentKind, Deliver, QueueStats, Registry, Router, Subscribe};
use parking_lot::Mutex;

use super::StartError;
use crate::config::{Config, ListenerConfig, ListenerTransform, OrderBy, Secret, Secrets};
use crate::sinks::telemetry::ListenerStatus;
use crate::sinks::{Flusher, SinkContext, SinkOptions};
use crate::store::PutDeadLetters;
use crate::transform::{Masker, TransformSpec, TransformWorker, Transformer};

/// A running listener, as shutdown needs it.
pub(super) struct ListenerHandle {
    pub name: String,
    /// `block` listeners must commit at shutdown; lossy ones get a short
    /// grace and may lose what they hold (they declared so).
    pub lossless: bool,
    /// The current sink's flush (replaced when it restarts).
    pub flush: Arc<Mutex<Option<Flusher>>>,
}

/// What every listener is started with.
pub(super) struct ListenerParts<'a> {
    pub registry: &'a Registry,
    pub router: &'a Addr<Router>,
    pub supervisor: &'a Addr<Supervisor>,
    pub secrets: &'a Secrets,
    pub dead_letters: Option<Recipient<PutDeadLetters>>,
    pub pool: Option<WorkerPool<TransformWorker>>,
    /// Where sinks keep their own state (`<data_dir>/sinks`).
    pub state_dir: std::path::PathBuf,
    pub chunk_size: usize,
}

/// The transform pool, when some listener transforms.
pub(super) fn transform_pool(config: &Config, registry: &Registry) -> Option<WorkerPool<TransformWorker>> {
    config.listener.iter().any(|l| l.transform.is_some()).then(|| {
        let component = registry.register("transform-pool", ComponentKind::Pool, false);
        WorkerPool::start(
            PoolConfig {
                name: "transform".into(),
                workers: config.transform.workers,
                queue_bound: 4,
                recycle_after: config.transform.recycle_after_batches,
                component: Some(component),
            },
            TransformWorker::default,
        )
    })
}

/// What the supervisor watches for a listener.
struct SinkChild(Recipient<Deliver>, Recipient<Shutdown>);

impl Child for SinkChild {
    fn is_alive(&self) -> bool {
        self.0.connected()
    }
    fn stop(&self) {
        // Control path: a one-off message.
        self.1.do_send(Shutdown);
    }
}

/// Starts a listener's sink on `thread` (sinks do blocking I/O),
/// supervised, and subscribes it to the router. A restarted sink subscribes
/// again under the same name; a `block` listener's queue (and the batch that
/// was in flight) waits for it.
pub(super) async fn start_listener(
    l: &ListenerConfig,
    stats: Option<Arc<QueueStats>>,
    parts: &ListenerParts<'_>,
    thread: &Arbiter,
) -> Result<ListenerHandle, StartError> {
    let sink_error = |message: String| StartError::Sink {
        listener: l.name.clone(),
        message,
    };
    // Listeners register under their own kind: the supervisor stops them by
    // it at shutdown, after the sources.
    let component = parts.registry.register(&l.name, ComponentKind::Listener, true);
    component.set_status(&ListenerStatus {
        sink: l.sink.kind(),
        when_full: l.when_full.as_str(),
    });
    let transformer = match (&l.transform, &parts.pool) {
        (Some(t), Some(pool)) => Some(Transformer::new(
            pool.clone(),
            transform_spec(t, parts.secrets.component(&l.name, "transform.mask_key_env")),
            parts.chunk_size,
        )),
        _ => None,
    };
    let common = &l.sink.common;
    let defaults = SinkOptions::default();
    let options = SinkOptions {
        batch_events: common.batch_events,
        batch_interval: common.batch_interval,
        max_retries: common.max_retries,
        dead_letters: parts.dead_letters.clone(),
        order_by_time: l.order_by == Some(OrderBy::Time),
        transformer,
        ..defaults
    };
    let cx = SinkContext {
        listener: l.name.clone(),
        options,
        component,
        thread: thread.handle(),
        secrets: parts.secrets.under(&l.name, "sink."),
        state_dir: parts.state_dir.clone(),
    };
    let mut start = l.sink.spec.builder().build(cx).map_err(|e| sink_error(e.to_string()))?;
    let flush: Arc<Mutex<Option<Flusher>>> = Arc::default();
    let latest = flush.clone();
    let (name, topics, capacity, when_full, batch) =
        (l.name.clone(), l.topics.clone(), l.mailbox, l.when_full, l.batch);
    let router = parts.router.clone();
    let spec = ChildSpec::new(l.name.clone(), ComponentKind::Listener, move || {
        let h = start();
        *latest.lock() = Some(h.flush);
        // Control path: a subscription is a one-off message, and the router
        // handles it before any later publish.
        router.do_send(Subscribe {
            name: name.clone(),
            patterns: topics.clone(),
            recipient: h.deliver.clone(),
            capacity,
            when_full,
            batch_max: batch,
            keep_when_gone: when_full.is_lossless(),
            stats: stats.clone(),
        });
        SinkChild(h.deliver, h.shutdown)
    });
    parts
        .supervisor
        .send(Supervise(spec))
        .await
        .map_err(|e| sink_error(e.to_string()))?;
    Ok(ListenerHandle {
        name: l.name.clone(),
        lossless: l.when_full.is_lossless(),
        flush,
    })
}

/// A listener's transform settings as a spec.
fn transform_spec(t: &ListenerTransform, key: Option<&Secret>) -> TransformSpec {
    TransformSpec {
        flatten: t.flatten,
        timestamps: t.timestamps,
        mask: (!t.mask.is_empty()).then(|| {
            // Presets were checked when the config was loaded.
            let fields = crate::transform::pii::expand(&t.mask).unwrap_or_else(|_| t.mask.clone());
            Masker::new(t.mask_mode, &fields, key.map(|k| k.expose().as_bytes()))
        }),
        rename: t.rename.clone(),
        drop: t.drop.clone(),
        select: t.select.clone(),
    }
}
