//! The in-memory front of the idempotency store: recently seen keys with
//! their expiry. The table in the store is the authority; this cache only
//! answers the common case without a read transaction, and its size is
//! bounded (over the bound it starts over, falling back to the table).

use dashmap::DashMap;

/// Seen keys -> expiry (ms since the epoch).
#[derive(Debug)]
pub struct IdempotencyCache {
    keys: DashMap<String, i64>,
    max_keys: usize,
}

impl IdempotencyCache {
    /// A cache of at most `max_keys` keys.
    pub fn new(max_keys: usize) -> Self {
        IdempotencyCache {
            keys: DashMap::new(),
            max_keys: max_keys.max(1),
        }
    }

    /// Whether `key` was seen and has not expired at `now_ms`.
    pub fn seen(&self, key: &str, now_ms: i64) -> bool {
        self.keys.get(key).is_some_and(|e| *e > now_ms)
    }

    /// Remembers `key` until `expires_ms`.
    pub fn remember(&self, key: &str, expires_ms: i64) {
        if self.keys.len() >= self.max_keys {
            // Bounded by construction; the table still knows every key.
            self.keys.clear();
        }
        self.keys.insert(key.to_string(), expires_ms);
    }

    /// Forgets expired keys.
    pub fn expire(&self, now_ms: i64) {
        self.keys.retain(|_, exp| *exp > now_ms);
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_until_expiry_and_stays_bounded() {
        let c = IdempotencyCache::new(3);
        c.remember("a", 100);
        assert!(c.seen("a", 99));
        assert!(!c.seen("a", 100));
        for k in ["b", "c", "d", "e"] {
            c.remember(k, 1000);
        }
        assert!(c.len() <= 3);
        c.expire(500);
        assert!(!c.seen("a", 0));
    }
}
