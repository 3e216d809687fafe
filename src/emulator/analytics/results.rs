//! `GET .../details/jobs/{jobId}/results?cursor=&pageSize=`: pages of a
//! FULFILLED job's records, chained by opaque cursors that expire after
//! `cursor_ttl` (or at once, with the `stale_cursor` fault). The last page
//! carries no cursor.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use cxrelay_actors::event::now_ms;
use serde::Deserialize;

use super::job_book::{JobState, ServedPage};
use super::jobs::not_found;
use crate::emulator::error_body::error;
use crate::emulator::faults::Fault;
use crate::emulator::ids::derive;
use crate::emulator::state::EmulatorState;
use crate::wire::iso_ms;

const CURSOR: u64 = 0x43_5552;

/// What a cursor says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorPosition {
    /// The job's number.
    pub job_no: u64,
    /// Position of the next page's first record.
    pub offset: u64,
    /// When the cursor was handed out (ms since the epoch).
    pub issued_ms: i64,
}

fn mac(seed: u64, p: &CursorPosition) -> u64 {
    derive(seed, &[CURSOR, p.job_no, p.offset, p.issued_ms as u64])
}

/// Encodes a cursor (opaque to clients, checked on the way back).
pub fn encode_cursor(seed: u64, p: CursorPosition) -> String {
    URL_SAFE_NO_PAD.encode(format!(
        "{}.{}.{}.{:016x}",
        p.job_no,
        p.offset,
        p.issued_ms,
        mac(seed, &p)
    ))
}

/// Decodes a cursor this emulator handed out (`None` for anything else).
pub fn decode_cursor(seed: u64, cursor: &str) -> Option<CursorPosition> {
    let raw = URL_SAFE_NO_PAD.decode(cursor.trim()).ok()?;
    let text = String::from_utf8(raw).ok()?;
    let mut parts = text.split('.');
    let p = CursorPosition {
        job_no: parts.next()?.parse().ok()?,
        offset: parts.next()?.parse().ok()?,
        issued_ms: parts.next()?.parse().ok()?,
    };
    let check = u64::from_str_radix(parts.next()?, 16).ok()?;
    (check == mac(seed, &p) && parts.next().is_none()).then_some(p)
}

#[derive(Deserialize)]
struct ResultsQuery {
    cursor: Option<String>,
    #[serde(rename = "pageSize")]
    page_size: Option<u32>,
}

fn stale(message: &str) -> HttpResponse {
    error(400, "bad.request", message)
}

/// The results handler.
pub async fn results(state: web::Data<Arc<EmulatorState>>, id: web::Path<String>, req: HttpRequest) -> HttpResponse {
    let settings = &state.settings.bulk;
    let q = match web::Query::<ResultsQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(e) => return error(400, "bad.request", &format!("Invalid query: {e}")),
    };
    let page_size = q.page_size.unwrap_or(settings.max_page_size).max(1);
    if page_size > settings.max_page_size {
        return error(
            400,
            "bad.request",
            &format!("pageSize must be at most {}", settings.max_page_size),
        );
    }
    state.bulk.jobs.absorb_faults(&state.faults);
    let Some(job) = state.bulk.jobs.get(&id) else {
        return not_found(&id);
    };
    let job_state = job.state(settings);
    if job_state != JobState::Fulfilled {
        return error(
            400,
            "bad.request",
            &format!(
                "Job {} is {}; results are available only while it is FULFILLED",
                job.id,
                job_state.as_str()
            ),
        );
    }
    let seed = state.settings.seed;
    let offset = match q.cursor.as_deref().filter(|c| !c.is_empty()) {
        None => 0,
        Some(c) => {
            if state.faults.take(|f| matches!(f, Fault::StaleCursor { .. })).is_some() {
                return stale("The cursor is invalid or has expired (injected fault)");
            }
            match decode_cursor(seed, c) {
                Some(p) if p.job_no == job.no => {
                    if now_ms() - p.issued_ms > settings.cursor_ttl.as_millis() as i64 {
                        return stale("The cursor has expired");
                    }
                    p.offset
                }
                _ => return stale("The cursor is invalid or has expired"),
            }
        }
    };
    let len = job.len();
    let start = offset.min(len);
    let end = (start + page_size as u64).min(len);
    let mut body = String::with_capacity(((end - start) as usize) * 2600 + 256);
    body.push('{');
    if end > start {
        body.push_str("\"conversations\":[");
        for k in start..end {
            if k > start {
                body.push(',');
            }
            let n = job.records.index(k);
            body.push_str(&state.bulk.timeline.record_as_of(n, job.records.as_of_ms));
        }
        body.push_str("],");
    }
    if end < len {
        let cursor = encode_cursor(
            seed,
            CursorPosition {
                job_no: job.no,
                offset: end,
                issued_ms: now_ms(),
            },
        );
        body.push_str(&format!("\"cursor\":\"{cursor}\","));
    }
    let available = now_ms() - settings.data_lag.as_millis() as i64;
    body.push_str(&format!("\"dataAvailabilityDate\":\"{}\"}}", iso_ms(available)));
    state.bulk.jobs.served(ServedPage {
        job: job.id.clone(),
        offset: start,
        count: end - start,
        with_cursor: q.cursor.is_some(),
        at: Default::default(),
    });
    HttpResponse::Ok().content_type("application/json").body(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_refuse_tampering() {
        let p = CursorPosition {
            job_no: 3,
            offset: 1000,
            issued_ms: 1_714_521_723_120,
        };
        let c = encode_cursor(9, p);
        assert_eq!(decode_cursor(9, &c), Some(p));
        assert_eq!(decode_cursor(10, &c), None, "another emulator's cursor");
        let forged = URL_SAFE_NO_PAD.encode(format!("3.2000.{}.{:016x}", p.issued_ms, mac(9, &p)));
        assert_eq!(decode_cursor(9, &forged), None);
        assert_eq!(decode_cursor(9, "not a cursor"), None);
    }
}
