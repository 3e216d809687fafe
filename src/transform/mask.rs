//! PII masking by field name, anywhere in a record: `hash` replaces a value
//! with a keyed SHA-256 (HMAC) of it, so the same input always gives the
//! same token under the same key and joins still work, while nobody
//! without the key can test guesses (phone numbers are easy to guess);
//! `redact` replaces it with `"[REDACTED]"`.

use std::cell::RefCell;
use std::sync::atomic::{AtomicU64, Ordering};

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How masked values are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MaskMode {
    /// Keyed SHA-256, hex, prefixed `sha256:`.
    #[default]
    Hash,
    /// `"[REDACTED]"`.
    Redact,
}

/// What replaces a value under `redact` (and under `hash` without a key).
pub const REDACTED: &str = "[REDACTED]";

/// Masks named fields.
#[derive(Clone)]
pub struct Masker {
    // A handful of names: comparing by length then bytes beats hashing
    // every key of every record.
    fields: Vec<Box<str>>,
    /// Bit `n` set when a name of `n` bytes is masked (63: 63 or more),
    /// and bit `b % 64` of `first` when one starts with byte `b`: most
    /// keys of a record are turned away by two bit tests.
    lengths: u64,
    first: u64,
    mode: MaskMode,
    key: Option<Hmac<Sha256>>,
    /// Tells this key's tokens apart from other keys' in the token cache.
    key_id: u64,
}

impl std::fmt::Debug for Masker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Masker")
            .field("fields", &self.fields)
            .field("mode", &self.mode)
            .finish()
    }
}

impl Masker {
    /// Masks `fields` with `mode`; `key` is the HMAC key for `hash`.
    pub fn new(mode: MaskMode, fields: &[String], key: Option<&[u8]>) -> Self {
        let mut names: Vec<Box<str>> = fields.iter().map(|f| f.as_str().into()).collect();
        names.sort();
        names.dedup();
        let lengths = names.iter().fold(0, |m, n| m | length_bit(n));
        let first = names.iter().fold(0, |m, n| m | first_bit(n));
        Masker {
            fields: names,
            lengths,
            first,
            mode,
            key: key
                .map(|k| Hmac::<Sha256>::new_from_slice(k).unwrap_or_else(|_| unreachable!("hmac accepts any key"))),
            key_id: NEXT_KEY_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether a field called `name` is masked.
    pub fn applies(&self, name: &str) -> bool {
        self.lengths & length_bit(name) != 0
            && self.first & first_bit(name) != 0
            && self.fields.iter().any(|f| f.len() == name.len() && **f == *name)
    }

    /// The token that replaces a value whose text is `value` (a string's
    /// content, or the compact JSON of anything else).
    pub fn mask(&self, value: &[u8]) -> String {
        let mut token = Vec::with_capacity(7 + 64);
        self.mask_into(value, &mut token);
        // Written from ASCII alone.
        String::from_utf8(token).unwrap_or_default()
    }

    /// Appends the token for `value` to `out` (what [`Masker::mask`]
    /// answers, without allocating).
    pub fn mask_into(&self, value: &[u8], out: &mut Vec<u8>) {
        match (self.mode, &self.key) {
            (MaskMode::Hash, Some(key)) => {
                out.extend_from_slice(b"sha256:");
                let at = out.len();
                out.resize(at + TOKEN_HEX, 0);
                let token = &mut out[at..];
                let slot = TokenCache::slot(value);
                if slot.is_some_and(|s| TOKENS.with(|c| c.borrow().get(s, self.key_id, value, token))) {
                    return;
                }
                // The keyed state is cloned: the key's pads are computed once.
                let mut mac = key.clone();
                mac.update(value);
                // Both are sized for the digest: encoding cannot fail.
                let _ = hex::encode_to_slice(mac.finalize().into_bytes(), &mut *token);
                if let Some(s) = slot {
                    TOKENS.with(|c| c.borrow_mut().put(s, self.key_id, value, token));
                }
            }
            // Without a key nothing else is safe.
            _ => out.extend_from_slice(REDACTED.as_bytes()),
        }
    }
}

/// Hex digits of a token after `sha256:`.
const TOKEN_HEX: usize = 64;

static NEXT_KEY_ID: AtomicU64 = AtomicU64::new(1);

/// Longest value whose token is cached: phone numbers, addresses, emails
/// (55: a slot is then two cache lines, the value's and the token's).
const CACHED_VALUE: usize = 55;
/// Tokens a thread keeps. Few, so that the table (32 KiB) stays in the
/// core's own caches: a lookup in a larger one waits on memory about as
/// long as the keyed hash takes with the CPU's SHA instructions (measured:
/// 4,096 slots hit far more often and cost more in all than 256; 128 and
/// 256 cost the same).
const CACHE_SLOTS: usize = 256;

/// The tokens of values seen lately, per thread: a conversation's events
/// repeat its participants' numbers and addresses (the customer's `ani`
/// is also its `address`), and a token costs two SHA-256 blocks and a hex
/// encoding. A slot per value hash, the last value in it wins; taken when
/// the thread first masks.
struct TokenCache {
    slots: Vec<Slot>,
}

/// Aligned, so that a lookup touches two cache lines, not three.
#[derive(Clone)]
#[repr(C, align(64))]
struct Slot {
    key_id: u64,
    len: u8,
    value: [u8; CACHED_VALUE],
    token: [u8; TOKEN_HEX],
}

thread_local! {
    static TOKENS: RefCell<TokenCache> = const { RefCell::new(TokenCache { slots: Vec::new() }) };
}

impl TokenCache {
    /// The slot of `value`, if a value that long is cached. A collision
    /// only costs a hash; a hash taken byte by byte (FNV) cost as much as
    /// the rest of a cache hit.
    fn slot(value: &[u8]) -> Option<usize> {
        (value.len() <= CACHED_VALUE).then(|| (cxrelay_actors::pool::key_of(value) % CACHE_SLOTS as u64) as usize)
    }

    /// Copies the cached token of `value` (in slot `at`) under key
    /// `key_id` into `token`; answers whether there was one.
    fn get(&self, at: usize, key_id: u64, value: &[u8], token: &mut [u8]) -> bool {
        let Some(slot) = self.slots.get(at) else {
            return false;
        };
        let hit = slot.key_id == key_id
            && usize::from(slot.len) == value.len()
            && slot.value.get(..value.len()) == Some(value);
        if hit {
            token.copy_from_slice(&slot.token);
        }
        hit
    }

    /// Keeps `token` as the token of `value` (in slot `at`) under `key_id`.
    fn put(&mut self, at: usize, key_id: u64, value: &[u8], token: &[u8]) {
        if self.slots.is_empty() {
            let empty = Slot {
                key_id: 0,
                len: 0,
                value: [0; CACHED_VALUE],
                token: [0; TOKEN_HEX],
            };
            self.slots = vec![empty; CACHE_SLOTS];
        }
        let (Some(slot), Ok(len)) = (self.slots.get_mut(at), u8::try_from(value.len())) else {
            return;
        };
        let Some(kept) = slot.value.get_mut(..value.len()) else {
            return;
        };
        kept.copy_from_slice(value);
        slot.key_id = key_id;
        slot.len = len;
        slot.token.copy_from_slice(token);
    }
}

fn length_bit(name: &str) -> u64 {
    1 << name.len().min(63)
}

fn first_bit(name: &str) -> u64 {
    name.as_bytes().first().map_or(1, |b| 1 << (b % 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_input_same_key_same_token() {
        let m = Masker::new(MaskMode::Hash, &["ani".into()], Some(b"k1"));
        let a = m.mask(b"tel:+15550100");
        assert!(a.starts_with("sha256:") && a.len() == 7 + 64);
        assert_eq!(a, m.mask(b"tel:+15550100"));
        // RFC 4231, test case 2.
        let jefe = Masker::new(MaskMode::Hash, &["ani".into()], Some(b"Jefe"));
        assert_eq!(
            jefe.mask(b"what do ya want for nothing?"),
            "sha256:5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_ne!(a, m.mask(b"tel:+15550101"));
        let other = Masker::new(MaskMode::Hash, &["ani".into()], Some(b"k2"));
        assert_ne!(a, other.mask(b"tel:+15550100"), "another key, another token");
        assert!(m.applies("ani") && !m.applies("an") && !m.applies("dnis"));
        // Names sharing a length or a first byte (mod 64), long ones, and
        // the empty name.
        let long = "x".repeat(70);
        let m = Masker::new(
            MaskMode::Redact,
            &["ani".into(), "dnis".into(), long.clone(), "".into(), "!b".into()],
            None,
        );
        for yes in ["ani", "dnis", long.as_str(), "", "!b"] {
            assert!(m.applies(yes), "{yes:?}");
        }
        let longer = "x".repeat(71);
        for no in ["anj", "dnix", "a", "an", "anis", "ab", "!a", longer.as_str(), "bni"] {
            assert!(!m.applies(no), "{no:?}");
        }
        assert_eq!(Masker::new(MaskMode::Redact, &[], None).mask(b"x"), REDACTED);
    }

    /// The HMAC of `value`, computed afresh.
    fn reference(key: &[u8], value: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
        mac.update(value);
        format!("sha256:{}", hex::encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn cached_tokens_are_the_tokens_of_their_value_and_key() {
        let (a, b) = (
            Masker::new(MaskMode::Hash, &["ani".into()], Some(b"k1")),
            Masker::new(MaskMode::Hash, &["ani".into()], Some(b"k2")),
        );
        let a2 = a.clone();
        // Values of every length around the cached limit, many more than
        // the slots (collisions evict), each masked several times under
        // both keys and from a clone: every token is the value's own.
        let values: Vec<Vec<u8>> = (0..2000u32)
            .map(|i| {
                let len = (i as usize * 7) % (CACHED_VALUE + 8);
                (0..len).map(|j| b'0' + ((i as usize + j * 3) % 10) as u8).collect()
            })
            .collect();
        for round in 0..3 {
            for (m, key) in [(&a, b"k1"), (&a2, b"k1"), (&b, b"k2"), (&a, b"k1")] {
                for v in values.iter().skip(round * 7).step_by(round + 1) {
                    assert_eq!(m.mask(v), reference(key, v), "{v:?}");
                    assert_eq!(m.mask(v), reference(key, v), "again: {v:?}");
                }
            }
        }
        // A value and its prefix, in the same slot or not.
        for v in [&b"tel:+15550100"[..], b"tel:+1555010", b"", b"tel:+155501000"] {
            assert_eq!(a.mask(v), reference(b"k1", v));
        }
    }

    #[test]
    fn a_token_slot_is_two_cache_lines() {
        assert_eq!((std::mem::size_of::<Slot>(), std::mem::align_of::<Slot>()), (128, 64));
    }
}
