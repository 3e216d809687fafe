use std::sync::Arc;

use actix::prelude::*;

use super::messages::{AckHandle, Deliver, ListenerGone, ListenerId};
use super::router::Router;
use crate::event::Event;
use crate::queue::{DropReason, ListenerQueue};

/// Moves batches from a listener's queue to its actor, one batch in flight
/// at a time: awaiting each reply is what keeps the actor's own (unbounded)
/// mailbox at one message.
pub(super) async fn pump(
    id: ListenerId,
    queue: Arc<ListenerQueue<Arc<Event>>>,
    recipient: Recipient<Deliver>,
    batch_max: usize,
    router: Addr<Router>,
) {
    let ack = AckHandle(queue.stats().clone());
    while let Some(events) = queue.pop_batch(batch_max).await {
        let n = events.len();
        let sent = recipient
            .send(Deliver {
                listener: id,
                events,
                ack: ack.clone(),
            })
            .await;
        queue.stats().end_delivery(n, sent.is_ok());
        if sent.is_err() {
            // The listener's actor died with this batch; it and whatever is
            // still queued are lost for this listener only, and counted.
            queue.stats().count_drop(DropReason::ListenerGone, n as u64);
            queue.close_and_discard();
            router.do_send(ListenerGone(id));
            return;
        }
    }
}
