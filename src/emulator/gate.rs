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
    let client = match state.tokens.check(authorization.as_deref()) {
        Ok(c) => c,
        Err(why) => {
            let (code, message) = match why {
                Refusal::Missing => (
                    "authentication.required",
                    "No authentication bearer token specified in authorization header.",
                ),
                Refusal::Invalid => ("credentials.expired", "Invalid login credentials."),
            };
            log(401, None);
            return Ok(req.into_response(error(401, code, message)));
        }
    };
    let rate = state.limiter.count(&client);
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
            if let Some(Fault::Slow { delay_ms, .. }) = state
                .faults
                .take(|f| matches!(f, Fault::Slow { path: p, .. } if path_matches(p, &path)))
            {
                delay += Duration::from_millis(delay_ms);
            }
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            next.call(req).await?.map_into_boxed_body()
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
