//! What stands in front of every API handler, as on the real platform:
//! bearer-token checks, the per-client rate limit and its headers, injected
//! faults (429s, errors, slow answers), and the request log.

use std::sync::Arc;
use std::time::Duration;

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::web;

use super::error_body::{code_for, error, too_many_requests};
use super::faults::{path_matches, Fault};
use super::hosts::{serves, Role};
use super::ids::random_uuid;
use super::state::EmulatorState;
use super::tokens::Refusal;

/// Paths under the API (bearer token, rate limit).
fn is_api(path: &str) -> bool {
    path.starts_with("/api/")
}

/// The middleware (`middleware::from_fn(gate)`).
pub async fn gate(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    let Some(state) = req
        .app_data::<web::Data<Arc<EmulatorState>>>()
        .map(|s| s.get_ref().clone())
    else {
        return Ok(next.call(req).await?.map_into_boxed_body());
    };
    let path = req.path().to_string();
    if path.starts_with("/_emulator") {
        return Ok(next.call(req).await?.map_into_boxed_body());
    }
    let method = req.method().to_string();
    let query = req.query_string().to_string();
    let log = |status: u16, client: Option<String>| state.log.record(&method, &path, &query, status, client);
    let bearer = req.headers().contains_key("authorization")
        && req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.to_ascii_lowercase().starts_with("bearer"));
    // Each host serves its own paths; a request on the wrong host, or a
    // bearer token sent where the URL itself is the authorisation (the
    // socket and the signed download URLs), is refused as the platform's
    // hosts refuse it.
    let local = req.app_config().local_addr();
    let role = state.hosts().and_then(|h| h.role_of(local)).unwrap_or(Role::Api);
    let refusal = if !serves(role, &path) {
        Some(error(
            404,
            "not.found",
            &format!("The requested resource {path} was not found on this host."),
        ))
    } else if bearer && matches!(role, Role::Downloads | Role::Streaming) {
        state.log.record_leak(&method, &path, role);
        Some(error(
            400,
            "bad.request",
            "Only one auth mechanism allowed: this URL carries its own authorisation, the Authorization header must not be sent",
        ))
    } else {
        None
    };
    if let Some(r) = refusal {
        log(r.status().as_u16(), None);
        return Ok(req.into_response(r));
    }

    if !is_api(&path) {
        // Token endpoint, downloads, sockets: logged, not rate limited.
        let res = next.call(req).await?.map_into_boxed_body();
        log(res.status().as_u16(), None);
        return Ok(res);
    }
    let authorization = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let caller = match state.tokens.caller(authorization.as_deref()) {
        Ok(c) => c,
        Err(why) => {
            let (code, message) = match why {
                Refusal::Missing => (
                    "authentication.required",
                    "No authentication bearer token specified in authorization header.",
                ),
                // What the platform answers for an unknown, expired or
                // revoked token.
                Refusal::Invalid => ("bad.credentials", "Invalid login credentials."),
            };
            log(401, None);
            return Ok(req.into_response(error(401, code, message)));
        }
    };
    // The platform counts requests per token, not per OAuth client.
    let rate = state.limiter.count(&caller.token);
    let client = caller.client_id;
    let early = if rate.exceeded {
        Some(too_many_requests(rate.reset_s.max(1)))
    } else if let Some(Fault::RateLimit { retry_after_s, .. }) = state
        .faults
        .take(|f| matches!(f, Fault::RateLimit { path: p, .. } if path_matches(p, &path)))
    {
        Some(too_many_requests(retry_after_s))
    } else if let Some(Fault::Error { status, .. }) = state
        .faults
        .take(|f| matches!(f, Fault::Error { path: p, .. } if path_matches(p, &path)))
    {
        Some(error(status, code_for(status), "injected fault"))
    } else {
        None
    };
    let mut res = match early {
        Some(r) => req.into_response(r),
        None => {
            let mut delay = state.settings.latency;
            let mut late = Duration::ZERO;
            if let Some(Fault::Slow {
                delay_ms,
                after_handling,
                ..
            }) = state
                .faults
                .take(|f| matches!(f, Fault::Slow { path: p, .. } if path_matches(p, &path)))
            {
                if after_handling {
                    late = Duration::from_millis(delay_ms);
                } else {
                    delay += Duration::from_millis(delay_ms);
                }
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let res = next.call(req).await?.map_into_boxed_body();
            if !late.is_zero() {
                tokio::time::sleep(late).await;
            }
            res
        }
    };
    let headers = res.headers_mut();
    for (name, value) in [
        ("inin-ratelimit-allowed", rate.allowed.to_string()),
        ("inin-ratelimit-count", rate.count.to_string()),
        ("inin-ratelimit-reset", rate.reset_s.to_string()),
    ] {
        if let Ok(v) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_static(name), v);
        }
    }
    if !headers.contains_key("inin-correlation-id") {
        if let Ok(v) = HeaderValue::from_str(&random_uuid()) {
            headers.insert(HeaderName::from_static("inin-correlation-id"), v);
        }
    }
    log(res.status().as_u16(), Some(client));
    Ok(res)
}
