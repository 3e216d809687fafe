//! Orderly shutdown: stop intake, let the journal route what it committed,
//! drain listener queues, commit sinks, save positions, stop the server.

use std::time::{Duration, Instant};

use cxrelay_actors::supervision::{StillStopping, StopChildren};
use cxrelay_actors::ComponentKind;

use super::Service;
use crate::sinks::FlushSignal;
use crate::store::store_actor::SyncStore;

/// How long a lossy listener may take to commit at shutdown.
const LOSSY_GRACE: Duration = Duration::from_secs(2);

/// Routing that has not moved for this long while a listener's target is
/// down is held by that listener's full queue.
const ROUTING_STALLED: Duration = Duration::from_millis(200);

impl Service {
    /// Orderly shutdown: stop intake, let the journal route what it
    /// committed, drain listener queues, commit sinks, save positions, stop
    /// the HTTP server. Answers whether everything finished in time.
    pub async fn shutdown(self) -> bool {
        let deadline = Instant::now() + self.config.service.shutdown_timeout;
        let left = || deadline.saturating_duration_since(Instant::now());
        tracing::info!("shutting down: stopping sources");
        self.ingress.close_all();
        let _ = self.supervisor.send(StopChildren(Some(ComponentKind::Source))).await;
        let mut clean = true;
        // A source hands over what it read as it stops (a notification
        // socket's last frames exist nowhere else): wait for each to go.
        loop {
            let stopping = self.supervisor.send(StillStopping).await.unwrap_or(0);
            if stopping == 0 {
                break;
            }
            if left().is_zero() {
                clean = false;
                tracing::warn!(sources = stopping, "sources did not stop before the shutdown timeout");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(c) = &self.cluster {
            c.release_leases().await;
        }
        // A sink waiting out a retry delay tries again now: if its target
        // is back, its queue drains at once rather than after the delay.
        // Failures are counted from here: one more says the target is
        // still down.
        let mut signals = Vec::new();
        for l in &self.listeners {
            if let Some(flush) = l.flush.lock().as_ref() {
                signals.push((l.name.clone(), flush.signal.clone(), flush.signal.failures()));
                flush.nudge();
            }
        }
        // A `block` listener whose target is still down would hold the
        // stop until the timeout for nothing when its events are kept for
        // the next start (in the journal, or the cluster's stream): it is
        // no longer waited for, nor are the events routing waits to hand
        // it. Without a journal, waiting is their only chance.
        let kept = self.journal.is_some() || self.cluster.is_some();
        let failed_again = |(_, signal, at_nudge): &&(String, FlushSignal, u64)| kept && signal.failures() > *at_nudge;
        let down = |name: &str| signals.iter().filter(failed_again).any(|(n, ..)| n == name);
        // Whatever sources handed over before they stopped gets committed
        // and routed before the queues drain.
        let mut routing = (self.ingest.outstanding(), Instant::now());
        while self.ingest.outstanding() > 0 && self.ingest.is_available() {
            if self.ingest.outstanding() != routing.0 {
                routing = (self.ingest.outstanding(), Instant::now());
            }
            if left().is_zero() {
                clean = false;
                tracing::warn!(
                    appends = self.ingest.outstanding(),
                    "journaled events were not all routed before the shutdown timeout"
                );
                break;
            }
            // Routing that still moves is waited for (other listeners get
            // their events now); routing held by a full queue whose target
            // is down is not.
            let stalled = routing.1.elapsed() >= ROUTING_STALLED;
            let held_by = if stalled {
                signals.iter().find(failed_again)
            } else {
                None
            };
            if let Some((name, ..)) = held_by {
                clean = false;
                tracing::warn!(appends = self.ingest.outstanding(), listener = %name,
                    "journaled events wait to be routed while a listener's target is down: they are routed at the next start");
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let undrained = self.directory.lossless_undrained(left(), down).await;
        if !undrained.is_empty() {
            clean = false;
            for name in &undrained {
                if down(name) {
                    tracing::warn!(listener = %name, "its target is still down (a commit failed again once the stop began): \
                        what waits in its queue was never acknowledged and is delivered at the next start");
                } else {
                    tracing::warn!(listener = %name, "its queue did not drain before the shutdown timeout");
                }
            }
        }
        for l in &self.listeners {
            let Some(flush) = l.flush.lock().clone() else {
                continue;
            };
            let wait = if l.lossless { left() } else { left().min(LOSSY_GRACE) };
            let outcome = match tokio::time::timeout(wait, flush.flush()).await {
                Ok(Ok(())) => continue,
                Ok(Err(e)) => format!("final commit failed: {e}"),
                _ => "final commit did not finish in time".to_string(),
            };
            if l.lossless {
                clean = false;
                tracing::error!(listener = %l.name, "{outcome}");
            } else {
                tracing::warn!(listener = %l.name, "{outcome}; its pending events are dropped (when_full is lossy)");
            }
        }
        let _ = self.supervisor.send(StopChildren(Some(ComponentKind::Listener))).await;
        if let Some(c) = &self.cluster {
            c.leave().await;
        }
        if let Some(j) = &self.journal {
            if let Ok(Err(e)) | Err(e) = j.store.send(SyncStore).await.map_err(|e| e.to_string()) {
                clean = false;
                tracing::error!(error = %e, "saving positions at shutdown failed");
            }
        }
        self.http.stop(true).await;
        #[cfg(feature = "emulator")]
        if let Some(e) = self.genesys.and_then(|g| g.emulator) {
            e.stop().await;
        }
        for t in &self.threads {
            t.stop();
        }
        tracing::info!(clean, "shutdown complete");
        clean
    }
}
