//! The admin API (`/admin/*`), behind a bearer token. Disabled when no
//! token is configured.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;
use subtle::ConstantTimeEq;

use super::AppState;
use crate::store::store_actor::{ListDeadLetters, PurgeDeadLetters, ReplayDeadLetters};

/// Largest admin request body (JSON, decoded).
const MAX_BODY: usize = 64 << 10;

/// The admin API's routes. The token is checked before anything else of
/// the request is looked at: no extractor (query, JSON, gzip decoding) runs
/// for a caller without it.
pub fn scope() -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<BoxBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope("/admin")
        .wrap(from_fn(authenticate))
        .app_data(web::JsonConfig::default().limit(MAX_BODY))
        .route("/dead-letters", web::get().to(list_dead_letters))
        .route("/dead-letters/replay", web::post().to(replay_dead_letters))
        .route("/dead-letters/purge", web::post().to(purge_dead_letters))
        .route("/notifications", web::get().to(notification_sources))
        .route("/notifications/{source}/channels", web::get().to(notification_channels))
        .route(
            "/notifications/{source}/topics",
            web::post().to(add_notification_topics),
        )
        .route(
            "/notifications/{source}/topics",
            web::delete().to(remove_notification_topics),
        )
        .route(
            "/notifications/{source}/channels/{index}/restart",
            web::post().to(restart_notification_channel),
        )
}

async fn authenticate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let denied = req
        .app_data::<web::Data<AppState>>()
        .and_then(|state| refused(state, req.request()));
    match denied {
        Some(response) => Ok(req.into_response(response)),
        None => Ok(next.call(req).await?.map_into_boxed_body()),
    }
}

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
pub async fn list_dead_letters(state: web::Data<AppState>, q: web::Query<ListQuery>) -> HttpResponse {
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
pub async fn replay_dead_letters(state: web::Data<AppState>, body: web::Json<ReplayBody>) -> HttpResponse {
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
pub async fn purge_dead_letters(state: web::Data<AppState>, body: web::Json<PurgeBody>) -> HttpResponse {
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

fn no_notification_source(name: &str) -> HttpResponse {
    HttpResponse::NotFound().json(json!({"error": format!("no notifications source named `{name}`")}))
}

/// `GET /admin/notifications`: every notifications source and its channels.
pub async fn notification_sources(state: web::Data<AppState>) -> HttpResponse {
    let mut sources = Vec::new();
    for s in state.notifications.all() {
        sources.push(s.view().await);
    }
    HttpResponse::Ok().json(json!({ "sources": sources }))
}

/// `GET /admin/notifications/{source}/channels`: its channels and their state.
pub async fn notification_channels(state: web::Data<AppState>, path: web::Path<String>) -> HttpResponse {
    match state.notifications.get(&path) {
        Some(s) => HttpResponse::Ok().json(s.view().await),
        None => no_notification_source(&path),
    }
}

/// Body of the topic endpoints.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TopicsBody {
    topics: Vec<String>,
}

/// `POST /admin/notifications/{source}/topics` with `{"topics": [..]}`:
/// subscribes them without restarting any channel.
pub async fn add_notification_topics(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<TopicsBody>,
) -> HttpResponse {
    change_notification_topics(state, path, body, true).await
}

/// `DELETE /admin/notifications/{source}/topics` with `{"topics": [..]}`.
pub async fn remove_notification_topics(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<TopicsBody>,
) -> HttpResponse {
    change_notification_topics(state, path, body, false).await
}

async fn change_notification_topics(
    state: web::Data<AppState>,
    path: web::Path<String>,
    body: web::Json<TopicsBody>,
    add: bool,
) -> HttpResponse {
    let Some(s) = state.notifications.get(&path) else {
        return no_notification_source(&path);
    };
    let topics = body.into_inner().topics;
    let changes = if add {
        s.add_topics(topics).await
    } else {
        s.remove_topics(topics).await
    };
    HttpResponse::Ok().json(json!({ "topics": changes }))
}

/// `POST /admin/notifications/{source}/channels/{index}/restart`: starts a
/// failed channel again.
pub async fn restart_notification_channel(
    state: web::Data<AppState>,
    path: web::Path<(String, usize)>,
) -> HttpResponse {
    let (name, index) = path.into_inner();
    let Some(s) = state.notifications.get(&name) else {
        return no_notification_source(&name);
    };
    match s.restart_channel(index).await {
        Some(true) => HttpResponse::Ok().json(json!({"restarted": true})),
        Some(false) => {
            HttpResponse::Conflict().json(json!({"restarted": false, "error": "the channel has not failed"}))
        }
        None => HttpResponse::NotFound()
            .json(json!({"error": format!("source `{name}` has no channel {index} (or it is restarting)")})),
    }
}
