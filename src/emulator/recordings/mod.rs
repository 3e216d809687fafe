//! Recording batch downloads (genesys-api.md §4): a batch request of at
//! most 100 recordings is InProgress for `recording_delay`, then Completed
//! with a time-limited `resultUrl` per recording; the URLs serve
//! deterministic audio bytes with `Range` and answer 403 once expired
//! (or revoked by the `expire_downloads` fault).

pub mod recording_book;

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;
use serde_json::json;

use self::recording_book::Item;
pub use self::recording_book::RecordingBook;
use crate::emulator::downloads::{respond, Content, Download};
use crate::emulator::error_body::error;
use crate::emulator::ids::{derive, derive_str};
use crate::emulator::state::EmulatorState;

const AUDIO: u64 = 0x0041_5544;
/// Largest batch, as on the platform.
pub const MAX_BATCH: usize = 100;

#[derive(Deserialize)]
struct BatchRequest {
    #[serde(rename = "batchDownloadRequestList")]
    list: Option<Vec<Item>>,
}

/// One recording's audio: an Ogg signature, then deterministic bytes. The
/// bytes depend on the recording, not on the batch that hands out its URL,
/// so a transfer resumed through a fresh batch continues the same file.
struct Audio {
    seed: u64,
    recording: u64,
    len: u64,
}

impl Content for Audio {
    fn len(&self) -> u64 {
        self.len
    }

    fn fill(&self, offset: u64, buf: &mut [u8]) {
        for (k, b) in buf.iter_mut().enumerate() {
            let pos = offset + k as u64;
            *b = match pos {
                0..=3 => b"OggS"[pos as usize],
                _ => derive(self.seed, &[AUDIO, self.recording, pos / 8]).to_le_bytes()[(pos % 8) as usize],
            };
        }
    }
}

/// A recording's identity as a number.
fn recording_key(conversation_id: &str, recording_id: &str) -> u64 {
    derive_str(0, &format!("{conversation_id}/{recording_id}"))
}

fn recording_path(batch: &str, index: usize) -> String {
    format!("/downloads/recordings/{batch}/{index}")
}

/// `POST /api/v2/recording/batchrequests`
pub async fn submit(state: web::Data<Arc<EmulatorState>>, body: web::Bytes) -> HttpResponse {
    state.log.record_body("POST", "/api/v2/recording/batchrequests", &body);
    let list = match serde_json::from_slice::<BatchRequest>(&body) {
        Ok(BatchRequest { list: Some(l) }) if !l.is_empty() => l,
        Ok(_) => {
            return error(
                400,
                "bad.request",
                "batchDownloadRequestList must list at least one recording",
            )
        }
        Err(e) => return error(400, "bad.request", &format!("Invalid batch request: {e}")),
    };
    if list.len() > MAX_BATCH {
        return error(
            400,
            "bad.request",
            &format!(
                "A batch request can hold at most {MAX_BATCH} recordings, not {}",
                list.len()
            ),
        );
    }
    let id = state.bulk.recordings.add(list);
    HttpResponse::Ok().json(json!({"id": id, "selfUri": format!("/api/v2/recording/batchrequests/{id}")}))
}

/// `GET /api/v2/recording/batchrequests/{id}`
pub async fn status(state: web::Data<Arc<EmulatorState>>, id: web::Path<String>) -> HttpResponse {
    let Some(batch) = state.bulk.recordings.get(&id) else {
        return error(404, "not.found", &format!("Batch request {id} was not found"));
    };
    let expected = batch.items.len();
    if batch.submitted.elapsed() < state.settings.bulk.recording_delay {
        return HttpResponse::Ok().json(json!({
            "id": *id, "expectedResultCount": expected, "resultCount": 0, "errorCount": 0,
            "status": "InProgress", "results": [],
        }));
    }
    let mut errors = 0;
    let results: Vec<serde_json::Value> = batch
        .items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            if item.recording_id.starts_with("missing") {
                errors += 1;
                json!({"conversationId": item.conversation_id, "recordingId": item.recording_id,
                       "errorMsg": "Recording not found"})
            } else {
                let url = state
                    .bulk
                    .urls
                    .issue(&state.faults, &state.downloads_url(), &recording_path(&id, i));
                json!({"conversationId": item.conversation_id, "recordingId": item.recording_id,
                       "resultUrl": url, "contentType": "audio/ogg"})
            }
        })
        .collect();
    HttpResponse::Ok().json(json!({
        "id": *id, "expectedResultCount": expected, "resultCount": expected - errors, "errorCount": errors,
        "status": "Completed", "results": results,
    }))
}

/// `GET|HEAD /downloads/recordings/{batch}/{index}`
pub async fn download(
    state: web::Data<Arc<EmulatorState>>,
    path: web::Path<(String, usize)>,
    req: HttpRequest,
) -> HttpResponse {
    let (batch_id, index) = path.into_inner();
    let Some(batch) = state.bulk.recordings.get(&batch_id).filter(|b| index < b.items.len()) else {
        return error(404, "not.found", "No such recording download");
    };
    if let Err(why) = state.bulk.urls.check(&state.faults, req.path(), req.query_string()) {
        return error(403, "missing.permissions", why.message());
    }
    let item = &batch.items[index];
    let audio = Audio {
        seed: state.settings.seed,
        recording: recording_key(&item.conversation_id, &item.recording_id),
        len: state.settings.bulk.recording_bytes,
    };
    let etag = format!("\"{:016x}\"", derive(audio.seed, &[AUDIO, audio.recording, audio.len]));
    respond(
        &req,
        &state.faults,
        Download {
            content: Arc::new(audio),
            content_type: "audio/ogg",
            etag,
        },
    )
}

/// Registers the recording routes.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/v2/recording/batchrequests", web::post().to(submit))
        .route("/api/v2/recording/batchrequests/{id}", web::get().to(status))
        .route("/downloads/recordings/{batch}/{index}", web::get().to(download))
        .route("/downloads/recordings/{batch}/{index}", web::head().to(download));
}
