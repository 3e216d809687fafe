use actix_web::{web, HttpResponse};
use metrics::{counter, gauge};

use super::AppState;

/// `GET /metrics`: Prometheus text. Counters kept in atomics by the runtime
/// are copied into the recorder at scrape time, so the hot path pays
/// nothing for metrics.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let r = state.router_stats.snapshot();
    counter!("cxrelay_router_published_total").absolute(r.published);
    counter!("cxrelay_router_unrouted_total").absolute(r.unrouted);
    counter!("cxrelay_router_pruned_listeners_total").absolute(r.pruned);
    for l in state.listeners.list() {
        let name = l.name.clone();
        let q = l.queue;
        counter!("cxrelay_listener_delivered_total", "listener" => name.clone()).absolute(q.delivered);
        for (reason, n) in [
            ("queue_full", q.dropped_queue_full),
            ("evicted_oldest", q.dropped_evicted_oldest),
            ("listener_gone", q.dropped_listener_gone),
        ] {
            counter!("cxrelay_listener_dropped_total", "listener" => name.clone(), "reason" => reason).absolute(n);
        }
        gauge!("cxrelay_listener_queue_depth", "listener" => name.clone()).set(q.depth as f64);
        gauge!("cxrelay_listener_queue_high_water", "listener" => name.clone()).set(q.high_water as f64);
        gauge!("cxrelay_listener_queue_capacity", "listener" => name).set(q.capacity as f64);
    }
    for c in state.registry.snapshot() {
        counter!("cxrelay_component_restarts_total", "component" => c.name.clone()).absolute(c.restarts);
        gauge!("cxrelay_component_ready", "component" => c.name.clone(), "kind" => c.kind.as_str())
            .set(if c.state.is_ready() { 1.0 } else { 0.0 });
    }
    gauge!("cxrelay_uptime_seconds").set(state.started.elapsed().as_secs_f64());
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.prometheus.render())
}
