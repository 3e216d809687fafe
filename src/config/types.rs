use std::path::PathBuf;
use std::time::Duration;

use cxrelay_actors::WhenFull;
use serde::{Deserialize, Deserializer};

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Process-wide settings.
    #[serde(default)]
    pub service: ServiceConfig,
    /// The HTTP server (health, metrics, status, admin, webhooks).
    #[serde(default)]
    pub http: HttpConfig,
    /// The Genesys Cloud org (needed by the Genesys sources).
    pub genesys: Option<GenesysConfig>,
    /// The bundled emulator, used when `genesys.environment = "emulator"`
    /// (and by `cxrelay emulator` / `cxrelay demo`).
    pub emulator: Option<crate::emulator::EmulatorSettings>,
    /// Sources, in file order.
    #[serde(default)]
    pub source: Vec<SourceConfig>,
    /// The transform worker pool.
    #[serde(default)]
    pub transform: TransformConfig,
    /// Listeners, in file order.
    #[serde(default)]
    pub listener: Vec<ListenerConfig>,
}

/// `[service]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    /// Where the store and default outputs live.
    pub data_dir: PathBuf,
    /// `human` or `json` log lines.
    pub log_format: LogFormat,
    /// Default log filter (overridden by `RUST_LOG`).
    pub log_level: String,
    /// Longest time an orderly shutdown may take.
    #[serde(deserialize_with = "duration")]
    pub shutdown_timeout: Duration,
    /// Journal every event durably before publishing it (default true).
    /// Off, events go straight to the router: faster, but a crash loses
    /// what is in queues and idempotency keys are not kept.
    pub journal: bool,
    /// How long idempotency keys are remembered.
    #[serde(deserialize_with = "duration")]
    pub idempotency_window: Duration,
    /// Most idempotency keys kept in memory (the store keeps them all).
    pub idempotency_cache_keys: usize,
    /// Appends waiting for the journal before sources wait.
    pub journal_queue: usize,
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
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// For people.
    #[default]
    Human,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// `[http]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Address to listen on.
    pub listen: String,
    /// Environment variable holding the admin bearer token; the admin API
    /// is disabled when unset.
    pub admin_token_env: Option<String>,
    /// HTTP worker threads.
    pub workers: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: "127.0.0.1:8080".into(),
            admin_token_env: Some("CXRELAY_ADMIN_TOKEN".into()),
            workers: 1,
        }
    }
}

/// `[genesys]`
#[derive(Debug, Clone, Deserialize)]
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
}

impl GenesysConfig {
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

/// Kinds of source.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Synthetic events at a configured rate.
    Generator,
    /// Signed events pushed to an HTTP path.
    Webhook,
    /// Conversation details in bulk through analytics jobs.
    AnalyticsJob,
    /// A bulk export file downloaded as a stream.
    Export,
    /// Real-time events over Genesys notification channels (WebSocket).
    Notifications,
    /// Recordings downloaded into files through recording batch requests.
    Recordings,
}

impl SourceKind {
    /// Whether the source calls the Genesys API (and so needs `[genesys]`).
    pub fn needs_genesys(self) -> bool {
        match self {
            SourceKind::Generator | SourceKind::Webhook => false,
            SourceKind::AnalyticsJob | SourceKind::Export => true,
            SourceKind::Notifications | SourceKind::Recordings => true,
        }
    }

    /// Name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Generator => "generator",
            SourceKind::Webhook => "webhook",
            SourceKind::AnalyticsJob => "analytics_job",
            SourceKind::Export => "export",
            SourceKind::Notifications => "notifications",
            SourceKind::Recordings => "recordings",
        }
    }
}

/// One `[[source]]`. Keys that do not apply to its `kind` are refused at
/// validation, with their line.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Unique name.
    pub name: String,
    /// What kind of source.
    pub kind: SourceKind,
    /// Set to false to keep a source in the file without running it.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Topics (generator: topic templates; `{key}` is replaced by the key).
    pub topics: Option<Vec<String>>,
    /// Generator: events per second.
    pub rate: Option<f64>,
    /// Generator: stop after this many events.
    pub count: Option<u64>,
    /// Generator: approximate payload size in bytes.
    pub payload_bytes: Option<usize>,
    /// Generator: number of distinct partition keys.
    pub keys: Option<u64>,
    /// Webhook: the HTTP path events are POSTed to.
    pub path: Option<String>,
    /// Webhook: environment variable holding the HMAC secret.
    pub secret_env: Option<String>,
    /// Webhook: accept requests without a signature (explicit opt-in).
    pub allow_unsigned: Option<bool>,
    /// Webhook: header carrying the signature (default `X-Hub-Signature-256`).
    pub signature_header: Option<String>,
    /// Webhook: `base64` (default) or `hex`.
    pub signature_encoding: Option<crate::sources::webhook::SignatureEncoding>,
    /// Webhook: text before the encoded signature (default `sha256=`).
    pub signature_prefix: Option<String>,
    /// Webhook: largest body accepted, raw and decoded (default 512000).
    pub max_body_bytes: Option<usize>,
    /// Webhook: addresses or CIDR ranges allowed to call (default: all).
    pub allow_ips: Option<Vec<String>>,
    /// Webhook: longest wait for the journal before answering 503 (default 5s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub ack_timeout: Option<Duration>,

    // ---- Bulk sources: `analytics_job` and `export` (README: "Bulk sources") ----
    /// Analytics job and export: topic of the events (defaults
    /// `analytics.conversations` and `exports.<name>`).
    pub topic: Option<String>,
    /// Analytics job: the interval to fetch, `start/end` in ISO-8601.
    pub interval: Option<String>,
    /// Analytics job: rolling windows of this length instead of `interval`.
    #[serde(default, deserialize_with = "opt_duration")]
    pub every: Option<Duration>,
    /// Analytics job (rolling): how far behind now a window must end (default 5m).
    #[serde(default, deserialize_with = "opt_duration")]
    pub lag: Option<Duration>,
    /// Analytics job (rolling): where the first window starts (default: the
    /// latest complete window).
    pub start: Option<String>,
    /// Analytics job: records per results page (default 1000).
    pub page_size: Option<u32>,
    /// Analytics job: pages fetched and not yet committed, at most (default 2).
    pub prefetch: Option<usize>,
    /// Analytics job: first delay between job state polls (default 2s, then x1.5).
    #[serde(default, deserialize_with = "opt_duration")]
    pub poll_interval: Option<Duration>,
    /// Analytics job: longest delay between job state polls (default 30s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub poll_max_interval: Option<Duration>,
    /// Analytics job: submissions of a job that ends FAILED before the
    /// source is marked failed (default 3).
    pub max_job_attempts: Option<u32>,
    /// Export: the file's URL (absolute, or a path on the API host).
    pub url: Option<String>,
    /// Export: a Genesys download id; its time-limited URL is asked for
    /// (again when it expires) through `/api/v2/downloads/{id}`.
    pub download_id: Option<String>,
    /// Export: `auto` (default), `ndjson`, `json`, `zip` or `gzip`.
    pub format: Option<crate::sources::export_download::ExportFormat>,
    /// Export: record field keying the events (default `conversationId`).
    pub key_field: Option<String>,
    /// Export: record field giving the event time (default `conversationStart`).
    pub time_field: Option<String>,
    /// Export: records per ingest batch (default 500).
    pub batch_records: Option<usize>,
    /// Export: failed attempts in a row before the download gives up (default 10).
    pub max_resumes: Option<u32>,
    /// Export: longest silence of the transfer before it is resumed (default 30s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub idle_timeout: Option<Duration>,
    // --- kind = "notifications" (src/sources/notifications): `topics` are
    // templates whose `{name}` placeholders take the ids of `ids.name`. ---
    /// Notifications: ids substituted into the `{name}` placeholders of `topics`.
    pub ids: Option<std::collections::BTreeMap<String, Vec<String>>>,
    /// Notifications: topics per channel (default and at most 1000).
    pub max_topics_per_channel: Option<usize>,
    /// Notifications: channels this source may open (default 20, the limit per OAuth client).
    pub max_channels: Option<usize>,
    /// Notifications: time between `{"message":"ping"}` (default 15s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub ping_interval: Option<Duration>,
    /// Notifications: no frame for this long means the socket is dead (default 35s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub silence_timeout: Option<Duration>,
    /// Notifications: ceiling of the first reconnect delay, full jitter (default 1s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub reconnect_base: Option<Duration>,
    /// Notifications: largest reconnect delay (default 30s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub reconnect_cap: Option<Duration>,
    /// Notifications: failed attempts in a row before a channel is marked failed (default 20).
    pub retry_limit: Option<u32>,
    /// Notifications: a socket up this long starts its retries over (default 60s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub retry_reset_after: Option<Duration>,
    /// Notifications: largest frame accepted; bigger ones are dead-lettered (default 1 MiB).
    pub max_frame_bytes: Option<usize>,
    /// Notifications: renew a channel this long before it expires (default 1h).
    #[serde(default, deserialize_with = "opt_duration")]
    pub renew_before: Option<Duration>,
    // --- kind = "recordings" (src/sources/recordings); also uses `topic`,
    // `max_resumes`, `idle_timeout`, `poll_interval`, `poll_max_interval`. ---
    /// Recordings: `conversationId/recordingId` of each recording to download.
    pub recordings: Option<Vec<String>>,
    /// Recordings: the directory the files go to.
    pub output: Option<PathBuf>,
    /// Notifications: cover each gap's conversations with an analytics
    /// details job (default false).
    pub backfill: Option<bool>,
    /// Notifications: topic of the backfilled records (default
    /// `analytics.conversations`).
    pub backfill_topic: Option<String>,
}

/// `[transform]`: the worker pool shared by listeners' transforms.
#[derive(Debug, Clone, Deserialize)]
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

/// One `[[listener]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Unique name.
    pub name: String,
    /// Topic patterns (`*` one segment, `>` the rest).
    pub topics: Vec<String>,
    /// Where events go.
    pub sink: SinkConfig,
    /// Queue bound in events.
    #[serde(default = "default_mailbox")]
    pub mailbox: usize,
    /// What a full queue does.
    #[serde(default)]
    pub when_full: WhenFull,
    /// Largest batch handed to the sink at once.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// `time`: each written batch is sorted by event time, then key, then
    /// id (events without a time use their receive time).
    pub order_by: Option<OrderBy>,
    /// Transforms run on the worker pool before the sink writes.
    pub transform: Option<ListenerTransform>,
}

/// A listener's `transform = { ... }`.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListenerTransform {
    /// Nested objects become dotted keys.
    #[serde(default)]
    pub flatten: bool,
    /// Time fields become ISO-8601 UTC with milliseconds.
    #[serde(default)]
    pub timestamps: bool,
    /// Field names masked anywhere in the record.
    #[serde(default)]
    pub mask: Vec<String>,
    /// `hash` (keyed SHA-256, needs `mask_key_env`) or `redact`.
    #[serde(default)]
    pub mask_mode: crate::transform::MaskMode,
    /// Environment variable holding the hashing key.
    pub mask_key_env: Option<String>,
    /// Keys renamed (`old = "new"`).
    #[serde(default)]
    pub rename: std::collections::BTreeMap<String, String>,
    /// Keys removed.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Only these keys are kept.
    #[serde(default)]
    pub select: Vec<String>,
}

/// Output order within a batch.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    /// By event time, with a deterministic tie-break (key, then id).
    Time,
    /// As received.
    Arrival,
}

/// Kinds of sink.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// NDJSON files.
    File,
    /// NDJSON on standard output.
    Stdout,
    /// NDJSON batches POSTed to a URL.
    Http,
}

impl SinkKind {
    /// Name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::File => "file",
            SinkKind::Stdout => "stdout",
            SinkKind::Http => "http",
        }
    }
}

/// A listener's `sink = { ... }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// What kind of sink.
    pub kind: SinkKind,
    /// File: output directory.
    pub path: Option<PathBuf>,
    /// File: write a batch after this many events...
    pub batch_events: Option<usize>,
    /// ...or after this long, whichever comes first.
    #[serde(default, deserialize_with = "opt_duration")]
    pub batch_interval: Option<Duration>,
    /// File: start a new file past this size.
    pub rotate_bytes: Option<u64>,
    /// File: fsync each batch before acknowledging (default true).
    pub fsync: Option<bool>,
    /// HTTP: where batches are POSTed.
    pub url: Option<String>,
    /// HTTP: per-request timeout (default 10s).
    #[serde(default, deserialize_with = "opt_duration")]
    pub timeout: Option<Duration>,
    /// HTTP: environment variable holding the `Authorization` header value.
    pub authorization_env: Option<String>,
    /// After this many failed attempts a batch goes to dead letters
    /// (default: retry for ever, holding the queue).
    pub max_retries: Option<u32>,
}

fn yes() -> bool {
    true
}
fn default_mailbox() -> usize {
    1024
}
fn default_batch() -> usize {
    1000
}

/// Parses a humantime duration ("200ms", "30s", "5m").
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("invalid duration `{s}`: {e} (use e.g. \"200ms\", \"30s\", \"5m\")"))
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn opt_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = Option::<String>::deserialize(d)?;
    s.map(|s| parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}
