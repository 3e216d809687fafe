//! The notifications API of the emulator (genesys-api.md §2): channels and
//! their subscriptions over REST, one WebSocket per channel, and the
//! traffic that flows on it.
//!
//! - [`channel_table`]: the channels, their subscriptions and sockets
//!   (limits, expiry, eviction of the oldest channel, per-topic
//!   rejections), and [`channel_record`]: what was sent on each.
//! - [`channels`]: the REST endpoints over the table.
//! - [`channel_socket`]: the WebSocket endpoint (heartbeats, ping/pong,
//!   socket faults); [`socket_messages`]: what it is handed.
//! - [`traffic`]: the deterministic event generator and its control
//!   endpoint.
//!
//! Topics an OAuth client may not have (missing permissions, invalid
//! names) fail a subscription request as a whole, as on the platform,
//! unless it says `?ignoreErrors=true`: then the request succeeds and each
//! topic in the answer carries `"state":"Permitted"` or
//! `"state":"Rejected"` with a `"rejectionReason"` (and the
//! `"missingPermissions"`). Rejected topics are not subscribed.

pub mod channel_record;
pub mod channel_socket;
pub mod channel_table;
#[cfg(test)]
mod channel_table_tests;
pub mod channels;
mod frames;
pub mod socket_messages;
pub mod traffic;

use actix_web::web;

pub use channel_record::{ChannelRecord, CloseRecord, RecordSnapshot};
pub use channel_table::Notifications;
pub use traffic::{TrafficControl, TrafficStatus};

pub use crate::emulator::settings::notifications::{NotificationSettings, TrafficRequest, TrafficSettings};

/// Registers the notification routes (REST, WebSocket, traffic control).
pub fn routes(cfg: &mut web::ServiceConfig) {
    const CHANNELS: &str = "/api/v2/notifications/channels";
    cfg.route(CHANNELS, web::post().to(channels::create))
        .route(CHANNELS, web::get().to(channels::list))
        .route(&format!("{CHANNELS}/{{id}}"), web::head().to(channels::head))
        .route(
            &format!("{CHANNELS}/{{id}}/subscriptions"),
            web::get().to(channels::get_subscriptions),
        )
        .route(
            &format!("{CHANNELS}/{{id}}/subscriptions"),
            web::put().to(channels::put_subscriptions),
        )
        .route(
            &format!("{CHANNELS}/{{id}}/subscriptions"),
            web::post().to(channels::post_subscriptions),
        )
        .route(
            &format!("{CHANNELS}/{{id}}/subscriptions"),
            web::delete().to(channels::delete_subscriptions),
        )
        .route("/channels/{id}", web::get().to(channel_socket::connect))
        .route("/_emulator/traffic", web::post().to(traffic::endpoints::start))
        .route("/_emulator/traffic", web::get().to(traffic::endpoints::status))
        .route("/_emulator/traffic", web::delete().to(traffic::endpoints::stop))
        .route(
            "/_emulator/traffic/channels/{id}",
            web::get().to(traffic::endpoints::channel_record),
        );
}
