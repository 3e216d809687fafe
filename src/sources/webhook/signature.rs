//! Webhook signatures: HMAC-SHA256 over the raw body, sent in a header as
//! `<prefix><base64 or hex>` (Genesys Open Messaging: `X-Hub-Signature-256:
//! sha256=<base64>`).

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How the signature is encoded in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SignatureEncoding {
    /// Standard base64 (the Genesys default).
    #[default]
    Base64,
    /// Lower- or upper-case hex.
    Hex,
}

/// Checks signatures with one secret.
#[derive(Clone)]
pub struct Verifier {
    mac: Hmac<Sha256>,
    prefix: String,
    encoding: SignatureEncoding,
}

impl Verifier {
    /// A verifier for `secret`, reading `<prefix><encoded mac>` headers.
    pub fn new(secret: &[u8], prefix: &str, encoding: SignatureEncoding) -> Self {
        Verifier {
            // HMAC takes keys of any length.
            mac: Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("hmac accepts any key")),
            prefix: prefix.to_string(),
            encoding,
        }
    }

    /// The header value a sender would compute for `body` (for clients and
    /// tests).
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac.clone();
        mac.update(body);
        let digest = mac.finalize().into_bytes();
        let encoded = match self.encoding {
            SignatureEncoding::Base64 => base64::engine::general_purpose::STANDARD.encode(digest),
            SignatureEncoding::Hex => hex::encode(digest),
        };
        format!("{}{encoded}", self.prefix)
    }

    /// The MAC a header carries, when it has the configured form (prefix,
    /// encoding, a SHA-256's length). Decoded on the stack: this runs twice
    /// for every request.
    fn decode(&self, header: Option<&[u8]>) -> Option<[u8; 32]> {
        let value = header.and_then(|h| std::str::from_utf8(h).ok())?;
        let encoded = value.trim().strip_prefix(self.prefix.as_str())?;
        let mut given = [0u8; 32];
        match self.encoding {
            SignatureEncoding::Base64 => {
                // Room for any encoding of up to 48 bytes: a longer one is
                // refused by the decoder, a shorter one by the length check.
                let mut buf = [0u8; 48];
                let n = base64::engine::general_purpose::STANDARD
                    .decode_slice(encoded, &mut buf)
                    .ok()?;
                given.copy_from_slice(buf.get(..n).filter(|b| b.len() == 32)?);
            }
            SignatureEncoding::Hex => hex::decode_to_slice(encoded, &mut given).ok()?,
        }
        Some(given)
    }

    /// Whether `header` could be a signature at all: checked before the
    /// body is read, so a caller without one costs no body buffering.
    pub fn well_formed(&self, header: Option<&[u8]>) -> bool {
        self.decode(header).is_some()
    }

    /// Whether `header` is a valid signature of `body`. Malformed headers are
    /// simply invalid; the answer never says why.
    pub fn verify(&self, header: Option<&[u8]>, body: &[u8]) -> bool {
        let Some(given) = self.decode(header) else {
            return false;
        };
        let mut mac = self.mac.clone();
        mac.update(body);
        signature_matches(&mac.finalize().into_bytes(), &given)
    }
}

/// Compares a computed MAC with a given one in constant time: the time
/// taken does not depend on where they differ, so it leaks nothing to an
/// attacker guessing byte by byte.
pub fn signature_matches(expected: &[u8], given: &[u8]) -> bool {
    expected.ct_eq(given).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_its_own_signature_and_rejects_any_change() {
        let v = Verifier::new(b"secret", "sha256=", SignatureEncoding::Base64);
        let body = br#"{"topicName":"a"}"#;
        let sig = v.sign(body);
        assert!(sig.starts_with("sha256="));
        assert!(v.verify(Some(sig.as_bytes()), body));
        assert!(!v.verify(Some(sig.as_bytes()), br#"{"topicName":"b"}"#));
        assert!(!v.verify(None, body));
        assert!(!v.verify(Some(b"sha256=not base64!"), body));
        assert!(!v.verify(Some(sig.trim_start_matches("sha256=").as_bytes()), body));
        // A MAC of another length is no signature, whatever its bytes.
        let short = format!("sha256={}", base64::engine::general_purpose::STANDARD.encode([1u8; 31]));
        let long = format!("sha256={}", base64::engine::general_purpose::STANDARD.encode([1u8; 33]));
        let huge = format!(
            "sha256={}",
            base64::engine::general_purpose::STANDARD.encode([1u8; 200])
        );
        for s in [short, long, huge] {
            assert!(!v.well_formed(Some(s.as_bytes())), "{s}");
        }
        let other = Verifier::new(b"other", "sha256=", SignatureEncoding::Base64);
        assert!(!other.verify(Some(sig.as_bytes()), body));
    }

    #[test]
    fn hex_encoding_and_custom_prefix() {
        let v = Verifier::new(b"k", "", SignatureEncoding::Hex);
        let sig = v.sign(b"x");
        assert_eq!(sig.len(), 64);
        assert!(v.verify(Some(sig.as_bytes()), b"x"));
        assert!(v.verify(Some(sig.to_uppercase().as_bytes()), b"x"));
        assert!(!v.well_formed(Some(&sig.as_bytes()[..62])));
        assert!(!v.well_formed(Some(format!("{sig}00").as_bytes())));
    }

    #[test]
    fn the_comparison_is_the_constant_time_primitive() {
        // The comparison must go through `subtle`'s constant-time equality,
        // never `==` on the digests (which stops at the first difference).
        let source = include_str!("signature.rs");
        let start = source.find("pub fn signature_matches").unwrap();
        let end = start + source[start..].find("\n}\n").unwrap();
        let body = &source[start..end];
        assert!(body.contains(".ct_eq("), "{body}");
        assert!(!body.contains("=="), "{body}");
        assert!(
            !source[..start].contains("finalize().into_bytes() =="),
            "verify must call signature_matches"
        );
        // And it behaves: every single-bit difference is caught, and a
        // length difference too.
        let a = [7u8; 32];
        for i in 0..32 {
            for bit in 0..8 {
                let mut b = a;
                b[i] ^= 1 << bit;
                assert!(!signature_matches(&a, &b));
            }
        }
        assert!(signature_matches(&a, &a));
        assert!(!signature_matches(&a, &a[..31]));
    }
}
