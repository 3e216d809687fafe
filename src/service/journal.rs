//! The journal: the store, its writer and the store actor on their own
//! thread, and the journaled ingest path.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use actix::prelude::*;
use cxrelay_actors::registry::Component;
use cxrelay_actors::{ComponentKind, QueueStats, Registry, Router};

use super::StartError;
use crate::cluster::ClusterIngest;
use crate::config::{Config, ListenerConfig};
use crate::ingest::Ingest;
use crate::store::{AppendQueue, Committer, DurableListener, JournalWriter, Store, StoreDb};

/// The journal and its actors, when the journal is on.
pub(super) struct Journal {
    pub db: Arc<StoreDb>,
    pub store: Addr<Store>,
    pub routed_upto: Arc<AtomicU64>,
}

/// The store file under `data_dir`, and its component.
fn open_store(config: &Config, registry: &Registry) -> Result<(Arc<Component>, Arc<StoreDb>), StartError> {
    let component = registry.register("store", ComponentKind::Store, true);
    let db = Arc::new(StoreDb::open(
        &config.service.data_dir,
        config.service.idempotency_window.as_millis() as i64,
        config.service.idempotency_cache_keys,
    )?);
    db.set_dead_letter_cap(config.service.dead_letters_per_component);
    Ok((component, db))
}

/// Cluster mode on a processing node: the store holds dead letters only
/// (the stream is the journal); those sent back are published to the
/// stream.
pub(super) async fn open_dead_letters(
    config: &Config,
    registry: &Registry,
    ingest: ClusterIngest,
    threads: &mut Vec<Arbiter>,
) -> Result<Addr<Store>, StartError> {
    let (component, db) = open_store(config, registry)?;
    let (queue, rx) = AppendQueue::new(config.service.journal_queue);
    actix::spawn(crate::cluster::dead_letters::send_back(
        rx,
        queue.clone(),
        ingest,
        db.clone(),
    ));
    let thread = Arbiter::new();
    let store = Store::start_in_arbiter(&thread.handle(), move |_| {
        // No journal here: nothing is routed from it, no listener's
        // position is kept.
        Store::new(
            db,
            Arc::new(AtomicU64::new(0)),
            Vec::new(),
            &Default::default(),
            component,
            queue,
        )
    });
    threads.push(thread);
    Ok(store)
}

/// Opens the store, starts the journal writer and the store actor on the
/// router's thread, and returns the journaled ingest path.
///
/// Every journaled event goes from the writer to the router: on one thread,
/// a group commit reaches the router without waking another thread (a
/// measured 1-2 us per webhook request on two cores). The router is idle
/// while the writer syncs anyway: it has nothing new to route.
pub(super) async fn open_journal(
    config: &Config,
    registry: &Registry,
    router: &Addr<Router>,
    router_thread: &ArbiterHandle,
    durable: &[(&ListenerConfig, Arc<QueueStats>)],
) -> Result<(Ingest, Journal), StartError> {
    let (component, db) = open_store(config, registry)?;
    db.set_max_journal_bytes(config.service.max_journal_bytes);
    let names: Vec<String> = durable.iter().map(|(l, _)| l.name.clone()).collect();
    for gone in db.forget_listeners(&names)? {
        tracing::warn!(listener = %gone, "listener is no longer configured; its position is forgotten");
    }
    let saved = db.acks()?;
    let (queue, rx) = AppendQueue::new(config.service.journal_queue);
    let routed_upto = Arc::new(AtomicU64::new(0));
    let committer = Committer::start(
        router_thread,
        db.clone(),
        router.clone(),
        routed_upto.clone(),
        component.clone(),
        &queue,
    );
    {
        let writer = committer.clone();
        JournalWriter::start_in_arbiter(router_thread, move |_| JournalWriter::new(writer, rx));
    }
    let listeners: Vec<DurableListener> = durable
        .iter()
        .map(|(l, stats)| DurableListener {
            name: l.name.clone(),
            stats: stats.clone(),
        })
        .collect();
    let store = {
        let (db, routed, c, q) = (db.clone(), routed_upto.clone(), component.clone(), queue.clone());
        Store::start_in_arbiter(router_thread, move |_| Store::new(db, routed, listeners, &saved, c, q))
    };
    Ok((Ingest::journaled(committer), Journal { db, store, routed_upto }))
}
