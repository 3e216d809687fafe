//! Conversation details jobs over REST: submission, status, deletion and
//! data availability. The jobs themselves are in [`super::job_book`].

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use cxrelay_actors::event::now_ms;
use serde::Deserialize;
use serde_json::json;

use super::job_book::JobState;
use crate::emulator::error_body::error;
use crate::emulator::faults::Fault;
use crate::emulator::records::ActiveRecords;
use crate::emulator::state::EmulatorState;
use crate::wire::{iso_ms, Interval};

/// The SDK's AsyncConversationQuery: its fields, no others (the platform
/// refuses a body it does not know). Filters are taken as given.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct JobRequest {
    interval: Option<String>,
    conversation_filters: Option<serde_json::Value>,
    segment_filters: Option<serde_json::Value>,
    evaluation_filters: Option<serde_json::Value>,
    survey_filters: Option<serde_json::Value>,
    resolution_filters: Option<serde_json::Value>,
    order: Option<String>,
    order_by: Option<String>,
    limit: Option<u64>,
    start_of_day_interval_matching: Option<bool>,
}

/// Parses a job request body (the SDK's AsyncConversationQuery) to its
/// interval, or says why not (a 400).
pub(super) fn requested_interval(body: &[u8]) -> Result<Interval, String> {
    let req: JobRequest = serde_json::from_slice(body).map_err(|e| format!("The request body is not valid: {e}"))?;
    if let Some(o) = req
        .order
        .as_deref()
        .filter(|o| !["asc", "desc", "unordered"].contains(o))
    {
        return Err(format!("order must be asc, desc or unordered, not {o}"));
    }
    let order_by = ["conversationStart", "conversationEnd", "segmentStart", "segmentEnd"];
    if let Some(o) = req.order_by.as_deref().filter(|o| !order_by.contains(o)) {
        return Err(format!("orderBy must be one of {order_by:?}, not {o}"));
    }
    let text = req.interval.ok_or_else(|| "interval is required".to_string())?;
    Interval::parse(&text).map_err(|e| e.to_string())
}

/// The conversations with activity in an interval, as far as the data
/// lake has them now.
pub(super) fn available_records(state: &EmulatorState, interval: Interval) -> ActiveRecords {
    let available = now_ms() - state.settings.bulk.data_lag.as_millis() as i64;
    state.bulk.timeline.active(interval, available)
}

/// `POST /api/v2/analytics/conversations/details/jobs`
pub async fn submit(state: web::Data<Arc<EmulatorState>>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    state.log.record_body("POST", req.path(), &body);
    let interval = match requested_interval(&body) {
        Ok(i) => i,
        Err(why) => return error(400, "bad.request", &why),
    };
    let records = available_records(&state, interval);
    let failure = match state.faults.take(|f| matches!(f, Fault::FailJob { .. })) {
        Some(Fault::FailJob { message, .. }) => Some(message),
        _ => None,
    };
    let job = state.bulk.jobs.submit(interval, records, failure);
    tracing::debug!(job = %job.id, %interval, records = job.len(), "emulator: details job submitted");
    HttpResponse::Accepted().json(json!({"jobId": job.id}))
}

/// `GET /api/v2/analytics/conversations/details/jobs/{jobId}`
pub async fn status(state: web::Data<Arc<EmulatorState>>, id: web::Path<String>) -> HttpResponse {
    state.bulk.jobs.absorb_faults(&state.faults);
    match state.bulk.jobs.get(&id) {
        Some(job) => HttpResponse::Ok().json(job.status_body(&state.settings.bulk)),
        None => not_found(&id),
    }
}

/// `DELETE /api/v2/analytics/conversations/details/jobs/{jobId}`
pub async fn delete(state: web::Data<Arc<EmulatorState>>, id: web::Path<String>) -> HttpResponse {
    if state.bulk.jobs.end(&id, JobState::Cancelled) {
        HttpResponse::NoContent().finish()
    } else {
        not_found(&id)
    }
}

/// `GET /api/v2/analytics/conversations/details/jobs/availability`
pub async fn availability(state: web::Data<Arc<EmulatorState>>) -> HttpResponse {
    let available = now_ms() - state.settings.bulk.data_lag.as_millis() as i64;
    HttpResponse::Ok().json(json!({"dataAvailabilityDate": iso_ms(available)}))
}

pub(super) fn not_found(id: &str) -> HttpResponse {
    error(404, "not.found", &format!("Job {id} was not found"))
}
