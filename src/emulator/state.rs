//! The emulator's world: issued tokens, rate windows, armed faults, the
//! request log, and the state of each API area. Shared by every handler
//! and socket task (the emulator runs on several HTTP worker threads).

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use super::bulk::BulkState;
use super::faults::{Fault, FaultBook};
use super::hosts::HostAddrs;
use super::notifications::channel_table::Notifications;
use super::rate_limit::RateLimiter;
use super::request_log::RequestLog;
use super::settings::EmulatorSettings;
use super::tokens::Tokens;

/// Everything the emulator knows.
#[derive(Debug)]
pub struct EmulatorState {
    /// How it was configured.
    pub settings: EmulatorSettings,
    /// When it started.
    pub started: Instant,
    /// Issued tokens.
    pub tokens: Tokens,
    /// Per-client request windows.
    pub limiter: RateLimiter,
    /// Faults armed now.
    pub faults: FaultBook,
    /// What was asked.
    pub log: RequestLog,
    /// Analytics jobs, recording batches and export files.
    pub bulk: BulkState,
    /// Notification channels, their sockets and traffic.
    pub notifications: Notifications,
    hosts: OnceLock<HostAddrs>,
}

impl EmulatorState {
    /// A fresh world.
    pub fn new(settings: EmulatorSettings) -> Arc<Self> {
        let started = Instant::now();
        Arc::new(EmulatorState {
            limiter: RateLimiter::new(settings.requests_per_minute),
            bulk: BulkState::new(settings.seed, &settings.bulk),
            notifications: Notifications::new(&settings.notifications, settings.seed),
            settings,
            started,
            tokens: Tokens::default(),
            faults: FaultBook::default(),
            log: RequestLog::new(started),
            hosts: OnceLock::new(),
        })
    }

    /// Where its hosts listen (known once bound).
    pub fn hosts(&self) -> Option<&HostAddrs> {
        self.hosts.get()
    }

    /// `http://host:port` of the API host.
    pub fn base_url(&self) -> String {
        self.hosts
            .get()
            .map_or_else(|| "http://127.0.0.1".into(), HostAddrs::api_url)
    }

    /// `ws://host:port` of the streaming host (the channels' `connectUri`).
    pub fn streaming_url(&self) -> String {
        self.hosts
            .get()
            .map_or_else(|| "ws://127.0.0.1".into(), HostAddrs::streaming_url)
    }

    /// `http://host:port` of the download host (signed URLs).
    pub fn downloads_url(&self) -> String {
        self.hosts
            .get()
            .map_or_else(|| "http://127.0.0.1".into(), HostAddrs::downloads_url)
    }

    pub(super) fn set_hosts(&self, hosts: HostAddrs) {
        let _ = self.hosts.set(hosts);
    }

    /// Applies a fault: those that act at once do so, the others are armed
    /// for the part of the emulator they concern.
    pub fn apply(&self, fault: Fault) {
        match fault {
            Fault::ExpireTokens => {
                tracing::info!("emulator: every issued token revoked");
                self.tokens.revoke_all();
                self.faults.record_applied(Fault::ExpireTokens);
            }
            other => self.faults.arm(other),
        }
    }
}
