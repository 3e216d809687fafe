//! `GET /metrics`, and the metrics the runtime keeps itself (router,
//! listener queues, component health): those live in atomics on the hot
//! path and are named here, copied into the recorder at scrape time. Every
//! component's own metrics are named in its folder's `telemetry.rs`;
//! [`crate::telemetry::metric_names`] lists them all.

use actix_web::{web, HttpResponse};
use cxrelay_actors::registry::ComponentState;
use metrics::{counter, gauge};

use super::AppState;

/// Events published to the router.
pub const ROUTER_PUBLISHED_TOTAL: &str = "cxrelay_router_published_total";
/// Events no listener's topics matched.
pub const ROUTER_UNROUTED_TOTAL: &str = "cxrelay_router_unrouted_total";
/// Listeners the router dropped because their actor was gone.
pub const ROUTER_PRUNED_LISTENERS_TOTAL: &str = "cxrelay_router_pruned_listeners_total";
/// Events delivered to a listener's actor.
pub const LISTENER_DELIVERED_TOTAL: &str = "cxrelay_listener_delivered_total";
/// Events a listener's queue dropped, by reason.
pub const LISTENER_DROPPED_TOTAL: &str = "cxrelay_listener_dropped_total";
/// Events waiting in a listener's queue.
pub const LISTENER_QUEUE_DEPTH: &str = "cxrelay_listener_queue_depth";
/// The most events a listener's queue has held.
pub const LISTENER_QUEUE_HIGH_WATER: &str = "cxrelay_listener_queue_high_water";
/// A listener queue's bound.
pub const LISTENER_QUEUE_CAPACITY: &str = "cxrelay_listener_queue_capacity";
/// Restarts of a component.
pub const COMPONENT_RESTARTS_TOTAL: &str = "cxrelay_component_restarts_total";
/// Whether a component is ready (1) or not (0), with its kind.
pub const COMPONENT_READY: &str = "cxrelay_component_ready";
/// A component's state: 1 for the state it is in, 0 for the others.
pub const COMPONENT_STATE: &str = "cxrelay_component_state";
/// Whether the service is ready (1, `/health/ready` answers 200) or not (0).
pub const READY: &str = "cxrelay_ready";
/// Seconds since the service started.
pub const UPTIME_SECONDS: &str = "cxrelay_uptime_seconds";

/// Every metric named here.
pub const METRICS: &[&str] = &[
    ROUTER_PUBLISHED_TOTAL,
    ROUTER_UNROUTED_TOTAL,
    ROUTER_PRUNED_LISTENERS_TOTAL,
    LISTENER_DELIVERED_TOTAL,
    LISTENER_DROPPED_TOTAL,
    LISTENER_QUEUE_DEPTH,
    LISTENER_QUEUE_HIGH_WATER,
    LISTENER_QUEUE_CAPACITY,
    COMPONENT_RESTARTS_TOTAL,
    COMPONENT_READY,
    COMPONENT_STATE,
    READY,
    UPTIME_SECONDS,
];

/// `GET /metrics`: Prometheus text. Counters kept in atomics by the runtime
/// are copied into the recorder at scrape time, so the hot path pays
/// nothing for metrics.
pub async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let r = state.router_stats.snapshot();
    counter!(ROUTER_PUBLISHED_TOTAL).absolute(r.published);
    counter!(ROUTER_UNROUTED_TOTAL).absolute(r.unrouted);
    counter!(ROUTER_PRUNED_LISTENERS_TOTAL).absolute(r.pruned);
    for l in state.listeners.list() {
        let name = l.name.clone();
        let q = l.queue;
        counter!(LISTENER_DELIVERED_TOTAL, "listener" => name.clone()).absolute(q.delivered);
        for (reason, n) in [
            ("queue_full", q.dropped_queue_full),
            ("evicted_oldest", q.dropped_evicted_oldest),
            ("listener_gone", q.dropped_listener_gone),
        ] {
            counter!(LISTENER_DROPPED_TOTAL, "listener" => name.clone(), "reason" => reason).absolute(n);
        }
        gauge!(LISTENER_QUEUE_DEPTH, "listener" => name.clone()).set(q.depth as f64);
        gauge!(LISTENER_QUEUE_HIGH_WATER, "listener" => name.clone()).set(q.high_water as f64);
        gauge!(LISTENER_QUEUE_CAPACITY, "listener" => name).set(q.capacity as f64);
    }
    let components = state.registry.snapshot();
    let mut ready = true;
    for c in &components {
        counter!(COMPONENT_RESTARTS_TOTAL, "component" => c.name.clone()).absolute(c.restarts);
        gauge!(COMPONENT_READY, "component" => c.name.clone(), "kind" => c.kind.as_str()).set(if c.state.is_ready() {
            1.0
        } else {
            0.0
        });
        // Every state is written, the others as 0: an alert on
        // `state="failed"` sees the series go back to 0, not vanish.
        for s in ComponentState::ALL {
            gauge!(COMPONENT_STATE, "component" => c.name.clone(), "kind" => c.kind.as_str(), "state" => s.as_str())
                .set(if s == c.state { 1.0 } else { 0.0 });
        }
        ready &= !c.gates_readiness || c.state.is_ready();
    }
    gauge!(READY).set(if ready { 1.0 } else { 0.0 });
    gauge!(UPTIME_SECONDS).set(state.started.elapsed().as_secs_f64());
    state.ingest_stats.emit();
    super::process::ProcessStatus::read().emit();
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(state.prometheus.render())
}
