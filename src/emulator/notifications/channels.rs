//! The notifications REST endpoints:
//! `POST|GET /api/v2/notifications/channels`, `HEAD .../channels/{id}`,
//! `GET|PUT|POST|DELETE .../channels/{id}/subscriptions`. The channels
//! themselves are in [`super::channel_table`].

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use super::channel_table::{Change, Refused, TopicAnswer};
use crate::emulator::error_body::error;
use crate::emulator::state::EmulatorState;
use crate::emulator::tokens::Caller;

/// The OAuth client of an (already checked) request.
fn client_of(state: &EmulatorState, req: &HttpRequest) -> Option<String> {
    caller_of(state, req).map(|c| c.client_id)
}

/// The client and token of an (already checked) request.
fn caller_of(state: &EmulatorState, req: &HttpRequest) -> Option<Caller> {
    let header = req.headers().get("authorization").and_then(|v| v.to_str().ok());
    state.tokens.caller(header).ok()
}

/// A query flag such as `ignoreErrors=true`.
fn flag(req: &HttpRequest, name: &str) -> bool {
    req.query_string()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .any(|(k, v)| k == name && v.eq_ignore_ascii_case("true"))
}

/// A query parameter's value.
fn param<'a>(req: &'a HttpRequest, name: &str) -> Option<&'a str> {
    req.query_string()
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn unauthorized() -> HttpResponse {
    error(
        401,
        "authentication.required",
        "No authentication bearer token specified in authorization header.",
    )
}

fn not_found(id: &str) -> HttpResponse {
    error(404, "not.found", &format!("Channel {id} not found"))
}

/// Parses `[{"id":"<topic>"},…]` (a list of the SDK's ChannelTopic:
/// other fields of it are allowed, unknown ones are not).
fn topics_body(body: &[u8]) -> Result<Vec<String>, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct TopicRef {
        id: String,
        state: Option<String>,
        #[serde(rename = "rejectionReason")]
        rejection_reason: Option<String>,
        #[serde(rename = "missingPermissions")]
        missing_permissions: Option<Vec<String>>,
        #[serde(rename = "selfUri")]
        self_uri: Option<String>,
    }
    serde_json::from_slice::<Vec<TopicRef>>(body)
        .map(|v| v.into_iter().map(|t| t.id).collect())
        .map_err(|e| format!("The request body must be a list of {{\"id\": \"<topic>\"}}: {e}"))
}

type State = web::Data<Arc<EmulatorState>>;

/// `POST /api/v2/notifications/channels`
pub async fn create(state: State, req: HttpRequest) -> HttpResponse {
    let Some(caller) = caller_of(&state, &req) else {
        return unauthorized();
    };
    let n = &state.notifications;
    n.apply_pending_faults(&state.faults, &state.tokens);
    let described = n.create(&caller.client_id, &caller.token, &state.streaming_url());
    n.traffic.start_configured(&state);
    HttpResponse::Ok().json(described)
}

/// `GET /api/v2/notifications/channels[?includechannels=token|oauthclient]`:
/// the caller's token's channels (the default), or with `oauthclient` the
/// client's other channels too, their ids hidden.
pub async fn list(state: State, req: HttpRequest) -> HttpResponse {
    let Some(caller) = caller_of(&state, &req) else {
        return unauthorized();
    };
    let all = match param(&req, "includechannels") {
        None | Some("token") => false,
        Some("oauthclient") => true,
        Some(other) => {
            return error(
                400,
                "bad.request",
                &format!("includechannels must be token or oauthclient, not {other}"),
            )
        }
    };
    let listed = state
        .notifications
        .list(&caller.client_id, &caller.token, all, &state.streaming_url());
    HttpResponse::Ok().json(listed)
}

/// `HEAD /api/v2/notifications/channels/{id}`: 200 if the channel is
/// valid, 404 if it is gone.
pub async fn head(state: State, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let Some(client) = client_of(&state, &req) else {
        return unauthorized();
    };
    state.notifications.apply_pending_faults(&state.faults, &state.tokens);
    if state.notifications.owned(&id, &client) {
        HttpResponse::Ok().finish()
    } else {
        HttpResponse::NotFound().finish()
    }
}

fn answer_subscription(result: Result<Vec<TopicAnswer>, Refused>, id: &str, max: usize) -> HttpResponse {
    match result {
        Ok(entities) => HttpResponse::Ok().json(json!({ "entities": entities })),
        Err(Refused::NotFound) => not_found(id),
        Err(Refused::TooMany(n)) => error(
            400,
            "bad.request",
            &format!("A channel may have at most {max} topics; this request would make it {n}"),
        ),
        Err(Refused::Rejected(rejected)) => {
            let denied = rejected.iter().any(|a| a.missing_permissions.is_some());
            let names: Vec<&str> = rejected.iter().map(|a| a.id.as_str()).take(20).collect();
            let (status, code) = if denied {
                (403, "missing.permissions")
            } else {
                (400, "bad.request")
            };
            error(
                status,
                code,
                &format!(
                    "{} of the topics cannot be subscribed ({}); nothing was subscribed (ignoreErrors=true subscribes the others)",
                    rejected.len(),
                    names.join(", ")
                ),
            )
        }
    }
}

/// `GET .../channels/{id}/subscriptions`
pub async fn get_subscriptions(state: State, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let Some(client) = client_of(&state, &req) else {
        return unauthorized();
    };
    match state.notifications.subscriptions(&id, &client) {
        Some(entities) => HttpResponse::Ok().json(json!({ "entities": entities })),
        None => not_found(&id),
    }
}

async fn change_subscriptions(
    state: State,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
    change: Change,
) -> HttpResponse {
    let Some(client) = client_of(&state, &req) else {
        return unauthorized();
    };
    state.log.record_body(req.method().as_str(), req.path(), &body);
    let topics = match topics_body(&body) {
        Ok(t) => t,
        Err(why) => return error(400, "bad.request", &why),
    };
    let n = &state.notifications;
    n.apply_pending_faults(&state.faults, &state.tokens);
    let ignore_errors = flag(&req, "ignoreErrors");
    answer_subscription(
        n.subscribe(&id, &client, topics, change, ignore_errors),
        &id,
        n.settings.max_topics,
    )
}

/// `PUT .../channels/{id}/subscriptions`: replaces the topics (and renews
/// the channel).
pub async fn put_subscriptions(
    state: State,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    change_subscriptions(state, req, id, body, Change::Replace).await
}

/// `POST .../channels/{id}/subscriptions`: adds topics.
pub async fn post_subscriptions(
    state: State,
    req: HttpRequest,
    id: web::Path<String>,
    body: web::Bytes,
) -> HttpResponse {
    change_subscriptions(state, req, id, body, Change::Add).await
}

/// `DELETE .../channels/{id}/subscriptions`: removes every topic.
pub async fn delete_subscriptions(state: State, req: HttpRequest, id: web::Path<String>) -> HttpResponse {
    let Some(client) = client_of(&state, &req) else {
        return unauthorized();
    };
    if state.notifications.unsubscribe_all(&id, &client) {
        HttpResponse::NoContent().finish()
    } else {
        not_found(&id)
    }
}
