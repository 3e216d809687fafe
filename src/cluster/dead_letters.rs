//! Dead letters in cluster mode. A processing node keeps its listeners'
//! dead letters in its own store (the redb file under `data_dir`, as
//! without a cluster), so `/status`, the admin API and `cxrelay dlq` work
//! the same; sent back, they go through the stream (marked for their one
//! listener), and are removed once the stream acknowledged them.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::ClusterIngest;
use crate::store::{AppendOutcome, AppendQueue, AppendRequest, StoreDb};

/// Publishes each append the store hands over (dead letters sent back) to
/// the stream, for ever.
pub async fn send_back(
    mut rx: mpsc::Receiver<AppendRequest>,
    queue: AppendQueue,
    ingest: ClusterIngest,
    db: Arc<StoreDb>,
) {
    while let Some(AppendRequest { append, reply }) = rx.recv().await {
        let outcome = ingest
            .send_back(append.events, append.target.as_deref())
            .await
            .map(|r| AppendOutcome {
                accepted: r.accepted,
                duplicates: r.duplicates,
            });
        if outcome.is_ok() && !append.delete_dead_letters.is_empty() {
            db.remove_replayed(&append.delete_dead_letters);
        }
        let _ = reply.send(outcome);
        queue.finished();
    }
}
