//! `kind = "generator"`: its keys, their defaults and checks, and how it is
//! built.

use actix::prelude::*;
use cxrelay_actors::registry::ComponentKind;
use cxrelay_actors::supervision::ChildSpec;
use futures_util::future::LocalBoxFuture;
use serde::{Deserialize, Serialize};

use super::{parse_checkpoint, Generator, GeneratorSettings, STUCK_AFTER};
use crate::config::{KeyProblem, KeyProblems, Named};
use crate::sources::builder::{template_pattern, BuildError, SourceBuilder, SourceContext};

/// A generator's `[[source]]` keys.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    /// Topic templates; `{key}` is replaced by the event's key.
    pub topics: Vec<String>,
    /// Events per second.
    #[serde(default = "default_rate")]
    pub rate: f64,
    /// Stop after this many events (unlimited when absent).
    pub count: Option<u64>,
    /// Approximate payload size in bytes.
    #[serde(default = "default_payload_bytes")]
    pub payload_bytes: usize,
    /// Distinct partition keys.
    #[serde(default = "default_keys")]
    pub keys: u64,
}

fn default_rate() -> f64 {
    100.0
}
fn default_payload_bytes() -> usize {
    512
}
fn default_keys() -> u64 {
    100
}

impl TryFrom<Named<'_, GeneratorConfig>> for GeneratorSettings {
    type Error = Vec<KeyProblem>;

    fn try_from(n: Named<'_, GeneratorConfig>) -> Result<Self, Self::Error> {
        let c = n.config;
        let mut p = KeyProblems::new();
        p.check(!c.topics.is_empty(), "topics", "a generator needs at least one topic");
        for topic in &c.topics {
            if topic.split('.').any(str::is_empty) {
                p.at("topics", format!("topic `{topic}` has an empty segment"));
            }
        }
        p.check(
            c.rate > 0.0 && c.rate.is_finite(),
            "rate",
            "must be a positive number of events per second",
        );
        p.check(c.keys > 0, "keys", "must be at least 1");
        p.finish(|| GeneratorSettings {
            name: n.name.to_string(),
            topics: c.topics.clone(),
            rate: c.rate,
            count: c.count,
            payload_bytes: c.payload_bytes,
            keys: c.keys,
        })
    }
}

impl SourceBuilder for GeneratorConfig {
    fn check(&self, name: &str) -> Vec<KeyProblem> {
        GeneratorSettings::try_from(Named { name, config: self })
            .err()
            .unwrap_or_default()
    }

    fn needs_genesys(&self) -> bool {
        false
    }

    fn describe(&self) -> String {
        let count = match self.count {
            Some(n) => format!("{n} events, then stops"),
            None => "without end".to_string(),
        };
        format!(
            "synthetic events at {}/s, {count}, over {} keys, payloads of about {} bytes",
            self.rate, self.keys, self.payload_bytes
        )
    }

    /// Its templates, `{key}` standing for any key.
    fn produces(&self, _name: &str) -> Vec<String> {
        self.topics.iter().map(|t| template_pattern(t)).collect()
    }

    fn start<'a>(&'a self, name: &'a str, cx: &'a SourceContext) -> LocalBoxFuture<'a, Result<(), BuildError>> {
        Box::pin(async move {
            let settings = GeneratorSettings::try_from(Named { name, config: self })?;
            let component = cx.component(name, "generator");
            let (ingest, db) = (cx.ingest.clone(), cx.db.clone());
            let spec = ChildSpec::new(name.to_string(), ComponentKind::Source, move || {
                // Resume after the last committed event (read again on every
                // restart of the actor).
                let clustered = ingest.as_cluster().is_some();
                let start_at = if clustered {
                    parse_checkpoint(ingest.checkpoint(&settings.name).ok().flatten())
                } else {
                    db.as_ref()
                        .map(|db| parse_checkpoint(db.checkpoint(&settings.name).ok().flatten()))
                        .unwrap_or(0)
                };
                Generator::new(
                    settings.clone(),
                    ingest.clone(),
                    component.clone(),
                    component.report_progress(STUCK_AFTER),
                    start_at,
                    db.is_some() || clustered,
                )
                .start()
            });
            cx.supervise(spec).await;
            Ok(())
        })
    }
}
