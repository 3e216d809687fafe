//! PII masking by field name, anywhere in a record: `hash` replaces a value
//! with a keyed SHA-256 (HMAC) of it, so the same input always gives the
//! same token under the same key and joins still work, while nobody
//! without the key can test guesses (phone numbers are easy to guess);
//! `redact` replaces it with `"[REDACTED]"`.

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
                // The keyed state is cloned: the key's pads are computed once.
                let mut mac = key.clone();
                mac.update(value);
                let digest = mac.finalize().into_bytes();
                out.extend_from_slice(b"sha256:");
                let at = out.len();
                out.resize(at + 2 * digest.len(), 0);
                // Both are sized for the digest: encoding cannot fail.
                let _ = hex::encode_to_slice(digest, &mut out[at..]);
            }
            // Without a key nothing else is safe.
            _ => out.extend_from_slice(REDACTED.as_bytes()),
        }
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
}
