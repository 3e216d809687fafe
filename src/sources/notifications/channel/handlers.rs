//! The channel actor's messages: its sockets' news, runtime control from
//! the admin API (topics added and removed without a restart, a look at
//! it, a restart once failed), and shutdown.

use actix::prelude::*;
use cxrelay_actors::supervision::Shutdown;

use super::super::channel_api::{self, TopicState};
use super::super::control::{AddTopics, GetChannel, RemoveTopics, RestartChannel, TopicChange};
use super::super::socket::{SocketCommand, SocketEvent};
use super::{How, NotificationChannel, Phase, STOP_GRACE};

impl Handler<SocketEvent> for NotificationChannel {
    type Result = ();

    fn handle(&mut self, msg: SocketEvent, ctx: &mut Self::Context) {
        match msg {
            SocketEvent::Live { generation, at_ms } => self.socket_live(generation, at_ms),
            SocketEvent::Closing { generation } => {
                let current = self.socket.as_ref().map(|s| s.generation) == Some(generation);
                if current && self.channel.is_some() {
                    tracing::info!(component = %self.p.slot.name, "Genesys announced maintenance; opening a new socket before the old one closes");
                    self.establish(ctx, How::Handoff);
                }
            }
            SocketEvent::System {
                generation,
                message,
                at_ms,
            } => self.system_message(generation, message, at_ms, ctx),
            SocketEvent::Ended {
                generation,
                closed,
                last_frame_ms,
                up_for,
            } => self.socket_ended(generation, closed, last_frame_ms, up_for, ctx),
        }
    }
}

impl Handler<AddTopics> for NotificationChannel {
    type Result = ResponseActFuture<Self, Vec<TopicChange>>;

    fn handle(&mut self, msg: AddTopics, _: &mut Self::Context) -> Self::Result {
        let index = self.p.slot.index;
        let new: Vec<String> = {
            let mut desired = self.p.slot.topics.lock();
            let fresh: Vec<String> = msg.0.into_iter().filter(|t| !desired.contains(t)).collect();
            desired.extend(fresh.iter().cloned());
            fresh
        };
        for t in &new {
            self.states.insert(t.clone(), TopicState::Pending);
        }
        let topics = self.desired();
        for s in self.socket.iter().chain(self.retiring.values()) {
            s.command(SocketCommand::Topics(topics.clone()));
        }
        let target = if self.busy {
            None
        } else {
            self.api.clone().zip(self.channel.clone())
        };
        Box::pin(
            async move {
                match target {
                    Some((api, channel)) if !new.is_empty() => (
                        new.clone(),
                        Some(channel_api::add_subscriptions(&api, &channel.id, &new).await),
                    ),
                    _ => (new, None),
                }
            }
            .into_actor(self)
            .map(move |(new, res), this, _| match res {
                Some(Ok(states)) => {
                    let out = states.iter().map(|(t, s)| change(index, t, s)).collect();
                    this.apply_states(states);
                    this.publish();
                    out
                }
                Some(Err(e)) => {
                    // Still wanted: the next (re)subscription includes them.
                    let why = e.to_string();
                    new.iter()
                        .map(|t| TopicChange {
                            topic: t.clone(),
                            channel: index,
                            state: "failed",
                            reason: Some(why.clone()),
                        })
                        .collect()
                }
                None => new.iter().map(|t| change(index, t, &TopicState::Pending)).collect(),
            }),
        )
    }
}

fn change(channel: usize, topic: &str, state: &TopicState) -> TopicChange {
    let (state, reason) = match state {
        TopicState::Pending => ("pending", None),
        TopicState::Permitted => ("permitted", None),
        TopicState::Rejected(r) => ("rejected", Some(r.clone())),
    };
    TopicChange {
        topic: topic.to_string(),
        channel,
        state,
        reason,
    }
}

impl Handler<RemoveTopics> for NotificationChannel {
    type Result = ResponseActFuture<Self, Vec<TopicChange>>;

    fn handle(&mut self, msg: RemoveTopics, _: &mut Self::Context) -> Self::Result {
        let index = self.p.slot.index;
        let removed: Vec<String> = {
            let mut desired = self.p.slot.topics.lock();
            let gone: Vec<String> = msg.0.into_iter().filter(|t| desired.contains(t)).collect();
            desired.retain(|t| !gone.contains(t));
            gone
        };
        for t in &removed {
            self.states.remove(t);
        }
        let topics = self.desired();
        let target = if self.busy {
            None
        } else {
            self.api.clone().zip(self.channel.clone())
        };
        Box::pin(
            async move {
                let res = match target {
                    Some((api, channel)) if !removed.is_empty() => Some(if topics.is_empty() {
                        channel_api::delete_subscriptions(&api, &channel.id).await
                    } else {
                        channel_api::put_subscriptions(&api, &channel.id, &topics)
                            .await
                            .map(|_| ())
                    }),
                    _ => None,
                };
                (removed, res)
            }
            .into_actor(self)
            .map(move |(removed, res), this, _| {
                let reason = match res {
                    Some(Err(e)) => {
                        this.p.component.record_error(format!("unsubscribing failed: {e}"));
                        Some(format!(
                            "removed here; Genesys was not told yet ({e}), the next renewal tells it"
                        ))
                    }
                    _ => None,
                };
                this.publish();
                removed
                    .into_iter()
                    .map(|t| TopicChange {
                        topic: t,
                        channel: index,
                        state: "removed",
                        reason: reason.clone(),
                    })
                    .collect()
            }),
        )
    }
}

impl Handler<GetChannel> for NotificationChannel {
    type Result = MessageResult<GetChannel>;

    fn handle(&mut self, _: GetChannel, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.view())
    }
}

impl Handler<RestartChannel> for NotificationChannel {
    type Result = bool;

    fn handle(&mut self, _: RestartChannel, ctx: &mut Self::Context) -> bool {
        if !matches!(self.phase, Phase::Failed(_)) {
            return false;
        }
        tracing::info!(component = %self.p.slot.name, "restarting a failed channel");
        self.retries.reset();
        self.phase = Phase::Starting;
        let how = if self.channel.is_some() {
            How::Revalidate
        } else {
            How::Create
        };
        self.establish(ctx, how);
        true
    }
}

impl Handler<Shutdown> for NotificationChannel {
    type Result = ();

    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        self.set_phase(Phase::Stopping);
        if let Some(s) = self.socket.as_ref() {
            s.command(SocketCommand::Close);
        }
        for s in self.retiring.values() {
            s.command(SocketCommand::Close);
        }
        if self.socket.is_none() && self.retiring.is_empty() {
            ctx.stop();
            return;
        }
        // Sockets commit what they read, then report; stop regardless
        // after the grace.
        ctx.run_later(STOP_GRACE, |_, ctx| ctx.stop());
    }
}
