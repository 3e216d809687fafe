//! The HTTP server: health, metrics, status (and the routes later issues
//! add: admin, webhook ingress).

mod health;
mod metrics_export;
mod status;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use actix::Addr;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpServer};
use cxrelay_actors::router::RouterStats;
use cxrelay_actors::{Registry, Router};

/// What the handlers read.
#[derive(Clone)]
pub struct AppState {
    /// Component health.
    pub registry: Registry,
    /// The router (for listener snapshots).
    pub router: Addr<Router>,
    /// Router counters.
    pub router_stats: Arc<RouterStats>,
    /// When the service started.
    pub started: Instant,
    /// The Prometheus renderer.
    pub prometheus: metrics_exporter_prometheus::PrometheusHandle,
}

/// Starts the server on `listen` with `workers` threads; returns the bound
/// address and a handle to stop it.
pub fn start(listen: &str, workers: usize, state: AppState) -> std::io::Result<(SocketAddr, ServerHandle)> {
    let data = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/health/live", web::get().to(health::live))
            .route("/health/ready", web::get().to(health::ready))
            .route("/metrics", web::get().to(metrics_export::metrics))
            .route("/status", web::get().to(status::status))
    })
    // Signals are the service's to handle, in order (see service.rs).
    .disable_signals()
    .workers(workers)
    .shutdown_timeout(5)
    .bind(listen)?;
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
