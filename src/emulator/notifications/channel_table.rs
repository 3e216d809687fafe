//! The channel table: channels per OAuth client, their subscriptions and
//! sockets, and where the traffic generator sends each topic.
//!
//! Rules, as on the platform: at most `max_topics` topics per channel (more
//! is a 400); at most `max_channels` channels per OAuth client, the next one
//! silently evicting the oldest (channels without a socket first) and
//! closing its socket; a channel expires `channel_lifetime` after it was
//! created or its subscriptions were last PUT.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cxrelay_actors::event::now_ms;
use cxrelay_actors::Pattern;
use parking_lot::Mutex;
use serde::Serialize;
use serde_json::json;
use tokio::sync::mpsc;

use super::channel_record::{ChannelRecord, RecordSnapshot};
use super::frames::system_message;
use super::socket_messages::{Outgoing, SocketOrder};
use super::traffic::control::TrafficControl;
use crate::emulator::faults::{Fault, FaultBook, SystemTopicType};
use crate::emulator::ids::{derive, random_uuid};
use crate::emulator::settings::notifications::NotificationSettings;
use crate::emulator::tokens::Tokens;
use crate::wire::iso_ms;

/// Namespace of channel ids in [`derive`].
const CHANNEL_IDS: u64 = 0xC4A7;

/// The socket attached to a channel, as the table knows it.
pub(super) struct SocketSlot {
    conn: u64,
    events: mpsc::Sender<Outgoing>,
    orders: mpsc::Sender<SocketOrder>,
}

impl SocketSlot {
    fn order(&self, order: SocketOrder) {
        // Control path: a socket swamped with orders loses the extra ones.
        if self.orders.try_send(order).is_err() {
            tracing::warn!("emulator: a socket order was not delivered (socket busy or gone)");
        }
    }
}

struct Channel {
    id: String,
    client_id: String,
    /// The token that created it: listings show a token its own channels.
    token: String,
    seq: u64,
    expires: Instant,
    expires_ms: i64,
    topics: BTreeSet<String>,
    socket: Option<SocketSlot>,
    record: Arc<ChannelRecord>,
}

impl Channel {
    fn describe(&self, base_url: &str) -> serde_json::Value {
        json!({
            "id": self.id,
            "connectUri": connect_uri(base_url, &self.id),
            "expires": iso_ms(self.expires_ms),
        })
    }
}

#[derive(Default)]
struct Table {
    channels: HashMap<String, Channel>,
    records: HashMap<String, Arc<ChannelRecord>>,
    created: u64,
}

/// One sink of the traffic generator: a channel's record and its socket,
/// if one is open.
#[derive(Clone)]
pub(super) struct Target {
    pub record: Arc<ChannelRecord>,
    pub events: Option<mpsc::Sender<Outgoing>>,
}

/// Where each subscribed topic goes, at one moment.
#[derive(Default)]
pub(super) struct Routing {
    /// Subscribed topics, sorted.
    pub topics: Vec<String>,
    /// For each topic, indices into `targets`.
    pub routes: Vec<Vec<usize>>,
    /// Channels.
    pub targets: Vec<Target>,
}

/// The emulator's notifications world: channels, their sockets, traffic.
pub struct Notifications {
    pub(super) settings: NotificationSettings,
    pub(super) seed: u64,
    denied: Vec<Pattern>,
    table: Mutex<Table>,
    generation: AtomicU64,
    connections: AtomicU64,
    /// The traffic generator.
    pub traffic: TrafficControl,
}

impl std::fmt::Debug for Notifications {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifications")
            .field("channels", &self.table.lock().channels.len())
            .finish()
    }
}

/// Why a subscription request was refused as a whole.
pub(super) enum Refused {
    NotFound,
    TooMany(usize),
    /// Topics were rejected and the request did not say `ignoreErrors`:
    /// the platform fails all of it and subscribes nothing.
    Rejected(Vec<TopicAnswer>),
}

/// A topic's answer in a subscription response.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub(super) struct TopicAnswer {
    pub(super) id: String,
    pub(super) state: &'static str,
    #[serde(rename = "rejectionReason", skip_serializing_if = "Option::is_none")]
    pub(super) rejection_reason: Option<String>,
    #[serde(rename = "missingPermissions", skip_serializing_if = "Option::is_none")]
    pub(super) missing_permissions: Option<Vec<String>>,
}

/// The permission a denied topic lacks (as the platform lists it).
const NOTIFICATION_PERMISSION: &str = "analytics:conversationDetail:view";

/// How subscriptions change.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Change {
    Replace,
    Add,
}

impl Notifications {
    /// A world with no channels, for `settings` and `seed`.
    pub fn new(settings: &NotificationSettings, seed: u64) -> Self {
        let denied = settings
            .denied_topics
            .iter()
            .filter_map(|p| match Pattern::parse(p) {
                Ok(p) => Some(p),
                Err(e) => {
                    tracing::warn!(pattern = %p, error = %e, "emulator: ignoring an invalid denied_topics pattern");
                    None
                }
            })
            .collect();
        Notifications {
            settings: settings.clone(),
            seed,
            denied,
            table: Mutex::new(Table::default()),
            generation: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            traffic: TrafficControl::default(),
        }
    }

    /// Changes whenever subscriptions or sockets change (the generator
    /// rebuilds its routes then).
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn changed(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Ids of the channels that exist now.
    pub fn channel_ids(&self) -> Vec<String> {
        self.purge_expired();
        let mut ids: Vec<String> = self.table.lock().channels.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// Topics subscribed on a channel.
    pub fn topics_of(&self, channel: &str) -> Option<Vec<String>> {
        self.table
            .lock()
            .channels
            .get(channel)
            .map(|c| c.topics.iter().cloned().collect())
    }

    /// Whether a channel has a socket open.
    pub fn socket_open(&self, channel: &str) -> bool {
        self.table
            .lock()
            .channels
            .get(channel)
            .is_some_and(|c| c.socket.is_some())
    }

    /// Open sockets.
    pub fn open_sockets(&self) -> usize {
        self.table
            .lock()
            .channels
            .values()
            .filter(|c| c.socket.is_some())
            .count()
    }

    /// The record of a channel (kept after the channel is gone).
    pub fn record(&self, channel: &str) -> Option<RecordSnapshot> {
        self.table.lock().records.get(channel).map(|r| r.snapshot())
    }

    /// Records of every channel ever created, by creation order.
    pub fn records(&self) -> Vec<RecordSnapshot> {
        let t = self.table.lock();
        let mut v: Vec<&Arc<ChannelRecord>> = t.records.values().collect();
        v.sort_by(|a, b| a.id.cmp(&b.id));
        v.into_iter().map(|r| r.snapshot()).collect()
    }

    fn is_denied(&self, topic: &str) -> bool {
        self.denied.iter().any(|p| p.matches(topic))
    }

    /// Removes expired channels, closing their sockets with 1008.
    fn purge_expired(&self) {
        let now = Instant::now();
        let mut t = self.table.lock();
        let expired: Vec<String> = t
            .channels
            .values()
            .filter(|c| c.expires <= now)
            .map(|c| c.id.clone())
            .collect();
        for id in &expired {
            if let Some(c) = t.channels.remove(id) {
                tracing::info!(channel = %id, "emulator: channel expired");
                if let Some(s) = c.socket {
                    s.order(SocketOrder::Expired);
                }
            }
        }
        drop(t);
        if !expired.is_empty() {
            self.changed();
        }
    }

    /// Whether a channel with this id exists now.
    pub(super) fn exists(&self, id: &str) -> bool {
        self.purge_expired();
        self.table.lock().channels.contains_key(id)
    }

    /// When the channel expires (None: gone).
    pub(super) fn expires(&self, id: &str) -> Option<Instant> {
        self.table.lock().channels.get(id).map(|c| c.expires)
    }

    /// Creates a channel for `client_id` (evicting its oldest past the
    /// limit); answers its description.
    pub(super) fn create(&self, client_id: &str, token: &str, base_url: &str) -> serde_json::Value {
        self.purge_expired();
        let lifetime = self.settings.channel_lifetime;
        let mut t = self.table.lock();
        // The platform never refuses a new channel: it evicts the oldest of
        // this client's channels, the idle ones (no socket) first.
        loop {
            let mine: Vec<&Channel> = t.channels.values().filter(|c| c.client_id == client_id).collect();
            if mine.len() < self.settings.max_channels.max(1) {
                break;
            }
            let victim = mine
                .iter()
                .min_by_key(|c| (c.socket.is_some(), c.seq))
                .map(|c| c.id.clone());
            let Some(victim) = victim else { break };
            if let Some(c) = t.channels.remove(&victim) {
                tracing::info!(channel = %victim, client = %client_id, "emulator: channel limit reached; evicting the oldest channel");
                if let Some(s) = c.socket {
                    s.order(SocketOrder::Evicted);
                }
            }
        }
        let seq = t.created;
        t.created += 1;
        let id = format!(
            "streaming-0-{:016x}{:016x}",
            derive(self.seed, &[CHANNEL_IDS, seq]),
            derive(self.seed, &[CHANNEL_IDS, seq, 1])
        );
        let record = t
            .records
            .entry(id.clone())
            .or_insert_with(|| Arc::new(ChannelRecord::new(&id, self.settings.record_limit)))
            .clone();
        let channel = Channel {
            id: id.clone(),
            client_id: client_id.to_string(),
            token: token.to_string(),
            seq,
            expires: Instant::now() + lifetime,
            expires_ms: now_ms() + lifetime.as_millis() as i64,
            topics: BTreeSet::new(),
            socket: None,
            record,
        };
        let described = channel.describe(base_url);
        t.channels.insert(id, channel);
        drop(t);
        self.changed();
        described
    }

    /// The channels of `token` (the platform's default,
    /// `includechannels=token`), described; with `all_tokens`
    /// (`includechannels=oauthclient`) the client's other channels are
    /// shown too, without their ids.
    pub(super) fn list(&self, client_id: &str, token: &str, all_tokens: bool, base_url: &str) -> serde_json::Value {
        self.purge_expired();
        let t = self.table.lock();
        let mut mine: Vec<&Channel> = t.channels.values().filter(|c| c.client_id == client_id).collect();
        mine.sort_by_key(|c| c.seq);
        let entities: Vec<serde_json::Value> = mine
            .iter()
            .filter_map(|c| {
                if c.token == token {
                    Some(c.describe(base_url))
                } else {
                    all_tokens.then(|| json!({ "expires": iso_ms(c.expires_ms) }))
                }
            })
            .collect();
        json!({ "entities": entities })
    }

    /// Whether channel `id` exists and belongs to `client_id`.
    pub(super) fn owned(&self, id: &str, client_id: &str) -> bool {
        self.purge_expired();
        self.table
            .lock()
            .channels
            .get(id)
            .is_some_and(|c| c.client_id == client_id)
    }

    /// The topics of a channel of `client_id`.
    pub(super) fn subscriptions(&self, id: &str, client_id: &str) -> Option<Vec<TopicAnswer>> {
        if !self.owned(id, client_id) {
            return None;
        }
        let t = self.table.lock();
        t.channels.get(id).map(|c| {
            c.topics
                .iter()
                .map(|topic| TopicAnswer {
                    id: topic.clone(),
                    state: "Permitted",
                    rejection_reason: None,
                    missing_permissions: None,
                })
                .collect()
        })
    }

    /// Replaces or adds topics. Invalid and denied topics fail the whole
    /// request unless `ignore_errors`; with it they are rejected one by one
    /// and the others subscribed.
    pub(super) fn subscribe(
        &self,
        id: &str,
        client_id: &str,
        requested: Vec<String>,
        change: Change,
        ignore_errors: bool,
    ) -> Result<Vec<TopicAnswer>, Refused> {
        if !self.owned(id, client_id) {
            return Err(Refused::NotFound);
        }
        let mut answers = Vec::with_capacity(requested.len());
        let mut permitted: Vec<String> = Vec::with_capacity(requested.len());
        let mut seen = HashSet::with_capacity(requested.len());
        for topic in requested {
            if !seen.insert(topic.clone()) {
                continue;
            }
            let rejection = if !valid_topic(&topic) {
                Some((format!("invalid.topic: `{topic}` is not a notification topic"), None))
            } else if self.is_denied(&topic) {
                Some((
                    "missing.permissions: this OAuth client may not subscribe to this topic".to_string(),
                    Some(vec![NOTIFICATION_PERMISSION.to_string()]),
                ))
            } else {
                None
            };
            match rejection {
                Some((reason, missing)) => answers.push(TopicAnswer {
                    id: topic,
                    state: "Rejected",
                    rejection_reason: Some(reason),
                    missing_permissions: missing,
                }),
                None => {
                    answers.push(TopicAnswer {
                        id: topic.clone(),
                        state: "Permitted",
                        rejection_reason: None,
                        missing_permissions: None,
                    });
                    permitted.push(topic);
                }
            }
        }
        if !ignore_errors && answers.iter().any(|a| a.state == "Rejected") {
            return Err(Refused::Rejected(
                answers.into_iter().filter(|a| a.state == "Rejected").collect(),
            ));
        }
        let mut t = self.table.lock();
        let Some(c) = t.channels.get_mut(id) else {
            return Err(Refused::NotFound);
        };
        let total = match change {
            Change::Replace => seen.len(),
            Change::Add => c.topics.len() + seen.iter().filter(|s| !c.topics.contains(*s)).count(),
        };
        if total > self.settings.max_topics {
            return Err(Refused::TooMany(total));
        }
        if change == Change::Replace {
            c.topics.clear();
            // Re-PUTting the subscriptions is what keeps a channel alive.
            let lifetime = self.settings.channel_lifetime;
            c.expires = Instant::now() + lifetime;
            c.expires_ms = now_ms() + lifetime.as_millis() as i64;
        }
        c.topics.extend(permitted);
        drop(t);
        self.changed();
        Ok(answers)
    }

    /// Removes every topic of a channel of `client_id` (false: no such
    /// channel).
    pub(super) fn unsubscribe_all(&self, id: &str, client_id: &str) -> bool {
        if !self.owned(id, client_id) {
            return false;
        }
        if let Some(c) = self.table.lock().channels.get_mut(id) {
            c.topics.clear();
        }
        self.changed();
        true
    }

    /// Attaches a new socket to a channel; a socket already there is told
    /// it was replaced (one socket per channel). Answers the connection
    /// number and the channel's record, or `None` if the channel is gone.
    pub(super) fn attach(
        &self,
        id: &str,
        events: mpsc::Sender<Outgoing>,
        orders: mpsc::Sender<SocketOrder>,
    ) -> Option<(u64, Arc<ChannelRecord>)> {
        let conn = self.connections.fetch_add(1, Ordering::AcqRel) + 1;
        let mut t = self.table.lock();
        let c = t.channels.get_mut(id)?;
        let old = c.socket.replace(SocketSlot { conn, events, orders });
        c.record.connected();
        let record = c.record.clone();
        drop(t);
        if let Some(old) = old {
            old.order(SocketOrder::Replaced);
        }
        self.changed();
        Some((conn, record))
    }

    /// Detaches socket `conn` from its channel, if it is still attached.
    pub(super) fn detach(&self, id: &str, conn: u64) {
        let mut t = self.table.lock();
        let mine = t
            .channels
            .get(id)
            .and_then(|c| c.socket.as_ref())
            .is_some_and(|s| s.conn == conn);
        if mine {
            if let Some(c) = t.channels.get_mut(id) {
                c.socket = None;
            }
            drop(t);
            self.changed();
        }
    }

    /// Removes a channel (fault `expire_channel`): HEAD answers 404 and its
    /// socket closes with 1008.
    fn expire(&self, id: &str) {
        let removed = self.table.lock().channels.remove(id);
        if let Some(c) = removed {
            tracing::info!(channel = %id, "emulator: channel expired by a fault");
            if let Some(s) = c.socket {
                s.order(SocketOrder::Expired);
            }
            self.changed();
        }
    }

    /// Acts out a system message on channel `id` and sends it on its socket.
    fn system_message(&self, id: &str, kind: SystemTopicType, tokens: &Tokens) {
        let mut t = self.table.lock();
        let Some(c) = t.channels.get_mut(id) else { return };
        let reason = match kind {
            SystemTopicType::NoLongerSubscribed | SystemTopicType::SubscriptionChanged => {
                // Nothing flows on the channel until its topics are PUT again.
                c.topics.clear();
                Some("another_channel_subscribed")
            }
            SystemTopicType::TokenRevoked => {
                tokens.revoke(&c.token);
                Some("user_tokens_revoked")
            }
        };
        let frame = system_message(kind.as_str(), id, &c.client_id, reason, &random_uuid());
        if let Some(s) = &c.socket {
            s.order(SocketOrder::System(frame));
        }
        drop(t);
        tracing::info!(channel = %id, message = kind.as_str(), "emulator: system message sent");
        self.changed();
    }

    /// Where each subscribed topic goes now (only `channel`'s, if given).
    pub(super) fn routing(&self, channel: Option<&str>, topics: Option<&[String]>) -> Routing {
        self.purge_expired();
        let t = self.table.lock();
        let mut channels: Vec<&Channel> = t
            .channels
            .values()
            .filter(|c| channel.is_none_or(|id| c.id == id))
            .collect();
        channels.sort_by_key(|c| c.seq);
        let mut by_topic: std::collections::BTreeMap<&str, Vec<usize>> = std::collections::BTreeMap::new();
        let mut targets = Vec::with_capacity(channels.len());
        for (i, c) in channels.iter().enumerate() {
            targets.push(Target {
                record: c.record.clone(),
                events: c.socket.as_ref().map(|s| s.events.clone()),
            });
            for topic in &c.topics {
                if topics.is_none_or(|only| only.iter().any(|o| o == topic)) {
                    by_topic.entry(topic.as_str()).or_default().push(i);
                }
            }
        }
        let mut routing = Routing {
            targets,
            ..Routing::default()
        };
        for (topic, to) in by_topic {
            routing.topics.push(topic.to_string());
            routing.routes.push(to);
        }
        routing
    }

    /// Takes the socket faults that can act now and hands them to the
    /// sockets (or channels) they concern. A fault aimed at a channel
    /// without a socket waits for one (except `expire_channel`).
    pub fn apply_pending_faults(&self, book: &FaultBook, tokens: &Tokens) {
        let (open, existing): (HashSet<String>, HashSet<String>) = {
            let t = self.table.lock();
            (
                t.channels
                    .values()
                    .filter(|c| c.socket.is_some())
                    .map(|c| c.id.clone())
                    .collect(),
                t.channels.keys().cloned().collect(),
            )
        };
        // A targeted close or drop ends one socket: the next one armed for
        // the same channel waits for the next socket (repeated failures).
        let terminal = |f: &Fault| matches!(f, Fault::CloseSocket { .. } | Fault::DropSocket { .. });
        let mut taken = book.take_all(|f| match f {
            Fault::ExpireChannel { channel } | Fault::SystemMessage { channel, .. } => match channel {
                Some(c) => existing.contains(c),
                None => !existing.is_empty(),
            },
            Fault::CloseSocket { .. }
            | Fault::DropSocket { .. }
            | Fault::SilenceSocket { .. }
            | Fault::SocketClosing { .. }
            | Fault::MalformedFrames { .. }
            | Fault::FragmentFrames { .. } => match f.channel() {
                Some(c) => open.contains(c) && !terminal(f),
                None => !open.is_empty(),
            },
            _ => false,
        });
        for c in &open {
            if let Some(f) = book.take(|f| terminal(f) && f.channel() == Some(c.as_str())) {
                taken.push(f);
            }
        }
        for fault in taken {
            if let Fault::SystemMessage { channel, message } = &fault {
                let ids: Vec<String> = match channel {
                    Some(c) => vec![c.clone()],
                    None => existing.iter().cloned().collect(),
                };
                for id in ids {
                    self.system_message(&id, *message, tokens);
                }
                continue;
            }
            if let Fault::ExpireChannel { channel } = &fault {
                let ids: Vec<String> = match channel {
                    Some(c) => vec![c.clone()],
                    None => existing.iter().cloned().collect(),
                };
                for id in ids {
                    self.expire(&id);
                }
                continue;
            }
            let order = match &fault {
                Fault::CloseSocket { code, .. } => SocketOrder::Close(*code),
                Fault::DropSocket { .. } => SocketOrder::Drop,
                Fault::SilenceSocket { .. } => SocketOrder::Silence,
                Fault::SocketClosing { grace_ms, .. } => SocketOrder::Closing(Duration::from_millis(*grace_ms)),
                Fault::MalformedFrames { count, .. } => SocketOrder::Malformed(*count),
                Fault::FragmentFrames { count, .. } => SocketOrder::Fragment(*count),
                _ => continue,
            };
            let t = self.table.lock();
            for c in t.channels.values() {
                if fault.channel().is_none_or(|id| id == c.id) {
                    if let Some(s) = &c.socket {
                        s.order(order.clone());
                    }
                }
            }
        }
    }
}

/// `ws://host/channels/<id>` for an emulator at `http://host`.
fn connect_uri(base_url: &str, id: &str) -> String {
    let ws = if let Some(rest) = base_url.strip_prefix("https://") {
        format!("wss://{rest}")
    } else if let Some(rest) = base_url.strip_prefix("http://") {
        format!("ws://{rest}")
    } else {
        base_url.to_string()
    };
    format!("{ws}/channels/{id}")
}

/// A topic the emulator accepts: `v2.` and dot-separated non-empty
/// segments without wildcards.
fn valid_topic(topic: &str) -> bool {
    topic.starts_with("v2.")
        && topic.len() <= 512
        && topic.split('.').all(|s| !s.is_empty() && !s.contains(['*', '>', ' ']))
}
