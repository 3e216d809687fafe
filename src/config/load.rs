use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::Path;

use super::locate::{KeyPath, Locator};
use super::types::*;

/// One problem found in a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub col: Option<usize>,
    /// The key concerned, e.g. `listener[0].sink.path`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {file}: {source}")]
    Read {
        /// The file.
        file: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read and is wrong.
    #[error("{}", render(file, problems))]
    Invalid {
        /// The file.
        file: String,
        /// Everything that is wrong, in file order.
        problems: Vec<Problem>,
    },
}

fn render(file: &str, problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| {
            let mut s = file.to_string();
            if let Some(line) = p.line {
                s.push_str(&format!(":{line}"));
                if let Some(col) = p.col {
                    s.push_str(&format!(":{col}"));
                }
            }
            s.push_str(": ");
            if let Some(key) = &p.key {
                s.push_str(&format!("`{key}`: "));
            }
            s.push_str(&p.message);
            s
        })
        .collect::<Vec<_>>()
        .join("\n")
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&render("config", std::slice::from_ref(self)))
    }
}

/// Secrets resolved from the environment variables the config names.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// OAuth client id and secret, when a non-emulator org is configured.
    pub genesys: Option<(super::Secret, super::Secret)>,
    /// Admin bearer token, when its variable is set.
    pub admin_token: Option<super::Secret>,
    /// HTTP sinks' `Authorization` values, by listener name.
    pub sink_authorization: std::collections::HashMap<String, super::Secret>,
    /// Webhook sources' HMAC secrets, by source name.
    pub webhook_secrets: std::collections::HashMap<String, super::Secret>,
    /// Listeners' masking keys, by listener name.
    pub mask_keys: std::collections::HashMap<String, super::Secret>,
}

/// Reads every secret the config names from the environment. A variable
/// that is required and missing is an error naming the key, the line and
/// the variable (never a value).
pub fn resolve_secrets(config: &Config, text: &str, file: &str) -> Result<Secrets, ConfigError> {
    resolve_secrets_with(config, text, file, |k| std::env::var(k).ok())
}

/// [`resolve_secrets`] with an injectable environment (for tests).
pub fn resolve_secrets_with(
    config: &Config,
    text: &str,
    file: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Secrets, ConfigError> {
    let locator = Locator::new(text);
    let mut v = Validator {
        locator: &locator,
        problems: Vec::new(),
    };
    let mut secrets = Secrets::default();
    let root = KeyPath::root();
    let require = |v: &mut Validator<'_>, path: KeyPath, var: &str| -> Option<super::Secret> {
        match env(var).filter(|s| !s.is_empty()) {
            Some(val) => Some(super::Secret::new(val)),
            None => {
                v.problem(&path, format!("environment variable `{var}` is not set"));
                None
            }
        }
    };
    if let Some(g) = config.genesys.as_ref().filter(|g| !g.is_emulator()) {
        let id = require(&mut v, root.key("genesys").key("client_id_env"), &g.client_id_env);
        let secret = require(
            &mut v,
            root.key("genesys").key("client_secret_env"),
            &g.client_secret_env,
        );
        secrets.genesys = id.zip(secret);
    } else if let Some(g) = &config.genesys {
        // The emulator accepts its own default client unless both are set.
        let get = |var: &str| env(var).filter(|s| !s.is_empty()).map(super::Secret::new);
        secrets.genesys = get(&g.client_id_env).zip(get(&g.client_secret_env));
    }
    for (i, s) in config.source.iter().enumerate() {
        if let (Some(var), true) = (&s.secret_env, s.enabled) {
            let path = root.key("source").index(i).key("secret_env");
            if let Some(secret) = require(&mut v, path, var) {
                secrets.webhook_secrets.insert(s.name.clone(), secret);
            }
        }
    }
    for (i, l) in config.listener.iter().enumerate() {
        if let Some(var) = l.transform.as_ref().and_then(|t| t.mask_key_env.as_ref()) {
            let path = root.key("listener").index(i).key("transform").key("mask_key_env");
            if let Some(secret) = require(&mut v, path, var) {
                secrets.mask_keys.insert(l.name.clone(), secret);
            }
        }
        if let Some(var) = &l.sink.authorization_env {
            let path = root.key("listener").index(i).key("sink").key("authorization_env");
            if let Some(secret) = require(&mut v, path, var) {
                secrets.sink_authorization.insert(l.name.clone(), secret);
            }
        }
    }
    if let Some(var) = &config.http.admin_token_env {
        secrets.admin_token = env(var).filter(|s| !s.is_empty()).map(super::Secret::new);
    }
    if v.problems.is_empty() {
        Ok(secrets)
    } else {
        Err(ConfigError::Invalid {
            file: file.to_string(),
            problems: v.problems,
        })
    }
}

/// A validated config with the text it came from (for locating problems
/// found later, such as missing secrets).
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The file it came from.
    pub file: String,
    text: String,
}

impl Loaded {
    /// Wraps config text that was already validated.
    pub fn from_str(text: &str, file: &str) -> Result<Self, ConfigError> {
        Ok(Loaded {
            config: load_str(text, file)?,
            file: file.to_string(),
            text: text.to_string(),
        })
    }

    /// Reads the secrets the config names from the environment.
    pub fn secrets(&self) -> Result<Secrets, ConfigError> {
        resolve_secrets(&self.config, &self.text, &self.file)
    }
}

/// Reads and validates the config file at `path`.
pub fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let file = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        file: file.clone(),
        source,
    })?;
    Loaded::from_str(&text, &file)
}

/// Parses and validates config `text`, reporting problems against `file`.
pub fn load_str(text: &str, file: &str) -> Result<Config, ConfigError> {
    let locator = Locator::new(text);
    let invalid = |problems| ConfigError::Invalid {
        file: file.to_string(),
        problems,
    };
    let config: Config = toml::from_str(text).map_err(|e| invalid(vec![syntax_problem(&locator, &e)]))?;
    let mut v = Validator {
        locator: &locator,
        problems: Vec::new(),
    };
    v.config(&config);
    if v.problems.is_empty() {
        Ok(config)
    } else {
        v.problems.sort_by_key(|p| p.line.unwrap_or(0));
        Err(invalid(v.problems))
    }
}

fn syntax_problem(locator: &Locator<'_>, e: &toml::de::Error) -> Problem {
    let message = e.message().to_string();
    let mut span = e.span();
    let mut key = None;
    // toml reports unknown keys inside arrays of tables and inline tables at
    // the enclosing table; point at the key itself.
    if let Some(name) = message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split('`').next())
    {
        key = Some(name.to_string());
        if let Some(found) = span.as_ref().and_then(|s| locator.find_key_after(s.start, name)) {
            span = Some(found);
        }
    }
    let (line, col) = match span {
        Some(s) => {
            let (l, c) = locator.line_col(s.start);
            (Some(l), Some(c))
        }
        None => (None, None),
    };
    Problem {
        line,
        col,
        key,
        message,
    }
}

/// Keys a `notifications` source may set.
const NOTIFICATIONS_KEYS: &[&str] = &[
    "topics",
    "ids",
    "max_topics_per_channel",
    "max_channels",
    "ping_interval",
    "silence_timeout",
    "reconnect_base",
    "reconnect_cap",
    "retry_limit",
    "retry_reset_after",
    "max_frame_bytes",
    "renew_before",
    "backfill",
    "backfill_topic",
];

struct Validator<'a> {
    locator: &'a Locator<'a>,
    problems: Vec<Problem>,
}

impl Validator<'_> {
    fn problem(&mut self, path: &KeyPath, message: impl Into<String>) {
        let (line, col) = match self.locator.span_of(path) {
            Some(s) => {
                let (l, c) = self.locator.line_col(s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        self.problems.push(Problem {
            line,
            col,
            key: Some(path.to_string()),
            message: message.into(),
        });
    }

    fn config(&mut self, c: &Config) {
        let root = KeyPath::root();
        if c.http.listen.parse::<SocketAddr>().is_err() {
            self.problem(
                &root.key("http").key("listen"),
                format!("`{}` is not an address like 127.0.0.1:8080", c.http.listen),
            );
        }
        if let Some(g) = &c.genesys {
            if g.environment.trim().is_empty() {
                self.problem(
                    &root.key("genesys").key("environment"),
                    "must be a region domain or \"emulator\"",
                );
            }
            if g.requests_per_minute == 0 {
                self.problem(&root.key("genesys").key("requests_per_minute"), "must be at least 1");
            }
            for (key, url) in [("api_url", &g.api_url), ("login_url", &g.login_url)] {
                if let Some(u) = url {
                    if !(u.starts_with("http://") || u.starts_with("https://")) {
                        self.problem(
                            &root.key("genesys").key(key),
                            format!("`{u}` is not an http:// or https:// URL"),
                        );
                    }
                }
            }
        }
        if c.http.workers == 0 {
            self.problem(&root.key("http").key("workers"), "must be at least 1");
        }
        if c.transform.workers == 0 {
            self.problem(&root.key("transform").key("workers"), "must be at least 1");
        }
        if c.transform.chunk_size == 0 {
            self.problem(&root.key("transform").key("chunk_size"), "must be at least 1");
        }
        let mut names: HashMap<&str, KeyPath> = HashMap::new();
        let mut paths: HashMap<&str, KeyPath> = HashMap::new();
        for (i, s) in c.source.iter().enumerate() {
            let p = root.key("source").index(i);
            self.unique_name(&mut names, &s.name, p.key("name"));
            self.source(c, s, &p);
            if let Some(path) = s.path.as_deref() {
                if let Some(first) = paths.get(path) {
                    let first = first.to_string();
                    self.problem(&p.key("path"), format!("path `{path}` is already used by `{first}`"));
                } else {
                    paths.insert(path, p.key("path"));
                }
            }
        }
        self.bulk_sources_need_genesys(c);
        for (i, l) in c.listener.iter().enumerate() {
            let p = root.key("listener").index(i);
            self.unique_name(&mut names, &l.name, p.key("name"));
            self.listener(l, &p);
        }
    }

    fn unique_name<'c>(&mut self, names: &mut HashMap<&'c str, KeyPath>, name: &'c str, at: KeyPath) {
        if name.trim().is_empty() {
            self.problem(&at, "must not be empty");
        } else if let Some(first) = names.get(name) {
            let first = first.to_string();
            self.problem(&at, format!("name `{name}` is already used by `{first}`"));
        } else {
            names.insert(name, at);
        }
    }

    /// Refuses keys set on a source that its kind does not use.
    fn only_keys(&mut self, p: &KeyPath, kind: &str, present: &[(&'static str, bool)], allowed: &[&str]) {
        for (key, set) in present {
            if *set && !allowed.contains(key) {
                self.problem(&p.key(key), format!("does not apply to a `{kind}` source"));
            }
        }
    }

    fn source(&mut self, c: &Config, s: &SourceConfig, p: &KeyPath) {
        let present = [
            ("topics", s.topics.is_some()),
            ("rate", s.rate.is_some()),
            ("count", s.count.is_some()),
            ("payload_bytes", s.payload_bytes.is_some()),
            ("keys", s.keys.is_some()),
            ("path", s.path.is_some()),
            ("secret_env", s.secret_env.is_some()),
            ("allow_unsigned", s.allow_unsigned.is_some()),
            ("signature_header", s.signature_header.is_some()),
            ("signature_encoding", s.signature_encoding.is_some()),
            ("signature_prefix", s.signature_prefix.is_some()),
            ("max_body_bytes", s.max_body_bytes.is_some()),
            ("allow_ips", s.allow_ips.is_some()),
            ("ack_timeout", s.ack_timeout.is_some()),
            // Bulk sources (analytics_job, export).
            ("topic", s.topic.is_some()),
            ("interval", s.interval.is_some()),
            ("every", s.every.is_some()),
            ("lag", s.lag.is_some()),
            ("start", s.start.is_some()),
            ("page_size", s.page_size.is_some()),
            ("prefetch", s.prefetch.is_some()),
            ("poll_interval", s.poll_interval.is_some()),
            ("poll_max_interval", s.poll_max_interval.is_some()),
            ("max_job_attempts", s.max_job_attempts.is_some()),
            ("url", s.url.is_some()),
            ("download_id", s.download_id.is_some()),
            ("format", s.format.is_some()),
            ("key_field", s.key_field.is_some()),
            ("time_field", s.time_field.is_some()),
            ("batch_records", s.batch_records.is_some()),
            ("max_resumes", s.max_resumes.is_some()),
            ("idle_timeout", s.idle_timeout.is_some()),
            // kind = "notifications"
            ("ids", s.ids.is_some()),
            ("max_topics_per_channel", s.max_topics_per_channel.is_some()),
            ("max_channels", s.max_channels.is_some()),
            ("ping_interval", s.ping_interval.is_some()),
            ("silence_timeout", s.silence_timeout.is_some()),
            ("reconnect_base", s.reconnect_base.is_some()),
            ("reconnect_cap", s.reconnect_cap.is_some()),
            ("retry_limit", s.retry_limit.is_some()),
            ("retry_reset_after", s.retry_reset_after.is_some()),
            ("max_frame_bytes", s.max_frame_bytes.is_some()),
            ("renew_before", s.renew_before.is_some()),
            ("backfill", s.backfill.is_some()),
            ("recordings", s.recordings.is_some()),
            ("output", s.output.is_some()),
            ("backfill_topic", s.backfill_topic.is_some()),
        ];
        match s.kind {
            SourceKind::Generator => {
                self.only_keys(
                    p,
                    "generator",
                    &present,
                    &["topics", "rate", "count", "payload_bytes", "keys"],
                );
                match &s.topics {
                    Some(t) if !t.is_empty() => {
                        for topic in t {
                            if topic.split('.').any(str::is_empty) {
                                self.problem(&p.key("topics"), format!("topic `{topic}` has an empty segment"));
                            }
                        }
                    }
                    _ => self.problem(&p.key("topics"), "a generator needs at least one topic"),
                }
                if s.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
                    self.problem(&p.key("rate"), "must be a positive number of events per second");
                }
                if s.keys == Some(0) {
                    self.problem(&p.key("keys"), "must be at least 1");
                }
            }
            SourceKind::Webhook => {
                self.only_keys(
                    p,
                    "webhook",
                    &present,
                    &[
                        "path",
                        "secret_env",
                        "allow_unsigned",
                        "signature_header",
                        "signature_encoding",
                        "signature_prefix",
                        "max_body_bytes",
                        "allow_ips",
                        "ack_timeout",
                    ],
                );
                match s.path.as_deref() {
                    None => self.problem(
                        &p.key("kind"),
                        "a webhook source needs `path` (e.g. \"/ingest/eventbridge\")",
                    ),
                    Some(path) if !path.starts_with('/') || path.contains(char::is_whitespace) => {
                        self.problem(&p.key("path"), format!("`{path}` is not a path starting with `/`"))
                    }
                    Some(path)
                        if ["/health", "/metrics", "/status", "/admin"]
                            .iter()
                            .any(|r| path == *r || path.starts_with(&format!("{r}/"))) =>
                    {
                        self.problem(&p.key("path"), format!("`{path}` is reserved by cxrelay"))
                    }
                    Some(_) => {}
                }
                if s.secret_env.is_none() && s.allow_unsigned != Some(true) {
                    self.problem(
                        &p.key("kind"),
                        "a webhook source needs `secret_env` (its HMAC secret); to accept unsigned requests set `allow_unsigned = true` explicitly",
                    );
                }
                if s.max_body_bytes == Some(0) {
                    self.problem(&p.key("max_body_bytes"), "must be at least 1");
                }
                if let Some(ips) = &s.allow_ips {
                    if let Err(e) = crate::sources::webhook::IpAllowList::parse(ips) {
                        self.problem(&p.key("allow_ips"), e);
                    }
                }
                if let Some(h) = &s.signature_header {
                    if actix_web::http::header::HeaderName::try_from(h.as_str()).is_err() {
                        self.problem(&p.key("signature_header"), format!("`{h}` is not a valid header name"));
                    }
                }
            }
            SourceKind::AnalyticsJob => self.analytics_job_source(s, p, &present),
            SourceKind::Export => self.export_source(s, p, &present),
            SourceKind::Recordings => self.recordings_source(c, s, p, &present),
            SourceKind::Notifications => {
                self.only_keys(p, "notifications", &present, NOTIFICATIONS_KEYS);
                self.notifications_source(c, s, p);
            }
        }
    }

    /// `kind = "analytics_job"`.
    fn analytics_job_source(&mut self, s: &SourceConfig, p: &KeyPath, present: &[(&'static str, bool)]) {
        self.only_keys(
            p,
            "analytics_job",
            present,
            &[
                "topic",
                "interval",
                "every",
                "lag",
                "start",
                "page_size",
                "prefetch",
                "poll_interval",
                "poll_max_interval",
                "max_job_attempts",
            ],
        );
        match (&s.interval, s.every) {
            (None, None) => self.problem(
                &p.key("kind"),
                "an analytics_job source needs `interval` (\"start/end\" in ISO-8601) or `every` (rolling windows)",
            ),
            (Some(_), Some(_)) => self.problem(&p.key("every"), "set `interval` or `every`, not both"),
            (Some(i), None) => {
                if let Err(e) = crate::genesys::interval::Interval::parse(i) {
                    self.problem(&p.key("interval"), e.to_string());
                }
            }
            (None, Some(every)) => {
                if every < std::time::Duration::from_secs(1) {
                    self.problem(&p.key("every"), "must be at least 1s");
                }
            }
        }
        if s.every.is_none() {
            for (key, set) in [("lag", s.lag.is_some()), ("start", s.start.is_some())] {
                if set {
                    self.problem(&p.key(key), "applies only to rolling windows (`every`)");
                }
            }
        }
        if let Some(start) = &s.start {
            if let Err(e) = crate::genesys::interval::parse_iso_ms(start) {
                self.problem(&p.key("start"), e.to_string());
            }
        }
        if s.page_size.is_some_and(|n| !(1..=1000).contains(&n)) {
            self.problem(&p.key("page_size"), "must be between 1 and 1000");
        }
        if s.prefetch.is_some_and(|n| !(1..=16).contains(&n)) {
            self.problem(&p.key("prefetch"), "must be between 1 and 16");
        }
        if s.poll_interval.is_some_and(|d| d.is_zero()) {
            self.problem(&p.key("poll_interval"), "must be more than 0");
        }
        if let (Some(a), Some(b)) = (s.poll_interval, s.poll_max_interval) {
            if b < a {
                self.problem(&p.key("poll_max_interval"), "must not be less than `poll_interval`");
            }
        }
        if s.max_job_attempts == Some(0) {
            self.problem(&p.key("max_job_attempts"), "must be at least 1");
        }
        self.bulk_topic(s, p);
    }

    /// `kind = "export"`.
    fn export_source(&mut self, s: &SourceConfig, p: &KeyPath, present: &[(&'static str, bool)]) {
        self.only_keys(
            p,
            "export",
            present,
            &[
                "topic",
                "url",
                "download_id",
                "format",
                "key_field",
                "time_field",
                "batch_records",
                "max_resumes",
                "idle_timeout",
            ],
        );
        match (&s.url, &s.download_id) {
            (None, None) => self.problem(
                &p.key("kind"),
                "an export source needs `url` (the file) or `download_id` (a Genesys download)",
            ),
            (Some(_), Some(_)) => self.problem(&p.key("download_id"), "set `url` or `download_id`, not both"),
            (Some(u), None) => {
                if !(u.starts_with("http://") || u.starts_with("https://") || u.starts_with('/')) {
                    self.problem(
                        &p.key("url"),
                        format!("`{u}` is neither an http(s):// URL nor a path on the API host"),
                    );
                }
            }
            (None, Some(id)) => {
                if id.is_empty() || id.contains(['/', '?', '#', ' ']) {
                    self.problem(&p.key("download_id"), format!("`{id}` is not a download id"));
                }
            }
        }
        if s.batch_records.is_some_and(|n| !(1..=100_000).contains(&n)) {
            self.problem(&p.key("batch_records"), "must be between 1 and 100000");
        }
        if s.idle_timeout.is_some_and(|d| d.is_zero()) {
            self.problem(&p.key("idle_timeout"), "must be more than 0");
        }
        for (key, value) in [("key_field", &s.key_field), ("time_field", &s.time_field)] {
            if value.as_deref().is_some_and(str::is_empty) {
                self.problem(&p.key(key), "must not be empty");
            }
        }
        self.bulk_topic(s, p);
    }

    fn bulk_topic(&mut self, s: &SourceConfig, p: &KeyPath) {
        if let Some(t) = &s.topic {
            let bad =
                t.split('.').any(|seg| seg.is_empty() || seg == "*" || seg == ">") || t.contains(char::is_whitespace);
            if bad {
                self.problem(
                    &p.key("topic"),
                    format!("`{t}` is not a topic (dot-separated words, no wildcards)"),
                );
            }
        }
    }

    /// `kind = "recordings"`.
    fn recordings_source(&mut self, c: &Config, s: &SourceConfig, p: &KeyPath, present: &[(&'static str, bool)]) {
        self.only_keys(
            p,
            "recordings",
            present,
            &[
                "recordings",
                "output",
                "topic",
                "max_resumes",
                "idle_timeout",
                "poll_interval",
                "poll_max_interval",
            ],
        );
        if c.genesys.is_none() {
            self.problem(
                &p.key("kind"),
                "a recordings source calls the Genesys API: add a `[genesys]` section",
            );
        }
        match s.recordings.as_deref() {
            None | Some([]) => self.problem(
                &p.key("kind"),
                "a recordings source needs `recordings` (\"conversationId/recordingId\" of each)",
            ),
            Some(list) => {
                let mut seen = std::collections::HashSet::new();
                for r in list {
                    if crate::sources::recordings::RecordingRef::parse(r).is_none() {
                        self.problem(
                            &p.key("recordings"),
                            format!("`{r}` is not \"conversationId/recordingId\""),
                        );
                    } else if !seen.insert(r.as_str()) {
                        self.problem(&p.key("recordings"), format!("`{r}` is listed twice"));
                    }
                }
            }
        }
        if s.output.is_none() {
            self.problem(
                &p.key("kind"),
                "a recordings source needs `output` (the directory for the files)",
            );
        }
        if s.max_resumes == Some(0) {
            self.problem(&p.key("max_resumes"), "must be at least 1");
        }
        if s.idle_timeout.is_some_and(|d| d.is_zero()) {
            self.problem(&p.key("idle_timeout"), "must be more than 0");
        }
        if s.poll_interval.is_some_and(|d| d.is_zero()) {
            self.problem(&p.key("poll_interval"), "must be more than 0");
        }
        self.bulk_topic(s, p);
    }

    /// Bulk sources that call the Genesys API need `[genesys]`.
    fn bulk_sources_need_genesys(&mut self, c: &Config) {
        if c.genesys.is_some() {
            return;
        }
        for (i, s) in c.source.iter().enumerate() {
            let needs = match s.kind {
                SourceKind::AnalyticsJob => true,
                SourceKind::Export => s.download_id.is_some() || s.url.as_deref().is_some_and(|u| u.starts_with('/')),
                _ => false,
            };
            if needs && s.enabled {
                let what = if s.kind == SourceKind::Export {
                    "this export source calls the Genesys API"
                } else {
                    "an analytics_job source calls the Genesys API"
                };
                self.problem(
                    &KeyPath::root().key("source").index(i).key("kind"),
                    format!("{what}: add a `[genesys]` section"),
                );
            }
        }
    }

    /// A `notifications` source: its topics expand and fit the channel
    /// limits, alone and together with the other notifications sources
    /// (they share the one OAuth client's 20 channels).
    fn notifications_source(&mut self, c: &Config, s: &SourceConfig, p: &KeyPath) {
        use crate::sources::notifications::plan;
        if c.genesys.is_none() {
            self.problem(&p.key("kind"), "a notifications source needs a `[genesys]` section");
        }
        let per_channel = s.max_topics_per_channel.unwrap_or(plan::MAX_TOPICS_PER_CHANNEL);
        if per_channel == 0 || per_channel > plan::MAX_TOPICS_PER_CHANNEL {
            self.problem(
                &p.key("max_topics_per_channel"),
                format!(
                    "must be 1 to {} (Genesys's limit per channel)",
                    plan::MAX_TOPICS_PER_CHANNEL
                ),
            );
        }
        let max_channels = s.max_channels.unwrap_or(plan::MAX_CHANNELS);
        if max_channels == 0 || max_channels > plan::MAX_CHANNELS {
            self.problem(
                &p.key("max_channels"),
                format!("must be 1 to {} (Genesys's limit per OAuth client)", plan::MAX_CHANNELS),
            );
        }
        for (key, d) in [
            ("ping_interval", s.ping_interval),
            ("silence_timeout", s.silence_timeout),
            ("reconnect_base", s.reconnect_base),
            ("reconnect_cap", s.reconnect_cap),
            ("retry_reset_after", s.retry_reset_after),
        ] {
            if d.is_some_and(|d| d.is_zero()) {
                self.problem(&p.key(key), "must be more than zero");
            }
        }
        if let (Some(ping), Some(silence)) = (s.ping_interval, s.silence_timeout) {
            if ping >= silence {
                self.problem(
                    &p.key("ping_interval"),
                    "must be shorter than `silence_timeout` (pongs keep a quiet socket alive)",
                );
            }
        }
        if s.reconnect_base.zip(s.reconnect_cap).is_some_and(|(b, c)| b > c) {
            self.problem(&p.key("reconnect_base"), "must not be more than `reconnect_cap`");
        }
        if s.max_frame_bytes == Some(0) {
            self.problem(&p.key("max_frame_bytes"), "must be at least 1");
        }
        if s.retry_limit == Some(0) {
            self.problem(&p.key("retry_limit"), "must be at least 1");
        }
        if s.backfill_topic.is_some() && s.backfill != Some(true) {
            self.problem(&p.key("backfill_topic"), "applies only with `backfill = true`");
        }
        if let Some(t) = &s.backfill_topic {
            if t.split('.').any(str::is_empty) {
                self.problem(&p.key("backfill_topic"), format!("topic `{t}` has an empty segment"));
            }
        }
        let ids = s.ids.clone().unwrap_or_default();
        let templates = s.topics.clone().unwrap_or_default();
        if templates.is_empty() {
            self.problem(&p.key("topics"), "a notifications source needs at least one topic");
            return;
        }
        for unused in plan::unused_ids(&templates, &ids) {
            self.problem(&p.key("ids").key(&unused), format!("no topic uses `{{{unused}}}`"));
        }
        let topics = match plan::expand(&templates, &ids) {
            Ok(t) => t,
            Err(e) => return self.problem(&p.key("topics"), e.to_string()),
        };
        if let Err(e) = plan::pack(topics, per_channel.clamp(1, plan::MAX_TOPICS_PER_CHANNEL), max_channels) {
            return self.problem(&p.key("topics"), e.to_string());
        }
        // Every notifications source so far, this one included, shares the
        // OAuth client's channels.
        let mut total = 0;
        for other in c
            .source
            .iter()
            .filter(|o| o.enabled && o.kind == SourceKind::Notifications)
        {
            let per = other
                .max_topics_per_channel
                .unwrap_or(plan::MAX_TOPICS_PER_CHANNEL)
                .clamp(1, plan::MAX_TOPICS_PER_CHANNEL);
            let n = plan::expand(
                &other.topics.clone().unwrap_or_default(),
                &other.ids.clone().unwrap_or_default(),
            )
            .map(|t| plan::channels_needed(t.len(), per))
            .unwrap_or(0);
            total += n;
            if std::ptr::eq(other, s) {
                break;
            }
        }
        if s.enabled && total > plan::MAX_CHANNELS {
            self.problem(
                &p.key("topics"),
                format!(
                    "the notifications sources up to this one need {total} channels, but one OAuth client may have at most {} (a 21st evicts the oldest); subscribe to fewer topics",
                    plan::MAX_CHANNELS
                ),
            );
        }
    }

    fn listener(&mut self, l: &ListenerConfig, p: &KeyPath) {
        if l.topics.is_empty() {
            self.problem(&p.key("topics"), "a listener needs at least one topic pattern");
        }
        for t in &l.topics {
            if let Err(e) = cxrelay_actors::Pattern::parse(t) {
                self.problem(&p.key("topics"), e.to_string());
            }
        }
        if l.mailbox == 0 {
            self.problem(&p.key("mailbox"), "must be at least 1");
        }
        if l.batch == 0 {
            self.problem(&p.key("batch"), "must be at least 1");
        }
        if let Some(t) = &l.transform {
            let tp = p.key("transform");
            if !t.mask.is_empty() && t.mask_mode == crate::transform::MaskMode::Hash && t.mask_key_env.is_none() {
                self.problem(
                    &tp.key("mask"),
                    "hash masking needs `mask_key_env` (a secret key: unkeyed hashes of phone numbers are easy to reverse), or use mask_mode = \"redact\"",
                );
            }
            if t.mask_key_env.is_some() && t.mask.is_empty() {
                self.problem(&tp.key("mask_key_env"), "set, but no field is masked (`mask` is empty)");
            }
        }
        let sp = p.key("sink");
        let s = &l.sink;
        let present = [
            ("path", s.path.is_some()),
            ("batch_events", s.batch_events.is_some()),
            ("batch_interval", s.batch_interval.is_some()),
            ("rotate_bytes", s.rotate_bytes.is_some()),
            ("fsync", s.fsync.is_some()),
            ("url", s.url.is_some()),
            ("timeout", s.timeout.is_some()),
            ("authorization_env", s.authorization_env.is_some()),
            ("max_retries", s.max_retries.is_some()),
        ];
        let allowed: &[&str] = match s.kind {
            SinkKind::File => &[
                "path",
                "batch_events",
                "batch_interval",
                "rotate_bytes",
                "fsync",
                "max_retries",
            ],
            SinkKind::Stdout => &["batch_events", "batch_interval"],
            SinkKind::Http => &[
                "url",
                "batch_events",
                "batch_interval",
                "timeout",
                "authorization_env",
                "max_retries",
            ],
        };
        for (key, set) in present {
            if set && !allowed.contains(&key) {
                self.problem(&sp.key(key), format!("does not apply to a `{}` sink", s.kind.as_str()));
            }
        }
        if s.batch_events == Some(0) {
            self.problem(&sp.key("batch_events"), "must be at least 1");
        }
        match s.kind {
            SinkKind::File if s.path.is_none() => {
                self.problem(&sp.key("kind"), "a file sink needs `path` (an output directory)");
            }
            SinkKind::Http => match &s.url {
                None => self.problem(&sp.key("kind"), "an http sink needs `url`"),
                Some(u) if !(u.starts_with("http://") || u.starts_with("https://")) => {
                    self.problem(&sp.key("url"), format!("`{u}` is not an http:// or https:// URL"));
                }
                _ => {}
            },
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<Problem> {
        match load_str(text, "cfg.toml") {
            Err(ConfigError::Invalid { problems, .. }) => problems,
            other => panic!("expected problems, got {other:?}"),
        }
    }

    const GOOD: &str = r#"
[service]
data_dir = "data"

[[source]]
name = "gen"
kind = "generator"
topics = ["a.b"]

[[listener]]
name = "out"
topics = ["a.>"]
sink = { kind = "file", path = "data/out" }
"#;

    #[test]
    fn accepts_a_good_file() {
        let c = load_str(GOOD, "cfg.toml").unwrap();
        assert_eq!(c.listener[0].mailbox, 1024);
        assert_eq!(c.source[0].kind, SourceKind::Generator);
    }

    #[test]
    fn a_typo_names_the_key_file_and_line() {
        let text = GOOD.replace("data_dir = \"data\"", "data_dri = \"data\"");
        let err = load_str(&text, "cfg.toml").unwrap_err().to_string();
        assert!(err.starts_with("cfg.toml:3:1:"), "{err}");
        assert!(err.contains("data_dri"), "{err}");
    }

    #[test]
    fn a_typo_in_the_second_table_of_an_array_points_at_it() {
        let text = format!("{GOOD}\n[[listener]]\nname = \"two\"\ntopics = [\"x\"]\nsnk = 1\n");
        let p = problems(&text);
        assert_eq!((p[0].line, p[0].key.as_deref()), (Some(18), Some("snk")), "{p:?}");
    }

    #[test]
    fn a_typo_inside_an_inline_table() {
        let text = GOOD.replace("path = \"data/out\"", "pth = \"data/out\"");
        let p = problems(&text);
        assert_eq!(p[0].line, Some(13));
        assert!(p[0].message.contains("pth"));
    }

    #[test]
    fn semantic_errors_name_key_and_line() {
        let text = GOOD
            .replace("topics = [\"a.>\"]", "topics = [\"a.>.b\"]")
            .replace("topics = [\"a.b\"]", "topics = [\"a.b\"]\nrate = -1");
        let p = problems(&text);
        assert_eq!(p.len(), 2, "{p:?}");
        assert_eq!(p[0].key.as_deref(), Some("source[0].rate"));
        assert_eq!(p[0].line, Some(9));
        assert_eq!(p[1].key.as_deref(), Some("listener[0].topics"));
        assert_eq!(p[1].line, Some(13));
    }

    #[test]
    fn duplicate_names_and_keys_foreign_to_the_kind() {
        let text = GOOD.replace("name = \"out\"", "name = \"gen\"").replace(
            "sink = { kind = \"file\", path = \"data/out\" }",
            "sink = { kind = \"stdout\", path = \"x\" }",
        );
        let p = problems(&text);
        assert!(
            p.iter().any(|p| p.message.contains("already used by `source[0].name`")),
            "{p:?}"
        );
        assert!(
            p.iter().any(|p| p.key.as_deref() == Some("listener[0].sink.path")),
            "{p:?}"
        );
    }

    #[test]
    fn a_missing_secret_names_the_variable_and_the_key() {
        let text = format!("{GOOD}\n[genesys]\nenvironment = \"mypurecloud.ie\"\nclient_secret_env = \"MY_SECRET\"\n");
        let c = load_str(&text, "cfg.toml").unwrap();
        let env = |k: &str| (k == "GENESYS_CLIENT_ID").then(|| "id".to_string());
        let err = resolve_secrets_with(&c, &text, "cfg.toml", env)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "cfg.toml:17:1: `genesys.client_secret_env`: environment variable `MY_SECRET` is not set"
        );
        let env = |_: &str| Some("value".to_string());
        let s = resolve_secrets_with(&c, &text, "cfg.toml", env).unwrap();
        assert_eq!(s.genesys.unwrap().1.expose(), "value");
    }

    #[test]
    fn bulk_sources_are_validated_with_their_keys() {
        let genesys = "[genesys]\nenvironment = \"emulator\"\n";
        let ok = format!(
            "{genesys}[[source]]\nname = \"d\"\nkind = \"analytics_job\"\ninterval = \"2024-05-01T00:00:00Z/2024-05-02T00:00:00Z\"\n\n[[source]]\nname = \"e\"\nkind = \"export\"\ndownload_id = \"x\"\n"
        );
        let c = load_str(&ok, "cfg.toml").unwrap();
        assert_eq!(c.source[1].kind, SourceKind::Export);
        let bad = "[[source]]\nname = \"d\"\nkind = \"analytics_job\"\nevery = \"5m\"\ninterval = \"2024-05-01\"\npage_size = 5000\nrate = 3\n\n[[source]]\nname = \"e\"\nkind = \"export\"\nurl = \"ftp://x\"\nlag = \"1m\"\n";
        let p = problems(bad);
        let keys: Vec<&str> = p.iter().filter_map(|p| p.key.as_deref()).collect();
        for k in [
            "source[0].every",
            "source[0].page_size",
            "source[0].rate",
            "source[0].kind",
            "source[1].url",
            "source[1].lag",
        ] {
            assert!(keys.contains(&k), "{k} not reported: {p:?}");
        }
        assert!(p.iter().any(|p| p.message.contains("[genesys]")), "{p:?}");
    }

    #[test]
    fn unknown_kinds_list_the_known_ones() {
        let text = GOOD.replace("kind = \"generator\"", "kind = \"generatr\"");
        let err = load_str(&text, "cfg.toml").unwrap_err().to_string();
        assert!(err.contains("cfg.toml:7:"), "{err}");
        assert!(err.contains("generator"), "{err}");
    }
}
