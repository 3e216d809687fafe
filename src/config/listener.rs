//! `[[listener]]`: a topic subscription with a bounded queue, optional
//! transforms, and a sink (one of the registered sink kinds).

use std::collections::BTreeMap;

use cxrelay_actors::WhenFull;
use serde::{Deserialize, Serialize};

use super::problem::KeyProblems;
use crate::sinks::{SinkCommon, SinkSpec};

/// One `[[listener]]`.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// Unique name.
    pub name: String,
    /// Topic patterns (`*` one segment, `>` the rest).
    pub topics: Vec<String>,
    /// Where events go.
    pub sink: SinkConfig,
    /// Queue bound in events.
    pub mailbox: usize,
    /// What a full queue does.
    pub when_full: WhenFull,
    /// Largest batch handed to the sink at once.
    pub batch: usize,
    /// `time`: each written batch is sorted by event time, then key, then
    /// id (events without a time use their receive time).
    pub order_by: Option<OrderBy>,
    /// Transforms run on the worker pool before the sink writes.
    pub transform: Option<ListenerTransform>,
}

/// The keys of a `[[listener]]` table other than `sink` (which the loader
/// reads by its kind).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerKeys {
    /// Unique name.
    pub name: String,
    /// Topic patterns.
    pub topics: Vec<String>,
    /// Queue bound in events.
    #[serde(default = "default_mailbox")]
    pub mailbox: usize,
    /// What a full queue does.
    #[serde(default)]
    pub when_full: WhenFull,
    /// Largest batch handed to the sink at once.
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Output order within a batch.
    pub order_by: Option<OrderBy>,
    /// Transforms.
    pub transform: Option<ListenerTransform>,
}

impl ListenerKeys {
    /// Every key a listener table takes, `sink` included.
    pub fn keys() -> Vec<&'static str> {
        let mut keys = super::fields::keys_of::<ListenerKeys>().to_vec();
        keys.insert(2, "sink");
        keys
    }

    /// The whole listener, with its sink.
    pub fn with_sink(self, sink: SinkConfig) -> ListenerConfig {
        ListenerConfig {
            name: self.name,
            topics: self.topics,
            sink,
            mailbox: self.mailbox,
            when_full: self.when_full,
            batch: self.batch,
            order_by: self.order_by,
            transform: self.transform,
        }
    }
}

impl ListenerConfig {
    /// Problems of the listener's own keys (relative to its table).
    pub fn check(&self) -> Vec<super::KeyProblem> {
        let mut p = KeyProblems::new();
        p.check(
            !self.topics.is_empty(),
            "topics",
            "a listener needs at least one topic pattern",
        );
        for t in &self.topics {
            if let Err(e) = cxrelay_actors::Pattern::parse(t) {
                p.at("topics", e.to_string());
            }
        }
        p.check(self.mailbox > 0, "mailbox", "must be at least 1");
        p.check(self.batch > 0, "batch", "must be at least 1");
        if let Some(t) = &self.transform {
            if !t.mask.is_empty() && t.mask_mode == crate::transform::MaskMode::Hash && t.mask_key_env.is_none() {
                p.at(
                    "transform.mask",
                    "hash masking needs `mask_key_env` (a secret key: unkeyed hashes of phone numbers are easy to reverse), or use mask_mode = \"redact\"",
                );
            }
            if let Err(why) = crate::transform::pii::expand(&t.mask) {
                p.at("transform.mask", why);
            }
            if t.mask_key_env.is_some() && t.mask.is_empty() {
                p.at(
                    "transform.mask_key_env",
                    "set, but no field is masked (`mask` is empty)",
                );
            }
        }
        p.into_vec()
    }
}

/// A listener's `transform = { ... }`.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ListenerTransform {
    /// Nested objects become dotted keys.
    #[serde(default)]
    pub flatten: bool,
    /// Time fields become ISO-8601 UTC with milliseconds.
    #[serde(default)]
    pub timestamps: bool,
    /// Field names masked anywhere in the record; `@genesys-pii` stands for
    /// the PII fields of Genesys's models.
    #[serde(default)]
    pub mask: Vec<String>,
    /// `hash` (keyed SHA-256, needs `mask_key_env`) or `redact`.
    #[serde(default)]
    pub mask_mode: crate::transform::MaskMode,
    /// Environment variable holding the hashing key.
    pub mask_key_env: Option<String>,
    /// Keys renamed (`old = "new"`).
    #[serde(default)]
    pub rename: BTreeMap<String, String>,
    /// Keys removed.
    #[serde(default)]
    pub drop: Vec<String>,
    /// Only these keys are kept.
    #[serde(default)]
    pub select: Vec<String>,
}

/// Output order within a batch.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OrderBy {
    /// By event time, with a deterministic tie-break (key, then id).
    Time,
    /// As received.
    Arrival,
}

/// A listener's `sink = { kind = "...", ... }`: the keys every sink takes,
/// and its kind's own typed config.
#[derive(Debug, Clone)]
pub struct SinkConfig {
    /// Batching and retries, the same for every kind.
    pub common: SinkCommon,
    /// The kind and its settings.
    pub spec: SinkSpec,
}

impl SinkConfig {
    /// The kind as written in configuration.
    pub fn kind(&self) -> &'static str {
        self.spec.kind()
    }
}

fn default_mailbox() -> usize {
    1024
}
fn default_batch() -> usize {
    1000
}
