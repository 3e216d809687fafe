//! `kind = "nats"`: its keys, their defaults and checks, and how it is
//! built.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_nats::ServerAddr;
use serde::{Deserialize, Serialize};

use super::subject::SubjectTemplate;
use super::{NatsSettings, NatsWriter};
use crate::config::{duration, KeyProblem, KeyProblems};
use crate::nats_client::NatsKeys;
use crate::sinks::builder::{SinkBuilder, SinkContext, SinkStarter};
use crate::sinks::file::Encoding;
use crate::sinks::SinkError;

/// A nats sink's keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NatsSinkConfig {
    /// The server.
    #[serde(default = "default_url")]
    pub url: String,
    /// Several servers of one cluster (instead of `url`).
    #[serde(default)]
    pub urls: Vec<String>,
    /// Subject template.
    #[serde(default = "default_subject")]
    pub subject: String,
    /// `envelope` or `payload`.
    #[serde(default)]
    pub encoding: Encoding,
    /// A stream to check, or create when absent.
    pub stream: Option<String>,
    /// Its subjects (default: from `subject`).
    #[serde(default)]
    pub stream_subjects: Vec<String>,
    /// Its duplicate window, when it is created.
    #[serde(default = "default_duplicate_window", with = "duration")]
    pub duplicate_window: Duration,
    /// Environment variable holding a token.
    pub token_env: Option<String>,
    /// Environment variable holding a user name.
    pub user_env: Option<String>,
    /// Environment variable holding the user's password.
    pub password_env: Option<String>,
    /// A credentials file (JWT and NKey seed).
    pub creds_file: Option<PathBuf>,
    /// Require TLS.
    #[serde(default)]
    pub tls: bool,
    /// A PEM file of CA certificates to trust (with `tls`).
    pub tls_ca_file: Option<PathBuf>,
    /// Longest a batch's publishes and acknowledgements may take.
    #[serde(default = "default_timeout", with = "duration")]
    pub timeout: Duration,
}

fn default_url() -> String {
    "nats://127.0.0.1:4222".into()
}
fn default_subject() -> String {
    "cxrelay.{topic}".into()
}
fn default_duplicate_window() -> Duration {
    Duration::from_secs(120)
}
fn default_timeout() -> Duration {
    Duration::from_secs(10)
}

/// A server URL checked: one NATS accepts, with no credentials in it.
fn check_url(url: &str) -> Result<ServerAddr, String> {
    let addr = ServerAddr::from_str(url).map_err(|e| format!("`{}`: {e}", crate::urls::redacted(url)))?;
    if addr.has_user_pass() || url.contains('@') {
        return Err("must not hold credentials (use `user_env` and `password_env`, or `token_env`)".into());
    }
    Ok(addr)
}

/// A stream name as JetStream takes it: no whitespace, `.`, `*`, `>`,
/// path separators.
fn valid_stream_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && !name
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
}

impl NatsSinkConfig {
    fn servers(&self) -> &[String] {
        if self.urls.is_empty() {
            std::slice::from_ref(&self.url)
        } else {
            &self.urls
        }
    }

    /// The stream's subjects: as configured, else from the template.
    fn subjects(&self, template: &SubjectTemplate) -> Option<Vec<String>> {
        if self.stream_subjects.is_empty() {
            template.filter().map(|f| vec![f])
        } else {
            Some(self.stream_subjects.clone())
        }
    }

    /// The credential and TLS keys, as the shared NATS client takes them.
    fn keys(&self) -> NatsKeys<'_> {
        NatsKeys {
            token_env: self.token_env.as_deref(),
            user_env: self.user_env.as_deref(),
            password_env: self.password_env.as_deref(),
            creds_file: self.creds_file.as_deref(),
            tls: self.tls,
            tls_ca_file: self.tls_ca_file.as_deref(),
        }
    }
}

impl SinkBuilder for NatsSinkConfig {
    fn check(&self) -> Vec<KeyProblem> {
        let mut p = KeyProblems::new();
        let key = if self.urls.is_empty() { "url" } else { "urls" };
        for url in self.servers() {
            if let Err(e) = check_url(url) {
                p.at(key, e);
            }
        }
        p.check(
            self.urls.is_empty() || self.url == default_url(),
            "url",
            "set `url` or `urls`, not both",
        );
        match SubjectTemplate::parse(&self.subject) {
            Err(e) => p.at("subject", e),
            Ok(t) => p.check(
                self.stream.is_none() || self.subjects(&t).is_some(),
                "stream_subjects",
                "`subject` starts with a placeholder: name the stream's subjects",
            ),
        }
        if let Some(s) = &self.stream {
            p.check(
                valid_stream_name(s),
                "stream",
                format!("`{s}` is not a stream name (no whitespace, `.`, `*`, `>`, `/`)"),
            );
        }
        p.check(
            self.stream.is_some() || self.stream_subjects.is_empty(),
            "stream_subjects",
            "is used only with `stream`",
        );
        for s in &self.stream_subjects {
            p.check(
                !s.is_empty() && !s.split('.').any(|t| t.is_empty() || t.contains(char::is_whitespace)),
                "stream_subjects",
                format!("`{s}` is not a subject filter"),
            );
        }
        p.check(
            self.duplicate_window >= Duration::from_secs(1),
            "duplicate_window",
            "must be at least 1s (retries are deduplicated within it)",
        );
        self.keys().check(&mut p);
        p.check(!self.timeout.is_zero(), "timeout", "must be more than 0");
        p.into_vec()
    }

    fn secret_vars(&self) -> Vec<(&'static str, &str)> {
        self.keys().secret_vars()
    }

    fn describe(&self) -> String {
        let servers: Vec<String> = self.servers().iter().map(|u| crate::urls::redacted(u)).collect();
        let mut s = format!("nats {} subject {}", servers.join(","), self.subject);
        if let Some(stream) = &self.stream {
            s.push_str(&format!(" (stream {stream})"));
        }
        s
    }

    fn build(&self, cx: SinkContext) -> Result<SinkStarter, SinkError> {
        let bad = |message: String| SinkError::Transport {
            url: "nats".into(),
            message,
        };
        if let Some(p) = self.check().first() {
            return Err(bad(format!("`{}`: {}", p.key, p.message)));
        }
        let servers = self
            .servers()
            .iter()
            .map(|u| check_url(u))
            .collect::<Result<Vec<_>, _>>()
            .map_err(bad)?;
        let subject = SubjectTemplate::parse(&self.subject).map_err(bad)?;
        let auth = self.keys().auth(|key| cx.secret(key)).map_err(bad)?;
        let stream = self
            .stream
            .as_ref()
            .map(|name| (name.clone(), self.subjects(&subject).unwrap_or_default()));
        let settings = Arc::new(NatsSettings {
            listener: cx.listener.clone(),
            shown: self.servers().iter().map(|u| crate::urls::redacted(u)).collect(),
            servers,
            subject,
            encoding: self.encoding,
            stream,
            duplicate_window: self.duplicate_window,
            auth,
            tls: self.tls,
            tls_ca_file: self.tls_ca_file.clone(),
            timeout: self.timeout,
        });
        crate::telemetry::install_tls_provider();
        crate::telemetry::counters_at_zero(super::telemetry::METRICS, "listener", &cx.listener);
        Ok(cx.starter(move || Ok(NatsWriter::new(settings.clone()))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> NatsSinkConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_checks() {
        let c = config("");
        assert!(c.check().is_empty(), "{:?}", c.check());
        assert_eq!(
            (c.url.as_str(), c.subject.as_str()),
            ("nats://127.0.0.1:4222", "cxrelay.{topic}")
        );
        let c = config("stream = 'EVENTS'");
        assert_eq!(
            c.subjects(&SubjectTemplate::parse(&c.subject).unwrap()),
            Some(vec!["cxrelay.>".to_string()])
        );
        let c = config(
            "url = 'nats://u:pw@h:4222'\nsubject = '{topic}'\nstream = 'a.b'\ntoken_env = 'T'\nuser_env = 'U'\ntls_ca_file = 'ca.pem'\nduplicate_window = '0s'",
        );
        let keys: Vec<String> = c.check().into_iter().map(|p| p.key).collect();
        assert_eq!(
            keys,
            [
                "url",
                "stream_subjects",
                "stream",
                "duplicate_window",
                "token_env",
                "password_env",
                "tls_ca_file"
            ]
        );
        assert!(!format!("{:?}", c.check()).contains("pw"));
        assert_eq!(config("stream_subjects = ['a.>']").check()[0].key, "stream_subjects");
        let c = config("urls = ['nats://a:4222', 'tls://b:4222']\nuser_env = 'U'\npassword_env = 'P'");
        assert!(c.check().is_empty(), "{:?}", c.check());
        assert_eq!(c.secret_vars(), vec![("user_env", "U"), ("password_env", "P")]);
        let d = c.describe();
        assert!(d.contains("nats://a:4222") && d.contains("tls://b:4222"), "{d}");
    }
}
