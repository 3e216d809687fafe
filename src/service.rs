//! The running service: wires the store, sources, router, listeners and the
//! HTTP server together, and shuts them down in order.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::ArbiterHandle;
use actix::prelude::*;
use actix_web::dev::ServerHandle;
use cxrelay_actors::registry::{Component, ComponentState};
use cxrelay_actors::router::{ListenerDirectory, RouterStats};
use cxrelay_actors::supervision::{Child, ChildSpec, Shutdown, StillStopping, StopChildren, Supervise, Supervisor};
use cxrelay_actors::{Deliver, Pattern, QueueStats, Registry, Router, Subscribe};
use parking_lot::Mutex;

use crate::config::{Config, ListenerConfig, Loaded, OrderBy, Secrets, SinkConfig, SinkKind, SourceConfig, SourceKind};
use crate::emulator::EmulatorHandle;
use crate::genesys::{Credentials, GenesysOrg, Hosts, RequestBudget, RetryPolicy, TokenProvider, TokenSettings};
use crate::http::{self, AppState};
use crate::ingest::Ingest;
use crate::sinks::{FileWriter, FlushNow, HttpWriter, SinkActor, SinkOptions, SinkWriter, StdoutWriter};
use crate::sources::generator::{self, Generator, GeneratorSettings};
use crate::sources::webhook::{IpAllowList, Verifier, WebhookSettings, WebhookSource};
use crate::store::replay::replay_unacknowledged;
use crate::store::store_actor::SyncStore;
use crate::store::{AppendQueue, DurableListener, JournalWriter, PutDeadLetters, Store, StoreDb, StoreError};
use crate::telemetry;
use crate::transform::{Masker, TransformSpec, TransformWorker, Transformer};
use cxrelay_actors::pool::{PoolConfig, WorkerPool};

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The configuration or its secrets are wrong.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// The HTTP server could not bind.
    #[error("cannot listen on {listen}: {source}")]
    Listen {
        /// The configured address.
        listen: String,
        /// Why.
        source: std::io::Error,
    },
    /// A sink could not be set up.
    #[error("listener `{listener}`: {message}")]
    Sink {
        /// The listener.
        listener: String,
        /// Why.
        message: String,
    },
    /// The store could not be opened or read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The Genesys org could not be set up.
    #[error("genesys: {0}")]
    Genesys(String),
    /// A source could not be set up.
    #[error("source `{source_name}`: {message}")]
    Source {
        /// The source.
        source_name: String,
        /// Why.
        message: String,
    },
}

struct ListenerHandle {
    name: String,
    /// `block` listeners must commit at shutdown; lossy ones get a short
    /// grace and may lose what they hold (they declared so).
    lossless: bool,
    /// The current sink's flush address (replaced when it restarts).
    flush: Arc<Mutex<Option<Recipient<FlushNow>>>>,
}

/// The journal and its actors, when the journal is on.
struct Journal {
    db: Arc<StoreDb>,
    store: Addr<Store>,
    routed_upto: Arc<AtomicU64>,
}

/// The Genesys org the sources call, and the emulator when cxrelay runs
/// one itself.
struct Genesys {
    org: GenesysOrg,
    emulator: Option<EmulatorHandle>,
}

/// A running cxrelay.
pub struct Service {
    config: Config,
    registry: Registry,
    router: Addr<Router>,
    router_stats: Arc<RouterStats>,
    directory: ListenerDirectory,
    supervisor: Addr<Supervisor>,
    ingest: Ingest,
    journal: Option<Journal>,
    listeners: Vec<ListenerHandle>,
    webhooks: Vec<Arc<WebhookSource>>,
    http: ServerHandle,
    http_addr: SocketAddr,
    threads: Vec<Arbiter>,
    genesys: Option<Genesys>,
}

/// How sources are named in the supervisor (their component kind).
const SOURCE: &str = "source";
const LISTENER: &str = "listener";
/// How long a lossy listener may take to commit at shutdown.
const LOSSY_GRACE: Duration = Duration::from_secs(2);

impl Service {
    /// Starts everything the config describes. Must run inside an actix
    /// system.
    pub async fn start(loaded: Loaded) -> Result<Service, StartError> {
        let secrets = loaded.secrets()?;
        Self::start_with(loaded.config, secrets).await
    }

    /// Starts from a config and already-resolved secrets.
    ///
    /// Order: router, store, HTTP, listeners, replay of unacknowledged
    /// events, then sources (readiness waits for all of it).
    pub async fn start_with(config: Config, secrets: Secrets) -> Result<Service, StartError> {
        telemetry::install_tls_provider();
        let registry = Registry::new();
        let mut threads = Vec::new();

        let router_thread = Arbiter::new();
        let router_impl = Router::new();
        let router_stats = router_impl.stats();
        let directory = router_impl.directory();
        let router = Router::start_in_arbiter(&router_thread.handle(), move |_| router_impl);
        threads.push(router_thread);
        registry
            .register("router", "router", true)
            .set_state(ComponentState::Running);

        let supervisor = Supervisor::new(registry.clone(), Duration::from_millis(100)).start();

        // Durable listeners keep their counters (and acknowledged position)
        // across restarts of their sink actor.
        let durable: Vec<(&ListenerConfig, Arc<QueueStats>)> = config
            .listener
            .iter()
            .filter(|l| l.when_full.is_lossless())
            .map(|l| (l, QueueStats::new(l.mailbox)))
            .collect();

        let (ingest, journal) = if config.service.journal {
            let (ingest, journal) = open_journal(&config, &registry, &router, &durable, &mut threads).await?;
            (ingest, Some(journal))
        } else {
            (Ingest::direct(router.clone()), None)
        };
        let dead_letters = journal.as_ref().map(|j| j.store.clone().recipient::<PutDeadLetters>());
        let webhooks = webhook_sources(&config, &secrets, &ingest, dead_letters.clone(), &registry)?;
        let notification_sources = crate::sources::notifications::NotificationSources::default();

        let state = AppState {
            registry: registry.clone(),
            listeners: directory.clone(),
            router_stats: router_stats.clone(),
            started: Instant::now(),
            prometheus: telemetry::prometheus(),
            admin_token: secrets.admin_token.clone(),
            store: journal.as_ref().map(|j| j.store.clone()),
            webhooks: webhooks.clone(),
            notifications: notification_sources.clone(),
        };
        let (http_addr, http) =
            http::start(&config.http.listen, config.http.workers, state).map_err(|source| StartError::Listen {
                listen: config.http.listen.clone(),
                source,
            })?;
        tracing::info!(addr = %http_addr, admin = secrets.admin_token.is_some(), "http server listening on {http_addr}");

        let pool = config.listener.iter().any(|l| l.transform.is_some()).then(|| {
            let component = registry.register("transform-pool", "pool", false);
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
        });
        let mut listeners = Vec::new();
        for l in &config.listener {
            let thread = Arbiter::new();
            let stats = durable.iter().find(|(d, _)| d.name == l.name).map(|(_, s)| s.clone());
            let transformer = match (&l.transform, &pool) {
                (Some(t), Some(pool)) => Some(Transformer::new(
                    pool.clone(),
                    transform_spec(t, secrets.mask_keys.get(&l.name)),
                    config.transform.chunk_size,
                )),
                _ => None,
            };
            let sink = SinkSetup {
                listener: l,
                stats,
                dead_letters: dead_letters.clone(),
                authorization: secrets.sink_authorization.get(&l.name).cloned(),
                transformer,
            };
            let flush = start_listener(sink, &registry, &router, &supervisor, &thread).await?;
            threads.push(thread);
            listeners.push(ListenerHandle {
                name: l.name.clone(),
                lossless: l.when_full.is_lossless(),
                flush,
            });
        }
        // Subscriptions are in place (the router handles messages in order).
        let _ = router.send(cxrelay_actors::router::ListListeners).await;

        if let Some(j) = &journal {
            let patterns: Vec<(String, Vec<Pattern>)> = durable
                .iter()
                .map(|(l, _)| {
                    let p = l.topics.iter().filter_map(|t| Pattern::parse(t).ok()).collect();
                    (l.name.clone(), p)
                })
                .collect();
            replay_unacknowledged(&j.db, &router, &patterns).await?;
            // Everything journaled so far has now been routed.
            j.routed_upto
                .fetch_max(j.db.next_seq().saturating_sub(1), Ordering::AcqRel);
        }

        let genesys = start_genesys(&config, &secrets, &registry, &mut threads).await?;
        let cx = SourceContext {
            ingest: ingest.clone(),
            db: journal.as_ref().map(|j| j.db.clone()),
            registry: registry.clone(),
            org: genesys.as_ref().map(|g| g.org.clone()),
            dead_letters: dead_letters.clone(),
            notifications: notification_sources,
        };
        for s in config
            .source
            .iter()
            .filter(|s| s.enabled && s.kind != SourceKind::Webhook)
        {
            start_source(s, &cx, &supervisor).await?;
        }
        for w in &webhooks {
            w.open();
        }
        Ok(Service {
            config,
            registry,
            router,
            router_stats,
            directory,
            supervisor,
            ingest,
            journal,
            listeners,
            webhooks,
            http,
            http_addr,
            threads,
            genesys,
        })
    }

    /// The address of the emulator cxrelay runs in-process, if it runs one
    /// (`genesys.environment = "emulator"` without `api_url`).
    pub fn emulator(&self) -> Option<&EmulatorHandle> {
        self.genesys.as_ref().and_then(|g| g.emulator.as_ref())
    }

    /// The bound HTTP address.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// The router, for embedders registering their own listeners.
    pub fn router(&self) -> Addr<Router> {
        self.router.clone()
    }

    /// The ingest path, for embedders with their own sources.
    pub fn ingest(&self) -> Ingest {
        self.ingest.clone()
    }

    /// Component health.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Router counters.
    pub fn router_stats(&self) -> &Arc<RouterStats> {
        &self.router_stats
    }

    /// The store actor, when the journal is on.
    pub fn store(&self) -> Option<Addr<Store>> {
        self.journal.as_ref().map(|j| j.store.clone())
    }

    /// Supervises an embedder's actor like cxrelay's own components: it is
    /// restarted with backoff, reported in `/status`, and gates readiness.
    pub async fn supervise(&self, spec: ChildSpec) {
        let _ = self.supervisor.send(Supervise(spec)).await;
    }

    /// Orderly shutdown: stop intake, let the journal route what it
    /// committed, drain listener queues, commit sinks, save positions, stop
    /// the HTTP server. Answers whether everything finished in time.
    pub async fn shutdown(self) -> bool {
        let deadline = Instant::now() + self.config.service.shutdown_timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        tracing::info!("shutting down: stopping sources");
        for w in &self.webhooks {
            w.close();
        }
        let _ = self.supervisor.send(StopChildren(Some(SOURCE.into()))).await;
        let mut clean = true;
        // A source hands over what it read as it stops (a notification
        // socket's last frames exist nowhere else): wait for each to go.
        loop {
            let stopping = self.supervisor.send(StillStopping).await.unwrap_or(0);
            if stopping == 0 {
                break;
            }
            if left().is_zero() {
                clean = false;
                tracing::warn!(sources = stopping, "sources did not stop before the shutdown timeout");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Whatever sources handed over before they stopped gets committed
        // and routed before the queues drain.
        while self.ingest.outstanding() > 0 && !left().is_zero() && self.ingest.is_available() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !self.directory.lossless_drained(left()).await {
            clean = false;
            tracing::warn!("listener queues did not drain before the shutdown timeout");
        }
        for l in &self.listeners {
            let Some(flush) = l.flush.lock().clone() else {
                continue;
            };
            let wait = if l.lossless { left() } else { left().min(LOSSY_GRACE) };
            let outcome = match tokio::time::timeout(wait, flush.send(FlushNow)).await {
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(e))) => format!("final commit failed: {e}"),
                _ => "final commit did not finish in time".to_string(),
            };
            if l.lossless {
                clean = false;
                tracing::error!(listener = %l.name, "{outcome}");
            } else {
                tracing::warn!(listener = %l.name, "{outcome}; its pending events are dropped (when_full is lossy)");
            }
        }
        let _ = self.supervisor.send(StopChildren(Some(LISTENER.into()))).await;
        if let Some(j) = &self.journal {
            if let Ok(Err(e)) | Err(e) = j.store.send(SyncStore).await.map_err(|e| e.to_string()) {
                clean = false;
                tracing::error!(error = %e, "saving positions at shutdown failed");
            }
        }
        self.http.stop(true).await;
        if let Some(e) = self.genesys.and_then(|g| g.emulator) {
            e.stop().await;
        }
        for t in &self.threads {
            t.stop();
        }
        tracing::info!(clean, "shutdown complete");
        clean
    }
}

/// Opens the store, starts the journal writer and the store actor on their
/// own thread, and returns the journaled ingest path.
async fn open_journal(
    config: &Config,
    registry: &Registry,
    router: &Addr<Router>,
    durable: &[(&ListenerConfig, Arc<QueueStats>)],
    threads: &mut Vec<Arbiter>,
) -> Result<(Ingest, Journal), StartError> {
    let component = registry.register("store", "store", true);
    let db = Arc::new(StoreDb::open(
        &config.service.data_dir,
        config.service.idempotency_window.as_millis() as i64,
        config.service.idempotency_cache_keys,
    )?);
    component.set_detail("path", db.path().display().to_string());
    let names: Vec<String> = durable.iter().map(|(l, _)| l.name.clone()).collect();
    for gone in db.forget_listeners(&names)? {
        tracing::warn!(listener = %gone, "listener is no longer configured; its position is forgotten");
    }
    let saved = db.acks()?;
    let (queue, rx) = AppendQueue::new(config.service.journal_queue);
    let routed_upto = Arc::new(AtomicU64::new(0));
    let thread = Arbiter::new();
    {
        let (db, router, routed, c, q) = (
            db.clone(),
            router.clone(),
            routed_upto.clone(),
            component.clone(),
            queue.clone(),
        );
        JournalWriter::start_in_arbiter(&thread.handle(), move |_| {
            JournalWriter::new(db, router, routed, c, &q, rx)
        });
    }
    let listeners: Vec<DurableListener> = durable
        .iter()
        .map(|(l, stats)| DurableListener {
            name: l.name.clone(),
            stats: stats.clone(),
        })
        .collect();
    let store = {
        let (db, routed, c, q) = (db.clone(), routed_upto.clone(), component.clone(), queue.clone());
        Store::start_in_arbiter(&thread.handle(), move |_| {
            Store::new(db, routed, listeners, &saved, c, q)
        })
    };
    threads.push(thread);
    Ok((Ingest::journaled(queue, db.clone()), Journal { db, store, routed_upto }))
}

fn sink_options(
    sink: &SinkConfig,
    order_by: Option<OrderBy>,
    dead_letters: Option<Recipient<PutDeadLetters>>,
) -> SinkOptions {
    let d = SinkOptions::default();
    SinkOptions {
        batch_events: sink.batch_events.unwrap_or(d.batch_events),
        batch_interval: sink.batch_interval.unwrap_or(d.batch_interval),
        max_retries: sink.max_retries,
        dead_letters,
        order_by_time: order_by == Some(OrderBy::Time),
        ..d
    }
}

/// The addresses of a running sink actor, whatever its writer type.
struct SinkHandles {
    deliver: Recipient<Deliver>,
    flush: Recipient<FlushNow>,
    shutdown: Recipient<Shutdown>,
}

impl SinkHandles {
    fn of<W: SinkWriter>(addr: Addr<SinkActor<W>>) -> Self {
        SinkHandles {
            deliver: addr.clone().recipient(),
            flush: addr.clone().recipient(),
            shutdown: addr.recipient(),
        }
    }
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

type SinkStarter = Box<dyn FnMut() -> SinkHandles + Send>;

/// Everything needed to build one listener's sink.
struct SinkSetup<'a> {
    listener: &'a ListenerConfig,
    stats: Option<Arc<QueueStats>>,
    dead_letters: Option<Recipient<PutDeadLetters>>,
    authorization: Option<crate::config::Secret>,
    transformer: Option<Transformer>,
}

fn sink_starter(
    setup: &SinkSetup<'_>,
    component: Arc<Component>,
    thread: ArbiterHandle,
) -> Result<SinkStarter, StartError> {
    let l = setup.listener;
    let opts = SinkOptions {
        transformer: setup.transformer.clone(),
        ..sink_options(&l.sink, l.order_by, setup.dead_letters.clone())
    };
    let sink_error = |message: String| StartError::Sink {
        listener: l.name.clone(),
        message,
    };
    Ok(match l.sink.kind {
        SinkKind::File => {
            let dir = l
                .sink
                .path
                .clone()
                .ok_or_else(|| sink_error("file sink without a path".into()))?;
            let rotate = l.sink.rotate_bytes.unwrap_or(128 << 20);
            let fsync = l.sink.fsync.unwrap_or(true);
            // Fail fast on an unusable directory rather than at first write.
            FileWriter::open(&dir, rotate, fsync).map_err(|e| sink_error(e.to_string()))?;
            Box::new(move || {
                let (opts, component, dir) = (opts.clone(), component.clone(), dir.clone());
                SinkHandles::of(SinkActor::start_in_arbiter(&thread, move |_| {
                    SinkActor::new(opts, component, move || FileWriter::open(&dir, rotate, fsync))
                }))
            })
        }
        SinkKind::Stdout => Box::new(move || {
            let (opts, component) = (opts.clone(), component.clone());
            SinkHandles::of(SinkActor::start_in_arbiter(&thread, move |_| {
                SinkActor::new(opts, component, || Ok(StdoutWriter::default()))
            }))
        }),
        SinkKind::Http => {
            let url = l
                .sink
                .url
                .clone()
                .ok_or_else(|| sink_error("http sink without a url".into()))?;
            let timeout = l.sink.timeout.unwrap_or(Duration::from_secs(10));
            let auth = setup.authorization.clone();
            Box::new(move || {
                let (opts, component, url, auth) = (opts.clone(), component.clone(), url.clone(), auth.clone());
                SinkHandles::of(SinkActor::start_in_arbiter(&thread, move |_| {
                    SinkActor::new(opts, component, move || {
                        Ok(HttpWriter::new(url.clone(), timeout, auth.clone()))
                    })
                }))
            })
        }
    })
}

/// Starts a listener's sink on its own thread (sinks do blocking I/O),
/// supervised, and subscribes it to the router. A restarted sink subscribes
/// again under the same name; a `block` listener's queue (and the batch that
/// was in flight) waits for it. Returns where the final flush goes.
async fn start_listener(
    setup: SinkSetup<'_>,
    registry: &Registry,
    router: &Addr<Router>,
    supervisor: &Addr<Supervisor>,
    thread: &Arbiter,
) -> Result<Arc<Mutex<Option<Recipient<FlushNow>>>>, StartError> {
    let l = setup.listener;
    let component = registry.register(&l.name, LISTENER, true);
    component.set_detail("sink", l.sink.kind.as_str());
    component.set_detail("when_full", l.when_full.as_str());
    let mut start = sink_starter(&setup, component, thread.handle())?;
    let flush: Arc<Mutex<Option<Recipient<FlushNow>>>> = Arc::default();
    let latest = flush.clone();
    let (name, topics, capacity, when_full, batch) =
        (l.name.clone(), l.topics.clone(), l.mailbox, l.when_full, l.batch);
    let stats = setup.stats;
    let router = router.clone();
    let spec = ChildSpec::new(l.name.clone(), LISTENER, move || {
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
    supervisor.send(Supervise(spec)).await.map_err(|e| StartError::Sink {
        listener: l.name.clone(),
        message: e.to_string(),
    })?;
    Ok(flush)
}

/// A listener's transform settings as a spec.
fn transform_spec(t: &crate::config::ListenerTransform, key: Option<&crate::config::Secret>) -> TransformSpec {
    TransformSpec {
        flatten: t.flatten,
        timestamps: t.timestamps,
        mask: (!t.mask.is_empty()).then(|| Masker::new(t.mask_mode, &t.mask, key.map(|k| k.expose().as_bytes()))),
        rename: t.rename.clone(),
        drop: t.drop.clone(),
        select: t.select.clone(),
    }
}

/// Builds the webhook sources (closed until the service is ready).
fn webhook_sources(
    config: &Config,
    secrets: &Secrets,
    ingest: &Ingest,
    dead_letters: Option<Recipient<PutDeadLetters>>,
    registry: &Registry,
) -> Result<Vec<Arc<WebhookSource>>, StartError> {
    let mut out = Vec::new();
    for s in config
        .source
        .iter()
        .filter(|s| s.enabled && s.kind == SourceKind::Webhook)
    {
        let refuse = |message: String| StartError::Source {
            source_name: s.name.clone(),
            message,
        };
        let path = s.path.clone().ok_or_else(|| refuse("no path".into()))?;
        let verifier = match (secrets.webhook_secrets.get(&s.name), s.allow_unsigned) {
            (Some(secret), _) => Some(Verifier::new(
                secret.expose().as_bytes(),
                s.signature_prefix.as_deref().unwrap_or("sha256="),
                s.signature_encoding.unwrap_or_default(),
            )),
            (None, Some(true)) => None,
            (None, _) => {
                return Err(refuse(
                    "refusing to start without a secret (set secret_env, or allow_unsigned = true)".into(),
                ))
            }
        };
        let allow = IpAllowList::parse(s.allow_ips.as_deref().unwrap_or_default()).map_err(refuse)?;
        let settings = WebhookSettings {
            name: s.name.clone(),
            path,
            verifier,
            signature_header: s
                .signature_header
                .clone()
                .unwrap_or_else(|| "X-Hub-Signature-256".into()),
            max_body_bytes: s.max_body_bytes.unwrap_or(512_000),
            allow,
            ack_timeout: s.ack_timeout.unwrap_or(Duration::from_secs(5)),
        };
        let component = registry.register(&s.name, SOURCE, true);
        component.set_detail("kind", "webhook");
        out.push(WebhookSource::new(
            settings,
            ingest.clone(),
            dead_letters.clone(),
            component,
        ));
    }
    Ok(out)
}

/// What a source may need to run.
pub struct SourceContext {
    /// Where it hands events in.
    pub ingest: Ingest,
    /// The store, for its checkpoint (none with the journal off).
    pub db: Option<Arc<StoreDb>>,
    /// Component health.
    pub registry: Registry,
    /// The Genesys org, when `[genesys]` is configured and a source needs it.
    pub org: Option<GenesysOrg>,
    /// Where input that cannot become events is kept.
    pub dead_letters: Option<Recipient<PutDeadLetters>>,
    /// Running notifications sources (the admin API controls them).
    pub notifications: crate::sources::notifications::NotificationSources,
}

impl SourceContext {
    /// A bulk source's way out: ingest, dead letters, its health entry.
    pub fn delivery(&self, component: Arc<Component>) -> crate::sources::delivery::Delivery {
        crate::sources::delivery::Delivery {
            ingest: self.ingest.clone(),
            dead_letters: self.dead_letters.clone(),
            component,
        }
    }

    /// The org, or an error naming the source that needs it.
    pub fn org_for(&self, s: &SourceConfig) -> Result<GenesysOrg, StartError> {
        self.org.clone().ok_or_else(|| StartError::Source {
            source_name: s.name.clone(),
            message: "needs a `[genesys]` section".into(),
        })
    }
}

/// Starts the token provider (and the in-process emulator, when the
/// environment is `emulator` without an `api_url`) if a source needs the
/// Genesys API.
async fn start_genesys(
    config: &Config,
    secrets: &Secrets,
    registry: &Registry,
    threads: &mut Vec<Arbiter>,
) -> Result<Option<Genesys>, StartError> {
    let Some(g) = &config.genesys else {
        return Ok(None);
    };
    if !config.source.iter().any(|s| s.enabled && s.kind.needs_genesys()) {
        return Ok(None);
    }
    let refuse = |message: String| StartError::Genesys(message);
    let mut emulator = None;
    let hosts = if g.runs_emulator_in_process() {
        let settings = config.emulator.clone().unwrap_or_default();
        let e = crate::emulator::start_in_thread(settings, "127.0.0.1:0")
            .map_err(|e| refuse(format!("cannot start the bundled emulator: {e}")))?;
        let component = registry.register("emulator", "emulator", false);
        component.set_state(ComponentState::Running);
        component.set_detail("url", e.url());
        tracing::info!(url = %e.url(), "bundled emulator running in-process at {}", e.url());
        let hosts = Hosts::single(&e.url());
        emulator = Some(e);
        hosts
    } else if g.is_emulator() {
        Hosts::resolve(
            "emulator",
            g.api_url.as_deref(),
            g.login_url.as_deref().or(g.api_url.as_deref()),
        )
    } else {
        Hosts::resolve(&g.environment, g.api_url.as_deref(), g.login_url.as_deref())
    };
    let (client_id, client_secret) = match (&secrets.genesys, g.is_emulator()) {
        (Some((id, secret)), _) => (id.expose().to_string(), secret.clone()),
        (None, true) => {
            let s = config.emulator.clone().unwrap_or_default();
            (s.client_id, crate::config::Secret::new(s.client_secret))
        }
        (None, false) => return Err(refuse("no OAuth client credentials".into())),
    };
    let component = registry.register("genesys-auth", "auth", true);
    component.set_detail("login", hosts.login.clone());
    let thread = Arbiter::new();
    let tokens = {
        let (hosts, component) = (hosts.clone(), component.clone());
        let creds = Credentials {
            client_id,
            client_secret,
        };
        TokenProvider::start_in_arbiter(&thread.handle(), move |_| {
            TokenProvider::new(hosts, creds, TokenSettings::default(), component)
        })
    };
    threads.push(thread);
    let org = GenesysOrg {
        hosts,
        tokens,
        budget: RequestBudget::new(g.requests_per_minute),
        retry: RetryPolicy::default(),
    };
    Ok(Some(Genesys { org, emulator }))
}

/// Starts a source under the supervisor.
async fn start_source(s: &SourceConfig, cx: &SourceContext, supervisor: &Addr<Supervisor>) -> Result<(), StartError> {
    let component = cx.registry.register(&s.name, SOURCE, true);
    component.set_detail("kind", s.kind.as_str());
    let spec = match s.kind {
        // Webhooks are routes of the HTTP server, not actors.
        SourceKind::Webhook => return Ok(()),
        // One supervised actor per channel, started by the source.
        SourceKind::Notifications => {
            use crate::sources::notifications::{Backfill, GapHandler, NotificationsSource, RecordOnly, SourceParts};
            let gaps: Arc<dyn GapHandler> = if s.backfill == Some(true) {
                let queue = start_backfill(s, cx, supervisor).await?;
                Arc::new(Backfill::new(queue))
            } else {
                Arc::new(RecordOnly)
            };
            let parts = SourceParts {
                org: cx.org_for(s)?,
                ingest: cx.ingest.clone(),
                dead_letters: cx.dead_letters.clone(),
                gaps,
                registry: cx.registry.clone(),
                supervisor: supervisor.clone(),
            };
            let source = NotificationsSource::start(s, parts, component)
                .await
                .map_err(|e| StartError::Source {
                    source_name: s.name.clone(),
                    message: e.to_string(),
                })?;
            cx.notifications.insert(source);
            return Ok(());
        }
        SourceKind::Generator => {
            let settings = GeneratorSettings {
                name: s.name.clone(),
                topics: s.topics.clone().unwrap_or_default(),
                rate: s.rate.unwrap_or(100.0),
                count: s.count,
                payload_bytes: s.payload_bytes.unwrap_or(512),
                keys: s.keys.unwrap_or(100),
            };
            let ingest = cx.ingest.clone();
            let db = cx.db.clone();
            ChildSpec::new(s.name.clone(), SOURCE, move || {
                // Resume after the last committed event (read again on every
                // restart of the actor).
                let start_at = db
                    .as_ref()
                    .map(|db| generator::parse_checkpoint(db.checkpoint(&settings.name).ok().flatten()))
                    .unwrap_or(0);
                Generator::new(
                    settings.clone(),
                    ingest.clone(),
                    component.clone(),
                    start_at,
                    db.is_some(),
                )
                .start()
            })
        }
        SourceKind::AnalyticsJob => analytics_job_spec(s, cx, component)?,
        SourceKind::Export => export_spec(s, cx, component)?,
        SourceKind::Recordings => recordings_spec(s, cx, component)?,
    };
    let _ = supervisor.send(Supervise(spec)).await;
    Ok(())
}

/// A bulk source's arbiter: page parsing and body reading stay off the
/// supervisor's thread.
fn bulk_thread() -> actix::dev::ArbiterHandle {
    Arbiter::new().handle()
}

/// `kind = "analytics_job"`, on its own arbiter.
fn analytics_job_spec(
    s: &SourceConfig,
    cx: &SourceContext,
    component: Arc<Component>,
) -> Result<ChildSpec, StartError> {
    use crate::sources::analytics_job::{self as aj, AnalyticsJobSettings, Schedule};
    let refuse = |message: String| StartError::Source {
        source_name: s.name.clone(),
        message,
    };
    let schedule = match (&s.interval, s.every) {
        (Some(i), _) => {
            Schedule::Fixed(crate::genesys::interval::Interval::parse(i).map_err(|e| refuse(e.to_string()))?)
        }
        (None, Some(every)) => Schedule::Rolling {
            every,
            lag: s.lag.unwrap_or(Duration::from_secs(300)),
            start: s
                .start
                .as_deref()
                .map(crate::genesys::interval::parse_iso_ms)
                .transpose()
                .map_err(|e| refuse(e.to_string()))?,
        },
        (None, None) => return Err(refuse("needs `interval` or `every`".into())),
    };
    let settings = AnalyticsJobSettings {
        name: s.name.clone(),
        schedule,
        page_size: s.page_size.unwrap_or(1000),
        prefetch: s.prefetch.unwrap_or(2),
        poll: AnalyticsJobSettings::poll_policy(
            s.poll_interval.unwrap_or(Duration::from_secs(2)),
            s.poll_max_interval.unwrap_or(Duration::from_secs(30)),
        ),
        max_job_attempts: s.max_job_attempts.unwrap_or(3),
        topic: s.topic.clone().unwrap_or_else(|| aj::DEFAULT_TOPIC.into()),
        gaps: None,
    };
    analytics_job_child(settings, cx.org_for(s)?, cx, component)
}

/// An analytics job source as a supervised child on its own arbiter.
fn analytics_job_child(
    settings: crate::sources::analytics_job::AnalyticsJobSettings,
    org: GenesysOrg,
    cx: &SourceContext,
    component: Arc<Component>,
) -> Result<ChildSpec, StartError> {
    use crate::sources::analytics_job::AnalyticsJob;
    component.set_detail("schedule", format!("{:?}", settings.schedule));
    let delivery = cx.delivery(component);
    let db = cx.db.clone();
    let thread = bulk_thread();
    let name = settings.name.clone();
    Ok(ChildSpec::new(name, SOURCE, move || {
        let (settings, org, delivery, db) = (settings.clone(), org.clone(), delivery.clone(), db.clone());
        AnalyticsJob::start_in_arbiter(&thread, move |_| AnalyticsJob::new(settings, org, delivery, db))
    }))
}

/// A notifications source's backfill job (`<source>/backfill`): an
/// analytics job source whose windows are the source's gaps. Answers the
/// queue the gaps go to.
async fn start_backfill(
    s: &SourceConfig,
    cx: &SourceContext,
    supervisor: &Addr<Supervisor>,
) -> Result<crate::sources::analytics_job::GapQueue, StartError> {
    use crate::sources::analytics_job::{self as aj, AnalyticsJobSettings, GapQueue, Schedule};
    let queue = GapQueue::default();
    let name = format!("{}/backfill", s.name);
    let component = cx.registry.register(&name, SOURCE, true);
    component.set_detail("kind", "backfill");
    let settings = AnalyticsJobSettings {
        name,
        schedule: Schedule::Gaps,
        page_size: 1000,
        prefetch: 2,
        poll: AnalyticsJobSettings::poll_policy(Duration::from_secs(2), Duration::from_secs(30)),
        max_job_attempts: 3,
        topic: s.backfill_topic.clone().unwrap_or_else(|| aj::DEFAULT_TOPIC.into()),
        gaps: Some(queue.clone()),
    };
    let spec = analytics_job_child(settings, cx.org_for(s)?, cx, component)?;
    let _ = supervisor.send(Supervise(spec)).await;
    Ok(queue)
}

/// `kind = "recordings"`, on its own arbiter.
fn recordings_spec(s: &SourceConfig, cx: &SourceContext, component: Arc<Component>) -> Result<ChildSpec, StartError> {
    use crate::sources::recordings::batch_api::PollSettings;
    use crate::sources::recordings::{self as rec, RecordingRef, RecordingsSettings, RecordingsSource};
    let refuse = |message: String| StartError::Source {
        source_name: s.name.clone(),
        message,
    };
    let recordings = s
        .recordings
        .iter()
        .flatten()
        .map(|r| RecordingRef::parse(r).ok_or_else(|| refuse(format!("`{r}` is not conversationId/recordingId"))))
        .collect::<Result<Vec<_>, _>>()?;
    let output = s.output.clone().ok_or_else(|| refuse("needs `output`".into()))?;
    std::fs::create_dir_all(&output).map_err(|e| refuse(format!("cannot create {}: {e}", output.display())))?;
    let mut poll = PollSettings::default();
    poll.backoff.initial = s.poll_interval.unwrap_or(poll.backoff.initial);
    poll.backoff.max = s.poll_max_interval.unwrap_or(poll.backoff.max);
    let settings = RecordingsSettings {
        name: s.name.clone(),
        recordings,
        output,
        topic: s.topic.clone().unwrap_or_else(|| rec::DEFAULT_TOPIC.into()),
        max_resumes: s.max_resumes.unwrap_or(10),
        idle_timeout: s.idle_timeout.unwrap_or(Duration::from_secs(30)),
        poll,
    };
    let org = cx.org_for(s)?;
    let delivery = cx.delivery(component);
    let db = cx.db.clone();
    let thread = bulk_thread();
    Ok(ChildSpec::new(s.name.clone(), SOURCE, move || {
        let (settings, org, delivery, db) = (settings.clone(), org.clone(), delivery.clone(), db.clone());
        RecordingsSource::start_in_arbiter(&thread, move |_| RecordingsSource::new(settings, org, delivery, db))
    }))
}

/// `kind = "export"`, on its own arbiter.
fn export_spec(s: &SourceConfig, cx: &SourceContext, component: Arc<Component>) -> Result<ChildSpec, StartError> {
    use crate::sources::export_download::{ExportDownload, ExportSettings, UrlOrigin};
    let origin = match (&s.url, &s.download_id) {
        (_, Some(id)) => UrlOrigin::Downloads(id.clone()),
        (Some(u), None) => UrlOrigin::Direct(u.clone()),
        (None, None) => {
            return Err(StartError::Source {
                source_name: s.name.clone(),
                message: "needs `url` or `download_id`".into(),
            })
        }
    };
    let settings = ExportSettings {
        name: s.name.clone(),
        origin,
        format: s.format.unwrap_or_default(),
        topic: s.topic.clone().unwrap_or_else(|| format!("exports.{}", s.name)),
        key_field: s.key_field.clone().unwrap_or_else(|| "conversationId".into()),
        time_field: s.time_field.clone().unwrap_or_else(|| "conversationStart".into()),
        batch_records: s.batch_records.unwrap_or(500),
        max_resumes: s.max_resumes.unwrap_or(10),
        idle_timeout: s.idle_timeout.unwrap_or(Duration::from_secs(30)),
    };
    component.set_detail(
        "origin",
        settings.origin.name().split('?').next().unwrap_or_default().to_string(),
    );
    let org = cx.org.clone();
    let delivery = cx.delivery(component);
    let db = cx.db.clone();
    let thread = bulk_thread();
    Ok(ChildSpec::new(s.name.clone(), SOURCE, move || {
        let (settings, org, delivery, db) = (settings.clone(), org.clone(), delivery.clone(), db.clone());
        ExportDownload::start_in_arbiter(&thread, move |_| ExportDownload::new(settings, org, delivery, db))
    }))
}
