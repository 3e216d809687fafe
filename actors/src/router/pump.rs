use std::sync::Arc;

use actix::prelude::*;
use tokio::sync::watch;

use super::messages::{AckHandle, Deliver, ListenerGone, ListenerId};
use super::router::Router;
use crate::event::Event;
use crate::queue::{DropReason, ListenerQueue};

/// Moves batches from a listener's queue to its actor, one batch in flight
/// at a time: awaiting each reply is what keeps the actor's own (unbounded)
/// mailbox at one message.
///
/// With `keep_when_gone`, a batch whose actor died is kept and handed to the
/// replacement actor (announced through `recipient`), so nothing is lost
/// and order is kept. Otherwise the listener is pruned.
pub(super) async fn pump(
    id: ListenerId,
    queue: Arc<ListenerQueue<Arc<Event>>>,
    mut recipient: watch::Receiver<Option<Recipient<Deliver>>>,
    batch_max: usize,
    keep_when_gone: bool,
    router: Addr<Router>,
) {
    let ack = AckHandle(queue.stats().clone());
    while let Some(events) = queue.pop_batch(batch_max).await {
        let n = events.len();
        let mut batch = Some(events);
        loop {
            let current = recipient.borrow_and_update().clone();
            let sent = match (current, batch.as_ref()) {
                (Some(r), Some(b)) => {
                    // Keep a copy only where it may be needed again.
                    let events = if keep_when_gone {
                        b.clone()
                    } else {
                        batch.take().unwrap_or_default()
                    };
                    let send = r.send(Deliver {
                        listener: id,
                        events,
                        ack: ack.clone(),
                    });
                    if !keep_when_gone {
                        send.await.is_ok()
                    } else {
                        match until_replaced(send, &mut recipient).await {
                            Some(outcome) => outcome.is_ok(),
                            // A stuck actor never answers: its replacement
                            // gets the batch instead.
                            None => continue,
                        }
                    }
                }
                _ => false,
            };
            if sent {
                queue.stats().end_delivery(n, true);
                break;
            }
            router.do_send(ListenerGone(id));
            if !keep_when_gone {
                // Lost for this listener only, and counted.
                queue.stats().end_delivery(n, false);
                queue.stats().count_drop(DropReason::ListenerGone, n as u64);
                queue.close_and_discard();
                return;
            }
            // Wait for a replacement actor (or the end of the listener).
            if recipient.changed().await.is_err() {
                queue.stats().end_delivery(n, false);
                queue.stats().count_drop(DropReason::ListenerGone, n as u64);
                queue.close_and_discard();
                return;
            }
        }
    }
}

/// Waits for `send`, unless a replacement actor is announced first (then
/// `None`). The end of the listener (the sender dropped) does not count:
/// the send still decides.
async fn until_replaced<F: std::future::Future>(
    send: F,
    recipient: &mut watch::Receiver<Option<Recipient<Deliver>>>,
) -> Option<F::Output> {
    tokio::select! {
        // An answer that is already there wins: the batch was handled.
        biased;
        outcome = send => Some(outcome),
        Ok(()) = recipient.changed() => None,
    }
}
