//! The notifications REST calls (genesys-api.md §2): create a channel,
//! set / add / remove its subscriptions, check that it still exists.

use std::time::{Duration, Instant};

use awc::http::Method;
use serde::Deserialize;
use serde_json::json;

use crate::genesys::{ApiClient, ApiError};

const CHANNELS: &str = "/api/v2/notifications/channels";

/// A channel as Genesys described it.
#[derive(Debug, Clone)]
pub struct ChannelInfo {
    /// `streaming-0-…`
    pub id: String,
    /// Where its socket is.
    pub connect_uri: String,
    /// When it expires unless renewed.
    pub expires_at: Instant,
    /// Its lifetime (expiry minus creation).
    pub lifetime: Duration,
}

#[derive(Deserialize)]
struct Created {
    id: String,
    #[serde(rename = "connectUri")]
    connect_uri: String,
    #[serde(default)]
    expires: Option<String>,
}

/// One topic in a subscription answer.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct TopicAnswer {
    /// The topic.
    pub id: String,
    /// `Permitted` or `Rejected` (absent: permitted).
    #[serde(default)]
    pub state: Option<String>,
    /// Why it was rejected.
    #[serde(rename = "rejectionReason", default)]
    pub rejection_reason: Option<String>,
}

#[derive(Deserialize)]
struct Entities {
    #[serde(default)]
    entities: Vec<TopicAnswer>,
}

/// How Genesys took a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicState {
    /// Asked for, not answered yet (the channel is reconnecting).
    Pending,
    /// Subscribed.
    Permitted,
    /// Refused, with Genesys's reason (e.g. missing permissions).
    Rejected(String),
}

/// Lifetime assumed when Genesys does not say (its documented default).
const DEFAULT_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// `POST /api/v2/notifications/channels`
pub async fn create(api: &ApiClient) -> Result<ChannelInfo, ApiError> {
    let c: Created = api.post(CHANNELS, &json!({})).await?;
    let lifetime = c
        .expires
        .as_deref()
        .and_then(crate::genesys::notification::parse_iso_ms)
        .map(|ms| Duration::from_millis((ms - cxrelay_actors::event::now_ms()).max(0) as u64))
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_LIFETIME);
    Ok(ChannelInfo {
        id: c.id,
        connect_uri: c.connect_uri,
        expires_at: Instant::now() + lifetime,
        lifetime,
    })
}

fn body(topics: &[String]) -> serde_json::Value {
    serde_json::Value::Array(topics.iter().map(|t| json!({ "id": t })).collect())
}

/// Reads a subscription answer: each requested topic's state. A topic
/// missing from the answer was not subscribed.
pub fn states(requested: &[String], answers: Vec<TopicAnswer>) -> Vec<(String, TopicState)> {
    let mut by_topic: std::collections::HashMap<String, TopicAnswer> =
        answers.into_iter().map(|a| (a.id.clone(), a)).collect();
    requested
        .iter()
        .map(|t| {
            let state = match by_topic.remove(t) {
                Some(a) if a.state.as_deref().is_some_and(|s| s.eq_ignore_ascii_case("rejected")) => {
                    TopicState::Rejected(a.rejection_reason.unwrap_or_else(|| "rejected by Genesys".into()))
                }
                Some(_) => TopicState::Permitted,
                None => TopicState::Rejected("not subscribed: absent from Genesys's answer".into()),
            };
            (t.clone(), state)
        })
        .collect()
}

/// `PUT .../subscriptions`: the channel's topics become exactly `topics`
/// (this also renews the channel).
pub async fn put_subscriptions(
    api: &ApiClient,
    channel: &str,
    topics: &[String],
) -> Result<Vec<(String, TopicState)>, ApiError> {
    let e: Entities = api
        .put(&format!("{CHANNELS}/{channel}/subscriptions"), &body(topics))
        .await?;
    Ok(states(topics, e.entities))
}

/// `POST .../subscriptions`: adds `topics`.
pub async fn add_subscriptions(
    api: &ApiClient,
    channel: &str,
    topics: &[String],
) -> Result<Vec<(String, TopicState)>, ApiError> {
    let e: Entities = api
        .post(&format!("{CHANNELS}/{channel}/subscriptions"), &body(topics))
        .await?;
    Ok(states(topics, e.entities))
}

/// `DELETE .../subscriptions`: removes every topic.
pub async fn delete_subscriptions(api: &ApiClient, channel: &str) -> Result<(), ApiError> {
    api.call(Method::DELETE, &format!("{CHANNELS}/{channel}/subscriptions"), None)
        .await
        .map(|_| ())
}

/// `HEAD .../channels/{id}`: whether the channel still exists.
pub async fn exists(api: &ApiClient, channel: &str) -> Result<bool, ApiError> {
    match api.call(Method::HEAD, &format!("{CHANNELS}/{channel}"), None).await {
        Ok(_) => Ok(true),
        Err(e) if e.status() == Some(404) => Ok(false),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_requested_topic_gets_a_state() {
        let answers = vec![
            TopicAnswer {
                id: "a".into(),
                state: Some("Permitted".into()),
                rejection_reason: None,
            },
            TopicAnswer {
                id: "b".into(),
                state: Some("Rejected".into()),
                rejection_reason: Some("missing.permissions".into()),
            },
            TopicAnswer {
                id: "c".into(),
                state: None,
                rejection_reason: None,
            },
        ];
        let s = states(&["a".into(), "b".into(), "c".into(), "d".into()], answers);
        assert_eq!(s[0].1, TopicState::Permitted);
        assert_eq!(s[1].1, TopicState::Rejected("missing.permissions".into()));
        assert_eq!(s[2].1, TopicState::Permitted);
        assert!(matches!(&s[3].1, TopicState::Rejected(r) if r.contains("absent")));
    }
}
