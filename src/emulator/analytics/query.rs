//! `POST /api/v2/analytics/conversations/details/query`: the synchronous
//! query, paged by `pageNumber`, with `totalHits`.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use serde::Deserialize;

use super::jobs::available_records;
use crate::emulator::error_body::error;
use crate::emulator::state::EmulatorState;
use crate::wire::Interval;

#[derive(Deserialize, Default)]
struct Paging {
    #[serde(rename = "pageSize")]
    page_size: Option<u32>,
    #[serde(rename = "pageNumber")]
    page_number: Option<u32>,
}

/// The SDK's ConversationQuery: its fields, no others.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[allow(dead_code)]
struct QueryBody {
    interval: Option<String>,
    #[serde(default)]
    order: Option<String>,
    order_by: Option<String>,
    #[serde(default)]
    paging: Option<Paging>,
    conversation_filters: Option<serde_json::Value>,
    segment_filters: Option<serde_json::Value>,
    evaluation_filters: Option<serde_json::Value>,
    survey_filters: Option<serde_json::Value>,
    resolution_filters: Option<serde_json::Value>,
    aggregations: Option<serde_json::Value>,
}

/// The query handler.
pub async fn query(state: web::Data<Arc<EmulatorState>>, body: web::Bytes) -> HttpResponse {
    let q = match serde_json::from_slice::<QueryBody>(&body) {
        Ok(q) => q,
        Err(e) => return error(400, "bad.request", &format!("The request body is not valid: {e}")),
    };
    let interval = match q.interval.as_deref().map(Interval::parse) {
        Some(Ok(i)) => i,
        Some(Err(e)) => return error(400, "bad.request", &e.to_string()),
        None => return error(400, "bad.request", "interval is required"),
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
    let total = records.len();
    let skip = (number as u64 - 1).saturating_mul(size as u64);
    let take = total.saturating_sub(skip).min(size as u64);
    let mut body = String::with_capacity(take as usize * 2600 + 64);
    body.push('{');
    if take > 0 {
        body.push_str("\"conversations\":[");
        for k in 0..take {
            let n = if descending {
                records.index(total - 1 - skip - k)
            } else {
                records.index(skip + k)
            };
            if k > 0 {
                body.push(',');
            }
            // The query answers the SDK's AnalyticsConversationWithoutAttributes.
            body.push_str(&without_attributes(
                &state.bulk.timeline.record_as_of(n, records.as_of_ms),
            ));
        }
        body.push_str("],");
    }
    // Genesys leaves out empty arrays.
    body.push_str(&format!("\"totalHits\":{total}}}"));
    HttpResponse::Ok().content_type("application/json").body(body)
}

/// A record without its participants' `attributes`.
fn without_attributes(record: &str) -> String {
    let Ok(mut v) = serde_json::from_str::<serde_json::Value>(record) else {
        return record.to_string();
    };
    if let Some(ps) = v.get_mut("participants").and_then(|p| p.as_array_mut()) {
        for p in ps {
            if let Some(o) = p.as_object_mut() {
                o.remove("attributes");
            }
        }
    }
    v.to_string()
}
