//! The journal's publisher: routes committed events in commit order.
//!
//! Every commit hands its events here (see [`super::committer`]). What
//! waits is routed together, one message to the router per run of events
//! for the same destination; only then are its appends counted as routed,
//! `routed_upto` raised and the committers' room given back. While a
//! `block` listener is full, routing waits, and so, once their room is
//! spent, do the commits behind it.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use cxrelay_actors::Router;
use futures_util::StreamExt;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio_stream::wrappers::UnboundedReceiverStream;

use super::routes::Routes;

/// Publications routed together, at most.
const MAX_GROUP: usize = 64;

/// One commit's events, for the publisher.
pub(super) struct Publication {
    /// The events, by destination, in commit order.
    pub routes: Routes,
    /// The highest position among them (0: none).
    pub max_seq: u64,
    /// Appends the commit took (counted as outstanding until routed).
    pub appends: usize,
    /// Room to give back once routed.
    pub room: usize,
    /// Told once routed.
    pub done: oneshot::Sender<()>,
}

/// Appends handed over and not yet routed: counted for the shutdown, and
/// (those committed in place) holding room.
#[derive(Clone)]
pub(super) struct InFlight {
    pub outstanding: Arc<AtomicUsize>,
    pub room: Arc<Semaphore>,
}

impl InFlight {
    /// `appends` are done with (routed, refused, or left to the journal
    /// for the next start), `room` of them committed in place.
    pub fn settle(&self, appends: usize, room: usize) {
        self.outstanding.fetch_sub(appends, Ordering::AcqRel);
        self.room.add_permits(room);
    }
}

/// Routes what commits hand over, in the order they were committed.
pub(super) struct JournalPublisher {
    router: Addr<Router>,
    routed_upto: Arc<AtomicU64>,
    in_flight: InFlight,
    rx: Option<mpsc::UnboundedReceiver<Publication>>,
}

impl JournalPublisher {
    pub(super) fn new(
        router: Addr<Router>,
        routed_upto: Arc<AtomicU64>,
        in_flight: InFlight,
        rx: mpsc::UnboundedReceiver<Publication>,
    ) -> Self {
        JournalPublisher {
            router,
            routed_upto,
            in_flight,
            rx: Some(rx),
        }
    }
}

impl Actor for JournalPublisher {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if let Some(rx) = self.rx.take() {
            ctx.add_stream(UnboundedReceiverStream::new(rx).ready_chunks(MAX_GROUP));
        }
    }
}

impl StreamHandler<Vec<Publication>> for JournalPublisher {
    fn handle(&mut self, publications: Vec<Publication>, ctx: &mut Self::Context) {
        let mut routes = Routes::default();
        let (mut max_seq, mut appends, mut room) = (0, 0, 0);
        let mut done = Vec::with_capacity(publications.len());
        for p in publications {
            routes.extend(p.routes);
            max_seq = max_seq.max(p.max_seq);
            appends += p.appends;
            room += p.room;
            done.push(p.done);
        }
        let router = self.router.clone();
        let routed = self.routed_upto.clone();
        let in_flight = self.in_flight.clone();
        ctx.wait(
            async move {
                routes.deliver(&router).await;
                routed.fetch_max(max_seq, Ordering::AcqRel);
                in_flight.settle(appends, room);
                for d in done {
                    let _ = d.send(());
                }
            }
            .into_actor(self),
        );
    }
}
