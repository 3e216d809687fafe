//! Membership: each node says it is alive in the `nodes` bucket (a key
//! that expires `node_ttl` after its last beat), reads who else is, tells
//! its [`ProcessNode`] which partitions are its own, and keeps the
//! `cluster` component's `/status` (members, partitions with their node
//! and lag, lease owners) up to date.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use cxrelay_actors::registry::{Component, ComponentState};
use futures_util::StreamExt;

use super::nats::Nats;
use super::partition::{assigned, consumer_name, owner_of};
use super::process_node::{Assign, ProcessCounters, ProcessNode};
use super::telemetry::{ClusterStatus, LeaseStatus, NodeRecord, PartitionStatus, LAG, NODES};
use super::{ClusterSettings, Role};

/// Keeps this node a member and its partitions assigned.
pub struct Membership {
    nats: Nats,
    settings: Arc<ClusterSettings>,
    process: Option<Addr<ProcessNode>>,
    component: Arc<Component>,
    counters: Arc<ProcessCounters>,
    /// Sources whose leases are shown.
    leased: Vec<String>,
    record: NodeRecord,
    busy: bool,
}

impl Membership {
    /// Membership of this node; `process` gets the assignments (none on an
    /// ingest-only node).
    pub fn new(
        nats: Nats,
        settings: Arc<ClusterSettings>,
        process: Option<Addr<ProcessNode>>,
        component: Arc<Component>,
        counters: Arc<ProcessCounters>,
        leased: Vec<String>,
    ) -> Self {
        let record = NodeRecord {
            node: settings.node.clone(),
            roles: settings.roles.iter().map(|r| r.as_str().to_string()).collect(),
            started_ms: cxrelay_actors::event::now_ms(),
        };
        Membership {
            nats,
            settings,
            process,
            component,
            counters,
            leased,
            record,
            busy: false,
        }
    }

    /// The beat: how often a member says it is alive (a third of its TTL,
    /// so two lost beats in a row do not make it look dead).
    fn beat(&self) -> Duration {
        self.settings.node_ttl / 3
    }
}

/// Everything one round found out.
struct Round {
    members: Vec<NodeRecord>,
    partitions: Vec<PartitionStatus>,
    leases: Vec<LeaseStatus>,
}

async fn round(nats: Nats, s: Arc<ClusterSettings>, record: NodeRecord, leased: Vec<String>) -> Result<Round, String> {
    let body = serde_json::to_vec(&record).unwrap_or_default();
    nats.nodes
        .put(&s.node, Bytes::from(body))
        .await
        .map_err(|e| format!("saying this node is alive: {e}"))?;
    let mut members = Vec::new();
    let mut keys = nats.nodes.keys().await.map_err(|e| format!("reading members: {e}"))?;
    let mut names = Vec::new();
    while let Some(k) = keys.next().await {
        names.push(k.map_err(|e| format!("reading members: {e}"))?);
    }
    for k in names {
        // A member that expired between the listing and here is gone.
        if let Ok(Some(v)) = nats.nodes.get(&k).await {
            if let Ok(r) = serde_json::from_slice::<NodeRecord>(&v) {
                members.push(r);
            }
        }
    }
    members.sort_by(|a, b| a.node.cmp(&b.node));
    let processing: Vec<String> = members
        .iter()
        .filter(|m| m.roles.iter().any(|r| r == Role::Process.as_str()))
        .map(|m| m.node.clone())
        .collect();
    let mut partitions = Vec::with_capacity(s.partitions as usize);
    let stream = nats.js.get_stream(&s.stream).await.ok();
    for p in 0..s.partitions {
        let mut status = PartitionStatus {
            partition: p,
            node: owner_of(p, &processing),
            ..PartitionStatus::default()
        };
        if let Some(stream) = &stream {
            if let Ok(info) = stream.consumer_info(consumer_name(p)).await {
                status.pending = info.num_pending;
                status.ack_pending = info.num_ack_pending as u64;
                status.redelivered = info.num_redelivered as u64;
            }
        }
        partitions.push(status);
    }
    let mut leases = Vec::with_capacity(leased.len());
    for source in leased {
        let owner = match nats.leases.get(super::nats::key_of(&source)).await {
            Ok(Some(v)) => Some(String::from_utf8_lossy(&v).into_owned()),
            _ => None,
        };
        leases.push(LeaseStatus { source, owner });
    }
    Ok(Round {
        members,
        partitions,
        leases,
    })
}

impl Membership {
    fn tick(&mut self, ctx: &mut Context<Self>) {
        if self.busy {
            return;
        }
        self.busy = true;
        let fut = round(
            self.nats.clone(),
            self.settings.clone(),
            self.record.clone(),
            self.leased.clone(),
        );
        ctx.spawn(fut.into_actor(self).map(|r, this, _| {
            this.busy = false;
            match r {
                Ok(r) => this.apply(r),
                Err(e) => this.component.fail(ComponentState::Degraded, e),
            }
        }));
    }

    fn apply(&mut self, r: Round) {
        let s = &self.settings;
        let processing: Vec<String> = r
            .members
            .iter()
            .filter(|m| m.roles.iter().any(|x| x == Role::Process.as_str()))
            .map(|m| m.node.clone())
            .collect();
        let owned = if s.has(Role::Process) {
            assigned(s.partitions, &processing, &s.node)
        } else {
            Vec::new()
        };
        if let Some(p) = &self.process {
            p.do_send(Assign(owned.clone()));
        }
        let lag: u64 = r.partitions.iter().map(|p| p.pending + p.ack_pending).sum();
        for p in &r.partitions {
            metrics::gauge!(LAG, "partition" => p.partition.to_string()).set((p.pending + p.ack_pending) as f64);
        }
        metrics::gauge!(NODES).set(r.members.len() as f64);
        self.component.set_status(&ClusterStatus {
            node: s.node.clone(),
            roles: s.roles.iter().map(|r| r.as_str()).collect(),
            servers: s.shown.clone(),
            stream: s.stream.clone(),
            nodes: r.members,
            partitions: r.partitions,
            owned,
            leases: r.leases,
            lag,
            redeliveries: self.counters.redeliveries.load(Ordering::Relaxed),
            consumed: self.counters.consumed.load(Ordering::Relaxed),
            acknowledged: self.counters.acknowledged.load(Ordering::Relaxed),
        });
        if self.component.state() != ComponentState::Running {
            self.component.set_state(ComponentState::Running);
            self.component.clear_error();
        }
    }
}

impl Actor for Membership {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.tick(ctx);
        ctx.run_interval(self.beat(), |this, ctx| this.tick(ctx));
    }
}

/// Removes this node from the members at once (an orderly stop), so its
/// partitions move without waiting for its key to expire.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Leave;

impl Handler<Leave> for Membership {
    type Result = ResponseFuture<()>;
    fn handle(&mut self, _: Leave, ctx: &mut Self::Context) -> Self::Result {
        ctx.stop();
        let (nodes, node) = (self.nats.nodes.clone(), self.settings.node.clone());
        Box::pin(async move {
            let _ = nodes.delete(&node).await;
        })
    }
}
