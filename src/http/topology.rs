//! The shape of the pipeline for `/status` (`topology`) and the status
//! page: which sources run, what they publish, which listeners their
//! events can reach, and what each listener's sink is. Worked out once
//! from the configuration; the live figures are elsewhere in `/status`.
//! Only what `cxrelay check` prints is here: names, kinds, topics, and
//! the descriptions components give of themselves (no secret values).

use cxrelay_actors::Pattern;
use serde::Serialize;

use crate::config::Config;

/// Topics listed per source (the rest are counted).
const TOPICS_SHOWN: usize = 8;

/// A source in the topology.
#[derive(Debug, Clone, Serialize)]
pub struct SourceNode {
    /// Its name (its channels are components named `<name>/...`).
    pub name: String,
    /// Its kind (`notifications`, `analytics_job`, ...).
    pub kind: &'static str,
    /// What it fetches or serves, as `cxrelay check` says it.
    pub describe: String,
    /// Topics it may publish (the first few).
    pub publishes: Vec<String>,
    /// How many topics it may publish in all.
    pub publishes_total: usize,
    /// Listeners some of its topics can reach.
    pub feeds: Vec<String>,
}

/// A listener and its sink in the topology.
#[derive(Debug, Clone, Serialize)]
pub struct ListenerNode {
    /// Its name (also its component's and its queue's).
    pub name: String,
    /// Its topic patterns.
    pub topics: Vec<String>,
    /// The sink kind.
    pub sink: &'static str,
    /// The sink, as `cxrelay check` says it.
    pub sink_describe: String,
    /// The queue's bound.
    pub mailbox: usize,
    /// What a full queue does.
    pub when_full: &'static str,
    /// Whether it transforms events before writing.
    pub transforms: bool,
    /// Sources whose topics it can receive.
    pub fed_by: Vec<String>,
}

/// Sources -> router -> listeners -> sinks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Topology {
    /// Enabled sources, in configuration order.
    pub sources: Vec<SourceNode>,
    /// Listeners, in configuration order.
    pub listeners: Vec<ListenerNode>,
}

impl Topology {
    /// The topology `config` runs.
    pub fn of(config: &Config) -> Topology {
        let patterns =
            |topics: &[String]| -> Vec<Pattern> { topics.iter().filter_map(|t| Pattern::parse(t).ok()).collect() };
        let listeners: Vec<(&crate::config::ListenerConfig, Vec<Pattern>)> =
            config.listener.iter().map(|l| (l, patterns(&l.topics))).collect();
        let mut sources = Vec::new();
        for s in config.source.iter().filter(|s| s.enabled) {
            let builder = s.spec.builder();
            let publishes = builder.produces(&s.name);
            let published = patterns(&publishes);
            let feeds = listeners
                .iter()
                .filter(|(_, ps)| ps.iter().any(|p| published.iter().any(|q| p.overlaps(q))))
                .map(|(l, _)| l.name.clone())
                .collect();
            sources.push(SourceNode {
                name: s.name.clone(),
                kind: s.kind(),
                describe: builder.describe(),
                publishes_total: publishes.len(),
                publishes: publishes.into_iter().take(TOPICS_SHOWN).collect(),
                feeds,
            });
        }
        let listeners = listeners
            .iter()
            .map(|(l, _)| ListenerNode {
                name: l.name.clone(),
                topics: l.topics.clone(),
                sink: l.sink.kind(),
                sink_describe: l.sink.spec.builder().describe(),
                mailbox: l.mailbox,
                when_full: l.when_full.as_str(),
                transforms: l.transform.is_some(),
                fed_by: sources
                    .iter()
                    .filter(|s| s.feeds.contains(&l.name))
                    .map(|s| s.name.clone())
                    .collect(),
            })
            .collect();
        Topology { sources, listeners }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_feed_the_listeners_whose_patterns_overlap_what_they_publish() {
        let text = r#"
[service]
data_dir = "/tmp/cxrelay-topology-test"
[[source]]
name = "gen"
kind = "generator"
topics = ["v2.test.events"]
rate = 1
[[source]]
name = "off"
kind = "generator"
topics = ["v2.other"]
enabled = false
[[listener]]
name = "all"
topics = [">"]
sink = { kind = "blackhole" }
[[listener]]
name = "other"
topics = ["v2.other"]
sink = { kind = "blackhole" }
mailbox = 16
when_full = "drop_oldest"
"#;
        let loaded = crate::config::Loaded::from_str(text, "test").unwrap();
        let t = Topology::of(&loaded.config);
        assert_eq!(t.sources.len(), 1, "disabled sources are not shown");
        assert_eq!(t.sources[0].feeds, vec!["all".to_string()]);
        assert_eq!(t.sources[0].kind, "generator");
        assert_eq!(t.listeners[0].fed_by, vec!["gen".to_string()]);
        assert!(t.listeners[1].fed_by.is_empty());
        assert_eq!((t.listeners[1].mailbox, t.listeners[1].when_full), (16, "drop_oldest"));
        assert_eq!(t.listeners[1].sink, "blackhole");
    }
}
