//! What a channel does with the platform's `v2.system.*` messages.

use actix::prelude::*;
use cxrelay_actors::event::now_ms;

use super::super::channel_api;
use super::super::frames::SystemMessage;
use super::super::gaps::backfill_window;
use super::{refresh_token, NotificationChannel, Phase};
use crate::genesys::ApiError;

impl NotificationChannel {
    /// A `v2.system.*` message: never an event, always acted on. The
    /// channel stopped receiving (`no_longer_subscribed`) or its
    /// subscriptions changed: a gap opens now and closes when they are PUT
    /// again (a channel that is gone is recreated). `token_revoked`: a new
    /// token first, then the same.
    pub(super) fn system_message(
        &mut self,
        generation: u64,
        message: SystemMessage,
        at_ms: i64,
        ctx: &mut Context<Self>,
    ) {
        if self.socket.as_ref().map(|s| s.generation) != Some(generation) || self.phase == Phase::Stopping {
            return;
        }
        tracing::warn!(component = %self.p.slot.name, message = message.as_str(), "Genesys sent a system message; resubscribing");
        self.gaps.open(at_ms, format!("Genesys said {}", message.as_str()));
        let (Some(api), Some(channel)) = (self.api.clone(), self.channel.clone()) else {
            return;
        };
        let org = self.p.org.clone();
        let topics = self.desired();
        let refresh = message == SystemMessage::TokenRevoked;
        let work = async move {
            if refresh {
                refresh_token(&org).await.map_err(ApiError::Token)?;
            }
            channel_api::put_subscriptions(&api, &channel.id, &topics).await
        };
        ctx.spawn(work.into_actor(self).map(|res, this, ctx| {
            this.progress.advance();
            match res {
                Ok(states) => {
                    this.apply_states(states);
                    this.renewals += 1;
                    if let Some(gap) = this.gaps.close(now_ms()) {
                        let topics = this.desired();
                        let window = backfill_window(&gap, &topics);
                        this.p
                            .gaps
                            .gap(&this.p.settings.source, &this.p.slot.name, &gap, window.as_ref());
                    }
                    this.publish();
                }
                Err(e) if e.status() == Some(404) => {
                    this.channel_lost(ctx, "channel gone after a system message".into())
                }
                Err(e) => {
                    // The socket is up but the channel does not flow: start
                    // over with a fresh channel.
                    this.p.component.record_error(format!("resubscribing failed: {e}"));
                    this.channel_lost(ctx, format!("resubscribing after a system message failed: {e}"));
                }
            }
        }));
    }
}
