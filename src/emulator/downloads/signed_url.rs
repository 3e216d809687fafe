//! Time-limited download URLs, like the presigned URLs Genesys hands out:
//! `?expires=<ms>&epoch=<n>&signature=<hex>`. A URL stops working when it
//! expires, or when the `expire_downloads` fault revokes every URL issued
//! so far (it starts a new epoch).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use cxrelay_actors::event::now_ms;

use crate::emulator::faults::{Fault, FaultBook};
use crate::emulator::ids::derive;

const SIGNATURE: u64 = 0x0053_4947;

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
    epoch: AtomicU64,
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
            epoch: AtomicU64::new(0),
        }
    }

    fn signature(&self, path: &str, expires_ms: i64, epoch: u64) -> String {
        format!(
            "{:016x}",
            derive(self.seed, &[SIGNATURE, path_hash(path), expires_ms as u64, epoch])
        )
    }

    /// Applies an armed `expire_downloads` fault (before URLs are issued or
    /// checked, so that only URLs issued before it are revoked).
    pub fn absorb_faults(&self, faults: &FaultBook) {
        if !faults.take_all(|f| matches!(f, Fault::ExpireDownloads)).is_empty() {
            tracing::info!("emulator: every download URL issued so far is revoked");
            self.epoch.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// A URL for `path` under `base`, valid from now for the TTL.
    pub fn issue(&self, faults: &FaultBook, base: &str, path: &str) -> String {
        self.absorb_faults(faults);
        let expires = now_ms() + self.ttl.as_millis() as i64;
        let epoch = self.epoch.load(Ordering::Acquire);
        format!(
            "{base}{path}?expires={expires}&epoch={epoch}&signature={}",
            self.signature(path, expires, epoch)
        )
    }

    /// Checks a request for `path` with query `query`.
    pub fn check(&self, faults: &FaultBook, path: &str, query: &str) -> Result<(), UrlRefusal> {
        self.absorb_faults(faults);
        let mut expires = None;
        let mut epoch = None;
        let mut signature = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("expires", v)) => expires = v.parse::<i64>().ok(),
                Some(("epoch", v)) => epoch = v.parse::<u64>().ok(),
                Some(("signature", v)) => signature = Some(v),
                _ => {}
            }
        }
        let (Some(expires), Some(epoch), Some(signature)) = (expires, epoch, signature) else {
            return Err(UrlRefusal::Unsigned);
        };
        if signature != self.signature(path, expires, epoch) {
            return Err(UrlRefusal::Unsigned);
        }
        if now_ms() >= expires {
            return Err(UrlRefusal::Expired);
        }
        if epoch != self.epoch.load(Ordering::Acquire) {
            return Err(UrlRefusal::Revoked);
        }
        Ok(())
    }
}
