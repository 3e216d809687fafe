//! `GET /api/v2/organizations/me`: the org the token belongs to (what a
//! connectivity check asks).

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde_json::json;

use super::ids::uuid;
use super::state::EmulatorState;

/// The emulated org.
pub async fn me(state: web::Data<Arc<EmulatorState>>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "id": uuid(state.settings.seed, &[0x004f_7267]),
        "name": "cxrelay emulated org",
        "thirdPartyOrgName": "cxrelay-emulator",
        "state": "active",
        "selfUri": "/api/v2/organizations/me",
    }))
}
