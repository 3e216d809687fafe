//! Who may post to a webhook: an HMAC signature over the body (Genesys Open
//! Messaging outbound webhooks), an API key in a header, or HTTP Basic
//! (the two ways an AWS EventBridge API destination authenticates with a
//! static secret). Secrets are compared in constant time, as SHA-256
//! digests so that not even their length shows in the time taken.

use actix_web::http::header::{HeaderMap, HeaderName, AUTHORIZATION};
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::signature::Verifier;

/// How a webhook source authenticates its callers (`auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// An HMAC-SHA256 signature of the raw body in `signature_header`.
    #[default]
    Hmac,
    /// A secret in `api_key_header` (EventBridge connection `API_KEY`).
    ApiKey,
    /// `Authorization: Basic` (EventBridge connection `BASIC`).
    Basic,
}

impl AuthMode {
    /// The name used in config and `/status`.
    pub fn name(self) -> &'static str {
        match self {
            AuthMode::Hmac => "hmac",
            AuthMode::ApiKey => "api_key",
            AuthMode::Basic => "basic",
        }
    }
}

/// A secret's digest, compared instead of the secret, in constant time
/// (opaque: it never shows the secret).
#[derive(Clone)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// The digest of `secret`.
    pub fn of(secret: &str) -> Self {
        SecretDigest(Sha256::digest(secret.as_bytes()).into())
    }

    fn matches(&self, given: &[u8]) -> subtle::Choice {
        let given: [u8; 32] = Sha256::digest(given).into();
        self.0.ct_eq(&given)
    }
}

/// Checks a caller's credentials.
#[derive(Clone)]
pub enum Authenticator {
    /// The signature in `header` must be the HMAC of the body.
    Hmac {
        /// The signature header.
        header: HeaderName,
        /// The HMAC check.
        verifier: Verifier,
    },
    /// `header` must carry the key.
    ApiKey {
        /// The key's header.
        header: HeaderName,
        /// The key's digest.
        key: SecretDigest,
    },
    /// `Authorization: Basic base64(user:password)` must carry both.
    Basic {
        /// The user name's digest.
        user: SecretDigest,
        /// The password's digest.
        password: SecretDigest,
    },
}

impl Authenticator {
    /// The mode it checks.
    pub fn mode(&self) -> AuthMode {
        match self {
            Authenticator::Hmac { .. } => AuthMode::Hmac,
            Authenticator::ApiKey { .. } => AuthMode::ApiKey,
            Authenticator::Basic { .. } => AuthMode::Basic,
        }
    }

    /// Whether the request may go on to have its body read: a signature
    /// of the right form, or (API key, Basic) the full check, which needs
    /// no body. A caller refused here costs no body buffering.
    pub fn admits_head(&self, headers: &HeaderMap) -> bool {
        match self {
            Authenticator::Hmac { header, verifier } => verifier.well_formed(headers.get(header).map(|v| v.as_bytes())),
            other => other.credentials_match(headers),
        }
    }

    /// Whether the request is authentic, body included.
    pub fn admits(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        match self {
            Authenticator::Hmac { header, verifier } => {
                verifier.verify(headers.get(header).map(|v| v.as_bytes()), body)
            }
            other => other.credentials_match(headers),
        }
    }

    fn credentials_match(&self, headers: &HeaderMap) -> bool {
        match self {
            Authenticator::Hmac { .. } => false,
            Authenticator::ApiKey { header, key } => headers
                .get(header)
                .is_some_and(|v| bool::from(key.matches(v.as_bytes()))),
            Authenticator::Basic { user, password } => {
                let Some((u, p)) = headers.get(AUTHORIZATION).and_then(|v| basic_credentials(v.as_bytes())) else {
                    return false;
                };
                // Both compared whatever the first gives: the time says
                // nothing about which was wrong.
                bool::from(user.matches(u.as_bytes()) & password.matches(p.as_bytes()))
            }
        }
    }
}

/// The user and password of an `Authorization: Basic` value (RFC 7617:
/// the scheme in any case, the user ends at the first colon).
fn basic_credentials(value: &[u8]) -> Option<(String, String)> {
    let value = std::str::from_utf8(value).ok()?.trim();
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sources::webhook::SignatureEncoding;
    use actix_web::http::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(HeaderName::from_static(k), HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn basic(user: &str, password: &str) -> String {
        let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}")
    }

    #[test]
    fn an_api_key_is_checked_in_its_header_before_the_body() {
        let a = Authenticator::ApiKey {
            header: HeaderName::from_static("x-api-key"),
            key: SecretDigest::of("k-123"),
        };
        assert!(a.admits_head(&headers(&[("x-api-key", "k-123")])));
        assert!(a.admits(&headers(&[("x-api-key", "k-123")]), b"anything"));
        for wrong in [
            headers(&[("x-api-key", "k-12")]),
            headers(&[("x-api-key", "k-1234")]),
            headers(&[("x-api-key", "")]),
            headers(&[("x-other", "k-123")]),
            headers(&[]),
        ] {
            assert!(!a.admits_head(&wrong) && !a.admits(&wrong, b""), "{wrong:?}");
        }
    }

    #[test]
    fn basic_needs_both_the_user_and_the_password() {
        let a = Authenticator::Basic {
            user: SecretDigest::of("eventbridge"),
            password: SecretDigest::of("p:ss word"),
        };
        let ok = basic("eventbridge", "p:ss word");
        assert!(a.admits_head(&headers(&[("authorization", &ok)])));
        let lower = ok.replacen("Basic", "basic", 1);
        assert!(
            a.admits_head(&headers(&[("authorization", &lower)])),
            "the scheme in any case"
        );
        for wrong in [
            basic("eventbridge", "p:ss wor"),
            basic("eventbridg", "p:ss word"),
            basic("", ""),
            "Basic not-base64!".to_string(),
            "Bearer abc".to_string(),
            "Basic".to_string(),
            format!("Basic {}", base64::engine::general_purpose::STANDARD.encode("no colon")),
        ] {
            assert!(!a.admits_head(&headers(&[("authorization", &wrong)])), "{wrong}");
        }
        assert!(!a.admits_head(&headers(&[])));
    }

    #[test]
    fn hmac_checks_the_form_first_and_the_body_after() {
        let verifier = Verifier::new(b"s", "sha256=", SignatureEncoding::Base64);
        let sig = verifier.sign(b"body");
        let a = Authenticator::Hmac {
            header: HeaderName::from_static("x-hub-signature-256"),
            verifier,
        };
        let h = headers(&[("x-hub-signature-256", &sig)]);
        assert!(a.admits_head(&h) && a.admits(&h, b"body"));
        assert!(a.admits_head(&h) && !a.admits(&h, b"other body"));
        assert!(!a.admits_head(&headers(&[("x-hub-signature-256", "sha256=nope")])));
        assert_eq!(a.mode().name(), "hmac");
    }
}
