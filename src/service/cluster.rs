//! Cluster mode in the service: connects to NATS, starts the processing
//! node and membership, and runs sources under leases.

use std::sync::Arc;

use actix::prelude::*;
use cxrelay_actors::registry::{Component, ComponentState};
use cxrelay_actors::{ComponentKind, QueueStats, Registry, Router};
use parking_lot::Mutex;

use super::StartError;
use crate::cluster::membership::Leave;
use crate::cluster::nats::{connect, Nats};
use crate::cluster::process_node::ProcessCounters;
use crate::cluster::{lease, ClusterIngest, ClusterSettings, Membership, ProcessNode, Role};
use crate::config::{Config, Secrets, SourceConfig};
use crate::ingest::Ingest;
use crate::sources::SourceContext;

/// Cluster mode's running parts.
pub(super) struct ClusterRuntime {
    nats: Nats,
    pub settings: Arc<ClusterSettings>,
    component: Arc<Component>,
    counters: Arc<ProcessCounters>,
    membership: Option<Addr<Membership>>,
    process: Option<Addr<ProcessNode>>,
    /// Sources whose lease this node holds now.
    held: Arc<Mutex<Vec<String>>>,
}

/// Connects to NATS and answers the ingest path into the stream.
pub(super) async fn connect_cluster(
    config: &Config,
    secrets: &Secrets,
    registry: &Registry,
) -> Result<Option<(Ingest, ClusterRuntime)>, StartError> {
    let Some(c) = &config.cluster else {
        return Ok(None);
    };
    let settings = Arc::new(ClusterSettings::new(c, secrets, config.service.idempotency_window));
    let component = registry.register("cluster", ComponentKind::Store, true);
    let nats = connect(&settings)
        .await
        .map_err(|e| StartError::Cluster(e.to_string()))?;
    tracing::info!(node = %settings.node, stream = %settings.stream, partitions = settings.partitions,
        roles = ?settings.roles, "cluster mode: connected to NATS {}", settings.shown.join(","));
    let ingest = Ingest::cluster(ClusterIngest::new(nats.clone(), settings.clone()));
    Ok(Some((
        ingest,
        ClusterRuntime {
            nats,
            settings,
            component,
            counters: Arc::default(),
            membership: None,
            process: None,
            held: Arc::default(),
        },
    )))
}

impl ClusterRuntime {
    /// Starts pulling (on a processing node) and the membership beat.
    pub fn start_nodes(
        &mut self,
        config: &Config,
        router: &Addr<Router>,
        durable: &[Arc<QueueStats>],
        threads: &mut Vec<Arbiter>,
    ) {
        // The metrics recorder is installed by now (with the HTTP server).
        crate::cluster::telemetry::register();
        let process = self.settings.has(Role::Process).then(|| {
            let thread = Arbiter::new();
            let (nats, settings, router, durable, counters) = (
                self.nats.clone(),
                self.settings.clone(),
                router.clone(),
                durable.to_vec(),
                self.counters.clone(),
            );
            let addr = ProcessNode::start_in_arbiter(&thread.handle(), move |_| {
                ProcessNode::new(nats, settings, router, durable, counters)
            });
            threads.push(thread);
            addr
        });
        let leased = leased_sources(config).map(|s| s.name.clone()).collect();
        self.process = process.clone();
        let membership = Membership::new(
            self.nats.clone(),
            self.settings.clone(),
            process,
            self.component.clone(),
            self.counters.clone(),
            leased,
        )
        .start();
        self.membership = Some(membership);
    }

    /// Starts the sources: webhooks at once (every ingest node takes them),
    /// the others each once this node holds its lease.
    pub async fn start_sources(&self, config: &Config, cx: &SourceContext) -> Result<(), StartError> {
        if !self.settings.has(Role::Ingest) {
            return Ok(());
        }
        for s in config.source.iter().filter(|s| s.enabled) {
            if s.spec.builder().http_path().is_some() {
                start_source(s, cx).await?;
            }
        }
        for s in leased_sources(config) {
            let (s, cx) = (s.clone(), cx.clone());
            let (nats, settings, held) = (self.nats.clone(), self.settings.clone(), self.held.clone());
            let Some(ingest) = cx.ingest.as_cluster().cloned() else {
                continue;
            };
            actix::spawn(async move {
                let component = cx.registry.register(&s.name, ComponentKind::Source, false);
                let (revision, sent) = lease::acquire(&nats, &ingest, &settings, &s.name, &component).await;
                component.set_state(ComponentState::Starting);
                held.lock().push(s.name.clone());
                actix::spawn(lease::hold(
                    nats.clone(),
                    settings.clone(),
                    s.name.clone(),
                    revision,
                    sent,
                ));
                if let Err(e) = start_source(&s, &cx).await {
                    tracing::error!(source = %s.name, error = %e, "source could not start");
                    component.fail(ComponentState::Failed, e.to_string());
                }
            });
        }
        Ok(())
    }

    /// At an orderly stop, once sources stopped: gives their leases up and
    /// stops pulling, so that listener queues can drain.
    pub async fn release_leases(&self) {
        if let Some(p) = &self.process {
            let _ = p.send(crate::cluster::process_node::StopPulling).await;
        }
        let held = std::mem::take(&mut *self.held.lock());
        for source in held {
            lease::release(&self.nats, &source).await;
        }
    }

    /// At an orderly stop, once listeners committed: acknowledges what they
    /// committed and leaves the members.
    pub async fn leave(&self) {
        if let Some(p) = &self.process {
            let _ = p.send(crate::cluster::process_node::Finish).await;
        }
        if let Some(m) = &self.membership {
            let _ = m.send(Leave).await;
        }
        let _ = self.nats.client.flush().await;
    }
}

/// Sources that run on one node at a time: all but webhooks.
fn leased_sources(config: &Config) -> impl Iterator<Item = &SourceConfig> {
    config
        .source
        .iter()
        .filter(|s| s.enabled && s.spec.builder().http_path().is_none())
}

async fn start_source(s: &SourceConfig, cx: &SourceContext) -> Result<(), StartError> {
    s.spec
        .builder()
        .start(&s.name, cx)
        .await
        .map_err(|e| StartError::Source {
            source_name: s.name.clone(),
            message: e.to_string(),
        })
}
