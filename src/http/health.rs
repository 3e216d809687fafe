use actix_web::{web, HttpResponse};
use serde_json::json;

use super::AppState;

/// `GET /health/live`: 200 while the process runs.
pub async fn live() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "live"}))
}

/// `GET /health/ready`: 200 when every gating component is ready, else 503
/// with a reason per component.
pub async fn ready(state: web::Data<AppState>) -> HttpResponse {
    let not_ready = state.registry.not_ready();
    if not_ready.is_empty() {
        HttpResponse::Ok().json(json!({"status": "ready"}))
    } else {
        let components: serde_json::Map<String, serde_json::Value> =
            not_ready.into_iter().map(|(k, v)| (k, v.into())).collect();
        HttpResponse::ServiceUnavailable().json(json!({"status": "not_ready", "components": components}))
    }
}
