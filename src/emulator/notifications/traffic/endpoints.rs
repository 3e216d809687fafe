//! The traffic control endpoint (`/_emulator/traffic`): start, status and
//! stop a run, and what was sent on each channel. Not part of the Genesys
//! API; local test use only.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde_json::json;

use crate::emulator::settings::notifications::TrafficRequest;
use crate::emulator::state::EmulatorState;

type State = web::Data<Arc<EmulatorState>>;

/// `POST /_emulator/traffic`: starts a run (replacing the current one).
pub async fn start(state: State, body: web::Bytes) -> HttpResponse {
    let request: TrafficRequest = if body.is_empty() {
        TrafficRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return HttpResponse::BadRequest().json(json!({"error": "invalid_traffic", "message": e.to_string()}))
            }
        }
    };
    let run = state.notifications.traffic.start(state.get_ref(), request);
    HttpResponse::Ok().json(json!({ "run": run }))
}

/// `GET /_emulator/traffic`: the run, and every channel's record summary.
pub async fn status(state: State) -> HttpResponse {
    let n = &state.notifications;
    let channels: Vec<serde_json::Value> = n
        .records()
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "open": n.socket_open(&r.id),
                "delivered": r.delivered_count,
                "missed": r.missed_count,
                "connects": r.connects,
                "heartbeats": r.heartbeats,
                "pongs": r.pongs,
                "malformed_sent": r.malformed_sent,
                "fragmented_sent": r.fragmented_sent,
                "orders_taken": r.orders_taken,
                "closes": r.closes,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "traffic": n.traffic.status(), "channels": channels }))
}

/// `DELETE /_emulator/traffic`: stops the run.
pub async fn stop(state: State) -> HttpResponse {
    state.notifications.traffic.stop();
    HttpResponse::NoContent().finish()
}

/// `GET /_emulator/traffic/channels/{id}`: the correlation ids sent on a
/// channel's sockets and those it missed, in the current run.
pub async fn channel_record(state: State, id: web::Path<String>) -> HttpResponse {
    let n = &state.notifications;
    let Some(r) = n.record(&id) else {
        return HttpResponse::NotFound().json(json!({"error": "no such channel"}));
    };
    let seed = state.settings.seed;
    let ids = |v: &[u64]| -> Vec<String> { v.iter().map(|i| n.traffic.correlation_id(seed, r.run, *i)).collect() };
    HttpResponse::Ok().json(json!({
        "id": r.id,
        "run": r.run,
        "delivered": r.delivered_count,
        "missed": r.missed_count,
        "truncated": r.truncated,
        "delivered_ids": ids(&r.delivered),
        "missed_ids": ids(&r.missed),
        "closes": r.closes,
    }))
}
