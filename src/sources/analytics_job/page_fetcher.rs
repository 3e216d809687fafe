//! Fetches a job's result pages ahead of ingestion: the next page is asked
//! for as soon as the previous one arrives, while earlier pages are still
//! being committed, so the fetch rate is set by the rate budget and by
//! backpressure, not by a fetch-then-ingest waterfall. At most `prefetch`
//! pages are fetched and not yet committed (a permit travels with each
//! page and is released when its commit is done).

use std::sync::Arc;

use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

use super::jobs_api::{JobsApi, ResultsPage};
use crate::genesys::ApiError;

/// What the fetcher hands over, in job order.
pub enum Fetched {
    /// A page, asked for with `cursor`.
    Page {
        /// The page.
        page: ResultsPage,
        /// Released once the page is committed.
        permit: OwnedSemaphorePermit,
    },
    /// Fetching stopped: the page asked for with `cursor` failed.
    Failed {
        /// Why.
        error: ApiError,
        /// The cursor that failed (none: the first page).
        cursor: Option<String>,
    },
}

/// The channel pages arrive on, and the limit on pages in flight.
pub fn channel(prefetch: usize) -> (Arc<Semaphore>, mpsc::Sender<Fetched>, mpsc::Receiver<Fetched>) {
    let n = prefetch.max(1);
    let (tx, rx) = mpsc::channel(n + 1);
    (Arc::new(Semaphore::new(n)), tx, rx)
}

/// Fetches pages of `job` from `cursor` until the last one (no cursor) or
/// an error. Ends early when the receiver is gone.
pub async fn fetch_pages(
    api: JobsApi,
    job: String,
    mut cursor: Option<String>,
    page_size: u32,
    permits: Arc<Semaphore>,
    tx: mpsc::Sender<Fetched>,
) {
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match api.results(&job, cursor.as_deref(), page_size).await {
            Ok(page) => {
                let next = page.cursor.clone().filter(|c| !c.is_empty());
                if tx.send(Fetched::Page { page, permit }).await.is_err() {
                    return;
                }
                match next {
                    Some(c) => cursor = Some(c),
                    None => return,
                }
            }
            Err(error) => {
                let _ = tx.send(Fetched::Failed { error, cursor }).await;
                return;
            }
        }
    }
}
