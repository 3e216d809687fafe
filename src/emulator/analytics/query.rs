//! `POST /api/v2/analytics/conversations/details/query`: the synchronous
//! query, paged by `pageNumber`, with `totalHits`.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::jobs::{available_records, requested_interval};
use crate::emulator::error_body::error;
use crate::emulator::state::EmulatorState;

#[derive(Deserialize, Default)]
struct Paging {
    #[serde(rename = "pageSize")]
    page_size: Option<u32>,
    #[serde(rename = "pageNumber")]
    page_number: Option<u32>,
}

#[derive(Deserialize)]
struct QueryBody {
    #[serde(default)]
    order: Option<String>,
    #[serde(default)]
    paging: Option<Paging>,
}

/// The query handler.
pub async fn query(state: web::Data<Arc<EmulatorState>>, body: web::Bytes) -> HttpResponse {
    let interval = match requested_interval(&body) {
        Ok(i) => i,
        Err(why) => return error(400, "bad.request", &why),
    };
    let Ok(q) = serde_json::from_slice::<QueryBody>(&body) else {
        return error(400, "bad.request", "paging must be {\"pageSize\":n,\"pageNumber\":n}");
    };
    let descending = match q.order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(other) => return error(400, "bad.request", &format!("order must be asc or desc, not {other}")),
    };
    let paging = q.paging.unwrap_or_default();
    let max = state.settings.bulk.max_query_page_size;
    let size = paging.page_size.unwrap_or(25);
    if size == 0 || size > max {
        return error(
            400,
            "bad.request",
            &format!("paging.pageSize must be between 1 and {max}"),
        );
    }
    let number = paging.page_number.unwrap_or(1);
    if number == 0 {
        return error(400, "bad.request", "paging.pageNumber starts at 1");
    }
    let records = available_records(&state, interval);
    let total = records.end - records.start;
    let skip = (number as u64 - 1).saturating_mul(size as u64);
    let take = total.saturating_sub(skip).min(size as u64);
    let mut body = String::with_capacity(take as usize * 2600 + 64);
    body.push('{');
    if take > 0 {
        body.push_str("\"conversations\":[");
        for k in 0..take {
            let n = if descending {
                records.end - 1 - skip - k
            } else {
                records.start + skip + k
            };
            if k > 0 {
                body.push(',');
            }
            body.push_str(&state.bulk.timeline.record(n));
        }
        body.push_str("],");
    }
    // Genesys leaves out empty arrays.
    body.push_str(&format!("\"totalHits\":{total}}}"));
    HttpResponse::Ok().content_type("application/json").body(body)
}
