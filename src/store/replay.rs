//! Replay at start: events journaled but not acknowledged by a durable
//! listener go to it again, in order, before any new event.

use std::collections::HashMap;
use std::sync::Arc;

use actix::Addr;
use cxrelay_actors::router::PublishTo;
use cxrelay_actors::{Pattern, Router};

use super::db::{StoreDb, StoreError};

/// Events read from the journal per round trip.
const CHUNK: usize = 1000;

/// Replays to each `(name, patterns)` listener the events after its saved
/// position that it matches (or that target it). Answers how many events
/// each listener got.
pub async fn replay_unacknowledged(
    db: &Arc<StoreDb>,
    router: &Addr<Router>,
    listeners: &[(String, Vec<Pattern>)],
) -> Result<HashMap<String, usize>, StoreError> {
    let saved = db.acks()?;
    let mut counts = HashMap::new();
    for (name, patterns) in listeners {
        let mut after = saved.get(name).copied().unwrap_or(0);
        let mut sent = 0;
        loop {
            let entries = db.scan(after, CHUNK)?;
            let Some(last) = entries.last() else {
                break;
            };
            after = last.event.seq;
            let events: Vec<_> = entries
                .into_iter()
                .filter(|e| match &e.target {
                    Some(t) => t == name,
                    None => patterns.iter().any(|p| p.matches(&e.event.topic)),
                })
                .map(|e| Arc::new(e.event))
                .collect();
            if events.is_empty() {
                continue;
            }
            sent += events.len();
            // Waits while the listener's queue is full: memory stays bounded
            // however long the journal is.
            let _ = router
                .send(PublishTo {
                    listener: name.clone().into(),
                    events,
                })
                .await;
        }
        if sent > 0 {
            tracing::info!(listener = %name, events = sent, "replayed unacknowledged events");
        }
        counts.insert(name.clone(), sent);
    }
    Ok(counts)
}
