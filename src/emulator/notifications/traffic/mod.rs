//! Traffic: a deterministic generator of conversation lifecycles, sent on
//! every channel subscribed to their topics, and its control endpoint.
//!
//! The org's traffic does not wait for sockets: an event for a channel
//! whose socket is down (or silenced) is lost, as on the platform, and the
//! channel's [`super::ChannelRecord`] says so. Every event is a pure
//! function of the seed, the run, the event's index and the subscribed
//! topics: its `CorrelationId` is `uuid(seed, [run namespace, run, index])`.
//!
//! A lifecycle (conversation `m`) takes its conversation, queue and user
//! from the subscribed topics (`v2.detail.events.conversation.{id}.*`,
//! `v2.routing.queues.{id}.conversations`, `v2.users.{id}.presence`; ids
//! are derived when no such topic is subscribed) and produces, in time
//! order: customer.start, acd.start, a queue conversation event (waiting),
//! acd.end, user.start, a queue conversation event (connected), presence
//! (On Queue), user.end, customer.end, a queue conversation event (ended),
//! acw, presence (Available). Only events on subscribed topics are sent;
//! other subscribed topics get one generic event per lifecycle. Several
//! lifecycles are interleaved. Detail events carry `eventTime` (epoch ms),
//! queue conversation events ISO times; conversation events are ~1.5 KB.
//!
//! - [`control`]: the current run (held by the notifications world).
//! - `lifecycles` and `render`: the events, and their bytes.
//! - `generator`: the thread that runs a run ([`TrafficControl::start`]).
//! - [`endpoints`]: the control endpoint, `/_emulator/traffic`.

pub mod control;
pub mod endpoints;
mod generator;
mod lifecycles;
mod render;

pub use control::{TrafficControl, TrafficStatus};

/// The first `count` event frames of a traffic run on `topics`, rendered
/// as the generator renders them (for contract tests over many seeds,
/// without sockets).
pub fn sample_frames(seed: u64, topics: &[String], count: usize) -> Vec<String> {
    let mut sorted = topics.to_vec();
    sorted.sort();
    sorted.dedup();
    let mut lifecycles = lifecycles::Lifecycles::new(seed, 1_714_572_000_000, 8);
    lifecycles.set_universe(&sorted);
    let renderer = render::Renderer {
        seed,
        run: 1,
        pad_to: None,
    };
    let mut out = Vec::with_capacity(count);
    let mut frame = Vec::new();
    for i in 0..count {
        let Some((slot, step, topic, at)) = lifecycles.next() else {
            break;
        };
        if let Some(life) = lifecycles.slots[slot].as_ref() {
            renderer.render(i as u64, life, step, &sorted[topic], at, &mut frame);
            out.push(String::from_utf8_lossy(&frame).into_owned());
        }
    }
    out
}
