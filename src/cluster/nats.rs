//! The connection to the NATS cluster and the JetStream objects cluster
//! mode runs on: the event stream, one durable consumer per partition, and
//! the key-value buckets (checkpoints, members, leases). Every node makes
//! sure they exist; creating what exists is a no-op.

use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, PriorityPolicy};
use async_nats::jetstream::stream::{DiscardPolicy, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, kv, stream};

use super::partition::{consumer_name, subject};
use super::{ClusterError, ClusterSettings};
use crate::nats_client::connect_options;

/// The priority group every processing node pulls in: the server pins one
/// client per partition consumer.
pub const GROUP: &str = "cxrelay";

/// A node's connection and the objects it uses.
#[derive(Clone)]
pub struct Nats {
    /// The client (reconnects by itself).
    pub client: async_nats::Client,
    /// JetStream.
    pub js: jetstream::Context,
    /// Source checkpoints, by source (or channel) name.
    pub checkpoints: kv::Store,
    /// Live members: a key per node, gone `node_ttl` after its last beat.
    pub nodes: kv::Store,
    /// Source leases: a key per leased source, gone `lease_ttl` after its
    /// last renewal.
    pub leases: kv::Store,
}

/// Connects, and makes sure the stream, its partition consumers and the
/// buckets exist.
pub async fn connect(s: &ClusterSettings) -> Result<Nats, ClusterError> {
    let nats_error = |what: &str, e: &dyn std::fmt::Display| ClusterError::Nats(format!("{what}: {e}"));
    let options = connect_options(&s.auth, s.tls, s.tls_ca_file.as_deref(), format!("cxrelay/{}", s.node))
        .await
        .map_err(ClusterError::Nats)?
        .connection_timeout(s.timeout)
        .request_timeout(Some(s.timeout))
        // Intake waits (503) while reconnecting.
        .retry_on_initial_connect();
    let client = options
        .connect(s.servers.clone())
        .await
        .map_err(|e| nats_error(&format!("connecting to {}", s.shown.join(",")), &e))?;
    let js = jetstream::ContextBuilder::new()
        .timeout(s.timeout)
        .max_ack_inflight(4096)
        .backpressure_on_inflight(true)
        .build(client.clone());
    let stream = js
        .get_or_create_stream(stream_config(s))
        .await
        .map_err(|e| nats_error(&format!("stream `{}`", s.stream), &e))?;
    for p in 0..s.partitions {
        let name = consumer_name(p);
        stream
            .get_or_create_consumer(&name, consumer_config(s, p))
            .await
            .map_err(|e| nats_error(&format!("consumer `{name}` of stream `{}`", s.stream), &e))?;
    }
    let checkpoints = bucket(&js, s, "checkpoints", Duration::ZERO).await?;
    let nodes = bucket(&js, s, "nodes", s.node_ttl).await?;
    let leases = bucket(&js, s, "leases", s.lease_ttl).await?;
    Ok(Nats {
        client,
        js,
        checkpoints,
        nodes,
        leases,
    })
}

/// The event stream: a work queue (an event is deleted once its partition
/// acknowledged it, so the stream holds exactly the work in flight),
/// bounded in bytes (full, it refuses publishes: intake waits), and
/// deduplicating `Nats-Msg-Id` over the idempotency window.
pub fn stream_config(s: &ClusterSettings) -> stream::Config {
    stream::Config {
        name: s.stream.clone(),
        subjects: vec![format!("{}.*", s.stream)],
        retention: RetentionPolicy::WorkQueue,
        storage: StorageType::File,
        num_replicas: s.replicas,
        max_bytes: i64::try_from(s.max_bytes).unwrap_or(i64::MAX),
        discard: DiscardPolicy::New,
        duplicate_window: s.duplicate_window,
        ..stream::Config::default()
    }
}

/// Partition `p`'s durable consumer: explicit acks, at most
/// `max_ack_pending` handed out, and one pinned client at a time.
pub fn consumer_config(s: &ClusterSettings, p: u32) -> pull::Config {
    pull::Config {
        durable_name: Some(consumer_name(p)),
        filter_subject: subject(&s.stream, p),
        ack_policy: AckPolicy::Explicit,
        ack_wait: s.ack_wait,
        max_ack_pending: i64::try_from(s.max_ack_pending).unwrap_or(i64::MAX),
        priority_policy: PriorityPolicy::PinnedClient,
        priority_groups: vec![GROUP.to_string()],
        priority_timeout: s.takeover_after,
        ..pull::Config::default()
    }
}

async fn bucket(
    js: &jetstream::Context,
    s: &ClusterSettings,
    what: &str,
    max_age: Duration,
) -> Result<kv::Store, ClusterError> {
    let name = format!("{}_{what}", s.stream);
    if let Ok(store) = js.get_key_value(&name).await {
        return Ok(store);
    }
    js.create_key_value(kv::Config {
        bucket: name.clone(),
        history: 1,
        max_age,
        num_replicas: s.replicas,
        storage: StorageType::File,
        ..kv::Config::default()
    })
    .await
    .map_err(|e| ClusterError::Nats(format!("bucket `{name}`: {e}")))
}

/// A source or channel name as a key: hex, since names may hold characters
/// keys may not.
pub fn key_of(name: &str) -> String {
    hex::encode(name.as_bytes())
}

/// The name a key stands for.
pub fn name_of(key: &str) -> Option<String> {
    hex::decode(key).ok().and_then(|b| String::from_utf8(b).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_through_keys() {
        for n in ["queues", "queues/channel-0", "a b:c"] {
            assert_eq!(name_of(&key_of(n)).as_deref(), Some(n));
        }
    }
}
