//! Idempotency keys, held compactly: a key is its 128-bit hash (SHA-256,
//! cut), scoped to its source, with its expiry.
//!
//! The journal's records carry the hashes of the keys they accepted, so a
//! key is durable with its events in the same sync. In memory a map holds
//! every key of the window up to a bound (`idempotency_cache_keys`); the
//! store's table receives the keys of a journal segment before the
//! segment is deleted and is asked only when the map is not complete (it
//! overflowed, or the table held more than the bound at start).

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest, Sha256};

/// An idempotency key as stored: the first 128 bits of the SHA-256 of the
/// scoped key. Collisions need ~2^64 keys in one window.
pub type KeyHash = u128;

/// The hash of `source`'s `key`. The source's length comes first, so no
/// source name and key pair can spell another's: one sender cannot pre-empt
/// another source's events.
pub fn key_hash(source: &str, key: &str) -> KeyHash {
    let mut h = Sha256::new();
    h.update((source.len() as u64).to_le_bytes());
    h.update(source.as_bytes());
    h.update(key.as_bytes());
    let d = h.finalize();
    let mut a = [0u8; 16];
    a.copy_from_slice(&d[..16]);
    u128::from_le_bytes(a)
}

/// Appends `keys` packed as stored (16 little-endian bytes each), in the
/// journal's records and the key table alike.
pub fn pack_keys(out: &mut Vec<u8>, keys: impl IntoIterator<Item = KeyHash>) {
    for k in keys {
        out.extend_from_slice(&k.to_le_bytes());
    }
}

/// The keys [`pack_keys`] wrote (a trailing partial key is ignored).
pub fn unpack_keys(packed: &[u8]) -> impl Iterator<Item = KeyHash> + '_ {
    packed.chunks_exact(16).map(|c| {
        let mut a = [0; 16];
        a.copy_from_slice(c);
        KeyHash::from_le_bytes(a)
    })
}

/// The keys are hashes already: the map uses their low bits as they are.
#[derive(Default)]
pub struct PassThrough(u64);

impl Hasher for PassThrough {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes.iter().take(8) {
            self.0 = (self.0 << 8) | u64::from(*b);
        }
    }
    fn write_u128(&mut self, n: u128) {
        self.0 = n as u64;
    }
}

type Map = HashMap<KeyHash, i64, BuildHasherDefault<PassThrough>>;

/// Keys seen within the window -> expiry (ms since the epoch), bounded.
#[derive(Debug)]
pub struct IdempotencyCache {
    keys: parking_lot::RwLock<Map>,
    max_keys: usize,
    /// Every unexpired key is in the map (nothing was ever dropped from it,
    /// and the table was loaded whole): a miss is an answer.
    complete: std::sync::atomic::AtomicBool,
}

impl std::fmt::Debug for PassThrough {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PassThrough")
    }
}

impl IdempotencyCache {
    /// A cache of at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        IdempotencyCache {
            keys: parking_lot::RwLock::new(Map::default()),
            max_keys: max_keys.max(1),
            complete: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// Whether `key` was seen and has not expired at `now_ms`.
    pub fn seen(&self, key: KeyHash, now_ms: i64) -> bool {
        self.keys.read().get(&key).is_some_and(|e| *e > now_ms)
    }

    /// Whether a miss in [`IdempotencyCache::seen`] means the key is new.
    pub fn is_complete(&self) -> bool {
        self.complete.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Marks the map as not holding every key (the table must be asked).
    pub fn set_incomplete(&self) {
        self.complete.store(false, std::sync::atomic::Ordering::Release);
    }

    /// Remembers keys until their expiry; answers whether keys were dropped
    /// to stay within the bound (memory no longer holds every key).
    pub fn remember(&self, keys: impl IntoIterator<Item = (KeyHash, i64)>) -> bool {
        let mut map = self.keys.write();
        let mut dropped = false;
        for (k, exp) in keys {
            if map.len() >= self.max_keys && !map.contains_key(&k) {
                // Bounded by construction; the table answers for what is
                // dropped (it receives every key before its segment goes).
                map.clear();
                self.set_incomplete();
                dropped = true;
            }
            let e = map.entry(k).or_insert(exp);
            *e = (*e).max(exp);
        }
        dropped
    }

    /// Forgets expired keys.
    pub fn expire(&self, now_ms: i64) {
        self.keys.write().retain(|_, exp| *exp > now_ms);
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.keys.read().len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.keys.read().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry_and_stays_bounded() {
        let c = IdempotencyCache::new(3);
        assert!(!c.remember([(1, 100)]), "nothing dropped");
        assert!(c.seen(1, 99));
        assert!(!c.seen(1, 100));
        assert!(c.is_complete());
        assert!(c.remember([2, 3, 4, 5].map(|k| (k, 1000))), "keys dropped");
        assert!(c.len() <= 3);
        assert!(!c.is_complete(), "a map that dropped keys is no longer an answer");
        c.expire(500);
        assert!(!c.seen(1, 0));
    }

    #[test]
    fn keys_are_scoped_to_their_source() {
        assert_ne!(key_hash("hook", "c1"), key_hash("details", "c1"));
        // No source name and key pair can spell another's.
        assert_ne!(key_hash("a:b", "c"), key_hash("a", "b:c"));
        assert_eq!(key_hash("hook", "c1"), key_hash("hook", "c1"));
    }
}
