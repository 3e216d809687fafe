//! The running service: wires sources, router, listeners and the HTTP
//! server together, and shuts them down in order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::ArbiterHandle;
use actix::prelude::*;
use actix_web::dev::ServerHandle;
use cxrelay_actors::registry::{Component, ComponentState};
use cxrelay_actors::router::{Drain, RouterStats};
use cxrelay_actors::supervision::{
    Child, ChildSpec, RestartPolicy, Shutdown, StopChildren, Supervise, Supervisor,
};
use cxrelay_actors::{Deliver, Registry, Router, Subscribe};
use parking_lot::Mutex;

use crate::config::{
    Config, ListenerConfig, Loaded, Secrets, SinkConfig, SinkKind, SourceConfig, SourceKind,
};
use crate::http::{self, AppState};
use crate::ingest::Ingest;
use crate::sinks::{FileWriter, FlushNow, SinkActor, SinkOptions, SinkWriter, StdoutWriter};
use crate::sources::generator::{Generator, GeneratorSettings};
use crate::telemetry;

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
}

struct ListenerHandle {
    name: String,
    /// The current sink's flush address (replaced when it restarts).
    flush: Arc<Mutex<Option<Recipient<FlushNow>>>>,
}

/// A running cxrelay.
pub struct Service {
    config: Config,
    registry: Registry,
    router: Addr<Router>,
    router_stats: Arc<RouterStats>,
    supervisor: Addr<Supervisor>,
    ingest: Ingest,
    listeners: Vec<ListenerHandle>,
    http: ServerHandle,
    http_addr: SocketAddr,
    threads: Vec<Arbiter>,
}

/// How sources are named in the supervisor (their component kind).
const SOURCE: &str = "source";
const LISTENER: &str = "listener";

impl Service {
    /// Starts everything the config describes. Must run inside an actix
    /// system.
    pub async fn start(loaded: Loaded) -> Result<Service, StartError> {
        let secrets = loaded.secrets()?;
        Self::start_with(loaded.config, secrets).await
    }

    /// Starts from a config and already-resolved secrets.
    pub async fn start_with(config: Config, _secrets: Secrets) -> Result<Service, StartError> {
        let registry = Registry::new();
        let mut threads = Vec::new();

        let router_thread = Arbiter::new();
        let router_impl = Router::new();
        let router_stats = router_impl.stats();
        let router = Router::start_in_arbiter(&router_thread.handle(), move |_| router_impl);
        threads.push(router_thread);
        registry
            .register("router", "router", true)
            .set_state(ComponentState::Running);

        let supervisor = Supervisor::new(registry.clone(), Duration::from_millis(100)).start();
        let ingest = Ingest::new(router.clone());

        let mut listeners = Vec::new();
        for l in &config.listener {
            let thread = Arbiter::new();
            let flush = start_listener(l, &registry, &router, &supervisor, &thread).await?;
            threads.push(thread);
            listeners.push(ListenerHandle {
                name: l.name.clone(),
                flush,
            });
        }
        // Subscriptions are in place (the router handles messages in order):
        // sources may start.
        let _ = router.send(cxrelay_actors::router::ListListeners).await;

        for s in config.source.iter().filter(|s| s.enabled) {
            start_source(s, &ingest, &registry, &supervisor).await;
        }

        let state = AppState {
            registry: registry.clone(),
            router: router.clone(),
            router_stats: router_stats.clone(),
            started: Instant::now(),
            prometheus: telemetry::prometheus(),
        };
        let (http_addr, http) = http::start(&config.http.listen, config.http.workers, state)
            .map_err(|source| StartError::Listen {
                listen: config.http.listen.clone(),
                source,
            })?;
        tracing::info!(addr = %http_addr, "http server listening on {http_addr}");
        Ok(Service {
            config,
            registry,
            router,
            router_stats,
            supervisor,
            ingest,
            listeners,
            http,
            http_addr,
            threads,
        })
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

    /// Supervises an embedder's actor like cxrelay's own components: it is
    /// restarted with backoff, reported in `/status`, and gates readiness.
    pub async fn supervise(&self, spec: ChildSpec) {
        let _ = self.supervisor.send(Supervise(spec)).await;
    }

    /// Orderly shutdown: stop intake, drain listener queues, commit sinks,
    /// stop the HTTP server. Answers whether everything drained in time.
    pub async fn shutdown(self) -> bool {
        let deadline = Instant::now() + self.config.service.shutdown_timeout;
        tracing::info!("shutting down: stopping sources");
        let _ = self
            .supervisor
            .send(StopChildren(Some(SOURCE.into())))
            .await;
        let remaining = deadline.saturating_duration_since(Instant::now());
        let drained = self
            .router
            .send(Drain { timeout: remaining })
            .await
            .unwrap_or(false);
        if !drained {
            tracing::warn!("listener queues did not drain before the shutdown timeout");
        }
        let mut clean = drained;
        for l in &self.listeners {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let Some(flush) = l.flush.lock().clone() else {
                continue;
            };
            match tokio::time::timeout(remaining, flush.send(FlushNow)).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => {
                    clean = false;
                    tracing::error!(listener = %l.name, error = %e, "final commit failed");
                }
                _ => {
                    clean = false;
                    tracing::error!(listener = %l.name, "final commit did not finish in time");
                }
            }
        }
        let _ = self
            .supervisor
            .send(StopChildren(Some(LISTENER.into())))
            .await;
        self.http.stop(true).await;
        for t in &self.threads {
            t.stop();
        }
        tracing::info!(clean, "shutdown complete");
        clean
    }
}

fn sink_options(sink: &SinkConfig) -> SinkOptions {
    let d = SinkOptions::default();
    SinkOptions {
        batch_events: sink.batch_events.unwrap_or(d.batch_events),
        batch_interval: sink.batch_interval.unwrap_or(d.batch_interval),
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

fn sink_starter(
    l: &ListenerConfig,
    component: Arc<Component>,
    thread: ArbiterHandle,
) -> Result<SinkStarter, StartError> {
    let opts = sink_options(&l.sink);
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
                    SinkActor::new(opts, component, move || {
                        FileWriter::open(&dir, rotate, fsync)
                    })
                }))
            })
        }
        SinkKind::Stdout => Box::new(move || {
            let (opts, component) = (opts.clone(), component.clone());
            SinkHandles::of(SinkActor::start_in_arbiter(&thread, move |_| {
                SinkActor::new(opts, component, || Ok(StdoutWriter::default()))
            }))
        }),
    })
}

/// Starts a listener's sink on its own thread (sinks do blocking I/O),
/// supervised, and subscribes it to the router; a restarted sink
/// subscribes again. Returns where the final flush goes.
async fn start_listener(
    l: &ListenerConfig,
    registry: &Registry,
    router: &Addr<Router>,
    supervisor: &Addr<Supervisor>,
    thread: &Arbiter,
) -> Result<Arc<Mutex<Option<Recipient<FlushNow>>>>, StartError> {
    let component = registry.register(&l.name, LISTENER, true);
    component.set_detail("sink", l.sink.kind.as_str());
    component.set_detail("when_full", l.when_full.as_str());
    let mut start = sink_starter(l, component, thread.handle())?;
    let flush: Arc<Mutex<Option<Recipient<FlushNow>>>> = Arc::default();
    let latest = flush.clone();
    let (name, topics, capacity, when_full, batch) = (
        l.name.clone(),
        l.topics.clone(),
        l.mailbox,
        l.when_full,
        l.batch,
    );
    let router = router.clone();
    supervisor
        .send(Supervise(ChildSpec::new(
            l.name.clone(),
            LISTENER,
            move || {
                let h = start();
                *latest.lock() = Some(h.flush);
                // Control path: a subscription is a one-off message, and the
                // router handles it before any later publish.
                router.do_send(Subscribe {
                    name: name.clone(),
                    patterns: topics.clone(),
                    recipient: h.deliver.clone(),
                    capacity,
                    when_full,
                    batch_max: batch,
                });
                SinkChild(h.deliver, h.shutdown)
            },
        )))
        .await
        .map_err(|e| StartError::Sink {
            listener: l.name.clone(),
            message: e.to_string(),
        })?;
    Ok(flush)
}

/// Starts a source under the supervisor.
async fn start_source(
    s: &SourceConfig,
    ingest: &Ingest,
    registry: &Registry,
    supervisor: &Addr<Supervisor>,
) {
    let component = registry.register(&s.name, SOURCE, true);
    component.set_detail("kind", s.kind.as_str());
    let spec = match s.kind {
        SourceKind::Generator => {
            let settings = GeneratorSettings {
                name: s.name.clone(),
                topics: s.topics.clone().unwrap_or_default(),
                rate: s.rate.unwrap_or(100.0),
                count: s.count,
                payload_bytes: s.payload_bytes.unwrap_or(512),
                keys: s.keys.unwrap_or(100),
            };
            let ingest = ingest.clone();
            ChildSpec::new(s.name.clone(), SOURCE, move || {
                Generator::new(settings.clone(), ingest.clone(), component.clone(), 0).start()
            })
        }
    };
    let _ = supervisor
        .send(Supervise(spec.policy(RestartPolicy::default())))
        .await;
}
