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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use actix_web::{web, HttpResponse};
use cxrelay_actors::event::now_ms;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;

use super::channel_socket::Outgoing;
use super::channels::Routing;
use super::frames::{push_iso_ms, push_str, push_u64, push_uuid};
use crate::emulator::ids::{derive, uuid};
use crate::emulator::settings::notifications::TrafficRequest;
use crate::emulator::state::EmulatorState;

/// Namespaces of derived values.
const RUN_IDS: u64 = 0x7A4F;
const LIFE: u64 = 0x11FE;
/// Events rendered per generator step (and at most per socket batch).
const BATCH: usize = 256;
/// Lifecycles in flight at once unless the request says otherwise.
const DEFAULT_IN_FLIGHT: usize = 8;

#[derive(Debug, Default)]
struct Progress {
    emitted: AtomicU64,
    stop: AtomicBool,
    finished: AtomicBool,
}

#[derive(Debug)]
struct Run {
    id: u64,
    request: TrafficRequest,
    start_ms: i64,
    progress: Arc<Progress>,
}

/// The current traffic run.
#[derive(Debug, Default)]
pub struct TrafficControl {
    current: Mutex<Option<Run>>,
    runs: AtomicU64,
    configured_started: AtomicBool,
}

/// What `GET /_emulator/traffic` answers.
#[derive(Debug, Clone, Serialize)]
pub struct TrafficStatus {
    /// The run (0: none yet).
    pub run: u64,
    /// Whether it is still sending.
    pub running: bool,
    /// Events emitted so far.
    pub emitted: u64,
    /// How it was asked for.
    pub request: Option<TrafficRequest>,
    /// Time of its first lifecycle.
    pub start_ms: Option<i64>,
}

impl TrafficControl {
    /// Starts a run (stopping the current one); answers its number.
    pub fn start(&self, state: &Arc<EmulatorState>, request: TrafficRequest) -> u64 {
        let id = self.runs.fetch_add(1, Ordering::AcqRel) + 1;
        let start_ms = request.start_ms.unwrap_or_else(now_ms);
        let progress = Arc::new(Progress::default());
        let run = Run {
            id,
            request: request.clone(),
            start_ms,
            progress: progress.clone(),
        };
        if let Some(old) = self.current.lock().replace(run) {
            old.progress.stop.store(true, Ordering::Release);
        }
        let weak = Arc::downgrade(state);
        let spawned = std::thread::Builder::new()
            .name("emulator-traffic".into())
            .spawn(move || generate(weak, id, request, start_ms, progress));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "emulator: cannot start the traffic generator");
        }
        tracing::info!(run = id, "emulator: traffic started");
        id
    }

    /// Starts the configured traffic once, when the first channel exists.
    pub(super) fn start_configured(&self, state: &Arc<EmulatorState>) {
        let Some(request) = state.notifications.settings.traffic.clone() else {
            return;
        };
        if !self.configured_started.swap(true, Ordering::AcqRel) && self.current.lock().is_none() {
            self.start(state, request);
        }
    }

    /// Stops the current run.
    pub fn stop(&self) {
        if let Some(run) = self.current.lock().as_ref() {
            run.progress.stop.store(true, Ordering::Release);
        }
    }

    /// The current run.
    pub fn status(&self) -> TrafficStatus {
        match self.current.lock().as_ref() {
            Some(r) => TrafficStatus {
                run: r.id,
                running: !r.progress.finished.load(Ordering::Acquire),
                emitted: r.progress.emitted.load(Ordering::Acquire),
                request: Some(r.request.clone()),
                start_ms: Some(r.start_ms),
            },
            None => TrafficStatus {
                run: 0,
                running: false,
                emitted: 0,
                request: None,
                start_ms: None,
            },
        }
    }

    /// The `CorrelationId` of event `index` of run `run`.
    pub fn correlation_id(&self, seed: u64, run: u64, index: u64) -> String {
        uuid(seed, &[RUN_IDS, run, index])
    }
}

/// Which family a subscribed topic belongs to.
#[derive(Default)]
struct Universe {
    /// `v2.routing.queues.{id}.conversations`: (queue id, topic).
    queues: Vec<(String, usize)>,
    /// `v2.users.{id}.presence`: (user id, topic).
    users: Vec<(String, usize)>,
    /// `v2.detail.events.conversation.{id}.{phase}`: (conversation, topic per phase).
    conversations: Vec<(String, [Option<usize>; PHASES.len()])>,
    /// Anything else.
    other: Vec<usize>,
}

const PHASES: [&str; 7] = [
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

    fn is_empty(&self) -> bool {
        self.queues.is_empty() && self.users.is_empty() && self.conversations.is_empty() && self.other.is_empty()
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Step {
    Detail(usize),
    Queue(QueueState),
    Presence(&'static str),
    Other,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum QueueState {
    Waiting,
    Connected,
    Ended,
}

/// One conversation's ids and times.
struct Life {
    m: u64,
    conversation: String,
    queue: String,
    user: String,
    /// Times: start, in queue, answered, ended, wrap-up done.
    t: [i64; 5],
    ani: u64,
    /// Steps left, in time order: (step, topic, time).
    steps: std::collections::VecDeque<(Step, usize, i64)>,
    /// Its ids, times and number already rendered (quoted), so that each of
    /// its events is mostly copies.
    text: LifeText,
}

/// Derived ids of a lifecycle, by their number in [`ID_KEYS`].
const ID_KEYS: [u64; 9] = [1, 2, 3, 11, 12, 13, 30, 40, 41];

struct LifeText {
    ids: [Vec<u8>; ID_KEYS.len()],
    times: [Vec<u8>; 5],
    tel: Vec<u8>,
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

    fn id(&self, k: u64) -> &[u8] {
        ID_KEYS
            .iter()
            .position(|x| *x == k)
            .map_or(&b"null"[..], |i| &self.ids[i])
    }

    fn time(&self, t: &[i64; 5], ms: i64, out: &mut Vec<u8>) {
        match t.iter().position(|x| *x == ms) {
            Some(i) => out.extend_from_slice(&self.times[i]),
            None => push_iso_ms(out, ms),
        }
    }
}

/// The interleaved stream of lifecycle events over a universe.
struct Lifecycles {
    seed: u64,
    start_ms: i64,
    universe: Universe,
    slots: Vec<Option<Life>>,
    next_slot: usize,
    next_life: u64,
}

impl Lifecycles {
    fn new(seed: u64, start_ms: i64, in_flight: usize) -> Self {
        Lifecycles {
            seed,
            start_ms,
            universe: Universe::default(),
            slots: (0..in_flight.max(1)).map(|_| None).collect(),
            next_slot: 0,
            next_life: 0,
        }
    }

    fn set_universe(&mut self, topics: &[String]) {
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
    fn next(&mut self) -> Option<(usize, Step, usize, i64)> {
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

/// Renders one event frame.
struct Renderer {
    seed: u64,
    run: u64,
    pad_to: Option<usize>,
}

impl Renderer {
    fn quoted_id(&self, out: &mut Vec<u8>, life: &Life, k: u64) {
        out.extend_from_slice(life.text.id(k));
    }

    fn tel(&self, out: &mut Vec<u8>, life: &Life) {
        out.extend_from_slice(&life.text.tel);
    }

    fn time(&self, out: &mut Vec<u8>, life: &Life, ms: i64) {
        life.text.time(&life.t, ms, out);
    }

    fn render(&self, index: u64, life: &Life, step: Step, topic: &str, at: i64, out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(b"{\"topicName\":");
        push_str(out, topic);
        out.extend_from_slice(b",\"version\":\"2\",\"eventBody\":");
        let body_start = out.len();
        match step {
            Step::Detail(phase) => self.detail(out, life, phase, at),
            Step::Queue(state) => self.queue_conversation(out, life, state),
            Step::Presence(presence) => self.presence(out, life, presence, at),
            Step::Other => {
                out.extend_from_slice(b"{\"id\":");
                push_str(out, &life.conversation);
                out.extend_from_slice(b",\"conversationId\":");
                push_str(out, &life.conversation);
                out.extend_from_slice(b",\"eventTime\":");
                push_u64(out, at.max(0) as u64);
                out.extend_from_slice(b",\"state\":\"updated\"}");
            }
        }
        if let Some(target) = self.pad_to {
            // Pad inside the body, before its closing brace.
            let have = out.len() + 70;
            if target > have && out.last() == Some(&b'}') && out.len() > body_start + 1 {
                out.pop();
                out.extend_from_slice(b",\"cxPadding\":\"");
                out.extend(std::iter::repeat_n(b'x', target - have));
                out.extend_from_slice(b"\"}");
            }
        }
        out.extend_from_slice(b",\"metadata\":{\"CorrelationId\":\"");
        push_uuid(out, self.seed, &[RUN_IDS, self.run, index]);
        out.extend_from_slice(b"\"}}");
    }

    fn detail(&self, out: &mut Vec<u8>, life: &Life, phase: usize, at: i64) {
        // Customer phases are the customer participant's; acd the queue's;
        // user and acw the agent's.
        let participant = match phase {
            0 | 6 => 1,
            1 | 2 => 2,
            _ => 3,
        };
        out.extend_from_slice(b"{\"eventTime\":");
        push_u64(out, at.max(0) as u64);
        out.extend_from_slice(b",\"conversationId\":");
        push_str(out, &life.conversation);
        out.extend_from_slice(b",\"participantId\":");
        self.quoted_id(out, life, participant);
        out.extend_from_slice(b",\"sessionId\":");
        self.quoted_id(out, life, 10 + participant);
        out.extend_from_slice(b",\"mediaType\":\"VOICE\",\"provider\":\"Edge\",\"direction\":\"INBOUND\",\"ani\":");
        self.tel(out, life);
        out.extend_from_slice(b",\"dnis\":\"tel:+18005550100\",\"addressFrom\":");
        self.tel(out, life);
        out.extend_from_slice(b",\"addressTo\":\"tel:+18005550100\",\"divisionId\":");
        self.quoted_id(out, life, 30);
        if phase != 0 && phase != 6 {
            out.extend_from_slice(b",\"queueId\":");
            push_str(out, &life.queue);
        }
        if phase >= 3 && phase != 6 {
            out.extend_from_slice(b",\"userId\":");
            push_str(out, &life.user);
        }
        match phase {
            2 => {
                out.extend_from_slice(b",\"acdOutcome\":\"ANSWERED\",\"connectedDurationMs\":");
                push_u64(out, (life.t[2] - life.t[1]).max(0) as u64);
            }
            4 | 6 => {
                out.extend_from_slice(b",\"disconnectType\":\"CLIENT\",\"connectedDurationMs\":");
                push_u64(out, (life.t[3] - life.t[2]).max(0) as u64);
            }
            5 => {
                out.extend_from_slice(b",\"wrapupCode\":\"resolved\",\"wrapupNote\":\"Customer asked about invoice ");
                push_u64(out, life.m);
                out.extend_from_slice(b"\",\"wrapupDurationMs\":");
                push_u64(out, (life.t[4] - life.t[3]).max(0) as u64);
            }
            _ => {}
        }
        out.push(b'}');
    }

    fn call(&self, out: &mut Vec<u8>, life: &Life, k: u64, connected: i64, ended: Option<i64>, other_ani: bool) {
        out.extend_from_slice(b"[{\"state\":");
        out.extend_from_slice(if ended.is_some() {
            b"\"terminated\""
        } else {
            b"\"connected\""
        });
        out.extend_from_slice(b",\"id\":");
        self.quoted_id(out, life, 10 + k);
        out.extend_from_slice(b",\"direction\":\"inbound\",\"recording\":false,\"recordingState\":\"none\",\"muted\":false,\"confined\":false,\"held\":false,\"disconnectType\":");
        if ended.is_some() {
            out.extend_from_slice(b"\"peer\"");
        } else {
            out.extend_from_slice(b"null");
        }
        out.extend_from_slice(b",\"connectedTime\":");
        self.time(out, life, connected);
        if let Some(e) = ended {
            out.extend_from_slice(b",\"disconnectedTime\":");
            self.time(out, life, e);
        }
        out.extend_from_slice(b",\"provider\":\"Edge\",\"self\":{\"nameRaw\":\"\",\"addressNormalized\":");
        if other_ani {
            out.extend_from_slice(b"\"tel:+18005550100\"");
        } else {
            self.tel(out, life);
        }
        out.extend_from_slice(b"},\"other\":{\"nameRaw\":\"\",\"addressNormalized\":");
        if other_ani {
            self.tel(out, life);
        } else {
            out.extend_from_slice(b"\"tel:+18005550100\"");
        }
        out.extend_from_slice(b"}}]");
    }

    fn queue_conversation(&self, out: &mut Vec<u8>, life: &Life, state: QueueState) {
        let [t0, t1, t2, t3, _] = life.t;
        let ended = (state == QueueState::Ended).then_some(t3);
        out.extend_from_slice(b"{\"id\":");
        push_str(out, &life.conversation);
        out.extend_from_slice(b",\"name\":\"\",\"participants\":[{\"id\":");
        self.quoted_id(out, life, 1);
        out.extend_from_slice(b",\"connectedTime\":");
        self.time(out, life, t0);
        if let Some(e) = ended {
            out.extend_from_slice(b",\"endTime\":");
            self.time(out, life, e);
        }
        out.extend_from_slice(b",\"name\":\"Caller ");
        push_u64(out, life.m);
        out.extend_from_slice(b"\",\"purpose\":\"customer\",\"participantType\":\"External\",\"address\":");
        self.tel(out, life);
        out.extend_from_slice(b",\"ani\":");
        self.tel(out, life);
        out.extend_from_slice(b",\"aniName\":\"Caller ");
        push_u64(out, life.m);
        out.extend_from_slice(
            b"\",\"dnis\":\"tel:+18005550100\",\"wrapupRequired\":false,\"attributes\":{\"accountNumber\":\"",
        );
        push_u64(out, 100_000 + life.ani % 900_000);
        out.extend_from_slice(b"\",\"language\":\"en-US\"},\"calls\":");
        self.call(out, life, 1, t0, ended, false);
        out.extend_from_slice(b"},{\"id\":");
        self.quoted_id(out, life, 2);
        out.extend_from_slice(b",\"connectedTime\":");
        self.time(out, life, t1);
        if state != QueueState::Waiting {
            out.extend_from_slice(b",\"endTime\":");
            self.time(out, life, t2);
        }
        out.extend_from_slice(b",\"name\":\"Support\",\"queueId\":");
        push_str(out, &life.queue);
        out.extend_from_slice(b",\"purpose\":\"acd\",\"participantType\":\"Internal\",\"wrapupRequired\":false,\"conversationRoutingData\":{\"queue\":{\"id\":");
        push_str(out, &life.queue);
        out.extend_from_slice(
            b"},\"language\":{\"id\":\"en-US\"},\"priority\":0,\"skills\":[],\"scoredAgents\":[]},\"calls\":",
        );
        self.call(out, life, 2, t1, (state != QueueState::Waiting).then_some(t2), true);
        out.push(b'}');
        if state != QueueState::Waiting {
            out.extend_from_slice(b",{\"id\":");
            self.quoted_id(out, life, 3);
            out.extend_from_slice(b",\"connectedTime\":");
            self.time(out, life, t2);
            if let Some(e) = ended {
                out.extend_from_slice(b",\"endTime\":");
                self.time(out, life, e);
            }
            out.extend_from_slice(b",\"userId\":");
            push_str(out, &life.user);
            out.extend_from_slice(b",\"queueId\":");
            push_str(out, &life.queue);
            out.extend_from_slice(b",\"purpose\":\"agent\",\"participantType\":\"Internal\",\"wrapupRequired\":true,\"wrapupTimeoutMs\":60000,\"calls\":");
            self.call(out, life, 3, t2, ended, true);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"recordingState\":\"none\",\"divisions\":[{\"division\":{\"id\":");
        self.quoted_id(out, life, 30);
        out.extend_from_slice(b"},\"entities\":[{\"id\":");
        push_str(out, &life.conversation);
        out.extend_from_slice(b"}]}]}");
    }

    fn presence(&self, out: &mut Vec<u8>, life: &Life, presence: &str, at: i64) {
        out.extend_from_slice(b"{\"source\":\"PURECLOUD\",\"presenceDefinition\":{\"id\":");
        self.quoted_id(out, life, if presence == "Available" { 40 } else { 41 });
        out.extend_from_slice(b",\"systemPresence\":");
        push_str(out, presence);
        out.extend_from_slice(b"},\"message\":\"\",\"modifiedDate\":");
        self.time(out, life, at);
        out.push(b'}');
    }
}

/// The generator thread: renders events at the run's rate and hands each
/// socket its batch; follows subscription and socket changes.
fn generate(state: Weak<EmulatorState>, run: u64, request: TrafficRequest, start_ms: i64, progress: Arc<Progress>) {
    let rt = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(rt) => rt,
        Err(e) => {
            tracing::error!(error = %e, "emulator: cannot run the traffic generator");
            progress.finished.store(true, Ordering::Release);
            return;
        }
    };
    rt.block_on(generate_async(state, run, request, start_ms, progress.clone()));
    progress.finished.store(true, Ordering::Release);
    tracing::info!(
        run,
        emitted = progress.emitted.load(Ordering::Acquire),
        "emulator: traffic run ended"
    );
}

async fn generate_async(
    state: Weak<EmulatorState>,
    run: u64,
    request: TrafficRequest,
    start_ms: i64,
    progress: Arc<Progress>,
) {
    let Some(seed) = state.upgrade().map(|s| s.settings.seed) else {
        return;
    };
    let rate = request.rate.filter(|r| *r > 0.0 && r.is_finite());
    let limit = request.count.unwrap_or(u64::MAX);
    let mut lifecycles = Lifecycles::new(seed, start_ms, request.in_flight.unwrap_or(DEFAULT_IN_FLIGHT));
    let renderer = Renderer {
        seed,
        run,
        pad_to: request.payload_bytes,
    };
    let mut routing = Routing::default();
    let mut generation = u64::MAX;
    let mut emitted = 0u64;
    // Pacing: event `n` is due `n / rate` after `clock`, which stands still
    // while nobody is subscribed (no burst of backlog when someone is).
    let mut clock = Instant::now();
    let mut paced_from = 0u64;
    let mut frame = Vec::with_capacity(4096);
    let mut batches: Vec<Vec<(u64, String)>> = Vec::new();
    while emitted < limit && !progress.stop.load(Ordering::Acquire) {
        let Some(st) = state.upgrade() else { break };
        let n = &st.notifications;
        let g = n.generation();
        if g != generation {
            generation = g;
            routing = n.routing(request.channel.as_deref(), request.topics.as_deref());
            lifecycles.set_universe(&routing.topics);
            batches = routing.targets.iter().map(|_| Vec::new()).collect();
        }
        drop(st);
        let any_socket = routing.targets.iter().any(|t| t.events.is_some());
        if lifecycles.universe.is_empty() || (rate.is_none() && !any_socket) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            clock = Instant::now();
            paced_from = emitted;
            continue;
        }
        let due = match rate {
            Some(r) => paced_from + (clock.elapsed().as_secs_f64() * r) as u64,
            None => emitted + BATCH as u64,
        }
        .min(limit);
        if due <= emitted {
            let r = rate.unwrap_or(1000.0);
            let next_at = clock + Duration::from_secs_f64((emitted + 1 - paced_from) as f64 / r);
            tokio::time::sleep_until(next_at.into()).await;
            continue;
        }
        let k = ((due - emitted) as usize).min(BATCH);
        for _ in 0..k {
            let Some((slot, step, topic, at)) = lifecycles.next() else {
                break;
            };
            let Some(life) = lifecycles.slots[slot].as_ref() else {
                continue;
            };
            renderer.render(emitted, life, step, &routing.topics[topic], at, &mut frame);
            let capacity = frame.len() + 64;
            let text = String::from_utf8(std::mem::replace(&mut frame, Vec::with_capacity(capacity)))
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
            if let Some((last, others)) = routing.routes[topic].split_last() {
                for t in others {
                    batches[*t].push((emitted, text.clone()));
                }
                batches[*last].push((emitted, text));
            }
            emitted += 1;
        }
        progress.emitted.store(emitted, Ordering::Release);
        for (target, batch) in routing.targets.iter().zip(batches.iter_mut()) {
            if batch.is_empty() {
                continue;
            }
            let events = std::mem::replace(batch, Vec::with_capacity(BATCH));
            match &target.events {
                Some(tx) => {
                    if let Err(e) = tx.send(Outgoing { run, events }).await {
                        target.record.missed(run, e.0.events.iter().map(|e| e.0));
                    }
                }
                None => target.record.missed(run, events.iter().map(|e| e.0)),
            }
        }
    }
    progress.emitted.store(emitted, Ordering::Release);
}

type State = web::Data<Arc<EmulatorState>>;

/// `POST /_emulator/traffic`: starts a run (replacing the current one).
pub async fn start(state: State, body: web::Bytes) -> HttpResponse {
    let request: TrafficRequest = if body.is_empty() {
        TrafficRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(e) => {
                return HttpResponse::BadRequest().json(json!({"error": "invalid_traffic", "message": e.to_string()}))
            }
        }
    };
    let run = state.notifications.traffic.start(state.get_ref(), request);
    HttpResponse::Ok().json(json!({ "run": run }))
}

/// `GET /_emulator/traffic`: the run, and every channel's record summary.
pub async fn status(state: State) -> HttpResponse {
    let n = &state.notifications;
    let channels: Vec<serde_json::Value> = n
        .records()
        .into_iter()
        .map(|r| {
            json!({
                "id": r.id,
                "open": n.socket_open(&r.id),
                "delivered": r.delivered_count,
                "missed": r.missed_count,
                "connects": r.connects,
                "heartbeats": r.heartbeats,
                "pongs": r.pongs,
                "malformed_sent": r.malformed_sent,
                "fragmented_sent": r.fragmented_sent,
                "closes": r.closes,
            })
        })
        .collect();
    HttpResponse::Ok().json(json!({ "traffic": n.traffic.status(), "channels": channels }))
}

/// `DELETE /_emulator/traffic`: stops the run.
pub async fn stop(state: State) -> HttpResponse {
    state.notifications.traffic.stop();
    HttpResponse::NoContent().finish()
}

/// `GET /_emulator/traffic/channels/{id}`: the correlation ids sent on a
/// channel's sockets and those it missed, in the current run.
pub async fn channel_record(state: State, id: web::Path<String>) -> HttpResponse {
    let n = &state.notifications;
    let Some(r) = n.record(&id) else {
        return HttpResponse::NotFound().json(json!({"error": "no such channel"}));
    };
    let seed = state.settings.seed;
    let ids = |v: &[u64]| -> Vec<String> { v.iter().map(|i| n.traffic.correlation_id(seed, r.run, *i)).collect() };
    HttpResponse::Ok().json(json!({
        "id": r.id,
        "run": r.run,
        "delivered": r.delivered_count,
        "missed": r.missed_count,
        "truncated": r.truncated,
        "delivered_ids": ids(&r.delivered),
        "missed_ids": ids(&r.missed),
        "closes": r.closes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(v: &[&str]) -> Vec<String> {
        let mut t: Vec<String> = v.iter().map(|s| s.to_string()).collect();
        t.sort();
        t
    }

    fn stream(topics: &[String], n: usize) -> Vec<(String, serde_json::Value)> {
        let mut l = Lifecycles::new(3, 1_714_572_000_000, 4);
        l.set_universe(topics);
        let r = Renderer {
            seed: 3,
            run: 1,
            pad_to: None,
        };
        let mut out = Vec::new();
        let mut frame = Vec::new();
        for i in 0..n {
            let (slot, step, topic, at) = l.next().unwrap();
            let life = l.slots[slot].as_ref().unwrap();
            r.render(i as u64, life, step, &topics[topic], at, &mut frame);
            let v: serde_json::Value = serde_json::from_slice(&frame).unwrap_or_else(|e| {
                panic!("{e}: {}", String::from_utf8_lossy(&frame));
            });
            out.push((topics[topic].clone(), v));
        }
        out
    }

    #[test]
    fn lifecycles_use_the_subscribed_ids_and_are_deterministic() {
        let t = topics(&[
            "v2.routing.queues.q1.conversations",
            "v2.routing.queues.q2.conversations",
            "v2.users.u1.presence",
            "v2.detail.events.conversation.c1.customer.start",
            "v2.detail.events.conversation.c1.acd.start",
            "v2.detail.events.conversation.c1.customer.end",
        ]);
        let a = stream(&t, 200);
        assert_eq!(
            a.iter().map(|x| &x.1).collect::<Vec<_>>(),
            stream(&t, 200).iter().map(|x| &x.1).collect::<Vec<_>>()
        );
        for (topic, v) in &a {
            assert_eq!(v["topicName"].as_str().unwrap(), topic);
            // Every event names what it is about: a user in its topic, a
            // conversation in its body (a client keys events on these).
            let body = &v["eventBody"];
            assert!(
                topic.starts_with("v2.users.") || body["conversationId"].is_string() || body["id"].is_string(),
                "{topic}"
            );
            if topic.starts_with("v2.detail") {
                assert_eq!(v["eventBody"]["conversationId"], "c1");
                assert!(v["eventBody"]["eventTime"].is_i64());
            }
            if topic.starts_with("v2.routing") {
                assert!(v["eventBody"]["participants"][0]["connectedTime"].is_string());
            }
        }
        let ids: std::collections::HashSet<&str> = a
            .iter()
            .map(|x| x.1["metadata"]["CorrelationId"].as_str().unwrap())
            .collect();
        assert_eq!(ids.len(), a.len(), "correlation ids are unique");
        // Every subscribed topic gets traffic.
        for topic in &t {
            assert!(a.iter().any(|x| &x.0 == topic), "{topic}");
        }
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

    #[test]
    fn conversation_events_are_about_one_and_a_half_kilobytes() {
        let t = topics(&["v2.routing.queues.6f1b2c3d-0000-4000-8000-000000000001.conversations"]);
        let events = stream(&t, 3);
        let sizes: Vec<usize> = events.iter().map(|e| e.1.to_string().len()).collect();
        assert!(sizes.iter().all(|s| (900..2200).contains(s)), "{sizes:?}");
        assert!(sizes[1] > 1300, "{sizes:?}");
    }
}
