//! The sections that are not components: `[service]`, `[http]`,
//! `[genesys]`, `[transform]`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::duration;

/// `[service]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Where the store and default outputs live.
    pub data_dir: PathBuf,
    /// `human` or `json` log lines.
    pub log_format: LogFormat,
    /// Default log filter (overridden by `RUST_LOG`).
    pub log_level: String,
    /// Longest time an orderly shutdown may take.
    #[serde(with = "duration")]
    pub shutdown_timeout: Duration,
    /// Journal every event durably before publishing it (default true).
    /// Off, events go straight to the router: faster, but a crash loses
    /// what is in queues and idempotency keys are not kept.
    pub journal: bool,
    /// How long idempotency keys are remembered.
    #[serde(with = "duration")]
    pub idempotency_window: Duration,
    /// Most idempotency keys kept in memory (the store keeps them all).
    pub idempotency_cache_keys: usize,
    /// Appends waiting for the journal before sources wait.
    pub journal_queue: usize,
    /// Dead letters kept per component (source or listener); more are
    /// refused, counted and logged.
    pub dead_letters_per_component: u64,
    /// The journal's bound: past it, intake is refused (webhooks 503,
    /// bulk sources pause) until listeners acknowledge.
    pub max_journal_bytes: u64,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            data_dir: PathBuf::from("data"),
            log_format: LogFormat::Human,
            log_level: "info".into(),
            shutdown_timeout: Duration::from_secs(30),
            journal: true,
            idempotency_window: Duration::from_secs(24 * 3600),
            idempotency_cache_keys: 1_000_000,
            journal_queue: 1024,
            dead_letters_per_component: 100_000,
            max_journal_bytes: 1 << 30,
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// For people.
    #[default]
    Human,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: String,
    /// Environment variable holding the admin bearer token; the admin API
    /// is disabled when unset.
    pub admin_token_env: Option<String>,
    /// HTTP worker threads.
    pub workers: usize,
    /// Open connections accepted per worker; more wait in the kernel's
    /// backlog (each can hold a request body in memory).
    pub max_connections: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            admin_token_env: Some("CXRELAY_ADMIN_TOKEN".into()),
            workers: 1,
            max_connections: 1024,
        }
    }
}

/// `[genesys]`
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GenesysConfig {
    /// Region domain (e.g. `mypurecloud.com`), or `emulator`.
    pub environment: String,
    /// Overrides the API base URL derived from the region.
    pub api_url: Option<String>,
    /// Overrides the login base URL derived from the region.
    pub login_url: Option<String>,
    /// Environment variable holding the OAuth client id.
    #[serde(default = "default_client_id_env")]
    pub client_id_env: String,
    /// Environment variable holding the OAuth client secret.
    #[serde(default = "default_client_secret_env")]
    pub client_secret_env: String,
    /// Request budget per minute shared by every source.
    #[serde(default = "default_rpm")]
    pub requests_per_minute: u32,
    /// Longest wait for an API answer; a create (channel, job) that gets
    /// none is looked up rather than sent again.
    #[serde(default = "default_request_timeout", with = "crate::config::duration")]
    pub request_timeout: std::time::Duration,
}

fn default_request_timeout() -> std::time::Duration {
    std::time::Duration::from_secs(30)
}

impl GenesysConfig {
    /// An org section for `environment` with every other key at its default.
    pub fn for_environment(environment: &str) -> Self {
        GenesysConfig {
            environment: environment.into(),
            api_url: None,
            login_url: None,
            client_id_env: default_client_id_env(),
            client_secret_env: default_client_secret_env(),
            requests_per_minute: default_rpm(),
            request_timeout: default_request_timeout(),
        }
    }

    /// True when pointed at the bundled emulator (no credentials needed).
    pub fn is_emulator(&self) -> bool {
        self.environment == "emulator"
    }

    /// True when cxrelay should run the emulator itself: the environment is
    /// `emulator` and no API URL points at one running elsewhere.
    pub fn runs_emulator_in_process(&self) -> bool {
        self.is_emulator() && self.api_url.is_none()
    }
}

fn default_client_id_env() -> String {
    "GENESYS_CLIENT_ID".into()
}
fn default_client_secret_env() -> String {
    "GENESYS_CLIENT_SECRET".into()
}
fn default_rpm() -> u32 {
    300
}

/// `[transform]`: the worker pool shared by listeners' transforms.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TransformConfig {
    /// Worker threads.
    pub workers: usize,
    /// Records per sub-chunk handed to one worker.
    pub chunk_size: usize,
    /// Replace a worker after this many batches.
    pub recycle_after_batches: u64,
}

impl Default for TransformConfig {
    fn default() -> Self {
        TransformConfig {
            workers: 2,
            chunk_size: 250,
            recycle_after_batches: 100,
        }
    }
}
