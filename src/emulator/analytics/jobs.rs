//! Conversation details jobs over REST: submission, status, deletion and
//! data availability. The jobs themselves are in [`super::job_book`].

use std::ops::Range;
use std::sync::Arc;

use actix_web::{web, HttpResponse};
use cxrelay_actors::event::now_ms;
use serde::Deserialize;
use serde_json::json;

use super::job_book::JobState;
use crate::emulator::error_body::error;
use crate::emulator::faults::Fault;
use crate::emulator::state::EmulatorState;
use crate::wire::{iso_ms, Interval};

#[derive(Deserialize)]
struct JobRequest {
    interval: Option<String>,
}

/// Parses a request body's `interval`, or says why not (a 400).
pub(super) fn requested_interval(body: &[u8]) -> Result<Interval, String> {
    let req: JobRequest =
        serde_json::from_slice(body).map_err(|e| format!("The request body is not valid JSON: {e}"))?;
    let text = req.interval.ok_or_else(|| "interval is required".to_string())?;
    Interval::parse(&text).map_err(|e| e.to_string())
}

/// The records an interval holds, as far as the data lake has them now.
pub(super) fn available_records(state: &EmulatorState, interval: Interval) -> Range<u64> {
    let available = now_ms() - state.settings.bulk.data_lag.as_millis() as i64;
    let seen = Interval::new(interval.start_ms, interval.end_ms.min(available).max(interval.start_ms));
    state.bulk.timeline.range(seen)
}

/// `POST /api/v2/analytics/conversations/details/jobs`
pub async fn submit(state: web::Data<Arc<EmulatorState>>, body: web::Bytes) -> HttpResponse {
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
