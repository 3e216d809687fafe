//! Which topics go on which channel: topic templates expanded with the ids
//! listed in config, then packed into as few channels as the limits allow
//! (Genesys: at most 1000 topics per channel, 20 channels per OAuth client).

use std::collections::{BTreeMap, HashSet};

/// Genesys's limit of topics on one channel.
pub const MAX_TOPICS_PER_CHANNEL: usize = 1000;
/// Genesys's limit of channels per OAuth client.
pub const MAX_CHANNELS: usize = 20;

/// Why a set of topics cannot be subscribed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A template names ids that are not listed.
    #[error("topic `{template}` uses `{{{name}}}`, but `ids.{name}` is not set")]
    MissingIds {
        /// The template.
        template: String,
        /// The placeholder.
        name: String,
    },
    /// `{` without `}`, or an empty name.
    #[error("topic `{0}` has a malformed `{{name}}` placeholder")]
    BadPlaceholder(String),
    /// An id that cannot be part of a topic.
    #[error("id `{id}` in `ids.{name}` cannot be part of a topic (empty, or contains `.`, `*`, `>` or whitespace)")]
    BadId {
        /// The list.
        name: String,
        /// The id.
        id: String,
    },
    /// Not a notification topic.
    #[error("`{topic}` is not a notification topic: {why}")]
    InvalidTopic {
        /// The topic.
        topic: String,
        /// Why.
        why: &'static str,
    },
    /// More channels than allowed.
    #[error("{topics} topics need {needed} channels at {per_channel} topics per channel, but at most {max_channels} channels are allowed (Genesys allows 20 per OAuth client); subscribe to fewer topics")]
    TooManyChannels {
        /// Topics asked for.
        topics: usize,
        /// Channels they need.
        needed: usize,
        /// Topics per channel.
        per_channel: usize,
        /// Channels allowed.
        max_channels: usize,
    },
    /// Nothing to subscribe to.
    #[error("no topics to subscribe to")]
    Empty,
}

/// Checks one concrete topic.
pub fn check_topic(topic: &str) -> Result<(), PlanError> {
    let invalid = |why| PlanError::InvalidTopic {
        topic: topic.to_string(),
        why,
    };
    if !topic.starts_with("v2.") {
        return Err(invalid("topics start with `v2.`"));
    }
    if topic.split('.').any(str::is_empty) {
        return Err(invalid("it has an empty segment"));
    }
    if topic.contains(|c: char| c.is_whitespace() || c == '*' || c == '>' || c == '{' || c == '}') {
        return Err(invalid("it contains whitespace, a wildcard or a brace"));
    }
    Ok(())
}

fn placeholders(template: &str) -> Result<Vec<&str>, PlanError> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| PlanError::BadPlaceholder(template.to_string()))?;
        let name = &after[..close];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(PlanError::BadPlaceholder(template.to_string()));
        }
        out.push(name);
        rest = &after[close + 1..];
    }
    if rest.contains('}') {
        return Err(PlanError::BadPlaceholder(template.to_string()));
    }
    Ok(out)
}

/// Expands templates (`v2.routing.queues.{queue}.conversations`) with the
/// id lists (`ids.queue`), in order, without duplicates. A template with
/// several placeholders gets every combination.
pub fn expand(templates: &[String], ids: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>, PlanError> {
    for (name, list) in ids {
        if let Some(bad) = list
            .iter()
            .find(|id| id.is_empty() || id.contains(|c: char| c == '.' || c == '*' || c == '>' || c.is_whitespace()))
        {
            return Err(PlanError::BadId {
                name: name.clone(),
                id: bad.clone(),
            });
        }
    }
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for template in templates {
        let names = placeholders(template)?;
        let mut partial = vec![template.clone()];
        for name in names {
            let list = ids.get(name).ok_or_else(|| PlanError::MissingIds {
                template: template.clone(),
                name: name.to_string(),
            })?;
            let placeholder = format!("{{{name}}}");
            let placeholder = placeholder.as_str();
            partial = partial
                .iter()
                .flat_map(|t| list.iter().map(move |id| t.replacen(placeholder, id, 1)))
                .collect();
        }
        for topic in partial {
            check_topic(&topic)?;
            if seen.insert(topic.clone()) {
                out.push(topic);
            }
        }
    }
    if out.is_empty() {
        return Err(PlanError::Empty);
    }
    Ok(out)
}

/// Id lists no template uses.
pub fn unused_ids(templates: &[String], ids: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let used: HashSet<&str> = templates
        .iter()
        .filter_map(|t| placeholders(t).ok())
        .flatten()
        .collect();
    ids.keys().filter(|k| !used.contains(k.as_str())).cloned().collect()
}

/// Channels needed for `topics` topics.
pub fn channels_needed(topics: usize, per_channel: usize) -> usize {
    topics.div_ceil(per_channel.max(1))
}

/// Packs topics into as few channels as possible, spread evenly (so each
/// channel has room for topics added at run time).
pub fn pack(topics: Vec<String>, per_channel: usize, max_channels: usize) -> Result<Vec<Vec<String>>, PlanError> {
    if topics.is_empty() {
        return Err(PlanError::Empty);
    }
    let needed = channels_needed(topics.len(), per_channel);
    if needed > max_channels {
        return Err(PlanError::TooManyChannels {
            topics: topics.len(),
            needed,
            per_channel,
            max_channels,
        });
    }
    let base = topics.len() / needed;
    let extra = topics.len() % needed;
    let mut out = Vec::with_capacity(needed);
    let mut it = topics.into_iter();
    for i in 0..needed {
        let n = base + usize::from(i < extra);
        out.push(it.by_ref().take(n).collect());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(pairs: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn templates_expand_with_their_ids_in_order_without_duplicates() {
        let t = vec![
            "v2.routing.queues.{queue}.conversations".to_string(),
            "v2.users.{user}.presence".to_string(),
            "v2.routing.queues.q1.conversations".to_string(),
            "v2.users.{user}.conversations.{media}".to_string(),
        ];
        let i = ids(&[
            ("queue", &["q1", "q2"]),
            ("user", &["u1"]),
            ("media", &["calls", "chats"]),
        ]);
        assert_eq!(
            expand(&t, &i).unwrap(),
            [
                "v2.routing.queues.q1.conversations",
                "v2.routing.queues.q2.conversations",
                "v2.users.u1.presence",
                "v2.users.u1.conversations.calls",
                "v2.users.u1.conversations.chats",
            ]
        );
        assert!(unused_ids(&t, &i).is_empty());
        assert_eq!(unused_ids(&t[..1], &i), ["media", "user"]);
    }

    #[test]
    fn refusals_say_what_is_wrong() {
        let t = |s: &str| vec![s.to_string()];
        assert_eq!(
            expand(&t("v2.users.{user}.presence"), &BTreeMap::new())
                .unwrap_err()
                .to_string(),
            "topic `v2.users.{user}.presence` uses `{user}`, but `ids.user` is not set"
        );
        assert!(matches!(
            expand(&t("v2.users.{user.presence"), &BTreeMap::new()),
            Err(PlanError::BadPlaceholder(_))
        ));
        assert!(matches!(
            expand(&t("v2.users.{user}.presence"), &ids(&[("user", &["a.b"])])),
            Err(PlanError::BadId { .. })
        ));
        assert!(matches!(
            expand(&t("users.x"), &BTreeMap::new()),
            Err(PlanError::InvalidTopic { .. })
        ));
        assert!(matches!(
            expand(&t("v2.users.>"), &BTreeMap::new()),
            Err(PlanError::InvalidTopic { .. })
        ));
        assert_eq!(expand(&[], &BTreeMap::new()), Err(PlanError::Empty));
    }

    #[test]
    fn packing_uses_as_few_channels_as_possible_spread_evenly() {
        let topics: Vec<String> = (0..2500).map(|i| format!("v2.users.u{i}.presence")).collect();
        let channels = pack(topics.clone(), 1000, 20).unwrap();
        assert_eq!(channels.iter().map(Vec::len).collect::<Vec<_>>(), [834, 833, 833]);
        assert_eq!(channels.concat(), topics);
        assert_eq!(pack(topics[..1000].to_vec(), 1000, 20).unwrap().len(), 1);
        let too_many: Vec<String> = (0..20_001).map(|i| format!("v2.users.u{i}.presence")).collect();
        assert_eq!(
            pack(too_many, 1000, 20).unwrap_err().to_string(),
            "20001 topics need 21 channels at 1000 topics per channel, but at most 20 channels are allowed (Genesys allows 20 per OAuth client); subscribe to fewer topics"
        );
    }
}
