use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

/// `GET /status`: every component, its state, restarts, last error and
/// last stop (a typed reason: panicked, stuck, failed, exited, stopped); every
/// listener's queue; router counters.
pub async fn status(state: web::Data<AppState>) -> HttpResponse {
    state.ingress.refresh_status();
    let listeners = state.listeners.list();
    HttpResponse::Ok().json(json!({
        "service": {
            "version": env!("CARGO_PKG_VERSION"),
            "uptime_s": state.started.elapsed().as_secs(),
            "ready": state.registry.not_ready().is_empty(),
        },
        "components": state.registry.snapshot(),
        "router": state.router_stats.snapshot(),
        "listeners": listeners,
    }))
}
