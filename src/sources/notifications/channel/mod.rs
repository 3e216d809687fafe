//! `NotificationChannel`: the actor that keeps one Genesys notification
//! channel subscribed and connected, for months.
//!
//! Lifecycle: create the channel, PUT its subscriptions (per-topic
//! rejections go to `/status`), connect its socket, renew it before it
//! expires. When the socket ends: transient codes reconnect after a
//! full-jitter backoff; 1008 refreshes the token, checks the channel
//! (HEAD) and recreates and resubscribes it if it is gone; 1003 and 1009
//! stop with the reason; too many failures in a row mark the channel
//! failed. On `v2.system.socket_closing` a new socket is opened first and
//! the old one released after. Every disconnect records a gap.
//!
//! `handlers` takes the actor's messages (its sockets' news, runtime
//! control, shutdown); `status` publishes what it shows of itself.

mod handlers;
mod status;
mod system;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::dev::ArbiterHandle;
use actix::prelude::*;
use cxrelay_actors::event::now_ms;
use cxrelay_actors::registry::{Component, ComponentState, Progress};
use parking_lot::Mutex;
use tokio::sync::mpsc;

use super::channel_api::{self, ChannelInfo, TopicState};
use super::counters::ChannelCounters;
use super::gaps::{backfill_window, GapHandler, GapLog};
use super::group_commit::ChannelCheckpoint;
use super::reconnect::{reaction, Closed, NextAttempt, Reaction, Retries};
use super::socket::{with_read_buffer, SocketCommand, SocketSetup, SocketTask};
use crate::genesys::{ApiClient, ApiError, GenesysOrg, GetToken, TokenError};
use crate::ingest::Ingest;
use crate::sources::builder::API_CALL_PATIENCE;
use crate::sources::checkpoint::JsonCheckpoint;
use crate::store::PutDeadLetters;

/// How often status and metrics are published (and progress read off the
/// sockets' counters).
const PUBLISH_EVERY: Duration = Duration::from_secs(1);
/// How long a shutdown waits for sockets to commit what they read.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// The reason of a gap that spans a stop of cxrelay.
const NOT_RUNNING: &str = "cxrelay was not running";

/// Settings shared by a source's channels.
#[derive(Debug, Clone)]
pub struct ChannelSettings {
    /// The source's name.
    pub source: Arc<str>,
    /// Time between pings.
    pub ping_interval: Duration,
    /// No frame for this long means the socket is dead.
    pub silence_timeout: Duration,
    /// Ceiling of the first reconnect delay.
    pub reconnect_base: Duration,
    /// Largest reconnect delay.
    pub reconnect_cap: Duration,
    /// Failed attempts in a row before the channel is failed.
    pub retry_limit: u32,
    /// A socket up this long forgives earlier failures.
    pub retry_reset_after: Duration,
    /// Largest frame accepted.
    pub max_frame_bytes: usize,
    /// Renew this long before expiry (at most half the lifetime).
    pub renew_before: Duration,
    /// Longest wait for a socket handshake.
    pub connect_timeout: Duration,
    /// How long a socket replaced after `socket_closing` may go on before
    /// cxrelay closes it.
    pub old_socket_grace: Duration,
}

impl ChannelSettings {
    /// A channel establishing, or with a socket up, that finishes no step
    /// and whose socket reads no frame, sends no ping and finishes no
    /// commit for this long is stuck. Each API call while establishing is
    /// a step; a live socket pings every `ping_interval`, idle or not. The
    /// longest legitimate silence is one API call with its retries, or a
    /// socket handshake.
    pub fn stuck_after(&self) -> Duration {
        API_CALL_PATIENCE + self.connect_timeout + 2 * self.ping_interval
    }
}

/// What survives a restart of the actor: the topics the channel should
/// have, its counters, its thread, and the current address.
pub struct ChannelSlot {
    /// The channel's number within its source.
    pub index: usize,
    /// Its component name.
    pub name: String,
    /// Topics the channel should have.
    pub topics: Mutex<Vec<String>>,
    /// Counters, kept across sockets and restarts.
    pub counters: Arc<ChannelCounters>,
    /// The running actor.
    pub addr: Mutex<Option<Addr<NotificationChannel>>>,
    /// Its thread.
    pub arbiter: ArbiterHandle,
}

/// Everything a channel actor is built from.
#[derive(Clone)]
pub struct ChannelParts {
    /// Shared settings.
    pub settings: Arc<ChannelSettings>,
    /// Its slot.
    pub slot: Arc<ChannelSlot>,
    /// The org.
    pub org: GenesysOrg,
    /// Where events go.
    pub ingest: Ingest,
    /// Where malformed frames go.
    pub dead_letters: Option<Recipient<PutDeadLetters>>,
    /// What happens to gaps.
    pub gaps: Arc<dyn GapHandler>,
    /// Its entry in `/status`.
    pub component: Arc<Component>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Phase {
    Starting,
    Connecting,
    Connected,
    Retrying(String),
    Paused(String),
    Failed(String),
    Stopping,
}

impl Phase {
    fn label(&self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Connecting => "connecting",
            Phase::Connected => "connected",
            Phase::Retrying(_) => "retrying",
            Phase::Paused(_) => "paused",
            Phase::Failed(_) => "failed",
            Phase::Stopping => "stopping",
        }
    }

    fn reason(&self) -> Option<String> {
        match self {
            Phase::Retrying(r) | Phase::Paused(r) | Phase::Failed(r) => Some(r.clone()),
            _ => None,
        }
    }
}

/// How to (re)establish the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum How {
    /// A new channel: create, subscribe, connect.
    Create,
    /// The same channel, a new socket.
    Reconnect,
    /// After 1008: refresh the token, HEAD the channel, recreate if gone.
    Revalidate,
    /// After `socket_closing`: a new socket alongside the old one.
    Handoff,
}

/// Why establishing failed.
#[derive(Debug)]
enum Failure {
    /// The channel is gone (404): create a new one.
    Gone(String),
    /// Try again later.
    Transient(String),
    /// Authentication is paused (breaker open): wait, without counting.
    Paused(String, Duration),
    /// Retrying cannot help.
    Permanent(String),
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        match &e {
            ApiError::Status { status: 404, .. } => Failure::Gone(e.to_string()),
            ApiError::Token(TokenError::BreakerOpen { retry_in_s, .. }) => {
                Failure::Paused(e.to_string(), Duration::from_secs(*retry_in_s))
            }
            ApiError::Status { status: 400, .. } => Failure::Permanent(format!("Genesys refused the channel: {e}")),
            _ => Failure::Transient(e.to_string()),
        }
    }
}

struct Established {
    channel: ChannelInfo,
    created: bool,
    states: Option<Vec<(String, TopicState)>>,
    socket: LiveSocket,
}

struct LiveSocket {
    generation: u64,
    commands: mpsc::Sender<SocketCommand>,
}

impl LiveSocket {
    fn command(&self, c: SocketCommand) {
        // Control path: a socket that is gone needs no more orders.
        let _ = self.commands.try_send(c);
    }
}

/// One notification channel (≤ 1000 topics) and its socket.
pub struct NotificationChannel {
    p: ChannelParts,
    api: Option<ApiClient>,
    ws: Option<awc::Client>,
    channel: Option<ChannelInfo>,
    states: BTreeMap<String, TopicState>,
    socket: Option<LiveSocket>,
    retiring: HashMap<u64, LiveSocket>,
    next_generation: u64,
    phase: Phase,
    retries: Retries,
    next_retry: Option<(NextAttempt, Instant)>,
    gaps: GapLog,
    busy: bool,
    renewal: Option<SpawnHandle>,
    reconnects: BTreeMap<String, u64>,
    renewals: u64,
    channels_created: u64,
    last_close: Option<String>,
    last_close_at_ms: Option<i64>,
    socket_up_since: Option<i64>,
    /// The socket being replaced after `socket_closing`, while its
    /// replacement connects; and how it ended, if it already did.
    handoff: Option<u64>,
    handoff_old_end: Option<(Option<i64>, Closed)>,
    /// This instance's progress report (see `status.rs`).
    progress: Arc<Progress>,
    /// What the sockets' counters summed to at the last look.
    turned: u64,
}

impl NotificationChannel {
    /// A channel actor from its parts, reporting through `progress` (its
    /// instance's handle).
    pub fn new(p: ChannelParts, progress: Arc<Progress>) -> Self {
        let s = &p.settings;
        let retries = Retries::new(s.reconnect_base, s.reconnect_cap, s.retry_limit, s.retry_reset_after);
        let states = p
            .slot
            .topics
            .lock()
            .iter()
            .map(|t| (t.clone(), TopicState::Pending))
            .collect();
        let mut gaps = GapLog::default();
        // Events sent while cxrelay was not running are lost like those of
        // a dropped socket: the gap runs from the last frame a previous run
        // committed to the first frame of this one.
        match p.ingest.checkpoint(&p.slot.name) {
            Ok(raw) => {
                let saved = ChannelCheckpoint::decode(raw.as_deref());
                if saved.last_frame_ms > 0 {
                    gaps.open(saved.last_frame_ms, NOT_RUNNING.into());
                }
            }
            Err(e) => tracing::warn!(component = %p.slot.name, error = %e,
                "cannot read the channel's checkpoint; a gap while cxrelay was down goes unrecorded"),
        }
        NotificationChannel {
            p,
            api: None,
            ws: None,
            channel: None,
            states,
            socket: None,
            retiring: HashMap::new(),
            next_generation: 0,
            phase: Phase::Starting,
            retries,
            next_retry: None,
            gaps,
            busy: false,
            renewal: None,
            reconnects: BTreeMap::new(),
            renewals: 0,
            channels_created: 0,
            last_close: None,
            last_close_at_ms: None,
            socket_up_since: None,
            handoff: None,
            handoff_old_end: None,
            progress,
            turned: 0,
        }
    }

    fn desired(&self) -> Vec<String> {
        self.p.slot.topics.lock().clone()
    }

    fn set_phase(&mut self, phase: Phase) {
        let state = match &phase {
            Phase::Connected => ComponentState::Running,
            Phase::Starting | Phase::Connecting => ComponentState::Starting,
            Phase::Retrying(_) => ComponentState::Restarting,
            Phase::Paused(_) => ComponentState::Paused,
            Phase::Failed(_) => ComponentState::Failed,
            Phase::Stopping => ComponentState::Stopped,
        };
        match phase.reason() {
            Some(r) => self.p.component.fail(state, r),
            None => {
                self.p.component.set_state(state);
                if state == ComponentState::Running {
                    self.p.component.clear_error();
                }
            }
        }
        self.phase = phase;
        self.publish();
    }

    /// Creates / checks the channel and opens a socket, off the actor.
    fn establish(&mut self, ctx: &mut Context<Self>, how: How) {
        if self.busy || matches!(self.phase, Phase::Stopping | Phase::Failed(_)) {
            return;
        }
        let (Some(api), Some(ws)) = (self.api.clone(), self.ws.clone()) else {
            return;
        };
        self.busy = true;
        self.next_retry = None;
        if how == How::Handoff {
            self.handoff = self.socket.as_ref().map(|s| s.generation);
            self.handoff_old_end = None;
        } else {
            self.set_phase(Phase::Connecting);
        }
        let org = self.p.org.clone();
        let topics = self.desired();
        let known = if how == How::Create { None } else { self.channel.clone() };
        let generation = self.next_generation;
        self.next_generation += 1;
        let (commands_tx, commands) = mpsc::channel(16);
        let setup = SocketSetup {
            generation,
            source: self.p.settings.source.clone(),
            component: self.p.slot.name.clone(),
            channel_id: String::new(),
            topics: topics.clone(),
            ping_interval: self.p.settings.ping_interval,
            silence_timeout: self.p.settings.silence_timeout,
            max_frame_bytes: self.p.settings.max_frame_bytes,
            ingest: self.p.ingest.clone(),
            dead_letters: self.p.dead_letters.clone(),
            counters: self.p.slot.counters.clone(),
            owner: ctx.address().recipient(),
            commands,
        };
        let settings = self.p.settings.clone();
        // Each call that finishes is a step: establishing takes several.
        let progress = self.progress.clone();
        let work = async move {
            let mut channel = known;
            if how == How::Revalidate {
                // A 1008 usually means the token or the channel is no
                // longer valid: a fresh token, then ask.
                refresh_token(&org)
                    .await
                    .map_err(|e| Failure::from(ApiError::Token(e)))?;
                progress.advance();
                if let Some(c) = &channel {
                    let exists = channel_api::exists(&api, &c.id).await;
                    progress.advance();
                    if !exists? {
                        tracing::info!(channel = %c.id, "channel is gone (HEAD 404); creating a new one");
                        channel = None;
                    }
                }
            }
            let mut states = None;
            let mut created = false;
            let channel = match channel {
                Some(c) => c,
                None => {
                    let (c, _taken_over) = channel_api::create_once(&api, &org.channels).await?;
                    progress.advance();
                    created = true;
                    states = Some(channel_api::put_subscriptions(&api, &c.id, &topics).await?);
                    progress.advance();
                    c
                }
            };
            let hard_limit = settings.max_frame_bytes.saturating_mul(4).max(4 << 20);
            let connected = ws.ws(channel.connect_uri.as_str()).max_frame_size(hard_limit).connect();
            let framed = match tokio::time::timeout(settings.connect_timeout, connected).await {
                Ok(Ok((_, framed))) => with_read_buffer(framed),
                Ok(Err(awc::error::WsClientError::InvalidResponseStatus(s))) if s.as_u16() == 404 => {
                    return Err(Failure::Gone(format!(
                        "socket refused with 404 for channel {}",
                        channel.id
                    )));
                }
                Ok(Err(e)) => return Err(Failure::Transient(format!("cannot open the socket: {e}"))),
                Err(_) => {
                    return Err(Failure::Transient(format!(
                        "socket handshake took longer than {:?}",
                        settings.connect_timeout
                    )))
                }
            };
            let setup = SocketSetup {
                channel_id: channel.id.clone(),
                ..setup
            };
            actix_rt::spawn(SocketTask::new(setup).run(framed));
            Ok(Established {
                channel,
                created,
                states,
                socket: LiveSocket {
                    generation,
                    commands: commands_tx,
                },
            })
        };
        ctx.spawn(
            work.into_actor(self)
                .map(move |res, this, ctx| this.established(how, res, ctx)),
        );
    }

    fn established(&mut self, how: How, res: Result<Established, Failure>, ctx: &mut Context<Self>) {
        self.busy = false;
        // Established or not, the attempt is over.
        self.progress.advance();
        let old_end = if how == How::Handoff {
            self.handoff = None;
            self.handoff_old_end.take()
        } else {
            None
        };
        if self.phase == Phase::Stopping {
            if let Ok(e) = res {
                e.socket.command(SocketCommand::Close);
                self.retiring.insert(e.socket.generation, e.socket);
            }
            return;
        }
        match res {
            Ok(e) => {
                if e.created {
                    self.channels_created += 1;
                    tracing::info!(component = %self.p.slot.name, channel = %e.channel.id, "notification channel created");
                }
                if let Some(states) = e.states {
                    self.apply_states(states);
                }
                let new_channel = e.created || self.channel.as_ref().map(|c| &c.id) != Some(&e.channel.id);
                if new_channel {
                    self.forget_channel();
                }
                self.channel = Some(e.channel);
                if let Some(old) = self.socket.replace(e.socket) {
                    // Handoff: the old socket carries on until Genesys
                    // closes it, then goes; cxrelay closes it past the grace.
                    old.command(SocketCommand::Retire);
                    let generation = old.generation;
                    self.retiring.insert(generation, old);
                    ctx.run_later(self.p.settings.old_socket_grace, move |this, _| {
                        if let Some(old) = this.retiring.get(&generation) {
                            old.command(SocketCommand::Close);
                        }
                    });
                }
                self.socket_up_since = Some(now_ms());
                if let Some((last_frame_ms, closed)) = old_end {
                    // The old socket was cut as the new one connected.
                    self.record_gap(last_frame_ms, format!("the replacement socket cut this one ({closed})"));
                }
                if new_channel || self.renewal.is_none() {
                    self.schedule_renewal(ctx);
                }
                // Topics added while the channel was being established.
                if self.states.values().any(|s| *s == TopicState::Pending) {
                    self.resubscribe(ctx);
                }
                self.set_phase(Phase::Connected);
            }
            Err(Failure::Gone(why)) => {
                self.forget_channel();
                if let Some((last_frame_ms, closed)) = old_end {
                    self.gaps.open(last_frame_ms.unwrap_or_else(now_ms), closed.to_string());
                }
                self.retry(ctx, why, How::Create);
            }
            Err(Failure::Transient(why)) => {
                if how == How::Handoff {
                    match old_end {
                        // The old socket is gone too: an ordinary reconnect.
                        Some((last_frame_ms, closed)) => {
                            self.gaps.open(last_frame_ms.unwrap_or_else(now_ms), closed.to_string());
                            self.retry(ctx, why, How::Reconnect);
                        }
                        // The old socket stays until it closes; its end is
                        // handled like any other.
                        None => {
                            tracing::warn!(component = %self.p.slot.name, error = %why, "could not open the replacement socket; the current one stays until it closes");
                        }
                    }
                    return;
                }
                let next = if how == How::Create {
                    How::Create
                } else {
                    How::Reconnect
                };
                self.retry(ctx, why, if how == How::Revalidate { How::Revalidate } else { next });
            }
            Err(Failure::Paused(why, wait)) => {
                self.set_phase(Phase::Paused(why));
                ctx.run_later(wait.max(Duration::from_secs(1)), move |this, ctx| {
                    this.establish(ctx, how)
                });
            }
            Err(Failure::Permanent(why)) => self.set_phase(Phase::Failed(why)),
        }
    }

    /// Records a gap that is already over: from `from_ms` (the last frame
    /// before it) to now.
    fn record_gap(&mut self, from_ms: Option<i64>, reason: String) {
        let now = now_ms();
        if self.gaps.is_open() {
            return;
        }
        self.gaps.open(from_ms.unwrap_or(now), reason);
        if let Some(gap) = self.gaps.close(now) {
            let topics = self.desired();
            let window = backfill_window(&gap, &topics);
            self.p
                .gaps
                .gap(&self.p.settings.source, &self.p.slot.name, &gap, window.as_ref());
        }
    }

    /// Lets the current channel go (another of this process's sources may
    /// not take it over: it is gone or replaced).
    fn forget_channel(&mut self) {
        if let Some(c) = self.channel.take() {
            self.p.org.channels.release(&c.id);
        }
    }

    /// Schedules the next attempt, or fails the channel past the limit.
    fn retry(&mut self, ctx: &mut Context<Self>, why: String, how: How) {
        match self.retries.next_attempt() {
            Some(next) => {
                tracing::warn!(component = %self.p.slot.name, attempt = next.attempt, limit = self.retries.limit(),
                    delay_ms = next.delay.as_millis() as u64, ceiling_ms = next.ceiling.as_millis() as u64,
                    reason = %why, "notification channel down; retrying");
                self.next_retry = Some((next, Instant::now() + next.delay));
                self.set_phase(Phase::Retrying(format!(
                    "retry {} of {} in {} ms: {why}",
                    next.attempt,
                    self.retries.limit(),
                    next.delay.as_millis()
                )));
                ctx.run_later(next.delay, move |this, ctx| this.establish(ctx, how));
            }
            None => {
                let reason = format!(
                    "gave up after {} failed attempts in a row (retry_limit): {why}",
                    self.retries.attempts()
                );
                tracing::error!(component = %self.p.slot.name, "{reason}");
                self.set_phase(Phase::Failed(reason));
            }
        }
    }

    fn apply_states(&mut self, states: Vec<(String, TopicState)>) {
        for (topic, state) in states {
            if let TopicState::Rejected(why) = &state {
                tracing::warn!(component = %self.p.slot.name, %topic, reason = %why, "Genesys rejected a topic");
            }
            self.states.insert(topic, state);
        }
    }

    fn schedule_renewal(&mut self, ctx: &mut Context<Self>) {
        if let Some(h) = self.renewal.take() {
            ctx.cancel_future(h);
        }
        let Some(c) = &self.channel else { return };
        let ahead = self.p.settings.renew_before.min(c.lifetime / 2);
        let at = c.expires_at.checked_sub(ahead).unwrap_or(c.expires_at);
        let delay = at.saturating_duration_since(Instant::now());
        self.renewal = Some(ctx.run_later(delay, |this, ctx| {
            this.renewal = None;
            this.renew(ctx);
        }));
    }

    /// Re-PUTs the subscriptions, which keeps the channel alive.
    fn renew(&mut self, ctx: &mut Context<Self>) {
        let (Some(api), Some(channel)) = (self.api.clone(), self.channel.clone()) else {
            return;
        };
        let topics = self.desired();
        let work = async move { channel_api::put_subscriptions(&api, &channel.id, &topics).await };
        ctx.spawn(work.into_actor(self).map(move |res, this, ctx| {
            this.progress.advance();
            match res {
                Ok(states) => {
                    this.renewals += 1;
                    this.apply_states(states);
                    if let Some(c) = this.channel.as_mut() {
                        c.expires_at = Instant::now() + c.lifetime;
                    }
                    this.schedule_renewal(ctx);
                }
                Err(e) if e.status() == Some(404) => {
                    tracing::warn!(component = %this.p.slot.name, error = %e, "channel expired before its renewal; creating a new one");
                    this.channel_lost(ctx, "channel gone at renewal".into());
                }
                Err(e) => {
                    // Try again well before the expiry.
                    let left = this
                        .channel
                        .as_ref()
                        .map(|c| c.expires_at.saturating_duration_since(Instant::now()))
                        .unwrap_or_default();
                    let again = (left / 4).clamp(Duration::from_millis(200), Duration::from_secs(60));
                    tracing::warn!(component = %this.p.slot.name, error = %e, retry_in_ms = again.as_millis() as u64, "channel renewal failed");
                    this.p.component.record_error(format!("renewal failed: {e}"));
                    this.renewal = Some(ctx.run_later(again, |this, ctx| {
                        this.renewal = None;
                        this.renew(ctx);
                    }));
                }
            }
        }));
    }

    /// The channel is gone while its socket may still be up: let the socket
    /// go and start over with a new channel.
    fn channel_lost(&mut self, ctx: &mut Context<Self>, why: String) {
        self.forget_channel();
        if let Some(old) = self.socket.take() {
            old.command(SocketCommand::Close);
            self.retiring.insert(old.generation, old);
            self.gaps.open(now_ms(), why.clone());
        }
        self.retry(ctx, why, How::Create);
    }

    /// PUTs the desired topics (after changes made while disconnected).
    fn resubscribe(&mut self, ctx: &mut Context<Self>) {
        let (Some(api), Some(channel)) = (self.api.clone(), self.channel.clone()) else {
            return;
        };
        let topics = self.desired();
        let work = async move {
            if topics.is_empty() {
                channel_api::delete_subscriptions(&api, &channel.id)
                    .await
                    .map(|_| Vec::new())
            } else {
                channel_api::put_subscriptions(&api, &channel.id, &topics).await
            }
        };
        ctx.spawn(work.into_actor(self).map(|res, this, _| match res {
            Ok(states) => this.apply_states(states),
            Err(e) => this.p.component.record_error(format!("resubscribing failed: {e}")),
        }));
    }

    fn socket_ended(
        &mut self,
        generation: u64,
        closed: Closed,
        last_frame_ms: Option<i64>,
        up_for: Duration,
        ctx: &mut Context<Self>,
    ) {
        if self.retiring.remove(&generation).is_some() {
            tracing::debug!(component = %self.p.slot.name, generation, %closed, "released socket ended");
            if closed != Closed::ByUs && self.phase != Phase::Stopping {
                // A second connect to a channel cuts the first at once: what
                // was on its way to the old socket is lost.
                self.record_gap(last_frame_ms, format!("the replacement socket cut this one ({closed})"));
            }
            if self.phase == Phase::Stopping && self.socket.is_none() && self.retiring.is_empty() {
                ctx.stop();
            }
            return;
        }
        if self.socket.as_ref().map(|s| s.generation) != Some(generation) {
            return;
        }
        self.socket = None;
        self.socket_up_since = None;
        if self.handoff == Some(generation) && self.phase != Phase::Stopping {
            // Genesys let the old socket go as the new one connected: the
            // handoff decides what happens next.
            self.handoff_old_end = Some((last_frame_ms, closed));
            return;
        }
        if self.phase == Phase::Stopping {
            if self.retiring.is_empty() {
                ctx.stop();
            }
            return;
        }
        *self.reconnects.entry(closed.label()).or_default() += 1;
        self.last_close = Some(closed.to_string());
        self.last_close_at_ms = Some(now_ms());
        self.retries.socket_lasted(up_for);
        if closed != Closed::ByUs {
            self.gaps.open(last_frame_ms.unwrap_or_else(now_ms), closed.to_string());
        }
        tracing::warn!(component = %self.p.slot.name, %closed, up_for_ms = up_for.as_millis() as u64, "notification socket ended");
        match reaction(&closed) {
            Reaction::Reconnect => self.retry(ctx, closed.to_string(), How::Reconnect),
            Reaction::Revalidate => self.retry(ctx, closed.to_string(), How::Revalidate),
            Reaction::Stop(why) => {
                tracing::error!(component = %self.p.slot.name, "{why}");
                self.set_phase(Phase::Failed(why));
            }
            Reaction::Nothing => {}
        }
    }

    fn socket_live(&mut self, generation: u64, at_ms: i64) {
        if self.socket.as_ref().map(|s| s.generation) != Some(generation) {
            return;
        }
        if let Some(gap) = self.gaps.close(at_ms) {
            let topics = self.desired();
            let window = backfill_window(&gap, &topics);
            self.p
                .gaps
                .gap(&self.p.settings.source, &self.p.slot.name, &gap, window.as_ref());
        }
    }
}

/// Drops the current token and gets a fresh one.
async fn refresh_token(org: &GenesysOrg) -> Result<(), TokenError> {
    let current = org.tokens.send(GetToken).await.map_err(|_| TokenError::Stopped)??;
    org.tokens
        .send(crate::genesys::token_provider::TokenRejected(current.value))
        .await
        .map_err(|_| TokenError::Stopped)??;
    Ok(())
}

impl Actor for NotificationChannel {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        *self.p.slot.addr.lock() = Some(ctx.address());
        self.api = Some(self.p.org.client());
        self.ws = Some(awc::Client::default());
        self.set_phase(Phase::Starting);
        ctx.run_interval(PUBLISH_EVERY, |this, _| this.publish());
        self.establish(ctx, How::Create);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        let mut slot = self.p.slot.addr.lock();
        if slot.as_ref().is_some_and(|a| !a.connected()) {
            *slot = None;
        }
        drop(slot);
        self.publish();
    }
}
