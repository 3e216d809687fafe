//! Orderly shutdown: stop intake, let the journal route what it committed,
//! drain listener queues, commit sinks, save positions, stop the server.

use std::time::{Duration, Instant};

use cxrelay_actors::supervision::{StillStopping, StopChildren};
use cxrelay_actors::ComponentKind;

use super::Service;
use crate::store::store_actor::SyncStore;

/// How long a lossy listener may take to commit at shutdown.
const LOSSY_GRACE: Duration = Duration::from_secs(2);

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
        for l in &self.listeners {
            if let Some(flush) = l.flush.lock().as_ref() {
                flush.nudge();
            }
        }
        // Whatever sources handed over before they stopped gets committed
        // and routed before the queues drain.
        while self.ingest.outstanding() > 0 && self.ingest.is_available() {
            if left().is_zero() {
                clean = false;
                tracing::warn!(
                    appends = self.ingest.outstanding(),
                    "journaled events were not all routed before the shutdown timeout"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if !self.directory.lossless_drained(left()).await {
            clean = false;
            tracing::warn!("listener queues did not drain before the shutdown timeout");
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
