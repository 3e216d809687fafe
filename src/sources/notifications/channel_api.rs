//! The notifications REST calls (genesys-api.md §2): create a channel (or
//! find the one a lost answer created), set / add / remove its
//! subscriptions, check that it still exists.
//!
//! Subscriptions are sent with `?ignoreErrors=true`: without it one topic
//! the client may not have fails the whole request and nothing flows; with
//! it each topic comes back `Permitted` or `Rejected` with its reason.

use std::time::{Duration, Instant};

use awc::http::Method;
use serde::Deserialize;
use serde_json::json;

use crate::genesys::{ApiClient, ApiError, ChannelClaims};

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
    /// The permissions the client lacks for it.
    #[serde(rename = "missingPermissions", default)]
    pub missing_permissions: Option<Vec<String>>,
}

#[derive(Deserialize)]
struct Entities {
    #[serde(default)]
    entities: Vec<TopicAnswer>,
}

#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    entities: Vec<ListedChannel>,
}

/// A channel as listed: channels of other tokens come without an id.
#[derive(Deserialize)]
struct ListedChannel {
    id: Option<String>,
    #[serde(rename = "connectUri")]
    connect_uri: Option<String>,
    #[serde(default)]
    expires: Option<String>,
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

fn info(id: String, connect_uri: String, expires: Option<&str>) -> ChannelInfo {
    let lifetime = expires
        .and_then(crate::wire::time::iso_ms_of)
        .map(|ms| Duration::from_millis((ms - cxrelay_actors::event::now_ms()).max(0) as u64))
        .filter(|d| !d.is_zero())
        .unwrap_or(DEFAULT_LIFETIME);
    ChannelInfo {
        id,
        connect_uri,
        expires_at: Instant::now() + lifetime,
        lifetime,
    }
}

/// `POST /api/v2/notifications/channels`. An answer that never comes is
/// not sent again ([`ApiError::Unanswered`]): the channel may exist.
pub async fn create(api: &ApiClient) -> Result<ChannelInfo, ApiError> {
    let c: Created = api.create(CHANNELS, &json!({})).await?;
    Ok(info(c.id, c.connect_uri, c.expires.as_deref()))
}

/// `GET /api/v2/notifications/channels`: this token's channels.
pub async fn list(api: &ApiClient) -> Result<Vec<ChannelInfo>, ApiError> {
    let l: Listed = api.get(CHANNELS).await?;
    Ok(l.entities
        .into_iter()
        .filter_map(|c| Some(info(c.id?, c.connect_uri?, c.expires.as_deref())))
        .collect())
}

/// A channel for this process: created, or, when the create's answer was
/// lost, the one it made (a listed channel nobody here claims), so that a
/// timed-out create does not leak a channel towards the platform's limit
/// of 20 (the 21st would evict one of ours). The channel is claimed.
pub async fn create_once(api: &ApiClient, claims: &ChannelClaims) -> Result<(ChannelInfo, bool), ApiError> {
    match create(api).await {
        Ok(c) => {
            claims.claim(&c.id);
            Ok((c, false))
        }
        Err(e) if e.is_unanswered() => {
            for c in list(api).await? {
                if claims.claim(&c.id) {
                    tracing::info!(channel = %c.id, error = %e, "a channel create went unanswered; taking over the channel it made");
                    return Ok((c, true));
                }
            }
            tracing::info!(error = %e, "a channel create went unanswered and made no channel; creating one");
            let c = create(api).await?;
            claims.claim(&c.id);
            Ok((c, false))
        }
        Err(e) => Err(e),
    }
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
                    let mut why = a.rejection_reason.unwrap_or_else(|| "rejected by Genesys".into());
                    if let Some(missing) = a.missing_permissions.filter(|m| !m.is_empty()) {
                        why.push_str(&format!(" (missing permissions: {})", missing.join(", ")));
                    }
                    TopicState::Rejected(why)
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
        .put(
            &format!("{CHANNELS}/{channel}/subscriptions?ignoreErrors=true"),
            &body(topics),
        )
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
        .post(
            &format!("{CHANNELS}/{channel}/subscriptions?ignoreErrors=true"),
            &body(topics),
        )
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
                missing_permissions: None,
            },
            TopicAnswer {
                id: "b".into(),
                state: Some("Rejected".into()),
                rejection_reason: Some("missing.permissions".into()),
                missing_permissions: None,
            },
            TopicAnswer {
                id: "c".into(),
                state: None,
                rejection_reason: None,
                missing_permissions: None,
            },
        ];
        let s = states(&["a".into(), "b".into(), "c".into(), "d".into()], answers);
        assert_eq!(s[0].1, TopicState::Permitted);
        assert_eq!(s[1].1, TopicState::Rejected("missing.permissions".into()));
        assert_eq!(s[2].1, TopicState::Permitted);
        assert!(matches!(&s[3].1, TopicState::Rejected(r) if r.contains("absent")));
    }
}
