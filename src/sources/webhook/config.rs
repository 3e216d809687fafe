//! `kind = "webhook"`: its keys, their defaults and checks, and how it is
//! built (a route on the HTTP server, no actor).

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::{IpAllowList, SignatureEncoding, Verifier, WebhookSettings, WebhookSource};
use crate::config::{duration, KeyProblem, KeyProblems, Named, Secret};
use crate::sources::builder::{BuildError, SourceBuilder, SourceContext};

/// A webhook's `[[source]]` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The HTTP path events are POSTed to.
    pub path: String,
    /// Environment variable holding the HMAC secret.
    pub secret_env: Option<String>,
    /// Accept requests without a signature (explicit opt-in).
    #[serde(default)]
    pub allow_unsigned: bool,
    /// Header carrying the signature.
    #[serde(default = "default_signature_header")]
    pub signature_header: String,
    /// Text before the encoded signature.
    #[serde(default = "default_signature_prefix")]
    pub signature_prefix: String,
    /// `base64` or `hex`.
    #[serde(default)]
    pub signature_encoding: SignatureEncoding,
    /// Largest body accepted, raw and decoded.
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
    /// Addresses or CIDR ranges allowed to call (everyone when absent).
    pub allow_ips: Option<Vec<String>>,
    /// Longest wait for the journal before answering 503.
    #[serde(default = "default_ack_timeout", with = "duration")]
    pub ack_timeout: Duration,
    /// Longest time a body may take to arrive (408 after it).
    #[serde(default = "default_body_timeout", with = "duration")]
    pub body_timeout: Duration,
    /// Requests handled at once; more are answered 503 with Retry-After.
    #[serde(default = "default_max_concurrent_requests")]
    pub max_concurrent_requests: usize,
}

fn default_signature_header() -> String {
    "X-Hub-Signature-256".into()
}
fn default_signature_prefix() -> String {
    "sha256=".into()
}
fn default_max_body_bytes() -> usize {
    512_000
}
fn default_ack_timeout() -> Duration {
    Duration::from_secs(5)
}
fn default_body_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_max_concurrent_requests() -> usize {
    256
}

/// A webhook config with the secret its `secret_env` names.
pub struct WithSecret<'a> {
    /// The config.
    pub named: Named<'a, WebhookConfig>,
    /// The HMAC secret (none with `allow_unsigned`).
    pub secret: Option<&'a Secret>,
}

impl TryFrom<WithSecret<'_>> for WebhookSettings {
    type Error = Vec<KeyProblem>;

    fn try_from(w: WithSecret<'_>) -> Result<Self, Self::Error> {
        let c = w.named.config;
        let mut p = KeyProblems::new();
        let path = &c.path;
        if !path.starts_with('/') || path.contains(char::is_whitespace) {
            p.at("path", format!("`{path}` is not a path starting with `/`"));
        }
        if c.secret_env.is_none() && !c.allow_unsigned {
            p.at(
                "secret_env",
                "a webhook source needs `secret_env` (its HMAC secret); to accept unsigned requests set `allow_unsigned = true` explicitly",
            );
        }
        p.check(c.max_body_bytes > 0, "max_body_bytes", "must be at least 1");
        p.check(!c.body_timeout.is_zero(), "body_timeout", "must be more than 0");
        p.check(
            c.max_concurrent_requests > 0,
            "max_concurrent_requests",
            "must be at least 1",
        );
        let allow = match IpAllowList::parse(c.allow_ips.as_deref().unwrap_or_default()) {
            Ok(a) => Some(a),
            Err(e) => {
                p.at("allow_ips", e);
                None
            }
        };
        if actix_web::http::header::HeaderName::try_from(c.signature_header.as_str()).is_err() {
            p.at(
                "signature_header",
                format!("`{}` is not a valid header name", c.signature_header),
            );
        }
        p.finish(|| WebhookSettings {
            name: w.named.name.to_string(),
            path: c.path.clone(),
            verifier: w
                .secret
                .map(|s| Verifier::new(s.expose().as_bytes(), &c.signature_prefix, c.signature_encoding)),
            signature_header: c.signature_header.clone(),
            max_body_bytes: c.max_body_bytes,
            allow: allow.unwrap_or_default(),
            ack_timeout: c.ack_timeout,
            body_timeout: c.body_timeout,
            max_concurrent_requests: c.max_concurrent_requests,
        })
    }
}

impl SourceBuilder for WebhookConfig {
    fn check(&self, name: &str) -> Vec<KeyProblem> {
        // The secret's value is not needed to check the rest.
        let placeholder = Secret::new("checking");
        let secret = self.secret_env.as_ref().map(|_| &placeholder);
        let named = Named { name, config: self };
        WebhookSettings::try_from(WithSecret { named, secret })
            .err()
            .unwrap_or_default()
    }

    fn needs_genesys(&self) -> bool {
        false
    }

    fn http_path(&self) -> Option<&str> {
        Some(&self.path)
    }

    /// A 202 tells the sender it may forget the event.
    fn acknowledges_upstream(&self) -> bool {
        true
    }

    fn secret_vars(&self) -> Vec<(&'static str, &str)> {
        self.secret_env.iter().map(|v| ("secret_env", v.as_str())).collect()
    }

    fn describe(&self) -> String {
        let auth = match &self.secret_env {
            Some(var) => format!(
                "HMAC-SHA256 of the body in `{}: {}<{}>`, key from ${var}",
                self.signature_header,
                self.signature_prefix,
                match self.signature_encoding {
                    SignatureEncoding::Base64 => "base64",
                    SignatureEncoding::Hex => "hex",
                }
            ),
            None => "UNSIGNED (allow_unsigned = true): anyone who can reach it can send".to_string(),
        };
        let from = match &self.allow_ips {
            Some(ips) if !ips.is_empty() => format!("from {}", ips.join(", ")),
            _ => "from any address".to_string(),
        };
        format!(
            "POST {} {from}; {auth}; bodies up to {} bytes; 202 once journaled (503 after {})",
            self.path,
            self.max_body_bytes,
            humantime::format_duration(self.ack_timeout)
        )
    }

    /// Senders name their topics.
    fn produces(&self, _name: &str) -> Vec<String> {
        vec![">".to_string()]
    }

    fn start<'a>(&'a self, name: &'a str, cx: &'a SourceContext) -> LocalBoxFuture<'a, Result<(), BuildError>> {
        Box::pin(async move {
            let secret = match (cx.secret(name, "secret_env"), self.allow_unsigned) {
                (None, false) => {
                    return Err(BuildError::new(
                        "refusing to start without a secret (set secret_env, or allow_unsigned = true)",
                    ))
                }
                (secret, _) => secret,
            };
            let named = Named { name, config: self };
            let settings = WebhookSettings::try_from(WithSecret { named, secret })?;
            let component = cx.component(name, "webhook");
            let source = WebhookSource::new(settings, cx.ingest.clone(), cx.dead_letters.clone(), component);
            cx.ingress.add(&self.path, source);
            Ok(())
        })
    }
}
