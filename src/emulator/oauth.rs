//! OAuth client credentials (`POST /oauth/token`). The tokens issued are
//! in [`super::tokens`].

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use serde_json::json;

use super::error_body::{code_for, error};
use super::faults::Fault;
use super::state::EmulatorState;

/// `POST /oauth/token`: client credentials grant.
pub async fn token(state: web::Data<Arc<EmulatorState>>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let s = &state.settings;
    if let Some(Fault::FailToken { status, .. }) = state.faults.take(|f| matches!(f, Fault::FailToken { .. })) {
        return if status == 400 || status == 401 {
            refused(status)
        } else {
            error(status, code_for(status), "login service failure")
        };
    }
    let form = String::from_utf8_lossy(&body);
    if !form.split('&').any(|kv| kv == "grant_type=client_credentials") {
        return HttpResponse::BadRequest()
            .json(json!({"error": "unsupported_grant_type", "description": "grant_type must be client_credentials"}));
    }
    let credentials = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok());
    let Some((id, secret)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
        return refused(401);
    };
    // A constant-time comparison is not needed in a local test double.
    if id != s.client_id || secret != s.client_secret {
        return refused(401);
    }
    let lifetime = s.token_lifetime;
    let access = state.tokens.issue(id, lifetime);
    HttpResponse::Ok().json(json!({
        "access_token": access,
        "token_type": "bearer",
        "expires_in": lifetime.as_secs().max(1),
    }))
}

fn refused(status: u16) -> HttpResponse {
    let status = actix_web::http::StatusCode::from_u16(status).unwrap_or(actix_web::http::StatusCode::UNAUTHORIZED);
    HttpResponse::build(status).json(json!({"error": "invalid_client", "description": "authentication failed"}))
}
