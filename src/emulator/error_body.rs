//! Genesys's error answers: `{"message","code","status","contextId",
//! "details":[],"errors":[]}`, with the usual headers.

use actix_web::http::StatusCode;
use actix_web::HttpResponse;
use serde_json::json;

use super::ids::random_uuid;

/// An error answer with Genesys's body.
pub fn error(status: u16, code: &str, message: &str) -> HttpResponse {
    let status_code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let context = random_uuid();
    HttpResponse::build(status_code)
        .insert_header(("inin-correlation-id", context.clone()))
        .json(json!({
            "message": message,
            "code": code,
            "status": status,
            "contextId": context,
            "details": [],
            "errors": [],
        }))
}

/// The code Genesys uses for a status.
pub fn code_for(status: u16) -> &'static str {
    match status {
        400 => "bad.request",
        401 => "authentication.required",
        403 => "missing.permissions",
        404 => "not.found",
        408 => "request.timeout",
        413 => "request.entity.too.large",
        429 => "too.many.requests",
        503 => "service.unavailable",
        504 => "gateway.timeout",
        _ => "internal.server.error",
    }
}

/// The 429 answer, exactly as Genesys words it.
pub fn too_many_requests(retry_after_s: u64) -> HttpResponse {
    let mut r = error(
        429,
        "too.many.requests.retry.after",
        &format!("Rate limit exceeded the maximum. Retry the request in [{retry_after_s}] seconds"),
    );
    if let Ok(v) = actix_web::http::header::HeaderValue::from_str(&retry_after_s.to_string()) {
        r.headers_mut().insert(actix_web::http::header::RETRY_AFTER, v);
    }
    r
}
