//! PII masking by field name, anywhere in a record: `hash` replaces a value
//! with a keyed SHA-256 (HMAC) of it, so the same input always gives the
//! same token under the same key and joins still work, while nobody
//! without the key can test guesses (phone numbers are easy to guess);
//! `redact` replaces it with `"[REDACTED]"`.

use std::collections::HashSet;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value};
use sha2::Sha256;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// How masked values are replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum MaskMode {
    /// Keyed SHA-256, hex, prefixed `sha256:`.
    #[default]
    Hash,
    /// `"[REDACTED]"`.
    Redact,
}

/// Masks named fields.
#[derive(Clone)]
pub struct Masker {
    fields: HashSet<String>,
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
        Masker {
            fields: fields.iter().cloned().collect(),
            mode,
            key: key
                .map(|k| Hmac::<Sha256>::new_from_slice(k).unwrap_or_else(|_| unreachable!("hmac accepts any key"))),
        }
    }

    fn masked(&self, v: &Value) -> Value {
        match (self.mode, &self.key) {
            (MaskMode::Hash, Some(key)) => {
                let mut mac = key.clone();
                match v {
                    Value::String(s) => mac.update(s.as_bytes()),
                    other => mac.update(other.to_string().as_bytes()),
                }
                let digest = mac.finalize().into_bytes();
                let mut out = String::with_capacity(7 + 2 * digest.len());
                out.push_str("sha256:");
                for b in digest {
                    out.push(HEX[usize::from(b >> 4)] as char);
                    out.push(HEX[usize::from(b & 0xf)] as char);
                }
                Value::String(out)
            }
            // Without a key nothing else is safe.
            _ => Value::String("[REDACTED]".into()),
        }
    }

    /// Masks the named fields anywhere in `obj`.
    pub fn mask_object(&self, obj: &mut Map<String, Value>) {
        for (k, v) in obj.iter_mut() {
            if self.fields.contains(k) {
                if !v.is_null() {
                    *v = self.masked(v);
                }
            } else {
                self.mask_value(v);
            }
        }
    }

    fn mask_value(&self, v: &mut Value) {
        match v {
            Value::Object(o) => self.mask_object(o),
            Value::Array(a) => a.iter_mut().for_each(|x| self.mask_value(x)),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields() -> Vec<String> {
        ["ani", "dnis", "attributes"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn hashes_anywhere_deterministically_per_key() {
        let m = Masker::new(MaskMode::Hash, &fields(), Some(b"k1"));
        let mut v = json!({"ani":"tel:+15550100","participants":[{"sessions":[{"ani":"tel:+15550100","dnis":"tel:+1800"}],"attributes":{"vip":"yes"}}]});
        let Value::Object(o) = &mut v else { unreachable!() };
        m.mask_object(o);
        let top = v["ani"].as_str().unwrap();
        assert!(top.starts_with("sha256:") && top.len() == 7 + 64);
        assert_eq!(
            v["participants"][0]["sessions"][0]["ani"].as_str(),
            Some(top),
            "same input, same hash"
        );
        assert!(v["participants"][0]["attributes"]
            .as_str()
            .unwrap()
            .starts_with("sha256:"));
        assert!(!v.to_string().contains("+15550100"));
        let other = Masker::new(MaskMode::Hash, &fields(), Some(b"k2"));
        let mut w = json!({"ani":"tel:+15550100"});
        let Value::Object(o) = &mut w else { unreachable!() };
        other.mask_object(o);
        assert_ne!(w["ani"].as_str(), Some(top), "another key, another hash");
    }

    #[test]
    fn redacts() {
        let m = Masker::new(MaskMode::Redact, &fields(), None);
        let mut v = json!({"dnis":"x","ani":null});
        let Value::Object(o) = &mut v else { unreachable!() };
        m.mask_object(o);
        assert_eq!(v, json!({"dnis":"[REDACTED]","ani":null}));
    }
}
