//! Invariants of the webhook envelopes (a part of `invariants.rs`).

use cxrelay::sources::webhook::{parse_body, parse_open_messaging, EnvelopeError, Pushed};
use serde::de::IgnoredAny;
use serde_json::value::RawValue;

use super::Checked;

/// Both webhook body parsers on `body` (`parse_body`, and
/// `parse_open_messaging`, whose topics also have three non-empty
/// segments): on success one event and one key slot per element, keys
/// non-empty, payloads JSON, topics non-empty; on failure a reason code.
/// Answers what `parse_body` made of it.
pub fn check_webhook(body: &[u8]) -> Checked<Option<usize>> {
    if let Some(n) = check_parsed(body, parse_open_messaging(body, "fuzz"))? {
        for e in &parse_open_messaging(body, "fuzz").map_err(|e| e.to_string())?.events {
            let segments: Vec<&str> = e.topic.split('.').collect();
            ensure!(
                segments.len() == 3 && segments.iter().all(|s| !s.is_empty()),
                "Open Messaging topic `{}` is not three segments",
                e.topic
            );
        }
        ensure!(n > 0, "no elements");
    }
    check_parsed(body, parse_body(body, "fuzz"))
}

fn check_parsed(body: &[u8], parsed: Result<Pushed, EnvelopeError>) -> Checked<Option<usize>> {
    let pushed = match parsed {
        Ok(p) => p,
        Err(e) => {
            ensure!(
                !e.reason().is_empty() && !e.to_string().is_empty(),
                "error without reason"
            );
            return Ok(None);
        }
    };
    let text = std::str::from_utf8(body).map_err(|_| "accepted a body that is not UTF-8".to_string())?;
    let elements = if text.trim_start().starts_with('[') {
        serde_json::from_str::<Vec<&RawValue>>(text)
            .map_err(|e| format!("accepted an array serde_json refuses: {e}"))?
            .len()
    } else {
        1
    };
    ensure!(
        pushed.events.len() == elements && pushed.keys.len() == elements,
        "{} elements gave {} events and {} keys",
        elements,
        pushed.events.len(),
        pushed.keys.len()
    );
    for (e, k) in pushed.events.iter().zip(&pushed.keys) {
        ensure!(!e.topic.is_empty(), "event without a topic");
        ensure!(!e.id.is_empty(), "event without an id");
        ensure!(
            serde_json::from_slice::<IgnoredAny>(&e.payload).is_ok(),
            "event payload is not JSON"
        );
        if let Some(k) = k {
            ensure!(
                !k.is_empty(),
                "empty idempotency key (every other event with an empty key would be dropped as its duplicate) for element {}",
                String::from_utf8_lossy(&e.payload[..e.payload.len().min(300)])
            );
        }
    }
    Ok(Some(elements))
}
