//! The running service: starts the store, router, HTTP server, listeners
//! and sources in order, and shuts them down in order. It never looks at a
//! component's kind: each source and sink builds itself (see
//! `sources::registry` and `sinks::registry`).

mod cluster;
mod genesys;
mod journal;
mod listeners;
mod shutdown;

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::dev::ServerHandle;
use cxrelay_actors::registry::ComponentState;
use cxrelay_actors::router::{ListenerDirectory, RouterStats};
use cxrelay_actors::supervision::{ChildSpec, Supervise, Supervisor};
use cxrelay_actors::{ComponentKind, Pattern, QueueStats, Registry, Router};

use crate::config::{Config, ListenerConfig, Loaded, Secrets};
#[cfg(feature = "emulator")]
use crate::emulator::EmulatorHandle;
use crate::http::{self, AppState, IngressRoutes};
use crate::ingest::Ingest;
use crate::sources::SourceContext;
use crate::store::replay::replay_unacknowledged;
use crate::store::{Store, StoreError};
use crate::telemetry;
use genesys::Genesys;
use journal::Journal;
use listeners::{ListenerHandle, ListenerParts};

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
    /// Cluster mode could not start.
    #[error("cluster: {0}")]
    Cluster(String),
    /// A source could not be set up.
    #[error("source `{source_name}`: {message}")]
    Source {
        /// The source.
        source_name: String,
        /// Why.
        message: String,
    },
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
    ingress: IngressRoutes,
    http: ServerHandle,
    http_addr: SocketAddr,
    threads: Vec<Arbiter>,
    /// Kept for the emulator it may run (stopped last).
    #[cfg_attr(not(feature = "emulator"), allow(dead_code))]
    genesys: Option<Genesys>,
    /// Cluster mode's parts (`[cluster]`).
    cluster: Option<cluster::ClusterRuntime>,
}

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
        let router_handle = router_thread.handle();
        let router = Router::start_in_arbiter(&router_handle, move |_| router_impl);
        threads.push(router_thread);
        registry
            .register("router", ComponentKind::Router, true)
            .set_state(ComponentState::Running);

        // Not ready until every part is in place: a sender must not see a
        // webhook path missing (404) because its source has not started yet.
        let startup = registry.register("startup", ComponentKind::Service, true);
        let supervisor = Supervisor::new(registry.clone(), Duration::from_millis(100)).start();

        // Durable listeners keep their counters (and acknowledged position)
        // across restarts of their sink actor.
        let durable: Vec<(&ListenerConfig, Arc<QueueStats>)> = config
            .listener
            .iter()
            .filter(|l| l.when_full.is_lossless())
            .map(|l| (l, QueueStats::new(l.mailbox)))
            .collect();

        let mut cluster = cluster::connect_cluster(&config, &secrets, &registry).await?;
        let processes = cluster
            .as_ref()
            .is_none_or(|(_, c)| c.settings.has(crate::cluster::Role::Process));
        let (ingest, journal, letters) = if let Some((ingest, _)) = &cluster {
            // The stream is the journal; a processing node keeps its
            // listeners' dead letters.
            let letters = match ingest.as_cluster() {
                Some(c) if processes => {
                    Some(journal::open_dead_letters(&config, &registry, c.clone(), &mut threads).await?)
                }
                _ => None,
            };
            (ingest.clone(), None, letters)
        } else if config.service.journal {
            let (ingest, journal) =
                journal::open_journal(&config, &registry, &router, &router_handle, &durable).await?;
            let store = journal.store.clone();
            (ingest, Some(journal), Some(store))
        } else {
            (Ingest::direct(router.clone()), None, None)
        };
        let dead_letters = letters.as_ref().map(|s| s.clone().recipient());
        let ingress = IngressRoutes::default();
        let notifications = crate::sources::notifications::NotificationSources::default();

        let state = AppState {
            registry: registry.clone(),
            listeners: directory.clone(),
            router_stats: router_stats.clone(),
            started: Instant::now(),
            prometheus: telemetry::prometheus(),
            admin_token: secrets.admin_token.clone(),
            store: letters.clone(),
            ingress: ingress.clone(),
            notifications: notifications.clone(),
            ingest_stats: ingest.stats().clone(),
            topology: Arc::new(http::topology::Topology::of(&config)),
        };
        let (http_addr, http) = http::start(&config.http, state).map_err(|source| StartError::Listen {
            listen: config.http.listen.clone(),
            source,
        })?;
        tracing::info!(addr = %http_addr, admin = secrets.admin_token.is_some(), "http server listening on {http_addr}");

        let parts = ListenerParts {
            registry: &registry,
            router: &router,
            supervisor: &supervisor,
            secrets: &secrets,
            dead_letters: dead_letters.clone(),
            pool: listeners::transform_pool(&config, &registry),
            state_dir: config.service.data_dir.join("sinks"),
            chunk_size: config.transform.chunk_size,
        };
        let mut listeners = Vec::new();
        // An ingest-only node runs no listeners: processing nodes do.
        for l in config.listener.iter().filter(|_| processes) {
            let thread = Arbiter::new();
            let stats = durable.iter().find(|(d, _)| d.name == l.name).map(|(_, s)| s.clone());
            listeners.push(listeners::start_listener(l, stats, &parts, &thread).await?);
            threads.push(thread);
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

        let mut cluster = cluster.take().map(|(_, c)| c);
        if let Some(c) = &mut cluster {
            let stats: Vec<Arc<QueueStats>> = durable.iter().map(|(_, s)| s.clone()).collect();
            c.start_nodes(&config, &router, &stats, &mut threads);
        }
        let genesys = genesys::start_genesys(&config, &secrets, &registry, &supervisor, &mut threads).await?;
        let cx = SourceContext {
            ingest: ingest.clone(),
            db: journal.as_ref().map(|j| j.db.clone()),
            registry: registry.clone(),
            org: genesys.as_ref().map(|g| g.org.clone()),
            dead_letters,
            supervisor: supervisor.clone(),
            secrets: Arc::new(secrets),
            ingress: ingress.clone(),
            notifications,
        };
        if let Some(c) = &cluster {
            c.start_sources(&config, &cx).await?;
        }
        for s in config.source.iter().filter(|s| s.enabled && cluster.is_none()) {
            s.spec
                .builder()
                .start(&s.name, &cx)
                .await
                .map_err(|e| StartError::Source {
                    source_name: s.name.clone(),
                    message: e.to_string(),
                })?;
        }
        // Listeners are subscribed and the journal replayed: pushed events
        // can be accepted now.
        ingress.open_all();
        startup.set_state(ComponentState::Running);
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
            ingress,
            http,
            http_addr,
            threads,
            genesys,
            cluster,
        })
    }

    /// The address of the emulator cxrelay runs in-process, if it runs one
    /// (`genesys.environment = "emulator"` without `api_url`).
    #[cfg(feature = "emulator")]
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
}
