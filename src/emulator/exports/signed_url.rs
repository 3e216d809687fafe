//! Time-limited download URLs, like the presigned URLs Genesys hands out:
//! `?expires=<ms>&signature=<hex>`. A URL stops working when it expires,
//! or when the `expire_downloads` fault revokes every URL issued so far.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use cxrelay_actors::event::now_ms;

use crate::emulator::faults::Fault;
use crate::emulator::ids::derive;
use crate::emulator::state::EmulatorState;

const SIGNATURE: u64 = 0x5349_47;

/// Why a download URL is refused (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlRefusal {
    /// No or a wrong signature.
    Unsigned,
    /// Past its expiry time.
    Expired,
    /// Issued before `expire_downloads` revoked every URL.
    Revoked,
}

impl UrlRefusal {
    /// For the error body.
    pub fn message(self) -> &'static str {
        match self {
            UrlRefusal::Unsigned => "The download URL is not signed",
            UrlRefusal::Expired => "The download URL has expired",
            UrlRefusal::Revoked => "The download URL is no longer valid",
        }
    }
}

/// Signs and checks download URLs.
#[derive(Debug)]
pub struct UrlSigner {
    seed: u64,
    ttl: Duration,
    revoked_before_ms: AtomicI64,
}

fn path_hash(path: &str) -> u64 {
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

impl UrlSigner {
    /// URLs valid for `ttl`.
    pub fn new(seed: u64, ttl: Duration) -> Self {
        UrlSigner {
            seed,
            ttl,
            revoked_before_ms: AtomicI64::new(i64::MIN),
        }
    }

    fn signature(&self, path: &str, expires_ms: i64) -> String {
        format!(
            "{:016x}",
            derive(self.seed, &[SIGNATURE, path_hash(path), expires_ms as u64])
        )
    }

    /// Applies an armed `expire_downloads` fault (before URLs are issued or
    /// checked, so that only URLs issued before it are revoked).
    pub fn absorb_faults(&self, state: &EmulatorState) {
        if !state
            .faults
            .take_all(|f| matches!(f, Fault::ExpireDownloads))
            .is_empty()
        {
            tracing::info!("emulator: every download URL issued so far is revoked");
            self.revoked_before_ms.store(now_ms() + 1, Ordering::Release);
        }
    }

    /// A URL for `path` under `base`, valid from now for the TTL.
    pub fn issue(&self, state: &EmulatorState, base: &str, path: &str) -> String {
        self.absorb_faults(state);
        let expires = now_ms() + self.ttl.as_millis() as i64;
        format!(
            "{base}{path}?expires={expires}&signature={}",
            self.signature(path, expires)
        )
    }

    /// Checks a request for `path` with query `query`.
    pub fn check(&self, state: &EmulatorState, path: &str, query: &str) -> Result<(), UrlRefusal> {
        self.absorb_faults(state);
        let mut expires = None;
        let mut signature = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = v.parse::<i64>().ok(),
                Some(("signature", v)) => signature = Some(v),
                _ => {}
            }
        }
        let (Some(expires), Some(signature)) = (expires, signature) else {
            return Err(UrlRefusal::Unsigned);
        };
        if signature != self.signature(path, expires) {
            return Err(UrlRefusal::Unsigned);
        }
        let now = now_ms();
        if now >= expires {
            return Err(UrlRefusal::Expired);
        }
        let issued = expires - self.ttl.as_millis() as i64;
        if issued < self.revoked_before_ms.load(Ordering::Acquire) {
            return Err(UrlRefusal::Revoked);
        }
        Ok(())
    }
}
