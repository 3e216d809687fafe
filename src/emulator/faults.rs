//! Faults on demand: armed from config (at a time after start) or through
//! `POST /_emulator/faults`, consumed by the part of the emulator they
//! concern. Each fault has a count: it applies to that many matching
//! requests (or sockets, or cursors) and is then spent.

use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

fn one() -> u32 {
    1
}
fn two() -> u64 {
    2
}
fn service_unavailable() -> u16 {
    503
}
fn unauthorized() -> u16 {
    401
}

/// One misbehaviour of the platform, as cxrelay meets it in production.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer the next `count` API requests (whose path starts with `path`,
    /// if given) with 429, the real body and `Retry-After`.
    RateLimit {
        /// Requests concerned.
        #[serde(default = "one")]
        count: u32,
        /// The `Retry-After` value, in seconds.
        #[serde(default = "two")]
        retry_after_s: u64,
        /// Only requests whose path starts with this.
        #[serde(default)]
        path: Option<String>,
    },
    /// Answer the next `count` API requests with an error status.
    Error {
        /// Requests concerned.
        #[serde(default = "one")]
        count: u32,
        /// The status (5xx, or any other).
        #[serde(default = "service_unavailable")]
        status: u16,
        /// Only requests whose path starts with this.
        #[serde(default)]
        path: Option<String>,
    },
    /// Delay the next `count` answers.
    Slow {
        /// Requests concerned.
        #[serde(default = "one")]
        count: u32,
        /// Added delay.
        delay_ms: u64,
        /// Carry the request out first and delay only its answer (a client
        /// that times out has had it done all the same).
        #[serde(default)]
        after_handling: bool,
        /// Only requests whose path starts with this.
        #[serde(default)]
        path: Option<String>,
    },
    /// Refuse the next `count` token requests: 401 `invalid_client` or, with
    /// a 5xx status, a server error.
    FailToken {
        /// Requests concerned.
        #[serde(default = "one")]
        count: u32,
        /// 400/401 (refused) or 5xx (login service failing).
        #[serde(default = "unauthorized")]
        status: u16,
    },
    /// Every token issued so far stops working (401 on its next use).
    ExpireTokens,
    /// The next `count` result pages asked for with a cursor answer 400, as
    /// if the cursor had gone stale.
    StaleCursor {
        /// Pages concerned.
        #[serde(default = "one")]
        count: u32,
    },
    /// The next `count` details jobs submitted end FAILED with `message`
    /// instead of FULFILLED.
    FailJob {
        /// Jobs concerned.
        #[serde(default = "one")]
        count: u32,
        /// The job's `errorMessage`.
        #[serde(default = "job_failure")]
        message: String,
    },
    /// A details job (the given one, or every one) becomes EXPIRED.
    ExpireJob {
        /// The job id.
        #[serde(default)]
        job: Option<String>,
    },
    /// The next `count` downloads (whose path starts with `path`) stop after
    /// `after_bytes` bytes of body, as a broken transfer.
    CutDownload {
        /// Downloads concerned.
        #[serde(default = "one")]
        count: u32,
        /// Bytes sent before the cut.
        after_bytes: u64,
        /// Only downloads whose path starts with this.
        #[serde(default)]
        path: Option<String>,
    },
    /// Download URLs issued so far stop working (403), as when they expire.
    ExpireDownloads,
    /// Close a channel's socket (the given one, or every open one) with a
    /// close code.
    CloseSocket {
        /// The channel id.
        #[serde(default)]
        channel: Option<String>,
        /// RFC 6455 close code.
        code: u16,
    },
    /// Drop a socket without a close frame (the client sees 1006).
    DropSocket {
        /// The channel id.
        #[serde(default)]
        channel: Option<String>,
    },
    /// Stop sending anything on a socket (no heartbeats, no events, no
    /// pongs) while keeping it open: a dead connection that looks alive.
    SilenceSocket {
        /// The channel id.
        #[serde(default)]
        channel: Option<String>,
    },
    /// Announce maintenance with `v2.system.socket_closing`; the socket
    /// closes `grace_ms` later.
    SocketClosing {
        /// The channel id.
        #[serde(default)]
        channel: Option<String>,
        /// Time from the announcement to the close.
        #[serde(default = "default_grace_ms")]
        grace_ms: u64,
    },
    /// A channel disappears (HEAD answers 404, its socket closes with 1008).
    ExpireChannel {
        /// The channel id.
        #[serde(default)]
        channel: Option<String>,
    },
    /// Send `count` malformed frames (bad JSON, no topicName, oversized)
    /// interleaved with the normal traffic.
    MalformedFrames {
        /// The channel id.
        #[serde(default)]
        channel: Option<String>,
        /// Frames.
        #[serde(default = "one")]
        count: u32,
    },
    /// Send a `v2.system.*` message on a channel's socket, as the SDK's
    /// SystemMessageSystemMessage: `no_longer_subscribed` (the channel's
    /// subscriptions are dropped: nothing flows until they are PUT again),
    /// `subscription_changed` (they are changed elsewhere: the same), or
    /// `token_revoked` (the token that created the channel stops working).
    SystemMessage {
        /// The channel id.
        #[serde(default)]
        channel: Option<String>,
        /// The `systemTopicType`.
        message: SystemTopicType,
    },
    /// Send the next `count` events as fragmented messages (continuation
    /// frames).
    FragmentFrames {
        /// The channel id.
        #[serde(default)]
        channel: Option<String>,
        /// Events.
        #[serde(default = "one")]
        count: u32,
    },
}

/// The `systemTopicType` of a system message (the SDK's enum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SystemTopicType {
    /// The channel no longer receives its topics.
    NoLongerSubscribed,
    /// Its subscriptions were changed.
    SubscriptionChanged,
    /// The token it was created with was revoked.
    TokenRevoked,
}

impl SystemTopicType {
    /// The name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            SystemTopicType::NoLongerSubscribed => "no_longer_subscribed",
            SystemTopicType::SubscriptionChanged => "subscription_changed",
            SystemTopicType::TokenRevoked => "token_revoked",
        }
    }
}

fn job_failure() -> String {
    "Injected fault: the job failed".into()
}

fn default_grace_ms() -> u64 {
    60_000
}

impl Fault {
    /// How many times the fault applies.
    pub fn count(&self) -> u32 {
        match self {
            Fault::RateLimit { count, .. }
            | Fault::Error { count, .. }
            | Fault::Slow { count, .. }
            | Fault::FailToken { count, .. }
            | Fault::StaleCursor { count }
            | Fault::FailJob { count, .. }
            | Fault::CutDownload { count, .. }
            | Fault::MalformedFrames { count, .. }
            | Fault::FragmentFrames { count, .. } => *count,
            _ => 1,
        }
    }

    /// The channel a socket fault is aimed at (`None`: every channel).
    pub fn channel(&self) -> Option<&str> {
        match self {
            Fault::CloseSocket { channel, .. }
            | Fault::DropSocket { channel }
            | Fault::SilenceSocket { channel }
            | Fault::SocketClosing { channel, .. }
            | Fault::ExpireChannel { channel }
            | Fault::MalformedFrames { channel, .. }
            | Fault::SystemMessage { channel, .. }
            | Fault::FragmentFrames { channel, .. } => channel.as_deref(),
            _ => None,
        }
    }
}

/// A fault armed at a time after the emulator starts (config).
#[derive(Debug, Clone, Deserialize)]
pub struct ScheduledFault {
    /// Delay from start.
    #[serde(default, deserialize_with = "crate::wire::duration::option::deserialize")]
    pub after: Option<Duration>,
    /// Armed again at this interval.
    #[serde(default, deserialize_with = "crate::wire::duration::option::deserialize")]
    pub every: Option<Duration>,
    /// The fault.
    #[serde(flatten)]
    pub fault: Fault,
}

#[derive(Debug)]
struct Armed {
    fault: Fault,
    remaining: u32,
}

/// The faults armed now. Parts of the emulator take the faults that concern
/// them; socket tasks watch [`FaultBook::subscribe`] to learn about new ones.
#[derive(Debug)]
pub struct FaultBook {
    armed: Mutex<Vec<Armed>>,
    generation: watch::Sender<u64>,
    applied: Mutex<Vec<Fault>>,
}

impl Default for FaultBook {
    fn default() -> Self {
        FaultBook {
            armed: Mutex::new(Vec::new()),
            generation: watch::channel(0).0,
            applied: Mutex::new(Vec::new()),
        }
    }
}

impl FaultBook {
    /// Arms a fault.
    pub fn arm(&self, fault: Fault) {
        tracing::info!(?fault, "emulator: fault armed");
        let remaining = fault.count().max(1);
        self.armed.lock().push(Armed { fault, remaining });
        self.generation.send_modify(|g| *g += 1);
    }

    /// Takes one application of the first armed fault `pick` accepts; the
    /// fault is spent once its count is used up.
    pub fn take(&self, pick: impl Fn(&Fault) -> bool) -> Option<Fault> {
        let mut armed = self.armed.lock();
        let i = armed.iter().position(|a| pick(&a.fault))?;
        armed[i].remaining -= 1;
        let fault = if armed[i].remaining == 0 {
            armed.remove(i).fault
        } else {
            armed[i].fault.clone()
        };
        drop(armed);
        self.applied.lock().push(fault.clone());
        Some(fault)
    }

    /// Takes every application of faults `pick` accepts at once (for faults
    /// that hit all matching targets together).
    pub fn take_all(&self, pick: impl Fn(&Fault) -> bool) -> Vec<Fault> {
        let mut armed = self.armed.lock();
        let mut out = Vec::new();
        armed.retain(|a| {
            if pick(&a.fault) {
                out.push(a.fault.clone());
                false
            } else {
                true
            }
        });
        drop(armed);
        self.applied.lock().extend(out.iter().cloned());
        out
    }

    /// Records a fault that acted at once (not armed).
    pub fn record_applied(&self, fault: Fault) {
        self.applied.lock().push(fault);
    }

    /// Whether a fault `pick` accepts is armed (without taking it).
    pub fn is_armed(&self, pick: impl Fn(&Fault) -> bool) -> bool {
        self.armed.lock().iter().any(|a| pick(&a.fault))
    }

    /// Faults armed and not yet spent.
    pub fn armed(&self) -> Vec<(Fault, u32)> {
        self.armed
            .lock()
            .iter()
            .map(|a| (a.fault.clone(), a.remaining))
            .collect()
    }

    /// Every application so far, in order (what the emulator did to its
    /// clients, for tests).
    pub fn applied(&self) -> Vec<Fault> {
        self.applied.lock().clone()
    }

    /// Changes whenever a fault is armed.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.generation.subscribe()
    }

    /// Removes every armed fault.
    pub fn clear(&self) {
        self.armed.lock().clear();
    }
}

/// Whether `path` is concerned by a fault limited to `prefix`.
pub fn path_matches(prefix: &Option<String>, path: &str) -> bool {
    prefix.as_deref().is_none_or(|p| path.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_faults_are_spent_after_their_count() {
        let book = FaultBook::default();
        book.arm(Fault::StaleCursor { count: 2 });
        let stale = |f: &Fault| matches!(f, Fault::StaleCursor { .. });
        assert!(book.take(stale).is_some());
        assert!(book.take(stale).is_some());
        assert!(book.take(stale).is_none());
        assert_eq!(book.applied().len(), 2);
    }

    #[test]
    fn parses_the_control_body() {
        let f: Fault = serde_json::from_str(r#"{"kind":"rate_limit","count":3,"retry_after_s":2}"#).unwrap();
        assert_eq!(
            f,
            Fault::RateLimit {
                count: 3,
                retry_after_s: 2,
                path: None
            }
        );
        assert!(serde_json::from_str::<Fault>(r#"{"kind":"rate_limit","cont":3}"#).is_err());
        let s: ScheduledFault = toml::from_str("after = \"5s\"\nkind = \"close_socket\"\ncode = 1011\n").unwrap();
        assert_eq!(s.after, Some(Duration::from_secs(5)));
        assert_eq!(
            s.fault,
            Fault::CloseSocket {
                channel: None,
                code: 1011
            }
        );
    }
}
