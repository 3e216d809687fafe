//! The events a listener's sink has taken from its queue and not yet
//! acknowledged, kept where the sink's next instance finds them.
//!
//! The router hands a replacement sink the queue and the batch it was
//! sending, but events the old instance had already taken are only in that
//! instance, and acknowledgements are positions: once the replacement
//! acknowledges a later batch, the journal forgets the earlier one. So each
//! instance records what it holds here (a few pointer copies per batch), and
//! a new instance claims the record, writes those events first, and fences
//! the old instance out: one that wakes later (its hung write finally
//! returning) finds it no longer owns the record and stops without
//! acknowledging anything.

use std::sync::Arc;

use cxrelay_actors::router::AckHandle;
use cxrelay_actors::Event;
use parking_lot::Mutex;

/// A listener's held events, shared by its successive sink instances
/// through the listener's registry component.
#[derive(Default)]
pub struct HeldEvents(Mutex<Record>);

#[derive(Default)]
struct Record {
    /// The instance that owns the record (its claim number).
    owner: u64,
    events: Vec<Arc<Event>>,
    ack: Option<AckHandle>,
}

/// What a new instance takes over.
pub(super) struct TakenOver {
    /// Its claim on the record.
    pub claim: Claim,
    /// Events its predecessor held, oldest first.
    pub events: Vec<Arc<Event>>,
    /// Where they are acknowledged.
    pub ack: Option<AckHandle>,
}

impl HeldEvents {
    /// Makes the caller the owner of the record; earlier owners are fenced
    /// out from now on.
    pub(super) fn claim(self: &Arc<Self>) -> TakenOver {
        let mut r = self.0.lock();
        r.owner += 1;
        TakenOver {
            claim: Claim {
                held: self.clone(),
                token: r.owner,
            },
            events: r.events.clone(),
            ack: r.ack.clone(),
        }
    }
}

/// One instance's ownership of a listener's record.
pub(super) struct Claim {
    held: Arc<HeldEvents>,
    token: u64,
}

impl Claim {
    /// Records events taken from the queue. Answers false (recording
    /// nothing) when a newer instance owns the record.
    pub(super) fn hold(&self, events: &[Arc<Event>], ack: &AckHandle) -> bool {
        let mut r = self.held.0.lock();
        if r.owner != self.token {
            return false;
        }
        r.events.extend(events.iter().cloned());
        r.ack = Some(ack.clone());
        true
    }

    /// The oldest `n` events are durable (or dead-lettered) and may be
    /// acknowledged. Answers false (changing nothing) when a newer instance
    /// owns the record: the events are then its to write and acknowledge.
    pub(super) fn release(&self, n: usize) -> bool {
        let mut r = self.held.0.lock();
        if r.owner != self.token {
            return false;
        }
        let n = n.min(r.events.len());
        r.events.drain(..n);
        true
    }

    /// Whether this instance still owns the record.
    pub(super) fn is_current(&self) -> bool {
        self.held.0.lock().owner == self.token
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cxrelay_actors::queue::QueueStats;

    fn events(range: std::ops::Range<u64>) -> Vec<Arc<Event>> {
        range
            .map(|i| Arc::new(Event::builder("test", "t").seq(i).build()))
            .collect()
    }

    #[test]
    fn a_new_claim_takes_over_what_is_held_and_fences_the_old_one_out() {
        let held = Arc::new(HeldEvents::default());
        let ack = AckHandle::new(QueueStats::new(10));
        let first = held.claim();
        assert!(first.events.is_empty());
        assert!(first.claim.hold(&events(1..4), &ack));
        assert!(first.claim.release(1));
        let second = held.claim();
        let seqs: Vec<u64> = second.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, vec![2, 3]);
        assert!(second.ack.is_some());
        assert!(!first.claim.is_current());
        assert!(!first.claim.release(2), "the old instance cannot drop them");
        assert!(!first.claim.hold(&events(9..10), &ack));
        assert!(second.claim.hold(&events(4..5), &ack));
        assert!(second.claim.release(3));
        assert!(held.claim().events.is_empty());
    }
}
