//! `[cluster]`: its keys, their defaults and checks.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use async_nats::ServerAddr;
use serde::{Deserialize, Serialize};

use crate::config::{duration, KeyProblems};

/// What a node does.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Runs sources (the ones whose lease it holds) and webhook ingress:
    /// events go into the stream.
    Ingest,
    /// Runs listeners: events come out of the stream's partitions.
    Process,
}

impl Role {
    /// As written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ingest => "ingest",
            Role::Process => "process",
        }
    }
}

/// `[cluster]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterConfig {
    /// The NATS servers (any of the cluster; the client learns the rest).
    pub nats_urls: Vec<String>,
    /// The JetStream stream holding events in flight.
    pub stream: String,
    /// Copies of the stream (and of the key-value buckets): 3 survives the
    /// loss of a server.
    pub replicas: usize,
    /// Partitions: events of one key keep their order within one.
    pub partitions: u32,
    /// This node's name; default: the host name.
    pub node: Option<String>,
    /// What this node does.
    pub roles: Vec<Role>,
    /// Environment variable holding a NATS token.
    pub token_env: Option<String>,
    /// Environment variable holding a NATS user name.
    pub user_env: Option<String>,
    /// Environment variable holding the user's password.
    pub password_env: Option<String>,
    /// A NATS credentials file (JWT and NKey seed).
    pub creds_file: Option<PathBuf>,
    /// Require TLS.
    pub tls: bool,
    /// A PEM file of CA certificates to trust (with `tls`).
    pub tls_ca_file: Option<PathBuf>,
    /// Messages a partition hands out before any is acknowledged: the
    /// memory bound of a processing node, per partition it holds.
    pub max_ack_pending: usize,
    /// A message not acknowledged within this is delivered again.
    #[serde(with = "duration")]
    pub ack_wait: Duration,
    /// A partition whose node stopped pulling for this long moves to
    /// another node (at least 1s longer than `ack_wait`, so that what the
    /// dead node held is due again before anything newer is handed out).
    #[serde(with = "duration")]
    pub takeover_after: Duration,
    /// A node that has not said it is alive for this long is gone.
    #[serde(with = "duration")]
    pub node_ttl: Duration,
    /// A source lease not renewed for this long passes to another node.
    #[serde(with = "duration")]
    pub lease_ttl: Duration,
    /// The stream's bound in bytes: at it, intake is refused until
    /// processing nodes catch up.
    pub max_bytes: u64,
    /// Longest wait for a publish acknowledgement or a key-value answer.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            nats_urls: vec!["nats://127.0.0.1:4222".into()],
            stream: "CXRELAY".into(),
            replicas: 1,
            partitions: 16,
            node: None,
            roles: vec![Role::Ingest, Role::Process],
            token_env: None,
            user_env: None,
            password_env: None,
            creds_file: None,
            tls: false,
            tls_ca_file: None,
            max_ack_pending: 1000,
            ack_wait: Duration::from_secs(10),
            takeover_after: Duration::from_secs(15),
            node_ttl: Duration::from_secs(6),
            lease_ttl: Duration::from_secs(10),
            max_bytes: 1 << 30,
            timeout: Duration::from_secs(10),
        }
    }
}

/// A server URL checked: one NATS accepts, with no credentials in it.
pub fn check_url(url: &str) -> Result<ServerAddr, String> {
    let addr = ServerAddr::from_str(url).map_err(|e| format!("`{}`: {e}", crate::urls::redacted(url)))?;
    if addr.has_user_pass() || url.contains('@') {
        return Err("must not hold credentials (use `user_env` and `password_env`, or `token_env`)".into());
    }
    Ok(addr)
}

/// A name usable as one NATS subject token, consumer name and KV key part.
pub fn valid_token(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
}

/// The host name, as a default node name (made a valid token).
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let raw = if rc == 0 {
        let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
        String::from_utf8_lossy(&buf[..end]).into_owned()
    } else {
        String::new()
    };
    let name: String = raw
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' })
        .take(64)
        .collect();
    if name.is_empty() {
        "node".into()
    } else {
        name
    }
}

impl ClusterConfig {
    /// The node name in use.
    pub fn node_name(&self) -> String {
        self.node.clone().unwrap_or_else(host_name)
    }

    /// Whether this node has `role`.
    pub fn has(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// The variables holding secrets, by key.
    pub fn secret_vars(&self) -> Vec<(&'static str, &str)> {
        self.keys().secret_vars()
    }

    /// The credential and TLS keys, as the shared NATS client takes them.
    pub fn keys(&self) -> crate::nats_client::NatsKeys<'_> {
        crate::nats_client::NatsKeys {
            token_env: self.token_env.as_deref(),
            user_env: self.user_env.as_deref(),
            password_env: self.password_env.as_deref(),
            creds_file: self.creds_file.as_deref(),
            tls: self.tls,
            tls_ca_file: self.tls_ca_file.as_deref(),
        }
    }

    /// Every problem of the section, by key.
    pub fn check(&self) -> Vec<crate::config::KeyProblem> {
        let mut p = KeyProblems::new();
        p.check(!self.nats_urls.is_empty(), "nats_urls", "name at least one server");
        for url in &self.nats_urls {
            if let Err(e) = check_url(url) {
                p.at("nats_urls", e);
            }
        }
        p.check(
            valid_token(&self.stream),
            "stream",
            format!("`{}` is not a stream name (letters, digits, `-`, `_`)", self.stream),
        );
        p.check(
            (1..=5).contains(&self.replicas),
            "replicas",
            "must be 1 to 5 (JetStream's limit)",
        );
        p.check((1..=4096).contains(&self.partitions), "partitions", "must be 1 to 4096");
        if let Some(n) = &self.node {
            p.check(
                valid_token(n),
                "node",
                format!("`{n}` is not a node name (letters, digits, `-`, `_`; at most 64)"),
            );
        }
        p.check(
            !self.roles.is_empty(),
            "roles",
            "name at least one of `ingest`, `process`",
        );
        self.keys().check(&mut p);
        p.check(self.max_ack_pending > 0, "max_ack_pending", "must be at least 1");
        p.check(!self.ack_wait.is_zero(), "ack_wait", "must be more than 0");
        p.check(
            self.takeover_after >= self.ack_wait + Duration::from_secs(1),
            "takeover_after",
            format!(
                "must be at least 1s longer than `ack_wait` ({}): what a dead node held must be due again before its partition moves, or per-key order breaks",
                humantime::format_duration(self.ack_wait)
            ),
        );
        p.check(
            self.node_ttl >= Duration::from_secs(1),
            "node_ttl",
            "must be at least 1s",
        );
        p.check(
            self.lease_ttl >= Duration::from_secs(1),
            "lease_ttl",
            "must be at least 1s",
        );
        p.check(self.max_bytes > 0, "max_bytes", "must be at least 1");
        p.check(!self.timeout.is_zero(), "timeout", "must be more than 0");
        p.into_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ClusterConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_check_clean() {
        assert!(ClusterConfig::default().check().is_empty());
        let c = parse("");
        assert_eq!(c.roles, vec![Role::Ingest, Role::Process]);
        assert_eq!(c.partitions, 16);
    }

    #[test]
    fn unknown_keys_are_refused() {
        assert!(toml::from_str::<ClusterConfig>("partition = 3").is_err());
        assert!(toml::from_str::<ClusterConfig>("roles = ['ingest', 'router']").is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        let c = parse(
            "nats_urls = ['nats://u:p@h:4222']\nstream = 'a.b'\nreplicas = 7\npartitions = 0\nnode = 'a b'\nroles = []\nack_wait = '20s'\nuser_env = 'U'",
        );
        let keys: Vec<String> = c.check().into_iter().map(|p| p.key.to_string()).collect();
        for k in [
            "nats_urls",
            "stream",
            "replicas",
            "partitions",
            "node",
            "roles",
            "takeover_after",
            "password_env",
        ] {
            assert!(keys.iter().any(|x| x == k), "{k} not reported: {keys:?}");
        }
        // The URL's credentials are never repeated.
        assert!(!format!("{:?}", c.check()).contains(":p@"));
    }

    #[test]
    fn host_name_is_a_valid_node_name() {
        assert!(valid_token(&host_name()));
    }
}
