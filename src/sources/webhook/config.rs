//! `kind = "webhook"`: its keys, their defaults and checks, and how it is
//! built (a route on the HTTP server, no actor).

use std::time::Duration;

use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::{
    AuthMode, Authenticator, IpAllowList, SecretDigest, SignatureEncoding, Verifier, WebhookSettings, WebhookSource,
};
use crate::config::{duration, KeyProblem, KeyProblems, Named, Secret};
use crate::sources::builder::{BuildError, SourceBuilder, SourceContext};

/// A webhook's `[[source]]` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookConfig {
    /// The HTTP path events are POSTed to.
    pub path: String,
    /// How callers authenticate.
    #[serde(default)]
    pub auth: AuthMode,
    /// Environment variable holding the secret: the HMAC key (`hmac`), the
    /// API key (`api_key`) or the password (`basic`).
    pub secret_env: Option<String>,
    /// Environment variable holding the Basic user name (`basic`).
    pub username_env: Option<String>,
    /// Header carrying the API key (`api_key`).
    #[serde(default = "default_api_key_header")]
    pub api_key_header: String,
    /// Accept requests without any authentication (explicit opt-in).
    #[serde(default)]
    pub allow_unsigned: bool,
    /// What the bodies are.
    #[serde(default)]
    pub body: BodyFormat,
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

/// What a webhook source's bodies are (`body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// EventBridge envelopes and notification envelopes (`topicName`).
    #[default]
    Events,
    /// Open Messaging normalized messages (outbound webhooks).
    OpenMessaging,
}

impl BodyFormat {
    /// The name used in config and `/status`.
    pub fn name(self) -> &'static str {
        match self {
            BodyFormat::Events => "events",
            BodyFormat::OpenMessaging => "open_messaging",
        }
    }
}

fn default_api_key_header() -> String {
    "x-api-key".into()
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

/// A webhook config with the secrets its `secret_env` and `username_env`
/// name.
pub struct WithSecret<'a> {
    /// The config.
    pub named: Named<'a, WebhookConfig>,
    /// The HMAC key, API key or password (none with `allow_unsigned`).
    pub secret: Option<&'a Secret>,
    /// The Basic user name.
    pub username: Option<&'a Secret>,
}

/// A header name from config, or the problem with it.
fn header_name(p: &mut KeyProblems, key: &str, value: &str) -> Option<actix_web::http::header::HeaderName> {
    match actix_web::http::header::HeaderName::try_from(value) {
        Ok(h) => Some(h),
        Err(_) => {
            p.at(key, format!("`{value}` is not a valid header name"));
            None
        }
    }
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
            let what = match c.auth {
                AuthMode::Hmac => "its HMAC secret",
                AuthMode::ApiKey => "its API key",
                AuthMode::Basic => "the Basic password",
            };
            p.at(
                "secret_env",
                format!("a webhook source needs `secret_env` ({what}); to accept unsigned requests set `allow_unsigned = true` explicitly"),
            );
        }
        match (c.auth, &c.username_env) {
            (AuthMode::Basic, None) if c.secret_env.is_some() => p.at(
                "username_env",
                "`auth = \"basic\"` needs `username_env` (the variable holding the user name)",
            ),
            (AuthMode::Hmac | AuthMode::ApiKey, Some(_)) => p.at("username_env", "only used with `auth = \"basic\"`"),
            _ => {}
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
        let signature_header = header_name(&mut p, "signature_header", &c.signature_header);
        let api_key_header = header_name(&mut p, "api_key_header", &c.api_key_header);
        let auth = match (c.auth, w.secret) {
            (_, None) => None,
            (AuthMode::Hmac, Some(s)) => signature_header.map(|header| Authenticator::Hmac {
                header,
                verifier: Verifier::new(s.expose().as_bytes(), &c.signature_prefix, c.signature_encoding),
            }),
            (AuthMode::ApiKey, Some(s)) => api_key_header.map(|header| Authenticator::ApiKey {
                header,
                key: SecretDigest::of(s.expose()),
            }),
            (AuthMode::Basic, Some(s)) => match w.username {
                Some(u) => Some(Authenticator::Basic {
                    user: SecretDigest::of(u.expose()),
                    password: SecretDigest::of(s.expose()),
                }),
                // Never quietly unauthenticated: without the user name the
                // source does not start.
                None if c.username_env.is_some() => {
                    p.at("username_env", "the user name's variable is not set");
                    None
                }
                None => None,
            },
        };
        p.finish(|| WebhookSettings {
            name: w.named.name.to_string(),
            path: c.path.clone(),
            auth,
            body: c.body,
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
        // The secrets' values are not needed to check the rest.
        let placeholder = Secret::new("checking");
        let secret = self.secret_env.as_ref().map(|_| &placeholder);
        let username = self.username_env.as_ref().map(|_| &placeholder);
        let named = Named { name, config: self };
        WebhookSettings::try_from(WithSecret {
            named,
            secret,
            username,
        })
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
        let secret = self.secret_env.iter().map(|v| ("secret_env", v.as_str()));
        let user = self.username_env.iter().map(|v| ("username_env", v.as_str()));
        secret.chain(user).collect()
    }

    fn describe(&self) -> String {
        let auth = match (&self.secret_env, self.auth) {
            (None, _) => "UNSIGNED (allow_unsigned = true): anyone who can reach it can send".to_string(),
            (Some(var), AuthMode::Hmac) => format!(
                "HMAC-SHA256 of the body in `{}: {}<{}>`, key from ${var}",
                self.signature_header,
                self.signature_prefix,
                match self.signature_encoding {
                    SignatureEncoding::Base64 => "base64",
                    SignatureEncoding::Hex => "hex",
                }
            ),
            (Some(var), AuthMode::ApiKey) => format!("API key in `{}`, from ${var}", self.api_key_header),
            (Some(var), AuthMode::Basic) => format!(
                "Basic auth, user from ${}, password from ${var}",
                self.username_env.as_deref().unwrap_or("?")
            ),
        };
        let body = match self.body {
            BodyFormat::Events => "EventBridge or notification events",
            BodyFormat::OpenMessaging => "Open Messaging messages",
        };
        let from = match &self.allow_ips {
            Some(ips) if !ips.is_empty() => format!("from {}", ips.join(", ")),
            _ => "from any address".to_string(),
        };
        format!(
            "POST {} {from}; {auth}; {body}; bodies up to {} bytes; 202 once journaled (503 after {})",
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
            let username = cx.secret(name, "username_env");
            let named = Named { name, config: self };
            let settings = WebhookSettings::try_from(WithSecret {
                named,
                secret,
                username,
            })?;
            let component = cx.component(name, "webhook");
            let source = WebhookSource::new(settings, cx.ingest.clone(), cx.dead_letters.clone(), component);
            cx.ingress.add(&self.path, source);
            Ok(())
        })
    }
}
