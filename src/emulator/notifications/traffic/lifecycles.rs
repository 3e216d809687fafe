//! Conversation lifecycles: which events a conversation produces on the
//! subscribed topics, in time order, with its ids and times derived from
//! the seed; several interleaved.

use crate::emulator::ids::{derive, uuid};
use crate::emulator::notifications::frames::{push_iso_ms, push_uuid};

/// Namespace of lifecycle values in [`derive`].
pub(super) const LIFE: u64 = 0x11FE;

/// Which family a subscribed topic belongs to.
#[derive(Default)]
pub(super) struct Universe {
    /// `v2.routing.queues.{id}.conversations`: (queue id, topic).
    queues: Vec<(String, usize)>,
    /// `v2.users.{id}.presence`: (user id, topic).
    users: Vec<(String, usize)>,
    /// `v2.detail.events.conversation.{id}.{phase}`: (conversation, topic per phase).
    conversations: Vec<(String, [Option<usize>; PHASES.len()])>,
    /// Anything else.
    other: Vec<usize>,
}

pub(super) const PHASES: [&str; 7] = [
    "customer.start",
    "acd.start",
    "acd.end",
    "user.start",
    "user.end",
    "acw",
    "customer.end",
];

impl Universe {
    fn of(topics: &[String]) -> Universe {
        let mut u = Universe::default();
        let mut conv_index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for (i, t) in topics.iter().enumerate() {
            let parts: Vec<&str> = t.split('.').collect();
            match parts.as_slice() {
                ["v2", "routing", "queues", q, "conversations"] => u.queues.push((q.to_string(), i)),
                ["v2", "users", user, "presence"] => u.users.push((user.to_string(), i)),
                ["v2", "detail", "events", "conversation", c, rest @ ..] => {
                    let phase = rest.join(".");
                    match PHASES.iter().position(|p| *p == phase) {
                        Some(p) => {
                            let at = *conv_index.entry(c.to_string()).or_insert_with(|| {
                                u.conversations.push((c.to_string(), [None; PHASES.len()]));
                                u.conversations.len() - 1
                            });
                            u.conversations[at].1[p] = Some(i);
                        }
                        None => u.other.push(i),
                    }
                }
                _ => u.other.push(i),
            }
        }
        u
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queues.is_empty() && self.users.is_empty() && self.conversations.is_empty() && self.other.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Step {
    Detail(usize),
    Queue(QueueState),
    Presence(&'static str),
    Other,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum QueueState {
    Waiting,
    Connected,
    Ended,
}

/// One conversation's ids and times.
pub(super) struct Life {
    pub(super) m: u64,
    pub(super) conversation: String,
    pub(super) queue: String,
    pub(super) user: String,
    /// Times: start, in queue, answered, ended, wrap-up done.
    pub(super) t: [i64; 5],
    pub(super) ani: u64,
    /// Steps left, in time order: (step, topic, time).
    steps: std::collections::VecDeque<(Step, usize, i64)>,
    /// Its ids, times and number already rendered (quoted), so that each of
    /// its events is mostly copies.
    pub(super) text: LifeText,
}

/// Derived ids of a lifecycle, by their number in [`ID_KEYS`].
const ID_KEYS: [u64; 9] = [1, 2, 3, 11, 12, 13, 30, 40, 41];

pub(super) struct LifeText {
    ids: [Vec<u8>; ID_KEYS.len()],
    times: [Vec<u8>; 5],
    pub(super) tel: Vec<u8>,
}

impl LifeText {
    fn new(seed: u64, m: u64, t: &[i64; 5], ani: u64) -> LifeText {
        let ids = ID_KEYS.map(|k| {
            let mut v = Vec::with_capacity(38);
            v.push(b'"');
            push_uuid(&mut v, seed, &[LIFE, m, 100 + k]);
            v.push(b'"');
            v
        });
        let times = t.map(|ms| {
            let mut v = Vec::with_capacity(26);
            push_iso_ms(&mut v, ms);
            v
        });
        LifeText {
            ids,
            times,
            tel: format!("\"tel:+1555{ani:07}\"").into_bytes(),
        }
    }

    pub(super) fn id(&self, k: u64) -> &[u8] {
        ID_KEYS
            .iter()
            .position(|x| *x == k)
            .map_or(&b"null"[..], |i| &self.ids[i])
    }

    pub(super) fn time(&self, t: &[i64; 5], ms: i64, out: &mut Vec<u8>) {
        match t.iter().position(|x| *x == ms) {
            Some(i) => out.extend_from_slice(&self.times[i]),
            None => push_iso_ms(out, ms),
        }
    }
}

/// The interleaved stream of lifecycle events over a universe.
pub(super) struct Lifecycles {
    seed: u64,
    start_ms: i64,
    pub(super) universe: Universe,
    pub(super) slots: Vec<Option<Life>>,
    next_slot: usize,
    next_life: u64,
}

impl Lifecycles {
    pub(super) fn new(seed: u64, start_ms: i64, in_flight: usize) -> Self {
        Lifecycles {
            seed,
            start_ms,
            universe: Universe::default(),
            slots: (0..in_flight.max(1)).map(|_| None).collect(),
            next_slot: 0,
            next_life: 0,
        }
    }

    pub(super) fn set_universe(&mut self, topics: &[String]) {
        self.universe = Universe::of(topics);
        // Lifecycles in flight refer to topics by index: start afresh.
        self.slots.iter_mut().for_each(|s| *s = None);
    }

    fn r(&self, m: u64, k: u64) -> u64 {
        derive(self.seed, &[LIFE, m, k])
    }

    fn life(&self, m: u64) -> Life {
        let u = &self.universe;
        let pick = |len: usize| (m % len.max(1) as u64) as usize;
        let conv = (!u.conversations.is_empty()).then(|| &u.conversations[pick(u.conversations.len())]);
        let queue = (!u.queues.is_empty()).then(|| &u.queues[pick(u.queues.len())]);
        let user = (!u.users.is_empty()).then(|| &u.users[pick(u.users.len())]);
        let t0 = self.start_ms + m as i64 * 100;
        let t1 = t0 + 2_000 + (self.r(m, 1) % 18_000) as i64;
        let t2 = t1 + 1_000 + (self.r(m, 2) % 89_000) as i64;
        let t3 = t2 + 30_000 + (self.r(m, 3) % 570_000) as i64;
        let t4 = t3 + 5_000 + (self.r(m, 4) % 55_000) as i64;
        let mut steps = std::collections::VecDeque::with_capacity(13);
        let detail = |p: usize| conv.and_then(|c| c.1[p]);
        let mut push = |step: Step, topic: Option<usize>, at: i64| {
            if let Some(topic) = topic {
                steps.push_back((step, topic, at));
            }
        };
        if !u.other.is_empty() {
            push(Step::Other, Some(u.other[pick(u.other.len())]), t0);
        }
        push(Step::Detail(0), detail(0), t0);
        push(Step::Detail(1), detail(1), t1);
        push(Step::Queue(QueueState::Waiting), queue.map(|q| q.1), t1);
        push(Step::Detail(2), detail(2), t2);
        push(Step::Detail(3), detail(3), t2);
        push(Step::Queue(QueueState::Connected), queue.map(|q| q.1), t2);
        push(Step::Presence("On Queue"), user.map(|x| x.1), t2);
        push(Step::Detail(4), detail(4), t3);
        push(Step::Detail(6), detail(6), t3);
        push(Step::Queue(QueueState::Ended), queue.map(|q| q.1), t3);
        push(Step::Detail(5), detail(5), t4);
        push(Step::Presence("Available"), user.map(|x| x.1), t4);
        let t = [t0, t1, t2, t3, t4];
        let ani = self.r(m, 5) % 10_000_000;
        Life {
            m,
            conversation: conv.map_or_else(|| uuid(self.seed, &[LIFE, m]), |c| c.0.clone()),
            queue: queue.map_or_else(|| uuid(self.seed, &[LIFE, 0, m % 50]), |q| q.0.clone()),
            user: user.map_or_else(|| uuid(self.seed, &[LIFE, 1, m % 200]), |x| x.0.clone()),
            text: LifeText::new(self.seed, m, &t, ani),
            t,
            ani,
            steps,
        }
    }

    /// The next event: (slot holding its lifecycle, step, topic, time).
    pub(super) fn next(&mut self) -> Option<(usize, Step, usize, i64)> {
        if self.universe.is_empty() {
            return None;
        }
        let n = self.slots.len();
        // Every lifecycle has at least one step once the universe is not
        // empty, so this finds one within a lap.
        for _ in 0..=n {
            let slot = self.next_slot;
            self.next_slot = (self.next_slot + 1) % n;
            if self.slots[slot].as_ref().is_none_or(|l| l.steps.is_empty()) {
                let life = self.life(self.next_life);
                self.next_life += 1;
                self.slots[slot] = Some(life);
            }
            if let Some(life) = self.slots[slot].as_mut() {
                if let Some((step, topic, at)) = life.steps.pop_front() {
                    return Some((slot, step, topic, at));
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(v: &[&str]) -> Vec<String> {
        let mut t: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        t.sort();
        t
    }

    #[test]
    fn a_lifecycle_keeps_its_times_in_order() {
        let t = topics(
            &PHASES
                .map(|p| format!("v2.detail.events.conversation.c9.{p}"))
                .iter()
                .map(String::as_str)
                .collect::<Vec<_>>(),
        );
        let mut l = Lifecycles::new(5, 0, 1);
        l.set_universe(&t);
        let mut last = i64::MIN;
        for _ in 0..PHASES.len() {
            let (_, _, _, at) = l.next().unwrap();
            assert!(at >= last);
            last = at;
        }
    }
}
