//! The notifications API of the emulator (genesys-api.md §2): channels and
//! their subscriptions over REST, one WebSocket per channel, and the
//! traffic that flows on it.
//!
//! - [`channels`]: the channel table and the REST endpoints (limits, expiry,
//!   eviction of the oldest channel, per-topic rejections).
//! - [`channel_socket`]: the WebSocket endpoint (heartbeats, ping/pong,
//!   socket faults).
//! - [`traffic`]: the deterministic event generator and its control
//!   endpoint, with a record of what was sent on each channel.
//!
//! Per-topic rejections are answered as Genesys does for topics an OAuth
//! client lacks permission for: the request succeeds, and each topic in the
//! answer carries `"state":"Permitted"` or `"state":"Rejected"` with a
//! `"rejectionReason"`. Rejected topics are not subscribed.

pub mod channel_socket;
pub mod channels;
mod frames;
pub mod traffic;

use actix_web::web;
pub use channels::{ChannelRecord, Notifications, RecordSnapshot};
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
        .route("/_emulator/traffic", web::post().to(traffic::start))
        .route("/_emulator/traffic", web::get().to(traffic::status))
        .route("/_emulator/traffic", web::delete().to(traffic::stop))
        .route(
            "/_emulator/traffic/channels/{id}",
            web::get().to(traffic::channel_record),
        );
}
