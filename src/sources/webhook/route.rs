//! The HTTP side of a webhook source: `POST <path>`.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::future::LocalBoxFuture;
use serde_json::json;

use super::{Outcome, WebhookSource};
use crate::http::Ingress;

impl Ingress for WebhookSource {
    fn receive(self: Arc<Self>, req: HttpRequest, body: web::Payload) -> LocalBoxFuture<'static, HttpResponse> {
        Box::pin(receive(self, req, body))
    }
    fn open(&self) {
        WebhookSource::open(self);
    }
    fn close(&self) {
        WebhookSource::close(self);
    }
    fn refresh_status(&self) {
        self.publish_detail();
    }
}

/// Handles one pushed request.
async fn receive(source: Arc<WebhookSource>, req: HttpRequest, payload: web::Payload) -> HttpResponse {
    let response = answer(&source, &req, payload).await;
    source.answered(response.status().as_u16());
    response
}

async fn answer(source: &WebhookSource, req: &HttpRequest, payload: web::Payload) -> HttpResponse {
    if !source.admits(req.peer_addr().map(|a| a.ip())) {
        return HttpResponse::Forbidden().json(json!({"error": "forbidden"}));
    }
    // Bodies in memory are bounded by the slots times `max_body_bytes`.
    let Some(_slot) = source.try_slot() else {
        return HttpResponse::ServiceUnavailable()
            .insert_header((header::RETRY_AFTER, "1"))
            .json(json!({"error": "busy", "retry_after": 1}));
    };
    let max = source.max_body_bytes();
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max) {
        return respond(source.refused_too_large(), max);
    }
    let gzip = match req
        .headers()
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
    {
        None => false,
        Some(e) if e.eq_ignore_ascii_case("identity") => false,
        Some(e) if e.eq_ignore_ascii_case("gzip") => true,
        Some(_) => {
            return HttpResponse::UnsupportedMediaType().json(json!({"error": "unsupported_content_encoding"}));
        }
    };
    // A caller without the right credentials (API key, Basic), or without
    // a signature of the right form, is refused before its body costs
    // anything.
    if !source.admits_head(req.headers()) {
        return respond(Outcome::Unauthorized, max);
    }
    // The raw bytes as sent: the signature covers exactly these. A body
    // that trickles in is cut off at `body_timeout`.
    let raw = match tokio::time::timeout(source.body_timeout(), read_body(payload, declared, max)).await {
        Ok(Ok(b)) => b,
        Ok(Err(BodyError::Read)) => return HttpResponse::BadRequest().json(json!({"error": "body_read_failed"})),
        Ok(Err(BodyError::TooLarge)) => return respond(source.refused_too_large(), max),
        Err(_) => {
            source.body_timed_out();
            return HttpResponse::RequestTimeout()
                .insert_header((header::CONNECTION, "close"))
                .json(json!({"error": "body_timeout"}));
        }
    };
    respond(source.receive(req.headers(), gzip, &raw).await, max)
}

enum BodyError {
    Read,
    TooLarge,
}

/// Reads the body. One that arrives in a single chunk (the usual case: a
/// small body read with its headers) is kept as that chunk, with no copy;
/// one in several chunks is gathered into one buffer sized by its declared
/// length: pages a slow sender has not filled yet are reserved, not
/// resident, and the buffer never doubles past what arrives.
async fn read_body(mut payload: web::Payload, declared: Option<usize>, max: usize) -> Result<Bytes, BodyError> {
    use futures_util::StreamExt;
    let Some(first) = payload.next().await else {
        return Ok(Bytes::new());
    };
    let first = first.map_err(|_| BodyError::Read)?;
    if first.len() > max {
        return Err(BodyError::TooLarge);
    }
    let Some(second) = payload.next().await else {
        return Ok(first);
    };
    let mut body = Vec::with_capacity(declared.unwrap_or(8 << 10).min(max));
    body.extend_from_slice(&first);
    drop(first);
    let mut next = Some(second);
    while let Some(chunk) = next {
        let chunk = chunk.map_err(|_| BodyError::Read)?;
        if body.len() + chunk.len() > max {
            return Err(BodyError::TooLarge);
        }
        body.extend_from_slice(&chunk);
        next = payload.next().await;
    }
    Ok(Bytes::from(body))
}

fn respond(outcome: Outcome, max: usize) -> HttpResponse {
    match outcome {
        // The answer to every accepted request: written directly, not
        // built as a JSON value first.
        Outcome::Accepted { accepted, duplicates } => {
            let mut ok = HttpResponse::Accepted();
            ok.content_type(actix_web::http::header::ContentType::json());
            // A body of one event, new or seen before, is nearly every
            // request: its answer is a constant.
            match (accepted, duplicates) {
                (1, 0) => ok.body(r#"{"accepted":1,"duplicates":0}"#),
                (0, 1) => ok.body(r#"{"accepted":0,"duplicates":1}"#),
                _ => ok.body(format!(r#"{{"accepted":{accepted},"duplicates":{duplicates}}}"#)),
            }
        }
        // No detail: a caller probing signatures or keys learns nothing.
        Outcome::Unauthorized => HttpResponse::Unauthorized().json(json!({"error": "unauthorized"})),
        Outcome::Forbidden => HttpResponse::Forbidden().json(json!({"error": "forbidden"})),
        Outcome::TooLarge => HttpResponse::PayloadTooLarge().json(json!({"error": "body_too_large", "max_bytes": max})),
        Outcome::BadRequest(reason) => HttpResponse::BadRequest().json(json!({"error": reason})),
        Outcome::Unavailable { retry_after, reason } => {
            tracing::warn!(%reason, "webhook answered 503");
            HttpResponse::ServiceUnavailable()
                .insert_header((header::RETRY_AFTER, retry_after.to_string()))
                .json(json!({"error": "unavailable", "retry_after": retry_after}))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn the_202_says_what_was_accepted_whatever_the_counts() {
        for (accepted, duplicates) in [(1, 0), (0, 1), (2, 1), (0, 0)] {
            let r = respond(Outcome::Accepted { accepted, duplicates }, 10);
            assert_eq!(r.status(), 202);
            assert_eq!(r.headers().get(header::CONTENT_TYPE).unwrap(), "application/json");
            let body = actix_web::body::to_bytes(r.into_body()).await.unwrap();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v, json!({"accepted": accepted, "duplicates": duplicates}));
        }
    }
}
