use actix_web::{web, HttpResponse};
use serde_json::json;

use super::process::ProcessStatus;
use super::AppState;

/// `GET /status`: the process (memory, descriptors, threads); every
/// component, its state, restarts, last error and last stop (a typed
/// reason: panicked, stuck, failed, exited, stopped); every listener's
/// queue; router counters; events ingest accepted per source; the
/// configured topology. The status page shows exactly this.
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    state.ingress.refresh_status();
    let listeners = state.listeners.list();
    HttpResponse::Ok().json(json!({
        "service": {
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": state.started.elapsed().as_secs(),
            "ready": state.registry.not_ready().is_empty(),
            // Lets a poller tell rates from counters without trusting its
            // own clock's distance to ours.
            "now_ms": cxrelay_actors::event::now_ms(),
            "process": ProcessStatus::read(),
        },
        "components": state.registry.snapshot(),
        "router": state.router_stats.snapshot(),
        "listeners": listeners,
        "ingest": state.ingest_stats.snapshot(),
        "topology": &*state.topology,
    }))
}
