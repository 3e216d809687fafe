//! Analytics conversation details (genesys-api.md §3): asynchronous jobs
//! with cursor-paged results, the synchronous query, and data
//! availability. Records come from [`crate::emulator::records`].

pub mod job_book;
pub mod jobs;
pub mod query;
pub mod results;

use actix_web::web;

pub use job_book::{Job, JobBook, JobState, ServedPage};
pub use results::{decode_cursor, encode_cursor, CursorPosition};

const BASE: &str = "/api/v2/analytics/conversations/details";

/// Registers the analytics routes (`availability` before `{jobId}`).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(&format!("{BASE}/query"), web::post().to(query::query))
        .route(&format!("{BASE}/jobs"), web::post().to(jobs::submit))
        .route(&format!("{BASE}/jobs/availability"), web::get().to(jobs::availability))
        .route(&format!("{BASE}/jobs/{{jobId}}"), web::get().to(jobs::status))
        .route(&format!("{BASE}/jobs/{{jobId}}"), web::delete().to(jobs::delete))
        .route(
            &format!("{BASE}/jobs/{{jobId}}/results"),
            web::get().to(results::results),
        );
}
