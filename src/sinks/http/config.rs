//! `kind = "http"`: its keys, their defaults and checks, and how it is built.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::HttpWriter;
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
}

fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

impl SinkBuilder for HttpSinkConfig {
    fn check(&self) -> Vec<KeyProblem> {
        let mut p = KeyProblems::new();
        p.check(
            self.url.starts_with("http://") || self.url.starts_with("https://"),
            "url",
            format!("`{}` is not an http:// or https:// URL", self.url),
        );
        p.check(!self.timeout.is_zero(), "timeout", "must be more than 0");
        p.into_vec()
    }

    fn secret_vars(&self) -> Vec<(&'static str, &str)> {
        self.authorization_env
            .iter()
            .map(|v| ("authorization_env", v.as_str()))
            .collect()
    }

    fn describe(&self) -> String {
        format!("http {}", crate::urls::redacted(&self.url))
    }

    fn build(&self, cx: SinkContext) -> Result<SinkStarter, SinkError> {
        let (url, timeout) = (self.url.clone(), self.timeout);
        let auth = cx.secret("authorization_env");
        Ok(cx.starter(move || Ok(HttpWriter::new(url.clone(), timeout, auth.clone()))))
    }
}
