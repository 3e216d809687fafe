//! The HTTP server: health, metrics, status and the status page, the
//! admin API, and the routes sources serve (webhook ingress).

pub mod admin;
mod health;
mod ingress;
pub(crate) mod metrics_export;
pub mod process;
mod status;
mod status_page;
pub mod topology;

pub use ingress::{Ingress, IngressRoutes};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use cxrelay_actors::router::{ListenerDirectory, RouterStats};
use cxrelay_actors::Registry;

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    /// Component health.
    pub registry: Registry,
    /// The router's listeners (read without messaging the router).
    pub listeners: ListenerDirectory,
    /// Router counters.
    pub router_stats: Arc<RouterStats>,
    /// When the service started.
    pub started: Instant,
    /// The Prometheus renderer.
    pub prometheus: metrics_exporter_prometheus::PrometheusHandle,
    /// The admin bearer token (admin API disabled without one).
    pub admin_token: Option<crate::config::Secret>,
    /// The store actor, when the journal is on.
    pub store: Option<actix::Addr<crate::store::Store>>,
    /// Routes sources serve (webhooks), looked up by path.
    pub ingress: IngressRoutes,
    /// Notifications sources (runtime control through the admin API).
    pub notifications: crate::sources::notifications::NotificationSources,
    /// What ingest accepted, by source.
    pub ingest_stats: crate::ingest::IngestStats,
    /// Sources -> router -> listeners -> sinks, as configured.
    pub topology: Arc<topology::Topology>,
}

/// Starts the server as `[http]` says; returns the bound address and a
/// handle to stop it.
pub fn start(http: &crate::config::HttpConfig, state: AppState) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let ingress = web::Data::new(state.ingress.clone());
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .app_data(ingress.clone())
            .default_service(web::to(ingress::dispatch))
            .route("/", web::get().to(status_page::page))
            .route("/health/live", web::get().to(health::live))
            .route("/health/ready", web::get().to(health::ready))
            .route("/metrics", web::get().to(metrics_export::metrics))
            .route("/status", web::get().to(status::status))
            .service(admin::scope())
    })
    // Signals are the service's to handle, in order (see service.rs).
    .disable_signals()
    .workers(http.workers)
    .max_connections(http.max_connections)
    .shutdown_timeout(5)
    .bind(&http.listen)?;
    let addr = server
        .addrs()
        .first()
        .copied()
        .ok_or_else(|| std::io::Error::other("no address bound"))?;
    let server = server.run();
    let handle = server.handle();
    actix_rt::spawn(server);
    Ok((addr, handle))
}
