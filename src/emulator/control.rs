//! The control endpoint: faults on demand and a look at what the emulator
//! was asked. Not part of the Genesys API; local test use only.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::faults::Fault;
use super::state::EmulatorState;

/// One fault or several.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum FaultBody {
    /// One.
    One(Fault),
    /// Several.
    Many(Vec<Fault>),
}

/// `POST /_emulator/faults`: arms faults; answers what is armed now.
pub async fn arm(state: web::Data<Arc<EmulatorState>>, body: web::Bytes) -> HttpResponse {
    let parsed: Result<FaultBody, _> = serde_json::from_slice(&body);
    let faults = match parsed {
        Ok(FaultBody::One(f)) => vec![f],
        Ok(FaultBody::Many(v)) => v,
        Err(e) => {
            // Re-parse as a single fault for a precise message.
            let detail = serde_json::from_slice::<Fault>(&body)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_else(|| e.to_string());
            return HttpResponse::BadRequest().json(json!({"error": "invalid_fault", "message": detail}));
        }
    };
    for f in faults {
        state.apply(f);
    }
    armed(state).await
}

/// `GET /_emulator/faults`: what is armed, and what was applied.
pub async fn armed(state: web::Data<Arc<EmulatorState>>) -> HttpResponse {
    let armed: Vec<_> = state
        .faults
        .armed()
        .into_iter()
        .map(|(f, remaining)| json!({"fault": f, "remaining": remaining}))
        .collect();
    HttpResponse::Ok().json(json!({"armed": armed, "applied": state.faults.applied()}))
}

/// `DELETE /_emulator/faults`: disarms everything.
pub async fn clear(state: web::Data<Arc<EmulatorState>>) -> HttpResponse {
    state.faults.clear();
    HttpResponse::NoContent().finish()
}

/// `GET /_emulator/requests`: the request log.
pub async fn requests(state: web::Data<Arc<EmulatorState>>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"requests": state.log.entries()}))
}
