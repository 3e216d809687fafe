//! Export files (genesys-api.md §5): JSON arrays or NDJSON, plain or
//! inside ZIP or gzip, of a configured size, generated as a stream and
//! served with `Range` from behind time-limited URLs.
//!
//! `GET /api/v2/downloads/{id}` (the Genesys downloads API) hands out a
//! signed URL (`?issueRedirect=false`: as JSON `{"url"}`; by default as a
//! 303 redirect); `GET|HEAD /downloads/exports/{id}?expires=&signature=`
//! serves the file. Expired or revoked URLs answer 403.
//!
//! - [`catalog`]: the configured files, laid out once at start.
//! - [`layout`]: byte layouts (payload, ZIP, gzip) that produce any range.
//! - [`export_record`]: the fixed-size records inside.
//!
//! Serving (`Range`, signed URLs) is shared with recordings:
//! [`crate::emulator::downloads`].

pub mod catalog;
pub mod export_record;
pub mod layout;

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

pub use catalog::{ExportCatalog, ExportFile};
pub use export_record::Framing;
pub use layout::{Crc, Gzip, Payload, Zip};

pub use crate::emulator::settings::bulk::{parse_byte_size, Container, ExportFormat, ExportSpec};

use crate::emulator::downloads::{respond, Download};
use crate::emulator::error_body::error;
use crate::emulator::state::EmulatorState;

/// The path an export is served at.
pub fn export_path(id: &str) -> String {
    format!("/downloads/exports/{id}")
}

#[derive(Deserialize)]
struct DownloadQuery {
    #[serde(rename = "issueRedirect")]
    issue_redirect: Option<bool>,
}

/// `GET /api/v2/downloads/{downloadId}`: a fresh time-limited URL.
pub async fn issue_url(state: web::Data<Arc<EmulatorState>>, id: web::Path<String>, req: HttpRequest) -> HttpResponse {
    if state.bulk.exports.get(&id).is_none() {
        return state.bulk.exports.not_found(&id);
    }
    let redirect = web::Query::<DownloadQuery>::from_query(req.query_string())
        .ok()
        .and_then(|q| q.issue_redirect)
        .unwrap_or(true);
    let url = state
        .bulk
        .urls
        .issue(&state.faults, &state.downloads_url(), &export_path(&id));
    if redirect {
        HttpResponse::SeeOther().insert_header((header::LOCATION, url)).finish()
    } else {
        HttpResponse::Ok().json(json!({"url": url}))
    }
}

/// `GET|HEAD /downloads/exports/{id}`: the file.
pub async fn download(state: web::Data<Arc<EmulatorState>>, id: web::Path<String>, req: HttpRequest) -> HttpResponse {
    let Some(file) = state.bulk.exports.get(&id) else {
        return state.bulk.exports.not_found(&id);
    };
    if let Err(why) = state.bulk.urls.check(&state.faults, req.path(), req.query_string()) {
        return error(403, "missing.permissions", why.message());
    }
    respond(
        &req,
        &state.faults,
        Download {
            content: file.content.clone(),
            content_type: file.content_type(),
            etag: file.etag.clone(),
        },
    )
}

/// Registers the export routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v2/downloads/{downloadId}", web::get().to(issue_url))
        .route("/downloads/exports/{id}", web::get().to(download))
        .route("/downloads/exports/{id}", web::head().to(download));
}
