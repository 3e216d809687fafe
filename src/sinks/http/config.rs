//! `kind = "http"`: its keys, their defaults and checks, and how it is built.

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use awc::http::header::{HeaderName, HeaderValue};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use super::body::{BodyFormat, Compression};
use super::{HttpSettings, HttpWriter, Shared};
use crate::config::{duration, KeyProblem, KeyProblems};
use crate::sinks::builder::{SinkBuilder, SinkContext, SinkStarter};
use crate::sinks::SinkError;

/// An http sink's keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HttpSinkConfig {
    /// Where batches are POSTed.
    pub url: String,
    /// Per-request timeout.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
    /// Environment variable holding the `Authorization` header value.
    pub authorization_env: Option<String>,
    /// Extra headers: name = environment variable holding the value.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Body layout: `ndjson` or `json_array`.
    #[serde(default)]
    pub format: BodyFormat,
    /// Body compression: `none` or `gzip`.
    #[serde(default)]
    pub compression: Compression,
    /// Most requests per second (unlimited when absent).
    pub requests_per_second: Option<f64>,
    /// Longest wait a `Retry-After` answer is honoured for.
    #[serde(default = "default_retry_after_max", with = "duration")]
    pub retry_after_max: Duration,
    /// Failed requests in a row that open the circuit breaker (0: no breaker).
    #[serde(default)]
    pub breaker_failures: u32,
    /// How long an open breaker holds requests back before one trial.
    #[serde(default = "default_breaker_cooldown", with = "duration")]
    pub breaker_cooldown: Duration,
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_retry_after_max() -> Duration {
    Duration::from_secs(300)
}
fn default_breaker_cooldown() -> Duration {
    Duration::from_secs(30)
}

/// Headers cxrelay sets itself: configuring them would garble the request
/// (or, for `authorization`, bypass `authorization_env`).
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-encoding",
    "content-length",
    "transfer-encoding",
    "host",
    "connection",
];

/// The secret key naming a header's variable (`headers.<name>`).
///
/// [`SinkBuilder::secret_vars`] names secrets with `&'static str` keys;
/// header names come from the config, so each distinct one is interned
/// once for the life of the process (a few bytes per header name ever
/// configured).
fn header_key(name: &str) -> &'static str {
    static KEYS: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let key = format!("headers.{name}");
    let mut keys = KEYS.get_or_init(Mutex::default).lock();
    if let Some(k) = keys.get(key.as_str()) {
        return k;
    }
    let k: &'static str = Box::leak(key.into_boxed_str());
    keys.insert(k);
    k
}

impl SinkBuilder for HttpSinkConfig {
    fn check(&self) -> Vec<KeyProblem> {
        let mut p = KeyProblems::new();
        p.check(
            self.url.starts_with("http://") || self.url.starts_with("https://"),
            "url",
            format!(
                "`{}` is not an http:// or https:// URL",
                crate::urls::redacted(&self.url)
            ),
        );
        p.check(!self.timeout.is_zero(), "timeout", "must be more than 0");
        if let Some(rps) = self.requests_per_second {
            // Below one request in 10 s a wait for the limiter would look
            // like a hung write to the sink's stuck detection.
            p.check(
                rps.is_finite() && rps >= 0.1,
                "requests_per_second",
                "must be at least 0.1",
            );
        }
        p.check(
            !self.breaker_cooldown.is_zero(),
            "breaker_cooldown",
            "must be more than 0",
        );
        let mut seen = HashSet::new();
        for (name, var) in &self.headers {
            let lower = name.to_ascii_lowercase();
            if HeaderName::from_str(name).is_err() {
                p.at("headers", format!("`{name}` is not a valid header name"));
            } else if RESERVED_HEADERS.contains(&lower.as_str()) {
                p.at("headers", format!("`{name}` is set by cxrelay itself"));
            } else if !seen.insert(lower) {
                p.at("headers", format!("`{name}` is given twice"));
            }
            p.check(
                !var.is_empty(),
                "headers",
                format!("`{name}` must name an environment variable"),
            );
        }
        p.into_vec()
    }

    fn secret_vars(&self) -> Vec<(&'static str, &str)> {
        let mut vars: Vec<(&'static str, &str)> = self
            .authorization_env
            .iter()
            .map(|v| ("authorization_env", v.as_str()))
            .collect();
        vars.extend(self.headers.iter().map(|(name, var)| (header_key(name), var.as_str())));
        vars
    }

    fn describe(&self) -> String {
        format!("http {}", crate::urls::redacted(&self.url))
    }

    fn build(&self, cx: SinkContext) -> Result<SinkStarter, SinkError> {
        let shown = crate::urls::redacted(&self.url);
        let mut headers = Vec::new();
        if let Some(auth) = cx.secret("authorization_env") {
            headers.push(("authorization".to_string(), auth));
        }
        for name in self.headers.keys() {
            if let Some(value) = cx.secret(header_key(name)) {
                headers.push((name.clone(), value));
            }
        }
        // Checked here, once: a value that is not a valid header (a
        // newline in the variable) is a start-up error naming the header,
        // never showing the value.
        let mut checked = Vec::with_capacity(headers.len());
        for (name, value) in headers {
            let bad = |what: &str| SinkError::Transport {
                url: shown.clone(),
                message: format!("header `{name}`: {what}"),
            };
            let n = HeaderName::from_str(&name).map_err(|_| bad("not a valid header name"))?;
            let mut v = HeaderValue::from_str(value.expose())
                .map_err(|_| bad("its environment variable does not hold a valid header value"))?;
            v.set_sensitive(true);
            checked.push((n, v));
        }
        let settings = Arc::new(HttpSettings {
            url: self.url.clone(),
            timeout: self.timeout,
            headers: checked,
            format: self.format,
            compression: self.compression,
            retry_after_max: self.retry_after_max,
        });
        // Breaker, Retry-After window and rate limit outlive a writer: one
        // rebuilt after a panic (or a restarted sink) keeps honouring them.
        let shared = Arc::new(Shared::new(
            self.requests_per_second,
            self.breaker_failures,
            self.breaker_cooldown,
        ));
        Ok(cx.starter(move || Ok(HttpWriter::new(settings.clone(), shared.clone()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> HttpSinkConfig {
        toml::from_str(&format!("url = 'http://127.0.0.1:1/'\n{extra}")).unwrap()
    }

    #[test]
    fn headers_are_checked_and_name_their_variables() {
        let c = config("headers = { 'X-Api-Key' = 'API_KEY', 'X-Tenant' = 'TENANT' }\nauthorization_env = 'AUTH'");
        assert!(c.check().is_empty(), "{:?}", c.check());
        let vars = c.secret_vars();
        assert!(vars.contains(&("authorization_env", "AUTH")));
        assert!(vars.contains(&("headers.X-Api-Key", "API_KEY")));
        assert!(vars.contains(&("headers.X-Tenant", "TENANT")));
        assert!(
            std::ptr::eq(header_key("X-Tenant"), header_key("X-Tenant")),
            "interned once"
        );

        let bad = config(
            "headers = { 'Content-Type' = 'A', 'bad name' = 'B', 'x-a' = 'C', 'X-A' = 'D', 'X-Empty' = '' }\nrequests_per_second = 0.01",
        );
        let text: Vec<String> = bad.check().iter().map(|p| format!("{p:?}")).collect();
        let text = text.join("\n");
        for want in [
            "set by cxrelay",
            "not a valid header name",
            "given twice",
            "must name an environment variable",
            "at least 0.1",
        ] {
            assert!(text.contains(want), "no `{want}` in:\n{text}");
        }
    }

    #[test]
    fn defaults_keep_the_old_behaviour() {
        let c = config("");
        assert_eq!((c.format, c.compression), (BodyFormat::Ndjson, Compression::None));
        assert_eq!(c.breaker_failures, 0, "no breaker unless asked for");
        assert_eq!(c.requests_per_second, None);
        let c = config("format = 'json_array'\ncompression = 'gzip'\nbreaker_failures = 3\nbreaker_cooldown = '5s'");
        assert_eq!((c.format, c.compression), (BodyFormat::JsonArray, Compression::Gzip));
        assert!(toml::from_str::<HttpSinkConfig>("url = 'http://x/'\ncompression = 'br'").is_err());
    }
}
