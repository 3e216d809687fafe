//! OAuth client credentials (`POST /oauth/token`) and the table of issued
//! tokens that every API request is checked against.

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::{web, HttpRequest, HttpResponse};
use base64::Engine;
use dashmap::DashMap;
use serde_json::json;

use super::faults::Fault;
use super::state::EmulatorState;

/// An issued token.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The client it was issued to.
    pub client_id: String,
    /// When it stops working.
    pub expires_at: Instant,
    /// Revoked early (fault `expire_tokens`).
    pub revoked: bool,
}

/// Why a bearer token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No `Authorization: Bearer` header.
    Missing,
    /// Unknown, expired or revoked.
    Invalid,
}

/// Issued tokens.
#[derive(Debug, Default)]
pub struct Tokens {
    issued: DashMap<String, Issued>,
}

impl Tokens {
    /// Issues a token for `client_id` valid for `lifetime`.
    pub fn issue(&self, client_id: &str, lifetime: Duration) -> String {
        let token: String = (0..4).map(|_| format!("{:016x}", rand::random::<u64>())).collect();
        // Forget tokens long dead so the table stays small over months.
        let now = Instant::now();
        self.issued
            .retain(|_, t| t.expires_at + Duration::from_secs(3600) > now);
        self.issued.insert(
            token.clone(),
            Issued {
                client_id: client_id.to_string(),
                expires_at: now + lifetime,
                revoked: false,
            },
        );
        token
    }

    /// The client a header's bearer token belongs to, if it is valid now.
    pub fn check(&self, authorization: Option<&str>) -> Result<String, Refusal> {
        let token = authorization
            .and_then(|h| h.strip_prefix("Bearer ").or_else(|| h.strip_prefix("bearer ")))
            .ok_or(Refusal::Missing)?;
        let t = self.issued.get(token.trim()).ok_or(Refusal::Invalid)?;
        if t.revoked || Instant::now() >= t.expires_at {
            return Err(Refusal::Invalid);
        }
        Ok(t.client_id.clone())
    }

    /// Revokes every token issued so far.
    pub fn revoke_all(&self) {
        for mut t in self.issued.iter_mut() {
            t.revoked = true;
        }
    }

    /// Tokens issued and not yet expired.
    pub fn live(&self) -> usize {
        let now = Instant::now();
        self.issued.iter().filter(|t| !t.revoked && t.expires_at > now).count()
    }
}

/// `POST /oauth/token`: client credentials grant.
pub async fn token(state: web::Data<Arc<EmulatorState>>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let s = &state.settings;
    if let Some(Fault::FailToken { status, .. }) = state.faults.take(|f| matches!(f, Fault::FailToken { .. })) {
        return if status == 400 || status == 401 {
            refused(status)
        } else {
            super::error_body::error(status, super::error_body::code_for(status), "login service failure")
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
