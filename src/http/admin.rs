//! The admin API (`/admin/*`), behind a bearer token. Disabled when no
//! token is configured.

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::store::store_actor::{ListDeadLetters, PurgeDeadLetters, ReplayDeadLetters};

/// The refusal for a request without the admin token, or `None` when it
/// carries it. The comparison takes the same time wherever the tokens differ.
pub fn refused(state: &AppState, req: &HttpRequest) -> Option<HttpResponse> {
    let Some(token) = &state.admin_token else {
        return Some(HttpResponse::NotFound().json(json!({"error": "admin API disabled: no admin token configured"})));
    };
    let given = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())) {
        None
    } else {
        Some(
            HttpResponse::Unauthorized()
                .insert_header(("www-authenticate", "Bearer"))
                .json(json!({"error": "unauthorized"})),
        )
    }
}

fn no_store() -> HttpResponse {
    HttpResponse::Conflict().json(json!({"error": "the journal is off (service.journal = false): no dead letters"}))
}

/// Query of `GET /admin/dead-letters`.
#[derive(Debug, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    after: u64,
    #[serde(default = "default_limit")]
    limit: usize,
}

fn default_limit() -> usize {
    100
}

/// `GET /admin/dead-letters?after=&limit=`
pub async fn list_dead_letters(state: web::Data<AppState>, req: HttpRequest, q: web::Query<ListQuery>) -> HttpResponse {
    if let Some(denied) = refused(&state, &req) {
        return denied;
    }
    let Some(store) = &state.store else {
        return no_store();
    };
    match store
        .send(ListDeadLetters {
            after: q.after,
            limit: q.limit.min(10_000),
        })
        .await
    {
        Ok(Ok(letters)) => HttpResponse::Ok().json(json!({"dead_letters": letters})),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable().json(json!({"error": e})),
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({"error": e.to_string()})),
    }
}

/// Body of `POST /admin/dead-letters/replay`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayBody {
    #[serde(default)]
    ids: Option<Vec<u64>>,
    #[serde(default)]
    all: bool,
}

/// `POST /admin/dead-letters/replay` with `{"ids": [..]}` or `{"all": true}`.
pub async fn replay_dead_letters(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<ReplayBody>,
) -> HttpResponse {
    if let Some(denied) = refused(&state, &req) {
        return denied;
    }
    let Some(store) = &state.store else {
        return no_store();
    };
    let ids = match (body.0.ids, body.0.all) {
        (Some(ids), false) => Some(ids),
        (None, true) => None,
        _ => return HttpResponse::BadRequest().json(json!({"error": "give either `ids` or `all: true`"})),
    };
    match store.send(ReplayDeadLetters { ids }).await {
        Ok(Ok(report)) => HttpResponse::Ok().json(report),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable().json(json!({"error": e})),
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({"error": e.to_string()})),
    }
}

/// Body of `POST /admin/dead-letters/purge`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PurgeBody {
    before_ms: i64,
}

/// `POST /admin/dead-letters/purge` with `{"before_ms": ...}`.
pub async fn purge_dead_letters(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Json<PurgeBody>,
) -> HttpResponse {
    if let Some(denied) = refused(&state, &req) {
        return denied;
    }
    let Some(store) = &state.store else {
        return no_store();
    };
    match store
        .send(PurgeDeadLetters {
            before_ms: body.before_ms,
        })
        .await
    {
        Ok(Ok(n)) => HttpResponse::Ok().json(json!({"purged": n})),
        Ok(Err(e)) => HttpResponse::ServiceUnavailable().json(json!({"error": e})),
        Err(e) => HttpResponse::ServiceUnavailable().json(json!({"error": e.to_string()})),
    }
}
