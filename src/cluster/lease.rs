//! Source leases: a source that pulls from Genesys runs on one node only,
//! the holder of its key in the `leases` bucket.
//!
//! - **Taking it**: `create` succeeds only when the key does not exist
//!   (compare-and-set on revision 0); standbys try again every 500 ms.
//! - **Holding it**: the owner renews it every third of `lease_ttl` with
//!   `update` on the revision it holds (compare-and-set: it fails if anyone
//!   else wrote the key). The bucket's `max_age` is `lease_ttl`: a key not
//!   renewed for that long is removed by the server, whatever any clock
//!   says, and a standby's `create` then succeeds.
//! - **Losing it**: the owner counts its lease from the moment it *sent*
//!   the last successful renewal (earlier than the server's count starts).
//!   If it cannot renew before that runs out, or a renewal finds the key
//!   changed, it stops the process at once (exit code 3): a source must
//!   never run on two nodes (a second notifications source would take the
//!   first's channels), and stopping is the one way to be sure its actors
//!   send nothing more. A process supervisor starts it again as a standby.
//! - **Resuming**: before the source starts, its checkpoints are read from
//!   the `checkpoints` bucket, so it resumes where the last owner stopped;
//!   a notifications channel records the time in between as a gap (and
//!   backfills it when configured).

use std::time::{Duration, Instant};

use bytes::Bytes;
use cxrelay_actors::registry::{Component, ComponentState};

use super::ingest::{ClusterIngest, RETRY};
use super::nats::{key_of, Nats};
use super::ClusterSettings;

/// The exit code of a node that lost a lease it could not give up cleanly.
pub const LOST_LEASE_EXIT: i32 = 3;

/// Waits until this node holds the lease of `source`, then reads its
/// checkpoints; answers the revision held.
pub async fn acquire(
    nats: &Nats,
    ingest: &ClusterIngest,
    s: &ClusterSettings,
    source: &str,
    component: &Component,
) -> (u64, Instant) {
    let key = key_of(source);
    let mut said = false;
    let (revision, sent) = loop {
        let sent = Instant::now();
        match nats.leases.create(&key, Bytes::from(s.node.clone())).await {
            Ok(rev) => break (rev, sent),
            Err(e) => {
                if !said {
                    said = true;
                    let owner = match nats.leases.get(&key).await {
                        Ok(Some(v)) => String::from_utf8_lossy(&v).into_owned(),
                        _ => "another node".into(),
                    };
                    tracing::info!(source, %owner, error = %e, "standby: the source runs on {owner}");
                    component.fail(ComponentState::Idle, format!("standby: the source runs on {owner}"));
                }
                tokio::time::sleep(RETRY).await;
            }
        }
    };
    tracing::info!(source, node = %s.node, "took the source's lease");
    loop {
        match ingest.load_checkpoints(source).await {
            Ok(n) => {
                tracing::info!(source, checkpoints = n, "resuming from the saved checkpoints");
                break;
            }
            Err(e) => {
                tracing::warn!(source, error = %e, "cannot read the checkpoints yet");
                tokio::time::sleep(RETRY).await;
            }
        }
        // The lease runs meanwhile: reading must not outlast it.
        if sent.elapsed() >= s.lease_ttl / 2 {
            fence(source, "could not read its checkpoints within half the lease");
        }
    }
    (revision, sent)
}

/// Renews the lease of `source` for as long as the process runs; stops the
/// process when it cannot.
pub async fn hold(
    nats: Nats,
    s: std::sync::Arc<ClusterSettings>,
    source: String,
    mut revision: u64,
    mut sent: Instant,
) {
    let key = key_of(&source);
    let every = s.lease_ttl / 3;
    // Stop this much before the lease could run out on the server.
    let margin = s.lease_ttl / 10;
    loop {
        let since = sent.elapsed();
        if since < every {
            tokio::time::sleep(every - since).await;
        }
        // Attempts until one is answered, each bounded, all within the lease
        // (a server that died mid-request is replaced by another meanwhile).
        loop {
            let attempt = Instant::now();
            let Some(left) = (sent + s.lease_ttl).checked_duration_since(attempt + margin) else {
                fence(&source, "the lease ran out before NATS answered");
            };
            let wait = left.min(every / 2).max(Duration::from_millis(100));
            match tokio::time::timeout(wait, nats.leases.update(&key, Bytes::from(s.node.clone()), revision)).await {
                Ok(Ok(rev)) => {
                    revision = rev;
                    sent = attempt;
                    break;
                }
                Ok(Err(e)) if is_conflict(&e) => {
                    // An attempt that timed out may have been applied: the
                    // key then holds this node's name at a newer revision.
                    match nats.leases.entry(&key).await {
                        Ok(Some(entry)) if entry.value.as_ref() == s.node.as_bytes() => revision = entry.revision,
                        _ => fence(&source, &format!("the lease changed hands: {e}")),
                    }
                }
                Ok(Err(e)) => {
                    tracing::warn!(source, error = %e, "lease not renewed; trying again");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(_) => tracing::warn!(source, "lease renewal unanswered; trying again"),
            }
        }
    }
}

fn is_conflict(e: &async_nats::jetstream::kv::UpdateError) -> bool {
    // A wrong last sequence: someone else wrote (or the key expired).
    e.to_string().to_lowercase().contains("wrong last sequence")
}

/// Stops the process: the source must not run without its lease.
fn fence(source: &str, why: &str) -> ! {
    tracing::error!(
        source,
        "lost the source's lease ({why}); stopping so that it never runs twice"
    );
    eprintln!("cxrelay: lost the lease of source `{source}` ({why}); exiting");
    std::process::exit(LOST_LEASE_EXIT)
}

/// Gives the lease up at an orderly stop, so a standby takes over at once.
pub async fn release(nats: &Nats, source: &str) {
    let _ = nats.leases.delete(key_of(source)).await;
}
